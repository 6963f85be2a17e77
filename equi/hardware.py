"""hardware=cpu|cuda|multigpu → a torch device; never a hard-coded .cuda()."""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from torch import nn

from .errors import ConfigError


def device_for(hw: DictConfig) -> torch.device:
    if hw.threads:
        torch.set_num_threads(int(hw.threads))
    if hw.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"hardware={hw.name} asks for a GPU but torch sees none; use hardware=cpu")
    return torch.device(hw.device)


def parallelize(model: nn.Module, hw: DictConfig) -> nn.Module:
    """Split batches over all visible GPUs for hardware=multigpu (a no-op with one GPU)."""
    if hw.data_parallel and torch.cuda.device_count() > 1:
        return nn.DataParallel(model)
    return model
