"""The one operator every method shares:

    out(x) = Σ_g λ(g·x) · g⁻¹·M(g·x) / Σ_g λ(g·x)

Uniform λ is equitune, an argmin indicator of a proxy loss is equizero, a λ-network is
λ-equitune (``equi.weighting``). The |G| views go through the model in one batched pass, or in
passes of at most ``max_views_per_pass`` inputs to bound activation memory. With
``invariant=True`` the outputs are not transformed back (class logits, values). ``SampledViews``
averages over a random sample of the group instead of all of it.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .groups import FiniteGroup
from .weighting import Uniform, Weighting


class SampledViews:
    """Monte-Carlo equitune for groups too large to average over: every forward pass averages over
    `count` elements drawn uniformly from the group (with or without replacement), a fresh draw
    each time. Every draw is uniform, so the output is an unbiased estimate of the full group
    average, with a standard error that falls as 1/√count; without replacement and count = |G| it
    is the full average. Equivariance holds in distribution (out(g·x) is distributed as g·out(x),
    so it holds in expectation), not for any one draw. Uniform weights only: a λ- or
    argmin-weighted average over a sample is a ratio of two estimates, biased for any finite count.
    """

    def __init__(self, count: int, replacement: bool = True, generator: torch.Generator | None = None):
        if count < 1:
            raise ValueError(f"a sample needs at least one view, got {count}")
        self.count, self.replacement, self.generator = count, replacement, generator

    def draw(self, order: int) -> list[int]:
        if self.replacement:
            return torch.randint(order, (self.count,), generator=self.generator).tolist()
        if self.count > order:
            raise ValueError(f"cannot draw {self.count} distinct elements from a group of order {order}")
        return torch.randperm(order, generator=self.generator)[: self.count].tolist()


def is_per_sample(value: Any, batch: int) -> bool:
    return isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] == batch


def repeat_per_view(kwargs: dict[str, Any], order: int, batch: int) -> dict[str, Any]:
    """The model's keyword inputs for the stacked views: each tensor whose first axis is the batch
    B repeated `order` times in the orbit's order (view g of sample b at row g·B + b); anything
    else as it is. The group does not act on them: pass only inputs that g leaves alone."""
    return {name: value.repeat(order, *[1] * (value.ndim - 1)) if is_per_sample(value, batch) else value
            for name, value in kwargs.items()}


def concatenated(parts: list[torch.Tensor]) -> torch.Tensor:
    return parts[0] if len(parts) == 1 else torch.cat(parts)  # one pass: no copy


class EquivariantWrapper(nn.Module):
    """Wrap any model M so that it becomes G-equivariant (or G-invariant).

    encoder: optional; then M = model ∘ encoder and the weighting sees the encoder's
    features of each view, so one encoder pass feeds both (CLIP's λ-network, a CNN's
    frozen backbone).
    model_returns_features: the model returns (outputs, what the weighting sees of each view),
    for a model whose encoding is not what it passes on (a greedy decoder's command summary
    beside its decoder state), so that λ reads it from the same pass; no encoder then.
    max_views_per_pass: the |G|·B stacked views go through encoder and model in passes of at
    most this many, so a pass's activations are bounded whatever |G| and B. Outputs are the
    same as in one pass for models that treat each sample on its own (not BatchNorm in training
    mode, whose statistics would be a pass's). With gradients, autograd would keep every pass's
    activations for the backward pass; ``recompute_passes`` keeps only their inputs and outputs
    and runs each pass again during backward (torch.utils.checkpoint), one extra forward pass
    for bounded training memory (BatchNorm in training mode would update its running statistics
    twice). scripts/bench_chunks.py measures both.
    kwargs of forward: extra inputs of the model and encoder, see repeat_per_view.
    sampling: average over a random sample of the group per forward pass (see SampledViews).
    """

    def __init__(
        self,
        model: nn.Module,
        group: FiniteGroup,
        weighting: Weighting | None = None,
        *,
        invariant: bool = False,
        encoder: nn.Module | None = None,
        max_views_per_pass: int | None = None,
        recompute_passes: bool = False,
        sampling: SampledViews | None = None,
        model_returns_features: bool = False,
    ):
        super().__init__()
        if encoder is not None and model_returns_features:
            raise ValueError("the weighting sees the encoder's features or the model's, not both")
        if max_views_per_pass is not None and max_views_per_pass < 1:
            raise ValueError(f"max_views_per_pass must be at least 1, got {max_views_per_pass}")
        if sampling is not None and weighting is not None and not isinstance(weighting, Uniform):
            raise ValueError("sampled views are averaged uniformly (equitune): a weighted average over a sample "
                             "would be a biased ratio estimate")
        self.model = model
        self.group = group
        self.weighting = weighting if weighting is not None else Uniform()
        self.invariant = invariant
        self.encoder = encoder
        self.max_views_per_pass = max_views_per_pass
        self.recompute_passes = recompute_passes
        self.sampling = sampling
        self.model_returns_features = model_returns_features

    def views(self, x: torch.Tensor, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        """g⁻¹·M(g·x) for every g averaged over, shape (|G|, B, …), and what λ sees of each view."""
        elements = self.sampling.draw(self.group.order) if self.sampling is not None else list(self.group.elements)
        n, batch = len(elements), x.shape[0] if x.ndim else 0
        stacked = self.group.orbit(x, elements)
        per_view = repeat_per_view(kwargs, n, batch)
        step = self.max_views_per_pass or stacked.shape[0]
        passes = []
        for start in range(0, stacked.shape[0], step):
            rows = slice(start, start + step)
            pass_kwargs = {name: per_view[name][rows] if is_per_sample(value, batch) else value
                           for name, value in kwargs.items()}
            passes.append(self.one_pass(stacked[rows], pass_kwargs))
        y = concatenated([out for out, _ in passes])
        if y.shape[0] != n * batch:
            raise ValueError(f"model returned a batch of {y.shape[0]} for {n}×{batch} transformed inputs")
        features_are_inputs = self.encoder is None and not self.model_returns_features
        features = stacked if features_are_inputs else concatenated([f for _, f in passes])
        return self.pull_back(y, elements), features.reshape(n, batch, *features.shape[1:])

    def one_pass(self, inputs: torch.Tensor, kwargs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """(M's outputs, what the weighting sees) for a slice of the stacked views."""
        if self.recompute_passes and torch.is_grad_enabled():
            return checkpoint(self.encode_and_predict, inputs, kwargs, use_reentrant=False)
        return self.encode_and_predict(inputs, kwargs)

    def encode_and_predict(self, inputs: torch.Tensor, kwargs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.model_returns_features:
            return self.model(inputs, **kwargs)
        features = self.encoder(inputs, **kwargs) if self.encoder is not None else inputs
        return self.model(features, **kwargs), features

    def pull_back(self, y: torch.Tensor, elements: Sequence[int] | None = None) -> torch.Tensor:
        """Model outputs for the stacked views (|G|·B, …) → g⁻¹·M(g·x) as (|G|, B, …); `elements`:
        the g of each block of B rows (all of the group, in order, by default)."""
        elements = list(self.group.elements) if elements is None else elements
        y = y.reshape(len(elements), -1, *y.shape[1:])
        if self.invariant:
            return y
        self.group.output_action.check(y[0])
        return self.group.act_output_stacked([self.group.inverse(g) for g in elements], y)

    # values in one view above which the weighted sum is a batched matmul (weighted_sum), which
    # holds no (|G|, B, …) product: an LM's 50k-token logits. Below, the product is a few KiB and
    # 2-4× faster (SCAN's decoder steps: 5 vs 19 µs on a CPU core)
    MATMUL_ABOVE = 1 << 16

    def aggregate(self, views: torch.Tensor, features: torch.Tensor,
                  weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Weighted average over the group axis; returns (output, normalised weights (|G|, B), or
        (|G|, B, …) when the weighting gives each output coordinate its own, as R-EquiLM's does).
        ``weights``: the weighting's, computed before (unnormalised); the weighting is not called."""
        weights = self.weighting(views, features) if weights is None else weights
        weights = weights / weights.sum(0, keepdim=True)
        if weights.ndim == 2 and views.ndim > 2 and views[0].numel() > self.MATMUL_ABOVE:
            out = weighted_sum(weights, views)
        else:  # the product as written: for small views faster than a matmul's setup, and no bigger than them
            out = (weights.reshape(*weights.shape, *([1] * (views.ndim - weights.ndim))) * views).sum(0)
        if self.weighting.straight_through and views.requires_grad:
            # only where gradients flow: in float32, mean + (out − mean) loses out's small
            # entries next to large ones (a decoder's −1e9 log-probabilities, say)
            mean = views.mean(0)
            out = mean + (out - mean).detach()
        return out, weights

    def forward(self, x: torch.Tensor, return_weights: bool = False, **kwargs):
        """kwargs go to the model (and the encoder), repeated per view where they are per sample
        (see repeat_per_view)."""
        out, weights = self.aggregate(*self.views(x, **kwargs))
        return (out, weights) if return_weights else out

    def check_equivariance(self, x: torch.Tensor, atol: float = 1e-5, **kwargs) -> dict[str, float]:
        """equi.check.check_equivariance of this wrapper under its own group (invariance when
        `invariant`): the largest error per element, or AssertionError naming the worst."""
        from .check import check_equivariance, group_pairs  # equi.check imports the groups

        wrapped = (lambda inputs: self(inputs, **kwargs)) if kwargs else self
        return check_equivariance(wrapped, x, group_pairs(self.group, self.invariant), atol)


def weighted_sum(weights: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
    """Σ_g weights[g, b]·views[g, b, …] as one batched matmul over the group axis, (B, 1, |G|) @
    (B, |G|, …): no (|G|, B, …) product in memory. In the dtype weights · views would have (autocast
    off, which would lower it), so the result is that product's sum to rounding."""
    order, batch = weights.shape
    dtype = torch.promote_types(weights.dtype, views.dtype)
    flat = views.reshape(order, batch, -1).to(dtype)  # no copy for contiguous views already in that dtype
    with torch.autocast(views.device.type, enabled=False):
        out = torch.bmm(weights.to(dtype).t().unsqueeze(1), flat.transpose(0, 1))
    return out.reshape(views.shape[1:])


def outputs_collecting_weights(net: nn.Module, x: torch.Tensor, weights: list[torch.Tensor]) -> torch.Tensor:
    """net(x); when net is the operator, its weights per view (|G|, B) are appended to `weights`
    (on the CPU, as float), for evaluations that report them."""
    if not isinstance(net, EquivariantWrapper):
        return net(x)
    out, w = net(x, return_weights=True)
    weights.append(w.float().cpu())
    return out
