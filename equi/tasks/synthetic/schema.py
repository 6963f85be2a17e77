"""The rules of the synthetic task's config keys (conf/task/synthetic.yaml); see equi.schema."""

from __future__ import annotations

from ...schema import (BATCH, EPOCHS, EXAMPLES, LAYERS, MAX_LAYERS, RATE, WIDTH, Choice, Rule, up_to)

RULES: dict[str, Rule] = {
    "n_train": EXAMPLES, "n_test": EXAMPLES, "batch_size": BATCH,
    "epochs": EPOCHS, "lr": RATE, "hidden": WIDTH, "residual_layers": up_to(MAX_LAYERS, low=0), "finite_rotations": LAYERS,
    "canonicalizer": Choice(("sum", "x1", "x2")),  # whose angle: x1 + x2 (the paper's), or one vector
}
