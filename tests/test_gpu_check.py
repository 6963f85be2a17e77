"""make gpu-check (scripts/gpu_check.py): one line and exit 0 without CUDA, a step for every task,
and a summary that records a failing and a timed-out step and goes on."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import gpu_check  # noqa: E402


def test_without_cuda_it_says_so_in_one_line_and_exits_0():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no GPU for torch, even on a GPU machine
    result = subprocess.run([sys.executable, "scripts/gpu_check.py"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [gpu_check.NO_CUDA]
    assert not (Path(os.environ["EQUI_OUTPUTS"]) / "gpu_check").exists()  # nothing made, no data folder


def test_every_task_is_checked_with_all_its_methods():
    tasks = sorted(p.stem for p in (REPO / "conf" / "task").glob("*.yaml"))
    assert sorted(gpu_check.TASKS) == tasks, "a task of conf/task/ is missing from gpu_check.TASKS (or one is extra)"
    runs = [s for s in gpu_check.steps() if s.group == "run"]
    for task in tasks:
        mine = [s for s in runs if f"task={task}" in s.command]
        assert {next(a for a in s.command if a.startswith("hardware.precision=")).split("=")[1] for s in mine} \
            == set(gpu_check.TASKS[task]["precisions"]), task
        for step in mine:
            assert "hardware=cuda" in step.command and "fast=true" in step.command
            methods = next(a for a in step.command if a.startswith("method=")).removeprefix("method=").split(",")
            assert methods == gpu_check.task_methods(task)
    multigpu = {a.removeprefix("task=") for s in gpu_check.steps() if s.group == "multigpu" for a in s.command
                if a.startswith("task=")}
    assert multigpu == {t for t, spec in gpu_check.TASKS.items() if spec["ddp"]}
    assert {s.group for s in gpu_check.steps()} == set(gpu_check.GROUPS)


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_summary_records_a_failing_and_a_timed_out_step_and_goes_on(tmp_path):
    todo = [
        gpu_check.Step("fine", python("print('warming up'); print('42 runs/s')"), 30),
        gpu_check.Step("broken", python("import sys; print('loading'); sys.exit('error: no such model')"), 30),
        gpu_check.Step("stuck", python("import time; print('started', flush=True); time.sleep(60)"), 1),
        gpu_check.Step("after", python("print('still ran')"), 30),
    ]
    results = gpu_check.run_all(todo, tmp_path / "logs", budget_s=60, cwd=tmp_path, echo=lambda line: None)
    assert [r.status for r in results] == ["ok", "failed (exit 1)", "timed out (1 s)", "ok"]
    assert results[2].wall_s < 10
    text = gpu_check.summary(results, "header line")
    # | step | command | status | wall s | key numbers / last lines |
    rows = {cells[0]: cells for cells in ([c.strip() for c in line.strip("|").split(" | ")]
                                          for line in text.splitlines()[1:] if line.startswith("| "))}
    assert rows["fine"][2:] == ["ok", rows["fine"][3], "42 runs/s"]
    assert rows["broken"][2] == "failed (exit 1)" and rows["broken"][4] == "loading ⏎ error: no such model"
    assert rows["stuck"][2] == "timed out (1 s)" and rows["stuck"][4] == "started"
    assert rows["after"][4] == "still ran"
    assert "2 of 4 steps passed" in text
    assert (tmp_path / "logs" / "broken.log").read_text().endswith("loading\nerror: no such model\n")


def process_state(pid: int) -> str:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[-1].split()[0]
    except FileNotFoundError:
        return "gone"


def test_a_timed_out_step_ends_what_it_started_and_a_spent_budget_runs_nothing(tmp_path):
    spawner = python("import subprocess, sys, time\n"
                     "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
                     "print(child.pid, flush=True); child.wait()")
    [result] = gpu_check.run_all([gpu_check.Step("spawner", spawner, 1)], tmp_path, budget_s=60, cwd=tmp_path,
                                 echo=lambda line: None)
    assert result.status == "timed out (1 s)"
    child = int(result.tail[-1])
    deadline = time.monotonic() + 5  # the signal takes a moment to land
    while (state := process_state(child)) not in ("gone", "Z", "X") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state in ("gone", "Z", "X"), f"the step's child {child} is still running ({state})"
    [skipped] = gpu_check.run_all([gpu_check.Step("late", python("print(1)"), 30)], tmp_path, budget_s=0,
                                  echo=lambda line: None)
    assert skipped.status.startswith("not run")
    assert "not run" in gpu_check.summary([skipped])


@pytest.mark.parametrize("output, key", [
    ("sweep: 4 runs: 4 finished, 0 skipped, 0 failed\n", "sweep: 4 runs: 4 finished, 0 skipped, 0 failed"),
    ("| task | batch | fp32 | bf16 | speed-up |\n|---|---|---|---|---|\n| cnn | 16 | 72 | 35 | 0.49× |\n", "cnn 0.49×"),
    ("| solo, one example per step (before / after) | 60.1 / 59.8 | 1.0× |\n| 6 replicas in one pass | 301.2 | 5.0× |\n",
     "6 replicas 301.2/s (5.0× solo)"),
    ("| RN50 | lambda | 0.101 | 2000 | 900 | 1.01× | 1.00× | 1.00× | - |\n", "RN50 λ/equitune time 1.01×, peak 1.00×"),
])
def test_key_numbers_are_read_from_the_output(output, key):
    reader = (gpu_check.sweep_line if output.startswith("sweep") else gpu_check.scan_key if "replicas" in output
              else gpu_check.table1_key if "lambda" in output else gpu_check.precision_key)
    assert reader(output) == key
