"""A job's model on another source's images (data.external_root): how far its accuracy travels.

Every external image is classified clean, through the model's defense if it has one; the job's attack
runs on the first eval.max_images of them, exactly as on the test split (evaluate). The metrics carry
the prefix `external_`, beside the test split's own.
"""

import numpy as np
import torch
from torch.utils.data import Dataset

from ..defenses.transforms import Defense, dataset_scores
from .evaluate import evaluate, majority_accuracy

PREFIX = "external_"


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


def external_evaluation(
    net: torch.nn.Module,
    dataset: Dataset,
    attack: dict,
    num_classes: int,
    positive_class: int,
    *,
    defense: Defense | None = None,
    source: torch.nn.Module | None = None,
    max_images: int | None = None,
    batch_size: int = 64,
    seed: int = 0,
    progress: bool = True,
    thresholds: dict[str, float] | None = None,
) -> dict[str, float]:
    """The `external_*` metrics of one job: the clean reading of every image, then evaluate's metrics."""
    defense = defense or Defense()
    y, pred, _ = dataset_scores(net, dataset, num_classes, defense, seed, batch_size)
    attacked = evaluate(
        net,
        dataset,
        attack,
        num_classes,
        positive_class,
        defense=defense,
        source=source,
        max_images=max_images,
        batch_size=batch_size,
        n_examples=0,
        seed=seed,
        progress=progress,
        thresholds=thresholds,
    )
    return {f"{PREFIX}{k}": v for k, v in {**reading(y, pred, positive_class), **attacked.metrics}.items()}
