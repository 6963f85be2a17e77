"""The cnn task's rows of `python run.py assets`: its data and weights, where, and how to get them."""

from __future__ import annotations

from omegaconf import DictConfig

import shlex

from ...assets import Asset, cached, dataset
from ...data.download import online
from ...models.cnn import IMAGENET_WEIGHTS, imagenet_weights_file


def assets(cfg: DictConfig) -> list[Asset]:
    rows = [dataset(cfg, "cifar10", cfg.task.data_root)]
    for model, weights in IMAGENET_WEIGHTS.items():
        path = imagenet_weights_file(model)
        rows.append(Asset(f"ImageNet {model} weights", path, path.exists(),
                          f"curl -fL --create-dirs -o {shlex.quote(str(path))} {weights.url}",
                          "optional: task.weights=auto trains from scratch without them", licence="BSD-3-Clause (torchvision)",
                          fetchable=not path.exists() and cfg.download and online(weights.url)))
    rows += [cached(cfg, f"CIFAR-10 {model} from scratch", "cnn", f"{model}-scratch-*.pt", "make pretrain-cnn")
             for model in cfg.task.pretrain]
    return rows
