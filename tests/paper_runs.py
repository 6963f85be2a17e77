"""The runs each paper target of the Makefile composes (`make -n`, through equi.paper.plan), with their run keys: the
redesign of the config must leave the keys of runs that exist as they are (tests/test_run_keys.py).

`python -m tests.paper_runs` writes tests/fixtures/run_keys.json from the tree as it is."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from equi.paper import plan

PINNED = Path(__file__).resolve().parent / "fixtures" / "run_keys.json"
# Each paper target with the recipe variables that change its runs (SCAN's model and recipes).
TARGETS = [
    ("table-d5", ""), ("fig2", ""), ("fig2-budget", ""),
    *[(t, f"SCAN_MODEL={m} SCAN_PRETRAIN={p}") for t in ("table2", "table-scan-gru", "table-scan-rnn",
                                                          "table-scan-lambda", "fig-scan-fewshot")
      for m in ("paper", "ours") for p in ("paper", "ours")],
    *[(f"table-scan-finetune-{c}", f"SCAN_FINETUNE={f}") for c in ("lstm", "gru", "rnn") for f in ("paper", "ours")],
    ("table-scan-g", ""), ("pretrain-cnn", ""), ("fig-cnn", ""), ("fig-cnn-paper", ""), ("pretrain-clip", ""),
    ("fig7", ""), ("fig4", ""), ("fig8", ""), ("fig5a", ""), ("fig11a", ""), ("fig12", ""), ("fig-clip-offline", ""),
    ("fig3", ""), ("fig9", ""),
]


def runs() -> list[tuple[str, list[str]]]:
    """(target, overrides) of every run of TARGETS, each run once (under the first target composing it)."""
    seen, out = set(), []
    for target, variables in TARGETS:
        assigned = dict(v.split("=", 1) for v in shlex.split(variables))
        for run in plan.runs(target, assigned):
            if tuple(run) not in seen:
                seen.add(tuple(run))
                out.append((f"{target} {variables}".strip(), run))
    return out


def keys(overrides: list[str]) -> dict:
    """The run key, and for SCAN the pretrained checkpoint's name (before input fingerprints)."""
    from equi.config import compose_config, run_key

    cfg = compose_config(overrides)
    out = {"run_key": run_key(cfg)}
    if cfg.task.name == "scan":
        from equi.experiment import effective_config
        from equi.tasks.scan.runner import checkpoint_file

        task = effective_config(cfg).task
        out["checkpoint"] = checkpoint_file(task, cfg.seed, "cache").name
    return out


if __name__ == "__main__":
    pinned = [{"target": t, "overrides": r, **keys(r)} for t, r in runs()]
    PINNED.write_text("[\n" + ",\n".join(json.dumps(run) for run in pinned) + "\n]\n")  # a run a line
    print(f"{len(pinned)} runs pinned in {PINNED}")
