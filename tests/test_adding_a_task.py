"""docs/adding-a-task.md, proved: a task registered from this file alone (its runner, rules and
asset rows here, its config in a copy of conf/ with one file added) runs, is validated, and is
listed by `python run.py assets`, with nothing else in the repository touched."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig
from torch import nn

from equi import assets, config, methods, tasks
from equi.assets import Asset
from equi.config import check_cli, compose_config
from equi.experiment import execute
from equi.groups import rot90
from equi.schema import BATCH, Choice, Rule, up_to

TOY_YAML = """\
# A toy: a random linear classifier of 8x8 images, made invariant to quarter turns.
defaults:
  - override /method@_global_.method: equitune
  - _self_
name: toy
methods: [vanilla, equitune, equizero]
metric: invariance_gap   # largest change of the logits when the images turn
images: 16
side: 8
default_proxy: entropy
fast: {images: 4}
"""
RULES: dict[str, Rule] = {"images": BATCH, "side": up_to(64, low=2), "default_proxy": Choice(("entropy", "neg_max_prob"))}


def run(cfg: DictConfig, ctx) -> dict:
    """The toy task's runner: a random classifier, wrapped by the method, checked on turned images."""
    task = cfg.task
    generator = torch.Generator().manual_seed(cfg.seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(task.side * task.side, 3))
    images = torch.randn(task.images, 1, task.side, task.side, generator=generator)
    net = methods.wrap(cfg.method, model, group=rot90(), invariant=True, default_proxy=task.default_proxy)
    with torch.no_grad():
        gap = (net(images) - net(torch.rot90(images, 1, (2, 3)))).abs().max().item()
    return {"invariance_gap": gap, "images": task.images}


def asset_rows(cfg: DictConfig) -> list[Asset]:
    """The toy task's rows of `python run.py assets` (it reads no files: a task like it may have none)."""
    return [Asset("toy images (drawn in the run)", Path(cfg.paths.data) / "toy", True, "")]


@pytest.fixture
def toy(tmp_path, monkeypatch):
    conf = tmp_path / "conf"
    shutil.copytree(config.CONF_DIR, conf)
    (conf / "task" / "toy.yaml").write_text(TOY_YAML)
    monkeypatch.setattr(config, "CONF_DIR", conf)
    monkeypatch.setitem(tasks.REGISTRY, "toy", tasks.Task(name="toy", runner=__name__, rules=RULES,
                                                          assets=f"{__name__}:asset_rows"))
    return tmp_path


def test_a_new_task_runs_through_the_shared_operator(toy):
    records = {m: execute(compose_config(["task=toy", f"method={m}", f"paths.outputs={toy}", "logger=none"]),
                          toy / m) for m in ("vanilla", "equitune", "equizero")}
    assert records["vanilla"]["metrics"]["invariance_gap"] > 1e-3
    assert records["equitune"]["metrics"]["invariance_gap"] < 1e-5
    assert records["equizero"]["metrics"]["invariance_gap"] < 1e-5
    assert (toy / "equitune" / "results.json").exists()


def test_a_new_task_is_validated_like_the_others(toy):
    assert check_cli(["task=toy", "task.images=0"]) == "task.images must be an integer in [1, 100000], got 0"
    assert check_cli(["task=toy", "task.sides=3"]) == "unknown config key 'task.sides' (did you mean 'task.side'?)"
    assert check_cli(["task=toy", "method=lambda"]) == (
        "task 'toy' does not support method 'lambda'; supported: vanilla, equitune, equizero")
    assert check_cli(["task=toy", "fast=true"]) is None


def test_a_new_task_appears_in_the_asset_report(toy, capsys):
    assert assets.report([f"paths.data={toy}", f"paths.outputs={toy / 'out'}"]) == 0
    assert re.search(r"\n\s*toy\s+toy images \(drawn in the run\)\s+present", capsys.readouterr().out)
