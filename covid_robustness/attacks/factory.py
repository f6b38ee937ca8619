"""Config -> ART attack on an ART PyTorchClassifier that wraps the trained model, on its device.

Each attack config names an attack (`name`), an implementation (`impl`), a label for the setting
(`setting`, e.g. "art_default") and `eps`, the L-inf budget, where one applies, in the unit `eps_unit`:
`pixel` ([0, 1] pixels) or `std` (standard deviations of the training pixels, the model's own
normalisation: what ART's eps means for a model fed standardised images). Every other key is passed to
the attack's constructor, so a config reads like the ART call it makes. `source_model` (transfer
attacks) names the model the examples are crafted on and `whole_set` asks for all attacked images in one
call; the callback handles both.
"""

from typing import Callable

import numpy as np
import torch
from art.attacks.attack import EvasionAttack
from art.attacks.evasion import (AutoAttack, CarliniLInfMethod, FastGradientMethod, ProjectedGradientDescent,
                                 SpatialTransformation, SquareAttack)
from art.estimators.classification import PyTorchClassifier
from torch import nn

from ..errors import ConfigError
from .apgd import APGD
from .bounded import BoundedAttack
from .cw import CarliniLInfBatched
from .margin import MarginLoss
from .spatial import SpatialTransformationPerImage

META_KEYS = ("name", "impl", "setting", "eps", "eps_unit", "source_model", "whole_set")
EPS_UNITS = ("pixel", "std")
# Keys in the unit of eps: converted with it.
EPS_KEYS = ("eps", "eps_step")


def build_classifier(net: nn.Module, image_size: int, num_classes: int, preprocessing_defences=None,
                     loss: nn.Module | None = None, cls: type = PyTorchClassifier, **extra) -> PyTorchClassifier:
    """ART's view of a model that takes [0, 1] pixels (normalisation is inside `net`), optionally defended."""
    return cls(
        model=net, loss=loss if loss is not None else nn.CrossEntropyLoss(), input_shape=(1, image_size, image_size),
        nb_classes=num_classes, clip_values=(0.0, 1.0), preprocessing_defences=preprocessing_defences,
        device_type="gpu" if torch.cuda.is_available() else "cpu", **extra,
    )


def with_loss(clf: PyTorchClassifier, loss: nn.Module) -> PyTorchClassifier:
    """The same classifier (model, defenses, class) with another loss for its loss gradients."""
    params = clf.get_params()
    params.update(loss=loss, device_type="gpu" if torch.cuda.is_available() else "cpu")
    params.pop("preprocessing", None)  # ART's default identity standardisation: normalisation is inside the model
    return type(clf)(**params)


def _fgsm(clf, eps, params):
    return FastGradientMethod(clf, norm=np.inf, eps=eps, **params)


def _pgd(clf, eps, params):
    if params.get("eps_step") is None:
        # Madry et al.: a step of 2.5 eps / iterations lets an iterate cross the ball and come back.
        params["eps_step"] = 2.5 * eps / params.get("max_iter", 100)
    return ProjectedGradientDescent(clf, norm=np.inf, eps=eps, verbose=False, **params)


def _apgd(clf, eps, params):
    """APGD (Croce & Hein 2020) on the classifier's own loss: cross-entropy, so APGD-CE.

    apgd.APGD: ART's algorithm, but an image fooled at any iterate stays fooled (ART judges the last).
    loss_type=None keeps the classifier given, defenses and EOT included; ART's loss_type options would
    rebuild a plain PyTorchClassifier around the model.
    """
    if params.get("eps_step") is None:
        params["eps_step"] = 2 * eps  # AutoAttack's initial step
    return APGD(clf, norm=np.inf, eps=eps, loss_type=None, verbose=False, **params)


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
    common = dict(norm=np.inf, eps=eps, eps_step=step, max_iter=max_iter, nb_random_init=restarts,
                  batch_size=batch, loss_type=None, verbose=False)
    attacks = [APGD(clf, **common), APGD(with_loss(clf, MarginLoss()), **common)]
    if square_iter:
        # ART's L-inf Square draws one square position and sign per iteration for the whole batch, as
        # AutoAttack's own square.py does (the Square paper's code draws them per image); left as is.
        attacks.append(SquareAttack(clf, norm=np.inf, eps=eps, max_iter=square_iter, batch_size=batch, verbose=False))
    return AutoAttack(clf, norm=np.inf, eps=eps, eps_step=step, attacks=attacks, batch_size=batch)


def _minimum_norm(attack_class):
    """A minimum-norm attack, evaluated at the budget eps when one is given."""
    def build(clf, eps, params):
        attack = attack_class(clf, verbose=False, **params)
        return attack if eps is None else BoundedAttack(attack, eps)
    return build


def _unbudgeted(attack_class):
    return lambda clf, eps, params: attack_class(clf, verbose=False, **params)


# (builder, whether eps is required, whether eps is allowed) per attack and implementation.
BUILDERS: dict[tuple[str, str], tuple[Callable, bool, bool]] = {
    ("fgsm", "art"): (_fgsm, True, True),
    ("pgd", "art"): (_pgd, True, True),
    ("apgd", "art"): (_apgd, True, True),
    ("autoattack_binary", "art"): (_autoattack_binary, True, True),
    ("cw", "art"): (_minimum_norm(CarliniLInfMethod), False, True),
    ("st", "art"): (_unbudgeted(SpatialTransformation), False, False),
    ("cw", "fast"): (_minimum_norm(CarliniLInfBatched), False, True),
    ("st", "fast"): (_unbudgeted(SpatialTransformationPerImage), False, False),
}


def attack_names() -> list[str]:
    return sorted({name for name, _ in BUILDERS})


def in_pixels(cfg: dict, std: float) -> tuple[dict, dict[str, float]]:
    """The attack config with its budget in [0, 1] pixels, and the budget in both units (metrics).

    std is the model's normalisation std (of its training pixels): eps_unit std multiplies eps and
    eps_step by it. The converted budget is checked like any pixel budget.
    """
    unit = cfg.get("eps_unit", "pixel")
    scale = std if unit == "std" else 1.0
    out = {k: v for k, v in cfg.items() if k != "eps_unit"}
    for key in EPS_KEYS:
        if out.get(key) is not None:
            out[key] = float(out[key]) * scale
    validate_attack(out)
    if out.get("eps") is None:
        return out, {}
    return out, {"eps_pixel": out["eps"], "eps_std": out["eps"] / std, "normalisation_std": std}


def validate_attack(cfg: dict) -> None:
    """Stop on an unknown attack, an unknown implementation or an epsilon that does not fit."""
    name, impl, eps = cfg.get("name"), cfg.get("impl", "art"), cfg.get("eps")
    unit = cfg.get("eps_unit", "pixel")
    if unit not in EPS_UNITS:
        raise ConfigError(f"attack.eps_unit={unit!r} is not a unit; choose pixel ([0, 1] pixels) or std "
                          "(standard deviations of the training pixels).")
    if name not in attack_names():
        raise ConfigError(f"attack {name!r} is not known; choose one of {attack_names()}.")
    impls = sorted(i for n, i in BUILDERS if n == name)
    if (name, impl) not in BUILDERS:
        raise ConfigError(f"attack.impl={impl!r} is not available for {name}; choose one of {impls}.")
    _, needs_eps, takes_eps = BUILDERS[(name, impl)]
    if eps is None and needs_eps:
        raise ConfigError(f"attack {name} needs attack.eps, an L-inf budget in [0, 1] pixel units.")
    if eps is not None and not takes_eps:
        raise ConfigError(f"attack {name} has no epsilon (attack.eps={eps}); set attack.eps=null and size it with its own parameters.")
    # In std units the upper bound depends on the model's std: in_pixels checks the converted budget.
    upper = 1.0 if unit == "pixel" else float("inf")
    if eps is not None and not (isinstance(eps, (int, float)) and 0 <= eps <= upper):
        raise ConfigError(f"attack.eps={eps!r} is out of range; an L-inf budget on [0, 1] pixels lies in [0, 1] "
                          "(8/255 = 0.0314); in std units it is >= 0 and at most 1 once multiplied by the std.")


def build_attack(cfg: dict, classifier: PyTorchClassifier) -> EvasionAttack:
    validate_attack(cfg)
    builder = BUILDERS[(cfg["name"], cfg.get("impl", "art"))][0]
    params = {k: v for k, v in cfg.items() if k not in META_KEYS}
    eps = cfg.get("eps")
    try:
        return builder(classifier, None if eps is None else float(eps), params)
    except TypeError as err:  # an unknown keyword: name it in terms of the config
        raise ConfigError(f"attack {cfg['name']} does not take one of {sorted(params)}: {err}.") from err
    except ValueError as err:  # ART's own parameter checks
        raise ConfigError(f"attack {cfg['name']} rejects its parameters {params}: {err}") from err
