"""The runs a paper target makes, read from the Makefile itself (`make -n`), so that `make paper`,
its report and the run-key pins (tests/test_run_keys.py) never keep a second list of them.

    commands("fig2", {"SEEDS": "0"})     # the target's commands: sweeps of run.py, checks, benchmarks, figures
    runs("fig2", {"SEEDS": "0"})         # every run the target composes, once each, in order
"""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass

from equi.config import REPO_ROOT, sweep_runs

FIGURE_MODULES = ("equi.report", ".figures")  # commands that draw a target's table or figure from its runs


@dataclass(frozen=True)
class Command:
    """One command of a target's recipe: `run` (a run.py sweep: its overrides), `check` (a step that
    refuses early, e.g. equi.tasks.clip.check_assets), `figure` (draws from the runs), `other`."""

    kind: str
    argv: tuple[str, ...]  # after the interpreter: ("run.py", "-m", …) or ("-m", "equi.report", …)

    @property
    def overrides(self) -> list[str]:
        return [w for w in self.argv[1:] if w != "-m"] if self.kind == "run" else []


def kind_of(argv: list[str]) -> str:
    if argv[0] == "run.py":
        return "run"
    module = argv[1] if argv[0] == "-m" and len(argv) > 1 else ""
    if module.endswith("check_assets"):
        return "check"
    if module == FIGURE_MODULES[0] or module.endswith(FIGURE_MODULES[1]):
        return "figure"
    return "other"


def make_dry_run(target: str, variables: dict[str, str]) -> str:
    assigned = [f"{k}={v}" for k, v in variables.items()]
    out = subprocess.run(["make", "-n", "-B", target, *assigned, "PY=python"], cwd=REPO_ROOT, text=True,
                         capture_output=True)
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or [f"exit status {out.returncode}"])[-1]
        raise ValueError(f"make -n {target}: {last}")
    return out.stdout.replace("\\\n", " ")


def commands(target: str, variables: dict[str, str] | None = None) -> list[Command]:
    """The python commands of the target's recipe and its prerequisites', in make's order (a shell
    loop over environments unrolled; setup's pip installs left out)."""
    out = []
    for line in make_dry_run(target, variables or {}).splitlines():
        loop = re.match(r"for (\w+) in ([\w ]+); do (.*?)( *\|\| exit 1)?; *done", line.strip())
        bodies = [loop.group(3).replace(f"${loop.group(1)}", v) for v in loop.group(2).split()] if loop else [line]
        for body in bodies:
            words = shlex.split(body)
            if words[:1] != ["python"] or "pip" in words or "venv" in words:
                continue
            out.append(Command(kind_of(words[1:]), tuple(words[1:])))
    return out


def runs(target: str, variables: dict[str, str] | None = None) -> list[list[str]]:
    """Every run the target composes (its prerequisites' included), once each, in make's order."""
    seen, out = set(), []
    for command in commands(target, variables):
        for run in sweep_runs(command.overrides) if command.kind == "run" else ():
            if tuple(run) not in seen:
                seen.add(tuple(run))
                out.append(run)
    return out


def run_key(overrides: list[str]) -> str:
    """The key the run of these overrides is stored under (its results.json's run_key)."""
    from equi.config import compose_config, run_key as key, with_typed_over_fast

    return key(with_typed_over_fast(compose_config(overrides), overrides))
