"""Config -> ART attack on an ART PyTorchClassifier that wraps the trained model, on its device.

Each attack config names an attack (`name`), an implementation (`impl`), a label for the setting
(`setting`, e.g. "art_default") and `eps`, the L-inf budget in [0, 1] pixel units, where one applies.
Every other key is passed to the attack's constructor, so a config reads like the ART call it makes.
"""

from typing import Callable

import numpy as np
import torch
from art.attacks.attack import EvasionAttack
from art.attacks.evasion import CarliniLInfMethod, FastGradientMethod, ProjectedGradientDescent, SpatialTransformation
from art.estimators.classification import PyTorchClassifier
from torch import nn

from ..errors import ConfigError
from .bounded import BoundedAttack
from .cw import CarliniLInfBatched
from .spatial import SpatialTransformationPerImage

META_KEYS = ("name", "impl", "setting", "eps")


def build_classifier(net: nn.Module, image_size: int, num_classes: int) -> PyTorchClassifier:
    """ART's view of a model that takes [0, 1] pixels (normalisation is inside `net`)."""
    return PyTorchClassifier(
        model=net, loss=nn.CrossEntropyLoss(), input_shape=(1, image_size, image_size),
        nb_classes=num_classes, clip_values=(0.0, 1.0),
        device_type="gpu" if torch.cuda.is_available() else "cpu",
    )


def _fgsm(clf, eps, params):
    return FastGradientMethod(clf, norm=np.inf, eps=eps, **params)


def _pgd(clf, eps, params):
    if params.get("eps_step") is None:
        # Madry et al.: a step of 2.5 eps / iterations lets an iterate cross the ball and come back.
        params["eps_step"] = 2.5 * eps / params.get("max_iter", 100)
    return ProjectedGradientDescent(clf, norm=np.inf, eps=eps, verbose=False, **params)


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
    ("cw", "art"): (_minimum_norm(CarliniLInfMethod), False, True),
    ("st", "art"): (_unbudgeted(SpatialTransformation), False, False),
    ("cw", "fast"): (_minimum_norm(CarliniLInfBatched), False, True),
    ("st", "fast"): (_unbudgeted(SpatialTransformationPerImage), False, False),
}


def attack_names() -> list[str]:
    return sorted({name for name, _ in BUILDERS})


def validate_attack(cfg: dict) -> None:
    """Stop on an unknown attack, an unknown implementation or an epsilon that does not fit."""
    name, impl, eps = cfg.get("name"), cfg.get("impl", "art"), cfg.get("eps")
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
    if eps is not None and not (isinstance(eps, (int, float)) and 0 <= eps <= 1):
        raise ConfigError(f"attack.eps={eps!r} is out of range; an L-inf budget on [0, 1] pixels lies in [0, 1] (8/255 = 0.0314).")


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
