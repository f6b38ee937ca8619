"""Shortcut probes: how much of the task can be solved WITHOUT the lungs (probe=border, probe=statistics).

In the curated COVID-19 sets every Normal image is a 224 x 224 JPEG of a child while the COVID-19 images
are adults of mixed size and format: a classifier can score near 100 % on such source cues without
learning the disease. A probe job measures that instead of training and attacking a model:

- `border`: the job's training (same data, splits, model, optimisation, trainer, seed), but on images
  whose interior is blanked, train, validation and test alike. Only a frame of round(probe.border x side)
  pixels on each side stays; the rest is set to one constant, the training split's mean pixel (rounded).
  Its training has its own training key (the probe's settings are in it), so it is trained once, cached
  and reused like any training, and never mistaken for the full-image model.
- `statistics`: no image at all. Each image becomes its original file's width, height, aspect ratio, PIL
  mode, format, bytes and grey-level mean and std (data/filestats.py, computed when the folder is decoded
  and kept in the decode cache); a classifier fit on the training split is scored on the test split.

Both log probe_accuracy, probe_sensitivity, probe_specificity of the test split, its
majority_class_accuracy (chance) and probe_above_chance to a run with role `probe`. `shortcut.verdict`
reads them against the full model's clean test accuracy (summary.py, when the sweep ends).
"""

import logging

import numpy as np
import torch
from omegaconf import DictConfig
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from ..data.datamodule import CXRDataModule, Split
from ..models.module import CXRClassifier
from ..record import PROBE_ROLE, ProbeMetrics, Tags
from ..shortcut import probe_name
from ..tracking import Tracker
from .cell import claim, common_tags, job_run, setup_data
from .keys import cell_key, training_key
from .plan import Plan
from .train import obtain_model

log = logging.getLogger(__name__)


def frame_width(side: int, border: float) -> int:
    """Pixels of a side's frame that stay visible: round(border x side), at most half the side."""
    return min(side // 2, round(border * side))


def blank_interior(images: np.ndarray, border: float, fill: int) -> np.ndarray:
    """A copy of uint8 N x H x W images in which only a frame of frame_width pixels along each edge
    keeps its pixels; everything inside it is `fill`."""
    out = images.copy()
    _, h, w = images.shape
    bh, bw = frame_width(h, border), frame_width(w, border)
    out[:, bh : h - bh, bw : w - bw] = fill
    return out


def blank_splits(dm: CXRDataModule, border: float) -> int:
    """Blank the interior of the train, validation and test images of a set-up data module, in place, with
    the training split's mean pixel (the fill, returned)."""
    fill = int(round(float(dm.splits["train"].images.mean())))
    for name, split in dm.splits.items():
        dm.splits[name] = Split(blank_interior(split.images, border, fill), split.labels)
    return fill


def probe_metrics(labels: np.ndarray, predicted: np.ndarray, positive: int) -> dict[str, float]:
    """Accuracy, COVID-19 sensitivity and specificity (COVID-19 against the rest, as the models' test
    metrics), the majority class's share (chance) and how far the accuracy lies above it."""
    covid, said_covid = labels == positive, predicted == positive
    accuracy = float((predicted == labels).mean())
    chance = float(np.bincount(labels).max() / len(labels))
    return {
        ProbeMetrics.ACCURACY: accuracy,
        ProbeMetrics.SENSITIVITY: float((said_covid & covid).sum() / max(1, covid.sum())),
        ProbeMetrics.SPECIFICITY: float((~said_covid & ~covid).sum() / max(1, (~covid).sum())),
        ProbeMetrics.CHANCE: chance,
        ProbeMetrics.ABOVE_CHANCE: accuracy - chance,
    }


def statistics_classifier(seed: int) -> HistGradientBoostingClassifier:
    """The statistics probe's classifier: gradient-boosted trees rather than a scaled logistic regression.

    Source cues are thresholds and exact values (every Normal image of the curated set is exactly 224 x 224
    while COVID-19 images are both smaller and larger), combinations (this size AND JPEG) and skewed counts
    (bytes): a linear model on the raw features misses "exactly 224", trees read it in two splits, need no
    scaling, and are fast and deterministic (no early stopping below 10,000 images) on a few thousand rows.
    """
    return HistGradientBoostingClassifier(max_iter=200, random_state=seed)


def statistics_probe(dm: CXRDataModule, seed: int) -> dict[str, float]:
    """Fit the classifier on the training split's file statistics; its metrics on the test split's."""
    x_train, y_train = dm.file_statistics("train")
    x_test, y_test = dm.file_statistics("test")
    # One thread: on a few thousand rows OpenMP's threads cost more than they bring, and on a busy machine
    # (a sweep's other jobs) they wait on one another for seconds.
    with threadpool_limits(1):
        classifier = statistics_classifier(seed).fit(x_train, y_train)
        predicted = classifier.predict(x_test)
    return probe_metrics(y_test, predicted, dm.positive_class)


@torch.no_grad()
def predict(module: CXRClassifier, images: np.ndarray, device: torch.device, batch_size: int = 64) -> np.ndarray:
    """The model's classes for uint8 N x H x W images, in eval mode and fp32."""
    net = module.net.to(device).eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = torch.from_numpy(images[i : i + batch_size]).unsqueeze(1).float().div_(255).to(device)
        out.append(net(x).argmax(1).cpu())
    return torch.cat(out).numpy()


def probe_job(cfg: DictConfig, plan: Plan, tracker: Tracker, overrides: str) -> dict[str, float]:
    """A probe job (probe.name != none): a finished probe cell is skipped (resume), unless resume=false."""
    name, cell = probe_name(cfg), cell_key(cfg)

    def work() -> dict[str, float]:
        dm = setup_data(cfg)
        tags = {**common_tags(cfg, overrides), Tags.PROBE: name}
        parent, extra = None, {}
        if name == "border":
            fill = blank_splits(dm, cfg.probe.border)
            if plan.gpu.data_on_device:
                dm.on_device(plan.device, plan.gpu.channels_last)
            key = training_key(cfg)
            tags[Tags.TRAINING_KEY] = key
            module, parent = obtain_model(cfg, plan, dm, tracker, key, tags)
            test = dm.splits["test"]
            metrics = probe_metrics(test.labels, predict(module, test.images, plan.device), dm.positive_class)
            extra = {
                ProbeMetrics.FILL: float(fill),
                ProbeMetrics.FRAME: float(frame_width(dm.image_size, cfg.probe.border)),
            }
            run_name = f"{cfg.model.name} border probe ({cfg.probe.border:g})"
        else:
            metrics = statistics_probe(dm, cfg.seed)
            run_name = "statistics probe"
        # The probe's run, nested under the border probe's training run.
        with job_run(
            tracker, parent, run_name, {**tags, Tags.ROLE: PROBE_ROLE, Tags.CELL_KEY: cell}, cfg, dm
        ) as run_id:
            tracker.log_metrics(run_id, metrics | extra)
        log.info(
            "%s: accuracy %.3f, chance %.3f", run_name, metrics[ProbeMetrics.ACCURACY], metrics[ProbeMetrics.CHANCE]
        )
        return metrics | extra

    return claim(tracker, cell, cfg.resume, work, role=PROBE_ROLE)
