"""C_n and D_n for n = 8, 16: exact where they turn by right angles, within measured interpolation
error elsewhere (on smooth images that vanish at the inscribed disc's rim).

Tolerances come from measurements (bilinear, 32×32, at most 4 cycles per side, 10 seeds):
turning by g and back errs by 0.064–0.079 of the image's largest value; the group law of d16 by
0.070–0.091; an equitune-wrapped CNN's invariance error is 0.10–0.21 of the raw CNN's spread over
the orbit.
"""

import math

import pytest
import torch
from torch import nn

from equi import groups as G
from equi.groups.image import BY_NAME, inscribed_disc
from equi.operator import EquivariantWrapper

GROUP_LAW_TOL = 0.12  # of the image's largest value
INVARIANCE_TOL = 0.3  # of the unwrapped model's largest change over the orbit


def smooth_disc_images(batch: int, size: int, max_cycles: int = 4, seed: int = 0) -> torch.Tensor:
    """Random sums of plane waves of at most `max_cycles` cycles per side, times (1 − r²)² inside
    the inscribed disc: band-limited, and zero with zero slope at the rim, so that resampling
    errs by interpolation alone."""
    gen = torch.Generator().manual_seed(seed)
    u = (torch.arange(size) - (size - 1) / 2) / size
    rows, cols = torch.meshgrid(u, u, indexing="ij")
    waves = [(a, b) for a in range(-max_cycles, max_cycles + 1) for b in range(-max_cycles, max_cycles + 1)
             if a * a + b * b <= max_cycles ** 2]
    images = torch.zeros(batch, 3, size, size)
    for a, b in waves:
        amplitude = torch.randn(batch, 3, 1, 1, generator=gen)
        phase = 2 * math.pi * torch.rand(batch, 3, 1, 1, generator=gen)
        images += amplitude * torch.cos(2 * math.pi * (a * rows + b * cols) + phase)
    bump = (1 - (rows ** 2 + cols ** 2) / 0.25).clamp(min=0) ** 2
    return images * bump / math.sqrt(len(waves))


LARGE = [G.rot(8), G.rot(16), G.dihedral(8), G.dihedral(16)]


def test_names_orders_and_registry():
    assert [g.name for g in LARGE] == ["c8", "c16", "d8", "d16"]
    assert [g.order for g in LARGE] == [8, 16, 16, 32]
    for name in ("c8", "c16", "d8", "d16"):
        assert BY_NAME[name]().name == name


def test_right_angle_cases_are_the_exact_groups_on_whole_images():
    x = torch.randn(2, 3, 5, 5)
    for small, exact in ((G.rot(4), G.rot90()), (G.rot(2), G.rot180()), (G.dihedral(4), G.rot90_flip()),
                         (G.dihedral(1), G.flip())):
        assert torch.equal(small.table, exact.table)
        for g in small.elements:
            assert torch.equal(small.act_input(g, x), exact.act_input(g, x)), (small.name, g)


@pytest.mark.parametrize("group", LARGE, ids=lambda g: g.name)
def test_right_angles_and_mirrors_are_exact_on_the_disc(group):
    """Element f·n + k = turn k·360°/n after mirroring f times, as in rot90_flip."""
    n = group.order if group.name.startswith("c") else group.order // 2
    x = torch.randn(2, 3, 9, 9)
    disc = x * inscribed_disc(x)
    assert torch.equal(group.act_input(0, x), disc)  # the identity is the projection onto the disc
    for quarter in range(4):
        assert torch.equal(group.act_input(quarter * n // 4, x), torch.rot90(disc, quarter, dims=(-2, -1)))
        if group.name.startswith("d"):
            mirrored = torch.flip(disc, dims=(-1,))
            assert torch.equal(group.act_input(n + quarter * n // 4, x), torch.rot90(mirrored, quarter, dims=(-2, -1)))


def test_a_small_turn_goes_counter_clockwise_like_rot90():
    x = smooth_disc_images(4, 32)
    eighth = G.rot(8).act_input(1, x)
    twice = G.rot(8).act_input(1, eighth)
    assert (twice - torch.rot90(x, 1, dims=(-2, -1))).abs().max() < GROUP_LAW_TOL * x.abs().max()
    assert (twice - torch.rot90(x, -1, dims=(-2, -1))).abs().max() > 0.5 * x.abs().max()


@pytest.mark.parametrize("group", LARGE, ids=lambda g: g.name)
def test_group_law_and_inverses_hold_to_interpolation_error(group):
    """On images smooth in the disc and anything in the corners, which every element zeroes: turned
    by 45° twice they would be gone, turned by 90° once kept."""
    smooth = smooth_disc_images(4, 32)
    x = smooth + (1 - inscribed_disc(smooth)) * torch.randn_like(smooth)
    tol = GROUP_LAW_TOL * smooth.abs().max()
    for a in group.elements:
        assert (group.act_input(group.inverse(a), group.act_input(a, x)) - smooth).abs().max() < tol, a
        for b in group.elements:
            composed = group.act_input(a, group.act_input(b, x))
            assert (composed - group.act_input(group.compose(a, b), x)).abs().max() < tol, (a, b)


@pytest.mark.parametrize("group", LARGE, ids=lambda g: g.name)
def test_elements_act_differently(group):
    x = smooth_disc_images(2, 16)
    seen = [group.act_input(g, x) for g in group.elements]
    for i in range(len(seen)):
        for j in range(i):
            assert (seen[i] - seen[j]).abs().max() > 0.1 * x.abs().max(), (j, i)


def cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


@pytest.mark.parametrize("group", [G.rot(8), G.dihedral(8)], ids=lambda g: g.name)
def test_equitune_removes_most_of_a_cnns_non_invariance(group):
    torch.manual_seed(0)
    model, x = cnn(), smooth_disc_images(8, 32, seed=1)
    with torch.no_grad():
        raw = torch.stack([model(group.act_input(g, x)) for g in group.elements])
    spread = (raw - raw[0]).abs().max().item()
    errors = EquivariantWrapper(model, group, invariant=True).check_equivariance(x, atol=INVARIANCE_TOL * spread)
    assert len(errors) == group.order


@pytest.mark.parametrize("group", [G.rot(8), G.dihedral(16)], ids=lambda g: g.name)
def test_dense_outputs_are_turned_back_by_the_same_action(group):
    """A model that returns its input: each view turned back is the input, to interpolation error."""
    x = smooth_disc_images(2, 32)
    net = EquivariantWrapper(nn.Identity(), group)
    views, _ = net.views(x)
    assert (views - x).abs().max() < GROUP_LAW_TOL * x.abs().max()
    net.check_equivariance(x, atol=GROUP_LAW_TOL * x.abs().max().item())


def test_interpolating_groups_reject_integer_and_non_square_images():
    with pytest.raises(ValueError, match="rotations by 360°/8 interpolate: images must be floating point"):
        G.rot(8).orbit(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="rotating by 360°/16 needs square images, got H×W = 8×6"):
        G.dihedral(16).orbit(torch.randn(1, 3, 8, 6))
    with pytest.raises(ValueError, match="needs n ≥ 1"):
        G.rot(0)
