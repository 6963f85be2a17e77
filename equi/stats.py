"""Statistics shared by the tasks' results and the paper report (equi.paper)."""

from __future__ import annotations

import numpy as np


def bootstrap_mean(scores: np.ndarray, n: int, rng: np.random.Generator) -> list[float]:
    """Mean and its 95% percentile-bootstrap interval (n resamples drawn from rng)."""
    means = rng.choice(scores, size=(n, len(scores))).mean(1)
    return [float(scores.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]
