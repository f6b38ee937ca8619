"""A job's model on another source's images (data.external_root): how far its accuracy travels.

Every external image is classified clean, through the model's defense if it has one; the job's attack
runs on the first eval.max_images of them, exactly as on the test split (evaluate). The metrics carry
the prefix `external_`, beside the test split's own.
"""

from dataclasses import replace

import numpy as np
import torch
from torch.utils.data import Dataset

from ..defenses.transforms import dataset_scores
from ..record import Metrics
from .evaluate import evaluate, majority_accuracy
from .options import EvaluationOptions


def reading(y: np.ndarray, pred: np.ndarray, positive: int) -> dict[str, float]:
    """Accuracy, COVID-19 sensitivity and specificity, the share called COVID-19, and the majority baseline."""
    covid = y == positive
    return {
        "accuracy": float((pred == y).mean()),
        "sensitivity": float((pred[covid] == positive).mean()) if covid.any() else float("nan"),
        "specificity": float((pred[~covid] != positive).mean()) if (~covid).any() else float("nan"),
        "predicted_covid": float((pred == positive).mean()),
        "majority_accuracy": majority_accuracy(y),
    }


def external_evaluation(net: torch.nn.Module, dataset: Dataset, options: EvaluationOptions) -> dict[str, float]:
    """The `external_*` metrics of one job: the clean reading of every image, then evaluate's metrics.

    No example grid (the job's examples come from its test split), no escalation (it reads the test split),
    and the untrained-model check without the test split's accuracy, which says nothing of these images.
    """
    y, pred, _ = dataset_scores(net, dataset, options.num_classes, options.defense, options.seed, options.batch_size)
    attacked = evaluate(net, dataset, replace(options, n_examples=0, test_accuracy=None, escalate=False))
    readings = {**reading(y, pred, options.positive_class), **attacked.metrics}
    return {f"{Metrics.EXTERNAL}{k}": v for k, v in readings.items()}
