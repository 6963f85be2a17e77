"""SCAN: pretrained seq2seq models made equivariant to a word swap (paper Table 2, Tables 8–12)."""

from ...sequence import DECODINGS
from .. import Task, register
from .schema import RULES

METHOD_PREFIXES = {"vanilla": "", "equitune": "Equi", "equizero": "Equizero", "lambda": "λ-Equi"}


def label(cfg) -> str:
    """The paper's row names: EquiLSTM, λ-EquiLSTM stepwise, EquizeroGRU finetuned, G-RNN; with the split."""
    task, method = cfg.task, cfg.method
    cell = task.cell.upper()
    name = f"G-{cell}" if task.architecture == "gseq2seq" else METHOD_PREFIXES[method.name] + cell
    if method.get("decoding") == "stepwise":
        name += " stepwise"
    if task.finetune.examples:
        name += " finetuned"
    return f"{name} ({task.split})"


TASK = register(Task(
    name="scan",
    runner=f"{__name__}.runner",
    rules=RULES,
    assets=f"{__name__}.assets:assets",
    method_options={"decoding": DECODINGS},  # how equitune and λ decode: per_view (null) or stepwise
    label=label,
))
