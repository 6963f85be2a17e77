"""Experiment tracking: Weights & Biases (offline by default) or nothing."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig


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


def create_logger(cfg: DictConfig, run_dir: Path, config: dict, name: str) -> NullLogger:
    return WandbLogger(cfg, run_dir, config, name) if cfg.name == "wandb" else NullLogger()
