"""SO(2)-invariant regression (paper appendix D.5): MLP vs Canon-MLP vs Canon-λ-MLP."""

from .. import Task, register
from .schema import RULES

TASK = register(Task(
    name="synthetic",
    runner=f"{__name__}.runner",
    rules=RULES,
))
