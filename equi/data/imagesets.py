"""The CLIP task's image sets as datasets of (uint8 image, label): CIFAR-10 (image folder or
torchvision's release), CIFAR-100 (torchvision's release) and ImageNet-V2 matched-frequency
(`<class index>/*.jpeg`, 10 per class, test only), with a one-line error naming the path and the
layout when one is missing.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset, TensorDataset
from torchvision import datasets
from torchvision.transforms.v2 import functional as TF

from ..errors import ConfigError, MissingAssetError
from ..inputs import Fingerprints
from . import catalog, cifar

DATASETS = ("cifar10", "cifar100", "imagenetv2")
TRANSFORMS = ("none", "rot90", "flip", "rot180")  # test-time transforms: names of equi.groups.image groups
CIFAR100_FOLDER = "cifar-100-python"  # what torchvision.datasets.CIFAR100 unpacks into its root


def root_for(dataset: str, data_root: str | None, data_dir: Path) -> Path:
    """The folder a run reads `dataset` from: task.data_root, else its folder in the data folder."""
    if dataset not in DATASETS:
        raise ConfigError(f"unknown task.dataset {dataset!r}; choose one of: {', '.join(DATASETS)}")
    return Path(data_root or Path(data_dir) / catalog.DATASETS[dataset].folder).expanduser()


def ensure_root(dataset: str, data_root: str | None, data_dir: Path, download: bool) -> Path:
    """root_for, with the dataset fetched into the data folder first when it is missing there
    (a task.data_root is the user's folder: checked by the loaders, never filled)."""
    root = root_for(dataset, data_root, data_dir)
    return root if data_root else catalog.ensure(dataset, Path(data_dir), download)


def missing(dataset: str, root: Path) -> str | None:
    """None when `dataset` is in `root`, else the one-line reason (for errors and `assets`)."""
    if dataset == "cifar10":
        try:
            cifar.layout(root)
        except MissingAssetError as err:
            return str(err)
        return None
    if dataset == "cifar100":
        if (root / CIFAR100_FOLDER).is_dir():
            return None
        return (f"CIFAR-100 not found in {root}: expected torchvision's {CIFAR100_FOLDER}/ "
                "(`python run.py data cifar100` fetches it); set task.data_root")
    if (root / "0").is_dir() and (root / "999").is_dir():
        return None
    return (f"ImageNet-V2 not found in {root}: expected matched-frequency folders 0/ … 999/ of .jpeg files "
            "(`python run.py data imagenetv2` fetches the release); set task.data_root")


def fingerprint(dataset: str, root: Path, prints: Fingerprints) -> str:
    """One fingerprint of every split of `dataset` in `root` (see equi.inputs)."""
    problem = missing(dataset, root)
    if problem:
        raise MissingAssetError(problem)
    if dataset == "cifar10":
        return " ".join(cifar.fingerprint(root, split, prints) for split in cifar.SPLITS)
    if dataset == "cifar100":
        return prints.files([root / CIFAR100_FOLDER / name for name in ("train", "test", "meta")], root)
    return prints.folder(root)


class ImageNetV2(Dataset):
    """ImageNet-V2 images decoded on access, the shorter side resized to `size` and centre-cropped."""

    def __init__(self, root: Path, size: int, per_class: int | None):
        files = [(path, label) for label in range(1000)
                 for path in sorted((root / str(label)).glob("*.jpeg"))]
        self.samples = cifar.first_per_class(files, per_class)
        self.size = size

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[i]
        image = cifar.read_rgb(path)
        image = TF.resize(image, self.size, interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
        return TF.center_crop(image, [self.size, self.size]), label


def load(dataset: str, root: Path, split: str, per_class: int | None, size: int, cache_dir: Path | None,
         prints: Fingerprints | None = None) -> Dataset:
    """A split as (uint8 image (3, H, W), label) pairs; CIFAR stays at 32×32 (the model resizes)."""
    if dataset == "imagenetv2" and split == "train":
        raise ConfigError("ImageNet-V2 has no training split; finetune on task.dataset=cifar100 (as the paper does)")
    problem = missing(dataset, root)
    if problem:
        raise MissingAssetError(problem)
    if dataset == "cifar10":
        return TensorDataset(*cifar.load(root, split, per_class, cache_dir, prints))
    if dataset == "imagenetv2":
        return ImageNetV2(root, size, per_class)
    return TensorDataset(*cifar.from_release(datasets.CIFAR100, CIFAR100_FOLDER, root, split, per_class))
