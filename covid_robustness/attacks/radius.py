"""Each image's robust radius: the smallest L-inf (or, with norm=2, L2) budget at which PGD fools it, by bisection.

`RadiusPGD(eps=eps_max, steps=s)` searches the budgets eps_max * k / 2**s (k = 1 .. 2**s). Per image it
first runs the early-stopping PGD (gradient.py) at eps_max: an image that stands there has a radius
above eps_max and returns PGD's point. For the others it bisects over k, s rounds, one PGD run at the
middle budget each (images sharing a middle budget run together), and returns the example found at the
smallest budget that fooled the image. So the returned examples are inside the eps_max ball, and the
distance of a fooled image's example (L-inf, or L2) is its radius (at most the budget that found it): the image falls at
every budget from there on, which is the robustness curve the evaluation reads off one job
(evaluation/radius.py). PGD at each budget is the fast PGD with eps_step = 2.5 eps / max_iter.

Bisection assumes that PGD fooling an image at a budget also fools it at every larger one. PGD is not
exactly monotone in eps, so an image may be counted robust at a budget between two that the search tried
and a fixed-budget PGD fools there; the tests bound how often against fixed-budget jobs.
"""

import numpy as np
from art.attacks.attack import EvasionAttack
from art.config import ART_NUMPY_DTYPE
from art.estimators.classification import PyTorchClassifier
from art.utils import check_and_transform_label_format

from .gradient import PGD, pgd_step
from .own import OwnEvasionAttack
from .registry import register_attack
from .validation import checked_norm


class RadiusPGD(OwnEvasionAttack):
    """Per image, PGD's example at the smallest of the budgets eps * k / 2**steps that fools it."""

    attack_params = EvasionAttack.attack_params + ["eps", "steps", "max_iter", "batch_size", "norm"]
    _estimator_requirements = (PyTorchClassifier,)

    def __init__(self, classifier, eps=32 / 255, steps=6, max_iter=10, batch_size=64, norm=np.inf) -> None:
        super().__init__(classifier, locals())

    def _check_params(self) -> None:
        self.norm = checked_norm(self.norm)
        upper = 1 if self.norm == np.inf else np.inf  # an L2 length may exceed 1
        if isinstance(self.eps, bool) or not isinstance(self.eps, (int, float)) or not 0 < self.eps <= upper:
            raise ValueError(f"`eps` (the largest budget searched) must be a number in (0, {upper}].")
        for name, low in (("steps", 1), ("max_iter", 1), ("batch_size", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"`{name}` must be an integer >= {low}.")

    def budget(self, k: int) -> float:
        return self.eps * k / 2**self.steps

    def _pgd(self, x: np.ndarray, y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The early-stopping PGD at budget k: its examples and which of them fool the model."""
        eps = self.budget(k)
        attack = PGD(
            self.estimator,
            eps=eps,
            eps_step=pgd_step(eps, self.max_iter),
            max_iter=self.max_iter,
            batch_size=self.batch_size,
            verbose=False,
            norm=self.norm,
        )
        attack.judge_last = True  # its own passes say which examples fool: no prediction afterwards
        adv = attack.generate(x, y)
        for kind in self.passes:
            self.passes[kind] += attack.passes[kind]
            self.calls[kind] += attack.calls[kind]
        return adv, attack.fooled

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs) -> np.ndarray:
        """Examples for `x` (N x C x H x W) against the true classes `y` (indices or one-hot; without them,
        the model's predictions)."""
        self.reset_counts()
        x = x.astype(ART_NUMPY_DTYPE)
        if y is None:
            y = self.estimator.predict(x, batch_size=self.batch_size)
        y = check_and_transform_label_format(y, nb_classes=self.estimator.nb_classes).astype(ART_NUMPY_DTYPE)
        top = 2**self.steps
        adv, fooled = self._pgd(x, y, top)
        # Per fooled image the interval of k: lo stands (or is 0), hi fools (its example is kept).
        rows = np.flatnonzero(fooled)
        lo, hi = np.zeros(len(rows), dtype=int), np.full(len(rows), top)
        for _ in range(self.steps):
            mid = (lo + hi) // 2
            for k in np.unique(mid[hi - lo > 1]):
                at = np.flatnonzero((mid == k) & (hi - lo > 1))
                found, hit = self._pgd(x[rows[at]], y[rows[at]], int(k))
                adv[rows[at[hit]]] = found[hit]
                hi[at[hit]], lo[at[~hit]] = k, k
        return adv


@register_attack("radius", "fast", needs_eps=True, takes_eps=True, label="Radius")
def _radius(classifier, eps, params):
    return RadiusPGD(classifier, eps=eps, **params)
