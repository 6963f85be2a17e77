"""hardware=cpu|cuda|multigpu → a torch device and its numeric precision; never a hard-coded .cuda().

Precision is process-wide like the device (set by ``configure`` for each run): the training loops
wrap forward passes in ``autocast()`` and step through ``backward_step``, which scales the loss for
fp16 (GradScaler) and is a plain backward/step in fp32. CPU runs are fp32 (the schema refuses
others), so they stay bit-reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from omegaconf import DictConfig
from torch import nn

from . import distributed
from .errors import ConfigError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    """Autocast for forward passes; a GradScaler for fp16 so small gradients do not underflow."""

    def __init__(self, name: str = "fp32", device_type: str = "cpu"):
        self.dtype, self.device_type = DTYPES[name], device_type
        self.scaler = torch.amp.GradScaler(device_type, enabled=self.dtype == torch.float16)

    def autocast(self):
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype != torch.float32)

    def backward_step(self, loss: torch.Tensor, opt: torch.optim.Optimizer,
                      clip_groups: Sequence[Sequence[nn.Parameter]] = (), clip: float = 0.0) -> None:
        """loss.backward(), the gradients of each group of parameters in `clip_groups` clipped to
        norm `clip` on their own (on true gradients), opt.step()."""
        self.scaler.scale(loss).backward()
        if clip_groups:
            self.scaler.unscale_(opt)
            for params in clip_groups:
                nn.utils.clip_grad_norm_(params, clip)
        self.scaler.step(opt)
        self.scaler.update()


_current = Precision()


def configure(hw: DictConfig) -> torch.device:
    """This process's device (cuda:<local rank> under DDP) and precision for the run; joins the
    process group when the run is several processes."""
    global _current
    if hw.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"hardware={hw.name} asks for a GPU but torch sees none; use hardware=cpu")
    distributed.join(hw.device.split(":")[0])
    if hw.threads or distributed.world_size() > 1:  # ranks share the cores
        torch.set_num_threads(hw.threads or max(1, torch.get_num_threads() // distributed.world_size()))
    device = torch.device(hw.device)
    if device.type == "cuda":
        device = torch.device("cuda", distributed.local_rank() if distributed.world_size() > 1 else device.index or 0)
        torch.cuda.set_device(device)
        if hw.precision == "bf16" and not torch.cuda.is_bf16_supported():
            raise ConfigError("hardware.precision=bf16 needs a GPU with bfloat16 (Ampere or newer); use fp16")
    torch.backends.cudnn.benchmark = False  # fixed_input_shapes() turns it on for image tasks
    _current = Precision(hw.precision, device.type)
    return device


def autocast():
    return _current.autocast()


def backward_step(loss: torch.Tensor, opt: torch.optim.Optimizer,
                  clip_groups: Sequence[Sequence[nn.Parameter]] = (), clip: float = 0.0) -> None:
    _current.backward_step(loss, opt, clip_groups, clip)


def fixed_input_shapes() -> None:
    """Every batch has the same shape (image tasks): let cuDNN pick the fastest kernels once."""
    torch.backends.cudnn.benchmark = torch.cuda.is_available()


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host batch on `device`; to a GPU from pinned memory without blocking the host."""
    if torch.device(device).type != "cuda":
        return x.to(device)
    return x.pin_memory().to(device, non_blocking=True)


def nproc(hw: DictConfig) -> int:
    """Processes to start for a run: hardware.nproc, or (null) one per visible GPU."""
    return hw.nproc or max(1, torch.cuda.device_count())
