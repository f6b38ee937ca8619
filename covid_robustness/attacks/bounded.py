"""Evaluate a minimum-norm attack at a budget: project its result onto the ball of radius eps (L-inf or L2).

Carlini & Wagner has no epsilon: it searches for the smallest perturbation that succeeds. Accuracy "at
eps" then means accuracy on the attack's examples projected onto the eps ball, which succeed at least
wherever the unprojected perturbation was already inside the ball.
"""

import numpy as np
from art.attacks.attack import EvasionAttack


class BoundedAttack(EvasionAttack):
    attack_params = EvasionAttack.attack_params + ["eps"]

    def __init__(self, attack: EvasionAttack, eps: float, clip_values=(0.0, 1.0), norm: float = np.inf):
        self.attack = attack  # before super().__init__, which reads _estimator_requirements
        super().__init__(estimator=attack.estimator)
        self.eps = eps
        self.clip_values = clip_values
        self.norm = norm
        self._check_params()

    @property
    def _estimator_requirements(self):
        return self.attack._estimator_requirements

    def _check_params(self):
        if not 0 <= self.eps <= (1 if self.norm == np.inf else np.inf):
            raise ValueError(
                f"eps must lie in [0, 1], got {self.eps}"
                if self.norm == np.inf
                else f"eps must be >= 0, got {self.eps}"
            )

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs) -> np.ndarray:
        x_adv = self.attack.generate(x, y, **kwargs)
        delta = (x_adv - x).astype(np.float64)
        if self.norm == np.inf:
            delta = np.clip(delta, -self.eps, self.eps)
        else:  # scaled onto the L2 ball, as ART's projection does
            length = np.linalg.norm(delta.reshape(len(x), -1), axis=1).reshape((-1,) + (1,) * (x.ndim - 1))
            delta *= np.minimum(1.0, self.eps / np.maximum(length, 1e-12))
        return np.clip(x + delta, *self.clip_values).astype(x.dtype)


def bounded(attack: EvasionAttack, eps: float | None, norm: float = np.inf) -> EvasionAttack:
    """A minimum-norm attack evaluated at the budget eps in the norm's ball; the unbounded attack itself when
    eps is None."""
    return attack if eps is None else BoundedAttack(attack, eps, norm=norm)
