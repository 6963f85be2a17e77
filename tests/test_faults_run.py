"""Faults of run.py found by a tester, each now one line and an exit code that says what happened,
with nothing lost: Ctrl-C (exit 130, nothing half-written, the same command resumes), outputs that
cannot be written, Hydra's message said once, a failed forced rerun, file modes, misleading
messages, typed values under fast=true, empty lists and counts without an upper bound (exit 2)."""

import json
import os
import re
import runpy
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from equi import config, experiment, tasks
from equi.config import CONF_DIR, check_cli, check_outputs, choices, compose_config, with_typed_over_fast
from equi.errors import UserError
from equi.experiment import ERROR, PREVIOUS, effective_config
from equi.results import RESULTS, write_text_atomic

from .conftest import REPO

FAST = ["task=synthetic", "fast=true", "logger=none", "hardware.threads=1"]
INTERRUPTIBLE = [*FAST, "task.epochs=40"]  # a second or more of training: Ctrl-C lands inside it
PROGRESS = re.compile(r"\d+%\||epoch/s")  # tqdm's bars, which stderr carries beside the messages


def run_cli(*args, env=None, umask=None):
    return subprocess.run([sys.executable, "run.py", *args], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})}, preexec_fn=None if umask is None else lambda: os.umask(umask))


def assert_one_line_exit_2(result, message):
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip() == f"error: {message}"
    assert "Traceback" not in result.stderr + result.stdout


def messages(stderr: str) -> list[str]:
    """stderr's lines less progress bars (and the empty lines rank 0's tee leaves of them)."""
    return [line for line in re.split(r"[\r\n]", stderr)
            if line.strip() and line.strip() != "[rank 0]" and not PROGRESS.search(line)]


def interrupt(*args, ready="epoch/s", delay=0.0) -> tuple[int, str, str]:
    """Start run.py in a session of its own, wait until `ready` shows on its stderr (a progress bar:
    training has begun) and `delay` more, then press Ctrl-C: SIGINT to the whole process group, as a
    terminal sends it. The exit status, stdout and stderr."""
    child = subprocess.Popen([sys.executable, "run.py", *args], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True)
    stderr = bytearray()

    def read_stderr():
        for chunk in iter(lambda: child.stderr.read1(4096), b""):
            stderr.extend(chunk)

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    deadline = time.monotonic() + 240
    while ready.encode() not in stderr and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(delay)
    assert child.poll() is None, f"the run ended before Ctrl-C: {stderr.decode()[-2000:]}"
    os.killpg(child.pid, signal.SIGINT)
    child.wait(timeout=120)
    reader.join(timeout=10)
    return child.returncode, child.stdout.read().decode(), stderr.decode()


def run_dirs(outputs: Path) -> list[Path]:
    return sorted(p for p in (outputs / "runs").iterdir() if p.is_dir())


def assert_nothing_written(run_dir: Path):
    """No record of the interrupted run (results or a failure) and no temporary file left."""
    left = [p.name for p in run_dir.rglob("*") if p.name in (RESULTS, ERROR) or p.name.endswith(".tmp")]
    assert not left, left


# 1. Ctrl-C

def test_ctrl_c_during_a_run_is_one_line_exit_130_and_the_same_command_resumes(tmp_path):
    code, _, stderr = interrupt(*INTERRUPTIBLE)
    [run_dir] = run_dirs(tmp_path / "outputs")
    assert code == 130, stderr[-2000:]
    assert messages(stderr) == [f"interrupted: {run_dir}; rerun the same command to resume"]
    assert_nothing_written(run_dir)
    rerun = run_cli(*INTERRUPTIBLE)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert json.loads((run_dir / RESULTS).read_text())["config"]["task"]["epochs"] == 40


def test_ctrl_c_stops_a_sweep_with_one_line_naming_the_run_it_was_in(tmp_path):
    code, stdout, stderr = interrupt("-m", *INTERRUPTIBLE, "seed=0,1")
    [run_dir] = run_dirs(tmp_path / "outputs")  # the second run never started
    assert code == 130, stderr[-2000:]
    assert "seed0" in run_dir.name
    assert messages(stderr) == [f"interrupted: {run_dir}; rerun the same command to resume"]
    assert "sweep:" not in stdout  # no table of a sweep that did not end
    assert_nothing_written(run_dir)


def test_ctrl_c_in_a_ddp_run_is_one_line_from_the_parent_and_the_ranks_stay_quiet(tmp_path):
    code, _, stderr = interrupt(*FAST, "task.epochs=400", "hardware.nproc=2")  # rank 0's bar comes through the tee
    [run_dir] = run_dirs(tmp_path / "outputs")
    assert code == 130, stderr[-3000:]
    assert messages(stderr) == [f"interrupted: {run_dir}; rerun the same command to resume"]
    assert_nothing_written(run_dir)
    for log in (run_dir / "ranks").rglob("*.log"):
        assert "Traceback" not in log.read_text(), log


def test_ctrl_c_before_a_run_starts_is_one_line_exit_130(tmp_path):
    code, _, stderr = interrupt(*FAST, ready="", delay=1.0)  # importing torch and checking the overrides
    assert code == 130, stderr[-2000:]
    assert messages(stderr) == ["interrupted (no run was in progress); rerun the same command to resume"]


def test_ctrl_c_while_run_py_checks_the_command_line_is_one_line(monkeypatch, capsys):
    def interrupted(overrides):
        raise KeyboardInterrupt

    monkeypatch.setattr(config, "check_cli", interrupted)
    monkeypatch.setattr(sys, "argv", ["run.py", *FAST])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(REPO / "run.py"), run_name="__main__")
    assert exit_.value.code == 130
    assert capsys.readouterr().err == "interrupted (no run was in progress); rerun the same command to resume\n"


def test_a_write_cut_short_leaves_the_file_as_it_was_and_no_temporary_file(tmp_path, monkeypatch):
    samples = tmp_path / "samples.jsonl"  # nlg's, written as results.json is
    write_text_atomic(samples, "before\n")

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_text_atomic(samples, "after\n")
    assert samples.read_text() == "before\n" and [p.name for p in tmp_path.iterdir()] == ["samples.jsonl"]


# 2. Outputs that cannot be written

def test_outputs_that_cannot_be_a_folder_are_one_line_exit_2(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert_one_line_exit_2(run_cli(*FAST, f"paths.outputs={blocker}"),
                           f"paths.outputs={blocker} is a file, not a folder; choose another with paths.outputs=… or EQUI_OUTPUTS")
    assert check_outputs([*FAST, "seed=0,1", f"paths.outputs={blocker / 'sub'}"], multirun=True) == (
        f"paths.outputs={blocker / 'sub'} cannot be a folder: {blocker} is a file; "
        "choose another with paths.outputs=… or EQUI_OUTPUTS")
    assert check_outputs([*FAST, f"paths.outputs={tmp_path},{blocker}"], multirun=True).startswith(
        f"paths.outputs={blocker} is a file")  # every output folder of a sweep
    assert check_outputs([*FAST, f"hydra.run.dir={blocker}"], multirun=False) == (
        f"hydra.run.dir={blocker} is a file, not a folder; choose another with hydra.run.dir=…")
    assert check_outputs([*FAST, f"hydra.sweep.dir={blocker}"], multirun=True) == (
        f"hydra.sweep.dir={blocker} is a file, not a folder; choose another with hydra.sweep.dir=…")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders (the test below fakes the refusal)")
def test_read_only_outputs_are_one_line_exit_2(tmp_path):
    outputs = tmp_path / "read-only"
    outputs.mkdir(mode=0o555)
    try:
        assert_one_line_exit_2(run_cli(*FAST, f"paths.outputs={outputs}"),
                               f"paths.outputs={outputs} is not writable (permission denied); "
                               "choose another with paths.outputs=… or EQUI_OUTPUTS")
    finally:
        outputs.chmod(0o755)


def test_read_only_outputs_are_named_before_hydra_makes_the_run_dir(tmp_path, monkeypatch, capsys):
    outputs = tmp_path / "read-only"
    outputs.mkdir()
    make_folder = Path.mkdir

    def refused_inside_outputs(self, *args, **kwargs):  # what the OS does for a user without write access
        if outputs in self.parents:
            raise PermissionError(13, "Permission denied", str(self))
        return make_folder(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refused_inside_outputs)
    message = f"paths.outputs={outputs} is not writable (permission denied); choose another with paths.outputs=… or EQUI_OUTPUTS"
    assert check_outputs([*FAST, f"paths.outputs={outputs}"], multirun=False) == message
    assert check_outputs([*FAST, "seed=0,1", f"paths.outputs={outputs}"], multirun=True) == message
    monkeypatch.setattr(sys, "argv", ["run.py", *FAST, f"paths.outputs={outputs}"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(REPO / "run.py"), run_name="__main__")
    assert exit_.value.code == 2 and capsys.readouterr().err == f"error: {message}\n"
    assert not any(outputs.iterdir())


# 3. Hydra's "Error executing job" once

def test_a_bug_prints_hydras_error_executing_job_line_once(monkeypatch, capsys):
    def run(task, cfg, ctx):
        raise RuntimeError("a bug")

    monkeypatch.setattr(tasks.Task, "run", run)
    monkeypatch.setattr(sys, "argv", ["run.py", *FAST])
    with pytest.raises(SystemExit) as exit_:
        experiment.hydra_entry()
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and "RuntimeError: a bug" in err
    assert err.count("Error executing job with overrides") == 1


# 4. A failed rerun where results.json was

def test_a_failed_forced_rerun_keeps_the_earlier_results_aside_and_says_so(tmp_path, monkeypatch, capsys):
    failure = {}

    def task_run(task, cfg, ctx):
        if failure:
            raise failure["error"]
        return {"test_loss": 1.0}

    def run(*args):
        monkeypatch.setattr(sys, "argv", ["run.py", *FAST, *args])
        with pytest.raises(SystemExit) as exit_:
            experiment.hydra_entry()
        return exit_.value.code

    monkeypatch.setattr(tasks.Task, "run", task_run)
    monkeypatch.setattr(sys, "argv", ["run.py", *FAST])
    experiment.hydra_entry()
    [run_dir] = run_dirs(tmp_path / "outputs")
    earlier = json.loads((run_dir / RESULTS).read_text())
    capsys.readouterr()

    failure["error"] = UserError("the data went bad")
    assert run("force=true") == 2
    said = "the data went bad; the earlier results are kept in results.previous.json"
    assert capsys.readouterr().err == f"error: {said}\n"
    assert not (run_dir / RESULTS).exists() and json.loads((run_dir / PREVIOUS).read_text()) == earlier
    assert json.loads((run_dir / ERROR).read_text())["error"] == said

    failure.clear()
    monkeypatch.setattr(sys, "argv", ["run.py", *FAST])
    experiment.hydra_entry()  # the plain run reruns instead of skipping
    assert "skip:" not in capsys.readouterr().out
    assert (run_dir / RESULTS).exists() and not (run_dir / ERROR).exists()

    failure["error"] = RuntimeError("a bug")
    assert run("force=true") == 1
    err = capsys.readouterr().err
    assert err.startswith("error: RuntimeError: a bug; the earlier results are kept in results.previous.json\n")
    assert "Traceback" in err and not (run_dir / RESULTS).exists()


# 5. File modes

def test_results_and_error_json_get_the_mode_open_would_give(tmp_path):
    finished = run_cli(*FAST, umask=0o022)
    assert finished.returncode == 0, finished.stderr[-2000:]
    [results] = (tmp_path / "outputs" / "runs").glob(f"*/{RESULTS}")
    assert stat.S_IMODE(results.stat().st_mode) == 0o644
    failed = run_cli("task=scan", "fast=true", "logger=none", env={"EQUI_DATA": str(tmp_path / "no-data")}, umask=0o002)
    assert failed.returncode == 2, failed.stderr[-2000:]
    [error] = (tmp_path / "outputs" / "runs").glob(f"*/{ERROR}")
    assert stat.S_IMODE(error.stat().st_mode) == 0o664


# 6. Messages that said the wrong thing

@pytest.mark.parametrize("args,message", [
    (["hardware.precision=fp16"], "hardware.precision=fp16 needs a GPU (hardware=cuda or multigpu); on the CPU only fp32"),
    (["asset"], "unknown command 'asset'; did you mean `python run.py assets`?"),
])
def test_misleading_messages_now_say_what_to_do(args, message):
    assert_one_line_exit_2(run_cli(*args), message)


@pytest.mark.parametrize("args,message", [
    (["task=synthetic", "dat"], "unknown command 'dat'; did you mean `python run.py data`?"),
    (["task=synthetic", "data"], "'data' is a command of its own, first on the line: `python run.py data …`"),
    (["scan"], "'scan' is not an override: overrides are key=value (task=scan, seed=1); did you mean task=scan?"),
    (["quickly"], "'quickly' is not an override: overrides are key=value (task=scan, seed=1); "
                  "see `python run.py --help` for the keys and choices"),
    (["~task.lr"], "task.lr is missing; it must be a number > 0"),  # a deletion has no '=' and is no bare word
    (["hardware=cuda", "hardware.precision=fp8"], "unknown hardware.precision 'fp8'; choose one of: bf16, fp16, fp32"),
])
def test_bare_words_and_precisions_are_named_for_what_they_are(args, message):
    assert check_cli(args) == message


# 7. A value typed on the command line wins over the fast block

def test_a_typed_task_value_wins_over_the_fast_block_in_a_run_dir_of_its_own(tmp_path):
    plain, typed = run_cli(*FAST), run_cli(*FAST, "task.epochs=3")
    assert plain.returncode == 0 and typed.returncode == 0, (plain.stderr + typed.stderr)[-2000:]
    records = {r["config"]["task"]["epochs"]: r for r in
               (json.loads(p.read_text()) for p in (tmp_path / "outputs" / "runs").glob(f"*/{RESULTS}"))}
    assert sorted(records) == [2, 3]  # the fast block's 2 epochs, and the 3 typed
    assert records[3]["config"]["typed_over_fast"] == ["task.epochs"] and "typed_over_fast" not in records[2]["config"]
    assert records[3]["run_key"] != records[2]["run_key"]
    table = subprocess.run([sys.executable, "-m", "equi.report", "--runs", str(tmp_path / "outputs" / "runs"),
                            "--include-fast"], cwd=REPO, capture_output=True, text=True, check=True)
    assert "older defaults" not in table.stderr  # the table's check of run keys sees the typed values too


def run_dir_of(overrides: list[str]) -> str:
    """The run dir Hydra makes for these overrides (its resolver, from the command line it holds)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=True).hydra.run.dir


def test_a_typed_value_equal_to_the_tasks_default_still_makes_its_own_run():
    default = compose_config(["task=synthetic"]).task.epochs
    assert run_dir_of([*FAST, f"task.epochs={default}"]) != run_dir_of(FAST)
    assert run_dir_of(["task=synthetic", f"task.epochs={default}"]) == run_dir_of(["task=synthetic"])  # without fast: as before
    assert run_dir_of([*FAST, "task.lr=0.01"]) == run_dir_of([*FAST, "task.lr=0.01"])


def test_experiment_files_do_not_win_over_the_fast_block_and_typed_values_do():
    def effective(*overrides):
        return effective_config(with_typed_over_fast(compose_config(list(overrides)), overrides)).task.pretrain.examples

    assert compose_config(["experiment=scan_grnn"]).task.pretrain.examples == 400_000
    assert effective("experiment=scan_grnn", "fast=true") == 1000  # the fast block's
    assert effective("experiment=scan_grnn", "fast=true", "task.pretrain.examples=5000") == 5000
    assert effective("experiment=scan_grnn", "fast=true", "task.pretrain={examples: 5000}") == 5000


def test_a_typed_language_model_is_not_replaced_by_the_fast_blocks(tmp_path):
    missing = tmp_path / "no" / "such" / "folder"
    result = run_cli("task=nlg", "fast=true", "logger=none", f"task.lm={missing}")
    assert result.returncode == 2 and messages(result.stderr) == [
        f"error: language model folder {missing} does not exist; see `python run.py assets`"], result.stderr[-2000:]


def test_typed_over_fast_is_set_by_run_py_only():
    assert check_cli(["+typed_over_fast=[task.epochs]"]) == (
        "typed_over_fast is set by run.py itself (from the task.* keys typed beside fast=true); leave it out")


# 8. Empty lists where the work needs items

def test_an_empty_list_of_pairs_is_one_line_exit_2():
    assert_one_line_exit_2(run_cli("task=nlg", "task.pairs=[]", "fast=true", "logger=none"),
                           "task.pairs must be a non-empty list, each one of gender, race, sexuality, got []")


@pytest.mark.parametrize("args", [
    ["task.methods=[]"], ["task=nlg", "task.fast.pairs=[]"], ["task=nlg", "task.general_words=[]"],
    ["task=nlg", "task.regard_standin.C=[]"], ["task=nlg", "task.regard_standin.layers=[]"],
    ["task=scan", "task.groups.add_jump.commands=[]"], ["task=clip", "task.standin.model.vision_cfg.layers=[]"],
])
def test_every_list_the_work_needs_refuses_to_be_empty(args):
    key = args[-1].split("=")[0]
    assert check_cli(args).startswith(f"{key} must be a non-empty list")


# 9. Counts with an upper bound

def test_a_count_beyond_its_bound_is_one_line_exit_2():
    assert_one_line_exit_2(run_cli(*FAST, "task.fast.epochs=1000000000000"),
                           "task.fast.epochs must be an integer in [1, 10000], got 1000000000000")


def test_every_shipped_recipe_is_within_the_bounds():
    for experiment_name in choices("experiment"):
        assert check_cli([f"experiment={experiment_name}"]) is None, experiment_name
    for makefile_recipe in (["task=scan", "task.pretrain.examples=200000", "task.finetune.examples=0,10000"],
                            ["task=dqn", "task.envs.cartpole.timesteps=10000,100000", "method=vanilla"],
                            ["task=clip", "task.finetune.steps=4000", "task.finetune.eval_every=1000"],
                            ["task=nlg", "task.samples_per_context=100"]):
        assert check_cli(makefile_recipe) is None, makefile_recipe
