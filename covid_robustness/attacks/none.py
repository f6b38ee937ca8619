"""attack=none: the images as they are, so a job with it measures clean (or corrupted) accuracy alone
through the same evaluation, checks and metrics as an attacked job."""

import numpy as np
from art.attacks.attack import EvasionAttack

from .registry import register_attack


class NoAttack(EvasionAttack):
    """The images as they are: a job with attack=none measures clean (or corrupted) accuracy alone."""

    _estimator_requirements = ()

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs) -> np.ndarray:
        return x.copy()


@register_attack("none", "identity", needs_eps=False, takes_eps=False, label="None")
def _none(clf, eps, params):
    if params:
        raise TypeError(f"attack none takes no setting, got {sorted(params)}")
    return NoAttack(estimator=clf)
