"""A job's figures: the example grid (clean image, adversarial image and the perturbation that separates
them), the reliability diagram, clean and under attack, attack=radius's robustness curve and attack=certify's
certified and attacked accuracy against the L2 radius."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from ..record import certified_share, curve
from .calibration import reliability
from .evaluate import Examples


def example_grid(ex: Examples, class_names: tuple[str, ...], title: str):
    n = len(ex.labels)
    fig, axes = plt.subplots(3, n, figsize=(2.1 * n, 6.6), squeeze=False)
    delta = ex.adversarial - ex.clean
    l2 = np.sqrt((delta.astype(np.float64) ** 2).sum(axis=tuple(range(1, delta.ndim))))  # what bounds an L2 attack
    scale = max(float(np.abs(delta).max()), 1e-12)
    for i in range(n):
        rows = (
            (ex.clean[i, 0], "gray", (0, 1), f"true {class_names[ex.labels[i]]}\npred {class_names[ex.pred_clean[i]]}"),
            (ex.adversarial[i, 0], "gray", (0, 1), f"adversarial\npred {class_names[ex.pred_adv[i]]}"),
            (
                delta[i, 0],
                "seismic",
                (-scale, scale),
                f"perturbation\nL-inf {np.abs(delta[i]).max():.4f}, L2 {l2[i]:.3f}",
            ),
        )
        for r, (img, cmap, (lo, hi), label) in enumerate(rows):
            ax = axes[r, i]
            ax.imshow(img, cmap=cmap, vmin=lo, vmax=hi)
            ax.set_title(label, fontsize=8, color="crimson" if r == 1 and ex.pred_adv[i] != ex.labels[i] else "black")
            ax.axis("off")
    fig.suptitle(f"{title}  (perturbation colour scale +-{scale:.4f})", fontsize=10)
    fig.tight_layout()
    return fig


def reliability_diagram(probabilities: dict[str, np.ndarray], title: str):
    """Accuracy against confidence per bin, clean and under attack, on one plot; marker area ~ images."""
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="calibrated")
    y = probabilities["labels"]
    for name, color in (("clean", "tab:blue"), ("adversarial", "tab:red")):
        confidence, accuracy, counts = reliability(y, probabilities[name])
        ax.plot(confidence, accuracy, color=color, marker="o", linewidth=1, markersize=3, label=name)
        ax.scatter(confidence, accuracy, s=300 * counts / max(len(y), 1), color=color, alpha=0.25)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top probability)", ylabel="accuracy", title=title)
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def robustness_curve(
    radii: np.ndarray,
    labels: np.ndarray,
    class_names: tuple[str, ...],
    eps_max: float,
    title: str,
    norm: float = np.inf,
):
    """Accuracy against the budget read off the per-image radii, all images and per class: L-inf in 1/255, L2
    on [0, 1] pixels."""
    budgets = np.linspace(0, eps_max, 129)
    scale, axis = (255, "L-inf budget (x/255)") if norm == np.inf else (1, "L2 budget ([0, 1] pixels)")
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    ax.plot(budgets * scale, curve(radii, budgets), color="black", linewidth=2, label=f"all ({len(radii)})")
    for c, name in enumerate(class_names):
        if (mine := labels == c).any():
            ax.plot(budgets * scale, curve(radii[mine], budgets), linewidth=1.2, label=f"{name} ({mine.sum()})")
    ax.set(xlim=(0, eps_max * scale), ylim=(0, 1), xlabel=axis, ylabel="accuracy", title=title)
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def certified_curve(certificate: dict, title: str):
    """Certified accuracy (a lower bound, the share certified right at a radius >= r) as a curve over r, and
    attacked accuracy (an upper bound) at the radii attacked, against the L2 radius on [0, 1] pixels."""
    attacked = {float(r): np.mean(v) for r, v in certificate["attacked_right"].items()}
    top = max(max(attacked), max(certificate["radius"], default=0.0)) * 1.05
    grid = np.linspace(0, top, 200)
    certified = certified_share(certificate, grid)
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    ax.plot(grid, certified, color="tab:blue", linewidth=2, label="certified (lower bound)")
    xs = sorted(attacked)
    ax.plot(xs, [attacked[r] for r in xs], color="tab:red", marker="o", linewidth=1.5, label="attacked (upper bound)")
    ax.fill_between(
        grid,
        certified,
        np.interp(grid, xs, [attacked[r] for r in xs]),
        where=grid <= xs[-1],
        color="grey",
        alpha=0.15,
        label="not known",
    )
    ax.set(xlim=(0, top), ylim=(0, 1), xlabel="L2 radius ([0, 1] pixels)", ylabel="accuracy of the smoothed classifier")
    ax.set_title(
        f"{title}\nsigma {certificate['sigma']:g}, n {certificate['n']}, alpha {certificate['alpha']:g}", fontsize=9
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
