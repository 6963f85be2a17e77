"""The operator: every group × weighting is equivariant (or invariant), numerically.

Models are random and deliberately not symmetric, so any broken action shows up.
"""

import math

import pytest
import torch
from torch import nn

import equi
from equi import groups as G
from equi.operator import weighted_sum

TOL = 1e-4


class SeqEncoder(nn.Module):
    """Token ids (B, T) -> per-position features (B, T, H), mixing positions with a GRU."""

    def __init__(self, vocab: int, hidden: int = 8):
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)

    def forward(self, tokens):
        return self.gru(self.embed(tokens))[0]


def cnn(out: int):
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, out))


def make_cases():
    """(name, group, model, encoder, x, invariant, λ feature size, proxy class axis)."""
    img = torch.randn(4, 3, 6, 6)
    vocab = G.vocabulary_cycles(["walk", "jump", "run", "look", "twice"], [["jump", "run"]],
                                ["I_WALK", "I_JUMP", "I_RUN", "I_LOOK", "EOS"], [["I_JUMP", "I_RUN"]])
    three = G.vocabulary_cycles(list("abcdef"), [["a", "b", "c"], ["d", "e"]])
    cases = []
    for group in (G.rot90(), G.flip(), G.rot90_flip(), G.identity()):
        cases.append((f"{group.name}-classifier", group, cnn(7), None, img, True, 3 * 36, -1))
        cases.append((f"{group.name}-dense", group, nn.Conv2d(3, 5, 3, padding=1), None, img, False, 3 * 36, 0))
    tokens = torch.randint(0, 5, (4, 6))
    cases.append(("vocab-seq", vocab, nn.Linear(8, 5), SeqEncoder(5), tokens, False, 6 * 8, -1))
    cases.append(("vocab3-seq", three, nn.Linear(8, 6), SeqEncoder(6), torch.randint(0, 6, (4, 6)), False, 6 * 8, -1))
    cases.append(("cartpole-q", G.reflection([-1.0] * 4, [1, 0]), nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 2)),
                  None, torch.randn(4, 4), False, 4, -1))
    acro = G.reflection([1, -1, 1, -1, -1, -1], [2, 1, 0])
    cases.append(("acrobot-q", acro, nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3)), None, torch.randn(4, 6), False, 6, -1))
    grid = G.grid_rotations([0, 4, 1, 2, 3])
    cases.append(("grid-q", grid, nn.Sequential(nn.Conv2d(1, 3, 3), nn.Flatten(), nn.Linear(75, 5)), None,
                  torch.randn(4, 1, 7, 7), False, 49, -1))
    so2 = G.SO2(invariant_output=False)
    cases.append(("C6-vectors-invariant", G.SO2().finite_subgroup(6), nn.Sequential(nn.Flatten(), nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3)),
                  None, torch.randn(4, 3, 2), True, 6, -1))
    cases.append(("C6-vectors-equivariant", so2.finite_subgroup(6), nn.Sequential(nn.Flatten(), nn.Linear(6, 4), nn.Unflatten(1, (2, 2))),
                  None, torch.randn(4, 3, 2), False, 6, -1))
    return cases


def weightings(feature_dim, class_dim, vector_output=False):
    if vector_output:  # no proxy loss is invariant under rotating output vectors
        return {"equitune": equi.Uniform(), "lambda": equi.LambdaNet(feature_dim, hidden=16)}
    return {
        "equitune": equi.Uniform(),
        "equizero-entropy": equi.ProxyArgmin("entropy", class_dim=class_dim),
        "equizero-maxprob": equi.ProxyArgmin("neg_max_prob", class_dim=class_dim),
        "equizero-similarity": equi.ProxyArgmin("neg_similarity", class_dim=class_dim),
        "lambda": equi.LambdaNet(feature_dim, hidden=16),
    }


CASES = make_cases()
PAIRS = [(case, w) for case in CASES for w in weightings(case[6], case[7], case[0] == "C6-vectors-equivariant")]


@pytest.mark.parametrize("case,weighting", PAIRS, ids=[f"{c[0]}-{w}" for c, w in PAIRS])
def test_every_group_and_weighting_is_equivariant(case, weighting):
    name, group, model, encoder, x, invariant, feature_dim, class_dim = case
    wrapped = equi.EquivariantWrapper(model, group, weightings(feature_dim, class_dim, name == "C6-vectors-equivariant")[weighting], invariant=invariant, encoder=encoder)
    errors = equi.check_equivariance(wrapped, x, equi.group_pairs(group, invariant), atol=TOL)
    assert len(errors) == group.order


@pytest.mark.parametrize("case", [c for c in CASES if c[1].order > 1], ids=lambda c: c[0])
def test_the_unwrapped_model_is_not_equivariant(case):
    """The check has teeth: the raw models fail it."""
    name, group, model, encoder, x, invariant, *_ = case
    raw = nn.Sequential(encoder, model) if encoder is not None else model
    with pytest.raises(AssertionError, match="not equivariant"):
        equi.check_equivariance(raw, x, equi.group_pairs(group, invariant), atol=TOL)


class BrokenRot90:
    """rot90 whose output action forgets to rotate back: equivariance must fail."""

    def __init__(self):
        self.inner = G.rot90().input_action

    def check(self, x):
        self.inner.check(x)

    def __call__(self, g, x):
        return self.inner(g, x) if g % 2 == 0 else x


def test_a_broken_output_action_is_caught():
    good = G.rot90()
    broken = G.FiniteGroup("broken", good.table, good.input_action, BrokenRot90())
    wrapped = equi.EquivariantWrapper(nn.Conv2d(3, 5, 3, padding=1), broken, equi.Uniform())
    with pytest.raises(AssertionError, match=r"not equivariant under rot90\[[13]\]"):
        equi.check_equivariance(wrapped, torch.randn(2, 3, 6, 6), equi.group_pairs(good, invariant=False), atol=TOL)


def test_identity_group_returns_the_model_output():
    model = cnn(7)
    x = torch.randn(3, 3, 6, 6)
    for weighting in (equi.Uniform(), equi.ProxyArgmin("entropy"), equi.LambdaNet(108)):
        torch.testing.assert_close(equi.EquivariantWrapper(model, G.identity(), weighting, invariant=True)(x), model(x))


def test_all_views_go_through_the_model_in_one_batched_pass():
    model = cnn(7)
    calls = []
    model.register_forward_hook(lambda m, inp, out: calls.append(inp[0].shape[0]))
    equi.EquivariantWrapper(model, G.rot90_flip(), invariant=True)(torch.randn(5, 3, 6, 6))
    assert calls == [8 * 5]


def test_equitune_is_the_mean_and_equizero_picks_the_lowest_proxy():
    model = cnn(7)
    x = torch.randn(5, 3, 6, 6)
    group = G.rot90()
    views = torch.stack([model(group.act_input(g, x)) for g in group.elements])
    torch.testing.assert_close(equi.EquivariantWrapper(model, group, invariant=True)(x), views.mean(0), atol=1e-6, rtol=0)
    chosen = equi.proxy.entropy(views).argmin(0)
    expected = views[chosen, torch.arange(5)]
    torch.testing.assert_close(equi.EquivariantWrapper(model, group, equi.ProxyArgmin("entropy"), invariant=True)(x), expected, atol=1e-6, rtol=0)


def test_equizero_shares_weight_between_tied_views():
    """A command without the swapped words is fixed by the swap: both views tie, both count."""
    group = G.vocabulary_cycles(["walk", "jump", "run"], [["jump", "run"]])
    wrapped = equi.EquivariantWrapper(nn.Linear(8, 3), group, equi.ProxyArgmin("entropy"), encoder=SeqEncoder(3))
    _, weights = wrapped(torch.tensor([[0, 0, 0], [0, 1, 0]]), return_weights=True)
    assert weights[:, 0].tolist() == [0.5, 0.5]
    assert sorted(weights[:, 1].tolist()) == [0.0, 1.0]


def test_lambda_weights_are_normalised_non_negative_and_vary():
    wrapped = equi.EquivariantWrapper(cnn(7), G.rot90_flip(), equi.LambdaNet(108, hidden=16), invariant=True)
    _, weights = wrapped(torch.randn(6, 3, 6, 6), return_weights=True)
    assert weights.shape == (8, 6)
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(0), torch.ones(6))
    assert weights.std() > 0


def test_straight_through_gradient_equals_equitune_gradient():
    """Forward is equizero's, the gradient equitune's (for a loss linear in the output)."""
    torch.manual_seed(1)
    model, x, r = cnn(7), torch.randn(5, 3, 6, 6), torch.randn(5, 7)
    grads = {}
    for name, weighting in (("equitune", equi.Uniform()), ("equizero", equi.ProxyArgmin("entropy"))):
        model.zero_grad()
        out = equi.EquivariantWrapper(model, G.rot90(), weighting, invariant=True)(x)
        (out * r).sum().backward()
        grads[name] = [p.grad.clone() for p in model.parameters()]
    for a, b in zip(grads["equitune"], grads["equizero"]):
        torch.testing.assert_close(a, b)
    model.zero_grad()
    hard = equi.EquivariantWrapper(model, G.rot90(), equi.ProxyArgmin("entropy", straight_through=False), invariant=True)
    (hard(x) * r).sum().backward()
    assert any(not torch.allclose(p.grad, g) for p, g in zip(model.parameters(), grads["equitune"]))


def test_equizero_returns_the_chosen_view_exactly_without_gradients():
    """The straight-through form would round a chosen log-probability of −0.01 away next to −1e9."""
    views = torch.tensor([[[-1e9, -0.01, -1e9]], [[-0.5, -1e9, -0.7]]])  # (|G|=2, B=1, 3)
    zero = equi.EquivariantWrapper(nn.Identity(), G.identity(), equi.ProxyArgmin("neg_max_prob"))
    with torch.no_grad():
        out, weights = zero.aggregate(views, views)
    assert weights[:, 0].tolist() == [1.0, 0.0]
    assert torch.equal(out, views[0])


def test_shape_errors_name_the_problem():
    with pytest.raises(ValueError, match="λ-network expects 100 input features per view, got 108"):
        equi.EquivariantWrapper(cnn(7), G.rot90(), equi.LambdaNet(100), invariant=True)(torch.randn(2, 3, 6, 6))
    with pytest.raises(ValueError, match=r"model returned a batch of 1 for 4×2 transformed inputs"):
        equi.EquivariantWrapper(lambda x: x[:1], G.rot90(), invariant=True)(torch.randn(2, 3, 6, 6))
    with pytest.raises(ValueError, match="scores have 3 entries on the last axis, the group permutes 2"):
        equi.EquivariantWrapper(nn.Linear(4, 3), G.reflection([-1.0] * 4, [1, 0]))(torch.randn(2, 4))
    with pytest.raises(ValueError, match="non-empty batch"):
        equi.EquivariantWrapper(cnn(7), G.rot90(), invariant=True)(torch.randn(0, 3, 6, 6))


def test_unknown_proxy_lists_the_choices():
    with pytest.raises(ValueError, match="unknown proxy loss 'entropi'; choose one of: entropy, neg_max_prob"):
        equi.ProxyArgmin("entropi")


def test_sequence_proxy_ignores_the_steps_after_the_end():
    from equi.proxy import ENDED, seq_neg_max_prob

    half = math.log(0.5)
    confident, unsure, ended = [0.0, -50.0, -50.0], [half, half, -50.0], [0.0, ENDED, ENDED]
    short = torch.tensor([[unsure, ended, ended]])  # one decoded step, unsure
    long = torch.tensor([[confident, confident, unsure]])  # three decoded steps, mostly sure
    assert seq_neg_max_prob(short).item() == pytest.approx(-0.5, abs=1e-3)
    assert seq_neg_max_prob(long).item() == pytest.approx(-(1 + 1 + 0.5) / 3, abs=1e-3)
    assert seq_neg_max_prob(long) < seq_neg_max_prob(short)  # counting ended steps would reverse this


@pytest.mark.parametrize("shape", [(3, 10), (2, 4, 50257), (4, 1, 7)])
def test_entropy_is_minus_the_sum_of_p_log_p_within_equizeros_tie_tolerance(shape):
    """Views whose entropies differ by rounding alone must tie (ProxyArgmin.tie_tol = 1e-5); a
    logsumexp − E_p[logit] form, one temporary lighter, missed by 2e-4 on 50k-token logits."""
    from equi.proxy import entropy

    torch.manual_seed(0)
    logits = torch.randn(shape) * 8
    logits[..., 0] += 40  # some rows nearly certain (entropy ≈ 0), where cancellation would show
    logits[0] = torch.randn(shape[1:])  # and some spread out
    reference = -(torch.softmax(logits.double(), -1) * torch.log_softmax(logits.double(), -1)).sum(-1)
    torch.testing.assert_close(entropy(logits).double(), reference, atol=1e-5, rtol=0)
    masked = torch.cat([logits, torch.full((*shape[:-1], 3), -1e9)], -1)  # SCAN's ended steps
    torch.testing.assert_close(entropy(masked), entropy(logits), atol=1e-5, rtol=0)


def test_equizero_scores_views_over_a_mebibyte_one_at_a_time_and_picks_the_same(monkeypatch):
    """A named (row-wise) proxy on an LM's 50k-token logits runs view by view, so its temporaries
    are one view's; the weights, ties included, are those of one call on all views."""
    from equi.proxy import PROXIES, entropy
    from equi.weighting import ProxyArgmin

    calls = []
    monkeypatch.setitem(PROXIES, "entropy", lambda x: calls.append(tuple(x.shape)) or entropy(x))
    torch.manual_seed(0)
    logits = torch.randn(3, 8, 50257) * 4
    logits[1, :3] = logits[0, :3]  # a prompt the group fixes: its views tie
    weighting = ProxyArgmin("entropy")
    by_view = weighting(logits, None)
    assert calls == [(8, 50257)] * 3
    assert torch.equal(by_view[0, :3], by_view[1, :3]) and by_view.amax(0).eq(1).all()
    calls.clear()
    weighting(logits[:, :, :1000], None)  # small views: one call
    assert calls == [(3, 8, 1000)]
    calls.clear()
    monkeypatch.setattr(ProxyArgmin, "VIEW_BY_VIEW", 10**9)
    assert torch.equal(weighting(logits, None), by_view) and calls == [(3, 8, 50257)]


def broadcast_sum(weights, views):
    """Σ_g weights[g, b]·views[g, b, …] as written: the (|G|, B, …) product, summed over the group."""
    return (weights.reshape(*weights.shape, *[1] * (views.ndim - weights.ndim)) * views).sum(0)


@pytest.mark.parametrize("shape", [(2, 5, 7), (3, 4, 3, 6), (8, 1, 10), (4, 6, 1)])
def test_the_batched_weighted_sum_is_the_broadcast_formula_and_its_gradient(shape):
    views = torch.randn(shape, requires_grad=True)
    weights = torch.rand(shape[:2], requires_grad=True)
    r = torch.randn(shape[1:])
    fast, slow = weighted_sum(weights, views), broadcast_sum(weights, views)
    torch.testing.assert_close(fast, slow, rtol=1e-6, atol=1e-6)
    fast_grads = torch.autograd.grad((fast * r).sum(), (weights, views))
    for a, b in zip(fast_grads, torch.autograd.grad((slow * r).sum(), (weights, views))):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_the_batched_weighted_sum_keeps_the_products_dtype_under_autocast():
    """Autocast would run the matmul in bfloat16: float32 views and weights must stay float32 (to
    1e-6, where bfloat16 is off by 1e-2); bfloat16 views with float32 weights (a λ-network's softmax
    under autocast) give float32, as the product does; bfloat16 both, bfloat16 (to its rounding:
    the matmul rounds once, the product and the sum each)."""
    views, weights = torch.randn(2, 3, 5, 7), torch.rand(2, 3)
    low = views.bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        full, mixed, both = weighted_sum(weights, views), weighted_sum(weights, low), weighted_sum(weights.bfloat16(), low)
    assert (full.dtype, mixed.dtype, both.dtype) == (torch.float32, torch.float32, torch.bfloat16)
    torch.testing.assert_close(full, broadcast_sum(weights, views), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(mixed, broadcast_sum(weights, low), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(both.float(), broadcast_sum(weights.bfloat16().float(), low.float()), rtol=8e-3, atol=0)


def test_aggregate_takes_the_matmul_only_for_views_over_its_threshold(monkeypatch):
    """A decoder step's small views: the product as written (a matmul's setup would cost more);
    an LM's 50k-token ones: the batched matmul, which holds no (|G|, B, …) product. Both sums."""
    import equi.operator

    calls = []
    monkeypatch.setattr(equi.operator, "weighted_sum", lambda w, v: calls.append(tuple(v.shape)) or weighted_sum(w, v))
    op = equi.EquivariantWrapper(nn.Identity(), G.identity())
    limit = op.MATMUL_ABOVE
    for shape in [(2, 64, 9), (2, 1, limit), (2, 1, limit + 1), (2, 4, 50257)]:
        views, weights = torch.randn(shape), torch.rand(shape[:2])
        out, _ = op.aggregate(views, None, weights)
        torch.testing.assert_close(out, broadcast_sum(weights / weights.sum(0), views), rtol=1e-6, atol=1e-6)
    assert calls == [(2, 1, limit + 1), (2, 4, 50257)]


def test_aggregate_sums_as_written_and_takes_weights_computed_before():
    views, features = torch.randn(3, 4, 2, 5), torch.randn(3, 4, 6)
    lam = equi.LambdaNet(6, hidden=8)
    op = equi.EquivariantWrapper(nn.Identity(), G.identity(), lam)
    with torch.no_grad():
        out, weights = op.aggregate(views, features)
        raw = lam(views, features)
        torch.testing.assert_close(out, broadcast_sum(raw / raw.sum(0), views), rtol=1e-6, atol=1e-6)
        lam.register_forward_hook(lambda *_: pytest.fail("weights were given: the weighting must not run"))
        given, given_weights = op.aggregate(views, features, raw)
    assert torch.equal(given, out) and torch.equal(given_weights, weights)


class EncodeAndHead(nn.Module):
    """The encoder and head of one model, returning (head's outputs, encoder's features)."""

    def __init__(self, encoder, head):
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, x):
        features = self.encoder(x)
        return self.head(features), features


def test_a_model_returning_its_features_feeds_the_weighting_from_the_same_pass():
    encoder, head = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten()), nn.Linear(64, 7)
    calls = []
    encoder.register_forward_hook(lambda m, inp, out: calls.append(inp[0].shape[0]))
    lam = equi.LambdaNet(64, hidden=8)
    x = torch.randn(3, 3, 6, 6)
    with torch.no_grad():
        expected = equi.EquivariantWrapper(head, G.rot90(), lam, invariant=True, encoder=encoder)(x, return_weights=True)
        for per_pass in (None, 5):
            calls.clear()
            out = equi.EquivariantWrapper(EncodeAndHead(encoder, head), G.rot90(), lam, invariant=True,
                                          model_returns_features=True, max_views_per_pass=per_pass)(x, return_weights=True)
            assert sum(calls) == 4 * 3  # every view encoded once
            for a, b in zip(out, expected):
                torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="the encoder's features or the model's, not both"):
        equi.EquivariantWrapper(head, G.rot90(), lam, encoder=encoder, model_returns_features=True)


def test_pull_back_of_permuted_scores_is_each_elements_inverse_action():
    """One gather for every element at once, against g⁻¹ applied view by view, for the whole group
    and for samples of it (repeats, another order), in turn, so that a kept index cannot go stale."""
    group = G.vocabulary_cycles(list("abcdef"), [["a", "b", "c"], ["d", "e"]])
    op = equi.EquivariantWrapper(nn.Identity(), group)
    for elements in (list(group.elements), [5, 5, 1], [0, 3], list(group.elements)):
        y = torch.randn(len(elements) * 2, 3, 6)
        by_element = torch.stack([group.act_output(group.inverse(g), v)
                                  for g, v in zip(elements, y.reshape(len(elements), 2, 3, 6))])
        assert torch.equal(op.pull_back(y, elements), by_element)
