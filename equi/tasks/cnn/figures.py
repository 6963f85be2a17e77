"""rot90-CIFAR10 (paper Figures 5b, 11b, 12): finetuning curves, a table, and λ per rotation.

    python -m equi.tasks.cnn.figures [--protocol ours|paper] [--paper-legend] [--where key=value …]

Reads task=cnn runs of one protocol. `--protocol ours`: test accuracy against finetuning
epoch for every model and finetuning mode (all layers, linear probing), a table of zero-shot
and final accuracy, mean (std) over seeds, and λ-equitune's weight on each rotated copy of a
few test images. `--protocol paper`: the paper's own protocol (a new head trained through the
method on the frozen trunk), one panel per model beside the paper's readings; the curve the
paper's code drew as "max probability" equizero (the argmin of the max probability, kept as
the bug it is) is labelled for what it computes, or as the paper's legend has it with
`--paper-legend` (which swaps the two equizero labels).
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

from equi import paper  # noqa: E402
from equi.data import cifar, imagesets  # noqa: E402
from equi.groups import image  # noqa: E402
from equi.plots import views_figure  # noqa: E402
from equi.report import load, mean_std, outputs_root  # noqa: E402

ROWS = ["vanilla", "equitune", "equizero (entropy)", "equizero (neg_max_prob)", "lambda"]
MODES = {"all": "finetuning all layers", "last2": "linear probing (last two layers)"}
PAPER_BUG_ROW = "equizero (max_prob)"  # the paper code's "max probability": argmin of the max probability
PAPER_ROWS = ["vanilla", "equitune", "equizero (entropy)", "equizero (neg_max_prob)", PAPER_BUG_ROW, "lambda"]
LABELS = {PAPER_BUG_ROW: "equizero (max prob, argmin: the paper code's bug)"}
PAPER_LEGEND = {"equizero (entropy)": "equizero (with max probability)",  # the paper's figure, labels swapped
                PAPER_BUG_ROW: "equizero (with entropy)", "lambda": "$\\lambda$-equitune"}
PAPER_EPOCHS = (0, 9)  # the paper's epochs of its Figures 5b / 11b readings (basu2023.yaml's fig5b)


def paper_readings(model: str, row: str) -> tuple[float, float] | None:
    """The paper's accuracy (%) for `row` of `model` at its epochs 0 and 9 (Figures 5b / 11b), or None."""
    readings = [paper.find("fig5b", model, row, epoch) for epoch in PAPER_EPOCHS]
    return None if None in readings else tuple(r.value for r in readings)


def row_name(record: dict) -> str:
    proxy = record["metrics"].get("proxy")
    name = f"{record['method']} ({proxy})" if proxy else record["method"]
    return name + (" [test from train]" if record["metrics"].get("test_split") == "train" else "")


def protocol_of(record: dict) -> str:
    return record["metrics"].get("protocol", "ours")


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
    root = imagesets.root_for("cifar10", config["task"]["data_root"], Path(config["paths"]["data"]))
    images, _ = cifar.load(root, "test", config["task"]["eval_per_class"])
    rows = [(images[i], t, w) for i, t, w in zip(shown["index"], shown["turns"], shown["weights"])]
    views_figure(rows, image.rot90(), f"λ-equitune, {record['metrics']['model']}: weight of each rotated copy", path)


def paper_rows(groups: dict, model: str) -> list[str]:
    """The paper-protocol rows of `model`, in PAPER_ROWS order (a [test from train] variant after its row)."""
    def order(row: str) -> tuple[int, str]:
        base = row.split(" [")[0]
        return (PAPER_ROWS.index(base) if base in PAPER_ROWS else len(PAPER_ROWS), row)
    return sorted({row for m, _, row in groups if m == model}, key=order)


def paper_figure(groups: dict, models: list[str], path: Path, paper_legend: bool) -> None:
    """One panel per model: accuracy after each epoch (the paper's numbering, 0 = after the
    first), the paper's readings at its epochs 0 and 9 as open markers on dotted lines."""
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 4), squeeze=False)
    for ax, model in zip(axes[0], models):
        for row in paper_rows(groups, model):
            runs = groups[(model, "head", row)]
            curves = np.array([r["metrics"]["curve"] for r in runs])
            mean = curves.mean(0)
            std = curves.std(0, ddof=1) if len(curves) > 1 else np.zeros(curves.shape[1])
            epochs = np.arange(len(mean))
            label = (PAPER_LEGEND if paper_legend else LABELS).get(row, row)
            line = ax.plot(epochs, mean, marker="o", label=f"{label} ({len(runs)} seed{'s' * (len(runs) > 1)})")[0]
            ax.fill_between(epochs, mean - std, mean + std, alpha=0.15, color=line.get_color())
            readings = paper_readings(model, row)
            if readings:
                ax.plot(PAPER_EPOCHS, readings, ls=":", marker="s", mfc="none", color=line.get_color())
        ax.set_title(f"{model}: the paper's protocol (dotted: the paper's readings)")
        ax.set_xlabel("epoch (the paper's numbering: 0 = after the first)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("rot90-CIFAR10 accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)  # below: off the curves
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def paper_table(groups: dict, models: list[str]) -> str:
    lines = ["| model | method | after epoch 1 (paper's epoch 0) | final | epochs | paper: epoch 0 → 9 | seeds |",
             "|---|---|---|---|---|---|---|"]
    for model in models:
        for row in paper_rows(groups, model):
            runs = groups[(model, "head", row)]
            readings = paper_readings(model, row)
            lines.append(f"| {model} | {LABELS.get(row, row)} | {mean_std([r['metrics']['curve'][0] for r in runs], 1)} "
                         f"| {mean_std([r['metrics']['test_accuracy'] for r in runs], 1)} "
                         f"| {len(runs[0]['metrics']['curve'])} "
                         f"| {f'{readings[0]:.1f} → {readings[1]:.1f}' if readings else '-'} | {len(runs)} |")
    return "\n".join(lines)


def paper_cells(artefact: str, records: list[dict]) -> dict[str, list[float]]:
    """Figure 5b's cells for equi.paper's claims, from the paper-protocol runs: "<model>/<row>/<epoch>"
    with epoch 0 (after the first), "last", and the last epoch's own number (9 after ten)."""
    out: dict[str, list[float]] = defaultdict(list)
    for r in sorted((r for r in records if protocol_of(r) == "paper"), key=lambda r: r["seed"]):
        curve, base = r["metrics"]["curve"], f"{r['metrics']['model']}/{row_name(r)}"
        for epoch, value in {"0": curve[0], "last": curve[-1], str(len(curve) - 1): curve[-1]}.items():
            out[f"{base}/{epoch}"].append(value)
    return dict(out)


def stand_ins(records: list[dict]) -> list[str]:
    """Trunks other than the paper's ImageNet-pretrained ones."""
    return [f"trunk: {r['metrics']['weights']} (the paper: torchvision's ImageNet weights)" for r in records
            if not str(r["metrics"].get("weights", "")).startswith("imagenet")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=outputs_root() / "runs")
    parser.add_argument("--protocol", choices=("ours", "paper"), default="ours")
    parser.add_argument("--where", action="append", default=[], help="config.key=value (repeatable)")
    parser.add_argument("--paper-legend", action="store_true",
                        help="label the equizero curves as the paper's figure does (swapped)")
    parser.add_argument("--out", type=Path, default=outputs_root() / "figures")
    parser.add_argument("--table", type=Path, default=None, help="default: outputs/tables/fig_cnn[_paper].md")
    parser.add_argument("--include-fast", action="store_true", help="also fast=true runs (smoke tests)")
    args = parser.parse_args(argv)
    suffix = "_paper" if args.protocol == "paper" else ""
    table_path = args.table or outputs_root() / "tables" / f"fig_cnn{suffix}.md"
    records = [r for r in load(args.runs, "cnn", args.include_fast, False, args.where) if protocol_of(r) == args.protocol]
    if not records:
        print(f"error: no cnn runs of protocol {args.protocol} under {args.runs} (with {args.where or 'any settings'})",
              file=sys.stderr)
        return 1
    groups: dict = defaultdict(list)
    for r in records:
        groups[(r["metrics"]["model"], r["metrics"]["finetune_layers"], row_name(r))].append(r)
    models = sorted({m for m, _, _ in groups})
    if args.protocol == "paper":
        text = paper_table(groups, models)
        figure = args.out / "fig_cnn_paper.png"
        paper_figure(groups, models, figure, args.paper_legend)
    else:
        modes = [m for m in MODES if any(mode == m for _, mode, _ in groups)]
        text = table(groups, models, modes)
        figure = args.out / "fig_cnn.png"
        curves_figure(groups, models, modes, figure)
    print(text)
    table_path.parent.mkdir(parents=True, exist_ok=True)
    table_path.write_text(text + "\n")
    print(f"figure: {figure}")
    lam = [r for r in records if r["method"] == "lambda" and "weight_examples" in r["metrics"]]
    if lam:
        chosen = min(lam, key=lambda r: (r["metrics"]["finetune_layers"] != "all", r["metrics"]["model"], r["seed"]))
        lambda_figure(chosen, args.out / "fig_cnn_lambda.png")
        print(f"figure: {args.out / 'fig_cnn_lambda.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
