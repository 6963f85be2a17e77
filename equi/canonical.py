"""Canonical-λ-equitune for continuous groups (paper Definition 1), here SO(2).

An equivariant canonicalizer C picks a rotation per input (C(g·x) = g·C(x)); the model
sees the canonical input x̄ = C(x)⁻¹·x, which is the same for every rotated copy of x.
Because one canonical view can be a poor one for a pretrained model, the finite operator
then averages over a few extra rotations h of x̄ with λ-weights:

    out(x) = C(x) · Σ_h λ(h·x̄) h⁻¹·M(h·x̄) / Σ_h λ(h·x̄)      (drop C(x)· when invariant)

With one extra rotation (the identity) this is plain canonicalization (Canon-MLP); a λ over
one view is always 1 and would never train, so none is kept and Canon-MLP has only M's parameters.
"""

from __future__ import annotations

import torch
from torch import nn

from .groups import SO2
from .operator import EquivariantWrapper
from .weighting import Weighting


class CanonicalLambda(nn.Module):
    def __init__(
        self,
        model: nn.Module,
        canonicalizer: nn.Module,
        extra_rotations: int = 1,
        weighting: Weighting | None = None,
        *,
        invariant: bool = True,
    ):
        super().__init__()
        self.so2 = SO2(invariant_output=invariant)
        self.canonicalizer = canonicalizer
        if extra_rotations == 1:
            weighting = None
        self.inner = EquivariantWrapper(model, self.so2.finite_subgroup(extra_rotations), weighting, invariant=invariant)

    def forward(self, x: torch.Tensor, return_weights: bool = False):
        theta = self.canonicalizer(x)
        out, weights = self.inner(self.so2.act_input(-theta, x), return_weights=True)
        out = self.so2.act_output(theta, out)
        return (out, weights) if return_weights else out
