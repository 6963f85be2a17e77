"""`equi.wrap`: a pretrained model made G-invariant in one line, with equitune, equizero or λ-equitune.

    wrapped = equi.wrap(model, group="rot90", method="lambda")
    logits = wrapped(images)                       # extra inputs pass through, per view: wrapped(images, mask=m)
    wrapped.check_equivariance(images, atol=1e-5)  # raises if rotating the images changes the logits

Equitune and equizero need only the model's logits. λ-equitune also weights each view by features of
that view, and an adapter per model family knows where they are, so that one backbone pass feeds both
the head and λ (the operator's `encoder`). Built in: timm image models, Hugging Face image classifiers,
open_clip models; any other model with ``features=`` naming the submodule λ reads. A family of your
own is one `@register_adapter` class.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .groups import FiniteGroup
from .groups.image import BY_NAME as GROUPS
from .operator import EquivariantWrapper
from .proxy import PROXIES
from .weighting import Featurized, LambdaNet, ProxyArgmin, Uniform, Weighting

METHODS = ("equitune", "equizero", "lambda")


def wrap(model: nn.Module, group: str | FiniteGroup = "rot90", method: str = "lambda", *, invariant: bool = True,
         proxy: str = "entropy", features: str | Callable | None = None, example_input: torch.Tensor | None = None,
         **options) -> EquivariantWrapper:
    """`model` made invariant under `group` (a name of equi.groups.image.BY_NAME or a FiniteGroup) by `method`:

    equitune: the average of the logits of every view g·x.
    equizero: the logits of the view with the lowest `proxy` loss (a name of equi.PROXIES).
    lambda:   the average weighted by a new λ-network (equi.LambdaNet, to be trained) that reads each view's features.

    invariant=True (the default) is for classifiers: logits are not transformed back. invariant=False
    transforms outputs by the group's output action (dense maps of the image's shape).
    features (λ only): what λ reads instead of the adapter's choice: the name of a submodule (its output, caught
    by a forward hook during the model's own pass; example_input, a batch, probes its size when the
    adapter cannot tell) or a callable of the view (λ then reads callable(g·x), e.g. a small encoder).
    options: the adapter's own, e.g. open_clip's classifier= or text_features= (its zero-shot head).
    """
    group = _group(group)
    if method not in METHODS:
        hint = " (vanilla is the model itself)" if method == "vanilla" else ""
        raise ValueError(f"unknown method {method!r}{hint}; choose one of: {', '.join(METHODS)}")
    if method == "equizero" and proxy not in PROXIES:
        raise ValueError(f"unknown proxy loss {proxy!r}; choose one of: {', '.join(sorted(PROXIES))}")
    adapter = adapter_for(model)
    unknown = set(options) - set(adapter.options)
    if unknown:
        raise TypeError(f"equi.wrap got unknown options {', '.join(sorted(unknown))} for a {adapter.name} model; "
                        f"its adapter takes: {', '.join(adapter.options) or 'none'}")
    if method != "lambda":
        weighting: Weighting = Uniform() if method == "equitune" else ProxyArgmin(proxy)
        return EquivariantWrapper(adapter.classifier(model, **options), group, weighting, invariant=invariant)
    parts = _lambda_parts(adapter, model, features, example_input, options)
    lam = LambdaNet(parts.feature_dim)
    parameter = next(model.parameters(), None)
    if parameter is not None:  # where the model is, in its precision
        lam = lam.to(parameter.device, parameter.dtype) if parameter.is_floating_point() else lam.to(parameter.device)
    weighting = lam if parts.featurize is None else Featurized(lam, parts.featurize)
    return EquivariantWrapper(parts.head, group, weighting, invariant=invariant, encoder=parts.encoder)


def _group(group: str | FiniteGroup) -> FiniteGroup:
    if isinstance(group, FiniteGroup):
        return group
    if group not in GROUPS:
        raise ValueError(f"unknown group {group!r}; choose one of: {', '.join(GROUPS)}, or pass a FiniteGroup")
    return GROUPS[group]()


def _lambda_parts(adapter: Adapter, model: nn.Module, features, example_input, options) -> Parts:
    if features is None:
        return adapter.parts(model, **options)
    classifier = adapter.classifier(model, **options)
    if callable(features):
        if example_input is None:
            raise ValueError("λ reads features(g·x), whose size is known only after a call: pass example_input=<a batch>")
        with torch.no_grad():
            dim = features(example_input[:1]).flatten(1).shape[1]
        return Parts(None, classifier, dim, featurize=features)
    try:
        module = model.get_submodule(features)
    except AttributeError:
        raise ValueError(f"{type(model).__name__} has no submodule {features!r} for λ to read; its top-level ones: "
                         f"{', '.join(name for name, _ in model.named_children())}") from None
    if example_input is None:
        raise ValueError(f"λ reads the output of {features!r}, whose size is known only after a forward: "
                         "pass example_input=<a batch of inputs>")
    return hooked_parts(classifier, module, "output", probe=example_input[:1])


@dataclass
class Parts:
    """A model cut where λ reads: logits = head(encoder(x)), λ's features = featurize(encoder(x)), or
    encoder(x) itself when featurize is None; one backbone pass for both. No encoder: head reads x.
    The operator passes the extra inputs (kwargs) to encoder and head alike: a head that only reads
    the encoder's output takes and ignores them."""

    encoder: nn.Module | None
    head: nn.Module
    feature_dim: int
    featurize: Callable[[torch.Tensor], torch.Tensor] | None = None


class Adapter:
    """Where one family of models keeps its logits and the features λ reads.

    matches(model): whether model belongs to the family, decided without importing the family's
    library (equi's core needs torch alone). classifier(model): a module x, **kwargs → logits.
    parts(model): the cut for λ-equitune. Both take the adapter's `options` as keyword arguments.
    """

    name = "module"
    options: tuple[str, ...] = ()

    def matches(self, model: nn.Module) -> bool:
        return True

    def classifier(self, model: nn.Module) -> nn.Module:
        return Logits(model)

    def parts(self, model: nn.Module) -> Parts:
        children = ", ".join(name for name, _ in model.named_children())
        raise ValueError(f"equi.wrap does not know where λ reads the features of a {type(model).__name__}: pass "
                         f"features='<submodule name>' (top-level ones: {children or 'none'}) or features=<callable of the input>")


ADAPTERS: list[Adapter] = []


def register_adapter(cls: type[Adapter]) -> type[Adapter]:
    """Class decorator adding an adapter; the newest is tried first, so yours overrides a built-in one."""
    ADAPTERS.insert(0, cls())
    return cls


def adapter_for(model: nn.Module) -> Adapter:
    return next((adapter for adapter in ADAPTERS if adapter.matches(model)), Adapter())


class Logits(nn.Module):
    """A model's logits: its output, or the output's ``.logits`` (Hugging Face's ModelOutput)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        out = self.model(x, **kwargs)
        return out if torch.is_tensor(out) else out.logits


class Chain(nn.Module):
    """second(first(x, **kwargs)): nn.Sequential passing the model's extra inputs to the first stage."""

    def __init__(self, first: nn.Module, second: nn.Module):
        super().__init__()
        self.first, self.second = first, second

    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.second(self.first(x, **kwargs))


class LogitsAndFeatures(nn.Module):
    """One pass of the classifier, with the input or output of `module` caught by a hook on the way,
    packed as (B, logits ‖ flattened features) so that both travel through the operator's encoder
    slot; `Unpack` takes them apart. For classifiers, whose logits are (B, C)."""

    def __init__(self, classifier: nn.Module, module: nn.Module, read: str):
        super().__init__()
        self.classifier, self.module, self.read = classifier, module, read

    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        caught: list[torch.Tensor] = []
        if self.read == "input":
            handle = self.module.register_forward_pre_hook(lambda module, args: caught.append(args[0]))
        else:
            handle = self.module.register_forward_hook(lambda module, args, out: caught.append(out))
        try:
            logits = self.classifier(x, **kwargs)
        finally:
            handle.remove()
        if len(caught) != 1:
            raise ValueError(f"λ reads a submodule that ran {len(caught)} times in one forward; name one that runs once")
        if logits.ndim != 2:
            raise ValueError(f"a features hook needs logits of shape (B, C), got {tuple(logits.shape)}")
        return torch.cat([logits, caught[0].flatten(1).to(logits.dtype)], dim=1)


class Unpack(nn.Module):
    """The logits (part="logits") or λ's features (part="features") of a LogitsAndFeatures output."""

    def __init__(self, feature_dim: int, part: str):
        super().__init__()
        self.feature_dim, self.part = feature_dim, part

    def forward(self, packed: torch.Tensor, **kwargs) -> torch.Tensor:
        return packed[:, :-self.feature_dim] if self.part == "logits" else packed[:, -self.feature_dim:]


@contextmanager
def evaluating(module: nn.Module):
    """module in eval mode inside the block (no dropout, BatchNorm's running statistics untouched);
    each submodule's own mode restored after."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, training in modes:
            m.training = training


def hooked_parts(classifier: nn.Module, module: nn.Module, read: str, feature_dim: int | None = None,
                 probe: torch.Tensor | None = None) -> Parts:
    """λ reads the input or output (`read`) of `module` during the classifier's own pass; its size is
    feature_dim, or found by one forward of `probe` (in eval mode, without gradients)."""
    packed = LogitsAndFeatures(classifier, module, read)
    if feature_dim is None:
        with evaluating(classifier), torch.no_grad():
            feature_dim = packed(probe).shape[1] - classifier(probe).shape[1]
    return Parts(packed, Unpack(feature_dim, "logits"), feature_dim, featurize=Unpack(feature_dim, "features"))


class TimmStage(nn.Module):
    """A timm model's forward_features (stage="features"), forward_head (stage="head") or
    forward_head(pre_logits=True) (stage="pre_logits": the pooled features the classifier reads)."""

    def __init__(self, model: nn.Module, stage: str):
        super().__init__()
        self.model, self.stage = model, stage

    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        if self.stage == "features":
            return self.model.forward_features(x, **kwargs)
        return self.model.forward_head(x, pre_logits=self.stage == "pre_logits")


@register_adapter
class TimmAdapter(Adapter):
    """Any timm image model: one forward_features pass, logits from forward_head, λ reads the pooled
    pre-logits features (forward_head(pre_logits=True))."""

    name = "timm"

    def matches(self, model):
        return callable(getattr(model, "forward_features", None)) and callable(getattr(model, "forward_head", None))

    def parts(self, model):
        dim = getattr(model, "head_hidden_size", None) or model.num_features
        return Parts(TimmStage(model, "features"), TimmStage(model, "head"), dim, featurize=TimmStage(model, "pre_logits"))


@register_adapter
class TransformersAdapter(Adapter):
    """Hugging Face image classifiers (AutoModelForImageClassification: ViT, ResNet, ConvNext, Swin, …):
    pixel_values → .logits; λ reads what the model's `classifier` reads (the pooled output, or the
    [CLS] hidden state), caught on the way in one pass."""

    name = "transformers"

    def matches(self, model):
        return any(cls.__module__.startswith("transformers.") for cls in type(model).__mro__)

    def parts(self, model):
        head = getattr(model, "classifier", None)
        linear = next((m for m in head.modules() if isinstance(m, nn.Linear)), None) if head is not None else None
        if linear is None:
            return super().parts(model)
        return hooked_parts(self.classifier(model), head, "input", feature_dim=linear.in_features)


class ClipImageFeatures(nn.Module):
    """open_clip's image tower with unit-norm output: what the zero-shot head classifies and λ reads."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        return nn.functional.normalize(self.model.encode_image(x, **kwargs), dim=-1)


class ClipZeroShotHead(nn.Module):
    """Unit-norm image features → logit_scale · cosine similarity with each class's text embedding,
    the scale read from the model each call (it is a trained parameter)."""

    def __init__(self, model: nn.Module, classifier: torch.Tensor):
        super().__init__()
        self.model = model
        self.register_buffer("classifier", classifier, persistent=False)  # (D, C), unit columns

    def forward(self, features: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.model.logit_scale.exp() * features @ self.classifier.to(features.dtype)


@register_adapter
class OpenClipAdapter(Adapter):
    """open_clip models, as zero-shot classifiers: classifier= (D, C), the matrix of
    open_clip.build_zero_shot_classifier, or text_features= (C, D), one text embedding per class
    (normalised here). λ reads the unit-norm image features."""

    name = "open_clip"
    options = ("classifier", "text_features")

    def matches(self, model):
        return callable(getattr(model, "encode_image", None)) and hasattr(model, "logit_scale")

    def classifier(self, model, **options):
        parts = self.parts(model, **options)
        return Chain(parts.encoder, parts.head)

    def parts(self, model, classifier: torch.Tensor | None = None, text_features: torch.Tensor | None = None):
        if (classifier is None) == (text_features is None):
            raise ValueError("an open_clip model classifies against class text embeddings: pass exactly one of "
                             "classifier=<(D, C) tensor> or text_features=<(C, D) tensor>")
        if classifier is None:
            classifier = nn.functional.normalize(text_features.detach(), dim=-1).T
        head = ClipZeroShotHead(model, classifier.detach())
        return Parts(ClipImageFeatures(model), head, classifier.shape[0])
