"""task=synthetic end to end in fast mode: every method, results.json, skip on rerun, seeds."""

import json
import math
import subprocess
import sys

import pytest
import torch

from equi import groups as G
from equi.config import compose_config
from equi.experiment import execute
from equi.tasks.synthetic import runner as synthetic

from .conftest import REPO


def test_target_matches_the_formula():
    x = torch.tensor([[[3.0, 4.0], [0.0, 2.0]]])  # |x1| = 5, |x2| = 2, x1·x2 = 8
    expected = math.sin(5.0) - 2.0**3 / 2 + 8.0 / (5.0 * 2.0)
    assert synthetic.target(x).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("overrides, parameters", [
    (["experiment=d5_mlp"], 162_001),
    (["experiment=d5_canon"], 162_001),
    *[(["experiment=d5_canon_lambda", f"method.extra_rotations={n}"], 159_436) for n in (2, 4, 8)],
])
def test_models_have_the_papers_parameter_counts(overrides, parameters):
    """MLP and Canon-MLP have the paper's 162,001; Canon-λ-MLP 159,436, 2 over the paper's 159,434,
    which no widths of a 4-residual-layer MLP and a 3-layer residual λ-network give exactly."""
    model = synthetic.build(compose_config(overrides))
    assert sum(p.numel() for p in model.parameters()) == parameters


def test_the_lambda_network_of_canon_lambda_mlp_has_a_skip_connection():
    """Zero its hidden→hidden layer: with the skip, λ still depends on the view; without, it is constant."""
    scores = {}
    for residual in (True, False):
        torch.manual_seed(0)
        lam = synthetic.build(compose_config(["experiment=d5_canon_lambda", f"method.lambda_residual={residual}"])).inner.weighting
        (middle,) = [m for m in lam.modules() if isinstance(m, torch.nn.Linear) and m.in_features == m.out_features == 22]
        with torch.no_grad():
            middle.weight.zero_()
            middle.bias.zero_()
        scores[residual] = lam.net(torch.randn(32, 2, 2))
    assert scores[True].std() > 1e-3 and scores[False].std() < 1e-6


@pytest.mark.parametrize("canonicalizer", ["sum", "x1", "x2"])
@pytest.mark.parametrize("experiment", ["d5_canon", "d5_canon_lambda"])
def test_canonical_models_are_invariant_to_every_rotation(experiment, canonicalizer):
    """Both vectors rotated together by a random angle per sample: the same prediction up to float64 rounding."""
    torch.manual_seed(0)
    cfg = compose_config([f"experiment={experiment}", f"task.canonicalizer={canonicalizer}"])
    model = synthetic.build(cfg).double().eval()
    x = torch.randn(256, 2, 2, dtype=torch.float64)
    rotated = G.rotate(torch.rand(256, dtype=torch.float64) * 2 * math.pi, x)
    torch.testing.assert_close(model(rotated), model(x), atol=1e-10, rtol=0)
    mlp = synthetic.build(compose_config(["experiment=d5_mlp"])).double().eval()
    assert (mlp(rotated) - mlp(x)).abs().max() > 1e-3  # the check can fail: the plain MLP is not invariant


def test_the_canonicalizer_option_picks_whose_angle_is_undone():
    """sum (the paper's) turns x1 + x2 onto the positive x-axis, x1 and x2 that vector: really different models."""
    x = torch.randn(64, 2, 2)
    outputs = {}
    for name, vector in (("sum", x.sum(1)), ("x1", x[:, 0]), ("x2", x[:, 1])):
        torch.manual_seed(0)  # the same weights for each choice
        model = synthetic.build(compose_config(["experiment=d5_canon", f"task.canonicalizer={name}"]))
        turned = G.rotate(-model.canonicalizer(x), vector)
        assert (turned[:, 1].abs() < 1e-5).all() and (turned[:, 0] > 0).all(), name
        outputs[name] = model(x)
    assert compose_config([]).task.canonicalizer == "sum"
    assert (outputs["sum"] - outputs["x1"]).abs().max() > 1e-3
    assert (outputs["sum"] - outputs["x2"]).abs().max() > 1e-3


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
    relabelled = execute(compose_config(["fast=true", "logger=none", "label=renamed"]), tmp_path)
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
    table = subprocess.run([sys.executable, "-m", "equi.report", "--runs", str(outputs / "runs"), "--include-fast"],
                           cwd=REPO, capture_output=True, text=True, check=True).stdout
    lines = table.splitlines()
    assert lines[0] == "| model | test_loss: ours, mean (std) | runs | paper |"
    assert lines[2].startswith("| Canon-MLP | ") and lines[2].endswith("| 2 | 0.41 (0.34) |")
    assert lines[3].startswith("| MLP | ") and lines[3].endswith("| 2 | 0.91 (0.82) |")
    zero = json.loads(next((outputs / "runs").glob("synthetic-vanilla-*/results.json")).read_text())
    zero["paper"], zero["label"], zero["run_key"] = 0.0, "Zero", "other"
    (outputs / "runs" / "zero").mkdir()
    (outputs / "runs" / "zero" / "results.json").write_text(json.dumps(zero))
    table = subprocess.run([sys.executable, "-m", "equi.report", "--runs", str(outputs / "runs"), "--include-fast",
                            "--paper-rows", "--where", "method.name=vanilla"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert [line.split(" | ")[0] for line in table.splitlines()[2:]] == ["| MLP"]  # the paper column is basu2023.yaml's:
    assert table.splitlines()[-1].endswith("| 0.91 (0.82) |")  # a run's own `paper` (Zero's 0.0) is not read
    others = subprocess.run([sys.executable, "-m", "equi.report", "--runs", str(outputs / "runs"), "--include-fast",
                             "--where", "method.name!=vanilla"],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert [line.split(" | ")[0] for line in others.splitlines()[2:]] == ["| Canon-MLP"]
    # a run whose overrides now compose into another run (older defaults) is left out, with a note
    overrides = next((outputs / "runs").glob("synthetic-vanilla-seed1-*")) / ".hydra" / "overrides.yaml"
    original = overrides.read_text()
    overrides.write_text(original.replace("seed=1", "seed=7"))
    stale = subprocess.run([sys.executable, "-m", "equi.report", "--runs", str(outputs / "runs"), "--include-fast",
                            "--paper-rows"], cwd=REPO, capture_output=True, text=True, check=True)
    assert "skipped 1 run(s) made with older defaults" in stale.stderr
    mlp = next(line for line in stale.stdout.splitlines() if line.startswith("| MLP |"))
    assert mlp.endswith("| 1 | 0.91 (0.82) |")  # one of its two seeds is left out
    overrides.write_text(original)
    twin = json.loads(next((outputs / "runs").glob("synthetic-vanilla-seed0-*/results.json")).read_text())
    twin["run_key"], twin["config"]["task"]["lr"] = "twin", 0.5  # other settings, same label and seed
    (outputs / "runs" / "twin").mkdir()
    (outputs / "runs" / "twin" / "results.json").write_text(json.dumps(twin))
    mixed = subprocess.run([sys.executable, "-m", "equi.report", "--runs", str(outputs / "runs"), "--include-fast",
                            "--paper-rows"], cwd=REPO, capture_output=True, text=True, check=True)
    assert "warning: row 'MLP' holds 3 runs for seeds [0, 1]" in mixed.stderr
    assert next(line for line in mixed.stdout.splitlines() if line.startswith("| MLP |")).endswith("| 3 | 0.91 (0.82) |")
    rerun = subprocess.run(cmd, cwd=REPO, env=env, check=True, capture_output=True, text=True, timeout=600)
    assert rerun.stdout.count("skip: finished run") == 4  # the planted rows are not runs of this sweep
