"""Fairness in language generation (paper §5.1.2, Figures 3 and 9)."""

from .. import Task, register
from .schema import RULES

TASK = register(Task(
    name="nlg",
    runner=f"{__name__}.runner",
    rules=RULES,
    assets=f"{__name__}.assets:assets",
))
