"""The dqn task's rows of `python run.py assets`: its data and weights, where, and how to get them."""

from __future__ import annotations

from omegaconf import DictConfig

from ...assets import Asset, cached


def assets(cfg: DictConfig) -> list[Asset]:
    return [cached(cfg, f"pretrained DQN for {env}", "dqn", f"{env}-seed*.zip",
                   f"python run.py task=dqn task.env={env} method=vanilla") for env in cfg.task.envs]
