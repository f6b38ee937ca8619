"""95 % Wilson score intervals of an accuracy: how far a share of 40-128 images can be from the truth.

Wilson rather than the normal approximation: it stays inside [0, 1] and keeps a width at 0 % and 100 %,
where a few dozen images leave the most doubt about a number that looks exact.
"""

from math import sqrt

Z95 = 1.959963984540054  # the normal quantile of 97.5 %


def wilson(correct: float, n: float, z: float = Z95) -> tuple[float, float]:
    """The interval of the proportion correct / n, as fractions; (0, 1) when nothing was counted."""
    if n <= 0:
        return 0.0, 1.0
    p, z2 = correct / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether two intervals share a point: then the data cannot tell their accuracies apart at this level."""
    return a[0] <= b[1] and b[0] <= a[1]
