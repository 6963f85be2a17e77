"""Monte-Carlo equitune (SampledViews): unbiased for the full group average, exact when it draws
every element once, and uniform weights only."""

import pytest
import torch
from torch import nn

import equi
from equi import groups as G
from equi.operator import EquivariantWrapper, SampledViews

DRAWS = 2000


@pytest.fixture(autouse=True)
def one_thread():
    """Thousands of tiny passes: a second thread only adds hand-offs (10× slower on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 7))


CASES = {"invariant": (cnn, True), "dense": (lambda: nn.Conv2d(3, 2, 3, padding=1), False)}


@pytest.mark.parametrize("kind", CASES)
@pytest.mark.parametrize("replacement", [True, False], ids=["with-replacement", "without-replacement"])
def test_the_mean_of_sampled_outputs_is_the_full_group_average(kind, replacement):
    """|mean of DRAWS outputs − exact| < 5 standard errors, coordinate by coordinate (fixed seeds)."""
    make, invariant = CASES[kind]
    torch.manual_seed(0)
    model, group, x = make(), G.rot90_flip(), torch.randn(2, 3, 6, 6)
    sampled = EquivariantWrapper(model, group, invariant=invariant,
                                 sampling=SampledViews(2, replacement, torch.Generator().manual_seed(1)))
    with torch.no_grad():
        exact = EquivariantWrapper(model, group, invariant=invariant)(x).double()
        outputs = torch.stack([sampled(x) for _ in range(DRAWS)]).double()
    standard_error = outputs.std(0) / DRAWS ** 0.5
    assert standard_error.min() > 0  # the draws differ: a sample, not the group
    z = (outputs.mean(0) - exact).abs() / standard_error
    assert z.max() < 5, f"largest deviation {z.max():.1f} standard errors"


@pytest.mark.parametrize("kind", CASES)
def test_every_element_once_is_the_full_average(kind):
    """Drawn in a shuffled order, so each view must be pulled back by its own element."""
    make, invariant = CASES[kind]
    torch.manual_seed(0)
    model, group, x = make(), G.rot90_flip(), torch.randn(3, 3, 6, 6)
    sampling = SampledViews(group.order, replacement=False, generator=torch.Generator().manual_seed(2))
    assert sampling.draw(group.order) != list(group.elements)
    with torch.no_grad():
        exact = EquivariantWrapper(model, group, invariant=invariant)(x)
        for max_views_per_pass in (None, 5):
            net = EquivariantWrapper(model, group, invariant=invariant, sampling=sampling,
                                     max_views_per_pass=max_views_per_pass)
            torch.testing.assert_close(net(x), exact, atol=1e-6, rtol=0)


def test_one_draw_is_not_equivariant_but_the_full_group_is():
    x = torch.randn(3, 3, 6, 6)
    sampled = EquivariantWrapper(cnn(), G.rot90_flip(), invariant=True,
                                 sampling=SampledViews(2, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(AssertionError, match="not equivariant"):
        sampled.check_equivariance(x, atol=1e-4)


def test_each_forward_pass_draws_afresh():
    sampling = SampledViews(3, generator=torch.Generator().manual_seed(0))
    draws = {tuple(sampling.draw(16)) for _ in range(20)}
    assert len(draws) > 1 and all(0 <= g < 16 for draw in draws for g in draw)


def test_sampling_refuses_weighted_averages_and_impossible_draws():
    for weighting in (equi.ProxyArgmin("entropy"), equi.LambdaNet(108)):
        with pytest.raises(ValueError, match="biased ratio estimate"):
            EquivariantWrapper(cnn(), G.rot90(), weighting, invariant=True, sampling=SampledViews(2))
    with pytest.raises(ValueError, match="cannot draw 5 distinct elements from a group of order 4"):
        SampledViews(5, replacement=False).draw(4)
    with pytest.raises(ValueError, match="at least one view"):
        SampledViews(0)
