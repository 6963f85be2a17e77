"""Predator–prey Gridworld of van der Pol et al. (2020, MDP homomorphic networks).

A 7×7 torus; the agent sees an egocentric 21×21 image (each cell a 3×3 sprite, the agent
at the centre drawn as a ring, the prey as a "+"). Actions: stay, up, right, down, left.
Reward −0.1 per step, +1 for catching the prey (which ends the episode); the prey moves
in a random direction with probability 0.15. Both sprites are symmetric under quarter
turns, so rotating the image by 90° is rotating the world about the agent.
"""

from __future__ import annotations

import gymnasium
import numpy as np

SIZE = 7
CELL = 3
MOVES = np.array([(0, 0), (-1, 0), (0, 1), (1, 0), (0, -1)])  # (d_row, d_col): stay, up, right, down, left
PREY = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=np.float32)
AGENT = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=np.float32) * 0.5


def wrap(offset: np.ndarray) -> np.ndarray:
    """Relative position on the torus, in -3..3."""
    return (offset + SIZE // 2) % SIZE - SIZE // 2


def transition(prey_offset: np.ndarray, action: int, prey_move: int) -> tuple[np.ndarray, float, bool]:
    """Next prey position relative to the agent, reward, caught.

    The agent moves first; if it lands on the prey the episode ends, else the prey makes
    prey_move (0 = stay).
    """
    offset = wrap(prey_offset - MOVES[action])
    if not offset.any():
        return offset, 1.0, True
    return wrap(offset + MOVES[prey_move]), -0.1, False


def render(prey_offset: np.ndarray) -> np.ndarray:
    """The egocentric (1, 21, 21) observation for a prey at prey_offset from the agent."""
    image = np.zeros((1, SIZE * CELL, SIZE * CELL), dtype=np.float32)
    centre = SIZE // 2
    for sprite, (row, col) in ((AGENT, (centre, centre)), (PREY, centre + prey_offset)):
        image[0, row * CELL : (row + 1) * CELL, col * CELL : (col + 1) * CELL] += sprite
    return image


class GridWorldEnv(gymnasium.Env):
    metadata = {"render_modes": []}

    def __init__(self, prey_move_prob: float = 0.15):
        self.prey_move_prob = prey_move_prob
        self.observation_space = gymnasium.spaces.Box(0.0, 1.0, shape=(1, SIZE * CELL, SIZE * CELL), dtype=np.float32)
        self.action_space = gymnasium.spaces.Discrete(len(MOVES))
        self.prey_offset = np.zeros(2, dtype=int)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.prey_offset = np.zeros(2, dtype=int)
        while not self.prey_offset.any():  # never start on the prey
            self.prey_offset = self.np_random.integers(-(SIZE // 2), SIZE // 2 + 1, size=2)
        return render(self.prey_offset), {}

    def step(self, action):
        moves = self.np_random.random() < self.prey_move_prob
        prey_move = int(self.np_random.integers(1, len(MOVES))) if moves else 0
        self.prey_offset, reward, caught = transition(self.prey_offset, int(action), prey_move)
        return render(self.prey_offset), reward, caught, False, {}
