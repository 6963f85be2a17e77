"""The one operator every method shares:

    out(x) = Σ_g λ(g·x) · g⁻¹·M(g·x) / Σ_g λ(g·x)

Uniform λ is equitune, an argmin indicator of a proxy loss is equizero, a λ-network is
λ-equitune (``equi.weighting``). All |G| views go through the model in one batched pass.
With ``invariant=True`` the outputs are not transformed back (class logits, values).
"""

from __future__ import annotations

import torch
from torch import nn

from .groups import FiniteGroup
from .weighting import Uniform, Weighting


class EquivariantWrapper(nn.Module):
    """Wrap any model M so that it becomes G-equivariant (or G-invariant).

    encoder: optional; then M = model ∘ encoder and the weighting sees the encoder's
    features of each view, so one encoder pass feeds both (CLIP's λ-network, a CNN's
    frozen backbone).
    """

    def __init__(
        self,
        model: nn.Module,
        group: FiniteGroup,
        weighting: Weighting | None = None,
        *,
        invariant: bool = False,
        encoder: nn.Module | None = None,
    ):
        super().__init__()
        self.model = model
        self.group = group
        self.weighting = weighting if weighting is not None else Uniform()
        self.invariant = invariant
        self.encoder = encoder

    def views(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """g⁻¹·M(g·x) for every g, shape (|G|, B, …), and what λ sees of each view."""
        n, batch = self.group.order, x.shape[0] if x.ndim else 0
        transformed = self.group.orbit(x)
        features = self.encoder(transformed) if self.encoder is not None else transformed
        y = self.model(features)
        if y.shape[0] != n * batch:
            raise ValueError(f"model returned a batch of {y.shape[0]} for {n}×{batch} transformed inputs")
        return self.pull_back(y), features.reshape(n, batch, *features.shape[1:])

    def pull_back(self, y: torch.Tensor) -> torch.Tensor:
        """Model outputs for the stacked views (|G|·B, …) → g⁻¹·M(g·x) as (|G|, B, …)."""
        y = y.reshape(self.group.order, -1, *y.shape[1:])
        if self.invariant:
            return y
        self.group.output_action.check(y[0])
        return torch.stack([self.group.act_output(self.group.inverse(g), y[g]) for g in self.group.elements])

    def aggregate(self, views: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Weighted average over the group axis; returns (output, normalised weights (|G|, B), or
        (|G|, B, …) when the weighting gives each output coordinate its own, as R-EquiLM's does)."""
        weights = self.weighting(views, features)
        weights = weights / weights.sum(0, keepdim=True)
        expand = weights.reshape(*weights.shape, *([1] * (views.ndim - weights.ndim)))
        out = (expand * views).sum(0)
        if self.weighting.straight_through and views.requires_grad:
            # only where gradients flow: in float32, mean + (out − mean) loses out's small
            # entries next to large ones (a decoder's −1e9 log-probabilities, say)
            mean = views.mean(0)
            out = mean + (out - mean).detach()
        return out, weights

    def forward(self, x: torch.Tensor, return_weights: bool = False):
        out, weights = self.aggregate(*self.views(x))
        return (out, weights) if return_weights else out


def outputs_collecting_weights(net: nn.Module, x: torch.Tensor, weights: list[torch.Tensor]) -> torch.Tensor:
    """net(x); when net is the operator, its weights per view (|G|, B) are appended to `weights`
    (on the CPU, as float), for evaluations that report them."""
    if not isinstance(net, EquivariantWrapper):
        return net(x)
    out, w = net(x, return_weights=True)
    weights.append(w.float().cpu())
    return out
