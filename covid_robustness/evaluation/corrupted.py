"""A job's test images corrupted (corruptions.py) at each severity, then evaluated as usual (evaluate).

The adversary acts on the corrupted image: at each severity the attack starts from the corrupted test
images and its budget is measured from them. Per severity s the job logs `corruption_accuracy_s<s>`
(clean accuracy on the corrupted images) and `corruption_adversarial_accuracy_s<s>`, and their means
over the severities; its `clean_accuracy` and `adversarial_accuracy` are those means, so that columns
compare like with like in MLflow, and its `attack_images` counts every reading (severities x images, each
severity's own in `corruption_images_s<s>`), so mean x readings is the count of right answers. Whether the
model is untrained is decided on the uncorrupted images: a corruption that drives a trained model to one
class is a finding about the corruption, not about the training. The noise of each severity is drawn
from a generator seeded by the job's seed, the corruption and the severity: a rerun corrupts the same
pixels.
"""

import zlib
from dataclasses import replace

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from ..errors import ConfigError
from ..record import Metrics, Tags
from .corruptions import CORRUPTIONS, corrupt, severity_param
from .evaluate import EvaluationResult, evaluate, labels_of, untrained_reason
from .options import EvaluationOptions

NONE = "none"
# Over the severities: SUMMED add up, *_max take the maximum, every other metric the mean of the severities
# where it is defined (a rate without an image to count is nan).
SUMMED = (Metrics.SECONDS, Metrics.IMAGES)
IMAGES_AT = "corruption_images_s"  # + severity: the images read at that severity


def check_corruption(corruption: dict) -> None:
    """ConfigError for an unknown corruption, benchmark or severity, before anything runs."""
    name = corruption.get("name", NONE)
    if name == NONE:
        return
    if name not in CORRUPTIONS:
        raise ConfigError(f"corruption.name={name!r} is not a corruption; choose one of {[NONE, *CORRUPTIONS]}.")
    severities = corruption.get("severities")
    if not severities or len(set(severities)) != len(severities):
        raise ConfigError(f"corruption.severities={severities!r} must list distinct severities, e.g. [1, 3, 5].")
    for s in severities:
        severity_param(name, s, corruption.get("benchmark", "chestmnist"))


def corrupted_set(test_set: Dataset, corruption: dict, severity: int, seed: int, device: torch.device) -> TensorDataset:
    """test_set's images corrupted at severity on device, with their labels; the images come back to the CPU."""
    x, y = _tensors(test_set)
    name, benchmark = corruption["name"], corruption.get("benchmark", "chestmnist")
    generator = torch.Generator(device=device).manual_seed(zlib.crc32(f"{seed}/{name}/{severity}".encode()))
    out = torch.cat(
        [
            corrupt(x[i : i + 256].to(device), name, severity, benchmark=benchmark, generator=generator).cpu()
            for i in range(0, len(x), 256)  # bounds the device memory of the 3-channel noise
        ]
    )
    return TensorDataset(out, y)


def _tensors(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    tensors = getattr(dataset, "tensors", None)
    if tensors is not None:
        return tensors[0], tensors[1]
    pairs = [dataset[i] for i in range(len(dataset))]
    return torch.stack([p[0] for p in pairs]), torch.as_tensor([int(p[1]) for p in pairs])


def evaluate_corrupted(net: torch.nn.Module, test_set: Dataset, options: EvaluationOptions) -> EvaluationResult:
    """evaluate() on the test set corrupted at each of options.corruption["severities"] (escalation reads the
    clean test split only: it is left out here)."""
    corruption, device = options.corruption, next(net.parameters()).device
    each = replace(options, escalate=False)
    results = {
        s: evaluate(net, corrupted_set(test_set, corruption, s, options.seed, device), each)
        for s in corruption["severities"]
    }
    per_severity = {}
    for s, r in results.items():
        per_severity[f"{Metrics.CORRUPTED_AT}{s}"] = r.metrics[Metrics.CLEAN]
        per_severity[f"{Metrics.CORRUPTED_ADVERSARIAL_AT}{s}"] = r.metrics[Metrics.ADVERSARIAL]
        per_severity[f"{IMAGES_AT}{s}"] = r.metrics[Metrics.IMAGES]
    metrics = {}
    for k in results[max(results)].metrics:
        values = [v for r in results.values() if k in r.metrics and (v := r.metrics[k]) == v] or [float("nan")]
        metrics[k] = float(sum(values) if k in SUMMED else max(values) if k.endswith("_max") else np.mean(values))
    metrics[Metrics.CORRUPTED_MEAN] = metrics[Metrics.CLEAN]
    metrics[Metrics.CORRUPTED_ADVERSARIAL_MEAN] = metrics[Metrics.ADVERSARIAL]
    worst = results[max(results)]  # the examples and the evaluation tags of the strongest severity
    worst.tags.update(_untrained_tags(net, test_set, options))
    # Confusion counts over every severity's images together.
    matrices = {k: sum(r.confusion[k] for r in results.values()) for k in worst.confusion}
    probabilities = {k: np.concatenate([r.probabilities[k] for r in results.values()]) for k in worst.probabilities}
    return EvaluationResult({**metrics, **per_severity}, worst.tags, worst.examples, matrices, probabilities)


def _untrained_tags(net: torch.nn.Module, test_set: Dataset, options: EvaluationOptions) -> dict[str, str]:
    """The untrained-model check (evaluate.untrained_reason) on the first max_images uncorrupted test images."""
    x, y = _tensors(test_set)
    n = len(x) if options.max_images is None else min(options.max_images, len(x))
    x, y = x[:n], y[:n]
    device = next(net.parameters()).device
    with torch.no_grad():
        pred = torch.cat([net.eval()(x[i : i + 256].to(device)).argmax(1).cpu() for i in range(0, n, 256)])
    reason = untrained_reason(y.numpy(), pred.numpy(), labels_of(test_set), options.test_accuracy)
    return {Tags.UNTRAINED: str(bool(reason)).lower(), Tags.UNTRAINED_REASON: reason}
