"""Escalation: the images a cell's own attack leaves standing, attacked again, harder and differently.

A high accuracy under one gradient attack says either that the model is robust or that the attack failed
(a saturated softmax, a non-differentiable step, a gradient that points nowhere). AutoAttack (Croce & Hein
2020) answers with an ensemble of diverse attacks, each run on the images still standing; Carlini et al.
(2019, "On Evaluating Adversarial Robustness") add gradient-free and transfer attacks. The ladder here, at
the cell's own budget and norm (L-inf), in this order:

- `apgd_ce`: APGD on the cross-entropy (attacks/apgd.py: an image fooled at any iterate counts);
- `apgd_margin`: APGD on the margin loss max_{j != y} z_j - z_y, with random restarts: with two classes it
  is what AutoAttack's targeted DLR attack optimises, and unlike the cross-entropy it does not vanish where
  the softmax saturates;
- `square`: ART's SquareAttack, which reads only the model's scores, so no masked gradient hides from it;
- `transfer`: examples of the same images crafted (APGD-CE) on each other model of the study and judged on
  this one: a gradient that points nowhere here may point somewhere on a model that learned the same task.

Each stage attacks only the images still standing after the cell's attack and the stages before it, and
judges them on the model as deployed (through its input-transformation defense, if any). The clean image
comes first in every per-image worst case (an image the model gets wrong unattacked never stands), and a
stage can only take images away from the standing ones, so no stage raises accuracy.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from art.attacks.evasion import SquareAttack
from art.estimators.classification import PyTorchClassifier
from torch import nn

from ..attacks.apgd import APGD
from ..attacks.classifier import build_classifier, with_loss
from ..attacks.margin import MarginLoss
from ..record import Metrics
from .checks import EvalModeGuard, check_adversarial_batch
from .passes import PassCounter

STAGES = ("apgd_ce", "apgd_margin", "square", "transfer")


@dataclass(frozen=True)
class Ladder:
    """How hard each stage tries: AutoAttack's standard budget by default (100 APGD steps, 5,000 queries)."""

    max_iter: int = 100
    restarts: int = 3  # random starts of APGD on the margin loss
    square_queries: int = 5000
    batch_size: int = 64


def ladder_images(standing: np.ndarray, max_images: int | None) -> int:
    """How many of the attacked images (in order) the ladder runs on: all of them, or the first ones that
    hold max_images standing images. Its accuracy is read over these, so its interval has that n."""
    if max_images is None or standing.sum() <= max_images:
        return len(standing)
    return int(np.flatnonzero(standing)[max_images - 1]) + 1


def white_box_stages(classifier: PyTorchClassifier, eps: float, ladder: Ladder) -> dict[str, object]:
    """The stages that attack the model itself, on the classifier the cell's attack crafted on."""
    common = dict(norm=np.inf, eps=eps, eps_step=2 * eps, max_iter=ladder.max_iter, batch_size=ladder.batch_size)
    common |= dict(loss_type=None, verbose=False, one_pass=True)
    stages = {
        "apgd_ce": APGD(classifier, nb_random_init=1, **common),
        "apgd_margin": APGD(with_loss(classifier, MarginLoss()), nb_random_init=ladder.restarts, **common),
    }
    if ladder.square_queries:  # 0 leaves the gradient-free stage out
        square = dict(norm=np.inf, eps=eps, max_iter=ladder.square_queries, batch_size=ladder.batch_size)
        stages["square"] = SquareAttack(classifier, verbose=False, **square)
    return stages


def transfer_stage(sources: dict[str, nn.Module], image_size: int, num_classes: int, eps: float, ladder: Ladder):
    """APGD-CE on each source model, in turn: the transfer stage's attacks, by source."""
    common = dict(norm=np.inf, eps=eps, eps_step=2 * eps, max_iter=ladder.max_iter, batch_size=ladder.batch_size)
    return {
        name: APGD(build_classifier(net.eval(), image_size, num_classes), nb_random_init=1, one_pass=True, **common)
        for name, net in sources.items()
    }


def escalate(
    x: np.ndarray,
    y: np.ndarray,
    standing: np.ndarray,
    eps: float,
    judge: Callable[[np.ndarray], np.ndarray],
    stages: dict[str, object],
    sources: dict[str, object],
) -> tuple[np.ndarray, dict[str, float]]:
    """Run the stages (and each source's transfer attack) on the images still standing; judge(x) gives the
    deployed model's classes. Returns the images standing at the end and, per stage, the images it broke,
    its forward+backward passes and its seconds."""
    alive = standing.copy()
    metrics: dict[str, float] = {}
    runs = list(stages.items())
    runs += [("transfer", attack) for attack in sources.values()]
    for stage in STAGES:
        metrics |= {f"{Metrics.ESCALATION}{stage}_{k}": 0.0 for k in ("broken", "passes", "seconds")}
    for stage, attack in runs:
        rows = np.flatnonzero(alive)
        if not len(rows):
            break
        net = attack.estimator.model
        with EvalModeGuard(net, stage), PassCounter(net) as passes:
            start = time.perf_counter()
            x_adv = attack.generate(x[rows], y[rows]).astype(np.float32)
            seconds = time.perf_counter() - start
        check_adversarial_batch(x[rows], x_adv, eps, stage)
        fooled = judge(x_adv) != y[rows]
        alive[rows[fooled]] = False
        metrics[f"{Metrics.ESCALATION}{stage}_broken"] += float(fooled.sum())
        metrics[f"{Metrics.ESCALATION}{stage}_passes"] += float(passes.forward + passes.backward)
        metrics[f"{Metrics.ESCALATION}{stage}_seconds"] += seconds
    return alive, metrics


def escalation_metrics(standing: np.ndarray, alive: np.ndarray, stage_metrics: dict[str, float]) -> dict[str, float]:
    """The escalated accuracy over the ladder's images, its n, and the passes per image it cost."""
    n = len(standing)
    passes = sum(v for k, v in stage_metrics.items() if k.endswith("_passes"))
    return {
        Metrics.ESCALATED: float(alive.sum() / n),
        Metrics.ESCALATION_IMAGES: float(n),
        Metrics.ESCALATION_STANDING: float(standing.sum()),
        Metrics.ESCALATION_PASSES_PER_IMAGE: float(passes / n),
        **stage_metrics,
    }
