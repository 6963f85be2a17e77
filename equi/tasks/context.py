"""What a task runner gets besides its config: the device, the logger, the run dir, the shared
cache of pretrained artefacts, the data folder and the fingerprints of the files it reads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig

from ..inputs import Fingerprints
from ..logger import NullLogger


@dataclass
class RunContext:
    """What a task runner gets besides its config."""

    device: torch.device
    logger: NullLogger
    run_dir: Path
    cache_dir: Path  # checkpoints shared between runs (pretrained models), keyed by config
    data_dir: Path
    download: bool = False  # fetch missing data and weights when their host answers (cfg.download)
    fingerprints: Fingerprints | None = None  # sha256 of the files read; by default kept under cache_dir

    def __post_init__(self):
        if self.fingerprints is None:
            self.fingerprints = Fingerprints(self.cache_dir)


def context(cfg: DictConfig, run_dir: Path, device: torch.device = torch.device("cpu")) -> RunContext:
    return RunContext(device=device, logger=NullLogger(), run_dir=run_dir, cache_dir=Path(cfg.paths.outputs) / "cache",
                      data_dir=Path(cfg.paths.data), download=bool(cfg.download))
