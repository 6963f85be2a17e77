"""Temporary: the metrics of fast runs of every training loop, written to $NUMBERS_OUT (not committed)."""
import json
import os

import pytest

from equi.config import compose_config
from equi.experiment import execute

RUNS = {
    "synthetic-canon": ["task=synthetic", "method=canonical_lambda"],
    "synthetic-equitune": ["task=synthetic", "method=equitune"],
    "scan-lambda-ft": ["task=scan", "method=lambda", "task.finetune.examples=64", "task/scan/pretrain=paper",
                       "task.pretrain.examples=300"],
    "scan-equitune-ft": ["task=scan", "method=equitune", "task.finetune.examples=64", "task/scan/finetune=paper"],
    "cnn-lambda": ["task=cnn", "method=lambda"],
    "cnn-paper-lambda": ["task=cnn", "method=lambda", "task.protocol=paper"],
    "clip-lambda-ft": ["task=clip", "method=lambda", "task.weights=standin", "task.finetune.steps=3",
                       "task.dataset=cifar10"],
}


@pytest.mark.skipif("NUMBERS_OUT" not in os.environ, reason="probe")
def test_probe(tmp_path):
    out = {}
    for name, overrides in RUNS.items():
        record = execute(compose_config([*overrides, "fast=true", "logger=none"]), tmp_path / name)
        out[name] = {k: v for k, v in record["metrics"].items() if not k.endswith("_s")}
    with open(os.environ["NUMBERS_OUT"], "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)


@pytest.mark.skipif("NUMBERS_OUT" not in os.environ, reason="probe")
def test_probe_scan_loop():
    import torch
    from omegaconf import OmegaConf

    from equi.tasks.scan import runner as scan

    out = {}
    for schedule, wd in (("cosine", 0.0), ("constant", 1e-4)):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
        data = torch.randn(50, 4, generator=torch.Generator().manual_seed(1))
        seen = []

        def batch_loss(idx, gen):
            noise = torch.randn(len(idx), 1, generator=gen)
            return ((model(data[idx]) - noise) ** 2).mean()

        settings = OmegaConf.create({"examples": 200, "batch_size": 8, "lr": 0.05, "schedule": schedule, "clip": 0.5,
                                     "clip_scope": "model", "weight_decay": wd})
        scan.optimise(model, batch_loss, len(data), settings, 3, "probe", seen.append, 64)
        out[schedule] = [float(sum(p.double().sum() for p in model.parameters())), seen]
    with open(os.environ["NUMBERS_OUT"] + ".scan", "w") as f:
        json.dump(out, f, sort_keys=True)
