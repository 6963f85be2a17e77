"""The CNN task's runner: our protocol or the paper's (task.protocol), over one CNN toolkit."""

from __future__ import annotations

from omegaconf import DictConfig

from ... import hardware
from ..context import RunContext
from . import ours, paper
from .toolkit import inputs  # noqa: F401 - the task's data and weights, the same for both protocols


def run(cfg: DictConfig, ctx: RunContext) -> dict:
    hardware.fixed_input_shapes()
    return (paper if cfg.task.protocol == "paper" else ours).run(cfg, ctx)
