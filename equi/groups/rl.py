"""Groups for finite-action RL: a transform of the state paired with a permutation of actions.

The output action permutes Q-values (or policy logits) over actions, so the operator's
g⁻¹·Q(g·s) is the usual symmetrised Q-function; ``act_action`` maps a chosen action.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from .base import Action, FiniteGroup, IdPermutation, ScorePermutation, cyclic_table, permutation_powers
from .image import SpatialAction


class SignFlip:
    """Z2 on state vectors: the non-identity element multiplies coordinate i by signs[i]."""

    def __init__(self, signs: Sequence[float]):
        self.signs = torch.as_tensor(list(signs), dtype=torch.float32)

    def check(self, x: torch.Tensor) -> None:
        if x.shape[-1] != len(self.signs):
            raise ValueError(f"states must have {len(self.signs)} coordinates on the last axis, got shape {tuple(x.shape)}")

    def __call__(self, g: int, x: torch.Tensor) -> torch.Tensor:
        return x * self.signs.to(x) if g else x


@dataclass(frozen=True)
class StateActionGroup(FiniteGroup):
    """A group acting on states (input) and on discrete actions (output scores and ids)."""

    actions: IdPermutation

    def act_action(self, g: int, a: torch.Tensor) -> torch.Tensor:
        return self.actions(g, a)


def state_action_group(name: str, table: torch.Tensor, state_action: Action, action_perms: torch.Tensor) -> StateActionGroup:
    return StateActionGroup(name, table, state_action, ScorePermutation(action_perms), IdPermutation(action_perms, what="action"))


def reflection(signs: Sequence[float], action_swap: Sequence[int], name: str = "reflection") -> StateActionGroup:
    """Z2: flip the signs of some state coordinates and swap actions (CartPole: left↔right)."""
    return state_action_group(name, cyclic_table(2), SignFlip(signs), permutation_powers(action_swap, 2))


def grid_rotations(quarter_turn_actions: Sequence[int], name: str = "grid_rot90") -> StateActionGroup:
    """C4 on image observations (…, H, W); a counter-clockwise quarter turn moves action a to
    quarter_turn_actions[a] (for stay, up, right, down, left that is [0, 4, 1, 2, 3])."""
    return state_action_group(
        name, cyclic_table(4), SpatialAction([(0, k) for k in range(4)]), permutation_powers(quarter_turn_actions, 4)
    )
