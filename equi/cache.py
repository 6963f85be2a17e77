"""Artefacts shared between runs (pretrained checkpoints, decoded images, features, heads):
keyed by the settings and input fingerprints that made them, saved atomically with their size
and sha256 beside them, and checked on load: a damaged one is moved aside and made again."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pickle
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from omegaconf import DictConfig, OmegaConf

from . import distributed
from .inputs import sha256_file

T = TypeVar("T")
DAMAGED = (EOFError, OSError, RuntimeError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile)  # what readers
# (torch.load, pickle, json, stable-baselines3's zip) raise on a damaged file
CHECK = ".sha256"  # <artefact>.sha256 holds "<sha256> <size>"
CORRUPT = ".corrupt"


def checkpoint_path(cache_dir: Path, task: str, stem: str, settings: DictConfig | dict, seed: int, suffix: str,
                    inputs: dict | None = None) -> Path:
    """outputs/cache/<task>/<stem>-seed<n>-<hash of settings, seed and inputs><suffix>.

    `inputs` are the fingerprints of the files the artefact is made from. One made before inputs
    entered the key (named by settings and seed alone) is renamed to the new name once: it was
    made from the files still in place."""
    plain = OmegaConf.to_container(settings, resolve=True) if isinstance(settings, DictConfig) else settings
    text = f"{json.dumps(plain, sort_keys=True)}|{seed}"
    path = Path(cache_dir) / task / f"{stem}-seed{seed}-{_short_hash(text)}{suffix}"
    if not inputs:
        return path
    keyed = path.with_name(f"{stem}-seed{seed}-{_short_hash(f'{text}|{json.dumps(inputs, sort_keys=True)}')}{suffix}")
    if distributed.is_main() and path.exists() and not keyed.exists():
        for old in path.parent.glob(f"{path.stem}.*"):  # with its .json and .sha256 companions
            if not old.name.endswith(CORRUPT):
                try:
                    os.replace(old, keyed.with_name(keyed.stem + old.name[len(path.stem):]))
                except FileNotFoundError:  # a parallel run renamed it first
                    pass
    return keyed


def _short_hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def check_file(path: Path) -> Path:
    return path.with_name(path.name + CHECK)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold .<name>.lock: an artefact and its record are renamed, and checked, as one (two runs
    may save the same artefact at once, from training that is not bit-for-bit repeatable)."""
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def save_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """write(tmp) beside path, then rename it and record its sha256 and size beside it: a crash
    never leaves half an artefact under its name. Under DDP only rank 0 writes (the ranks hold
    the same weights)."""
    if not distributed.is_main():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(tmp)
        record = f"{sha256_file(tmp)} {tmp.stat().st_size}\n"
        with _locked(path):
            os.replace(tmp, path)
            _write_check(path, record)
    finally:
        tmp.unlink(missing_ok=True)


def _write_check(path: Path, record: str) -> None:
    tmp = check_file(path).with_name(f".{check_file(path).name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(record)
        os.replace(tmp, check_file(path))
    finally:
        tmp.unlink(missing_ok=True)


def load_cached(path: Path, read: Callable[[Path], T]) -> T | None:
    """read(path) when path holds an intact artefact, else None, and the caller makes it again.

    Intact: its size and sha256 match those saved beside it. One saved before those records is
    intact if read() succeeds (the record is then written). A damaged one is moved aside to
    <name>.corrupt with a one-line note. Under DDP rank 0 judges and every rank follows."""
    intact = None
    if distributed.is_main() and path.exists():
        with _locked(path):
            intact = _intact(path, read)
    if not distributed.from_main(intact):
        return None
    return read(path)


def _intact(path: Path, read: Callable[[Path], object]) -> bool:
    if not path.exists():
        return False
    check = check_file(path)
    if check.exists():
        digest, _, size = check.read_text().strip().partition(" ")
        if str(path.stat().st_size) == size and sha256_file(path) == digest:
            return True
        why = f"its size or sha256 is not the one saved in {check.name}"
    else:
        try:
            read(path)
        except DAMAGED as err:
            why = f"it cannot be read: {type(err).__name__}"
        else:
            _write_check(path, f"{sha256_file(path)} {path.stat().st_size}\n")
            return True
    aside = path.with_name(path.name + CORRUPT)
    os.replace(path, aside)
    check.unlink(missing_ok=True)
    print(f"note: cached {path} is damaged ({why}); moved it to {aside.name} and making it again", flush=True)
    return False
