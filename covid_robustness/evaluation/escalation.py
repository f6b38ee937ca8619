"""Escalation: the images a cell's own attack leaves standing, attacked again, harder and differently.

A high accuracy under one gradient attack says either that the model is robust or that the attack failed
(a saturated softmax, a non-differentiable step, a gradient that points nowhere). AutoAttack (Croce & Hein
2020) answers with an ensemble of diverse attacks, each run on the images still standing; Carlini et al.
(2019, "On Evaluating Adversarial Robustness") add gradient-free and transfer attacks and sanity checks.
At the cell's own budget and norm (L-inf), in this order, each stage on the images still standing:

- `noise`: one draw of random signs of the budget's size (+-eps on every pixel): the checklist's noise check
  (record/checklist.py (d)) reads its accuracy on all of the ladder's images;
- `twice_iterations`: the cell's own attack with twice its iterations (attacks with max_iter only): the
  checklist's (a);
- `apgd_ce`: APGD on the cross-entropy (attacks/apgd.py: an image fooled at any iterate counts);
- `apgd_margin`: APGD on the margin loss max_{j != y} z_j - z_y, with random restarts: with two classes it
  is what AutoAttack's targeted DLR attack optimises, and unlike the cross-entropy it does not vanish where
  the softmax saturates;
- `square`: ART's SquareAttack, which reads only the model's scores, so no masked gradient hides from it;
- `transfer`: examples of the same images crafted (APGD-CE) on each other model of the study and judged on
  this one: a gradient that points nowhere here may point somewhere on a model that learned the same task.

Then, outside the ladder, the checklist's (b): APGD-CE at a large budget (LARGE_BUDGET) on the images the
cell's attack left standing, which should leave none if the gradient leads anywhere.

Each stage judges its images on the model as deployed (through its input-transformation defense, if any).
The clean image comes first in every per-image worst case (an image the model gets wrong unattacked never
stands), and a stage can only take images away from the standing ones, so no stage raises accuracy.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from art.attacks.evasion import SquareAttack
from art.estimators.classification import PyTorchClassifier
from torch import nn
from tqdm import tqdm

from ..attacks.apgd import APGD
from ..attacks.classifier import build_classifier, with_loss
from ..attacks.margin import MarginLoss
from ..record import Metrics
from .checks import EvalModeGuard, check_adversarial_batch
from .passes import PassCounter

# The ladder's stages in the order they run; "noise" and "twice_iterations" are there for the checklist.
STAGES = ("noise", "twice_iterations", "apgd_ce", "apgd_margin", "square", "transfer")
LARGE_BUDGET = 64 / 255  # the checklist's (b): at this L-inf budget on [0, 1] pixels no image should stand


@dataclass(frozen=True)
class Ladder:
    """How hard each stage tries: AutoAttack's standard budget by default (100 APGD steps, 5,000 queries)."""

    max_iter: int = 100
    restarts: int = 3  # random starts of APGD on the margin loss
    square_queries: int = 5000
    batch_size: int = 64


def ladder_images(standing: np.ndarray, max_images: int | None) -> int:
    """How many of the attacked images (in order) the ladder runs on: all of them, or the first ones that
    hold max_images standing images. Its accuracy is read over these, so its interval has that n.

    The images run up to the next standing one, not to the last standing one they hold: a prefix that ended
    at its max_images-th standing image would always end on a standing image, and read that way the share
    standing overstates the attack's accuracy (by p (1 - p) / max_images or so: 1.6 points at p = 0.5 and a
    cap of 16). Ended before the next standing image, max_images / n is the unbiased estimate of inverse
    sampling."""
    if max_images is None or standing.sum() <= max_images:
        return len(standing)
    return int(np.flatnonzero(standing)[max_images])


def _apgd(classifier: PyTorchClassifier, eps: float, ladder: Ladder, restarts: int = 1) -> APGD:
    common = dict(norm=np.inf, eps=eps, eps_step=2 * eps, max_iter=ladder.max_iter, batch_size=ladder.batch_size)
    return APGD(classifier, nb_random_init=restarts, loss_type=None, verbose=False, one_pass=True, **common)


class SignNoise:
    """Random signs of the budget's size: x +- eps on every pixel, clipped to [0, 1] (seeded)."""

    def __init__(self, classifier: PyTorchClassifier, eps: float, seed: int = 0):
        self.estimator, self.eps, self.rng = classifier, eps, np.random.default_rng(seed)

    def generate(self, x: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        signs = self.rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=x.shape)
        return np.clip(x + self.eps * signs, 0.0, 1.0).astype(np.float32)


def white_box_stages(
    classifier: PyTorchClassifier, eps: float, ladder: Ladder, twice: object | None = None, seed: int = 0
) -> dict[str, object]:
    """The stages that attack the model itself, on the classifier the cell's attack crafted on; twice: the
    cell's own attack with twice its iterations (None for an attack without iterations)."""
    stages = {"noise": SignNoise(classifier, eps, seed)}
    if twice is not None:
        stages["twice_iterations"] = twice
    stages |= {
        "apgd_ce": _apgd(classifier, eps, ladder),
        "apgd_margin": _apgd(with_loss(classifier, MarginLoss()), eps, ladder, restarts=ladder.restarts),
    }
    if ladder.square_queries:  # 0 leaves the gradient-free stage out
        square = dict(norm=np.inf, eps=eps, max_iter=ladder.square_queries, batch_size=ladder.batch_size)
        stages["square"] = SquareAttack(classifier, verbose=False, **square)
    return stages


def transfer_stage(sources: dict[str, nn.Module], image_size: int, num_classes: int, eps: float, ladder: Ladder):
    """APGD-CE on each source model, in turn: the transfer stage's attacks, by source."""
    return {
        name: _apgd(build_classifier(net.eval(), image_size, num_classes), eps, ladder) for name, net in sources.items()
    }


def large_budget_attack(classifier: PyTorchClassifier, eps: float, ladder: Ladder) -> tuple[float, APGD]:
    """The checklist's (b): APGD-CE at LARGE_BUDGET, or at the cell's budget when that is larger already."""
    large = max(eps, LARGE_BUDGET)
    return large, _apgd(classifier, large, ladder)


def _run(attack, x, y, eps, name) -> tuple[np.ndarray, int, float]:
    net = attack.estimator.model
    with EvalModeGuard(net, name), PassCounter(net) as passes:
        start = time.perf_counter()
        x_adv = attack.generate(x, y).astype(np.float32)
        seconds = time.perf_counter() - start
    check_adversarial_batch(x, x_adv, eps, name)
    return x_adv, passes.forward + passes.backward, seconds


def escalate(
    x: np.ndarray,
    y: np.ndarray,
    correct: np.ndarray,
    standing: np.ndarray,
    eps: float,
    judge: Callable[[np.ndarray], np.ndarray],
    stages: dict[str, object],
    sources: dict[str, object],
    large: tuple[float, object] | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, dict[str, float]]:
    """Run the stages (and each source's transfer attack) on the images still standing; judge(x) gives the
    deployed model's classes; correct: the clean image is classified right. Returns the images standing at
    the end and, per stage that ran, the images it broke, its forward+backward passes and its seconds, with
    the checklist's readings: the noise's accuracy on every ladder image, and the accuracy the large-budget
    attack leaves of the standing images (its budget, its passes)."""
    alive = standing.copy()
    metrics: dict[str, float] = {}
    runs = [(stage, attack) for stage, attack in stages.items() if stage != "noise"]
    runs += [("transfer", attack) for attack in sources.values()]
    for stage in [*stages, *(["transfer"] if sources else [])]:
        metrics |= {f"{Metrics.ESCALATION}{stage}_{k}": 0.0 for k in ("broken", "passes", "seconds")}

    def count(stage, fooled, rows, passes, seconds):
        alive[rows[fooled]] = False
        metrics[f"{Metrics.ESCALATION}{stage}_broken"] += float(fooled.sum())
        metrics[f"{Metrics.ESCALATION}{stage}_passes"] += float(passes)
        metrics[f"{Metrics.ESCALATION}{stage}_seconds"] += seconds

    if "noise" in stages:  # on every ladder image: its accuracy is compared with the cell's attack's
        x_noise, passes, seconds = _run(stages["noise"], x, y, eps, "noise")
        survives = correct & (judge(x_noise) == y)
        metrics[Metrics.CHECK_NOISE] = float(survives.mean())
        rows = np.flatnonzero(alive)
        count("noise", ~survives[rows], rows, passes, seconds)
    bar = tqdm(runs, desc="escalate", unit="stage", disable=not progress, leave=False)
    for stage, attack in bar:
        rows = np.flatnonzero(alive)
        if not len(rows):
            break
        bar.set_postfix_str(f"{stage} on {len(rows)} standing")
        x_adv, passes, seconds = _run(attack, x[rows], y[rows], eps, stage)
        count(stage, judge(x_adv) != y[rows], rows, passes, seconds)
    bar.close()
    if large is not None:
        budget, attack = large
        rows, left = np.flatnonzero(standing), standing.copy()  # the cell's standing images: a gradient check
        passes = 0
        if len(rows):
            x_adv, passes, _ = _run(attack, x[rows], y[rows], budget, "large_budget")
            left[rows[judge(x_adv) != y[rows]]] = False
        metrics |= {
            Metrics.CHECK_LARGE_BUDGET: float(left.mean()),
            Metrics.CHECK_LARGE_BUDGET_EPS: budget,
            Metrics.CHECK_LARGE_BUDGET_PASSES: float(passes),
        }
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
