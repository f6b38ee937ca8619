"""Checks on an attack config before anything is built: a known attack and implementation, an epsilon
that fits it, a target class only where the attack has a targeted form.

A config may instead name any ART evasion attack with `_target_` (e.g. art.attacks.evasion.DeepFool) and a
`name` of its own; only ART's evasion attacks may be named, since a config is data and must not import or
build anything else.
"""

import importlib
import inspect

from art.attacks.attack import EvasionAttack

from ..errors import ConfigError
from .registry import ATTACKS, attack_names

# The attacks that craft toward a target class (attack.target_class), in every implementation.
TARGETED = ("fgsm", "pgd", "apgd", "cw")
EPS_UNITS = ("pixel", "std")


def checked_norm(norm) -> float:
    """inf for inf or "inf", 2.0 for 2; ValueError (an attack's parameter check) for any other norm."""
    if isinstance(norm, str) and norm == "inf" or isinstance(norm, float) and norm == float("inf"):
        return float("inf")
    if isinstance(norm, (int, float)) and not isinstance(norm, bool) and norm == 2:
        return 2.0
    raise ValueError(f"`norm` must be inf or 2, not {norm!r}.")


def attack_norm(cfg: dict) -> float:
    """The norm of the ball attack.eps bounds: inf (also without the key) or 2.0; ConfigError for another."""
    try:
        return checked_norm(cfg.get("norm", "inf"))
    except ValueError:
        raise ConfigError(
            f"attack.norm={cfg['norm']!r} is not a norm here; choose inf (an L-inf ball) or 2 (an L2 ball)."
        ) from None


# The only classes an attack's _target_ may name.
EVASION = "art.attacks.evasion."
TARGET = "_target_"


def evasion_class(cfg: dict) -> type:
    """The ART evasion attack a config's _target_ names; ConfigError for anything else."""
    name, target = cfg.get("name"), str(cfg[TARGET])
    if not target.startswith(EVASION):
        raise ConfigError(
            f"attack {name}: _target_={target!r} is not one of ART's evasion attacks; "
            f"name a class in {EVASION.rstrip('.')} (e.g. {EVASION}DeepFool)."
        )
    module, _, cls_name = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), cls_name, None)
    except (ImportError, ValueError):
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, EvasionAttack)):
        raise ConfigError(
            f"attack {name}: _target_={target!r} is not an evasion attack in {EVASION.rstrip('.')}; "
            f"choose a class listed by dir(art.attacks.evasion), e.g. {EVASION}DeepFool."
        )
    return cls


def accepts(cls: type, keyword: str) -> bool:
    """Whether cls's constructor takes keyword (by name, or through **kwargs)."""
    params = inspect.signature(cls.__init__).parameters
    return keyword in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _eps_rule(cfg: dict) -> tuple[bool, bool]:
    """(whether eps is required, whether eps is allowed) for the attack and implementation of cfg."""
    name = cfg.get("name")
    if TARGET in cfg:
        if not isinstance(name, str) or not name:
            raise ConfigError(
                f"attack._target_={cfg[TARGET]!r} needs attack.name, a short name of its own for "
                "reports (e.g. deepfool)."
            )
        if name in ATTACKS:
            raise ConfigError(
                f"attack.name={name!r} is a registered attack; give the _target_ attack a name of its "
                f"own, not one of {attack_names()}."
            )
        if cfg.get("impl", "art") != "art":
            raise ConfigError(
                f"attack {name} is ART's {cfg[TARGET]}: attack.impl={cfg['impl']!r} does not apply; "
                "set it to art or leave it out."
            )
        return False, accepts(evasion_class(cfg), "eps")
    if name not in attack_names():
        raise ConfigError(
            f"attack {name!r} is not known; choose one of {attack_names()}, or name an ART evasion "
            f"attack with attack._target_ (e.g. {EVASION}DeepFool)."
        )
    impls, impl = ATTACKS[name], cfg.get("impl", "art")
    if impl not in impls:
        raise ConfigError(f"attack.impl={impl!r} is not available for {name}; choose one of {sorted(impls.names())}.")
    entry = impls.get(impl)
    return entry.needs_eps, entry.takes_eps


def takes_eps(cfg: dict) -> bool:
    """Whether the config's attack has an L-inf budget eps (a registered attack's meta; for _target_, whether
    the ART class takes eps)."""
    return _eps_rule(cfg)[1]


def validate_attack(cfg: dict) -> None:
    """Stop on an unknown attack, an unknown implementation or an epsilon that does not fit."""
    name, eps = cfg.get("name"), cfg.get("eps")
    unit = cfg.get("eps_unit", "pixel")
    if unit not in EPS_UNITS:
        raise ConfigError(
            f"attack.eps_unit={unit!r} is not a unit; choose pixel ([0, 1] pixels) or std "
            "(standard deviations of the training pixels)."
        )
    l2 = attack_norm(cfg) == 2
    needs_eps, allows_eps = _eps_rule(cfg)
    if cfg.get("target_class") is not None and (TARGET in cfg or name not in TARGETED):
        raise ConfigError(
            f"attack {name} has no targeted form (attack.target_class={cfg['target_class']!r}); "
            f"targeted attacks are {list(TARGETED)}, or set attack.target_class=null."
        )
    if eps is None and needs_eps:
        raise ConfigError(f"attack {name} needs attack.eps, an L-inf budget in [0, 1] pixel units.")
    if eps is not None and not allows_eps:
        raise ConfigError(
            f"attack {name} has no epsilon (attack.eps={eps}); set attack.eps=null and size it with its own parameters."
        )
    # In std units the upper bound depends on the model's std: in_pixels checks the converted budget. An L2
    # length is bounded by the image's size only.
    upper = 1.0 if unit == "pixel" and not l2 else float("inf")
    if eps is not None and (isinstance(eps, bool) or not isinstance(eps, (int, float))):
        raise ConfigError(
            f"attack.eps={eps!r} is not a number; give an L-inf budget on [0, 1] pixels such as 0.0314 or "
            "${px:8} (8/255), or null for an attack without one."
        )
    if eps is not None and not 0 <= eps <= upper:
        raise ConfigError(
            f"attack.eps={eps!r} is out of range; an L-inf budget on [0, 1] pixels lies in [0, 1] "
            "(8/255 = 0.0314); in std units it is >= 0 and at most 1 once multiplied by the std."
        )
