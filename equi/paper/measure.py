"""An artefact's cells: what its runs measured, as path → one value per seed ("cartpole/equizero": [..]).

Tables that `python -m equi.report` builds (an artefact with `runs:`) are measured here: a run's
row is its label (as equi.report matches it to the paper's rows) and its column the artefact's
column key. Figures are measured by their task's figures module, `paper_cells(artefact, records)`,
which names its cells as the artefact's claims read them; `stand_ins(records)` there says which
runs used a stand-in for the paper's model or data.
"""

from __future__ import annotations

import importlib
import json
from collections import defaultdict
from pathlib import Path

from equi import paper
from equi.report import config_value, holds, parse_condition, row_names

Cells = dict[str, list[float]]


def figures_module(task: str):
    return importlib.import_module(f"equi.tasks.{task}.figures")


def table_cells(artefact: paper.Artefact, records: list[dict]) -> Cells:
    """Each run's metric at (its row of the artefact, its column), in seed order."""
    runs = artefact.runs
    where = [parse_condition(w) for w in runs.get("where", ())]
    by_cell: dict[str, dict[int, float]] = defaultdict(dict)
    for r in records:
        if r["task"] != runs["task"] or not holds(r["config"], where):
            continue
        row = next((name for name in row_names(r.get("label")) if name in artefact.rows), None)
        metric = r["config"]["task"].get("metric")
        if row is None or metric not in r["metrics"]:
            continue
        column = config_value(r["config"], runs["column"]) if runs.get("column") else None
        cell = row if column is None else f"{row}/{column}"
        by_cell[cell][(r["seed"], r.get("label"))] = float(r["metrics"][metric])
    return {cell: [v for _, v in sorted(values.items(), key=lambda kv: (kv[0][0], str(kv[0][1])))]
            for cell, values in by_cell.items()}


def cells(artefact: paper.Artefact, records: list[dict], outputs: Path) -> Cells:
    """The artefact's cells from its runs' records (and from the file it `reads` under `outputs`)."""
    if artefact.task is None:
        return table_cells(artefact, records)
    module = figures_module(artefact.task)
    if artefact.reads:
        path = outputs / artefact.reads
        return module.paper_cells(artefact.name, records, json.loads(path.read_text()) if path.exists() else None)
    return module.paper_cells(artefact.name, records)


def stand_ins(artefact: paper.Artefact, records: list[dict]) -> list[str]:
    """What the runs used in place of the paper's model or data, each said once (empty: the paper's own)."""
    module = figures_module(artefact.task) if artefact.task else None  # the tables' runs (SCAN, D.5) read the paper's data
    return list(dict.fromkeys(module.stand_ins(records))) if hasattr(module, "stand_ins") else []
