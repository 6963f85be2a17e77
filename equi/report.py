"""Result tables from run dirs: each run's results.json, mean (std) over seeds beside the paper's number.

    python -m equi.report --task synthetic --paper-rows [--runs outputs/runs] [--out table.md]

The paper column is basu2023.yaml's (equi.paper): the artefact whose `runs` take the run, at the
row of the run's label; the `paper` a results.json of an older version holds is not read. The
tasks' figure modules (equi/tasks/<task>/figures.py) read their runs through load() and
figure_parser() here too.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import yaml

from omegaconf import OmegaConf

from equi import paper, schema
from equi.config import REPO_ROOT, compose_config, recipe, run_key, with_typed_over_fast

REPO = REPO_ROOT
ABSENT = object()


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
    overrides = [word for o in overrides for word in as_sweep(o)]
    try:
        return run_key(with_typed_over_fast(compose_config(overrides), overrides)) != record["run_key"]
    except Exception:  # an override that no longer composes
        return True


def as_sweep(override: str) -> list[str]:
    """The overrides an old SCAN experiment file (experiment=scan_<cell>_<method>[_finetune][_stepwise],
    before the tables swept task=scan) stood for, so that its runs still compare with today's config."""
    match = re.fullmatch(r"experiment=scan_(lstm|gru|rnn)_(vanilla|equitune|equizero|lambda)(_finetune)?(_stepwise)?",
                         override)
    if not match:
        return [override]
    cell, method, finetune, stepwise = match.groups()
    return (["task=scan", f"task.cell={cell}", f"method={method}"] + ["task/scan/pretrain=ours_rnn"] * (cell == "rnn")
            + ["task.finetune.examples=10000"] * bool(finetune) + ["method.decoding=stepwise"] * bool(stepwise))


def parse_condition(text: str) -> tuple[str, bool, str]:
    """'key=value' or 'key!=value' → (key, whether equality is wanted, value); null means None."""
    if "=" not in text:
        raise ValueError(f"--where {text!r}: expected key=value or key!=value")
    key, value = text.split("=", 1)
    wanted = not key.endswith("!")
    return key.rstrip("!"), wanted, "None" if value == "null" else value


def holds(config: dict, conditions) -> bool:
    """Whether a run's config meets every (key, wanted, value) of parse_condition; a key with a
    slash names a recipe (task/scan/pretrain=paper): the run was made with its settings."""
    return all((made_with(config, key, value) if "/" in key else str(config_value(config, key)) == value) == wanted
               for key, wanted, value in conditions)


def made_with(config: dict, group: str, option: str) -> bool:
    """Whether the run's config holds every setting of the recipe (interpolations such as
    ${seed} read from the run's config; a key the run predates counts as its schema.Added
    as_before value)."""
    cfg = OmegaConf.create(config)
    for key, wanted in recipe(group, option).items():
        if isinstance(wanted, str) and wanted.startswith("${") and wanted.endswith("}"):
            wanted = config_value(config, wanted[2:-1])
        value = OmegaConf.select(cfg, key, default=ABSENT)
        if value is ABSENT:
            value = getattr(schema.rule_for(cfg, key), "as_before", None)
        if value != wanted:
            return False
    return True


def row_names(label: str | None) -> list[str]:
    """The basu2023.yaml rows a run's label may stand for: the label, then the label less a
    trailing " (…)" (the split, or Canon-λ-MLP's rotations)."""
    if not label:
        return []
    stem = label.rsplit(" (", 1)[0] if label.endswith(")") and " (" in label else None
    return [label] + ([stem] if stem else [])


def paper_for(record: dict) -> paper.Number | None:
    """The paper's number for a run: from the artefact of basu2023.yaml whose `runs` take the run
    (task, where) and which has its row, at the run's value of the artefact's column (task.split);
    None where no artefact has one."""
    config, found = record["config"], []
    for name, artefact in paper.artefacts().items():
        runs = artefact.runs
        if not runs or runs["task"] != record["task"] or not holds(config, map(parse_condition, runs.get("where", ()))):
            continue
        columns = [config_value(config, runs["column"])] if runs.get("column") else []
        for row in row_names(record.get("label")):
            number = paper.find(name, row, *columns)
            if number is not None:
                found.append((name, number))
                break
    if len(found) > 1:
        raise paper.PaperKeyError(f"{paper.FILE.name}: the run labelled {record.get('label')!r} is a row of "
                                  f"{' and '.join(name for name, _ in found)}; an artefact's runs must tell them apart")
    return found[0][1] if found else None


def load(runs: Path, task: str | None, include_fast: bool, paper_rows: bool, where: list[str] = ()) -> list[dict]:
    """The finished runs under `runs` that pass the filters; raises ValueError naming a --where that
    is not key=value or names no recipe."""
    records, stale = [], 0
    conditions = [parse_condition(w) for w in where]
    for key, _, option in conditions:
        if "/" in key:
            recipe(key, option)  # a misspelled recipe stops here, not at the first run
    for path in sorted(runs.glob("*/results.json")):
        record = json.loads(path.read_text())
        if task and record["task"] != task:
            continue
        if not holds(record["config"], conditions):
            continue
        if record["config"].get("fast") and not include_fast:
            continue
        if paper_rows and paper_for(record) is None:
            continue
        if is_stale(path.parent, record):  # last: it composes a whole config
            stale += 1
            continue
        records.append(record)
    if stale:
        print(f"note: skipped {stale} run(s) made with older defaults (rerun them to include them)", file=sys.stderr)
    return records


def outputs_root() -> Path:
    """conf/config.yaml's paths.outputs: EQUI_OUTPUTS, else outputs/ (where runs write their run dirs)."""
    return Path(os.environ.get("EQUI_OUTPUTS") or REPO / "outputs").expanduser()


def figure_parser(doc: str, figures) -> argparse.ArgumentParser:
    """The options of a task's figures module: which figure, which runs (--runs, --where, --include-fast),
    where figures and tables go (by default under paths.outputs, as the runs are)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("figure", choices=sorted(figures))
    parser.add_argument("--runs", type=Path, default=outputs_root() / "runs")
    parser.add_argument("--where", action="append", default=[], help="config.key=value (repeatable)")
    parser.add_argument("--out", type=Path, default=outputs_root() / "figures")
    parser.add_argument("--tables", type=Path, default=outputs_root() / "tables")
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
        number = paper_for(group[0])
        lines.append(f"| {label} | {mean_std(values, digits)} | {len(values)} | {'-' if number is None else number} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=outputs_root() / "runs", help="folder of run dirs")
    parser.add_argument("--task", help="only this task's runs")
    parser.add_argument("--metric", help="metric to report (default: the task's config `metric`)")
    parser.add_argument("--include-fast", action="store_true", help="also count fast=true smoke runs")
    parser.add_argument("--paper-rows", action="store_true",
                        help="only runs with a row in the paper's tables (equi/paper/basu2023.yaml)")
    parser.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                        help="only runs whose config has (key=value) or lacks (key!=value) this value, e.g. task.cell=lstm (repeatable)")
    parser.add_argument("--digits", type=int, default=3, help="decimals in the table")
    parser.add_argument("--out", type=Path, help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    try:
        records = load(args.runs, args.task, args.include_fast, args.paper_rows, args.where)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
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
