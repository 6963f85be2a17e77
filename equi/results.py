"""results.json: one per run, written atomically, with everything needed to trust a number."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import tempfile
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

from .config import REPO_ROOT

PACKAGES = ("torch", "torchvision", "hydra-core", "omegaconf", "open_clip_torch", "stable-baselines3",
            "gymnasium", "transformers", "wandb", "numpy")
RESULTS = "results.json"
LOCK = ".lock"  # held (flock) by the process running a run dir


def _umask() -> int:
    """This process's umask: reading it means setting it, so it is put straight back."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _umask()  # read once, at import: os.umask is process-wide and not thread-safe


def write_text_atomic(path: Path, text: str) -> None:
    """Write to a temporary file beside ``path`` and rename it over: readers never see half a file, and
    an interrupted write leaves no temporary file. The file gets the mode open() would give (mkstemp's
    is 0600, which colleagues sharing the outputs could not read)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), 0o666 & ~UMASK)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str))


def finished(run_dir: Path, key: str) -> dict | None:
    """The stored record if this run dir already holds a finished run with the same key."""
    path = Path(run_dir) / RESULTS
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return record if record.get("run_key") == key else None


@contextmanager
def claim(run_dir: Path):
    """Hold run_dir/.lock while this process runs it. A second run of the same key waits here, then
    finds results.json and skips; the OS drops the lock when its holder dies, so a killed run
    never blocks the next one."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOCK, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            print(f"wait: {run_dir.name} is being run by process {lock.read().strip() or '?'}; "
                  "waiting for it to finish", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        yield


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (out.stdout.strip() + ("+dirty" if dirty else "")) if out.returncode == 0 else None


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def package_versions() -> dict[str, str]:
    return {name: version for name in PACKAGES if (version := package_version(name))}
