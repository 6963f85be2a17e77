"""SCAN few-shot curve: test accuracy against finetuning examples, one line per method.

    python -m equi.tasks.scan.figures [--cell lstm] [--split add_jump] [--where key=value …]

Reads scan runs (one cell and split) and writes a PNG plus a markdown table, mean (std) over seeds.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from equi.report import load, mean_std, stats, outputs_root  # noqa: E402

METHODS = ["vanilla", "equitune", "equizero"]


def pretraining(task: dict) -> str:
    """Which pretrained model a run started from (runs made before keep, clip_scope or loss existed
    kept the last checkpoint, clipped the whole model and took the token mean)."""
    pre = task["pretrain"]
    return (f"{task['architecture']}/{pre.get('keep', 'last')}, {pre.get('examples')} examples in batches of "
            f"{pre.get('batch_size')}, lr {pre.get('lr')}, {pre.get('schedule')}, clip_scope "
            f"{pre.get('clip_scope', 'model')}, {pre.get('loss', 'token_mean')}")


def finetuning(finetune: dict) -> str:
    """How a run finetuned (runs made before weight_decay, loss and clip_scope existed had 0,
    token_mean and model)."""
    return (f"batch {finetune['batch_size']}, lr {finetune['lr']}, weight decay {finetune.get('weight_decay', 0.0)}, "
            f"{finetune.get('loss', 'token_mean')}, clip_scope {finetune.get('clip_scope', 'model')}")


def refuse_mixed(kinds: set[str], what: str, narrow: str) -> bool:
    """One line and True when the runs come from more than one kind of `what`: a curve must not mix them."""
    if len(kinds) > 1:
        print(f"error: the runs come from {len(kinds)} {what} ({'; '.join(sorted(kinds))}); keep one with "
              f"{narrow}", file=sys.stderr)
    return len(kinds) > 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=outputs_root() / "runs")
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--split", default="add_jump")
    parser.add_argument("--png", type=Path, default=outputs_root() / "figures" / "fig_scan_fewshot.png")
    parser.add_argument("--table", type=Path, default=outputs_root() / "tables" / "fig_scan_fewshot.md")
    parser.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                        help="keep runs whose config has this value (KEY!=VALUE: does not); repeatable")
    args = parser.parse_args(argv)
    where = [f"task.cell={args.cell}", f"task.split={args.split}", "task.limit=None", "method.decoding!=stepwise",
             *args.where]
    records = load(args.runs, "scan", False, False, where)  # equitune: the paper's per_view decoding
    tasks = [r["config"]["task"] for r in records]
    if (refuse_mixed({pretraining(t) for t in tasks}, "pretrained models", "--where task.architecture=… (or "
                     "task.pretrain.keep, examples, batch_size, lr, schedule, clip_scope, loss)")
            or refuse_mixed({finetuning(t["finetune"]) for t in tasks if t["finetune"]["examples"]},
                            "finetuning recipes", "--where task.finetune.batch_size=… (or lr, weight_decay, loss, "
                            "clip_scope)")):
        return 2
    curves: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        curves[r["method"]][r["config"]["task"]["finetune"]["examples"]].append(r["metrics"]["test_accuracy"])
    if not curves:
        print(f"error: no scan runs for {args.cell} on {args.split} under {args.runs}", file=sys.stderr)
        return 1
    sizes = sorted({n for c in curves.values() for n in c})
    lines = ["| finetune examples | " + " | ".join(METHODS) + " |", "|---|" + "---|" * len(METHODS)]
    for n in sizes:
        cells = []
        for m in METHODS:
            v = curves[m].get(n, [])
            cells.append(f"{mean_std(v, digits=1)}, n={len(v)}" if v else "-")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    print(text)
    args.table.parent.mkdir(parents=True, exist_ok=True)
    args.table.write_text(text + "\n")
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for m in METHODS:
        xs = sorted(curves[m])
        if xs:
            means, stds = zip(*(stats(curves[m][x]) for x in xs))
            ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=m)
    ax.set_xlabel("finetuning examples")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"SCAN {args.split}, {args.cell.upper()}")
    ax.legend()
    fig.tight_layout()
    args.png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.png, dpi=120)
    print(f"figure: {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
