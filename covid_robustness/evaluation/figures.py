"""The example grid: clean image, adversarial image and the perturbation that separates them."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from .evaluate import Examples


def example_grid(ex: Examples, class_names: tuple[str, ...], title: str):
    n = len(ex.labels)
    fig, axes = plt.subplots(3, n, figsize=(2.1 * n, 6.6), squeeze=False)
    delta = ex.adversarial - ex.clean
    scale = max(float(np.abs(delta).max()), 1e-12)
    for i in range(n):
        rows = (
            (ex.clean[i, 0], "gray", (0, 1), f"true {class_names[ex.labels[i]]}\npred {class_names[ex.pred_clean[i]]}"),
            (ex.adversarial[i, 0], "gray", (0, 1), f"adversarial\npred {class_names[ex.pred_adv[i]]}"),
            (delta[i, 0], "seismic", (-scale, scale), f"perturbation\nL-inf {np.abs(delta[i]).max():.4f}"),
        )
        for r, (img, cmap, (lo, hi), label) in enumerate(rows):
            ax = axes[r, i]
            ax.imshow(img, cmap=cmap, vmin=lo, vmax=hi)
            ax.set_title(label, fontsize=8, color="crimson" if r == 1 and ex.pred_adv[i] != ex.labels[i] else "black")
            ax.axis("off")
    fig.suptitle(f"{title}  (perturbation colour scale +-{scale:.4f})", fontsize=10)
    fig.tight_layout()
    return fig
