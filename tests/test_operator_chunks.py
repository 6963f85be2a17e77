"""The operator in passes of at most max_views_per_pass views: the same outputs, weights and
gradients as one pass; keyword inputs repeated per view; check_equivariance on the wrapper."""

import pytest
import torch
from torch import nn

import equi
from equi import groups as G
from equi.operator import EquivariantWrapper, repeat_per_view

ATOL = 1e-6
BATCH = 5  # 8 views × 5 = 40 stacked inputs
PASS_SIZES = [1, 3, 8, 13, 39, 40, 1000]


def cnn(out: int = 7) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, out))


def make_wrapper(kind: str, weighting: str, max_views_per_pass=None, recompute_passes=False) -> EquivariantWrapper:
    """The same seeded modules for every pass size."""
    torch.manual_seed(0)
    if kind == "encoder":  # a conv encoder whose features feed both the head and λ
        encoder = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Tanh(), nn.Flatten())
        model, invariant, feature_dim, class_dim = nn.Linear(64, 7), True, 64, -1
    elif kind == "dense":
        encoder, model, invariant, feature_dim, class_dim = None, nn.Conv2d(3, 5, 3, padding=1), False, 108, 0
    else:
        encoder, model, invariant, feature_dim, class_dim = None, cnn(), True, 108, -1
    weight = {"uniform": equi.Uniform(), "argmin": equi.ProxyArgmin("entropy", class_dim=class_dim),
              "lambda": equi.LambdaNet(feature_dim, hidden=16)}[weighting]
    return EquivariantWrapper(model, G.rot90_flip(), weight, invariant=invariant, encoder=encoder,
                              max_views_per_pass=max_views_per_pass, recompute_passes=recompute_passes)


CASES = [(kind, weighting) for kind in ("invariant", "dense", "encoder") for weighting in ("uniform", "argmin", "lambda")]


@pytest.mark.parametrize("kind,weighting", CASES)
def test_passes_give_the_outputs_and_weights_of_one_pass(kind, weighting):
    x = torch.randn(BATCH, 3, 6, 6)
    with torch.no_grad():
        expected, expected_weights = make_wrapper(kind, weighting)(x, return_weights=True)
        for size in PASS_SIZES:
            out, weights = make_wrapper(kind, weighting, size)(x, return_weights=True)
            torch.testing.assert_close(out, expected, atol=ATOL, rtol=0, msg=f"max_views_per_pass={size}")
            torch.testing.assert_close(weights, expected_weights, atol=ATOL, rtol=0)


def gradients(net: EquivariantWrapper, x: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """In float64: gradients summed over the views in another order differ by float32's rounding of
    their size (about 1e-5 for these, of size 10), as much as one pass differs from float64."""
    net.double().train()
    loss = (net(x) * target).sum()
    loss.backward()
    return {name: p.grad for name, p in net.named_parameters()}


@pytest.mark.parametrize("recompute_passes", [False, True], ids=["kept", "recomputed"])
@pytest.mark.parametrize("kind,weighting", CASES)
def test_passes_give_the_gradients_of_one_pass(kind, weighting, recompute_passes):
    x = torch.randn(BATCH, 3, 6, 6, dtype=torch.float64)
    target = torch.randn_like(make_wrapper(kind, weighting).double()(x))
    expected = gradients(make_wrapper(kind, weighting), x, target)
    for size in (3, 13):
        got = gradients(make_wrapper(kind, weighting, size, recompute_passes), x, target)
        assert got.keys() == expected.keys()
        for name in expected:
            torch.testing.assert_close(got[name], expected[name], atol=ATOL, rtol=0, msg=f"{name}, {size} per pass")


def saved_for_backward_mib(net: EquivariantWrapper, x: torch.Tensor) -> float:
    """What autograd keeps of the forward pass for backward, outside any recomputed pass."""
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel() * t.element_size()) or t, lambda t: t):
        net(x)
    return sum(saved) / 2**20


def test_recomputed_passes_keep_only_their_inputs_and_outputs_for_backward():
    """A wide CNN keeps about 100 times its input for backward; recomputed passes, the input alone."""
    wide = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 7))
    x = torch.randn(BATCH, 3, 6, 6)
    kept = saved_for_backward_mib(EquivariantWrapper(wide, G.rot90_flip(), invariant=True, max_views_per_pass=8), x)
    recomputed = saved_for_backward_mib(EquivariantWrapper(wide, G.rot90_flip(), invariant=True, max_views_per_pass=8,
                                                           recompute_passes=True), x)
    stacked_views_mib = 8 * x.numel() * x.element_size() / 2**20
    assert recomputed < 1.1 * stacked_views_mib < kept / 10


def test_model_and_encoder_see_passes_of_at_most_the_limit():
    net = make_wrapper("encoder", "lambda", max_views_per_pass=16)
    calls = {"encoder": [], "model": []}
    net.encoder.register_forward_hook(lambda m, inp, out: calls["encoder"].append(inp[0].shape[0]))
    net.model.register_forward_hook(lambda m, inp, out: calls["model"].append(inp[0].shape[0]))
    net(torch.randn(BATCH, 3, 6, 6))
    assert calls == {"encoder": [16, 16, 8], "model": [16, 16, 8]}


def test_max_views_per_pass_must_be_positive():
    with pytest.raises(ValueError, match="max_views_per_pass must be at least 1, got 0"):
        EquivariantWrapper(cnn(), G.rot90(), max_views_per_pass=0)


def test_repeat_per_view_follows_the_orbits_order():
    repeated = repeat_per_view({"per_sample": torch.tensor([1, 2]), "other": torch.tensor([7, 8, 9]), "flag": True},
                               order=3, batch=2)
    assert repeated["per_sample"].tolist() == [1, 2, 1, 2, 1, 2]  # view g of sample b at row g·B + b
    assert repeated["other"].tolist() == [7, 8, 9]
    assert repeated["flag"] is True


class Conditioned(nn.Module):
    """A model with keyword inputs: a per-sample reference image, a per-sample scale and a shared
    shift; its output depends on which sample's reference each view gets."""

    def __init__(self):
        super().__init__()
        self.net = cnn()

    def forward(self, views, reference, scale, shift=0.0):
        return self.net(views - reference) * scale[:, None] + shift


@pytest.mark.parametrize("max_views_per_pass", [None, 3, 16])
def test_keyword_inputs_reach_each_view_of_their_sample(max_views_per_pass):
    torch.manual_seed(0)
    model, group = Conditioned(), G.rot90_flip()
    x, reference, scale = torch.randn(BATCH, 3, 6, 6), torch.randn(BATCH, 3, 6, 6), torch.rand(BATCH) + 0.5
    with torch.no_grad():
        expected = torch.stack([model(group.act_input(g, x), reference, scale, shift=2.0) for g in group.elements]).mean(0)
        net = EquivariantWrapper(model, group, invariant=True, max_views_per_pass=max_views_per_pass)
        out = net(x, reference=reference, scale=scale, shift=2.0)
    torch.testing.assert_close(out, expected, atol=ATOL, rtol=0)


def test_the_encoder_gets_the_keyword_inputs_too():
    class MaskedEncoder(nn.Module):
        def forward(self, tokens, mask):
            return tokens * mask

    class MaskedHead(nn.Module):
        def forward(self, features, mask):
            return features.sum(-1, keepdim=True) / mask.sum(-1, keepdim=True)

    group = G.vocabulary_cycles(["a", "b", "c"], [["a", "b"]])
    tokens, mask = torch.tensor([[0, 1, 2], [1, 1, 0]]), torch.tensor([[1, 1, 0], [1, 0, 0]])
    net = EquivariantWrapper(MaskedHead(), group, invariant=True, encoder=MaskedEncoder(), max_views_per_pass=1)
    views = torch.stack([group.act_input(g, tokens) for g in group.elements])  # swaps a ↔ b
    expected = ((views * mask).sum(-1) / mask.sum(-1)).float().mean(0, keepdim=True).T
    torch.testing.assert_close(net(tokens, mask=mask).float(), expected)


def test_check_equivariance_uses_the_wrappers_group_and_mode():
    x = torch.randn(3, 3, 6, 6)
    invariant = EquivariantWrapper(cnn(), G.rot90_flip(), invariant=True, max_views_per_pass=5)
    assert len(invariant.check_equivariance(x, atol=1e-4)) == 8
    dense = EquivariantWrapper(nn.Conv2d(3, 5, 3, padding=1), G.rot90())
    assert list(dense.check_equivariance(x, atol=1e-4)) == [f"rot90[{g}]" for g in range(4)]
    claims_equivariance = EquivariantWrapper(cnn(), G.rot90(), invariant=False)  # logits are not images
    with pytest.raises(ValueError, match="images must have shape"):
        claims_equivariance.check_equivariance(x)
    shifted = EquivariantWrapper(Conditioned(), G.rot90(), invariant=True)
    shifted.check_equivariance(x, atol=1e-4, reference=torch.zeros_like(x), scale=torch.ones(3), shift=1.0)


def test_check_equivariance_fails_when_the_output_action_is_no_group_action():
    """Mirroring the outputs of every turn back is not an action of C4: the check names an element."""
    from equi.groups.image import SpatialAction

    rot90 = G.rot90()
    mirrors = G.FiniteGroup("mirrored", rot90.table, rot90.input_action, SpatialAction([(0, 0)] + [(1, 0)] * 3))
    net = EquivariantWrapper(nn.Conv2d(3, 5, 3, padding=1), mirrors)
    with pytest.raises(AssertionError, match=r"not equivariant under mirrored\[[123]\]"):
        net.check_equivariance(torch.randn(3, 3, 6, 6), atol=1e-4)
