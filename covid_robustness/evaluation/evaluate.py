"""Attack a trained model's test images and measure what the attack did: `evaluate`, a plain function.

The model is evaluated as deployed, with its input-transformation defense if it has one; each evaluation
(see defenses/transforms.py) crafts its examples its own way, on this model or, for a transfer attack,
on a source model. Per image the worst case counts, over the clean image and every evaluation's
example: an adversary who cannot do better than the clean image submits the clean image, so an image
the model gets wrong unattacked is never counted as robust.
"""

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from ..attacks.build import build_attack
from ..attacks.classifier import build_classifier
from ..attacks.reset import reset_attack
from ..attacks.resolve import in_pixels
from ..attacks.validation import attack_norm
from ..defenses.transforms import build_classifiers, predict, scores
from ..record import CERTIFY, RADIUS, Metrics, Tags
from .calibration import calibration_metrics
from .checks import EvalModeGuard, check_adversarial_batch, check_not_above_clean
from .escalation import (
    Ladder,
    escalate,
    escalation_metrics,
    ladder_images,
    large_budget_attack,
    transfer_stage,
    white_box_stages,
)
from .operating_point import at_operating_points
from .options import EvaluationOptions
from .passes import PassCounter
from .radius import per_image_radii, radius_metrics

log = logging.getLogger(__name__)


@dataclass
class Examples:
    """A few test images as attacked, for the example grid."""

    clean: np.ndarray
    adversarial: np.ndarray
    labels: np.ndarray
    pred_clean: np.ndarray
    pred_adv: np.ndarray


@dataclass
class _Totals:
    y: list = field(default_factory=list)
    clean: list = field(default_factory=list)
    adv: list = field(default_factory=list)
    linf: list = field(default_factory=list)
    l2: list = field(default_factory=list)
    seconds: float = 0.0
    forward: int = 0
    backward: int = 0
    by_evaluation: dict = field(default_factory=dict)  # evaluation: predictions on its examples, per batch
    p_clean: list = field(default_factory=list)  # class probabilities, clean and of the worst case
    p_adv: list = field(default_factory=list)
    x: list = field(default_factory=list)  # the attacked images, kept for escalation only


def attack_metrics(t: _Totals, positive: int, target: int | None = None) -> dict[str, float]:
    y, clean, adv = (np.concatenate(a) for a in (t.y, t.clean, t.adv))
    linf, l2 = np.concatenate(t.linf), np.concatenate(t.l2)
    correct = clean == y
    covid = y == positive
    check_not_above_clean(correct, adv == y)
    return {
        **harm_rates(y, clean, adv, positive),
        Metrics.CLEAN: float(correct.mean()),
        Metrics.ADVERSARIAL: float((adv == y).mean()),
        # Among images the model got right, the share the attack turned wrong.
        Metrics.ATTACK_SUCCESS: float((adv[correct] != y[correct]).mean()) if correct.any() else 0.0,
        Metrics.SENSITIVITY_CLEAN: float((clean[covid] == positive).mean()) if covid.any() else float("nan"),
        Metrics.SENSITIVITY_ADVERSARIAL: float((adv[covid] == positive).mean()) if covid.any() else float("nan"),
        Metrics.LINF_MEAN: float(linf.mean()),
        Metrics.LINF_MAX: float(linf.max()),
        Metrics.L2_MEAN: float(l2.mean()),
        Metrics.L2_MAX: float(l2.max()),
        Metrics.SECONDS: t.seconds,
        Metrics.IMAGES: float(len(y)),
        # Passes through the model per attacked image: the attack's cost independent of hardware.
        Metrics.FORWARD_PASSES: t.forward / len(y),
        Metrics.BACKWARD_PASSES: t.backward / len(y),
        **{f"{Metrics.PER_EVALUATION}{e}": float((np.concatenate(p) == y).mean()) for e, p in t.by_evaluation.items()},
        **{f"{k}_clean": v for k, v in calibration_metrics(y, np.concatenate(t.p_clean)).items()},
        **{f"{k}_adversarial": v for k, v in calibration_metrics(y, np.concatenate(t.p_adv)).items()},
        **({} if target is None else {Metrics.TARGETED_SUCCESS: targeted_success_rate(y, clean, adv, target)}),
    }


def targeted_success_rate(y: np.ndarray, clean: np.ndarray, adv: np.ndarray, target: int) -> float:
    """Among the images of the other classes that the model got right on the clean input, the share the
    attack turned into the target class (nan where there is no such image)."""
    right = (clean == y) & (y != target)
    return float((adv[right] == target).mean()) if right.any() else float("nan")


def harm_rates(y: np.ndarray, clean: np.ndarray, adv: np.ndarray, positive: int) -> dict[str, float]:
    """The two directions of harm, each among the images the model got right on the clean input.

    missed_covid_rate: the share of COVID-19 images the attack turned to another class (the dangerous
    error: a patient sent home); false_alarm_rate: the share of the other classes' images it turned to
    COVID-19 (with four classes, a Normal image turned to pneumonia is neither). nan where no such image.
    """
    right = clean == y
    covid, other = right & (y == positive), right & (y != positive)
    return {
        Metrics.MISSED_COVID: float((adv[covid] != positive).mean()) if covid.any() else float("nan"),
        Metrics.FALSE_ALARM: float((adv[other] == positive).mean()) if other.any() else float("nan"),
    }


def confusion(y: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts, true class by row and predicted class by column."""
    return np.bincount(y * num_classes + pred, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def worst_case(y: np.ndarray, candidates: list[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
    """Per image, the first candidate (examples, predictions, anything else per image) that fools the
    model, else the last candidate's.

    Callers put the clean images and their predictions first: candidate zero of every worst case.
    """
    chosen = tuple(a.copy() for a in candidates[-1])
    fooled = np.zeros(len(y), dtype=bool)
    for candidate in candidates:
        take = (candidate[1] != y) & ~fooled
        for out, values in zip(chosen, candidate):
            out[take] = values[take]
        fooled |= take
    return chosen


def majority_accuracy(y: np.ndarray) -> float:
    """The accuracy of always answering the most frequent class of y."""
    return float(np.bincount(y).max() / len(y))


def untrained_reason(y: np.ndarray, pred: np.ndarray, y_test: np.ndarray, test_accuracy: float | None) -> str:
    """Why a model is no better than always answering the majority class; "" when it is better.

    Such a model predicts (almost) one class: an attack cannot turn its answers wrong, so its adversarial
    accuracy would read as robustness.
    """
    reasons = []
    if len(np.unique(pred)) == 1:
        reasons.append(f"it predicts one class ({int(pred[0])}) for all {len(y)} attacked images")
    if (acc := float((pred == y).mean())) <= majority_accuracy(y):
        reasons.append(
            f"clean accuracy {acc:.3f} on the attacked images <= {majority_accuracy(y):.3f} of the majority class"
        )
    if test_accuracy is not None and test_accuracy <= majority_accuracy(y_test):
        reasons.append(f"test accuracy {test_accuracy:.3f} <= {majority_accuracy(y_test):.3f} of the majority class")
    return "; ".join(reasons)


@dataclass
class EvaluationResult:
    """What one evaluation measured: metrics and tags for the run, and example images for its grid."""

    metrics: dict[str, float]
    tags: dict[str, str]
    examples: Examples | None
    confusion: dict[str, np.ndarray] = field(default_factory=dict)  # clean, adversarial: true x predicted counts
    probabilities: dict[str, np.ndarray] = field(default_factory=dict)  # labels, clean, adversarial (N x C)
    radii: np.ndarray | None = None  # attack=radius: per attacked image, its robust radius (radius.py)
    certificate: dict | None = None  # attack=certify: per image, its certificate and attacked results (smoothing.py)


def evaluate(net: torch.nn.Module, test_set: Dataset, options: EvaluationOptions) -> EvaluationResult:
    """Attack the first options.max_images images of test_set (pairs of a [0, 1] image tensor and a label)
    on net, as options say (options.py).

    net takes [0, 1] pixels (its normalisation inside); options.thresholds (operating_point.py, chosen on the
    validation split) add sensitivity and specificity at each and the AUROC, clean and under attack. The
    weights are frozen for the attack and the random state is seeded right before it, so the result depends
    on nothing that ran before.
    """
    weights = [p for m in (net, options.source) if m is not None for p in m.parameters() if p.requires_grad]
    pl.seed_everything(options.seed, workers=True, verbose=False)
    try:
        for p in weights:
            p.requires_grad_(False)
        # Attacks need gradients with respect to the input only; callers may hold inference mode.
        with torch.inference_mode(False), torch.enable_grad():
            result = _evaluation(options)(options, net.eval(), test_set)
    finally:
        for p in weights:
            p.requires_grad_(True)
    if options.thresholds:  # the operating points chosen on the validation split, read on the attacked images
        probs = result.probabilities
        result.metrics.update(
            at_operating_points(
                probs["labels"], probs["clean"], probs["adversarial"], options.positive_class, options.thresholds
            )
        )
    return result


def _evaluation(options: EvaluationOptions):
    """attack=certify's evaluation (smoothing.py, which builds on this module's results), else the attack's."""
    if options.attack.get("name") == CERTIFY:
        from .smoothing import smoothing_evaluation

        return smoothing_evaluation
    return _evaluate


def attacked_images(test_set: Dataset, options: EvaluationOptions) -> Dataset:
    """The images a job attacks: options.max_images of test_set (None: all) from index options.first_image on."""
    stop = len(test_set) if options.max_images is None else min(len(test_set), options.first_image + options.max_images)
    if options.first_image >= stop:
        raise ValueError(f"eval.first_image={options.first_image} leaves no image of the {len(test_set)} to attack.")
    if (options.first_image, stop) == (0, len(test_set)):
        return test_set
    return Subset(test_set, range(options.first_image, stop))


def labels_of(dataset: Dataset) -> np.ndarray:
    """The labels of a dataset of (image, label) pairs (a TensorDataset's without reading its images)."""
    tensors = getattr(dataset, "tensors", None)
    if tensors is not None:
        return tensors[1].numpy()
    return np.array([int(dataset[i][1]) for i in range(len(dataset))])


def _evaluate(options: EvaluationOptions, net, test_set) -> EvaluationResult:
    image_size = int(test_set[0][0].shape[-1])
    defended, crafting = build_classifiers(net, options.defense, image_size, options.num_classes)
    own = crafting  # the model's own classifiers, which escalation attacks even when the cell transfers
    if options.source is not None:  # transfer: the source model's own gradients, whatever the target's defense
        crafting = {"transfer": build_classifier(options.source.eval(), image_size, options.num_classes)}
    attack_cfg, metrics = in_pixels(options.attack, float(net.std))
    name, eps, target = attack_cfg["name"], attack_cfg.get("eps"), attack_cfg.get("target_index")
    norm = attack_norm(attack_cfg)
    escalating = options.escalate and escalates(name, eps, target, norm)
    # Built once per job; an attack that keeps state between calls is reset before each batch.
    attacks = {evaluation: build_attack(attack_cfg, classifier) for evaluation, classifier in crafting.items()}
    if options.defense.preprocessor is not None:
        metrics.update(_defended_test_metrics(options, defended, test_set))
    attacked = attacked_images(test_set, options)
    # An attack whose rule spans the whole set (ART's spatial transformation: one transform for all
    # images) sees every attacked image in one call, so its result does not depend on eval.batch_size.
    loader = DataLoader(
        attacked, batch_size=len(attacked) if attack_cfg.get("whole_set") else options.batch_size, shuffle=False
    )
    totals, examples = _Totals(), None
    for x, y in tqdm(loader, desc=f"attack {name}", unit="batch", disable=options.progress is False, leave=False):
        x, y = x.numpy(), y.numpy()
        pred_clean, p_clean = scores(defended, x, options.defense, options.seed)
        candidates = [(x, pred_clean, p_clean)]  # the adversary may always submit the clean image
        for evaluation, classifier in crafting.items():
            attack = reset_attack(attacks[evaluation])
            with EvalModeGuard(classifier.model, name), PassCounter(classifier.model) as passes:
                start = time.perf_counter()
                # A targeted attack is given the target of every image (images of the target class
                # itself stay right whatever it does: it cannot turn them wrong).
                x_adv = attack.generate(x, y if target is None else np.full_like(y, target)).astype(np.float32)
                totals.seconds += time.perf_counter() - start
            totals.forward += passes.forward
            totals.backward += passes.backward
            check_adversarial_batch(x, x_adv, eps, name, norm)
            # Images the attack left as they were (attack=none leaves all) read as they did clean.
            pred, p = (
                (pred_clean, p_clean)
                if np.array_equal(x_adv, x)
                else scores(defended, x_adv, options.defense, options.seed)
            )
            # Each evaluation's own number is a worst case with the clean image too.
            totals.by_evaluation.setdefault(evaluation, []).append(worst_case(y, [(x, pred_clean), (x_adv, pred)])[1])
            candidates.append((x_adv, pred, p))
        x_adv, pred_adv, p_adv = worst_case(y, candidates)
        totals.p_clean.append(p_clean)
        totals.p_adv.append(p_adv)
        delta = (x_adv - x).reshape(len(x), -1)
        totals.y.append(y)
        if escalating:
            totals.x.append(x)
        totals.clean.append(pred_clean)
        totals.adv.append(pred_adv)
        totals.linf.append(np.abs(delta).max(1))
        totals.l2.append(np.linalg.norm(delta, axis=1))
        if examples is None:
            k = options.n_examples
            examples = Examples(x[:k], x_adv[:k], y[:k], pred_clean[:k], pred_adv[:k])
    metrics.update(attack_metrics(totals, options.positive_class, target))
    if escalating:
        # The classifier of the evaluation that sees the model best: the last (a defense's lists oblivious first).
        crafted_on = own[list(own)[-1]]
        twice = None
        if attack_cfg.get("max_iter"):  # the cell's own attack, on its own classifier, with twice the iterations
            twice = build_attack(
                {**attack_cfg, "max_iter": 2 * int(attack_cfg["max_iter"])}, crafting[list(crafting)[-1]]
            )
        metrics.update(_escalation(options, defended, crafted_on, twice, totals, eps, image_size))
    y_all = np.concatenate(totals.y)
    accuracy = {e: float((np.concatenate(p) == y_all).mean()) for e, p in totals.by_evaluation.items()}
    # Which evaluation produced the reported number: the per-image worst case over these.
    tags = {Tags.EVALUATION: " + ".join(crafting), Tags.STRONGEST_EVALUATION: min(accuracy, key=accuracy.get)}
    if len(crafting) == 1:  # the per-evaluation number is the reported one
        metrics.pop(f"{Metrics.PER_EVALUATION}{next(iter(crafting))}")
    pred_all = np.concatenate(totals.clean)
    y_test = labels_of(test_set)
    reason = untrained_reason(y_all, pred_all, y_test, options.test_accuracy)
    metrics.update(
        {
            Metrics.TEST_IMAGES: float(len(y_test)),
            Metrics.MAJORITY: majority_accuracy(y_all),
            Metrics.PREDICTED_CLASSES: float(len(np.unique(pred_all))),
        }
    )
    tags.update({Tags.UNTRAINED: str(bool(reason)).lower(), Tags.UNTRAINED_REASON: reason})
    if reason:
        log.warning(
            "the model is no better than always answering the majority class (%s): its adversarial "
            "accuracy says nothing about robustness",
            reason,
        )
    adv_all = np.concatenate(totals.adv)
    radii = None
    if name == RADIUS:  # the whole curve from the minimal examples (evaluation/radius.py)
        distance = np.concatenate(totals.l2 if norm == 2 else totals.linf)
        radii = per_image_radii(y_all, pred_all, adv_all, distance)
        metrics.update(radius_metrics(y_all, radii, options.positive_class, eps, norm))
    matrices = {
        "clean": confusion(y_all, pred_all, options.num_classes),
        "adversarial": confusion(y_all, adv_all, options.num_classes),
    }
    probabilities = {
        "labels": y_all,
        "clean": np.concatenate(totals.p_clean),
        "adversarial": np.concatenate(totals.p_adv),
    }
    return EvaluationResult(metrics, tags, examples, matrices, probabilities, radii)


def escalates(name: str, eps: float | None, target: int | None, norm: float = np.inf) -> bool:
    """Whether a cell's attack has a budget to escalate at: an untargeted attack in an L-inf ball (not the
    radius search, whose budget is a search range; escalation's ladder is L-inf)."""
    return eps is not None and target is None and name != RADIUS and norm == np.inf


def _escalation(options: EvaluationOptions, defended, crafted_on, twice, totals: _Totals, eps, image_size: int):
    """Escalation (escalation.py) of the images the cell's attack left standing; its metrics."""
    y, clean, adv = (np.concatenate(a) for a in (totals.y, totals.clean, totals.adv))
    n = ladder_images(adv == y, options.escalate_max_images)
    x, y, correct, standing = np.concatenate(totals.x)[:n], y[:n], (clean == y)[:n], (adv == y)[:n]
    ladder = Ladder(
        max_iter=options.escalate_max_iter,
        restarts=options.escalate_restarts,
        square_queries=options.escalate_square_queries,
        batch_size=options.batch_size,
    )
    sources = transfer_stage(options.escalation_sources or {}, image_size, options.num_classes, eps, ladder)
    stages = white_box_stages(crafted_on, eps, ladder, twice, options.seed)
    alive, stage_metrics = escalate(
        x,
        y,
        correct,
        standing,
        eps,
        lambda xa: predict(defended, xa, options.defense, options.seed),
        stages,
        sources,
        large_budget_attack(crafted_on, eps, ladder),
        progress=options.progress is not False,
    )
    return escalation_metrics(standing, alive, stage_metrics)


def _defended_test_metrics(options: EvaluationOptions, defended, test_set) -> dict[str, float]:
    """Clean accuracy and COVID-19 sensitivity on the whole test split, through the defense."""
    ys, preds = [], []
    for x, y in DataLoader(test_set, batch_size=options.batch_size, shuffle=False):
        ys.append(y.numpy())
        preds.append(predict(defended, x.numpy(), options.defense, options.seed))
    y, pred = np.concatenate(ys), np.concatenate(preds)
    positive = options.positive_class
    covid = y == positive
    return {
        Metrics.DEFENDED_TEST_ACCURACY: float((pred == y).mean()),
        Metrics.DEFENDED_TEST_SENSITIVITY: float((pred[covid] == positive).mean()) if covid.any() else float("nan"),
    }
