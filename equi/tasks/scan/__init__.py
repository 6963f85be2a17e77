"""SCAN: pretrained seq2seq models made equivariant to a word swap (paper Table 2, Tables 8–12)."""

from ...sequence import DECODINGS
from .. import Task, register
from .schema import RULES

TASK = register(Task(
    name="scan",
    runner=f"{__name__}.runner",
    rules=RULES,
    assets=f"{__name__}.assets:assets",
    method_options={"decoding": DECODINGS},  # how equitune and λ decode: per_view (null) or stepwise
))
