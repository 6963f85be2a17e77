"""Pretrained CNNs on rot90-CIFAR10 (paper §5.2.2, Figures 5b and 11b): our protocol and the paper's."""

from .. import Task, register
from .schema import RULES

TASK = register(Task(
    name="cnn",
    runner=f"{__name__}.runner",
    rules=RULES,
    assets=f"{__name__}.assets:assets",
))
