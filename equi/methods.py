"""Turn a method config (conf/method/*.yaml) into a wrapped model.

Task runners choose the group, the proxy loss and the λ-network's input size; this is
the only place that maps method names onto weightings, so no task copies the operator.
"""

from __future__ import annotations

from omegaconf import DictConfig
from torch import nn

from .canonical import CanonicalLambda
from .errors import ConfigError
from .groups import FiniteGroup
from .operator import EquivariantWrapper
from .weighting import LambdaNet, ProxyArgmin, Uniform, Weighting

METHODS = ("vanilla", "equitune", "equizero", "lambda", "canonical_lambda")


def weighting_for(method: DictConfig, *, feature_dim: int | None = None, default_proxy: str | None = None,
                  lambda_net: nn.Module | None = None) -> Weighting:
    if method.get("relaxed"):
        raise ConfigError("method.relaxed=true (R-EquiLM, R-EquizeroLM) is for task=nlg only")
    if method.name == "equitune":
        return Uniform()
    if method.name == "equizero":
        proxy = method.proxy or default_proxy
        if proxy is None:
            raise ConfigError("equizero needs a proxy loss: set method.proxy (this task has no default)")
        return ProxyArgmin(proxy, straight_through=method.straight_through)
    if method.name in ("lambda", "canonical_lambda"):
        if feature_dim is None:
            raise ConfigError(f"method {method.name} needs the λ-network's input size from the task")
        return LambdaNet(feature_dim, hidden=method.lambda_hidden, layers=method.lambda_layers,
                         residual=method.lambda_residual, net=lambda_net)
    raise ConfigError(f"unknown method {method.name!r}; choose one of: {', '.join(METHODS)}")


def wrap(
    method: DictConfig,
    model: nn.Module,
    *,
    group: FiniteGroup | None = None,
    invariant: bool,
    encoder: nn.Module | None = None,
    feature_dim: int | None = None,
    default_proxy: str | None = None,
    canonicalizer: nn.Module | None = None,
    lambda_net: nn.Module | None = None,
) -> nn.Module:
    """The model made equivariant by ``method``; vanilla returns it unchanged. ``lambda_net``: the
    task's own λ scorer (features → 1), where the task follows a λ-network of another shape."""
    if method.name == "vanilla":
        return nn.Sequential(encoder, model) if encoder is not None else model
    weighting = weighting_for(method, feature_dim=feature_dim, default_proxy=default_proxy, lambda_net=lambda_net)
    if method.name == "canonical_lambda":
        if canonicalizer is None:
            raise ConfigError("canonical_lambda needs a canonicalizer; this task's group is finite, use method=lambda")
        return CanonicalLambda(model, canonicalizer, method.extra_rotations, weighting, invariant=invariant)
    if group is None:
        raise ConfigError(f"method {method.name} needs a finite group from the task")
    return EquivariantWrapper(model, group, weighting, invariant=invariant, encoder=encoder)
