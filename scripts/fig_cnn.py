#!/usr/bin/env python
"""rot90-CIFAR10 (paper Figures 5b, 11b, 12): finetuning curves, a table, and λ per rotation.

Reads task=cnn runs; writes test accuracy against finetuning epoch for every model and
finetuning mode (all layers, linear probing), a markdown table of zero-shot and final
accuracy, mean (std) over seeds, and a picture of λ-equitune's weight on each rotated copy
of a few test images.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from collect_results import REPO, load, mean_std  # noqa: E402

from equi.data import cifar  # noqa: E402
from equi.groups import image  # noqa: E402
from fig_clip import views_figure  # noqa: E402

ROWS = ["vanilla", "equitune", "equizero (entropy)", "equizero (neg_max_prob)", "lambda"]
MODES = {"all": "finetuning all layers", "last2": "linear probing (last two layers)"}


def row_name(record: dict) -> str:
    proxy = record["metrics"].get("proxy")
    return f"{record['method']} ({proxy})" if proxy else record["method"]


def curves_figure(groups: dict, models: list[str], modes: list[str], path: Path) -> None:
    fig, axes = plt.subplots(len(modes), len(models), figsize=(5 * len(models), 3.6 * len(modes)), squeeze=False)
    for i, mode in enumerate(modes):
        for j, model in enumerate(models):
            ax = axes[i][j]
            for row in ROWS:
                runs = groups.get((model, mode, row))
                if not runs:
                    continue
                curves = np.array([r["metrics"]["curve"] for r in runs])
                mean, std = curves.mean(0), curves.std(0, ddof=1) if len(curves) > 1 else np.zeros(curves.shape[1])
                epochs = np.arange(len(mean))
                ax.plot(epochs, mean, marker="o", label=row)
                ax.fill_between(epochs, mean - std, mean + std, alpha=0.2)
            ax.set_title(f"{model}: {MODES[mode]}")
            ax.set_xlabel("finetuning epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel("rot90-CIFAR10 test accuracy (%)")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(groups: dict, models: list[str], modes: list[str]) -> str:
    lines = ["| model | finetuning | method | zero-shot | final | weight on upright copy | seeds |",
             "|---|---|---|---|---|---|---|"]
    for model in models:
        for mode in modes:
            for row in ROWS:
                runs = groups.get((model, mode, row))
                if not runs:
                    continue
                upright = [r["metrics"]["upright_weight"] for r in runs if "upright_weight" in r["metrics"]]
                lines.append(f"| {model} | {mode} | {row} | {mean_std([r['metrics']['zero_shot_accuracy'] for r in runs], 1)} "
                             f"| {mean_std([r['metrics']['test_accuracy'] for r in runs], 1)} "
                             f"| {mean_std(upright, 2) if upright else '-'} | {len(runs)} |")
    return "\n".join(lines)


def lambda_figure(record: dict, path: Path) -> None:
    """Each shown test image as the operator sees it: its 4 rotated copies, titled with λ."""
    config, shown = record["config"], record["metrics"]["weight_examples"]
    root = config["task"]["data_root"] or Path(config["paths"]["data"]) / "cifar10-jpg"
    images, _ = cifar.load(root, "test", config["task"]["eval_per_class"])
    rows = [(images[i], t, w) for i, t, w in zip(shown["index"], shown["turns"], shown["weights"])]
    views_figure(rows, image.rot90(), f"λ-equitune, {record['metrics']['model']}: weight of each rotated copy", path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=REPO / "outputs" / "runs")
    parser.add_argument("--where", action="append", default=[], help="config.key=value (repeatable)")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "figures")
    parser.add_argument("--table", type=Path, default=REPO / "outputs" / "tables" / "fig_cnn.md")
    parser.add_argument("--include-fast", action="store_true", help="also fast=true runs (smoke tests)")
    args = parser.parse_args(argv)
    records = load(args.runs, "cnn", args.include_fast, False, args.where)
    if not records:
        print(f"error: no cnn runs under {args.runs} (with {args.where or 'any settings'})", file=sys.stderr)
        return 1
    groups: dict = defaultdict(list)
    for r in records:
        groups[(r["metrics"]["model"], r["metrics"]["finetune_layers"], row_name(r))].append(r)
    models = sorted({m for m, _, _ in groups})
    modes = [m for m in MODES if any(mode == m for _, mode, _ in groups)]
    text = table(groups, models, modes)
    print(text)
    args.table.parent.mkdir(parents=True, exist_ok=True)
    args.table.write_text(text + "\n")
    curves_figure(groups, models, modes, args.out / "fig_cnn.png")
    print(f"figure: {args.out / 'fig_cnn.png'}")
    lam = [r for r in records if r["method"] == "lambda" and "weight_examples" in r["metrics"]]
    if lam:
        chosen = min(lam, key=lambda r: (r["metrics"]["finetune_layers"] != "all", r["metrics"]["model"], r["seed"]))
        lambda_figure(chosen, args.out / "fig_cnn_lambda.png")
        print(f"figure: {args.out / 'fig_cnn_lambda.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
