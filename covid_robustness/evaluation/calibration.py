"""Calibration, clean and under attack: is the model confidently wrong once an image is perturbed?

Expected calibration error over 15 equal-width confidence bins (torchmetrics), the Brier score, and the
share of errors made with confidence above 0.9; `reliability` gives a reliability diagram's points. Every
function takes the labels and the class probabilities (N x C) a job measured.
"""

import numpy as np
import torch
from torchmetrics.functional.classification import multiclass_calibration_error

from ..record import Metrics

BINS = 15
CONFIDENT = 0.9


def calibration_metrics(y: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """ece (15 bins, L1), brier (mean over images of the squared distance to the one-hot label, summed over
    classes) and confident_error_share (errors with top probability above 0.9, among the errors; nan
    without an error)."""
    num_classes = probs.shape[1]
    ece = multiclass_calibration_error(
        torch.from_numpy(probs).double(), torch.from_numpy(y), num_classes, n_bins=BINS, norm="l1"
    )
    brier = ((probs - np.eye(num_classes)[y]) ** 2).sum(1).mean()
    wrong = probs.argmax(1) != y
    confident = (probs[wrong].max(1) > CONFIDENT).mean() if wrong.any() else float("nan")
    return {Metrics.ECE: float(ece), Metrics.BRIER: float(brier), Metrics.CONFIDENT_ERRORS: float(confident)}


def reliability(y: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per non-empty confidence bin (15 equal bins of the top probability): its mean confidence, its
    accuracy and its number of images."""
    confidence, correct = probs.max(1), probs.argmax(1) == y
    index = np.clip(np.ceil(confidence * BINS).astype(int) - 1, 0, BINS - 1)  # (lo, hi] as torchmetrics bins
    counts = np.bincount(index, minlength=BINS)
    used = counts > 0
    mean_confidence = np.bincount(index, confidence, BINS)[used] / counts[used]
    accuracy = np.bincount(index, correct.astype(float), BINS)[used] / counts[used]
    return mean_confidence, accuracy, counts[used]
