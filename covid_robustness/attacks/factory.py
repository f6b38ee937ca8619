"""Config -> ART attack on an ART PyTorchClassifier that wraps the trained model, on its device.

Each attack config names an attack (`name`), an implementation (`impl`), a label for the setting
(`setting`, e.g. "art_default") and `eps`, the L-inf budget, where one applies, in the unit `eps_unit`:
`pixel` ([0, 1] pixels) or `std` (standard deviations of the training pixels, the model's own
normalisation: what ART's eps means for a model fed standardised images). Every other key is passed to
the attack's constructor, so a config reads like the ART call it makes. `source_model` (transfer
attacks) names the model the examples are crafted on and `whole_set` asks for all attacked images in one
call; the callback handles both. `target_class` (a class name; null: untargeted) turns FGSM, PGD, APGD and
C&W into targeted attacks toward that class: `with_target` resolves it to `target_index` once the task's
classes are known, and `build_attack` builds the attack with targeted=True.

The attacks are registered builders (attacks/registry.py: ART's here, the fast ones beside their
classes in cw.py, spatial.py, gradient.py, apgd.py and radius.py). A config may instead name any ART evasion attack
with `_target_` (e.g. art.attacks.evasion.DeepFool) and a `name` of its own: it is built as
`cls(classifier, **params)`, with `eps=` when eps is not null and `verbose=False` when the class takes it.
"""

import importlib
import inspect
from functools import partial

import numpy as np
from art.attacks.attack import EvasionAttack
from art.attacks.evasion import (
    AutoAttack,
    CarliniLInfMethod,
    FastGradientMethod,
    ProjectedGradientDescent,
    SpatialTransformation,
    SquareAttack,
)
from art.estimators.classification import PyTorchClassifier
from torch import nn

from ..errors import ConfigError
from .apgd import APGD
from .bounded import bounded
from .gradient import pgd_step
from .margin import MarginLoss
from .registry import ATTACKS, register_attack

META_KEYS = ("name", "impl", "setting", "eps", "eps_unit", "source_model", "whole_set", "target_class", "target_index")
# The attacks that craft toward a target class (attack.target_class), in every implementation.
TARGETED = ("fgsm", "pgd", "apgd", "cw")
EPS_UNITS = ("pixel", "std")
# Keys in the unit of eps: converted with it.
EPS_KEYS = ("eps", "eps_step")
# The only classes an attack's _target_ may name: a config is data, and must not import or build anything else.
EVASION = "art.attacks.evasion."
TARGET = "_target_"


def build_classifier(
    net: nn.Module,
    image_size: int,
    num_classes: int,
    preprocessing_defences=None,
    loss: nn.Module | None = None,
    cls: type = PyTorchClassifier,
    **extra,
) -> PyTorchClassifier:
    """ART's view of a model that takes [0, 1] pixels (normalisation is inside `net`), optionally defended.

    On the device the network is on: ART moves a "gpu" classifier's network to the current CUDA device,
    so a job told to compute on the CPU on a GPU machine attacks on the CPU too.
    """
    on_gpu = any(p.is_cuda for p in net.parameters())
    return cls(
        model=net,
        loss=loss if loss is not None else nn.CrossEntropyLoss(),
        input_shape=(1, image_size, image_size),
        nb_classes=num_classes,
        clip_values=(0.0, 1.0),
        preprocessing_defences=preprocessing_defences,
        device_type="gpu" if on_gpu else "cpu",
        **extra,
    )


def with_loss(clf: PyTorchClassifier, loss: nn.Module) -> PyTorchClassifier:
    """The same classifier (model, defenses, class) with another loss for its loss gradients."""
    params = clf.get_params()
    params.update(loss=loss, device_type="gpu" if clf.device.type == "cuda" else "cpu")
    params.pop("preprocessing", None)  # ART's default identity standardisation: normalisation is inside the model
    return type(clf)(**params)


def _every_step(name: str, params: dict) -> None:
    """ART's FGSM and PGD step every image to the end: early_stop=false is their behaviour, true is refused."""
    if params.pop("early_stop", False):
        raise ConfigError(
            f"attack {name}: attack.early_stop=true needs attack.impl=fast (ART's attack steps every image "
            f"max_iter times); set attack.early_stop=false, or use attack={name}_art."
        )


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


@register_attack("fgsm", needs_eps=True, takes_eps=True, label="FGSM")
def _fgsm(clf, eps, params):
    _every_step("fgsm", params)
    return FastGradientMethod(clf, norm=np.inf, eps=eps, **params)


@register_attack("pgd", needs_eps=True, takes_eps=True, label="PGD")
def _pgd(clf, eps, params):
    _every_step("pgd", params)
    if params.get("eps_step") is None:
        params["eps_step"] = pgd_step(eps, params.get("max_iter", 100))
    return ProjectedGradientDescent(clf, norm=np.inf, eps=eps, verbose=False, **params)


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


@register_attack("st", needs_eps=False, takes_eps=False, label="ST")
def _st(clf, eps, params):
    """ART's SpatialTransformation: one transform for the whole generate() call; reset_attack clears it."""
    return SpatialTransformation(clf, verbose=False, **params)


def attack_names() -> list[str]:
    """The registered attacks, sorted (an attack from _target_ needs no registration)."""
    return sorted(name for name, impls in ATTACKS.items() if len(impls))


def attack_label(name: str) -> str:
    """The attack's short name in tables (PGD); the name itself for an attack that registered none."""
    impls = ATTACKS.get(name)
    return impls.entries()[0].label if impls else name


def _target_class(cfg: dict) -> type:
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


def _accepts(cls: type, keyword: str) -> bool:
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
        return False, _accepts(_target_class(cfg), "eps")
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
    name, eps = cfg.get("name"), cfg.get("eps")
    unit = cfg.get("eps_unit", "pixel")
    if unit not in EPS_UNITS:
        raise ConfigError(
            f"attack.eps_unit={unit!r} is not a unit; choose pixel ([0, 1] pixels) or std "
            "(standard deviations of the training pixels)."
        )
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
    # In std units the upper bound depends on the model's std: in_pixels checks the converted budget.
    upper = 1.0 if unit == "pixel" else float("inf")
    if eps is not None and not (isinstance(eps, (int, float)) and 0 <= eps <= upper):
        raise ConfigError(
            f"attack.eps={eps!r} is out of range; an L-inf budget on [0, 1] pixels lies in [0, 1] "
            "(8/255 = 0.0314); in std units it is >= 0 and at most 1 once multiplied by the std."
        )


def _from_target(clf, eps, params, cls: type) -> EvasionAttack:
    if eps is not None:
        params["eps"] = eps
    if _accepts(cls, "verbose"):
        params.setdefault("verbose", False)
    return cls(clf, **params)


def with_target(cfg: dict, classes: tuple[str, ...] | list[str]) -> dict:
    """The attack config with `target_index`, the index of its target_class among the task's classes
    (None when untargeted); ConfigError for a name that is not one of them."""
    target = cfg.get("target_class")
    if target is not None and target not in classes:
        raise ConfigError(f"attack.target_class={target!r} is not a class of this task; choose one of {list(classes)}.")
    return {**cfg, "target_index": None if target is None else list(classes).index(target)}


def build_attack(cfg: dict, classifier: PyTorchClassifier) -> EvasionAttack:
    """The attack the config names, on classifier; targeted (toward cfg's target_index) when it has a target_class."""
    validate_attack(cfg)
    params = {k: v for k, v in cfg.items() if k not in META_KEYS and k != TARGET}
    if cfg.get("target_class") is not None:
        if cfg.get("target_index") is None:
            raise ValueError("a targeted attack config needs target_index: resolve it with with_target")
        params["targeted"] = True
    if TARGET in cfg:
        builder = partial(_from_target, cls=_target_class(cfg))
    else:
        builder = ATTACKS[cfg["name"]].get(cfg.get("impl", "art")).obj
    eps = cfg.get("eps")
    try:
        return builder(classifier, None if eps is None else float(eps), dict(params))
    except TypeError as err:  # an unknown keyword: name it in terms of the config
        raise ConfigError(f"attack {cfg['name']} does not take one of {sorted(params)}: {err}.") from err
    except ValueError as err:  # ART's own parameter checks
        raise ConfigError(f"attack {cfg['name']} rejects its parameters {params}: {err}") from err


# ART attacks that keep what one generate() call found and reuse it in the next, and the attributes that
# hold it. SpatialTransformation searches its grid only while attack_trans_x/_y and attack_rot are None.
STATEFUL: tuple[tuple[type, tuple[str, ...]], ...] = (
    (SpatialTransformation, ("fooling_rate", "attack_trans_x", "attack_trans_y", "attack_rot")),
)
# Where a wrapper keeps the attacks it runs: BoundedAttack.attack, AutoAttack.attacks.
WRAPPED = ("attack", "attacks")


def reset_attack(attack: EvasionAttack) -> EvasionAttack:
    """Clears what the attack (and any attack it wraps) kept from earlier generate() calls, so that the next
    call searches afresh as a newly built attack would; an attack built once per job is reset before each
    batch. Returns the attack."""
    seen: set[int] = set()

    def clear(a):
        if id(a) in seen or not isinstance(a, EvasionAttack):
            return
        seen.add(id(a))
        for cls, attributes in STATEFUL:
            if isinstance(a, cls):
                for attribute in attributes:
                    setattr(a, attribute, None)
        for attribute in WRAPPED:
            inner = a.__dict__.get(attribute)
            for b in inner if isinstance(inner, (list, tuple)) else [inner]:
                clear(b)

    clear(attack)
    return attack
