"""Image classifiers for rot90-CIFAR10, split into a backbone (features) and a linear head.

The split lets λ-equitune feed the λ-network with the backbone's features of each view
(the operator's ``encoder``), and linear probing train only the last two layers.
Two sources: torchvision's ImageNet models (resnet18, alexnet) with a new 10-class head,
and CIFAR-sized networks of the same families for training from scratch on a CPU.
The paper's protocol keeps only the convolutional trunk (`conv_trunk`) and trains its
`PaperHead` on top.
"""

from __future__ import annotations

import urllib.error
from pathlib import Path

import torch
from torch import nn
from torchvision import models
from torchvision.models.resnet import BasicBlock

from ..data.cifar import IMAGENET_STATS, STATS
from ..errors import ConfigError, MissingAssetError

ARCHITECTURES = ("resnet18", "alexnet")


class Backbone(nn.Module):
    """Images → features; ImageNet networks see CIFAR images upsampled to `input_size`."""

    def __init__(self, net: nn.Module, input_size: int | None = None):
        super().__init__()
        self.net = net
        self.input_size = input_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_size is not None and x.shape[-1] != self.input_size:
            x = nn.functional.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)
        return self.net(x)


class Classifier(nn.Module):
    """head(backbone(x)); ``probe`` holds the last two layers (linear probing trains only these);
    ``stats`` are the channel mean and std its inputs are standardised with."""

    def __init__(self, backbone: nn.Module, head: nn.Linear, probe_layer: nn.Module, input_size: int | None = None,
                 stats: tuple = STATS):
        super().__init__()
        self.backbone = Backbone(backbone, input_size)
        self.head = head
        self.probe = nn.ModuleList([probe_layer, head])
        self.stats = stats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    @property
    def feature_dim(self) -> int:
        return self.head.in_features


def _stage(c_in: int, c_out: int, stride: int) -> BasicBlock:
    downsample = None
    if stride != 1 or c_in != c_out:
        downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
    return BasicBlock(c_in, c_out, stride, downsample)


def cifar_resnet(num_classes: int = 10, widths: tuple[int, ...] = (32, 64, 128, 256)) -> Classifier:
    """A ResNet for 32×32 inputs (3×3 stem, no max-pool), one torchvision BasicBlock per stage."""
    stages = [_stage(widths[0], widths[0], 1)]
    stages += [_stage(c_in, c_out, 2) for c_in, c_out in zip(widths[:-1], widths[1:])]
    backbone = nn.Sequential(
        nn.Conv2d(3, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True),
        *stages, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )
    return Classifier(backbone, nn.Linear(widths[-1], num_classes), probe_layer=stages[-1])


def _conv(c_in: int, c_out: int, kernel: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


def cifar_alexnet(num_classes: int = 10) -> Classifier:
    """An AlexNet-style network for 32×32 inputs: 4 convolutions (with batch norm, so that it
    trains in a few CPU epochs), 3 fully connected layers with dropout."""
    hidden = nn.Linear(512, 256)
    backbone = nn.Sequential(
        *_conv(3, 64, 5), nn.MaxPool2d(2), *_conv(64, 128, 5), nn.MaxPool2d(2),
        *_conv(128, 192, 3), *_conv(192, 128, 3), nn.MaxPool2d(2), nn.Flatten(),
        nn.Dropout(0.5), nn.Linear(128 * 4 * 4, 512), nn.ReLU(inplace=True),
        nn.Dropout(0.5), hidden, nn.ReLU(inplace=True),
    )
    return Classifier(backbone, nn.Linear(256, num_classes), probe_layer=hidden)


def _check(arch: str) -> None:
    if arch not in ARCHITECTURES:
        raise ConfigError(f"unknown model {arch!r}; choose one of: {', '.join(ARCHITECTURES)}")


def cifar_model(arch: str, num_classes: int = 10) -> Classifier:
    """The from-scratch CIFAR network of the family `arch`, randomly initialised, in channels-last
    memory layout (about 1.4× faster convolutions on a CPU)."""
    _check(arch)
    model = cifar_resnet(num_classes) if arch == "resnet18" else cifar_alexnet(num_classes)
    return model.to(memory_format=torch.channels_last)


IMAGENET_WEIGHTS = {"resnet18": models.ResNet18_Weights.IMAGENET1K_V1, "alexnet": models.AlexNet_Weights.IMAGENET1K_V1}


def imagenet_weights_file(arch: str) -> Path:
    """Where torchvision keeps (and looks for) the ImageNet weights of `arch`."""
    return Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_WEIGHTS[arch].url.rsplit("/", 1)[-1]


def imagenet_state_dict(arch: str, download: bool = True) -> dict:
    """torchvision's ImageNet weights: from the torch hub cache, else (download) downloaded into it."""
    weights = IMAGENET_WEIGHTS[arch]
    cache = imagenet_weights_file(arch)
    if not download and not cache.is_file():
        raise MissingAssetError(f"ImageNet weights for {arch} are not in {cache} and download=false")
    try:
        return weights.get_state_dict(progress=True)
    except (urllib.error.URLError, OSError) as err:
        raise MissingAssetError(
            f"ImageNet weights for {arch} are not in {cache} and could not be downloaded "
            f"({getattr(err, 'reason', err)}); copy {weights.url} there, or use task.weights=scratch"
        ) from None


def imagenet_model(arch: str, num_classes: int = 10, input_size: int = 224,
                   state_dict: dict | None = None) -> Classifier:
    """torchvision's `arch` (ImageNet weights loaded when given) with a new `num_classes` head."""
    _check(arch)
    net = models.resnet18() if arch == "resnet18" else models.alexnet()
    if state_dict is not None:
        net.load_state_dict(state_dict)
    if arch == "resnet18":
        head, net.fc = nn.Linear(net.fc.in_features, num_classes), nn.Identity()
        probe_layer = net.layer4[-1]
    else:
        head, net.classifier[6] = nn.Linear(net.classifier[6].in_features, num_classes), nn.Identity()
        probe_layer = net.classifier[4]
    return Classifier(net, head, probe_layer=probe_layer, input_size=input_size, stats=IMAGENET_STATS)


def conv_trunk(model: Classifier) -> Backbone:
    """The part of `model` the paper's protocol freezes: everything before the fully connected
    layers, as its code's `list(pre_model.children())[:-1]` keeps. torchvision's ResNet-18 gives
    its pooled 512×1×1 map, AlexNet its 256×6×6 conv5 map (after the adaptive pool); our CIFAR
    networks give the map before their first Flatten (ResNet 256×1×1, AlexNet 128×4×4).
    The layers are shared with `model`, not copied."""
    net = model.backbone.net
    layers = list(net.children())
    if isinstance(net, (models.ResNet, models.AlexNet)):
        layers = layers[:-1]
    else:
        layers = layers[: next(i for i, m in enumerate(layers) if isinstance(m, nn.Flatten))]
    return Backbone(nn.Sequential(*layers), model.backbone.input_size)


class PaperHead(nn.Module):
    """The head the paper's code trains on a frozen trunk's (C, h, w) map: Linear(h·w, 1) across
    the positions, shared by every channel (for ResNet's 1×1 map a learned scale and shift),
    then Linear(C, classes)."""

    def __init__(self, channels: int, positions: int, num_classes: int = 10):
        super().__init__()
        self.fc1 = nn.Linear(positions, 1)
        self.fc2 = nn.Linear(channels, num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(features.flatten(2)).squeeze(-1))
