"""The data catalog and its downloader, against a mirror served on 127.0.0.1: verified fetches, a
corrupt file refused, an interrupted download resumed, and a task run from what was fetched."""

import dataclasses
import hashlib
import http.server
import shutil
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path

import pytest

from equi.config import compose_config
from equi.data import catalog, cifar
from equi.data.download import CorruptDownload, RemoteFile, fetch
from equi.errors import MissingAssetError, UserError
from equi.experiment import execute

from .conftest import FIXTURES, REPO, write_cifar_images


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """A static file server that honours `Range: bytes=N-` (Python's own ignores it), and counts requests."""

    requests: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).requests.append((self.path, self.headers.get("Range")))
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])


@pytest.fixture
def server(tmp_path):
    """(root folder, base URL) of an HTTP server on 127.0.0.1 serving root."""
    root = tmp_path / "served"
    root.mkdir()
    RangeHandler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def pinned(path: str, content: bytes) -> RemoteFile:
    return RemoteFile(path, "http://127.0.0.1:9/unused", len(content), hashlib.sha256(content).hexdigest())


def test_a_file_is_fetched_from_the_mirror_url_and_verified(server, tmp_path, monkeypatch):
    served, url = server
    content = b"IN: jump OUT: I_JUMP\n" * 1000
    (served / "scan").mkdir()
    (served / "scan" / "a.txt").write_bytes(content)
    monkeypatch.setenv("EQUI_DATA_MIRROR", url)
    path = fetch(pinned("scan/a.txt", content), tmp_path / "data", "a file")
    assert path.read_bytes() == content and not list(path.parent.glob("*.part"))
    assert RangeHandler.requests == [("/scan/a.txt", None)]
    fetch(pinned("scan/a.txt", content), tmp_path / "data", "a file")  # present: no second request
    assert len(RangeHandler.requests) == 1


def test_a_corrupt_file_is_refused_and_nothing_is_left_under_its_name(server, tmp_path, monkeypatch):
    served, url = server
    (served / "a.txt").write_bytes(b"not the release")
    monkeypatch.setenv("EQUI_DATA_MIRROR", url)
    with pytest.raises(CorruptDownload, match=r"^a.txt from http://127.0.0.1:\d+/a.txt has sha256 [0-9a-f]{64}, "
                                              r"expected [0-9a-f]{64}: the copy is corrupt"):
        fetch(pinned("a.txt", b"the release"), tmp_path, "a file")
    assert list(tmp_path.iterdir()) == [tmp_path / "served"]  # neither a.txt nor a.txt.part


def test_an_interrupted_download_resumes_from_its_part_file(server, tmp_path, monkeypatch):
    served, url = server
    content = bytes(range(256)) * 4096  # 1 MiB
    (served / "big.bin").write_bytes(content)
    monkeypatch.setenv("EQUI_DATA_MIRROR", url)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "big.bin.part").write_bytes(content[:300_000])  # what a killed download left
    path = fetch(pinned("big.bin", content), tmp_path / "data", "a file")
    assert path.read_bytes() == content
    assert RangeHandler.requests == [("/big.bin", "bytes=300000-")]


def test_a_part_file_that_does_not_match_restarts_cleanly(server, tmp_path, monkeypatch):
    served, url = server
    content = b"x" * 5000
    (served / "f.bin").write_bytes(content)
    monkeypatch.setenv("EQUI_DATA_MIRROR", url)
    (tmp_path / "f.bin.part").write_bytes(b"garbage")  # resumed onto garbage: refused, then fetched whole
    with pytest.raises(CorruptDownload):
        fetch(pinned("f.bin", content), tmp_path, "a file")
    assert not (tmp_path / "f.bin.part").exists()
    assert fetch(pinned("f.bin", content), tmp_path, "a file").read_bytes() == content


def test_offline_a_missing_item_is_one_line_within_seconds(tmp_path, monkeypatch):
    monkeypatch.setenv("EQUI_DATA_MIRROR", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(MissingAssetError) as err:
        catalog.ensure("regard", tmp_path, download=True)
    message = str(err.value)
    assert "\n" not in message and "regard annotations (Sheng et al. 2019)" in message and "make data" in message
    with pytest.raises(MissingAssetError, match=r"is missing from .*; run `make data` \(or `python run.py data scan`\)"):
        catalog.ensure("scan", tmp_path, download=False)


def test_make_data_offline_ends_in_one_line_per_missing_item_and_exit_2(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "EQUI_DATA_MIRROR": "http://127.0.0.1:9", "EQUI_OUTPUTS": str(tmp_path / "out")}
    result = subprocess.run([sys.executable, str(REPO / "run.py"), "data", "scan", "nlg", f"paths.data={tmp_path / 'd'}"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 2
    errors = result.stderr.strip().splitlines()
    assert [line.split(":")[1].strip() for line in errors] == ["scan", "regard", "gender_words"]
    assert all(line.startswith("error: ") for line in errors)


def test_a_folder_mirror_fills_the_data_folder_and_a_scan_run_reads_it(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    shutil.copytree(FIXTURES / "scan", mirror / "scan")
    monkeypatch.setitem(catalog.DATASETS, "scan", dataclasses.replace(catalog.DATASETS["scan"], files=tuple(
        RemoteFile(f"scan/{p.relative_to(mirror / 'scan')}", "http://127.0.0.1:9/", p.stat().st_size,
                   hashlib.sha256(p.read_bytes()).hexdigest()) for p in sorted((mirror / "scan").rglob("*.txt")))))
    monkeypatch.setenv("EQUI_DATA_MIRROR", str(mirror))
    data = tmp_path / "data"
    cfg = compose_config(["task=scan", "fast=true", "logger=none", "method=vanilla", "download=true",
                          f"paths.data={data}", "task.pretrain.examples=64", "task.limit=16"])
    record = execute(cfg, tmp_path / "run")
    assert (data / "scan" / "add_prim_split" / "tasks_train_addprim_jump.txt").is_file()
    assert not (data / "scan" / "template_split").exists()  # a run fetches only what it reads
    assert 0 <= record["metrics"]["test_accuracy"] <= 100


def test_the_catalog_pins_every_file(tmp_path):
    for dataset in catalog.DATASETS.values():
        for file in dataset.files:
            assert file.sha256 or file.md5 or dataset.name == "imagenetv2", file.path
            assert file.url.startswith("https://")
    with pytest.raises(Exception, match="unknown dataset 'cifar1000'"):
        catalog.by_name("cifar1000")
    assert catalog.names(["nlg", "scan"]) == ["regard", "gender_words", "scan"]


def test_cifar10_image_folders_in_a_folder_mirror_are_copied_in_and_checked(tmp_path, monkeypatch):
    write_cifar_images(tmp_path / "mirror" / "cifar10-jpg", {"train": 2, "test": 1})
    monkeypatch.setenv("EQUI_DATA_MIRROR", str(tmp_path / "mirror"))
    with pytest.raises(UserError, match=r"cifar10-jpg: 30 images with digest [0-9a-f]{64}, expected 60000 with "):
        catalog.ensure("cifar10", tmp_path / "data", download=True)
    assert not (tmp_path / "data" / "cifar10").exists() and not list((tmp_path / "data").glob(".*.part"))
    monkeypatch.setattr(catalog, "CIFAR10_JPG", ("cifar10-jpg", *catalog.tree_digest(tmp_path / "mirror" / "cifar10-jpg")))
    folder = catalog.ensure("cifar10", tmp_path / "data", download=True)
    assert cifar.load(folder, "train")[0].shape == (20, 3, 32, 32)


@pytest.mark.real_data("scan")
def test_the_real_scan_release_matches_its_pins(real_data):
    for file in catalog.DATASETS["scan"].files:
        assert hashlib.sha256((real_data / file.path).read_bytes()).hexdigest() == file.sha256, file.path


@pytest.mark.real_data("cifar10")
def test_the_cifar10_image_folders_match_their_digest(real_data, tmp_path, monkeypatch):
    if not (real_data / "cifar10" / "train" / "cat").is_dir():
        pytest.skip("the data folder holds torchvision's CIFAR-10 release, not image folders")
    assert catalog.tree_digest(real_data / "cifar10") == catalog.CIFAR10_JPG[1:]
