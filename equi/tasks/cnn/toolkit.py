"""What both CNN protocols share: CIFAR-10 loading, the pretrained trunks (ImageNet weights adapted
to CIFAR-10, or trained from scratch on upright images; cached), training and evaluation loops."""

from __future__ import annotations

from typing import Callable

import torch
from omegaconf import DictConfig
from torch import nn

from ... import distributed, hardware, training
from ...cache import checkpoint_path, load_cached, save_atomically
from ...data import cifar, imagesets
from ...data.download import online
from ...errors import MissingAssetError, blame_user
from ..context import RunContext
from ...models.cnn import (IMAGENET_WEIGHTS, Classifier, cifar_model, imagenet_model, imagenet_state_dict,
                          imagenet_weights_file)


def fit(net: nn.Module, params: list[nn.Parameter], images: torch.Tensor, labels: torch.Tensor,
        settings: DictConfig, generator: torch.Generator, device, desc: str, rotated: bool, stats: tuple,
        after_epoch: Callable[[int], None] = lambda epoch: None) -> None:
    """SGD (or Adam) on cross-entropy of logits over mini-batches of cropped, mirrored images
    (standardised with `stats`, the network's own),
    gradients clipped at norm 5; with `rotated`, each image is turned by a quarter-turn count
    re-drawn every epoch. An epoch is `examples_per_epoch` images drawn without replacement (null: all).
    Under DDP every rank draws the same batches and trains on its part of each."""
    if settings.epochs == 0:
        return
    train_net = distributed.wrap_ddp(net)
    per_epoch = min(settings.examples_per_epoch or len(images), len(images))
    steps = settings.epochs * -(-per_epoch // settings.batch_size)
    opt = training.optimizer(params, settings.optimizer, settings.lr, weight_decay=settings.weight_decay, nesterov=True)
    decay = training.schedule(opt, settings.schedule, steps, settings.lr)
    for epoch in range(1, settings.epochs + 1):
        chosen = torch.randperm(len(images), generator=generator)[:per_epoch]
        turns = cifar.quarter_turns(per_epoch, int(torch.randint(2**31, (1,), generator=generator)))

        def loss_of(i: int) -> torch.Tensor:
            idx = chosen[i : i + settings.batch_size]
            x = cifar.augment(images[idx], generator)
            if rotated:
                x = cifar.rotate(x, turns[i : i + settings.batch_size])
            with hardware.autocast():
                logits = train_net(cifar.normalize(hardware.to_device(distributed.my_part(x), device), stats))
                return nn.functional.cross_entropy(logits, hardware.to_device(distributed.my_part(labels[idx]), device),
                                                   label_smoothing=settings.label_smoothing)

        training.train(loss_of, range(0, per_epoch, settings.batch_size), opt, desc=f"{desc} epoch {epoch}",
                       unit="batch", clip_groups=[params], clip=5.0, decay=decay, show_every=20)
        after_epoch(epoch)


@torch.no_grad()
def evaluate(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int, device,
             desc: str) -> tuple[float, torch.Tensor | None]:
    """Accuracy (%) on normalised `images`, and the operator's weights per view (|G|, N) if any.
    The operator runs the |G| rotated copies of a batch in one forward pass. Under DDP each rank
    evaluates its share of the batches; the counts and weights are put together."""
    batches = ((hardware.to_device(images[i : i + batch], device), labels[i : i + batch])
               for i in distributed.shard(len(images), batch)[::batch])
    return training.accuracy(net, batches, training.top1, desc)


def load(task: DictConfig, ctx: RunContext, split: str, per_class: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """A CIFAR-10 split from task.data_root (default: <paths.data>/cifar10, fetched when missing)."""
    root = cifar_root(task, ctx)
    with blame_user(f"CIFAR-10 in {root}"):
        return cifar.load(root, split, per_class, ctx.cache_dir, ctx.fingerprints)


def cifar_root(task: DictConfig, ctx: RunContext):
    return imagesets.ensure_root("cifar10", task.data_root, ctx.data_dir, ctx.download).expanduser().resolve()


def weights_read(task: DictConfig, ctx: RunContext) -> str:
    """What `pretrained` starts from, as results.json's inputs name it (the first word as its
    metrics' `weights` do)."""
    if task.weights == "random":
        return "random"
    if task.weights in ("auto", "imagenet"):
        file = imagenet_weights_file(task.model)
        if file.is_file():
            return f"imagenet+cifar10 {task.model} {ctx.fingerprints.file(file)}"
        if task.weights == "imagenet" or ctx.download and online(IMAGENET_WEIGHTS[task.model].url):
            return f"imagenet+cifar10 {task.model} (to download)"
    return "cifar10-scratch"


def inputs(cfg: DictConfig, ctx: RunContext) -> dict:
    root = cifar_root(cfg.task, ctx)
    return {**{f"cifar10/{split}": cifar.fingerprint(root, split, ctx.fingerprints) for split in cifar.SPLITS},
            "weights": weights_read(cfg.task, ctx)}


def trained_on_upright(model: Classifier, stem: str, settings: DictConfig, task: DictConfig, ctx: RunContext,
                       start: str | None = None) -> tuple[Classifier, str]:
    """`model` trained on upright CIFAR-10 with `settings`, cached under outputs/cache/cnn by them,
    the training images' fingerprint and that of the weights it started from (`start`), if any."""
    made_from = {"train": cifar.fingerprint(cifar_root(task, ctx), "train", ctx.fingerprints)}
    path = checkpoint_path(ctx.cache_dir, "cnn", stem, settings, settings.seed, ".pt",
                           {**made_from, "start": start} if start else made_from)
    model = model.to(ctx.device)
    stored = load_cached(path, lambda p: torch.load(p, map_location=ctx.device))
    if stored is not None:
        model.load_state_dict(stored["state_dict"])
        return model.eval(), "cache"
    images, labels = load(task, ctx, "train", settings.per_class)
    generator = torch.Generator().manual_seed(settings.seed)
    model.train()
    fit(model, list(model.parameters()), images, labels, settings, generator, ctx.device, f"train {stem} upright",
        rotated=False, stats=model.stats)
    save_atomically(path, lambda tmp: torch.save({"state_dict": model.state_dict()}, tmp))
    return model.eval(), "trained"


def pretrained(task: DictConfig, ctx: RunContext) -> tuple[Classifier, str]:
    """The CIFAR-10 classifier the methods start from, and which weights it has. auto: ImageNet
    weights adapted to CIFAR-10 when torchvision can get them, else trained from scratch on
    CIFAR-10 (cached; `make pretrain-cnn` trains them ahead)."""
    if task.weights == "random":
        return cifar_model(task.model).to(ctx.device).eval(), "random"
    if task.weights in ("auto", "imagenet"):
        try:
            state = imagenet_state_dict(task.model, ctx.download)
        except MissingAssetError as err:
            if task.weights == "imagenet":
                raise
            print(f"note: {err}; using CIFAR-10 weights trained from scratch")
        else:
            model = imagenet_model(task.model, input_size=task.imagenet_adapt.input_size, state_dict=state)
            model, how = trained_on_upright(model, f"{task.model}-imagenet-norm", task.imagenet_adapt, task, ctx,
                                            ctx.fingerprints.file(imagenet_weights_file(task.model)))
            return model, f"imagenet+cifar10 ({how})"
    model, how = trained_on_upright(cifar_model(task.model), f"{task.model}-scratch", task.pretrain[task.model], task, ctx)
    return model, f"cifar10-scratch ({how})"


def upright_share(weights: torch.Tensor, turns: torch.Tensor) -> tuple[float, float]:
    """Mean weight on the upright copy and how often it has the largest weight.
    View g is the test image turned g more quarter turns, so g = −turns (mod 4) is upright."""
    upright = (-turns) % 4
    on_upright = weights.gather(0, upright[None]).squeeze(0)
    return float(on_upright.mean()), float((weights.argmax(0) == upright).float().mean())
