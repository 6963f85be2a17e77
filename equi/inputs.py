"""What a run reads besides its config: fingerprints of its data files and of the weights it
resolves to, so that a finished run and a cached model are redone when either changes.

A task module may define ``inputs(cfg, ctx) -> {name: fingerprint}`` (its data files and, where
``task.weights=auto`` chooses, the weights it will load). equi.experiment records the dict in
results.json under ``inputs`` and skips a finished run only when it matches; tasks key their
cached models by the fingerprints of the files those models were trained on.

A file's sha256 is computed once and kept by (path, size, modification time) in
``outputs/cache/fingerprints.json``, so a rerun only stats its files.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Iterable, Iterator

from .errors import DataError

STORE = "fingerprints.json"
FRESH_S = 2  # files modified this recently are hashed on every look (as git treats racy entries)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Fingerprints:
    """sha256 of files, remembered by (path, size, mtime) in a JSON file under the cache folder."""

    def __init__(self, cache_dir: Path):
        self.store = Path(cache_dir) / STORE
        try:
            self.known = json.loads(self.store.read_text())
        except (OSError, ValueError):  # none yet, or damaged: every digest is computed again
            self.known = {}
        self.changed = False
        self.folders: dict[Path, str] = {}

    def file(self, path: str | Path) -> str:
        """'sha256:<first 16 hex digits>' of one file."""
        path = os.path.realpath(os.path.expanduser(path))
        try:
            return self._digest(path, os.stat(path))
        except OSError as err:
            raise DataError(f"cannot read {path}: {err.strerror or err}") from None

    def _digest(self, path: str, stat: os.stat_result) -> str:
        entry = self.known.get(path)
        if entry is None or entry[0] != stat.st_size or entry[1] != stat.st_mtime_ns:
            entry = [stat.st_size, stat.st_mtime_ns, sha256_file(path)]
            if time.time() - stat.st_mtime > FRESH_S:  # a file changed within the clock's tick of its
                self.known[path] = entry  # mtime could change again unseen: kept only once older
                self.changed = True
        return f"sha256:{entry[2][:16]}"

    def files(self, paths: Iterable[Path], root: Path) -> str:
        """One fingerprint of several files under `root`: their names (relative to root) and contents."""
        digest = hashlib.sha256()
        for path in sorted(Path(p) for p in paths):
            digest.update(f"{path.relative_to(root)}\0{self.file(path)}\n".encode())
        return f"sha256:{digest.hexdigest()[:16]}"

    def folder(self, root: str | Path) -> str:
        """One fingerprint of every file under `root` (hidden ones, such as locks and partial
        downloads, left out); worked out once per process. 50,000 known files take 0.3 s."""
        root = os.path.realpath(os.path.expanduser(root))
        if root not in self.folders:
            digest = hashlib.sha256()
            try:
                for relative, entry in _walk(root, ""):
                    digest.update(f"{relative}\0{self._digest(entry.path, entry.stat())}\n".encode())
            except OSError as err:
                raise DataError(f"cannot read {err.filename or root}: {err.strerror or err}") from None
            self.folders[root] = f"sha256:{digest.hexdigest()[:16]}"
        return self.folders[root]

    def save(self) -> None:
        """Write the store back (atomically; a lost race only costs a later run some hashing)."""
        if not self.changed:
            return
        self.store.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.store.with_name(f".{STORE}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(self.known))
            os.replace(tmp, self.store)
        finally:
            tmp.unlink(missing_ok=True)
        self.changed = False


def _walk(folder: str, prefix: str) -> Iterator[tuple[str, os.DirEntry]]:
    """(path relative to the walk's root, entry) of every visible file, depth first, by name."""
    with os.scandir(folder) as entries:
        listed = sorted((e for e in entries if not e.name.startswith(".")), key=lambda e: e.name)
    for entry in listed:
        if entry.is_dir():
            yield from _walk(entry.path, f"{prefix}{entry.name}/")
        elif entry.is_file():
            yield f"{prefix}{entry.name}", entry


def changed(before: dict, now: dict) -> list[str]:
    """The names whose fingerprint differs (or that came or went) between two inputs records."""
    return sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))


def adoptable(record: dict, now: dict) -> bool:
    """Whether a results.json made before inputs were recorded can stand for a run on `now`: its
    data are taken to be the files it read, still where they were; but weights=auto must resolve
    to the kind of weights it ran with (the first word of its metrics' `weights`: standin,
    RN50/openai, cifar10-scratch, …)."""
    weights = now.get("weights")
    ran = str(record.get("metrics", {}).get("weights", "")).split(" ")[0]
    return weights is None or ran == weights.split(" ")[0]
