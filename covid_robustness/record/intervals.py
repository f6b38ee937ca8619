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
    # At 0 and n correct the ends are 0 and 1 exactly: the formula leaves rounding there (1.7e-18 for 0 of
    # 200), and a count compared with the lower end ("0 images left < 3e-16") would read as below it.
    low = 0.0 if correct <= 0 else max(0.0, centre - half)
    high = 1.0 if correct >= n else min(1.0, centre + half)
    return low, high


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether two intervals share a point: then the data cannot tell their accuracies apart at this level."""
    return a[0] <= b[1] and b[0] <= a[1]
