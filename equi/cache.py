"""Pretrained checkpoints shared between runs: keyed by the settings that made them, saved atomically."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

from omegaconf import DictConfig, OmegaConf

from . import distributed


def checkpoint_path(cache_dir: Path, task: str, stem: str, settings: DictConfig | dict, seed: int, suffix: str) -> Path:
    """outputs/cache/<task>/<stem>-seed<n>-<hash of settings and seed><suffix>."""
    plain = OmegaConf.to_container(settings, resolve=True) if isinstance(settings, DictConfig) else settings
    key = hashlib.sha1(f"{json.dumps(plain, sort_keys=True)}|{seed}".encode()).hexdigest()[:10]
    return Path(cache_dir) / task / f"{stem}-seed{seed}-{key}{suffix}"


def cached(path: Path) -> bool:
    """Whether the checkpoint exists, as rank 0 sees it: under DDP all ranks load it, or all train."""
    return distributed.from_main(path.exists())


def save_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """write(tmp) beside path, then rename: a crash never leaves half a checkpoint under its name.
    Under DDP only rank 0 writes (the ranks hold the same weights)."""
    if not distributed.is_main():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
