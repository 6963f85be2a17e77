"""Environments that gymnasium does not ship (registered on import)."""

import gymnasium

from .gridworld import GridWorldEnv

if "equi/GridWorld-v0" not in gymnasium.registry:
    gymnasium.register("equi/GridWorld-v0", entry_point=GridWorldEnv, max_episode_steps=100)

__all__ = ["GridWorldEnv"]
