import json
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_outputs(tmp_path, monkeypatch):
    """Every test writes runs and caches under its own tmp dir, never into outputs/."""
    monkeypatch.setenv("EQUI_OUTPUTS", str(tmp_path / "outputs"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    torch.manual_seed(0)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.fail(f"the shared data folder is missing: {SHARED_DATA}")
    return SHARED_DATA


def write_scan_run(runs: Path, name: str, method: str, accuracy: float, architecture: str = "seq2seq_paper",
                   pretrain: dict | None = None, finetune: dict | None = None) -> None:
    """A scan results.json (LSTM, Add Jump, full test set) for the figure scripts to read."""
    config = {"task": {"cell": "lstm", "split": "add_jump", "limit": None, "architecture": architecture,
                       "pretrain": pretrain or {}, "finetune": finetune or {"examples": 0}},
              "method": {"decoding": None}}
    run = runs / name
    run.mkdir(parents=True)
    (run / "results.json").write_text(json.dumps({"task": "scan", "method": method, "config": config,
                                                  "metrics": {"test_accuracy": accuracy}}))
