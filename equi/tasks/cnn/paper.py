"""rot90-CIFAR10 as the paper's code runs it (task.protocol=paper; EquiClassification/).

The pretrained network is not used as a classifier: its convolutional trunk is frozen, its
classifier thrown away, and a new head (`PaperHead`) is trained through the method from the
first step, on training images turned by random quarter turns (SGD, batch 4; λ-equitune's
λ-network trained jointly). Because the trunk is frozen, the features of the four quarter
turns of every image are computed once and cached; the operator then acts on them through
`rot90_views` (turning the image cycles its four views), so every method trains heads on
cached features in minutes. Each of the paper code's bugs is an opt-in switch
(task.paper_protocol.bugs); with ImageNet weights the inputs are 224 px with ImageNet statistics.
"""

from __future__ import annotations

import hashlib
import time

import torch
from omegaconf import DictConfig
from torch import nn
from tqdm import tqdm

from ... import hardware, methods, training
from ...cache import load_cached, save_atomically
from ...data import cifar
from ..context import RunContext
from ...groups import image
from ...models.cnn import Backbone, PaperHead, conv_trunk
from ...proxy import max_prob
from . import toolkit as cnn


class FirstView(nn.Module):
    """M's input: the features of the image as given (view 0 of its four quarter turns)."""

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        return views[:, 0].float()


def lambda_network(in_features: int, hidden: int, dropout: float) -> nn.Module:
    """The paper code's WeightNet: Linear → ReLU → dropout → Linear → dropout → Linear(·, 1)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, hidden), nn.Dropout(dropout), nn.Linear(hidden, 1))


def weights_digest(module: nn.Module, *extra) -> str:
    """A short hash of a module's weights (and of `extra`): the name of its cached features."""
    digest = hashlib.sha1(repr(extra).encode())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:10]


@torch.no_grad()
def orbit_features(trunk: Backbone, images: torch.Tensor, stats: tuple, batch: int, device, desc: str) -> torch.Tensor:
    """(N, 4, C, h, w) float16: view k holds trunk(image turned k quarter turns), in eval mode."""
    trunk.eval()
    group, out = image.rot90(), []
    for i in tqdm(range(0, len(images), batch), desc=desc, unit="batch", leave=False):
        x = hardware.to_device(cifar.normalize(images[i : i + batch], stats), device)
        with hardware.autocast():
            features = trunk(group.orbit(x))
        out.append(features.reshape(group.order, len(x), *features.shape[1:]).transpose(0, 1).half().cpu())
    return torch.cat(out)


def cached_features(trunk: Backbone, trunk_key: str, stats: tuple, images: torch.Tensor, split: str,
                    per_class: int | None, task: DictConfig, ctx: RunContext) -> tuple[torch.Tensor, str]:
    """orbit_features of `images` (the first `per_class` of a CIFAR-10 split), cached under
    outputs/cache/cnn/features by `trunk_key` (weights_digest of the trunk, its input size and
    statistics) and the images chosen (the split files' fingerprint and per_class)."""
    images_key = cifar.fingerprint(cnn.cifar_root(task, ctx), split, ctx.fingerprints)
    key = hashlib.sha1(repr((trunk_key, images_key, split, per_class)).encode()).hexdigest()[:10]
    path = ctx.cache_dir / "cnn" / "features" / f"{task.model}-{split}-{per_class or 'all'}-{key}.pt"
    features = load_cached(path, torch.load)
    if features is not None:
        return features, "cache"
    features = orbit_features(trunk, images, stats, task.eval_batch, ctx.device, f"trunk features, {split}")
    save_atomically(path, lambda tmp: torch.save(features, tmp))
    return features, "computed"


def train_heads(net: nn.Module, params: list[nn.Parameter], features: torch.Tensor, labels: torch.Tensor,
                settings: DictConfig, generator: torch.Generator, device, desc: str, after_epoch) -> None:
    """The paper's loop: SGD with momentum on cross-entropy, every epoch a fresh shuffle and a
    fresh random quarter turn per image (applied to its cached views), then `after_epoch`."""
    group = image.rot90_views()
    opt = training.optimizer(params, "sgd", settings.lr, momentum=settings.momentum)
    per_epoch = min(settings.examples_per_epoch or len(features), len(features))
    for epoch in range(1, settings.epochs + 1):
        net.train()
        chosen = torch.randperm(len(features), generator=generator)[:per_epoch]
        turns = torch.randint(4, (per_epoch,), generator=generator)

        def loss_of(i: int) -> torch.Tensor:
            idx = chosen[i : i + settings.batch_size]
            x = group.act_each(turns[i : i + settings.batch_size], features[idx])
            with hardware.autocast():
                return nn.functional.cross_entropy(net(x), labels[idx])

        training.train(loss_of, range(0, per_epoch, settings.batch_size), opt, desc=f"{desc} epoch {epoch}",
                       unit="batch", mininterval=2.0)
        after_epoch(epoch)


def run(cfg: DictConfig, ctx: RunContext) -> dict:
    task, method, settings = cfg.task, cfg.method, cfg.task.paper_protocol
    test_split = "train" if settings.bugs.test_from_train else "test"
    train_images, train_labels = cnn.load(task, ctx, "train", task.train_per_class)  # decoded first: a bad
    test_images, test_labels = cnn.load(task, ctx, test_split, task.eval_per_class)  # image stops the run early
    start = time.perf_counter()
    model, source = cnn.pretrained(task, ctx)
    trunk = conv_trunk(model).requires_grad_(False)
    trunk_key = weights_digest(trunk, trunk.input_size, model.stats)  # hashed once for both splits
    train_x, how = cached_features(trunk, trunk_key, model.stats, train_images, "train", task.train_per_class, task, ctx)
    test_x, _ = cached_features(trunk, trunk_key, model.stats, test_images, test_split, task.eval_per_class, task, ctx)
    features_s = time.perf_counter() - start
    test_turns = cifar.quarter_turns(len(test_x), task.rotation_seed)  # the same for every method and seed
    test_x = hardware.to_device(image.rot90_views().act_each(test_turns, test_x), ctx.device)
    train_x, train_labels = hardware.to_device(train_x, ctx.device), hardware.to_device(train_labels, ctx.device)

    channels, positions = train_x.shape[2], train_x[0, 0].numel() // train_x.shape[2]
    head = PaperHead(channels, positions)
    proxy = methods.method_of(method).proxy(method, task.default_proxy)
    net = methods.wrap(method, head, group=image.rot90_views(), invariant=True, encoder=FirstView(),
                       feature_dim=channels * positions, default_proxy=task.default_proxy,
                       lambda_net=lambda_network(channels * positions, settings.lambda_hidden, settings.lambda_dropout))
    if proxy == "neg_max_prob" and settings.bugs.argmin_max_prob:
        net.weighting.proxy, proxy = max_prob, "max_prob"  # the paper's argmin of the max probability
    net = net.to(ctx.device)
    generator = torch.Generator().manual_seed(cfg.seed)
    desc = f"{task.model} {method.name} (paper protocol) seed {cfg.seed}"
    curve: list[float] = []
    weights = None

    def record(epoch: int) -> None:
        nonlocal weights
        accuracy, weights = cnn.evaluate(net, test_x, test_labels, task.eval_batch, ctx.device, f"{desc}: {test_split}")
        curve.append(accuracy)
        ctx.logger.log({"test_accuracy": accuracy, "epoch": epoch})

    train_heads(net, list(net.parameters()), train_x, train_labels, settings, generator, ctx.device, desc, record)
    metrics = {
        "test_accuracy": curve[-1],
        "curve": curve,  # after epochs 1, 2, …: the paper's "epoch 0, 1, …"
        "protocol": "paper",
        "model": task.model,
        "weights": source,
        "features": how,
        "finetune_layers": "head",
        "proxy": proxy,
        "bugs": [name for name, on in settings.bugs.items() if on],
        "test_split": test_split,
        "test_images": len(test_x),
        "trainable_parameters": sum(p.numel() for p in net.parameters()),
        "features_s": round(features_s, 1),
    }
    if weights is not None:
        metrics["upright_weight"], metrics["upright_argmax_rate"] = cnn.upright_share(weights, test_turns)
    return metrics
