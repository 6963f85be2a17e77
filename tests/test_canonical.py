"""Canonical-λ-equitune on SO(2): invariant / equivariant for every angle, not just a finite set."""

import math

import pytest
import torch
from torch import nn

import equi
from equi import groups as G

ANGLES = [0.1, 1.0, math.pi / 3, 2.0, math.pi, 4.5]


def mlp(out: int):
    return nn.Sequential(nn.Flatten(), nn.Linear(6, 32), nn.Tanh(), nn.Linear(32, out))


@pytest.mark.parametrize("vectors", [0, (0, 1)])  # the angle of x1; of x1 + x2 (the paper's D.5 canonicalizer)
@pytest.mark.parametrize("extra", [1, 2, 5])
@pytest.mark.parametrize("weighting", ["uniform", "lambda"])
def test_canonical_lambda_is_so2_invariant(extra, weighting, vectors):
    w = equi.Uniform() if weighting == "uniform" else equi.LambdaNet(6, hidden=8, layers=3, residual=True)
    model = equi.CanonicalLambda(mlp(1), G.VectorAngle(vectors), extra, w, invariant=True)
    x = torch.randn(16, 3, 2)
    equi.check_equivariance(model, x, equi.so2_pairs(G.SO2(), ANGLES), atol=1e-4)


@pytest.mark.parametrize("extra", [1, 3])
def test_canonical_lambda_is_so2_equivariant(extra):
    model = equi.CanonicalLambda(nn.Sequential(mlp(4), nn.Unflatten(1, (2, 2))), G.VectorAngle(1), extra,
                                 equi.LambdaNet(6, hidden=8), invariant=False)
    x = torch.randn(16, 3, 2)
    equi.check_equivariance(model, x, equi.so2_pairs(G.SO2(invariant_output=False), ANGLES), atol=1e-4)


def test_without_canonicalization_a_finite_group_is_not_enough():
    """C4-equitune of an MLP is invariant to quarter turns only, not to every angle."""
    wrapped = equi.EquivariantWrapper(mlp(1), G.SO2().finite_subgroup(4), invariant=True)
    x = torch.randn(16, 3, 2)
    equi.check_equivariance(wrapped, x, equi.so2_pairs(G.SO2(), [math.pi / 2, math.pi]), atol=1e-4)
    with pytest.raises(AssertionError, match="not equivariant"):
        equi.check_equivariance(wrapped, x, equi.so2_pairs(G.SO2(), [1.0]), atol=1e-4)


def test_one_extra_rotation_is_plain_canonicalization():
    model = mlp(1)
    x = torch.randn(8, 3, 2)
    theta = torch.atan2(x[:, 0, 1], x[:, 0, 0])
    expected = model(G.rotate(-theta, x))
    torch.testing.assert_close(equi.CanonicalLambda(model, G.VectorAngle(0), 1)(x), expected)
    assert (G.rotate(-theta, x)[:, 0, 1].abs() < 1e-6).all()  # first vector lies on the x-axis
    with_lambda = equi.CanonicalLambda(model, G.VectorAngle(0), 1, equi.LambdaNet(6, hidden=8))
    assert sum(p.numel() for p in with_lambda.parameters()) == sum(p.numel() for p in model.parameters())  # λ of one view: dropped


def test_the_sum_canonicalizer_is_equivariant_and_not_the_first_vectors():
    x = torch.randn(64, 3, 2)
    theta = torch.rand(64) * 2 * math.pi
    summed, first = G.VectorAngle((0, 1)), G.VectorAngle(0)
    turn = torch.remainder(summed(G.rotate(theta, x)) - summed(x) - theta + math.pi, 2 * math.pi) - math.pi
    assert turn.abs().max() < 1e-4  # rotating the input by θ adds θ to the angle
    torch.testing.assert_close(summed(x), torch.atan2(x[:, 0, 1] + x[:, 1, 1], x[:, 0, 0] + x[:, 1, 0]))
    assert (summed(x) - first(x)).abs().mean() > 0.1
