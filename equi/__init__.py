"""equi: equivariant transfer learning from pretrained models (equitune, equizero, λ-equitune).

    import equi
    wrapped = equi.EquivariantWrapper(model, equi.groups.rot90(), equi.ProxyArgmin("entropy"), invariant=True)
"""

from . import groups
from .canonical import CanonicalLambda
from .check import check_equivariance, group_pairs, so2_pairs
from .operator import EquivariantWrapper
from .proxy import PROXIES
from .weighting import LambdaNet, ProxyArgmin, Uniform, Weighting

__all__ = [
    "groups", "CanonicalLambda", "check_equivariance", "group_pairs", "so2_pairs",
    "EquivariantWrapper", "PROXIES", "LambdaNet", "ProxyArgmin", "Uniform", "Weighting",
]
