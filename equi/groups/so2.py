"""SO(2), the continuous rotation group of the plane, acting on sets of 2-D vectors.

Continuous groups cannot be averaged over exactly; ``equi.canonical`` handles them by
canonicalization (an equivariant choice of rotation per input) and then averages over a
finite subset of rotations, which ``finite_subgroup`` provides as an ordinary FiniteGroup.
"""

from __future__ import annotations

import math

import torch

from .base import FiniteGroup, TrivialAction, cyclic_table


def rotate(theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Rotate every 2-D vector of x (shape (B, …, 2)) by its sample's angle theta (shape (B,))."""
    if x.shape[-1] != 2:
        raise ValueError(f"SO(2) acts on 2-D vectors: the last axis must have size 2, got shape {tuple(x.shape)}")
    theta = torch.as_tensor(theta, dtype=x.dtype, device=x.device).reshape(-1, *([1] * (x.ndim - 2)))
    cos, sin = torch.cos(theta), torch.sin(theta)
    return torch.stack((cos * x[..., 0] - sin * x[..., 1], sin * x[..., 0] + cos * x[..., 1]), dim=-1)


class VectorRotation:
    """Finite rotations by fixed angles, as an Action on (B, …, 2) tensors."""

    def __init__(self, angles: list[float]):
        self.angles = angles

    def check(self, x: torch.Tensor) -> None:
        if x.ndim < 2 or x.shape[-1] != 2:
            raise ValueError(f"SO(2) acts on 2-D vectors: expected shape (B, …, 2), got {tuple(x.shape)}")

    def __call__(self, g: int, x: torch.Tensor) -> torch.Tensor:
        return rotate(torch.full((x.shape[0],), self.angles[g]), x)


class SO2:
    """Rotations of the plane; invariant_output=False rotates (B, …, 2) outputs too."""

    def __init__(self, invariant_output: bool = True):
        self.invariant_output = invariant_output

    def act_input(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return rotate(theta, x)

    def act_output(self, theta: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return y if self.invariant_output else rotate(theta, y)

    def finite_subgroup(self, n: int) -> FiniteGroup:
        """C_n ⊂ SO(2): rotations by multiples of 2π/n."""
        if n < 1:
            raise ValueError(f"a finite subgroup needs n ≥ 1 rotations, got {n}")
        action = VectorRotation([2 * math.pi * k / n for k in range(n)])
        return FiniteGroup(f"C{n}", cyclic_table(n), action, TrivialAction() if self.invariant_output else action)


class VectorAngle(torch.nn.Module):
    """A fixed SO(2)-equivariant canonicalizer: the angle of the sum of the chosen input vectors.

    Equivariance: rotating the input by φ rotates the sum too and adds φ to its angle, so
    rotating back by it gives the same canonical input whatever the input's orientation.
    ``VectorAngle(0)`` is the angle of x1 alone; ``VectorAngle((0, 1))`` that of x1 + x2.
    """

    def __init__(self, indices: int | tuple[int, ...] = 0):
        super().__init__()
        self.indices = (indices,) if isinstance(indices, int) else tuple(indices)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x[:, list(self.indices)].sum(1)
        return torch.atan2(v[..., 1], v[..., 0])
