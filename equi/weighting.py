"""How much each group view counts: λ(g·x) in the operator.

Uniform λ is equitune, an indicator of the argmin of a proxy loss is equizero, a small
network is λ-equitune. Each returns non-negative weights of shape (|G|, B) (or one per output
coordinate, (|G|, B, …)); the operator normalises them over the group.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .proxy import Proxy, get_proxy


class Weighting(nn.Module):
    """Base class. ``straight_through``: forward uses these weights, gradients equitune's.
    ``reads_outputs`` False: the weights depend on the features alone (a λ-network), so forward
    takes outputs=None and a decoder computes them once for all its steps."""

    straight_through = False
    reads_outputs = True

    def forward(self, outputs: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """outputs: g⁻¹·M(g·x), shape (|G|, B, …); features: what λ sees of g·x, (|G|, B, …)."""
        raise NotImplementedError


class Uniform(Weighting):
    """Equitune: every view counts the same."""

    def forward(self, outputs, features):
        return outputs.new_ones(outputs.shape[:2])


class RelaxedUniform(Weighting):
    """R-EquiLM (Basu et al. 2023): equitune on every output coordinate except the ``general``
    ones (token ids such as he, she), which take the identity view alone; weights (|G|, B, V)."""

    def __init__(self, general: Sequence[int]):
        super().__init__()
        self.register_buffer("general", torch.as_tensor(sorted(set(general)), dtype=torch.long))

    def forward(self, outputs, features):
        weights = outputs.new_ones(outputs.shape)
        weights[1:, ..., self.general.to(outputs.device)] = 0.0  # element 0 is the identity
        return weights


class ProxyArgmin(Weighting):
    """Equizero: all weight on the view with the lowest proxy loss.

    Views tied within ``tie_tol`` share the weight equally: an input fixed by some g (a
    command without the swapped words) gives identical views, and picking one of them by
    index would break equivariance. The proxy must be invariant under the output action
    (entropy of class scores is; entropy of the coordinates of an output vector is not).

    The argmin has no gradient, so training uses the straight-through estimator
    out = mean + (chosen − mean).detach(): the forward pass is equizero's, the gradient
    equitune's (the paper's finetuning recipe). ``class_dim`` is the class axis of one
    sample's output (-1 for logits; 0 for dense (C, H, W) maps).
    """

    VIEW_BY_VIEW = 1 << 18  # values (1 MiB of float32) in one view above which a named proxy runs view by view

    def __init__(self, proxy: str | Proxy, straight_through: bool = True, class_dim: int = -1, tie_tol: float = 1e-5):
        super().__init__()
        self.tie_tol = tie_tol
        self.proxy = get_proxy(proxy) if isinstance(proxy, str) else proxy
        self.row_wise = isinstance(proxy, str)  # equi.proxy's proxies score each row alone; others may read all views
        self.straight_through = straight_through
        self.class_dim = class_dim

    def forward(self, outputs, features):
        with torch.no_grad():
            axis = self.class_dim if self.class_dim < 0 else self.class_dim + 2
            scores = outputs.movedim(axis, -1)
            if self.row_wise and scores[0].numel() > self.VIEW_BY_VIEW:
                # an LM's logits over 50k tokens: the proxy's temporaries (softmax, log, product) are
                # then one view's, not |G| views' (bench_operator: LM equizero memory 1.81 → 1.30×)
                loss = torch.stack([self.proxy(view) for view in scores])
            else:
                loss = self.proxy(scores)
            loss = loss.reshape(*outputs.shape[:2], -1).mean(-1)
            return (loss <= loss.amin(0, keepdim=True) + self.tie_tol).to(outputs.dtype)


class Residual(nn.Module):
    """x + f(x): a skip connection around one hidden layer."""

    def __init__(self, f: nn.Module):
        super().__init__()
        self.f = f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.f(x)


class LambdaNet(Weighting):
    """λ-equitune: λ(g·x) = exp(MLP(features of g·x)), positive by construction.

    Fed with the view itself or, when the operator has an encoder, with its features
    (so the expensive encoder pass is shared with the model). ``residual`` adds a skip
    connection around each hidden→hidden layer (the paper's λ-network for canonical-λ, app. D.5).
    ``net``: a scorer of the task's own design (features → one score per view) in place of the MLP.
    """

    reads_outputs = False

    def __init__(self, in_features: int, hidden: int = 100, layers: int = 2, residual: bool = False,
                 net: nn.Module | None = None):
        super().__init__()
        self.in_features = in_features
        if net is not None:
            self.net = net
            return
        if layers < 1:
            raise ValueError(f"a λ-network needs at least one layer, got {layers}")
        dims = [in_features] + [hidden] * (layers - 1) + [1]
        blocks: list[nn.Module] = [nn.Flatten()]
        for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
            if i == len(dims) - 2:
                blocks.append(nn.Linear(d_in, d_out))
            elif residual and i > 0:
                blocks.append(Residual(nn.Sequential(nn.Linear(d_in, d_out), nn.ReLU())))
            else:
                blocks += [nn.Linear(d_in, d_out), nn.ReLU()]
        self.net = nn.Sequential(*blocks)

    def forward(self, outputs, features):
        g, b = features.shape[:2]
        flat = features.reshape(g * b, -1)
        if flat.shape[1] != self.in_features:
            raise ValueError(f"λ-network expects {self.in_features} input features per view, got {flat.shape[1]}")
        score = self.net(flat).reshape(g, b)
        return torch.softmax(score, dim=0)  # exp(score) normalised over the group, overflow-free


class Featurized(Weighting):
    """A weighting that sees featurize(view) instead of the view: a λ-network over a frozen
    encoder's summary when the operator's input is not what λ should see (teacher-forced pairs)."""

    def __init__(self, weighting: Weighting, featurize: nn.Module):
        super().__init__()
        self.weighting, self.featurize = weighting, featurize
        self.straight_through, self.reads_outputs = weighting.straight_through, weighting.reads_outputs

    def forward(self, outputs, features):
        g, b = features.shape[:2]
        return self.weighting(outputs, self.featurize(features.reshape(g * b, *features.shape[2:])).reshape(g, b, -1))
