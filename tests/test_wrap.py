"""equi.wrap: timm, Hugging Face and open_clip classifiers and a plain nn.Module made rot90-invariant in one line.

Tiny models built from configs with random weights, nothing downloaded. ATOL: the same four views
averaged in another order differ by about 1e-7 in float32; a broken view or weight is off by 1e-2 or more.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Callable

import pytest
import torch
from torch import nn

import equi
from equi import groups as G
from equi.adapters import ADAPTERS, METHODS, Adapter, Parts, evaluating, register_adapter

ATOL = 1e-5
CLASSES = 10
X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


class SmallCNN(nn.Module):
    """Not rotation-invariant (2×2 pooled map into a linear head); `shift`, one row per sample, is
    added to the logits: an extra input whose rows must follow their samples through the views."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32, CLASSES))

    def forward(self, x, shift=None):
        logits = self.head(self.body(x))
        return logits if shift is None else logits + shift


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tensors this small run fastest on one thread; on a busy CPU, OpenMP's spinning threads are 50× slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@dataclass
class Case:
    """A model of one family, the options equi.wrap needs for it, and, computed by hand on a batch of
    views, its logits and the features λ should read."""

    build: Callable[[], tuple[nn.Module, dict]]
    logits: Callable[[nn.Module, torch.Tensor], torch.Tensor]
    features: Callable[[nn.Module, torch.Tensor], torch.Tensor]


@cache
def timm_resnet():
    timm = pytest.importorskip("timm")
    return timm.create_model("resnet10t", pretrained=False, num_classes=CLASSES, channels=(8, 16, 32, 64), stem_width=8), {}


@cache
def timm_vit():
    timm = pytest.importorskip("timm")
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=CLASSES, img_size=32, patch_size=8,
                             depth=1, embed_dim=32, num_heads=2), {}


@cache
def hf_vit():
    transformers = pytest.importorskip("transformers")
    config = transformers.ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                                    image_size=32, patch_size=8, num_labels=CLASSES)
    return transformers.ViTForImageClassification(config), {}


@cache
def hf_resnet():
    transformers = pytest.importorskip("transformers")
    config = transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic",
                                       num_labels=CLASSES)
    return transformers.ResNetForImageClassification(config), {}


@cache
def hf_convnext():
    transformers = pytest.importorskip("transformers")
    config = transformers.ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, image_size=32,
                                         num_labels=CLASSES)
    return transformers.ConvNextForImageClassification(config), {}


@cache
def clip():
    open_clip = pytest.importorskip("open_clip")
    model = open_clip.CLIP(embed_dim=16, vision_cfg=dict(image_size=32, layers=1, width=32, patch_size=8, head_width=16),
                           text_cfg=dict(context_length=8, vocab_size=100, width=16, heads=2, layers=1))
    with torch.no_grad():
        text_features = model.encode_text(torch.randint(0, 100, (CLASSES, 8)))
    return model, {"text_features": text_features}


@cache
def plain():
    return SmallCNN(), {"features": "body", "example_input": X}


def clip_logits(model, views):
    text = nn.functional.normalize(clip()[1]["text_features"], dim=-1)
    return model.logit_scale.exp() * nn.functional.normalize(model.encode_image(views), dim=-1) @ text.T


CASES = {
    "timm-resnet": Case(timm_resnet, lambda m, v: m(v), lambda m, v: m.forward_head(m.forward_features(v), pre_logits=True)),
    "timm-vit": Case(timm_vit, lambda m, v: m(v), lambda m, v: m.forward_head(m.forward_features(v), pre_logits=True)),
    "hf-vit": Case(hf_vit, lambda m, v: m(v).logits, lambda m, v: m.vit(v).last_hidden_state[:, 0]),
    "hf-resnet": Case(hf_resnet, lambda m, v: m(v).logits, lambda m, v: m.resnet(v).pooler_output.flatten(1)),
    "hf-convnext": Case(hf_convnext, lambda m, v: m(v).logits, lambda m, v: m.convnext(v).pooler_output),
    "open_clip": Case(clip, clip_logits, lambda m, v: nn.functional.normalize(m.encode_image(v), dim=-1)),
    "module-features=": Case(plain, lambda m, v: m(v), lambda m, v: m.body(v).flatten(1)),
}


def wrapped(case: str, method: str, group="rot90"):
    model, options = CASES[case].build()
    return equi.wrap(model, group, method, **options)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", CASES)
def test_wrapped_model_is_invariant_to_rot90(case, method):
    errors = wrapped(case, method).check_equivariance(X, atol=ATOL)
    assert set(errors) == {f"rot90[{g}]" for g in range(4)}


@pytest.mark.parametrize("case", CASES)
def test_the_model_itself_is_not_invariant(case):
    """Otherwise the invariance above would prove nothing."""
    model, _ = CASES[case].build()
    with torch.no_grad(), evaluating(model):
        logits = CASES[case].logits(model, G.rot90().orbit(X)).reshape(4, len(X), CLASSES)
    assert (logits - logits[0]).abs().max() > 100 * ATOL


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", CASES)
def test_outputs_are_the_operator_computed_by_hand(case, method):
    """out = Σ_g λ(g·x)·M(g·x) / Σ_g λ(g·x) with the family's logits M and, for λ-equitune, its pooled
    features; catches what invariance cannot, e.g. a view's logits paired with another sample's."""
    model, _ = CASES[case].build()
    net = wrapped(case, method).eval()
    views = G.rot90().orbit(X)
    with torch.no_grad(), evaluating(model):
        out, weights = net(X, return_weights=True)
        logits = CASES[case].logits(model, views).reshape(4, len(X), CLASSES)
        if method == "equitune":
            expected_weights = torch.full((4, len(X)), 0.25)
        elif method == "equizero":
            entropy = -(logits.softmax(-1) * logits.log_softmax(-1)).sum(-1)
            expected_weights = nn.functional.one_hot(entropy.argmin(0), 4).T.float()
        else:
            lam = net.weighting.weighting if isinstance(net.weighting, equi.weighting.Featurized) else net.weighting
            expected_weights = torch.softmax(lam.net(CASES[case].features(model, views)).reshape(4, len(X)), dim=0)
    torch.testing.assert_close(weights, expected_weights, rtol=0, atol=ATOL)
    torch.testing.assert_close(out, (expected_weights[..., None] * logits).sum(0), rtol=0, atol=ATOL)


def per_sample_outputs_agree(net, **kwargs):
    """Each sample's output alone equals its row of the batch's: extra inputs stay with their sample."""
    batch = net(X, **kwargs)
    for i in range(len(X)):
        alone = net(X[i:i + 1], **{k: v[i:i + 1] if torch.is_tensor(v) else v for k, v in kwargs.items()})
        torch.testing.assert_close(batch[i:i + 1], alone, rtol=0, atol=ATOL)
    return batch


@pytest.mark.parametrize("method", METHODS)
def test_a_per_sample_extra_input_follows_its_sample_through_the_views(method):
    net = wrapped("module-features=", method).eval()
    shift = 3 * torch.randn(len(X), CLASSES)
    with torch.no_grad():
        shifted = per_sample_outputs_agree(net, shift=shift)
        assert (shifted - net(X)).abs().max() > 0.1
        net.check_equivariance(X, atol=ATOL, shift=shift)
        if method == "equitune":
            torch.testing.assert_close(shifted, net(X) + shift, rtol=0, atol=ATOL)


@pytest.mark.parametrize("method", METHODS)
def test_timm_attention_mask_passes_through(method):
    """timm's forward_features(x, attn_mask=…): a different additive mask per sample changes its logits."""
    net = wrapped("timm-vit", method).eval()
    tokens = 1 + (32 // 8) ** 2
    mask = 4 * torch.randn(len(X), 1, tokens, tokens)
    with torch.no_grad():
        masked = per_sample_outputs_agree(net, attn_mask=mask)
        assert (masked - net(X)).abs().max() > 1e-3
        net.check_equivariance(X, atol=ATOL, attn_mask=mask)


@pytest.mark.parametrize("method", METHODS)
def test_hugging_face_labels_pass_through(method):
    """labels=, one per sample, make the model compute a loss over all |G|·B views: a labels tensor
    not repeated per view would not match their batch."""
    net = wrapped("hf-vit", method).eval()
    with torch.no_grad():
        torch.testing.assert_close(net(X, labels=torch.tensor([1, 2])), net(X), rtol=0, atol=0)


def test_flags_pass_as_they_are():
    """A non-tensor extra input reaches the model unchanged: open_clip's encode_image(x, normalize=True)."""
    net = wrapped("open_clip", "lambda").eval()
    with torch.no_grad():
        torch.testing.assert_close(net(X, normalize=True), net(X), rtol=0, atol=ATOL)


def test_a_finite_group_object_and_equizero_proxy():
    net = wrapped("module-features=", "equizero", group=G.rot90_flip())
    assert net.check_equivariance(X, atol=ATOL).keys() == {f"rot90_flip[{g}]" for g in range(8)}
    model, _ = plain()
    assert equi.wrap(model, "flip", "equizero", proxy="neg_max_prob").weighting.proxy is equi.PROXIES["neg_max_prob"]


def test_features_as_a_callable_of_the_view():
    model, _ = plain()
    pooled = nn.AvgPool2d(8)
    net = equi.wrap(model, "rot90", "lambda", features=pooled, example_input=X)
    assert net.weighting.weighting.in_features == 3 * 4 * 4
    net.check_equivariance(X, atol=ATOL)


def test_an_adapter_of_your_own_is_tried_first():
    built_in = list(ADAPTERS)
    try:
        @register_adapter
        class BodyHead(Adapter):
            name = "body-head"

            def matches(self, model):
                return isinstance(model, SmallCNN)

            def parts(self, model):
                return Parts(model.body, model.head, 32)

        model, _ = plain()
        net = equi.wrap(model, "rot90", "lambda")
        assert net.encoder is model.body and net.model is model.head
        net.check_equivariance(X, atol=ATOL)
    finally:
        ADAPTERS[:] = built_in


@pytest.mark.parametrize("call,message", [
    (lambda m: equi.wrap(m, "rot45"), "unknown group 'rot45'; choose one of: none, rot90, flip, rot180, rot90_flip"),
    (lambda m: equi.wrap(m, "rot90", "vanilla"), "(vanilla is the model itself); choose one of: equitune, equizero, lambda"),
    (lambda m: equi.wrap(m, "rot90", "canon"), "unknown method 'canon'; choose one of: equitune, equizero, lambda"),
    (lambda m: equi.wrap(m, "rot90", "equizero", proxy="loss"), "unknown proxy loss 'loss'; choose one of: entropy"),
    (lambda m: equi.wrap(m, "rot90", "lambda"), "pass features='<submodule name>' (top-level ones: body, head)"),
    (lambda m: equi.wrap(m, "rot90", "lambda", features="neck", example_input=X), "no submodule 'neck'"),
    (lambda m: equi.wrap(m, "rot90", "lambda", features="body"), "pass example_input="),
])
def test_clear_errors(call, message):
    with pytest.raises(ValueError) as raised:
        call(SmallCNN())
    assert message in str(raised.value)


def test_open_clip_needs_its_class_embeddings_and_unknown_options_are_named():
    model, _ = clip()
    with pytest.raises(ValueError, match="pass exactly one of classifier="):
        equi.wrap(model, "rot90", "equitune")
    with pytest.raises(TypeError, match="unknown options text_features for a module model; its adapter takes: none"):
        equi.wrap(SmallCNN(), "rot90", "equitune", text_features=torch.ones(2, 2))
