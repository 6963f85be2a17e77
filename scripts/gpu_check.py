#!/usr/bin/env python
"""make gpu-check: every GPU path of the project on a CUDA machine, in under 8 minutes on one GPU,
summed up in one markdown table (printed, and written to outputs/gpu_check.md).

    python scripts/gpu_check.py [--budget-s 480] [--only run,multigpu,table1,scan,precision,operator] [--list]

Steps, each a subprocess with its own timeout (a failing or timed-out step is recorded with its
last lines, and the rest go on; steps left when the budget is spent are listed as not run):
- run <task> <precision>: `run.py -m task=<task> method=<each of the task's methods> hardware=cuda
  fast=true`, bf16 and fp16 where the task's forward passes autocast (dqn trains through
  stable-baselines3 in fp32: fp32 only);
- multigpu <task>: `hardware=multigpu` for the tasks wired into DDP, one nccl rank per visible GPU
  (one GPU: one process, no process group);
- table1: scripts/bench_clip.py on the GPU (RN50, ViT-B-32, random weights; max_memory_allocated,
  synchronised timers);
- scan replicas: scripts/bench_scan.py --device cuda --steps 50 (SCAN pretraining throughput, the
  replicas trained in one vectorised pass against one model at a time);
- precision bf16 / fp16: scripts/bench_precision.py;
- operator: scripts/bench_operator.py --device cuda --quick (the operator against the model alone).

Runs write under outputs/gpu_check/ (EQUI_OUTPUTS for the steps), never fetch anything
(EQUI_DOWNLOAD=false: CLIP and the CNNs use their stand-ins unless real weights are cached), and
read the data folder when it holds the datasets, else a small one made like the tests' fixture
(SCAN and NLG fixtures, generated CIFAR-10 images). Each step's whole output is in
outputs/gpu_check/logs/<step>.log. Exit 0 when every step passed, 1 otherwise; on a machine
without CUDA one line says so and the exit is 0.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
GPU_PRECISIONS = ("bf16", "fp16")
NO_CUDA = "gpu-check: torch sees no CUDA device here; nothing to check (run `make gpu-check` on a GPU machine)"

# Every task of conf/task/*.yaml (tests/test_gpu_check.py holds the two to each other): the
# precisions its runs are checked in, and whether its loops are wired into DDP (docs/scaling.md).
TASKS: dict[str, dict] = {
    "clip": {"precisions": GPU_PRECISIONS, "ddp": True},
    "cnn": {"precisions": GPU_PRECISIONS, "ddp": True},
    "dqn": {"precisions": ("fp32",), "ddp": False},  # stable-baselines3 trains it in fp32, one process
    "nlg": {"precisions": GPU_PRECISIONS, "ddp": False},
    "scan": {"precisions": GPU_PRECISIONS, "ddp": True},
    "synthetic": {"precisions": GPU_PRECISIONS, "ddp": True},
}
GROUPS = ("run", "multigpu", "table1", "scan", "precision", "operator")


@dataclass
class Step:
    name: str
    command: list[str]
    timeout_s: float
    key: Callable[[str], str] | None = None  # output → the numbers the summary shows (default: its last line)
    group: str = "run"


@dataclass
class Result:
    step: Step
    status: str  # ok | failed (exit N) | timed out (N s) | not run (…)
    wall_s: float = 0.0
    key: str = ""
    tail: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


# --------------------------------------------------------------------------- the steps


def task_methods(task: str) -> list[str]:
    """The methods a task runs (its `methods:` in conf/task/<task>.yaml)."""
    from omegaconf import OmegaConf

    return list(OmegaConf.load(REPO / "conf" / "task" / f"{task}.yaml").methods)


def last_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def sweep_line(output: str) -> str:
    """run.py -m's count of finished, skipped and failed runs."""
    found = re.findall(r"^sweep: .*$", output, flags=re.M)
    return found[-1] if found else last_line(output)


def table_rows(pattern: str, cells: Callable[[list[str]], str]) -> Callable[[str], str]:
    """The markdown rows of an output matching `pattern`, each cut down to a few cells."""
    def key(output: str) -> str:
        rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in output.splitlines()
                if line.startswith("|") and re.search(pattern, line)]
        return "; ".join(cells(r) for r in rows) or last_line(output)
    return key


def table1_key(output: str) -> str:
    # | model | method | s / batch | peak MB | of it the pass | time / equitune | peak / equitune | …
    return table_rows(r"\| lambda \|", lambda r: f"{r[0]} λ/equitune time {r[5]}, peak {r[6]}")(output)


def precision_key(output: str) -> str:
    # | task | batch | fp32 | mixed | speed-up |
    return table_rows(r"^\| (?!task|---)\w+ \| \d", lambda r: f"{r[0]} {r[4]}")(output)


def scan_key(output: str) -> str:
    # | K replicas in one pass | examples/s | vs solo |
    return table_rows(r"replicas in one pass", lambda r: f"{r[0].split()[0]} replicas {r[1]}/s ({r[2]} solo)")(output)


def operator_key(output: str) -> str:
    over = len(re.findall(r"\*\*\d", output))
    rows = sum(1 for line in output.splitlines() if re.match(r"^\| (CLIP|CNN|SCAN|LM) ", line))
    return f"{rows} model rows, {over} ratios over the 1.02× goal (see the log)" if rows else last_line(output)


def steps(python: str = sys.executable) -> list[Step]:
    """Every step, in the order they run (the most basic paths first)."""
    run = [python, "run.py"]
    out: list[Step] = []
    for precision in (*GPU_PRECISIONS, "fp32"):
        for task, spec in TASKS.items():
            if precision in spec["precisions"]:
                out.append(Step(f"run {task} {precision}",
                                [*run, "-m", f"task={task}", f"method={','.join(task_methods(task))}", "hardware=cuda",
                                 f"hardware.precision={precision}", "fast=true", "logger=none", "force=true"],
                                150, sweep_line))
    for task, spec in TASKS.items():
        if spec["ddp"]:
            out.append(Step(f"multigpu {task}", [*run, f"task={task}", "hardware=multigpu", "fast=true", "logger=none",
                                                 "force=true"], 120, last_line, "multigpu"))
    out.append(Step("table1", [python, "scripts/bench_clip.py", "--device", "cuda", "--batches", "3"], 240, table1_key,
                    "table1"))
    out.append(Step("scan replicas", [python, "scripts/bench_scan.py", "--device", "cuda", "--steps", "50"], 240,
                    scan_key, "scan"))
    for precision in GPU_PRECISIONS:
        out.append(Step(f"precision {precision}", [python, "scripts/bench_precision.py", "--device", "cuda",
                                                   "--precision", precision], 120, precision_key, "precision"))
    out.append(Step("operator limit", [python, "scripts/bench_operator.py", "--device", "cuda", "--quick",
                                       "--only", "clip,cnn,scan,lm"], 240, operator_key, "operator"))
    return out


# --------------------------------------------------------------------------- running them


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def run_step(step: Step, log_dir: Path, env: dict[str, str] | None = None, timeout_s: float | None = None,
             cwd: Path = REPO) -> Result:
    """One step in its own process group (a timeout ends the step and whatever it started, e.g.
    DDP ranks); stdout and stderr together into log_dir/<step>.log."""
    timeout = step.timeout_s if timeout_s is None else min(step.timeout_s, timeout_s)
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{slug(step.name)}.log"
    start = time.perf_counter()
    with open(log, "w") as f:
        f.write("$ " + " ".join(step.command) + "\n")
        f.flush()
        proc = subprocess.Popen(step.command, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
            status = "ok" if code == 0 else f"failed (exit {code})"
        except subprocess.TimeoutExpired:
            stop(proc)
            status = f"timed out ({timeout:g} s)"
    wall = time.perf_counter() - start
    output = log.read_text(errors="replace").split("\n", 1)[-1]
    tail = [line for line in output.splitlines() if line.strip()][-5:]
    key = (step.key or last_line)(output) if status == "ok" else ""
    return Result(step, status, wall, key, tail)


def stop(proc: subprocess.Popen) -> None:
    """End a timed-out step: its process group (the step and what it started), politely first."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_all(todo: list[Step], log_dir: Path, env: dict[str, str] | None = None, budget_s: float = 480.0,
            cwd: Path = REPO, echo: Callable[[str], None] = print) -> list[Result]:
    """Every step in turn, each given at most what is left of the budget; those left when it is
    spent are not run."""
    start = time.perf_counter()
    results = []
    for i, step in enumerate(todo, 1):
        left = budget_s - (time.perf_counter() - start)
        if left < 1:
            results.append(Result(step, f"not run (the {budget_s:g} s budget was spent)"))
            echo(f"[{i}/{len(todo)}] {step.name}: not run (out of time)")
            continue
        result = run_step(step, log_dir, env, left, cwd)
        results.append(result)
        echo(f"[{i}/{len(todo)}] {step.name}: {result.status} ({result.wall_s:.0f} s)"
             + (f" {result.key}" if result.ok else ""))
    return results


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip()


def summary(results: list[Result], header: str = "") -> str:
    """The markdown summary: one row per step (command, status, wall time, key numbers, or for a
    step that did not pass the last lines of its output)."""
    passed = sum(r.ok for r in results)
    lines = ["# GPU check", ""]
    if header:
        lines += [header, ""]
    lines += [f"{passed} of {len(results)} steps passed; {sum(r.wall_s for r in results):.0f} s in all.", "",
              "| step | command | status | wall s | key numbers / last lines |", "|---|---|---|---|---|"]
    for r in results:
        command = " ".join(Path(a).name if a == sys.executable else a for a in r.step.command)
        detail = r.key if r.ok else " ⏎ ".join(r.tail)
        lines.append(f"| {cell(r.step.name)} | `{cell(command)}` | {cell(r.status)} | {r.wall_s:.1f} | {cell(detail)} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the data


REAL_DATA_ITEMS = ("scan/tasks.txt", "cifar10/train", "nlg/regard/train_other.tsv")  # what `make data` leaves


def data_folder(outputs: Path) -> tuple[Path, str]:
    """The data folder the steps read: the real one when it holds the datasets, else a small one
    in the tests' fixture layout under outputs (made once)."""
    real = Path(os.environ.get("EQUI_DATA") or REPO / "data").expanduser()
    if all((real / item).exists() for item in REAL_DATA_ITEMS):
        return real, f"the data folder {real}"
    small = outputs / "data"
    if not (small / "cifar10" / "test").is_dir():
        sys.path.insert(0, str(REPO))
        from tests.conftest import FIXTURES, write_cifar_images

        tmp = small.with_name(".data.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(FIXTURES, tmp)
        write_cifar_images(tmp / "cifar10", {"train": 12, "test": 6})
        shutil.rmtree(small, ignore_errors=True)
        tmp.rename(small)
    return small, f"a small data folder {small} (the tests' fixtures; `make data` for the real datasets)"


def machine() -> str:
    import torch

    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    gpus = f"{len(names)} × {names[0]}" if len(set(names)) == 1 else ", ".join(names)
    return f"{gpus}; torch {torch.__version__}, CUDA {torch.version.cuda}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=float, default=480.0, help="all steps together (default 8 minutes)")
    parser.add_argument("--only", default=",".join(GROUPS), help=f"groups of steps: {','.join(GROUPS)}")
    parser.add_argument("--list", action="store_true", help="print the steps' commands and exit")
    parser.add_argument("--out", type=Path, default=None, help="the summary (default: <outputs>/gpu_check.md)")
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    if args.list:
        for step in steps():
            if step.group in only:
                print(f"{step.name}: {' '.join(step.command)} (timeout {step.timeout_s:g} s)")
        return 0
    import torch

    if not torch.cuda.is_available():
        print(NO_CUDA)
        return 0
    todo = [s for s in steps() if s.group in only]
    outputs = Path(os.environ.get("EQUI_OUTPUTS") or REPO / "outputs").expanduser()
    work = outputs / "gpu_check"
    data, data_note = data_folder(work)
    env = {**os.environ, "EQUI_OUTPUTS": str(work), "EQUI_DATA": str(data), "EQUI_DOWNLOAD": "false",
           "PYTHONUNBUFFERED": "1", "WANDB_SILENT": "true"}
    header = (f"Machine: {machine()}. Steps run with EQUI_OUTPUTS={work}, EQUI_DOWNLOAD=false, data from {data_note}; "
              f"logs in {work / 'logs'}; budget {args.budget_s:g} s.")
    print(header, flush=True)
    results = run_all(todo, work / "logs", env, args.budget_s)
    text = summary(results, header)
    out = args.out or outputs / "gpu_check.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print("\n" + text + f"\nsummary: {out}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
