"""Zero-shot CLIP under rotations and flips (paper §5.2.1, Figures 4, 5a, 7, 8, 11a, 12).

Every test image gets a random element of the test-time transform; the methods make CLIP's
zero-shot classifier invariant to the group through the shared operator, with the image tower
as its encoder: equitune averages the views' class probabilities, equizero keeps the view most
similar to a class's text, λ-equitune weights the probabilities by a λ-network over the image
features of the same pass. Then, optionally, a finetuning curve on transformed training images.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import DataLoader

from ... import distributed, hardware, methods, training
from ...cache import checkpoint_path, load_cached, save_atomically
from ...data import cifar, imagesets
from ...data.prompts import CIFAR10_CLASSES, CIFAR_TEMPLATES, PROMPTS
from ...errors import ConfigError, MissingAssetError
from ..context import RunContext
from ...groups import FiniteGroup, image
from ...models import clip_standin
from ...models.clip import (ImageEncoder, Preprocess, ZeroShotHead, cached_weights, load_pretrained, missing_weights,
                           preprocess_cfg, random_clip, standin_clip, weights_file_id, weights_reachable,
                           zero_shot_weights)
from ...operator import EquivariantWrapper


@torch.no_grad()
def accuracy(net: nn.Module, loader: DataLoader, elements: torch.Tensor, transform: FiniteGroup,
             prepare: nn.Module, device: torch.device, desc: str) -> tuple[float, torch.Tensor | None]:
    """Top-1 (%) with test image i transformed by elements[i], and the operator's weights (|G|, N) if any."""
    loader, first = distributed.shard_loader(loader)  # under DDP: this rank's batches

    def batches():
        seen = first
        for x, y in loader:
            yield transform.act_each(elements[seen : seen + len(x)], prepare(hardware.to_device(x, device))), y
            seen += len(x)

    return training.accuracy(net, batches(), training.top1, desc)


def draw_elements(n: int, order: int, per: str, batch: int, generator: torch.Generator) -> torch.Tensor:
    """A transform element per image (per='image') or one per batch of `batch` (per='batch', the paper's code)."""
    if per == "batch":
        return torch.randint(order, (-(-n // batch),), generator=generator).repeat_interleave(batch)[:n]
    return torch.randint(order, (n,), generator=generator)


def loss_of(out: torch.Tensor, labels: torch.Tensor, probabilities: bool) -> torch.Tensor:
    """NLL of the averaged class probabilities, or cross-entropy of logits: never a softmax fed to CE."""
    if probabilities:
        return nn.functional.nll_loss(out.clamp_min(1e-12).log(), labels)
    return nn.functional.cross_entropy(out, labels)


def train_steps(net: nn.Module, params: list[nn.Parameter], batches, steps: int, lr: float, transform: FiniteGroup,
                task: DictConfig, prepare: nn.Module, probabilities: bool, generator: torch.Generator,
                device: torch.device, desc: str, after_step=lambda step: None) -> None:
    """SGD with momentum 0.9 (the paper's code) on transformed training batches, shuffled."""
    if steps == 0:
        return
    train_net = distributed.wrap_ddp(net)  # under DDP: same batches on every rank, each trains on its part

    def step_loss(step: int) -> torch.Tensor:
        x, y = next(batches)
        elements = draw_elements(len(x), transform.order, task.transform_per, len(x), generator)
        x, y, elements = distributed.my_part(x), distributed.my_part(y), distributed.my_part(elements)
        x = transform.act_each(elements, prepare(hardware.to_device(x, device)))
        with hardware.autocast():
            out = train_net(x)
        return loss_of(out.float(), y.to(device), probabilities)

    training.train(step_loss, range(1, steps + 1), training.optimizer(params, "sgd", lr), desc=desc, show_every=20,
                   after_step=after_step)


def standin_checkpoint(task: DictConfig, ctx: RunContext) -> tuple[Path, Path]:
    """(CIFAR-10's folder, the stand-in's file under outputs/cache/clip): named by its recipe and the
    files it trains on, so it is also how a run's inputs name the stand-in it reads."""
    if task.dataset != "cifar10":
        raise ConfigError(f"the offline stand-in knows only CIFAR-10's classes; task.dataset={task.dataset} needs real "
                          "CLIP weights (task.weights=pretrained)")
    root = imagesets.ensure_root("cifar10", task.data_root, ctx.data_dir, ctx.download).expanduser().resolve()
    return root, checkpoint_path(ctx.cache_dir, "clip", "standin", clip_standin.resolved(task.standin, ctx.device),
                                 task.standin.seed, ".pt",
                                 {"cifar10": imagesets.fingerprint("cifar10", root, ctx.fingerprints)})


def standin(task: DictConfig, ctx: RunContext) -> tuple[nn.Module, str, str]:
    """The offline stand-in, trained on upright CIFAR-10 once and cached."""
    settings = task.standin
    root, path = standin_checkpoint(task, ctx)
    model = standin_clip(OmegaConf.to_container(settings.model, resolve=True)).to(ctx.device)
    stored = load_cached(path, lambda p: torch.load(p, map_location=ctx.device))
    if stored is not None:
        model.load_state_dict(stored["state_dict"])
        return (model.eval(), f"standin (cache; upright CIFAR-10 zero-shot {stored['upright_accuracy']:.1f}%)",
                weights_file_id(path))
    images, labels = cifar.load(root, "train", settings.per_class, ctx.cache_dir, ctx.fingerprints)
    start = time.perf_counter()
    model = clip_standin.train(settings, images, labels, ctx.device)
    minutes = (time.perf_counter() - start) / 60
    test = imagesets.load("cifar10", root, "test", settings.eval_per_class, 32, ctx.cache_dir, ctx.fingerprints)
    head = ZeroShotHead(zero_shot_weights(model, CIFAR10_CLASSES, CIFAR_TEMPLATES, None, ctx.cache_dir, ctx.device),
                        1.0, probabilities=False)
    upright, _ = accuracy(nn.Sequential(ImageEncoder(model.visual), head), DataLoader(test, batch_size=500),
                          torch.zeros(len(test), dtype=torch.long), image.identity(),
                          Preprocess(*preprocess_cfg(model)).to(ctx.device), ctx.device, "stand-in upright test")
    print(f"stand-in CLIP: {minutes:.1f} min of training, upright CIFAR-10 zero-shot top-1 {upright:.1f}% (saved in {path})")
    save_atomically(path, lambda tmp: torch.save({"state_dict": model.state_dict(), "upright_accuracy": upright,
                                                   "train_minutes": minutes}, tmp))
    return model, f"standin (trained; upright CIFAR-10 zero-shot {upright:.1f}%)", weights_file_id(path)


def weights_choice(task: DictConfig, ctx: RunContext) -> tuple[str, str | None, bool]:
    """("random", "real" or "standin"; the weights file given or cached, if any; whether open_clip
    would download them). auto: the real weights when they are cached or given, when open_clip can
    download them (download=true and their host answers), or when the dataset is not CIFAR-10
    (then a missing file is the error); else the stand-in."""
    if task.weights == "random":
        return "random", None, False
    given = task.checkpoint or cached_weights(task.model, task.pretrained)
    download = ctx.download and not given and weights_reachable(task.model, task.pretrained)
    real = task.weights == "pretrained" or task.weights == "auto" and (task.dataset != "cifar10" or given or download)
    return ("real" if real else "standin"), given, download


def inputs(cfg: DictConfig, ctx: RunContext) -> dict:
    """The dataset's files and the weights, as the first word of the metrics' `weights` names them."""
    task = cfg.task
    root = imagesets.ensure_root(task.dataset, task.data_root, ctx.data_dir, ctx.download)
    found = {task.dataset: imagesets.fingerprint(task.dataset, root.expanduser().resolve(), ctx.fingerprints)}
    kind, given, download = weights_choice(task, ctx)
    if kind == "random":
        return {**found, "weights": f"{task.model} random"}
    if kind == "standin":  # by its file's name: under weights=auto its recipe is out of the run key (schema.OfWeights)
        return {**found, "weights": f"standin {standin_checkpoint(task, ctx)[1].name}"}
    if given and Path(given).is_file():
        return {**found, "weights": f"{task.model}/{task.pretrained} {ctx.fingerprints.file(given)}"}
    if not download and not task.checkpoint:  # said before any work
        raise missing_weights(task.model, task.pretrained)
    return {**found, "weights": f"{task.model}/{task.pretrained} (to download)"}


def load_clip(task: DictConfig, ctx: RunContext) -> tuple[nn.Module, str, str | None]:
    """(CLIP, which weights, an id for caching its zero-shot heads; None for random weights); see weights_choice."""
    kind, given, download = weights_choice(task, ctx)
    if kind == "random":
        return random_clip(task.model).to(ctx.device).eval(), f"{task.model} random", None
    if kind == "real":
        model, path = load_pretrained(task.model, task.pretrained, task.checkpoint, download)
        weights_id = f"{task.model}|{task.pretrained}|{weights_file_id(path) if Path(path).is_file() else path}"
        return model.to(ctx.device).eval(), f"{task.model}/{task.pretrained} ({path})", weights_id
    if task.weights == "auto":
        print(f"note: CLIP weights {task.model}/{task.pretrained} are not cached and cannot be downloaded here "
              f"({'download=false' if not ctx.download else 'their host does not answer'}); using the offline "
              "stand-in (task.weights=pretrained asks for the real ones)")
    return standin(task, ctx)


class Columns(nn.Module):
    """Features[:, start:stop], then `then`: one half of an encoder's concatenated output."""

    def __init__(self, start: int, stop: int, then: nn.Module | None = None):
        super().__init__()
        self.start, self.stop, self.then = start, stop, then

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        part = features[:, self.start : self.stop]
        return self.then(part) if self.then is not None else part


class WithFrozenCopy(nn.Module):
    """[encoder(x), frozen copy of encoder(x)]: λ keeps reading the features it was trained on
    while the encoder finetunes (the paper's setting; it costs a second image-tower pass)."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.frozen = copy.deepcopy(encoder).requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.encoder(x), self.frozen(x)], -1)


def with_frozen_lambda_features(method: DictConfig, net: EquivariantWrapper, dim: int) -> EquivariantWrapper:
    """The same operator, model and λ-network, with λ fed by a frozen copy of the encoder."""
    return methods.wrap(method, Columns(0, dim, net.model), group=net.group, invariant=True,
                        encoder=WithFrozenCopy(net.encoder), weighting=net.weighting, lambda_reads=Columns(dim, 2 * dim))


def view_weights(weights: torch.Tensor, elements: torch.Tensor, group: FiniteGroup, shown: list[int]) -> dict:
    """λ per view for Figure 12: the mean weight on the upright view (g = t⁻¹ for an image
    transformed by t), how often it has the largest weight, and the weights of a few images."""
    upright = torch.tensor([group.inverse(int(t)) for t in elements])
    on_upright = weights.gather(0, upright[None]).squeeze(0)
    return {"upright_weight": float(on_upright.mean()),
            "upright_argmax_rate": float((weights.argmax(0) == upright).float().mean()),
            "weight_examples": {"index": shown, "element": elements[shown].tolist(),
                                "weights": weights[:, shown].T.tolist()}}


def run(cfg: DictConfig, ctx: RunContext) -> dict:
    task, method = cfg.task, cfg.method
    kind = methods.method_of(method)
    transform = image.BY_NAME[task.transform]()
    group = image.BY_NAME[task.group or task.transform]()
    root = imagesets.ensure_root(task.dataset, task.data_root, ctx.data_dir, ctx.download)
    problem = imagesets.missing(task.dataset, root)
    if problem:
        raise MissingAssetError(problem)  # before any weights are loaded or trained
    if task.dataset == "imagenetv2" and (task.finetune.steps > 0 or kind.trains_lambda):
        raise ConfigError("ImageNet-V2 has no training split for λ's stage or finetuning; use task.dataset=cifar100 "
                          "(as the paper does)")

    # The CIFARs stay 32×32 whatever the model's input size, so they are decoded first: a bad file stops
    # the run before CLIP loads or a stand-in trains.
    trains = task.finetune.steps > 0 or kind.trains_lambda
    if task.dataset != "imagenetv2":
        test = imagesets.load(task.dataset, root, "test", task.eval_per_class, 32, ctx.cache_dir, ctx.fingerprints)
        if trains:
            train = imagesets.load(task.dataset, root, "train", task.train_per_class, 32, ctx.cache_dir,
                                   ctx.fingerprints)

    hardware.fixed_input_shapes()
    start = time.perf_counter()
    model, source, weights_id = load_clip(task, ctx)
    load_s = time.perf_counter() - start
    size, mean, std = preprocess_cfg(model)
    prepare = Preprocess(size, mean, std).to(ctx.device)
    classnames, templates = PROMPTS[task.dataset]
    class_embeddings = zero_shot_weights(model, classnames, templates, weights_id, ctx.cache_dir, ctx.device)
    scale = float(model.logit_scale.detach().exp()) if task.logit_scale == "model" else float(task.logit_scale)
    probabilities = kind.averages  # the views' class probabilities are averaged
    encoder = ImageEncoder(model.visual)
    model.requires_grad_(False)
    net = methods.wrap(method, ZeroShotHead(class_embeddings, scale, probabilities), group=group, invariant=True,
                       encoder=encoder, feature_dim=class_embeddings.shape[0], default_proxy=task.default_proxy)
    net = net.to(ctx.device)

    if task.dataset == "imagenetv2":  # decoded on access, at the model's input size
        test = imagesets.load(task.dataset, root, "test", task.eval_per_class, size, ctx.cache_dir)
    loader = DataLoader(test, batch_size=task.eval_batch, num_workers=2 if task.dataset == "imagenetv2" else 0)
    test_elements = draw_elements(len(test), transform.order, task.transform_per, task.eval_batch,
                                  torch.Generator().manual_seed(task.transform_seed))  # the same for every method and seed
    generator = torch.Generator().manual_seed(cfg.seed)
    name = "standin" if source.startswith("standin") else task.model
    desc = f"{name} {method.name} seed {cfg.seed}"
    if kind.trains_lambda:  # paper D.4: train λ with CLIP frozen, then freeze λ
        stage = task.lambda_stage
        train_steps(net, list(net.weighting.parameters()), cycle_shuffled(train, stage.batch_size, generator),
                    stage.steps, stage.lr, transform, task, prepare, probabilities, generator, ctx.device,
                    f"{desc}: λ-network")
        net.weighting.requires_grad_(False)

    curve: dict[int, float] = {}
    weights = None

    def record(step: int) -> None:
        nonlocal weights
        if step == 0 or step % task.finetune.eval_every == 0 or step == task.finetune.steps:
            curve[step], weights = accuracy(net, loader, test_elements, transform, prepare, ctx.device, f"{desc}: test")
            ctx.logger.log({"test_accuracy": curve[step], "step": step})
            print(f"{desc}: step {step}: top-1 {curve[step]:.2f}%")

    record(0)
    if task.finetune.steps > 0:
        if kind.trains_lambda and method.lambda_features == "frozen":
            net = with_frozen_lambda_features(method, net, class_embeddings.shape[0]).to(ctx.device)
        encoder.requires_grad_(True)
        train_steps(net, list(encoder.parameters()), cycle_shuffled(train, task.finetune.batch_size, generator),
                    task.finetune.steps, task.finetune.lr_by_method[method.name], transform, task, prepare,
                    probabilities, generator, ctx.device, f"{desc}: finetune", after_step=record)
    metrics = {
        "zero_shot_accuracy": curve[0],
        "test_accuracy": curve[max(curve)],
        "curve": {str(k): v for k, v in curve.items()},
        "model": name,
        "weights": source,
        "dataset": task.dataset,
        "transform": task.transform,
        "group": group.name,
        "logit_scale": scale,
        "proxy": kind.proxy(method, task.default_proxy),
        "finetune_steps": task.finetune.steps,
        "finetune_lr": task.finetune.lr_by_method[method.name] if task.finetune.steps else None,
        "test_images": len(test),
        "load_s": round(load_s, 1),
    }
    if weights is not None and task.group in (None, task.transform):
        shown = torch.linspace(0, len(test) - 1, task.lambda_examples).long().tolist()  # across classes
        metrics.update(view_weights(weights, test_elements, group, shown))
    return metrics


def cycle_shuffled(dataset, batch_size: int, generator: torch.Generator):
    """Shuffled training batches, reshuffled every pass, forever."""
    return iter(cycle_loader(DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True, generator=generator)))


def cycle_loader(loader: DataLoader):
    while True:
        yield from loader
