"""Checks on what an attack produced. A violation means the numbers would be wrong, so it stops the run."""

import numpy as np
from torch import nn

# float32 arithmetic on x + delta can overshoot a bound by a few ulps; 1e-5 is far below 1/255.
TOLERANCE = 1e-5


class AttackCheckError(RuntimeError):
    """An attack produced something that invalidates the evaluation."""


def check_adversarial_batch(
    x: np.ndarray, x_adv: np.ndarray, eps: float | None, attack: str, norm: float = np.inf
) -> None:
    """Stop on examples of the wrong shape, non-finite, outside [0, 1] or outside the eps ball of the norm
    (np.inf or 2)."""
    if x_adv.shape != x.shape:
        raise AttackCheckError(f"attack {attack} returned shape {x_adv.shape} for input of shape {x.shape}.")
    if not np.isfinite(x_adv).all():
        raise AttackCheckError(f"attack {attack} returned non-finite pixels.")
    lo, hi = float(x_adv.min()), float(x_adv.max())
    if lo < -TOLERANCE or hi > 1 + TOLERANCE:
        raise AttackCheckError(
            f"attack {attack} left the valid pixel range [0, 1]: its pixels span [{lo:.4f}, {hi:.4f}]."
        )
    if eps is not None and norm == 2:
        # float32 sums over every pixel: the tolerance grows with the length.
        l2 = float(np.linalg.norm((x_adv - x).reshape(len(x), -1).astype(np.float64), axis=1).max(initial=0.0))
        if l2 > eps * (1 + 1e-5) + TOLERANCE:
            raise AttackCheckError(
                f"attack {attack} left the L2 ball: max ||x_adv - x||_2 = {l2:.5f} > eps = {eps:.5f}."
            )
    elif eps is not None:
        linf = float(np.abs(x_adv - x).max())
        if linf > eps + TOLERANCE:
            raise AttackCheckError(
                f"attack {attack} left the epsilon ball: max |x_adv - x| = {linf:.5f} > eps = {eps:.5f}."
            )


def check_not_above_clean(clean_correct: np.ndarray, adversarial_correct: np.ndarray) -> None:
    """An attacked image counts as correct only if its clean image is: the clean image is candidate zero."""
    if gained := int((adversarial_correct & ~clean_correct).sum()):
        raise AttackCheckError(
            f"{gained} image(s) wrong on the clean input count as correct under attack (adversarial accuracy "
            f"{adversarial_correct.mean():.3f} vs clean {clean_correct.mean():.3f}); "
            "an adversary would submit the clean image."
        )


class EvalModeGuard:
    """Records any forward pass of a module in training mode while the attack runs.

    Checking model.training before and after an attack misses an attack that switches to training
    mode and back; a hook on every module sees each forward pass.
    """

    def __init__(self, net: nn.Module, attack: str):
        self.net, self.attack = net, attack
        self.offenders: set[str] = set()

    def __enter__(self):
        self.handles = [
            m.register_forward_pre_hook(self._hook(name or "model")) for name, m in self.net.named_modules()
        ]
        return self

    def _hook(self, name):
        def hook(module, _):
            if module.training:
                self.offenders.add(name)

        return hook

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()
        if exc[0] is None and self.offenders:
            raise AttackCheckError(
                f"attack {self.attack} ran the model in training mode ({sorted(self.offenders)[0]} and "
                f"{len(self.offenders) - 1} more); BatchNorm and dropout must be in eval mode while attacking."
            )
