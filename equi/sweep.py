"""The end of a sweep (python run.py -m …): one table of finished, skipped and failed runs.

Registered in conf/config.yaml under hydra.callbacks. Each run reports its outcome through
``equi.experiment.hydra_entry``'s return value; a failed run has error.json in its run dir, and
rerunning the same command retries only failed and missing runs (finished ones are skipped).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from .errors import one_line

STATUSES = ("finished", "skipped", "failed")


class SweepSummary(Callback):
    def __init__(self) -> None:
        self.rows: list[tuple[str, list[str], str, str]] = []  # (status, overrides, run dir, error)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        # A single run has no table. Reading a failed job's return_value prints Hydra's "Error executing
        # job with overrides" line, and Hydra reads it (and prints the line) again after us.
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        try:
            outcome = job_return.return_value
        except Exception as err:  # hydra_entry itself failed
            outcome = {"status": "failed", "error": f"{type(err).__name__}: {one_line(err)}"}
        self.rows.append((outcome["status"], list(job_return.overrides),
                          Path(config.hydra.runtime.output_dir).name, outcome.get("error", "")))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        counts = {s: sum(row[0] == s for row in self.rows) for s in STATUSES}
        print(f"\nsweep: {len(self.rows)} runs: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
        shared = set.intersection(*(set(row[1]) for row in self.rows)) if len(self.rows) > 1 else set()
        table = [("status", "overrides", "run dir", "error")]
        table += [(s, " ".join(o for o in overrides if o not in shared), d, e) for s, overrides, d, e in self.rows]
        widths = [max(len(r[i]) for r in table) for i in range(3)]
        for row in table:
            print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[3])
        if counts["failed"]:
            print("rerun the same command to retry the failed runs (finished ones are skipped)")
            raise SystemExit(1)
