"""A data file that is there but unusable stops the run, exit 2, with one line that names the file
(and the line, for text files) and what is wrong with it, before any training."""

import hashlib
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from torchvision import datasets

from equi.data import cifar, scan
from equi.errors import DataError

from .conftest import REPO

SCAN_TRAIN, SCAN_TEST = scan.SPLITS["add_jump"]
TINY_SCAN = ["task=scan", "fast=true", "logger=none", "hardware.threads=1", "task.pretrain.examples=32"]
TINY_CNN = ["task=cnn", "method=vanilla", "fast=true", "logger=none", "hardware.threads=1", "task.weights=scratch",
            "task.model=alexnet"]
TINY_CLIP = ["task=clip", "method=vanilla", "fast=true", "logger=none", "hardware.threads=1"]
ROOT = os.geteuid() == 0  # root reads files whatever their mode: there the chmod runs are left out


@pytest.fixture
def data(tmp_path, fixture_data) -> Path:
    """A copy of the fixture data folder, for a test to break one file of."""
    return Path(shutil.copytree(fixture_data, tmp_path / "data"))


def run(data: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "run.py", *args], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "EQUI_DATA": str(data)})


def error_line(result: subprocess.CompletedProcess) -> str:
    """The run's one line on stderr (tqdm's progress bars aside), after checking exit code 2."""
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.strip().splitlines()
             if not all("%|" in bar for bar in line.split("\r") if bar.strip())]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
    return lines[0].removeprefix("error: ")


def nothing_trained(tmp_path: Path, task: str) -> bool:
    return not (tmp_path / "outputs" / "cache" / task).exists()


def replace_line(path: Path, number: int, line: str) -> None:
    lines = path.read_text().splitlines()
    lines[number - 1] = line
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("file,line,side,word", [(SCAN_TRAIN, 3, "command", "hop"), (SCAN_TEST, 2, "action", "I_HOP")])
def test_scan_word_outside_the_vocabulary_names_file_line_and_word(data, file, line, side, word):
    path = data / "scan" / file
    replace_line(path, line, "IN: hop twice OUT: I_HOP I_HOP" if side == "command" else "IN: jump OUT: I_HOP")
    message = error_line(run(data, *TINY_SCAN))
    known = scan.COMMAND_WORDS if side == "command" else scan.ACTION_WORDS
    assert message == f"{path}:{line}: word {word!r} is not in the SCAN {side} vocabulary (known: {', '.join(known)})"


def test_scan_empty_file_is_named(data):
    path = data / "scan" / SCAN_TRAIN
    path.write_text("\n")
    assert error_line(run(data, *TINY_SCAN)) == f"{path}: no 'IN: … OUT: …' lines"


def test_scan_line_with_two_outs_names_file_and_line(data):
    path = data / "scan" / SCAN_TEST
    replace_line(path, 4, "IN: jump OUT: I_JUMP OUT: I_JUMP")
    assert error_line(run(data, *TINY_SCAN)) == f"{path}:4: expected one ' OUT: ', got 2"


def test_scan_line_without_out_names_the_file_once(data):
    path = data / "scan" / SCAN_TRAIN
    replace_line(path, 2, "jump I_JUMP")
    message = error_line(run(data, *TINY_SCAN))
    assert message == f"{path}:2: expected 'IN: … OUT: …', got 'jump I_JUMP'"
    assert message.count(str(data)) == 1


@pytest.mark.parametrize("split,image", [("test", "cat/0000.jpg"), ("train", "dog/0003.jpg")])
def test_cnn_image_that_is_not_an_image_stops_the_run_before_any_training(data, tmp_path, split, image):
    path = data / "cifar10" / split / image
    path.write_bytes(np.random.default_rng(0).bytes(600))
    assert error_line(run(data, *TINY_CNN)) == f"{path}: not a readable image (Unsupported image file)"
    assert nothing_trained(tmp_path, "cnn")


def test_clip_image_that_is_not_an_image_stops_the_run_before_the_stand_in_trains(data, tmp_path):
    path = data / "cifar10" / "test" / "cat" / "0004.jpg"  # the run's 5th test image; the stand-in tests on 4
    path.write_bytes(np.random.default_rng(0).bytes(600))
    message = error_line(run(data, *TINY_CLIP, "task.eval_per_class=5"))
    assert message == f"{path}: not a readable image (Unsupported image file)"
    assert nothing_trained(tmp_path, "clip")


def test_truncated_and_empty_images_are_named(data):
    path = data / "cifar10" / "test" / "cat" / "0000.jpg"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match=f"^{path}: not a readable image \\(Image is incomplete or truncated\\)$"):
        cifar.read_rgb(path)
    path.write_bytes(b"")
    with pytest.raises(DataError, match=f"^{path}: not a readable image \\(empty file\\)$"):
        cifar.read_rgb(path)


@pytest.mark.parametrize("relative,reader,method,args", [
    (f"scan/{SCAN_TRAIN}", scan.parse, "read_text", TINY_SCAN),
    ("cifar10/test/cat/0000.jpg", cifar.read_rgb, "read_bytes", TINY_CNN),
])
def test_an_unreadable_file_is_named(data, tmp_path, monkeypatch, relative, reader, method, args):
    path = data / relative

    def denied(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    with monkeypatch.context() as patched:
        patched.setattr(Path, method, denied)
        with pytest.raises(DataError, match=f"^cannot read {path}: Permission denied$"):
            reader(path)
    if not ROOT:
        path.chmod(0)
        assert error_line(run(data, *args)) == f"cannot read {path}: Permission denied"
        assert nothing_trained(tmp_path, args[0].removeprefix("task="))


def test_empty_class_folder_is_named(data, tmp_path):
    folder = data / "cifar10" / "train" / "truck"
    shutil.rmtree(folder)
    folder.mkdir()
    message = error_line(run(data, *TINY_CNN))
    assert message.startswith(f"{folder} has no images (.jpg, .jpeg, .png")
    assert nothing_trained(tmp_path, "cnn")


def write_release(root: Path) -> Path:
    """torchvision's CIFAR-10 release layout with 10 random images per batch file."""
    folder = root / cifar.BINARY_FOLDER
    folder.mkdir(parents=True)
    rows = np.random.default_rng(0).integers(0, 255, (10, 3072), dtype=np.uint8)
    for name, _ in datasets.CIFAR10.train_list + datasets.CIFAR10.test_list:
        (folder / name).write_bytes(pickle.dumps({"data": rows, "labels": list(range(10))}))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": list(cifar.CLASSES)}))
    return folder


def test_release_file_failing_its_md5_check_is_named(data, tmp_path):
    folder = write_release(tmp_path / "release")  # its files are not the release's: the first one is named
    message = error_line(run(data, *TINY_CNN, f"task.data_root={tmp_path / 'release'}"))
    assert message == (f"{folder}/data_batch_1: md5 check failed, so the CIFAR10 release in {folder} is damaged; "
                       "remove it and fetch it again (`python run.py data cifar10`)")
    assert nothing_trained(tmp_path, "cnn")


def test_truncated_release_file_is_named_by_its_md5_check(tmp_path, monkeypatch):
    folder = write_release(tmp_path)
    md5 = {path.name: hashlib.md5(path.read_bytes()).hexdigest() for path in folder.iterdir()}
    monkeypatch.setattr(datasets.CIFAR10, "train_list", [[n, md5[n]] for n, _ in datasets.CIFAR10.train_list])
    monkeypatch.setattr(datasets.CIFAR10, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(datasets.CIFAR10, "meta", {**datasets.CIFAR10.meta, "md5": md5["batches.meta"]})
    assert cifar.load(tmp_path, "test")[0].shape == (10, 3, 32, 32)  # the release as written is fine
    test_batch = folder / "test_batch"
    test_batch.write_bytes(test_batch.read_bytes()[:500])  # torchvision would unpickle it to an EOFError
    with pytest.raises(DataError, match=f"^{test_batch}: md5 check failed"):
        cifar.load(tmp_path, "test")


def test_an_image_that_a_loader_worker_cannot_read_is_still_one_line(tmp_path):
    """ImageNet-V2 is decoded in DataLoader workers; torch re-raises their errors with a traceback."""
    from torch.utils.data import DataLoader

    from equi.data.imagesets import ImageNetV2

    for label in (0, 999):
        (tmp_path / str(label)).mkdir()
        (tmp_path / str(label) / "a.jpeg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError) as err:
        list(DataLoader(ImageNetV2(tmp_path, 32, None), num_workers=1))
    assert str(err.value) == f"{tmp_path / '0' / 'a.jpeg'}: not a readable image (Unsupported image file)"
