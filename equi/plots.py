"""Plotting shared by the tasks' figure modules (equi/tasks/<task>/figures.py).

Imported by a figures module only, never by a task package's ``__init__``: matplotlib loads
when a figure is drawn, not when a config is checked. It draws to files (the Agg backend).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def views_figure(rows: list[tuple], group, title: str, path: Path) -> None:
    """Each (test image, its transform element, weights) as the operator sees it: every view
    g·(t·x), titled with its weight, the upright one (g∘t = e) in green."""
    fig, axes = plt.subplots(len(rows), group.order, figsize=(1.6 * group.order, 1.6 * len(rows)), squeeze=False)
    for r, (image, element, weights) in enumerate(rows):
        test_image = group.act_input(element, image[None])
        for g in group.elements:
            ax = axes[r][g]
            ax.imshow(group.act_input(g, test_image)[0].permute(1, 2, 0).numpy())
            upright = group.compose(g, element) == 0
            ax.set_title(f"λ={weights[g]:.2f}" + (" (upright)" if upright else ""), fontsize=7,
                         color="tab:green" if upright else "black")
            ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
