#!/usr/bin/env python
"""Collect results.json files into a markdown table: mean (std) over seeds beside the paper's number.

    python scripts/collect_results.py --task synthetic --paper-rows [--runs outputs/runs] [--out table.md]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from equi.config import compose_config, run_key, with_typed_over_fast  # noqa: E402


def config_value(config: dict, dotted: str):
    for part in dotted.split("."):
        config = config.get(part) if isinstance(config, dict) else None
    return config


def is_stale(run_dir: Path, record: dict) -> bool:
    """True if the run's command-line overrides compose, with today's config, into another run:
    its numbers came from older defaults and must not be averaged with current ones."""
    overrides_file = run_dir / ".hydra" / "overrides.yaml"
    if not overrides_file.exists():  # made without run.py (e.g. by the tests): nothing to compare
        return False
    overrides = [o for o in yaml.safe_load(overrides_file.read_text()) or [] if not o.lstrip("+~").startswith("hydra")]
    try:
        return run_key(with_typed_over_fast(compose_config(overrides), overrides)) != record["run_key"]
    except Exception:  # an override that no longer composes
        return True


def parse_condition(text: str) -> tuple[str, bool, str]:
    """'key=value' or 'key!=value' → (key, whether equality is wanted, value); null means None."""
    key, value = text.split("=", 1)
    wanted = not key.endswith("!")
    return key.rstrip("!"), wanted, "None" if value == "null" else value


def load(runs: Path, task: str | None, include_fast: bool, paper_rows: bool, where: list[str] = ()) -> list[dict]:
    records, stale = [], 0
    conditions = [parse_condition(w) for w in where]
    for path in sorted(runs.glob("*/results.json")):
        record = json.loads(path.read_text())
        if task and record["task"] != task:
            continue
        if any((str(config_value(record["config"], key)) == value) != wanted for key, wanted, value in conditions):
            continue
        if record["config"].get("fast") and not include_fast:
            continue
        if paper_rows and record.get("paper") is None:
            continue
        if is_stale(path.parent, record):  # last: it composes a whole config
            stale += 1
            continue
        records.append(record)
    if stale:
        print(f"note: skipped {stale} run(s) made with older defaults (rerun them to include them)", file=sys.stderr)
    return records


def figure_parser(doc: str, figures) -> argparse.ArgumentParser:
    """The options of a figure script: which figure, which runs (--runs, --where, --include-fast),
    where figures and tables go."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("figure", choices=sorted(figures))
    parser.add_argument("--runs", type=Path, default=REPO / "outputs" / "runs")
    parser.add_argument("--where", action="append", default=[], help="config.key=value (repeatable)")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "figures")
    parser.add_argument("--tables", type=Path, default=REPO / "outputs" / "tables")
    parser.add_argument("--include-fast", action="store_true", help="also fast=true runs (smoke tests)")
    return parser


def stats(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single seed)."""
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def mean_std(values: list[float], digits: int = 3) -> str:
    mean, std = stats(values)
    return f"{mean:.{digits}f} ({std:.{digits}f})"


def table(records: list[dict], metric: str | None, digits: int = 3) -> str:
    rows: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        rows[r["label"]].append(r)
    metric = metric or records[0]["config"]["task"].get("metric")
    lines = [f"| model | {metric}: ours, mean (std) | runs | paper |", "|---|---|---|---|"]
    for label, group in sorted(rows.items()):
        values = [r["metrics"][metric] for r in group if metric in r["metrics"]]
        seeds = [r["seed"] for r in group]
        if len(set(seeds)) < len(seeds):
            print(f"warning: row {label!r} holds {len(seeds)} runs for seeds {sorted(set(seeds))}: runs with other "
                  "settings share its label; narrow the table with --where", file=sys.stderr)
        lines.append(f"| {label} | {mean_std(values, digits)} | {len(values)} | {'-' if group[0].get('paper') is None else group[0]['paper']} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=REPO / "outputs" / "runs", help="folder of run dirs")
    parser.add_argument("--task", help="only this task's runs")
    parser.add_argument("--metric", help="metric to report (default: the task's config `metric`)")
    parser.add_argument("--include-fast", action="store_true", help="also count fast=true smoke runs")
    parser.add_argument("--paper-rows", action="store_true", help="only runs of experiments with a paper number")
    parser.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                        help="only runs whose config has (key=value) or lacks (key!=value) this value, e.g. task.cell=lstm (repeatable)")
    parser.add_argument("--digits", type=int, default=3, help="decimals in the table")
    parser.add_argument("--out", type=Path, help="also write the table to this markdown file")
    args = parser.parse_args()
    records = load(args.runs, args.task, args.include_fast, args.paper_rows, args.where)
    if not records:
        print(f"error: no finished runs{f' of task {args.task}' if args.task else ''} under {args.runs}", file=sys.stderr)
        return 1
    text = table(records, args.metric, args.digits)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
