"""The rehearsal of the real-CLIP-weight path (equi.paper.rehearsal): random RN50 weights planted in
the Hugging Face cache where open_clip fetches the `openai` tag, and random CIFAR-100 / ImageNet-V2
folders, carry the paper targets' commands end to end in fresh processes (the hub's variables are
read at import), with the weights found by open_clip's own hub lookup and named in results.json."""

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from equi.data import catalog, imagesets
from equi.paper import rehearsal

from .conftest import REPO

CLIP_RUN = ["run.py", "task=clip", "task.weights=pretrained", "task.pretrained=openai", "task.model=RN50",
            "fast=true", "logger=none"]
LAMBDA_RUN = [*CLIP_RUN, "task.dataset=cifar100", "method=lambda", "task.transform=rot90",
              "task.lambda_stage.steps=1", "task.lambda_stage.batch_size=2"]  # fast=true's λ stage is 3 steps of 8


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """RN50 and both datasets (one image of each of the first 4 classes) planted once for the module."""
    root = tmp_path_factory.mktemp("rehearsal")
    try:
        env = rehearsal.plant(root, models=("RN50",), per_class=1, classes=4, templates=1)
    except (ImportError, RuntimeError) as err:  # open_clip cannot build RN50 here
        pytest.skip(f"cannot build open_clip RN50: {err}")
    return root, env


def run(env: dict, args: list[str], timeout: int = 240) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "EQUI_", "REHEARSAL_"))}
    return subprocess.run([sys.executable, *args], cwd=REPO, env={**environ, **env}, capture_output=True, text=True,
                          timeout=timeout)


def results(root: Path, dataset: str, method: str) -> dict:
    found = [json.loads(p.read_text()) for p in (root / "outputs" / "runs").glob(f"clip-{method}-*/results.json")]
    found = [r for r in found if r["metrics"]["dataset"] == dataset]
    assert len(found) == 1, found
    return found[0]


def snapshot(env: dict) -> Path:
    """The file open_clip's `RN50`/`openai` resolves to in the hub cache: its repo's refs/main snapshot."""
    repo = Path(env["HF_HUB_CACHE"]) / "models--timm--resnet50_clip.openai"
    return repo / "snapshots" / (repo / "refs" / "main").read_text() / "open_clip_model.safetensors"


def test_plant_lays_out_open_clips_hub_cache_and_the_releases(planted):
    root, env = planted
    assert set(env) == {"HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "EQUI_DATA", "EQUI_OUTPUTS", "EQUI_DOWNLOAD",
                        "PYTHONPATH", "REHEARSAL_TEMPLATES"}
    assert (env["HF_HUB_CACHE"], env["HF_HUB_OFFLINE"], env["EQUI_DATA"], env["EQUI_OUTPUTS"]) == (
        str(root / "hf" / "hub"), "1", str(root / "data"), str(root / "outputs"))
    assert len(snapshot(env).parent.name) == 40 and snapshot(env).is_file()
    for dataset in ("cifar100", "imagenetv2"):
        assert imagesets.missing(dataset, root / "data" / catalog.DATASETS[dataset].folder) is None
    planted_at = snapshot(env).stat().st_mtime_ns
    assert rehearsal.plant(root, models=("RN50",), per_class=1, classes=4, templates=1) == env
    assert snapshot(env).stat().st_mtime_ns == planted_at  # a rerun keeps what is planted


def test_open_clip_and_the_asset_check_find_the_planted_weights_offline(planted):
    """open_clip's own `pretrained="openai"` (hf_hub_download, offline) loads the planted file; the
    paper targets' asset check passes for both datasets."""
    root, env = planted
    script = """
import json, sys
import open_clip
from safetensors.torch import load_file
from open_clip.pretrained import download_pretrained
from equi.tasks.clip import check_assets
path = download_pretrained(open_clip.get_pretrained_cfg("RN50", "openai"))
model, _, _ = open_clip.create_model_and_transforms("RN50", pretrained="openai")
stored = load_file(path)["visual.conv1.weight"]
print(json.dumps({"path": path, "same": bool((model.visual.conv1.weight == stored).all()),
                  "checks": [check_assets.main(["--models", "RN50", "--dataset", d]) for d in ("cifar100", "imagenetv2")]}))
"""
    done = run(env, ["-c", script])
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["path"] == str(snapshot(env)) and out["same"]
    assert out["checks"] == [0, 0], done.stderr


def test_lambda_on_cifar100_runs_on_the_planted_weights(planted):
    root, env = planted
    done = run(env, LAMBDA_RUN)
    assert done.returncode == 0, done.stderr[-3000:]
    record = results(root, "cifar100", "lambda")
    planted_file = snapshot(env)
    digest = hashlib.sha256(planted_file.read_bytes()).hexdigest()[:16]
    assert record["inputs"]["weights"] == f"RN50/openai sha256:{digest}"
    assert record["metrics"]["weights"] == f"RN50/openai ({planted_file})"  # cached_weights: the hub cache's lookup
    assert record["metrics"]["test_images"] == 4 and "upright_weight" in record["metrics"]


def test_zero_shot_on_imagenetv2_runs_on_the_planted_weights(planted):
    root, env = planted
    done = run({**env, "REHEARSAL_TEMPLATES": "0"}, [*CLIP_RUN, "task.dataset=imagenetv2", "method=vanilla"])
    assert done.returncode == 0, done.stderr[-3000:]
    record = results(root, "imagenetv2", "vanilla")
    assert record["inputs"]["weights"].startswith("RN50/openai sha256:") and "imagenetv2" in record["inputs"]
    assert record["metrics"]["test_images"] == 4


def test_without_the_planted_file_the_run_stops_at_once_naming_where_it_goes(planted, tmp_path):
    root, env = planted
    empty = {**env, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(tmp_path / "hf" / "hub")}
    start = time.perf_counter()
    done = run(empty, LAMBDA_RUN, timeout=60)
    assert done.returncode == 2, done.stderr[-3000:]
    assert time.perf_counter() - start < 30
    error = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "CLIP weights RN50/openai are not cached: put them at " in error[0], done.stderr
    assert f"{tmp_path / 'hf' / 'hub'}/models--timm--resnet50_clip.openai" in error[0]
