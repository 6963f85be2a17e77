"""The scan task's rows of `python run.py assets`: its data and weights, where, and how to get them."""

from __future__ import annotations

from omegaconf import DictConfig

from ...assets import Asset, cached, dataset


def assets(cfg: DictConfig) -> list[Asset]:
    rows = [dataset(cfg, "scan")]
    rows.append(cached(cfg, "pretrained seq2seq models", "scan", "*.pt",
                       f"python run.py task=scan task.split={cfg.task.split} method=vanilla"))
    return rows
