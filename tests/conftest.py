import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from torchvision.io import encode_jpeg

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "data"
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
REAL_DATA_ITEMS = {  # the real_data marker's argument → a file that `make data` leaves in the data folder
    "scan": "scan/tasks.txt",
    "cifar10": "cifar10/train",
    "nlg": "nlg/regard/train_other.tsv",
}


def pytest_configure(config):
    config.addinivalue_line("markers", "real_data(item): needs a full dataset of the data folder "
                                       f"(EQUI_DATA or data/): one of {', '.join(REAL_DATA_ITEMS)}")


REAL_DATA = Path(os.environ.get("EQUI_DATA") or REPO / "data").expanduser().resolve()  # before the tests set EQUI_DATA


def pytest_collection_modifyitems(config, items):
    """Tests marked real_data skip when their dataset is not in the data folder (one summary line)."""
    root = REAL_DATA
    for item in items:
        marker = item.get_closest_marker("real_data")
        if marker and not (root / REAL_DATA_ITEMS[marker.args[0]]).exists():
            item.add_marker(pytest.mark.skip(reason="real_data"))


def pytest_terminal_summary(terminalreporter):
    """Skips summed up by reason, one line each (pyproject's -r leaves them out)."""
    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    for reason, n in reasons.items():
        if reason == "real_data":
            reason = (f"they need the full datasets in {REAL_DATA}; `make data` fetches them "
                      "(EQUI_DATA points elsewhere)")
        terminalreporter.write_line(f"{n} tests skipped: {reason}")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch, fixture_data):
    """Every test writes runs and caches under its own tmp dir, never into outputs/; runs read the
    fixture data folder and fetch nothing (EQUI_DOWNLOAD=false) unless a test says otherwise."""
    monkeypatch.setenv("EQUI_OUTPUTS", str(tmp_path / "outputs"))
    monkeypatch.setenv("EQUI_DATA", str(fixture_data))
    monkeypatch.setenv("EQUI_DOWNLOAD", "false")
    monkeypatch.delenv("EQUI_DATA_MIRROR", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    torch.manual_seed(0)


def write_cifar_images(folder: Path, per_class: dict[str, int], seed: int = 0) -> None:
    """CIFAR-10's image-folder layout (<split>/<class>/NNNN.jpg) with generated 32×32 JPEGs: each
    class a colour and a stripe orientation under noise, so that a network can tell them apart."""
    generator = torch.Generator().manual_seed(seed)
    for split, n in per_class.items():
        for label, name in enumerate(CIFAR_CLASSES):
            (folder / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                base = torch.tensor([25 * label, 255 - 25 * label, 120], dtype=torch.float).view(3, 1, 1)
                stripes = (torch.arange(32) // (2 + label % 4) % 2 * 60).float()
                stripes = stripes.view(1, 32, 1) if label < 5 else stripes.view(1, 1, 32)
                image = (base + stripes + 40 * torch.randn(3, 32, 32, generator=generator)).clamp(0, 255)
                (folder / split / name / f"{i:04d}.jpg").write_bytes(encode_jpeg(image.to(torch.uint8)).numpy().tobytes())


@pytest.fixture(scope="session")
def fixture_data(tmp_path_factory) -> Path:
    """A small data folder in `make data`'s layout: the shipped SCAN and NLG fixtures
    (tests/fixtures/README.md) and generated CIFAR-10 images (12 train, 6 test per class)."""
    root = tmp_path_factory.mktemp("data")
    shutil.copytree(FIXTURES, root, dirs_exist_ok=True)
    write_cifar_images(root / "cifar10", {"train": 12, "test": 6})
    return root


@pytest.fixture
def real_data() -> Path:
    """The full datasets (`make data`, or EQUI_DATA as the suite started); tests using it carry
    @pytest.mark.real_data(<item>)."""
    return REAL_DATA


def write_scan_run(runs: Path, name: str, method: str, accuracy: float, architecture: str = "seq2seq_paper",
                   pretrain: dict | None = None, finetune: dict | None = None) -> None:
    """A scan results.json (LSTM, Add Jump, full test set) for the figure modules to read."""
    config = {"task": {"cell": "lstm", "split": "add_jump", "limit": None, "architecture": architecture,
                       "pretrain": pretrain or {}, "finetune": finetune or {"examples": 0}},
              "method": {"decoding": None}}
    run = runs / name
    run.mkdir(parents=True)
    (run / "results.json").write_text(json.dumps({"task": "scan", "method": method, "config": config,
                                                  "metrics": {"test_accuracy": accuracy}}))
