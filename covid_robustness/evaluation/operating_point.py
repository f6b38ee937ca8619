"""The operating point: a threshold on P(COVID-19) chosen on the validation split, then held fixed.

A deployed classifier answers "COVID-19" when P(COVID-19) >= t for a threshold t chosen before the test:
`sens95`, the highest threshold that keeps 95 % of the validation split's COVID-19 images, and `youden`,
the one that maximises sensitivity + specificity - 1 there. `at_operating_points` then reads the test
images' probabilities, clean and under attack, at those thresholds, with the AUROC of each.
"""

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from ..defenses.transforms import Defense, dataset_scores
from ..record import OPERATING_POINTS, Metrics

SENSITIVITY = 0.95


def choose(y: np.ndarray, p_covid: np.ndarray, positive: int) -> dict[str, float]:
    """The thresholds of OPERATING_POINTS on labels y and probabilities of COVID-19 (validation split); nan without
    both classes."""
    covid = y == positive
    if covid.all() or not covid.any():
        return dict.fromkeys(OPERATING_POINTS, float("nan"))
    fpr, tpr, thresholds = roc_curve(covid, p_covid)
    thresholds = np.minimum(thresholds, 1.0)  # sklearn's first threshold is inf: no image called positive
    sens95 = thresholds[np.argmax(tpr >= SENSITIVITY)]  # thresholds fall as tpr rises: the first is the highest
    youden = thresholds[np.argmax(tpr - fpr)]
    return {"sens95": float(sens95), "youden": float(youden)}


def reading(y: np.ndarray, p_covid: np.ndarray, positive: int, threshold: float) -> tuple[float, float]:
    """(sensitivity, specificity) of COVID-19 when P(COVID-19) >= threshold is called COVID-19."""
    covid, called = y == positive, p_covid >= threshold
    sensitivity = float(called[covid].mean()) if covid.any() else float("nan")
    specificity = float((~called[~covid]).mean()) if (~covid).any() else float("nan")
    return sensitivity, specificity


def auroc(y: np.ndarray, p_covid: np.ndarray, positive: int) -> float:
    covid = y == positive
    return float(roc_auc_score(covid, p_covid)) if 0 < covid.sum() < len(y) else float("nan")


def at_operating_points(
    y: np.ndarray, p_clean: np.ndarray, p_adv: np.ndarray, positive: int, thresholds: dict[str, float]
) -> dict[str, float]:
    """Sensitivity and specificity at each threshold and the AUROC, clean and under attack (probabilities
    N x C; the adversarial ones are each image's worst case, pushed toward the wrong side)."""
    out = {}
    for name, threshold in thresholds.items():
        out[f"{Metrics.THRESHOLD}{name}"] = threshold
        for kind, p in (("clean", p_clean), ("adversarial", p_adv)):
            sensitivity, specificity = reading(y, p[:, positive], positive, threshold)
            out[f"{Metrics.SENSITIVITY_AT}{name}_{kind}"] = sensitivity
            out[f"{Metrics.SPECIFICITY_AT}{name}_{kind}"] = specificity
    out[Metrics.AUROC_CLEAN] = auroc(y, p_clean[:, positive], positive)
    out[Metrics.AUROC_ADVERSARIAL] = auroc(y, p_adv[:, positive], positive)
    return out


def validation_thresholds(
    net, val_set, num_classes: int, positive: int, defense: Defense | None = None, seed: int = 0, batch_size: int = 64
) -> dict[str, float]:
    """The thresholds of OPERATING_POINTS chosen on the validation split, read through the model's defense."""
    y, _, probs = dataset_scores(net, val_set, num_classes, defense or Defense(), seed, batch_size)
    return choose(y, probs[:, positive], positive)
