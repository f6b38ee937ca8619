"""Signs of gradient masking across the jobs that attacked one trained model.

A gradient-based attack that looks weak is more often broken than the model robust. Three checks,
each allowing one image of slack:
- PGD at some eps leaves more images correct than FGSM at the same eps (PGD's first step is FGSM's);
- accuracy rises with eps for the same attack settings (a larger ball contains the smaller one);
- PGD at eps >= 1 leaves images correct (the ball then holds every image).
"""

from collections import defaultdict
from dataclasses import dataclass

FULL_BALL_ACCURACY = 0.1


@dataclass(frozen=True)
class Result:
    run_id: str
    attack: str
    settings: str  # every attack and evaluation setting but eps, to compare like with like
    eps: float | None
    accuracy: float
    images: int
    context: str = ""  # e.g. the test-time defense: only PGD and FGSM of one context are compared


def masking_flags(results: list[Result]) -> dict[str, list[str]]:
    """Reasons per run id; runs without a reason are not listed."""
    flags: dict[str, list[str]] = defaultdict(list)
    by_settings = defaultdict(list)
    for r in results:
        if r.eps is not None:
            by_settings[(r.attack, r.settings)].append(r)
    for (attack, _), group in by_settings.items():
        group.sort(key=lambda r: r.eps)
        for lo, hi in zip(group, group[1:]):
            if hi.eps > lo.eps and hi.accuracy > lo.accuracy + 1 / hi.images:
                flags[hi.run_id].append(
                    f"{attack} accuracy rises with eps: {lo.accuracy:.3f} at {lo.eps:.4f}, {hi.accuracy:.3f} at {hi.eps:.4f}")
    fgsm = {(r.eps, r.images, r.context): r for r in results if r.attack == "fgsm" and r.eps is not None}
    for r in results:
        if r.attack != "pgd" or r.eps is None:
            continue
        f = fgsm.get((r.eps, r.images, r.context))
        if f is not None and r.accuracy > f.accuracy + 1 / r.images:
            flags[r.run_id].append(f"PGD accuracy {r.accuracy:.3f} above FGSM's {f.accuracy:.3f} at eps {r.eps:.4f}")
        if r.eps >= 1 and r.accuracy > FULL_BALL_ACCURACY:
            flags[r.run_id].append(f"PGD accuracy {r.accuracy:.3f} at eps {r.eps}: the ball holds every image")
    return dict(flags)
