"""The robustness curve of one job: each image's radius, and accuracy at every budget read off them.

An image's radius is the L-inf (or L2) size of the smallest perturbation found that fools it (attack=radius,
attacks/radius.py; the worst case over the clean image and the attack's example): 0 for an image the
model gets wrong unattacked, the distance of its example when the attack fooled it, and infinity when
nothing up to the largest budget searched did. Accuracy at budget b is the share of images whose radius
exceeds b: one job gives the whole curve that separate fixed-budget jobs give point by point.
"""

import numpy as np

from ..record import Metrics, curve
from .checks import TOLERANCE

# Budgets (in 1/255) at which the curve is logged as metrics, up to the largest one searched.
CURVE_BUDGETS_255 = (0.5, 1, 2, 4, 8, 16, 32, 64, 128)
# In an L2 ball: lengths on [0, 1] pixels (curve_accuracy_l2_<r>).
CURVE_BUDGETS_L2 = (0.0625, 0.125, 0.25, 0.5, 1, 2, 4, 8)


def per_image_radii(y: np.ndarray, clean: np.ndarray, adv: np.ndarray, linf: np.ndarray) -> np.ndarray:
    """0 where the clean prediction is wrong, the example's L-inf distance where it fools, else inf.

    The distance is read as the evaluation's checks read a budget: float32 arithmetic leaves an example
    made at budget b a few ulps beyond b, so the distance is rounded down by the checks' tolerance.
    """
    return np.where(clean != y, 0.0, np.where(adv != y, np.maximum(linf - TOLERANCE, 0.0), np.inf))


def _median(radii: np.ndarray) -> float:
    """The median radius; nan where there is no image or the median lies beyond the largest budget."""
    if not len(radii):
        return float("nan")
    m = float(np.median(radii))
    return m if np.isfinite(m) else float("nan")


def radius_metrics(
    y: np.ndarray, radii: np.ndarray, positive: int, eps_max: float, norm: float = np.inf
) -> dict[str, float]:
    """Median radius (all images, COVID-19 ones, the others), the share standing at eps_max, and the curve
    at CURVE_BUDGETS_255 up to eps_max (curve_accuracy_<n>_255); in L2 at CURVE_BUDGETS_L2
    (curve_accuracy_l2_<r>)."""
    covid = y == positive
    metrics = {
        Metrics.RADIUS_MEDIAN: _median(radii),
        Metrics.RADIUS_MEDIAN_COVID: _median(radii[covid]),
        Metrics.RADIUS_MEDIAN_NON_COVID: _median(radii[~covid]),
        Metrics.RADIUS_BEYOND: float(np.isinf(radii).mean()),
    }
    if norm == 2:
        budgets = [r for r in CURVE_BUDGETS_L2 if r <= eps_max + 1e-9]
        for r, accuracy in zip(budgets, curve(radii, np.array(budgets, dtype=float))):
            metrics[f"{Metrics.CURVE}l2_{r:g}"] = float(accuracy)
        return metrics
    budgets = [n for n in CURVE_BUDGETS_255 if n / 255 <= eps_max + 1e-9]
    for n, accuracy in zip(budgets, curve(radii, np.array(budgets) / 255)):
        metrics[f"{Metrics.CURVE}{n:g}_255"] = float(accuracy)
    return metrics
