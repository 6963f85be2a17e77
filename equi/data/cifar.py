"""CIFAR-10 as uint8 tensors, from an image-folder layout or torchvision's binary release,
and rot90-CIFAR10 (every image turned by a random multiple of 90°, drawn with a fixed seed).

Decoded splits are cached as one tensor file under outputs/cache/cifar, so a run does not
decode 60,000 JPEGs again.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torchvision import datasets
from torchvision.datasets.folder import IMG_EXTENSIONS
from torchvision.io import ImageReadMode, decode_image
from tqdm import tqdm

from ..cache import load_cached, save_atomically
from ..errors import ConfigError, DataError, MissingAssetError
from ..groups.image import rot90
from ..inputs import Fingerprints

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SPLITS = ("train", "test")
BINARY_FOLDER = "cifar-10-batches-py"  # what torchvision.datasets.CIFAR10 unpacks into its root
STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))  # CIFAR-10's channel mean and std
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # what torchvision's ImageNet weights expect


def layout(root: Path) -> str:
    """'folder' (train/<class>/*.jpg), 'binary' (torchvision's release), else a one-line error."""
    if (root / "train").is_dir() and (root / "test").is_dir():
        return "folder"
    if (root / BINARY_FOLDER).is_dir():
        return "binary"
    raise MissingAssetError(
        f"CIFAR-10 not found in {root}: expected train/<class>/*.jpg and test/<class>/*.jpg, or torchvision's "
        f"{BINARY_FOLDER}/ (torchvision.datasets.CIFAR10(root, download=True) makes it where a network exists); "
        "set task.data_root"
    )


def _from_folder(root: Path, split: str, per_class: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    check_class_folders(root / split)
    folder = datasets.ImageFolder(root / split)
    if tuple(folder.classes) != CLASSES:
        raise MissingAssetError(f"{root / split} has classes {folder.classes}, expected the 10 CIFAR-10 classes")
    samples = first_per_class(folder.samples, per_class)
    images = torch.empty(len(samples), 3, 32, 32, dtype=torch.uint8)
    for i, (path, _) in enumerate(tqdm(samples, desc=f"decode CIFAR-10 {split}", unit="img", mininterval=2)):
        image = read_rgb(path)
        if image.shape != (3, 32, 32):
            raise DataError(f"{path}: expected a 32×32 RGB image, got {tuple(image.shape)}")
        images[i] = image
    return images, torch.tensor([label for _, label in samples])


def check_class_folders(folder: Path) -> None:
    """Each class folder holds an image: torchvision's ImageFolder would stop on an empty one
    without naming its path."""
    for class_folder in sorted(p for p in folder.iterdir() if p.is_dir()):
        if not any(f.name.lower().endswith(IMG_EXTENSIONS) for f in class_folder.rglob("*")):
            raise DataError(f"{class_folder} has no images ({', '.join(IMG_EXTENSIONS)})")


def read_rgb(path: str | Path) -> torch.Tensor:
    """An image file decoded as (3, H, W) uint8 RGB; one that cannot be read or decoded is a
    DataError naming it (torchvision's errors name no file)."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}") from None
    if not data:
        raise DataError(f"{path}: not a readable image (empty file)")
    try:
        return decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
    except RuntimeError as err:  # torchvision says "<function>, <source file>:<line>, <reason>. <advice>"
        reason = re.sub(r"^\w+, \S+:\d+, ", "", str(err).strip()).splitlines()[0].split(". ")[0]
        raise DataError(f"{path}: not a readable image ({reason})") from None


def from_release(release_class: type, folder: str, root: Path, split: str,
                 per_class: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """A split of torchvision's CIFAR-10 or CIFAR-100 release (`release_class`, unpacked into
    root/folder) as uint8 (N, 3, 32, 32) images and labels."""
    check_release(release_class, root / folder)
    release = release_class(root, train=split == "train", download=False)
    samples = first_per_class(list(enumerate(release.targets)), per_class)
    index = [i for i, _ in samples]
    images = torch.from_numpy(np.ascontiguousarray(release.data[index])).permute(0, 3, 1, 2).contiguous()
    return images, torch.tensor([label for _, label in samples])


def check_release(release_class: type, folder: Path) -> None:
    """Each file of a torchvision release is there, readable and has its md5 sum: torchvision checks
    them too, but its error names no file (and a file it cannot open is a traceback)."""
    meta = release_class.meta
    for name, md5 in release_class.train_list + release_class.test_list + [[meta["filename"], meta["md5"]]]:
        path = folder / name
        if not path.is_file():
            raise MissingAssetError(f"{path} is missing from torchvision's {release_class.__name__} release")
        try:
            intact = datasets.cifar.check_integrity(str(path), md5)
        except OSError as err:
            raise DataError(f"cannot read {path}: {err.strerror or err}") from None
        if not intact:
            raise DataError(f"{path}: md5 check failed, so the {release_class.__name__} release in {folder} is "
                            f"damaged; remove it and fetch it again (`python run.py data {release_class.__name__.lower()}`)")


def first_per_class(samples: list, per_class: int | None) -> list:
    """The first `per_class` (path or index, label) samples of each class (all when None), in order."""
    if per_class is None:
        return samples
    seen: Counter = Counter()
    kept = []
    for sample in samples:
        if seen[sample[1]] < per_class:
            seen[sample[1]] += 1
            kept.append(sample)
    return kept


def fingerprint(root: Path, split: str, prints: Fingerprints) -> str:
    """The fingerprint of the files a split is read from (see equi.inputs)."""
    if layout(root) == "folder":
        return prints.folder(root / split)
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    return prints.files([root / BINARY_FOLDER / name for name in names + ["batches.meta"]], root)


def load(root: str | Path, split: str, per_class: int | None = None, cache_dir: Path | None = None,
         prints: Fingerprints | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) of a CIFAR-10 split, optionally the first
    `per_class` of each class; decoded once and cached under cache_dir when one is given, keyed by
    the split files' fingerprint (from `prints`, or the store under cache_dir)."""
    if split not in SPLITS:
        raise ConfigError(f"unknown CIFAR-10 split {split!r}; choose one of: {', '.join(SPLITS)}")
    root = Path(root).expanduser().resolve()
    kind = layout(root)
    cached = None
    if cache_dir is not None:
        prints = prints or Fingerprints(cache_dir)
        key = hashlib.sha1(f"{root}|{kind}|{split}|{per_class}|{fingerprint(root, split, prints)}".encode()).hexdigest()[:10]
        prints.save()
        cached = Path(cache_dir) / "cifar" / f"{split}-{per_class or 'all'}-{key}.pt"
        stored = load_cached(cached, torch.load)
        if stored is not None:
            return stored["images"], stored["labels"]
    if kind == "folder":
        images, labels = _from_folder(root, split, per_class)
    else:
        images, labels = from_release(datasets.CIFAR10, BINARY_FOLDER, root, split, per_class)
    if cached is not None:
        save_atomically(cached, lambda tmp: torch.save({"images": images, "labels": labels}, tmp))
    return images, labels


def quarter_turns(n: int, seed: int) -> torch.Tensor:
    """A multiple of 90° (0–3 quarter turns) per image, the same for a given (n, seed)."""
    return torch.randint(4, (n,), generator=torch.Generator().manual_seed(seed))


def rotate(images: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Each image turned counter-clockwise by its number of quarter turns (element k of C4)."""
    return rot90().act_each(turns, images)


def normalize(images: torch.Tensor, stats: tuple = STATS) -> torch.Tensor:
    """uint8 images → float, standardised with channel statistics (CIFAR-10's; the network's
    own, `Classifier.stats`, when it was trained on other images)."""
    mean = torch.tensor(stats[0], device=images.device).view(3, 1, 1)
    std = torch.tensor(stats[1], device=images.device).view(3, 1, 1)
    out = (images.float() / 255 - mean) / std
    return out.contiguous(memory_format=torch.channels_last)


def augment(images: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crops (zero-padded by `pad`; none when 0) and left-right mirrors, drawn per image."""
    n, _, h, w = images.shape
    out = images
    if pad:
        padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
        dy, dx = (torch.randint(2 * pad + 1, (n,), generator=generator) for _ in range(2))
        rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
        out = padded[torch.arange(n)[:, None, None, None], torch.arange(3)[None, :, None, None], rows, cols]
    mirror = torch.rand(n, generator=generator) < 0.5
    return torch.where(mirror[:, None, None, None], out.flip(-1), out)
