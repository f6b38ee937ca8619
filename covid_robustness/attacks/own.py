"""The base of this package's own ART evasion attacks (fast C&W, per-image ST, early-stopping FGSM/PGD).

Their constructor arguments are kept as attributes, as ART's attacks keep theirs (`attack_params`,
`targeted` through ART's property), checked by the attack's `_check_params`, and the attack counts the
passes and calls it makes through the model (for the benchmarks).
"""

from collections.abc import Iterator
from contextlib import contextmanager

import torch
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


@contextmanager
def model_outputs(estimator) -> Iterator[list[torch.Tensor]]:
    """The logits (detached) of every pass through an ART PyTorch estimator's model while the block runs.

    The hook sits on ART's model wrapper, which every predict and gradient call of the estimator runs,
    so it sees the logits of a loss_gradient call that ART does not return, whatever preprocessing
    defences (BPDA, EOT draws) the estimator applies first. Hooks on the network itself would miss an
    nn.Sequential, whose layers ART runs one by one. The wrapper's last output is what ART reads as logits.
    """
    outputs: list[torch.Tensor] = []
    handle = estimator._model.register_forward_hook(lambda module, inputs, out: outputs.append(out[-1].detach()))
    try:
        yield outputs
    finally:
        handle.remove()
