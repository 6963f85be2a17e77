"""Our protocol for pretrained CNNs on rot90-CIFAR10 (paper §5.2.2, Figures 5b and 11b).

The classifier is made invariant to quarter turns by the shared operator: equitune
averages the logits of the 4 rotated copies, equizero keeps the copy with the lowest
proxy loss (entropy or −max probability), λ-equitune weights the copies by a λ-network
over the backbone's features. Zero-shot accuracy, then a finetuning curve on rot90
training images (all layers, or the last two for linear probing).
"""

from __future__ import annotations

import time

import torch
from omegaconf import DictConfig
from torch import nn

from ... import methods
from ...data import cifar
from ...groups import image
from ...models.cnn import Classifier
from ..context import RunContext
from .toolkit import evaluate, fit, load, pretrained, upright_share


def finetuned_part(model: Classifier, layers: str) -> nn.Module:
    """What finetuning trains: the whole classifier (all), or its last two layers (last2: linear probing)."""
    return model if layers == "all" else model.probe


def train_mode(model: Classifier, part: nn.Module) -> None:
    """Only `part` in training mode: frozen layers keep their batch-norm statistics and no dropout."""
    model.eval()
    part.train()


def run(cfg: DictConfig, ctx: RunContext) -> dict:
    task, method = cfg.task, cfg.method
    test_images, test_labels = load(task, ctx, "test", task.eval_per_class)  # first: a bad image stops the run
    train_images, train_labels = load(task, ctx, "train", task.train_per_class)  # before any training
    start = time.perf_counter()
    model, source = pretrained(task, ctx)
    pretrain_s = time.perf_counter() - start
    upright = evaluate(model, cifar.normalize(test_images, model.stats), test_labels, task.eval_batch, ctx.device, "upright test")[0]
    test_turns = cifar.quarter_turns(len(test_images), task.rotation_seed)  # the same for every method and seed
    test_x = cifar.normalize(cifar.rotate(test_images, test_turns), model.stats)
    kind = methods.method_of(method)
    encoder = model.backbone if kind.trains_lambda else None  # λ reads the backbone's features
    head = model.head if kind.trains_lambda else model
    net = methods.wrap(method, head, group=image.rot90(), invariant=True, encoder=encoder,
                       feature_dim=model.feature_dim, default_proxy=task.default_proxy)
    net = net.to(ctx.device)
    generator = torch.Generator().manual_seed(cfg.seed)
    desc = f"{task.model} {method.name} seed {cfg.seed}"
    model.requires_grad_(False)
    if kind.trains_lambda:  # paper D.4: train λ with the backbone frozen, then freeze λ
        model.eval()
        fit(net, list(net.weighting.parameters()), train_images, train_labels, task.lambda_stage, generator,
            ctx.device, f"{desc}: λ-network", rotated=True, stats=model.stats)
        net.weighting.requires_grad_(False).eval()

    part = finetuned_part(model, task.finetune.layers)
    part.requires_grad_(True)
    curve: list[float] = []
    weights = None

    def record(epoch: int) -> None:
        nonlocal weights
        accuracy, weights = evaluate(net, test_x, test_labels, task.eval_batch, ctx.device, f"{desc}: test")
        curve.append(accuracy)
        ctx.logger.log({"test_accuracy": accuracy, "epoch": epoch})
        train_mode(model, part)

    record(0)
    params = list(part.parameters())
    fit(net, params, train_images, train_labels, task.finetune, generator, ctx.device, f"{desc}: finetune",
        rotated=True, stats=model.stats, after_epoch=record)
    metrics = {
        "zero_shot_accuracy": curve[0],
        "test_accuracy": curve[-1],
        "curve": curve,
        "model": task.model,
        "weights": source,
        "upright_test_accuracy": upright,
        "finetune_layers": task.finetune.layers,
        "finetune_epochs": task.finetune.epochs,
        "proxy": kind.proxy(method, task.default_proxy),
        "test_images": len(test_x),
        "pretrain_s": round(pretrain_s, 1),
    }
    if weights is not None:
        metrics["upright_weight"], metrics["upright_argmax_rate"] = upright_share(weights, test_turns)
        shown = torch.linspace(0, len(test_x) - 1, task.lambda_examples).long().tolist()  # across classes
        metrics["weight_examples"] = {"index": shown, "turns": test_turns[shown].tolist(),
                                      "weights": weights[:, shown].T.tolist()}
    return metrics
