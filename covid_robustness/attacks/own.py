"""The base of this package's own ART evasion attacks (fast C&W, per-image ST).

Their constructor arguments are kept as attributes, as ART's attacks keep theirs (`attack_params`,
`targeted` through ART's property), checked by the attack's `_check_params`, and the attack counts the
passes and calls it makes through the model (for the benchmarks).
"""

from art.attacks.attack import EvasionAttack


class OwnEvasionAttack(EvasionAttack):
    def __init__(self, estimator, arguments: dict) -> None:
        """arguments: the subclass constructor's locals(); those named in attack_params are kept."""
        super().__init__(estimator=estimator)
        for name in self.attack_params:
            if name in arguments:
                setattr(self, name, arguments[name])
        self._check_params()
        self.reset_counts()

    def reset_counts(self) -> None:
        self.passes = {"forward": 0, "backward": 0}
        self.calls = {"forward": 0, "backward": 0}
