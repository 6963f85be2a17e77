"""Experiment tracking: Weights & Biases (offline by default) or nothing."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from urllib.parse import urlsplit

from omegaconf import DictConfig

from .errors import UserError


class NullLogger:
    def log(self, metrics: dict, step: int | None = None) -> None:
        pass

    def summary(self, metrics: dict) -> None:
        pass

    def finish(self) -> None:
        pass


class WandbLogger(NullLogger):
    """One W&B run per equi run, stored under the run dir (``wandb sync <dir>`` uploads it)."""

    def __init__(self, cfg: DictConfig, run_dir: Path, config: dict, name: str):
        import wandb

        self._wandb = wandb
        self.run = wandb.init(
            project=cfg.project,
            entity=cfg.entity,
            mode=cfg.mode,
            dir=str(run_dir),
            config=config,
            name=name,
            group=f"{config['task']['name']}-{config['method']['name']}",
            tags=list(cfg.tags),
            reinit="finish_previous",
        )

    def log(self, metrics, step=None):
        self.run.log(metrics, step=step)

    def summary(self, metrics):
        self.run.summary.update(metrics)

    def finish(self):
        self.run.finish()


def has_wandb_credentials() -> bool:
    """What `wandb login` leaves behind (a ~/.netrc entry) or WANDB_API_KEY, found without the
    network, so that wandb.init neither prompts nor fails with a traceback."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlsplit(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def create_logger(cfg: DictConfig, run_dir: Path, config: dict, name: str) -> NullLogger:
    if cfg.name != "wandb":
        return NullLogger()
    if cfg.mode == "online" and not has_wandb_credentials():
        raise UserError("logger.mode=online needs W&B credentials and none were found (WANDB_API_KEY or ~/.netrc); "
                          "run `wandb login`, or use logger.mode=offline (upload later with `wandb sync`)")
    return WandbLogger(cfg, run_dir, config, name)
