"""Paper Figure 2: mean return of vanilla / equitune / equizero DQNs per environment.

    python -m equi.tasks.dqn.figures [--budget] [--runs DIR] [--png FILE] [--table FILE] [--include-fast]

Reads the dqn runs' results.json files; writes a bar chart (PNG) and a markdown table with
mean (std) over seeds, and says whether the paper's ordering equizero ≥ equitune ≥ vanilla holds.
Only runs at conf/task/dqn.yaml's pretraining budgets count; `--budget` instead draws every
budget found (make fig2-budget): return against DQN training steps, one panel per environment.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from equi.config import compose_config  # noqa: E402
from equi.experiment import effective_config  # noqa: E402
from equi.report import load, mean_std, stats, outputs_root  # noqa: E402

ENVS = ["gridworld", "cartpole", "acrobot"]
METHODS = ["vanilla", "equitune", "equizero"]


def budget(record: dict) -> int:
    """The pretraining budget of a run: its environment's DQN training steps."""
    task = record["config"]["task"]
    return task["envs"][task["env"]]["timesteps"]


def summarise(records: list[dict], by_budget: bool) -> dict[tuple, list[float]]:
    """(env, method) → mean returns, in seed order; (env, method, budget) with `by_budget`."""
    returns: dict[tuple, dict[int, float]] = defaultdict(dict)
    for r in records:
        key = (r["config"]["task"]["env"], r["method"]) + ((budget(r),) if by_budget else ())
        returns[key][r["seed"]] = r["metrics"]["mean_return"]
    return {k: [v[s] for s in sorted(v)] for k, v in returns.items()}


@functools.cache
def configured_envs(fast: bool):
    """conf/task/dqn.yaml's env settings as a run sees them (composed once per fast flag)."""
    return effective_config(compose_config(["task=dqn", f"fast={fast}"])).task.envs


def at_configured_budget(record: dict) -> bool:
    """Whether a run pretrained for conf/task/dqn.yaml's budget of its env (the paper's; fast runs: fast's)."""
    envs = configured_envs(bool(record["config"].get("fast")))
    return budget(record) == envs[record["config"]["task"]["env"]].timesteps


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


def budget_markdown(returns: dict) -> str:
    lines = ["| env | DQN steps | " + " | ".join(f"{m}, mean (std)" for m in METHODS)
             + " | seeds | equizero ≥ equitune ≥ vanilla | equizero − vanilla |", "|---|---|" + "---|" * (len(METHODS) + 3)]
    for env in ENVS:
        for steps in sorted({b for e, _, b in returns if e == env}):
            if not all((env, m, steps) in returns for m in METHODS):
                continue
            means = [stats(returns[(env, m, steps)])[0] for m in METHODS]
            cells = [mean_std(returns[(env, m, steps)], digits=2) for m in METHODS]
            holds = "yes" if means[2] >= means[1] >= means[0] else "no"
            lines.append(f"| {env} | {steps:,} | " + " | ".join(cells)
                         + f" | {len(returns[(env, METHODS[0], steps)])} | {holds} | {means[2] - means[0]:+.2f} |")
    return "\n".join(lines)


def budget_plot(returns: dict, path: Path) -> None:
    envs = [e for e in ENVS if any(k[0] == e for k in returns)]
    fig, axes = plt.subplots(1, len(envs), figsize=(4.5 * len(envs), 3.6), squeeze=False)
    for ax, env in zip(axes[0], envs):
        for method, color in zip(METHODS, ["#999999", "#4c72b0", "#dd8452"]):
            steps = sorted(b for e, m, b in returns if e == env and m == method)
            if not steps:
                continue
            means, stds = map(np.array, zip(*(stats(returns[(env, method, b)]) for b in steps)))
            ax.plot(steps, means, marker="o", color=color, label=method)
            ax.fill_between(steps, means - stds, means + stds, color=color, alpha=0.15)
        ax.set_xscale("log")
        ax.set_title(env)
        ax.set_xlabel("DQN pretraining steps")
        ax.set_ylabel("mean return")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Where symmetrising a pretrained DQN pays off (mean ± std over seeds)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def paper_cells(artefact: str, records: list[dict]) -> dict[str, list[float]]:
    """Figure 2's cells for equi.paper's claims: "<env>/<method>" → mean return of each seed."""
    return {f"{env}/{method}": values for (env, method), values in
            summarise([r for r in records if at_configured_budget(r)], by_budget=False).items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=outputs_root() / "runs")
    parser.add_argument("--include-fast", action="store_true")
    parser.add_argument("--budget", action="store_true", help="every pretraining budget found (fig2_budget.*)")
    parser.add_argument("--png", type=Path, default=None, help="default: outputs/figures/fig2[_budget].png")
    parser.add_argument("--table", type=Path, default=None, help="default: outputs/tables/fig2[_budget].md")
    args = parser.parse_args(argv)
    name = "fig2_budget" if args.budget else "fig2"
    png, table = args.png or outputs_root() / "figures" / f"{name}.png", args.table or outputs_root() / "tables" / f"{name}.md"
    records = load(args.runs, "dqn", args.include_fast, paper_rows=False)
    returns = summarise(records if args.budget else [r for r in records if at_configured_budget(r)], args.budget)
    if not returns:
        print(f"error: no finished dqn runs under {args.runs}" + ("" if args.budget else " at the configured budgets"),
              file=sys.stderr)
        return 1
    text = budget_markdown(returns) if args.budget else markdown(returns)
    print(text)
    table.parent.mkdir(parents=True, exist_ok=True)
    table.write_text(text + "\n")
    (budget_plot if args.budget else plot)(returns, png)
    print(f"figure: {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
