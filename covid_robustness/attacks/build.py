"""Config -> ART attack on an ART classifier (classifier.py) that wraps the trained model, on its device.

Each attack config names an attack (`name`), an implementation (`impl`), a label for the setting
(`setting`, e.g. "art_default") and `eps`, the L-inf budget in [0, 1] pixels once resolved (resolve.py).
Every other key is passed to the attack's builder, and so to its constructor, so a config reads like the
ART call it makes. `source_model` (transfer attacks) names the model the examples are crafted on and
`whole_set` asks for all attacked images in one call; the evaluation handles both. A config with a
`target_class` builds a targeted attack (FGSM, PGD, APGD and C&W have one) toward its `target_index`.

Registered attacks are built by their builder (registry.py); a config naming an ART evasion attack with
`_target_` is built as `cls(classifier, **params)`, with `eps=` when eps is not null and `verbose=False`
when the class takes it.
"""

from functools import partial

from art.attacks.attack import EvasionAttack
from art.estimators.classification import PyTorchClassifier

from ..errors import ConfigError
from .registry import ATTACKS
from .validation import TARGET, accepts, evasion_class, validate_attack

# The keys that describe the attack to this package rather than to its constructor.
META_KEYS = ("name", "impl", "setting", "eps", "eps_unit", "source_model", "whole_set", "target_class", "target_index")


# ART attacks that read the labels generate() is given as the classes to reach, whatever `targeted` says: handed
# the true labels, as an untargeted cell hands them, they would leave every image as it is.
READS_LABELS_AS_TARGETS = ("SaliencyMapMethod", "TargetedUniversalPerturbation")


def _from_target(clf, eps, params, cls: type, name: str = "") -> EvasionAttack:
    """cls(clf, **params), untargeted (an attack from _target_ has no target class): an ART attack whose default
    is targeted (BoundaryAttack) would read the true labels the evaluation passes as its targets, find every
    image already 'at its target' and change nothing."""
    if cls.__name__ in READS_LABELS_AS_TARGETS or params.get("targeted"):
        raise ConfigError(
            f"attack {name}: {cls.__name__} would run targeted, reading the true labels as the classes to reach, "
            "and change nothing; an attack from _target_ runs untargeted (leave out `targeted`)."
        )
    if accepts(cls, "targeted"):
        params["targeted"] = False
    if eps is not None:
        params["eps"] = eps
    if accepts(cls, "verbose"):
        params.setdefault("verbose", False)
    return cls(clf, **params)


def build_attack(cfg: dict, classifier: PyTorchClassifier) -> EvasionAttack:
    """The attack the config names, on classifier; targeted (toward cfg's target_index) when it has a target_class."""
    validate_attack(cfg)
    params = {k: v for k, v in cfg.items() if k not in META_KEYS and k != TARGET}
    if cfg.get("target_class") is not None:
        if cfg.get("target_index") is None:
            raise ValueError("a targeted attack config needs target_index: resolve it with with_target")
        params["targeted"] = True
    if TARGET in cfg:
        builder = partial(_from_target, cls=evasion_class(cfg), name=cfg["name"])
    else:
        builder = ATTACKS[cfg["name"]].get(cfg.get("impl", "art")).obj
    eps = cfg.get("eps")
    try:
        return builder(classifier, None if eps is None else float(eps), dict(params))
    except ConfigError:
        raise
    except TypeError as err:  # an unknown keyword: name it in terms of the config
        raise ConfigError(f"attack {cfg['name']} does not take one of {sorted(params)}: {err}.") from err
    except ValueError as err:  # ART's own parameter checks
        raise ConfigError(f"attack {cfg['name']} rejects its parameters {params}: {err}") from err
