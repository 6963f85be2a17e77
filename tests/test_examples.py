"""examples/rotated_cifar10.py: its --fast run on the fixture data (the wrapped models' accuracy is the
same upright and rotated), with a cached trunk, and its one-line error without CIFAR-10."""

import os
import re
import subprocess
import sys
from pathlib import Path

import torch

from equi.models.cnn import cifar_model

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "rotated_cifar10.py"
ROW = re.compile(r"^\| (.+?) \| (\d+\.\d+) \| (\d+\.\d+) \|$", re.M)  # | method | upright | rotated |


def run_example(*args: str, outputs: Path) -> subprocess.CompletedProcess:
    # one thread: the --fast batches are tiny, and two threads crawl on a shared 2-core machine
    env = {**os.environ, "EQUI_OUTPUTS": str(outputs), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=120)


def table(stdout: str) -> dict[str, tuple[float, float]]:
    return {label: (float(upright), float(rotated)) for label, upright, rotated in ROW.findall(stdout)}


def assert_invariant_rows(result: subprocess.CompletedProcess) -> dict[str, tuple[float, float]]:
    assert result.returncode == 0, result.stderr[-3000:]
    rows = table(result.stdout)
    assert [label.split(" (")[0] for label in rows] == ["vanilla", "equitune", "equizero", "λ-equitune", "λ-equitune"]
    for label, (upright, rotated) in rows.items():
        if label != "vanilla":  # invariant to quarter turns: the same predictions, so the same accuracy
            assert rotated == upright, f"{label}: {upright}% upright but {rotated}% rotated\n{result.stdout}"
    assert [line.split(":")[0].strip() for line in result.stdout.splitlines() if ": ok under rot90 (largest change" in line] == [
        "equitune", "equizero", "λ-equitune"], result.stdout
    assert "wall time: " in result.stdout
    return rows


def test_fast_run_trains_a_convnet_and_wrapped_models_are_rot90_invariant(fixture_data, tmp_path):
    result = run_example("--fast", "--data", str(fixture_data), outputs=tmp_path / "outputs")
    rows = assert_invariant_rows(result)
    assert "a small ConvNet trained here on upright CIFAR-10" in result.stdout
    upright, rotated = rows["vanilla"]
    assert rotated < upright, result.stdout  # trained on upright images (the fixture's stripes): rotation hurts it


def test_fast_run_uses_the_cached_trunk(fixture_data, tmp_path):
    cache = tmp_path / "outputs" / "cache" / "cnn"
    cache.mkdir(parents=True)
    torch.save({"state_dict": cifar_model("resnet18").state_dict()}, cache / "resnet18-scratch-seed0-0123456789.pt")
    result = run_example("--fast", "--data", str(fixture_data), outputs=tmp_path / "outputs")
    assert_invariant_rows(result)
    assert "the CIFAR-10 ResNet cached by `make pretrain-cnn` (resnet18-scratch-seed0-0123456789.pt)" in result.stdout


def test_missing_data_is_one_line_and_exit_2(tmp_path):
    result = run_example("--fast", "--data", str(tmp_path / "nowhere"), outputs=tmp_path / "outputs")
    assert result.returncode == 2
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert lines == [f"error: CIFAR-10 not found at {tmp_path / 'nowhere' / 'cifar10'}; "
                     "run make data DATA=cifar10 or pass --data"]
