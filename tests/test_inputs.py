"""A run and its cached models are redone when the data or weights they read change: inputs are
fingerprinted (equi.inputs), recorded in results.json, and enter the keys of cached models;
cached artefacts are checked on load, and a damaged one is moved aside and made again."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

from equi import cache
from equi.config import compose_config, run_key
from equi.data.scan import SPLITS
from equi.errors import MissingAssetError
from equi.experiment import RESULTS, effective_config, execute_with_status
from equi.inputs import Fingerprints, adoptable
from equi.models import clip as clipmodels
from equi.tasks.clip import runner as cliptask
from equi.tasks.scan import runner as scan

from .conftest import REPO

TINY_SCAN = ["task=scan", "fast=true", "logger=none", "hardware.threads=1", "task.pretrain.examples=32"]


@pytest.fixture
def data(fixture_data, tmp_path, monkeypatch):
    """A copy of the fixture data folder that a test may change."""
    copy = tmp_path / "data"
    shutil.copytree(fixture_data, copy)
    monkeypatch.setenv("EQUI_DATA", str(copy))
    return copy


def run(overrides, tmp_path):
    cfg = compose_config(overrides)
    return execute_with_status(cfg, tmp_path / "runs" / "one")


def test_a_file_fingerprint_is_kept_by_path_size_and_mtime(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("abc")
    prints = Fingerprints(tmp_path / "cache")
    first = prints.file(path)
    assert not prints.known  # written within the clock's tick: hashed again on every look
    os.utime(path, (path.stat().st_atime - 60, path.stat().st_mtime - 60))
    assert prints.file(path) == first and prints.known
    prints.save()
    stat = path.stat()
    path.write_text("xyz")  # same size; the old mtime put back: taken as unchanged, as designed
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert Fingerprints(tmp_path / "cache").file(path) == first
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert Fingerprints(tmp_path / "cache").file(path) != first


def test_a_folder_fingerprint_covers_names_and_contents_but_not_hidden_files(tmp_path):
    (tmp_path / "d" / "a").mkdir(parents=True)
    (tmp_path / "d" / "a" / "x.jpg").write_bytes(b"1")
    (tmp_path / "d" / "y.jpg").write_bytes(b"2")

    def digest():
        return Fingerprints(tmp_path / "cache").folder(tmp_path / "d")

    before = digest()
    (tmp_path / "d" / ".fetch.lock").write_text("")
    assert digest() == before
    (tmp_path / "d" / "y.jpg").rename(tmp_path / "d" / "z.jpg")
    assert digest() != before


def test_a_changed_scan_file_redoes_the_run_and_only_then_its_pretrained_model(data, tmp_path, capsys):
    status, record = run(TINY_SCAN, tmp_path)
    assert status == "finished" and record["metrics"]["weights"] == "trained"
    train, test = (data / "scan" / f for f in SPLITS["add_jump"])
    assert record["inputs"] == {f"scan/{f.parent.name}/{f.name}": Fingerprints(tmp_path).file(f) for f in (train, test)}
    assert run(TINY_SCAN, tmp_path)[0] == "skipped"

    test.write_text("\n".join(test.read_text().splitlines()[:-1]) + "\n")  # one test example fewer
    status, record = run(TINY_SCAN, tmp_path)
    assert status == "finished" and record["metrics"]["weights"] == "cache"  # trained on the same file
    assert f"rerun: scan/add_prim_split/{test.name} changed since one finished" in capsys.readouterr().out

    train.write_text("\n".join(train.read_text().splitlines()[:-3]) + "\n")
    status, record = run(TINY_SCAN, tmp_path)
    assert status == "finished" and record["metrics"]["weights"] == "trained"
    assert len(list((tmp_path / "outputs" / "cache" / "scan").glob("*.pt"))) == 2
    assert run(TINY_SCAN, tmp_path)[0] == "skipped"


def test_a_rerun_that_cannot_start_leaves_the_finished_results_in_place(data, tmp_path, monkeypatch):
    finished = run(TINY_SCAN, tmp_path)[1]
    monkeypatch.setenv("EQUI_DATA", str(tmp_path / "nowhere"))  # the data gone, nothing fetched
    with pytest.raises(MissingAssetError):
        run(TINY_SCAN, tmp_path)
    monkeypatch.setenv("EQUI_DATA", str(data))
    assert run(TINY_SCAN, tmp_path) == ("skipped", finished)


def test_runs_and_checkpoints_made_before_inputs_were_recorded_keep_serving(data, tmp_path):
    status, record = run(TINY_SCAN, tmp_path)
    cfg = effective_config(compose_config(TINY_SCAN))
    folder = tmp_path / "outputs" / "cache" / "scan"
    [keyed] = folder.glob("*.pt")
    legacy = scan.checkpoint_file(cfg.task, 0, tmp_path / "outputs" / "cache")  # named by settings and seed alone
    for path in folder.iterdir():
        path.rename(folder / path.name.replace(keyed.stem, legacy.stem))
    results = tmp_path / "runs" / "one" / RESULTS
    old = {k: v for k, v in record.items() if k != "inputs"}
    results.write_text(json.dumps(old))

    assert run(TINY_SCAN, tmp_path) == ("skipped", {**old, "inputs": record["inputs"]})
    assert json.loads(results.read_text())["inputs"] == record["inputs"]  # taken over: stamped once
    results.unlink()
    assert run(TINY_SCAN, tmp_path)[1]["metrics"]["weights"] == "cache"  # the old checkpoint, under its new name
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [keyed.name, keyed.name + ".sha256"]


def test_a_record_from_before_inputs_stands_only_for_the_weights_it_ran_with():
    standin = {"metrics": {"weights": "standin (cache; upright CIFAR-10 zero-shot 40.0%)"}}
    real = {"metrics": {"weights": "RN50/openai (/root/.cache/clip/RN50.pt)"}}
    assert adoptable(standin, {"cifar10": "x", "weights": "standin"})
    assert not adoptable(standin, {"cifar10": "x", "weights": "RN50/openai sha256:0123"})
    assert adoptable(real, {"weights": "RN50/openai sha256:0123"})
    assert adoptable({"metrics": {"weights": "trained"}}, {"scan/x.txt": "sha256:1"})  # no weights to choose


def test_the_stand_ins_recipe_keys_only_the_runs_that_name_it_and_auto_runs_through_their_inputs(data, tmp_path):
    """Runs on real weights keep their keys when the stand-in's recipe changes; runs that name the
    stand-in get new keys (older ones are stale to the report); weights=auto runs on the stand-in
    keep theirs and are redone, since their inputs name it by its file (recipe and data)."""
    overrides = ["task=clip", "method=equitune", "fast=true", "logger=none", "hardware.threads=1"]
    changed = overrides + ["task.standin.lr=1e-3"]
    for weights, same in (("auto", True), ("pretrained", True), ("random", True), ("standin", False)):
        chosen = [f"task.weights={weights}"]
        assert (run_key(compose_config(overrides + chosen)) == run_key(compose_config(changed + chosen))) == same
    assert run_key(compose_config(overrides)) != run_key(compose_config(overrides + ["task.lambda_stage.lr=0.1"]))
    status, first = run(overrides, tmp_path)
    assert status == "finished" and run(overrides, tmp_path)[0] == "skipped"
    status, second = run(changed, tmp_path)
    assert status == "finished" and first["inputs"]["weights"] != second["inputs"]["weights"]
    assert second["inputs"]["weights"].startswith("standin standin-seed0-")


def test_weights_planted_for_auto_redo_the_clip_run(data, tmp_path, monkeypatch):
    overrides = ["task=clip", "method=equitune", "fast=true", "logger=none", "hardware.threads=1"]
    status, record = run(overrides, tmp_path)
    assert status == "finished" and record["inputs"]["weights"].startswith("standin standin-seed0-")
    assert run(overrides, tmp_path)[0] == "skipped"

    planted = tmp_path / "RN50.pt"  # a tiny model under the name open_clip's cache would give RN50/openai
    tower = OmegaConf.to_container(compose_config(overrides).task.standin.model, resolve=True)
    model = clipmodels.standin_clip(tower)
    torch.save(model.state_dict(), planted)
    monkeypatch.setattr(cliptask, "cached_weights", lambda name, tag: str(planted))

    def load_pretrained(name, tag, checkpoint, download):
        planted_model = clipmodels.standin_clip(tower)
        planted_model.load_state_dict(torch.load(planted))
        return planted_model, str(planted)

    monkeypatch.setattr(cliptask, "load_pretrained", load_pretrained)
    status, record = run(overrides, tmp_path)
    assert status == "finished" and record["metrics"]["weights"] == f"RN50/openai ({planted})"
    assert record["inputs"]["weights"] == f"RN50/openai {Fingerprints(tmp_path).file(planted)}"
    assert run(overrides, tmp_path)[0] == "skipped"
    torch.nn.init.zeros_(model.visual.attnpool.c_proj.weight)  # other weights in the same file
    torch.save(model.state_dict(), planted)
    assert run(overrides, tmp_path)[0] == "finished"


def test_cached_artefacts_are_checked_and_a_damaged_one_is_moved_aside(tmp_path, capsys):
    path = tmp_path / "a.pt"
    cache.save_atomically(path, lambda tmp: torch.save({"x": 1}, tmp))
    assert cache.load_cached(path, torch.load) == {"x": 1}
    path.write_bytes(path.read_bytes()[:-5])
    assert cache.load_cached(path, torch.load) is None
    assert not path.exists() and (tmp_path / "a.pt.corrupt").exists() and not cache.check_file(path).exists()
    assert "note: cached" in capsys.readouterr().out

    legacy = tmp_path / "b.pt"  # saved before sizes and hashes were kept beside artefacts
    torch.save({"y": 2}, legacy)
    assert cache.load_cached(legacy, torch.load) == {"y": 2} and cache.check_file(legacy).exists()
    legacy.unlink()
    cache.check_file(legacy).unlink()
    legacy.write_bytes(b"garbage, not a zip archive")
    assert cache.load_cached(legacy, torch.load) is None and (tmp_path / "b.pt.corrupt").exists()


def cli(*args, env=None):
    return subprocess.run([sys.executable, "run.py", *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("task,damage", [
    ("scan", lambda cache_dir: next((cache_dir / "scan").glob("*.pt"))),  # a truncated checkpoint
    ("cnn", lambda cache_dir: next((cache_dir / "cifar").glob("train-*.pt"))),  # garbage in decoded images
])
def test_a_damaged_cache_is_noted_in_one_line_and_the_next_run_succeeds_by_itself(task, damage, data, tmp_path):
    args = TINY_SCAN if task == "scan" else ["task=cnn", "fast=true", "logger=none", "hardware.threads=1"]
    first = cli(*args)
    assert first.returncode == 0, first.stderr
    path = damage(tmp_path / "outputs" / "cache")
    if task == "scan":
        path.write_bytes(path.read_bytes()[:1000])
    else:
        path.write_bytes(os.urandom(path.stat().st_size))
    again = cli(*args, "force=true")
    assert again.returncode == 0, again.stderr
    notes = [line for line in again.stdout.splitlines() if line.startswith("note: cached")]
    assert notes == [f"note: cached {path} is damaged (its size or sha256 is not the one saved in {path.name}.sha256); "
                     f"moved it to {path.name}.corrupt and making it again"]
    assert path.exists() and path.with_name(path.name + ".corrupt").exists()
    assert cli(*args, "force=true").stdout.count("note: cached") == 0
