"""The methods: what each one is (``Method``: its config's rules and what a task does around it),
and the one place that turns a method config (conf/method/*.yaml) into a wrapped model.

Task runners choose the group, the proxy loss and what λ reads; they ask the ``Method`` what to do
(``method_of(cfg.method).trains_lambda``) instead of branching on its name, and no task copies the
operator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import DictConfig
from torch import nn

from . import schema
from .canonical import CanonicalLambda
from .errors import ConfigError
from .groups import FiniteGroup
from .operator import EquivariantWrapper
from .schema import FLAG, LAYERS, WIDTH, Added, Choice, Rule, TaskChoice
from .weighting import Featurized, LambdaNet, ProxyArgmin, Uniform, Weighting


@dataclass(frozen=True)
class Method:
    name: str
    rules: dict[str, Rule] = field(default_factory=dict)  # its config keys besides name (see equi.schema)
    symmetrises: bool = True  # False: vanilla, the pretrained model as it is
    averages: bool = False  # the (λ-weighted) mean of the views' outputs: equitune, λ, canonical-λ
    trains_lambda: bool = False  # a λ-network, trained before the model is used or finetuned
    picks_a_view: bool = False  # equizero: the view whose outputs have the lowest proxy loss

    def proxy(self, method: DictConfig, default: str | None) -> str | None:
        """The proxy loss that picks the view (method.proxy, else the task's); None for the others."""
        return (method.proxy or default) if self.picks_a_view else None


LAMBDA_NET = {"lambda_hidden": WIDTH, "lambda_layers": LAYERS}
DECODING = TaskChoice("decoding")  # tasks where equitune and λ choose how to decode (scan)
RELAXED = Added(FLAG, as_before=False)  # task=nlg: the R- variants (R-EquiLM, R-EquizeroLM)
METHODS = {m.name: m for m in (
    Method("vanilla", symmetrises=False),
    Method("equitune", {"relaxed": RELAXED, "decoding": DECODING}, averages=True),
    Method("equizero", {"proxy": Choice(schema.task_proxies, nullable=True),  # null: the task's default
                        "straight_through": FLAG, "relaxed": RELAXED}, picks_a_view=True),
    Method("lambda", {**LAMBDA_NET, "lambda_residual": Added(FLAG, as_before=False),
                      "lambda_features": Choice(("frozen", "shared")),  # clip finetuning: which image tower λ reads
                      "decoding": DECODING}, averages=True, trains_lambda=True),
    Method("canonical_lambda", {**LAMBDA_NET, "lambda_residual": FLAG, "extra_rotations": LAYERS},
           averages=True, trains_lambda=True),
)}


def method_of(method: DictConfig) -> Method:
    if method.name not in METHODS:
        raise ConfigError(f"unknown method {method.name!r}; choose one of: {', '.join(METHODS)}")
    return METHODS[method.name]


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
    weighting: Weighting | None = None,
    lambda_reads: nn.Module | None = None,
    model_returns_features: bool = False,
) -> nn.Module:
    """The model made equivariant by ``method``; vanilla returns it unchanged. ``lambda_net``: the
    task's own λ scorer (features → 1), where the task follows a λ-network of another shape.
    ``weighting``: one made (and trained) before, to use instead of a new one. ``lambda_reads``:
    what λ reads of each view when not the view itself (a frozen encoder's summary).
    ``model_returns_features``: the model returns (outputs, what λ reads), see EquivariantWrapper."""
    if not method_of(method).symmetrises:
        return nn.Sequential(encoder, model) if encoder is not None else model
    if weighting is None:
        weighting = weighting_for(method, feature_dim=feature_dim, default_proxy=default_proxy, lambda_net=lambda_net)
    if lambda_reads is not None and method_of(method).trains_lambda:
        weighting = Featurized(weighting, lambda_reads)
    if method.name == "canonical_lambda":
        if canonicalizer is None:
            raise ConfigError("canonical_lambda needs a canonicalizer; this task's group is finite, use method=lambda")
        return CanonicalLambda(model, canonicalizer, method.extra_rotations, weighting, invariant=invariant)
    if group is None:
        raise ConfigError(f"method {method.name} needs a finite group from the task")
    return EquivariantWrapper(model, group, weighting, invariant=invariant, encoder=encoder,
                              model_returns_features=model_returns_features)
