"""Numerical equivariance checks (the escnn idiom): compare f(g·x) with g·f(x).

Used by the tests and available to users wrapping their own models.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch

from .groups import FiniteGroup, SO2

Transform = Callable[[torch.Tensor], torch.Tensor]


@torch.no_grad()
def equivariance_errors(f: Transform, x: torch.Tensor, pairs: Iterable[tuple[str, Transform, Transform]]) -> dict[str, float]:
    """Largest |f(in(x)) − out(f(x))| for each named (in, out) pair of transforms."""
    fx = f(x)
    return {name: (f(act_in(x)) - act_out(fx)).abs().max().item() for name, act_in, act_out in pairs}


def group_pairs(group: FiniteGroup, invariant: bool):
    for g in group.elements:
        out = (lambda y: y) if invariant else (lambda y, g=g: group.act_output(g, y))
        yield f"{group.name}[{g}]", (lambda x, g=g: group.act_input(g, x)), out


def so2_pairs(so2: SO2, angles: Iterable[float]):
    for a in angles:
        yield f"SO2[{a:.3f}]", (lambda x, a=a: so2.act_input(torch.full((x.shape[0],), a), x)), (
            lambda y, a=a: so2.act_output(torch.full((y.shape[0],), a), y)
        )


def check_equivariance(f: Transform, x: torch.Tensor, pairs, atol: float = 1e-5) -> dict[str, float]:
    """Raise AssertionError naming the worst transform if any error exceeds atol."""
    errors = equivariance_errors(f, x, pairs)
    worst = max(errors, key=errors.get)
    if errors[worst] > atol:
        raise AssertionError(f"not equivariant under {worst}: max error {errors[worst]:.3g} > atol {atol:g}")
    return errors
