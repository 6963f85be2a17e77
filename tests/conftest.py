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
