"""`make paper PAPER_BUDGET=…`: run (or reuse) every artefact's runs at a budget, then write the report.

    python -m equi.paper build --budget smoke [--only fig2,table2]
    python -m equi.paper report --budget smoke [--runs DIR]      # the report alone, from run dirs

Each artefact's target(s) are read from the Makefile (equi.paper.plan) with the budget's variables
(budgets.yaml) and their commands run here one by one: a check that fails (weights or data missing)
makes the artefact "not run here" with its line; a sweep that fails is recorded and the next goes
on. run.py skips finished runs, so a rerun only does what is missing. One progress line per
artefact; what happened is kept in outputs/paper/<budget>/status.json for the report.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from equi import paper
from equi.config import CONF_DIR, REPO_ROOT
from equi.paper import plan
from equi.report import outputs_root
from equi.results import write_json_atomic

BUDGETS_FILE = Path(__file__).with_name("budgets.yaml")
BUDGET_KEYS = {"says", "vars", "per", "only", "fast", "plumbing", "rehearsal"}  # budgets.yaml's header says what each is


@dataclass(frozen=True)
class Budget:
    name: str
    says: str
    vars: dict = field(default_factory=dict)
    per: dict = field(default_factory=dict)
    only: tuple[str, ...] = ()
    fast: bool = False
    plumbing: bool = False
    rehearsal: dict | None = None  # equi.paper.rehearsal.plant's options: plant, and run under its environment

    def variables(self, artefact: str) -> dict[str, str]:
        return {**{k: str(v) for k, v in self.vars.items()}, **{k: str(v) for k, v in self.per.get(artefact, {}).items()}}

    def artefacts(self) -> list[str]:
        return list(self.only) or list(paper.artefacts())


@functools.cache
def budgets() -> dict[str, Budget]:
    raw = yaml.safe_load(BUDGETS_FILE.read_text(encoding="utf-8"))
    out = {}
    for name, spec in raw.items():
        unknown = set(spec) - BUDGET_KEYS
        if unknown:
            raise ValueError(f"{BUDGETS_FILE.name}: budget {name} has unknown key(s) {', '.join(sorted(unknown))}")
        bad = [a for a in [*(spec.get("only") or ()), *(spec.get("per") or {})] if a not in paper.artefacts()]
        if bad:
            raise ValueError(f"{BUDGETS_FILE.name}: budget {name} names artefacts basu2023.yaml lacks: {', '.join(bad)}")
        out[name] = Budget(name, spec["says"], spec.get("vars") or {}, spec.get("per") or {}, tuple(spec.get("only") or ()),
                           bool(spec.get("fast")), bool(spec.get("plumbing")), spec.get("rehearsal"))
    return out


def budget(name: str) -> Budget:
    if name not in budgets():
        raise ValueError(f"unknown budget {name!r}; choose one of: {', '.join(budgets())}")
    return budgets()[name]


def rehearsal_root() -> Path:
    return outputs_root() / "paper" / "rehearsal"


def outputs_for(b: Budget) -> Path:
    """Where the budget's runs live: the outputs, or the rehearsal's own (random weights never mix with real runs)."""
    return rehearsal_root() / "outputs" if b.rehearsal is not None else outputs_root()


def environment(b: Budget) -> dict[str, str]:
    env = dict(os.environ)
    if b.rehearsal is not None:
        from equi.paper import rehearsal

        env.update(rehearsal.plant(rehearsal_root(), **b.rehearsal))
    return env


def readings(artefact: paper.Artefact) -> list[dict]:
    """The artefact's readings: the paper's setting (its targets), then each stand-in reading
    (basu2023.yaml's `standin`: target, says, for), in the report's order."""
    extra = artefact.standin if isinstance(artefact.standin, list) else [artefact.standin] if artefact.standin else []
    return [{"label": "paper", "targets": artefact.targets, "for": None, "says": None},
            *({"label": f"stand-in: {s['says']}", "targets": (s["target"],), "for": s.get("for"), "says": s["says"]}
              for s in extra)]


@functools.cache
def tree_digest() -> str:
    """The Makefile and conf/ as this process found them: what every plan is made from (read once)."""
    digest = hashlib.sha256()
    for path in [REPO_ROOT / "Makefile", *sorted(CONF_DIR.rglob("*.yaml"))]:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def fingerprint(*texts: str) -> str:
    """What a plan depends on: the Makefile, conf/ and the variables."""
    return hashlib.sha256("\0".join([tree_digest(), *texts]).encode()).hexdigest()[:16]


def planned(target: str, variables: dict[str, str], cache: Path) -> list[dict]:
    """The target's runs at these variables, each with its run key (composed once per Makefile/conf
    state and kept in `cache`: composing a paper target's runs takes up to minutes)."""
    key = fingerprint(target, json.dumps(variables, sort_keys=True))
    store = json.loads(cache.read_text()) if cache.exists() else {}
    if key not in store:
        store[key] = [{"overrides": run, "run_key": plan.run_key(run)} for run in plan.runs(target, variables)]
        write_json_atomic(cache, store)
    return store[key]


def index(runs_dir: Path) -> dict[str, Path]:
    """run key → results.json of every finished run under runs_dir (the key ends each run dir's name)."""
    out = {}
    for path in runs_dir.glob("*/results.json"):
        out[path.parent.name.rsplit("-", 1)[-1]] = path
    return out


def last_line(text: str, code: int) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or [f"exit status {code}"])[-1].removeprefix("error: ")


def run_target(target: str, variables: dict[str, str], b: Budget, env: dict, log) -> tuple[str | None, list[str]]:
    """Run the target's commands; (why it could not run, or None; the failures of its sweeps)."""
    failures = []
    for command in plan.commands(target, variables):
        if command.kind == "figure" and b.fast:
            continue  # the targets' figures draw full runs only; the report draws the fast ones
        log.write(f"$ python {' '.join(command.argv)}\n")
        log.flush()
        out = subprocess.run([sys.executable, *command.argv], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        log.write(out.stdout)
        log.flush()
        if out.returncode == 0:
            continue
        if out.returncode in (130, -2):
            raise KeyboardInterrupt
        if command.kind == "check":
            return last_line(out.stdout, out.returncode), failures
        failures.append(f"{command.kind} `{' '.join(command.argv[:2])} …` failed: {last_line(out.stdout, out.returncode)}")
    return None, failures


def build(b: Budget, only: list[str] | None = None, standins: bool = True) -> int:
    """Run every artefact of the budget in turn (without the stand-in readings' targets when not
    `standins`); write status.json and the report."""
    from equi.paper import report

    chosen = only or b.artefacts()
    standins = standins and b.rehearsal is None  # the stand-in reads CIFAR-10, which a rehearsal does not plant
    outputs = outputs_for(b)
    here = outputs_root() / "paper" / b.name
    here.mkdir(parents=True, exist_ok=True)
    status_file = here / "status.json"
    status = json.loads(status_file.read_text()) if status_file.exists() else {}
    env, done = environment(b), {}
    env.setdefault("EQUI_OUTPUTS", str(outputs))
    print(f"make paper: budget {b.name}: {b.says}")
    try:
        for i, name in enumerate(chosen, 1):
            artefact, start = paper.artefact(name), time.monotonic()
            variables = b.variables(name)
            targets = [t for r in readings(artefact)[: None if standins else 1] for t in r["targets"]]
            runs = [run for t in targets for run in planned(t, variables, here / "plan-cache.json")]
            found = index(outputs / "runs")
            before = sum(r["run_key"] in found for r in runs)
            print(f"[{i}/{len(chosen)}] {name}: {len(runs)} runs ({before} found) … ", end="", flush=True)
            why, failures = None, []
            finished = (before == len(runs) > 0 if not artefact.reads
                        else not runs and (outputs / artefact.reads).exists())
            with open(here / f"{name}.log", "a") as log:
                for target in [] if finished else targets:  # all found: nothing to run (make <target> draws it)
                    key = (target, json.dumps(variables, sort_keys=True))
                    if key not in done:
                        done[key] = run_target(target, variables, b, env, log)
                    refused, failed = done[key]
                    why = why or (refused if target in artefact.targets else None)
                    failures += failed + ([f"{target}: {refused}"] if refused and target not in artefact.targets else [])
            after = sum(r["run_key"] in index(outputs / "runs") for r in runs)
            wall = time.monotonic() - start
            status[name] = {"not_run": why, "failures": failures, "runs": len(runs), "found_before": before,
                            "finished": after, "wall_s": round(wall, 1), "at": time.strftime("%Y-%m-%d %H:%M:%S")}
            write_json_atomic(status_file, status)
            print(f"{'not run: ' + why if why else f'{after}/{len(runs)} finished'}"
                  f"{f', {len(failures)} failure(s)' if failures else ''} ({wall:.0f} s; log {here / (name + '.log')})")
    except KeyboardInterrupt:
        print("\ninterrupted: finished runs are kept; `make paper` again goes on from there", file=sys.stderr)
        return 130
    return report.write(b, outputs / "runs")
