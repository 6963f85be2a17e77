"""The clip task's rows of `python run.py assets`: its data and weights, where, and how to get them."""

from __future__ import annotations

from omegaconf import DictConfig

from pathlib import Path

from ...assets import Asset, cached, dataset
from ...data import imagesets
from ...models.clip import MODELS, cached_weights, weights_reachable, where_weights_go


def assets(cfg: DictConfig, models=MODELS, datasets=imagesets.DATASETS) -> list[Asset]:
    """The CLIP backbones' weights (the paper's four), the datasets, and the offline stand-in;
    `make fig…` checks its own models and dataset with these rows before any work."""
    rows = []
    for model in models:
        path = cached_weights(model, cfg.task.pretrained)
        rows.append(Asset(f"CLIP {model}/{cfg.task.pretrained} weights",
                          Path(path or where_weights_go(model, cfg.task.pretrained)), path is not None,
                          f"python run.py task=clip task.weights=pretrained task.model={model}  # where a network exists",
                          "optional: task.weights=auto uses the stand-in without them", licence="MIT (OpenAI CLIP)",
                          fetchable=path is None and cfg.download and weights_reachable(model, cfg.task.pretrained)))
    for name in datasets:
        rows.append(dataset(cfg, name, cfg.task.data_root if name == cfg.task.dataset else None))
    if tuple(models) == MODELS and tuple(datasets) == imagesets.DATASETS:
        rows.append(cached(cfg, "offline stand-in CLIP", "clip", "standin-*.pt", "make pretrain-clip"))
    return rows
