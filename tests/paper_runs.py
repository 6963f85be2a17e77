"""The runs each paper target of the Makefile composes (`make -n`), with their run keys: the
redesign of the config must leave the keys of runs that exist as they are (tests/test_run_keys.py).

`python -m tests.paper_runs` writes tests/fixtures/run_keys.json from the tree as it is."""

from __future__ import annotations

import itertools
import json
import re
import shlex
import subprocess
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser

REPO = Path(__file__).resolve().parent.parent
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


def sweep_commands(target: str, variables: str) -> list[list[str]]:
    """The override lists of the target's `run.py` commands (a shell loop over environments unrolled)."""
    text = subprocess.run(["make", "-n", "-B", target, *shlex.split(variables), "PY=python"], cwd=REPO, text=True,
                          capture_output=True, check=True).stdout.replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        loop = re.match(r"for (\w+) in ([\w ]+); do (.*?)( *\|\| exit 1)?; *done", line.strip())
        bodies = ([loop.group(3).replace(f"${loop.group(1)}", v) for v in loop.group(2).split()] if loop else [line])
        for body in bodies:
            if "run.py" in body and "pip" not in body:
                words = shlex.split(body)
                commands.append([w for w in words[words.index("run.py") + 1:] if w != "-m"])
    return commands


def expand(overrides: list[str]) -> list[list[str]]:
    """One override list per run of the sweep."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    choices = [[f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()] if o.is_sweep_override()
               else [o.input_line] for o in parsed]
    return [list(c) for c in itertools.product(*choices)]


def runs() -> list[tuple[str, list[str]]]:
    seen, out = set(), []
    for target, variables in TARGETS:
        for command in sweep_commands(target, variables):
            for run in expand(command):
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
