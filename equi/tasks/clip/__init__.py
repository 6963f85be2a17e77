"""Zero-shot and finetuned CLIP under rotations and flips (paper §5.2.1, Figures 4, 5a, 7, 8, 11a, 12)."""

from .. import Task, register
from .schema import RULES

TASK = register(Task(
    name="clip",
    runner=f"{__name__}.runner",
    rules=RULES,
    assets=f"{__name__}.assets:assets",
))
