"""Pretrained DQNs made equivariant (paper Figure 2)."""

from .. import Task, register
from .schema import RULES

TASK = register(Task(
    name="dqn",
    runner=f"{__name__}.runner",
    rules=RULES,
    assets=f"{__name__}.assets:assets",
))
