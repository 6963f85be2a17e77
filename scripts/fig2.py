#!/usr/bin/env python
"""Paper Figure 2: mean return of vanilla / equitune / equizero DQNs per environment.

Reads the dqn runs' results.json files; writes a bar chart (PNG) and a markdown table with
mean (std) over seeds, and says whether the paper's ordering equizero ≥ equitune ≥ vanilla holds.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from collect_results import REPO, load, mean_std, stats  # noqa: E402

ENVS = ["gridworld", "cartpole", "acrobot"]
METHODS = ["vanilla", "equitune", "equizero"]


def summarise(records: list[dict]) -> dict[tuple[str, str], list[float]]:
    returns: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    for r in records:
        returns[(r["config"]["task"]["env"], r["method"])][r["seed"]] = r["metrics"]["mean_return"]
    return {k: [v[s] for s in sorted(v)] for k, v in returns.items()}


def markdown(returns) -> str:
    lines = ["| env | " + " | ".join(f"{m}, mean (std)" for m in METHODS) + " | seeds | equizero ≥ equitune ≥ vanilla |",
             "|---|" + "---|" * (len(METHODS) + 2)]
    for env in ENVS:
        if not all((env, m) in returns for m in METHODS):
            continue
        means = [stats(returns[(env, m)])[0] for m in METHODS]
        cells = [mean_std(returns[(env, m)], digits=2) for m in METHODS]
        holds = "yes" if means[2] >= means[1] >= means[0] else "no"
        lines.append(f"| {env} | " + " | ".join(cells) + f" | {len(returns[(env, METHODS[0])])} | {holds} |")
    return "\n".join(lines)


def plot(returns, path: Path) -> None:
    envs = [e for e in ENVS if any((e, m) in returns for m in METHODS)]
    fig, axes = plt.subplots(1, len(envs), figsize=(4 * len(envs), 3.5), squeeze=False)
    for ax, env in zip(axes[0], envs):
        present = [m for m in METHODS if (env, m) in returns]
        means, stds = zip(*(stats(returns[(env, m)]) for m in present))
        ax.bar(present, means, yerr=stds, capsize=4, color=["#999999", "#4c72b0", "#dd8452"][: len(present)])
        ax.set_title(env)
        ax.set_ylabel("mean return")
    fig.suptitle("Pretrained DQNs: vanilla vs equitune vs equizero")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=REPO / "outputs" / "runs")
    parser.add_argument("--include-fast", action="store_true")
    parser.add_argument("--png", type=Path, default=REPO / "outputs" / "figures" / "fig2.png")
    parser.add_argument("--table", type=Path, default=REPO / "outputs" / "tables" / "fig2.md")
    args = parser.parse_args()
    records = load(args.runs, "dqn", args.include_fast, paper_rows=False)
    if not records:
        print(f"error: no finished dqn runs under {args.runs}", file=sys.stderr)
        return 1
    returns = summarise(records)
    text = markdown(returns)
    print(text)
    args.table.parent.mkdir(parents=True, exist_ok=True)
    args.table.write_text(text + "\n")
    plot(returns, args.png)
    print(f"figure: {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
