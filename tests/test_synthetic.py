"""task=synthetic end to end in fast mode: every method, results.json, skip on rerun, seeds."""

import json
import math
import subprocess
import sys

import pytest
import torch

from equi.config import compose_config
from equi.experiment import execute
from equi.tasks import synthetic

from .conftest import REPO


def test_target_matches_the_formula():
    x = torch.tensor([[[3.0, 4.0], [0.0, 2.0]]])  # |x1| = 5, |x2| = 2, x1·x2 = 8
    expected = math.sin(5.0) - 2.0**3 / 2 + 8.0 / (5.0 * 2.0)
    assert synthetic.target(x).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("experiment", ["d5_mlp", "d5_canon", "d5_canon_lambda"])
def test_models_have_about_160k_parameters(experiment):
    model = synthetic.build(compose_config([f"experiment={experiment}"]))
    assert 155_000 <= sum(p.numel() for p in model.parameters()) <= 165_000


@pytest.mark.parametrize("method", ["vanilla", "equitune", "lambda", "canonical_lambda"])
def test_fast_run_of_every_method(method, tmp_path):
    cfg = compose_config([f"method={method}", "fast=true", "logger=none"])
    record = execute(cfg, tmp_path / "run")
    stored = json.loads((tmp_path / "run" / "results.json").read_text())
    assert stored["metrics"] == record["metrics"]
    assert set(stored) >= {"run_key", "metrics", "seed", "git_commit", "packages", "wall_time_s", "config"}
    assert stored["config"]["task"]["epochs"] == 2  # fast settings merged in
    assert stored["packages"]["torch"].startswith("2.14.1")
    metrics = stored["metrics"]
    assert math.isfinite(metrics["test_loss"])
    if method == "canonical_lambda":
        assert metrics["invariance_error"] < 1e-4
    if method == "vanilla":
        assert metrics["invariance_error"] > 1e-3


def test_rerun_skips_a_finished_run_and_force_reruns(tmp_path, capsys):
    cfg = compose_config(["fast=true", "logger=none"])
    first = execute(cfg, tmp_path)
    mtime = (tmp_path / "results.json").stat().st_mtime_ns
    assert execute(cfg, tmp_path) == first
    assert "skip: finished run" in capsys.readouterr().out
    assert (tmp_path / "results.json").stat().st_mtime_ns == mtime
    changed = compose_config(["fast=true", "logger=none", "task.lr=0.01"])
    assert execute(changed, tmp_path)["run_key"] != first["run_key"]  # a changed config is not "finished"
    relabelled = execute(compose_config(["fast=true", "logger=none", "label=renamed", "paper=1.0"]), tmp_path)
    assert relabelled["label"] == "renamed" and relabelled["metrics"] == first["metrics"]
    assert json.loads((tmp_path / "results.json").read_text())["label"] == "renamed"
    execute(compose_config(["fast=true", "logger=none"]), tmp_path)  # a plain rerun keeps the table label
    assert json.loads((tmp_path / "results.json").read_text())["label"] == "renamed"
    forced = execute(compose_config(["fast=true", "logger=none", "force=true"]), tmp_path / "forced")
    assert forced["metrics"] == first["metrics"]  # and seeds repeat exactly


def test_different_seeds_differ(tmp_path):
    a = execute(compose_config(["fast=true", "logger=none", "seed=0"]), tmp_path / "a")
    b = execute(compose_config(["fast=true", "logger=none", "seed=1"]), tmp_path / "b")
    assert a["metrics"]["test_loss"] != b["metrics"]["test_loss"]


def test_wandb_offline_run_is_written_into_the_run_dir(tmp_path):
    execute(compose_config(["fast=true", "logger=wandb"]), tmp_path)
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].glob("*.wandb"))


def test_sweep_through_run_py_and_collect_table(tmp_path):
    outputs = tmp_path / "outputs"
    env = {"EQUI_OUTPUTS": str(outputs), "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "run.py", "-m", "experiment=d5_mlp,d5_canon", "seed=0,1", "fast=true", "logger=none"]
    subprocess.run(cmd, cwd=REPO, env=env, check=True, capture_output=True, timeout=600)
    assert len(list((outputs / "runs").glob("*/results.json"))) == 4
    table = subprocess.run([sys.executable, "scripts/collect_results.py", "--runs", str(outputs / "runs"), "--include-fast"],
                           cwd=REPO, capture_output=True, text=True, check=True).stdout
    lines = table.splitlines()
    assert lines[0] == "| model | test_loss: ours, mean (std) | runs | paper |"
    assert lines[2].startswith("| Canon-MLP | ") and lines[2].endswith("| 2 | 0.41 (0.34) |")
    assert lines[3].startswith("| MLP | ") and lines[3].endswith("| 2 | 0.91 (0.82) |")
    zero = json.loads(next((outputs / "runs").glob("synthetic-vanilla-*/results.json")).read_text())
    zero["paper"], zero["label"], zero["run_key"] = 0.0, "Zero", "other"
    (outputs / "runs" / "zero").mkdir()
    (outputs / "runs" / "zero" / "results.json").write_text(json.dumps(zero))
    table = subprocess.run([sys.executable, "scripts/collect_results.py", "--runs", str(outputs / "runs"), "--include-fast",
                            "--paper-rows", "--where", "method.name=vanilla"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert [line.split(" | ")[0] for line in table.splitlines()[2:]] == ["| MLP", "| Zero"]  # a paper number of 0.0 counts
    assert table.splitlines()[-1].endswith("| 0.0 |")
    others = subprocess.run([sys.executable, "scripts/collect_results.py", "--runs", str(outputs / "runs"), "--include-fast",
                             "--where", "method.name!=vanilla", "--where", "paper_by_split=null"],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert [line.split(" | ")[0] for line in others.splitlines()[2:]] == ["| Canon-MLP"]
    # a run whose overrides now compose into another run (older defaults) is left out, with a note
    overrides = next((outputs / "runs").glob("synthetic-vanilla-seed1-*")) / ".hydra" / "overrides.yaml"
    original = overrides.read_text()
    overrides.write_text(original.replace("seed=1", "seed=7"))
    stale = subprocess.run([sys.executable, "scripts/collect_results.py", "--runs", str(outputs / "runs"), "--include-fast",
                            "--paper-rows"], cwd=REPO, capture_output=True, text=True, check=True)
    assert "skipped 1 run(s) made with older defaults" in stale.stderr
    mlp = next(line for line in stale.stdout.splitlines() if line.startswith("| MLP |"))
    assert mlp.endswith("| 1 | 0.91 (0.82) |")  # one of its two seeds is left out
    overrides.write_text(original)
    twin = json.loads(next((outputs / "runs").glob("synthetic-vanilla-seed0-*/results.json")).read_text())
    twin["run_key"], twin["config"]["task"]["lr"] = "twin", 0.5  # other settings, same label and seed
    (outputs / "runs" / "twin").mkdir()
    (outputs / "runs" / "twin" / "results.json").write_text(json.dumps(twin))
    mixed = subprocess.run([sys.executable, "scripts/collect_results.py", "--runs", str(outputs / "runs"), "--include-fast",
                            "--paper-rows"], cwd=REPO, capture_output=True, text=True, check=True)
    assert "warning: row 'MLP' holds 3 runs for seeds [0, 1]" in mixed.stderr
    assert next(line for line in mixed.stdout.splitlines() if line.startswith("| MLP |")).endswith("| 3 | 0.91 (0.82) |")
    rerun = subprocess.run(cmd, cwd=REPO, env=env, check=True, capture_output=True, text=True, timeout=600)
    assert rerun.stdout.count("skip: finished run") == 4  # the planted rows are not runs of this sweep
