"""equi: equivariant transfer learning from pretrained models (equitune, equizero, λ-equitune).

    import equi
    wrapped = equi.wrap(model, group="rot90", method="lambda")   # timm, Hugging Face, open_clip, or features=
    wrapped = equi.EquivariantWrapper(model, equi.groups.rot90(), equi.ProxyArgmin("entropy"), invariant=True)

Needs torch alone; the paper's tasks (equi.tasks, run.py) need the extras, `pip install equi[paper]`.
"""

from . import groups
from .canonical import CanonicalLambda
from .check import check_equivariance, group_pairs, so2_pairs
from .operator import EquivariantWrapper, SampledViews
from .proxy import PROXIES
from .weighting import LambdaNet, ProxyArgmin, Uniform, Weighting
from .adapters import register_adapter, wrap

__all__ = [
    "groups", "CanonicalLambda", "check_equivariance", "group_pairs", "so2_pairs",
    "EquivariantWrapper", "SampledViews", "PROXIES", "LambdaNet", "ProxyArgmin", "Uniform", "Weighting", "register_adapter", "wrap",
]
