"""SCAN's finetuning recipes: the paper scripts' (one-example Adam steps, weight decay 1e-4, a rate
per method and split: task.finetune.lr=paper) and ours (batches of 32 at 5e-4)."""

from __future__ import annotations

import subprocess

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from equi.config import check_cli, compose_config, run_key
from equi.experiment import execute
from equi.tasks import scan

from .conftest import REPO

PAPER_RECIPE = ["task.finetune.batch_size=1", "task.finetune.weight_decay=1e-4", "task.finetune.lr=paper"]


@pytest.mark.parametrize("experiment,split,rate", [
    ("vanilla", "add_jump", 5e-5), ("vanilla", "around_right", 5e-5),  # no script: the scripts' default
    ("equitune", "add_jump", 2e-5), ("equitune", "around_right", 5e-5),  # equitune_test_*.sh
    ("equitune_finetune_stepwise", "add_jump", 2e-5), ("equitune_finetune_stepwise", "around_right", 5e-5),
    ("equizero", "add_jump", 5e-5), ("equizero", "around_right", 2e-5),  # equizero_scan.py's comment
])
def test_lr_paper_is_the_rate_of_the_papers_script_for_the_method_and_split(experiment, split, rate):
    name = experiment if experiment.endswith("stepwise") else f"{experiment}_finetune"
    cfg = compose_config([f"experiment=scan_lstm_{name}", f"task.split={split}", *PAPER_RECIPE])
    settings = scan.finetune_settings(cfg.task, cfg.method)
    assert (settings.lr, settings.batch_size, settings.weight_decay, settings.examples) == (rate, 1, 1e-4, 10000)


def test_lr_paper_without_a_papers_rate_is_one_line_before_any_work(tmp_path):
    cfg = compose_config(["task=scan", "method=lambda", "task.finetune.examples=10", "task.finetune.lr=paper"])
    with pytest.raises(Exception, match=r"^task.finetune.lr=paper: the paper has no finetuning rate for lambda on "
                                        r"add_jump \(task.paper_finetune_lr\); give task.finetune.lr a number$"):
        scan.finetune_settings(cfg.task, cfg.method)
    zero_shot = compose_config(["task=scan", "method=lambda", "task.finetune.lr=paper"])
    assert scan.finetune_settings(zero_shot.task, zero_shot.method).lr == "paper"  # nothing to finetune


@pytest.mark.parametrize("override,message", [
    ("task.finetune.lr=papr", "task.finetune.lr must be a number > 0, or one of paper, got 'papr'"),
    ("task.finetune.weight_decay=-1", "task.finetune.weight_decay must be a number ≥ 0, got -1"),
    ("task.paper_finetune_lr.equitune.add_jump=0", "task.paper_finetune_lr.equitune.add_jump must be a number > 0, got 0"),
])
def test_bad_recipe_settings_are_one_line(override, message):
    assert check_cli(["task=scan", override]) == message


def test_our_recipe_keeps_the_run_keys_it_had():
    assert run_key(compose_config(["experiment=scan_lstm_equitune_finetune"])) == "b60920476a"  # before weight_decay
    assert run_key(compose_config(["task=scan"])) == run_key(compose_config(["task=scan", "task.finetune.weight_decay=0"]))
    changed = compose_config(["task=scan", "task.paper_finetune_lr.equitune.add_jump=1e-3"])
    assert run_key(changed) == run_key(compose_config(["task=scan"]))  # the table counts only when lr=paper
    paper = compose_config(["experiment=scan_lstm_equitune_finetune", *PAPER_RECIPE])
    assert run_key(paper) != run_key(OmegaConf.merge(paper, {"task": {"paper_finetune_lr": {"equitune": {
        "add_jump": 1e-3}}}}))


def test_weight_decay_reaches_adam():
    """A loss that is zero everywhere: only the L2 term of weight_decay moves the weights."""
    for decay, moves in ((0.0, False), (1e-2, True)):
        model = nn.Linear(3, 2)
        before = [p.detach().clone() for p in model.parameters()]
        settings = OmegaConf.create({"examples": 8, "batch_size": 4, "lr": 0.1, "schedule": "constant", "clip": 5.0,
                                     "weight_decay": decay})
        scan.optimise(model, lambda idx, gen: 0.0 * sum(p.sum() for p in model.parameters()), 10, settings, 0, "t")
        assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters())) == moves


def test_a_paper_recipe_run_records_its_rate(tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("EQUI_DATA", str(shared_data))
    record = execute(compose_config(["experiment=scan_lstm_equizero_finetune", "task.split=around_right", "fast=true",
                                     "logger=none", "task.fast.pretrain.examples=64", "task.finetune.examples=6",
                                     *PAPER_RECIPE]), tmp_path)
    assert record["metrics"]["finetune_lr"] == 2e-5
    assert record["config"]["task"]["finetune"]["lr"] == "paper"


def make_dry(*variables: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-n", "table-scan-finetune", "SCAN_SEEDS=0", *variables], cwd=REPO,
                          capture_output=True, text=True)


def test_the_finetuning_tables_take_the_papers_recipe_unless_told_ours():
    paper, ours = make_dry().stdout, make_dry("SCAN_FINETUNE=ours").stdout
    assert " ".join(PAPER_RECIPE) in paper and "--where task.finetune.batch_size=1 " in paper
    assert "task.finetune.lr=paper" not in ours and "--where task.finetune.batch_size!=1 " in ours
    assert "table_scan_finetune_lstm.md" in paper and "table_scan_finetune_lstm_our_recipe.md" in ours
    bad = make_dry("SCAN_FINETUNE=papr")
    assert bad.returncode == 2
    assert "SCAN_FINETUNE=papr is not a SCAN finetuning recipe; choose paper or ours" in bad.stderr
