"""Fetching one file of a dataset, verified: from its original host, or from a mirror.

A file is written to ``<name>.part`` and renamed only when its hash matches, so a corrupt or
cut-off download never stands under the final name. An interrupted download resumes from the
``.part`` it left (an HTTP range request), or starts again where the server cannot resume.

``EQUI_DATA_MIRROR`` (a folder or an http(s) URL) makes every fetch read the same relative path
from there instead of the original host: for clusters without internet, and for machines that
keep an offline copy of the data.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tqdm import tqdm

from ..errors import MissingAssetError, UserError

MIRROR_ENV = "EQUI_DATA_MIRROR"
TIMEOUT_S = 5  # for connecting and for each read: an offline machine fails at once, a stalled host within this
CHUNK = 1 << 20
ANNOUNCE_BYTES = 50 << 20  # a download at least this large is announced with its size before it starts


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: where it goes under the data folder (and lies under a mirror), where it
    comes from, and how it is verified (sha256 pinned here, or md5 where the library that reads it
    pins that)."""

    path: str
    url: str
    size: int
    sha256: str | None = None
    md5: str | None = None


class CorruptDownload(UserError):
    """A fetched file whose hash is not the pinned one; nothing is left under its name."""


def mirror() -> str | None:
    return os.environ.get(MIRROR_ENV) or None


def source_of(file: RemoteFile) -> str:
    """Where `file` is read from: the mirror's copy when a mirror is set, else the original URL."""
    base = mirror()
    if base is None:
        return file.url
    if base.startswith(("http://", "https://")):
        return f"{base.rstrip('/')}/{file.path}"
    return str(Path(base).expanduser().resolve() / file.path)


def human(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError


def online(url: str, timeout: float = TIMEOUT_S) -> bool:
    """Whether the host of `url` answers a TCP connection within `timeout` (a name that does not
    resolve fails at once): the cheap test behind "with a network, fetch; without, say so"."""
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)),
                                 timeout=timeout).close()
        return True
    except OSError:
        return False


def hub_reachable() -> bool:
    """Whether the Hugging Face hub can be asked now (HF_HUB_OFFLINE unset and the host answers):
    checked first, since hub clients retry for half a minute offline."""
    from huggingface_hub.constants import ENDPOINT

    return not os.environ.get("HF_HUB_OFFLINE") and online(ENDPOINT)


def digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, file: RemoteFile, source: str) -> None:
    """Raise CorruptDownload (and delete `path`) when its hash is not the pinned one."""
    for algorithm, expected in (("sha256", file.sha256), ("md5", file.md5)):
        if expected is None:
            continue
        got = digest(path, algorithm)
        if got != expected:
            path.unlink(missing_ok=True)
            raise CorruptDownload(f"{file.path} from {source} has {algorithm} {got}, expected {expected}: the copy is "
                                  "corrupt or not the pinned release; nothing was kept, fetch again or fix the mirror")


def fetch(file: RemoteFile, root: Path, what: str) -> Path:
    """`file` under `root`, fetched and verified unless it is already there."""
    dest = root / file.path
    if dest.is_file():
        return dest
    source = source_of(file)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        if source.startswith(("http://", "https://")):
            _download(source, part, file.size, f"{what}: {file.path}")
        else:
            if not Path(source).is_file():
                raise FileNotFoundError(f"no {source}")
            shutil.copyfile(source, part)
    except (urllib.error.URLError, OSError) as err:  # HTTPError is a URLError
        reason = getattr(err, "reason", None) or err
        raise MissingAssetError(f"{what}: {dest} is missing and could not be fetched from {source} ({reason}); "
                                "run `make data` where a network exists, or set EQUI_DATA_MIRROR") from None
    verify(part, file, source)
    os.replace(part, dest)
    return dest


def _download(url: str, part: Path, size: int, name: str) -> None:
    """Stream `url` into `part`, resuming from what `part` already holds when the server allows; a
    large download is announced with its size once the host has answered."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as err:
        if err.code != 416 or not have:  # 416: nothing left to send, the .part is whole
            raise
        return
    with response:
        resumed = have and response.status == 206
        total = int(response.headers.get("Content-Length") or 0) + (have if resumed else 0) or size
        if total >= ANNOUNCE_BYTES:
            print(f"fetching {name} ({human(total)}) from {url}" + (f", resuming at {human(have)}" if resumed else ""),
                  flush=True)
        with open(part, "ab" if resumed else "wb") as out, tqdm(
                total=total, initial=have if resumed else 0, unit="B", unit_scale=True, desc=Path(name).name,
                mininterval=1, disable=total < CHUNK) as bar:
            for block in iter(lambda: response.read(CHUNK), b""):
                out.write(block)
                bar.update(len(block))
