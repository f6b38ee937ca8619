"""ART's attacks as registered builders (impl art): FGSM, PGD, APGD, AutoAttack for two classes, C&W, ST.

Each builder takes the classifier, eps in [0, 1] pixels (or None) and the config's remaining keys, which
it passes to ART's constructor, so a config reads like the ART call it makes. The fast implementations
register beside their classes (gradient.py, apgd.py, cw.py, spatial.py, radius.py).
"""

import numpy as np
from art.attacks.evasion import (
    AutoAttack,
    CarliniL2Method,
    CarliniLInfMethod,
    FastGradientMethod,
    ProjectedGradientDescent,
    SpatialTransformation,
    SquareAttack,
)

from ..errors import ConfigError
from .apgd import APGD
from .bounded import bounded
from .classifier import with_loss
from .gradient import pgd_step
from .margin import MarginLoss
from .registry import register_attack
from .validation import checked_norm


def _every_step(name: str, params: dict) -> None:
    """ART's FGSM and PGD step every image to the end: early_stop=false is their behaviour, true is refused."""
    if params.pop("early_stop", False):
        raise ConfigError(
            f"attack {name}: attack.early_stop=true needs attack.impl=fast (ART's attack steps every image "
            f"max_iter times); set attack.early_stop=false, or use attack={name}_art."
        )


@register_attack("fgsm", needs_eps=True, takes_eps=True, label="FGSM")
def _fgsm(clf, eps, params):
    _every_step("fgsm", params)
    return FastGradientMethod(clf, norm=checked_norm(params.pop("norm", np.inf)), eps=eps, **params)


@register_attack("pgd", needs_eps=True, takes_eps=True, label="PGD")
def _pgd(clf, eps, params):
    _every_step("pgd", params)
    if params.get("eps_step") is None:
        params["eps_step"] = pgd_step(eps, params.get("max_iter", 100))
    return ProjectedGradientDescent(
        clf, norm=checked_norm(params.pop("norm", np.inf)), eps=eps, verbose=False, **params
    )


@register_attack("apgd", needs_eps=True, takes_eps=True, label="APGD")
def _apgd(clf, eps, params):
    """APGD (Croce & Hein 2020) on the classifier's own loss: cross-entropy, so APGD-CE.

    apgd.APGD: ART's algorithm and passes (a gradient and a prediction per step), but an image fooled at
    any iterate stays fooled and leaves (ART judges the last iterate). impl fast (apgd.py) takes the same
    steps with one pass each.
    """
    return APGD.from_config(clf, eps, params)


@register_attack("autoattack_binary", needs_eps=True, takes_eps=True, label="AutoAttack-2")
def _autoattack_binary(clf, eps, params):
    """AutoAttack for two classes: APGD-CE, APGD on the margin loss, and the score-based Square attack.

    ART's default AutoAttack adds APGD on the DLR loss, which needs three classes and crashes on two.
    With two classes the margin loss is what the targeted DLR attack would optimise (the only target is
    the other class); Square needs no gradient, so it still finds examples where gradients are masked.
    Per image, the first attack that succeeds supplies the example (ART AutoAttack). The defaults are
    AutoAttack's standard budget: 100 APGD steps, 5,000 Square queries.
    """
    p = dict(params)
    max_iter, restarts, batch = p.pop("max_iter", 100), p.pop("nb_random_init", 1), p.pop("batch_size", 64)
    square_iter, step = p.pop("square_max_iter", 5000), p.pop("eps_step", None) or 2 * eps
    if p:
        raise TypeError(f"unexpected keyword(s) {sorted(p)}")
    common = dict(
        norm=np.inf,
        eps=eps,
        eps_step=step,
        max_iter=max_iter,
        nb_random_init=restarts,
        batch_size=batch,
        loss_type=None,
        verbose=False,
    )
    attacks = [APGD(clf, **common), APGD(with_loss(clf, MarginLoss()), **common)]
    if square_iter:
        # ART's L-inf Square draws one square position and sign per iteration for the whole batch, as
        # AutoAttack's own square.py does (the Square paper's code draws them per image); left as is.
        attacks.append(SquareAttack(clf, norm=np.inf, eps=eps, max_iter=square_iter, batch_size=batch, verbose=False))
    return AutoAttack(clf, norm=np.inf, eps=eps, eps_step=step, attacks=attacks, batch_size=batch)


@register_attack("cw", needs_eps=False, takes_eps=True, label="C&W")
def _cw(clf, eps, params):
    """ART's C&W L-inf (one image at a time), evaluated at the budget eps when one is given (bounded.py)."""
    return bounded(CarliniLInfMethod(clf, verbose=False, **params), eps)


@register_attack("cw_l2", needs_eps=False, takes_eps=True, label="C&W")
def _cw_l2(clf, eps, params):
    """ART's C&W L2 (ART attacks batch_size images at once), evaluated in the L2 ball of radius eps when one is
    given (bounded.py)."""
    if checked_norm(params.pop("norm", 2)) != 2:
        raise ValueError("cw_l2 minimises an L2 perturbation: attack.norm must be 2.")
    return bounded(CarliniL2Method(clf, verbose=False, **params), eps, norm=2)


@register_attack("st", needs_eps=False, takes_eps=False, label="ST")
def _st(clf, eps, params):
    """ART's SpatialTransformation: one transform for the whole generate() call; reset_attack clears it."""
    return SpatialTransformation(clf, verbose=False, **params)
