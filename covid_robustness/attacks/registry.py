"""The attack registry: ATTACKS maps an attack's name to a Registry of its implementations (attack.impl).

An implementation registers a builder `(classifier, eps, params) -> EvasionAttack` with `register_attack`
beside its definition (attack=certify's builder gives the checked settings of its evaluation instead:
attacks/smoothing.py), so a config chooses an attack by name and an implementation of it by impl. This
module imports no attack, so every attack module can import it without an import cycle.
"""

from ..registry import Registry

ATTACKS: dict[str, Registry] = {}


def register_attack(name: str, impl: str = "art", *, needs_eps: bool, takes_eps: bool, label: str):
    """Decorator on a builder `(classifier, eps, params) -> EvasionAttack` (eps in pixels, or None).

    Meta: needs_eps (attack.eps is required), takes_eps (attack.eps is allowed: a budget, or the ball a
    minimum-norm attack's result is projected onto), label (the attack's short name in tables: PGD).
    """
    impls = ATTACKS.setdefault(name, Registry(f"implementation of attack {name}", key="attack.impl"))
    return impls.register(impl, needs_eps=needs_eps, takes_eps=takes_eps, label=label)


def attack_names() -> list[str]:
    """The registered attacks, sorted (an attack from _target_ needs no registration)."""
    return sorted(name for name, impls in ATTACKS.items() if len(impls))


def attack_label(name: str, target: str | None = None) -> str:
    """The attack's short name in tables (PGD); for an ART attack named by its class (`_target_`), the
    class's name (BasicIterativeMethod); else the name itself."""
    impls = ATTACKS.get(name)
    if impls:
        return impls.entries()[0].label
    return target.rsplit(".", 1)[-1] if target else name
