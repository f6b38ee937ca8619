"""Clearing what an ART attack kept from an earlier generate() call, so that an attack built once per job
searches each batch afresh, as a newly built attack would: the result then does not depend on the batch
that came before."""

from art.attacks.attack import EvasionAttack
from art.attacks.evasion import SpatialTransformation

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
