"""attack=certify: the two bounds of a smoothed classifier's robustness, per L2 radius, from one job.

- Certified accuracy at r (a lower bound): the share of images that CERTIFY (certify.py) certifies with
  their true class at a radius >= r. Each certificate holds with probability 1 - alpha over the noise.
- Attacked accuracy at r (an upper bound): the share of images the smoothed classifier still gets right,
  as judged by the majority of `predict_n` noisy copies, on the clean image and on the example of an L2
  PGD of radius r on its soft version (attacks/smoothing.py). Per image the worst case counts, over the
  clean image and the examples of every radius up to r (each lies inside the larger balls), so the
  curve cannot rise with r.

Where an image is certified at r but the vote on one of its examples came out wrong, the vote (an
estimate of the smoothed classifier's answer) contradicts the certificate (a bound on it). The smoothed
probability of the true class at the example is at least Phi(Phi^-1(p_lower) - d / sigma) at distance
d, so the chance of a wrong vote is bounded by a binomial tail: above IMPLAUSIBLE it is the Monte Carlo
noise of the vote, the certificate stands and the image counts as right (logged as a conflict); below
it, the certificate or the attack is wrong and the job stops. Certified accuracy therefore never exceeds
attacked accuracy in a finished job.
"""

import logging
import time

import numpy as np
import torch
from scipy.stats import binom, norm
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from ..attacks.build import build_attack
from ..attacks.classifier import build_classifier
from ..attacks.smoothing import Certification, smoothed_classifier, smoothed_pgd
from ..defenses.transforms import Defense
from ..errors import ConfigError
from ..record import Metrics, Tags
from .certify import ABSTAIN, abstaining, certify, noisy_counts
from .checks import AttackCheckError, EvalModeGuard, check_adversarial_batch
from .evaluate import EvaluationResult, Examples, confusion, labels_of, majority_accuracy, untrained_reason
from .options import EvaluationOptions

log = logging.getLogger(__name__)

# A wrong vote less likely than this under the certificate stops the job.
IMPLAUSIBLE = 1e-6


def smoothing_sigma(defense: Defense) -> float:
    """The noise level of a smoothed classifier's defense (its GaussianAugmentation); ConfigError otherwise."""
    sigma = getattr(defense.preprocessor, "sigma", None)
    if type(defense.preprocessor).__name__ != "GaussianAugmentation" or not sigma or sigma <= 0:
        raise ConfigError(
            f"attack=certify certifies a smoothed classifier, and defense {defense.name} adds no Gaussian noise: "
            "choose defense=smoothing (defense.sigma sets the noise)."
        )
    return float(sigma)


def radius_key(r: float) -> str:
    return f"{r:g}"


def smoothing_evaluation(options: EvaluationOptions, net: torch.nn.Module, test_set: Dataset) -> EvaluationResult:
    """CERTIFY and the smoothed attacks on the first options.max_images images of test_set (net in eval mode)."""
    sigma = smoothing_sigma(options.defense)
    image_size, classes = int(test_set[0][0].shape[-1]), options.num_classes
    settings: Certification = build_attack(options.attack, build_classifier(net, image_size, classes))
    # One classifier for every radius and batch: its noise draws happen per call.
    soft = smoothed_classifier(net, image_size, classes, sigma, settings.attack_samples)
    n_images = len(test_set) if options.max_images is None else min(options.max_images, len(test_set))
    device = next(iter([*net.parameters(), *net.buffers()]), torch.zeros(0)).device
    generator = torch.Generator(device=device).manual_seed(options.seed)
    loader = DataLoader(Subset(test_set, range(n_images)), batch_size=settings.batch_size, shuffle=False)
    parts: dict[str, list] = {}
    certify_seconds = attack_seconds = 0.0
    for x, y in tqdm(loader, desc="certify", unit="batch", disable=options.progress is False, leave=False):
        x = x.to(device)
        start = time.perf_counter()
        cert = certify(net, x, sigma, settings.n0, settings.n, settings.alpha, classes, settings.noise_batch, generator)
        certify_seconds += time.perf_counter() - start
        counts = noisy_counts(net, x, settings.predict_n, sigma, classes, settings.noise_batch, generator).cpu().numpy()
        batch = {"y": y.cpu().numpy(), "prediction": cert.prediction, "radius": cert.radius, "p_lower": cert.p_lower}
        batch |= {"clean_counts": counts, "predict": abstaining(counts, settings.alpha)}
        x_np = x.cpu().numpy()
        for r in settings.radii:
            attack = smoothed_pgd(soft, r, settings.attack_steps, len(x_np))
            start = time.perf_counter()
            with EvalModeGuard(attack.estimator.model, "certify"):
                x_adv = attack.generate(x_np, batch["y"]).astype(np.float32)
            attack_seconds += time.perf_counter() - start
            check_adversarial_batch(x_np, x_adv, r, "certify (smoothed L2 PGD)", norm=2)
            adv = torch.from_numpy(x_adv).to(device)
            batch[f"counts_{r}"] = (
                noisy_counts(net, adv, settings.predict_n, sigma, classes, settings.noise_batch, generator)
                .cpu()
                .numpy()
            )
            batch[f"l2_{r}"] = np.linalg.norm((x_adv - x_np).reshape(len(x_np), -1), axis=1)
            if r == settings.radii[-1]:
                batch["x"], batch["x_adv"] = x_np, x_adv
                batch["linf"] = np.abs(x_adv - x_np).reshape(len(x_np), -1).max(1)
        for key, value in batch.items():
            parts.setdefault(key, []).append(value)
    a = {k: np.concatenate(v) for k, v in parts.items()}
    result = _result(a, settings, sigma, certify_seconds / n_images, attack_seconds, options)
    # A base network that answers one class whatever it sees makes a smoothed classifier certified everywhere.
    votes, y_test = a["clean_counts"].argmax(1), labels_of(test_set)
    reason = untrained_reason(a["y"], votes, y_test, options.test_accuracy)
    result.tags |= {Tags.UNTRAINED: str(bool(reason)).lower(), Tags.UNTRAINED_REASON: reason}
    result.metrics |= {  # as evaluate() logs them: the report's clean row counts the whole test split
        Metrics.TEST_IMAGES: float(len(y_test)),
        Metrics.MAJORITY: majority_accuracy(a["y"]),
        Metrics.PREDICTED_CLASSES: float(len(np.unique(votes))),
    }
    if reason:
        log.warning(
            "the smoothed classifier is no better than always answering the majority class (%s): "
            "its certificates say nothing about robustness",
            reason,
        )
    return result


def _result(a: dict, settings: Certification, sigma: float, certify_seconds: float, attack_seconds: float, options):
    y, prediction, radius = a["y"], a["prediction"], a["radius"]
    right = prediction == y  # certified with the true class (an abstention is ABSTAIN, never a class)
    votes = {0.0: a["clean_counts"].argmax(1)}
    distances = {0.0: np.zeros(len(y))}
    for r in settings.radii:
        votes[r], distances[r] = a[f"counts_{r}"].argmax(1), a[f"l2_{r}"]
    metrics = {Metrics.SIGMA: sigma, f"{Metrics.CERTIFIED}0": float(right.mean())}
    standing = np.ones(len(y), dtype=bool)  # right on every vote so far: the clean one, then each radius
    conflicts, per_radius = 0, {}
    for r in (0.0, *settings.radii):
        standing &= votes[r] == y
        certified = right & (radius >= r)
        overruled = certified & ~standing
        _check_conflicts(overruled, a, votes, distances, y, sigma, r, settings)
        attacked = standing | certified
        if r > 0:
            metrics[f"{Metrics.CERTIFIED}{radius_key(r)}"] = float(certified.mean())
            metrics[f"{Metrics.ATTACKED}{radius_key(r)}"] = float(attacked.mean())
            conflicts += int(overruled.sum())
        per_radius[r] = attacked
        if (certified & ~attacked).any():  # by construction impossible: a bug in this function
            raise AttackCheckError(f"certified accuracy above attacked accuracy at L2 radius {r:g}")
    largest = settings.radii[-1]
    clean_right = per_radius[0.0]
    metrics |= {
        Metrics.CLEAN: float(clean_right.mean()),
        Metrics.ADVERSARIAL: float(per_radius[largest].mean()),
        Metrics.ATTACK_SUCCESS: float((clean_right & ~per_radius[largest]).sum() / max(clean_right.sum(), 1)),
        Metrics.SMOOTHED_CLEAN: float((a["predict"] == y).mean()),
        Metrics.ABSTENTION: float((prediction == ABSTAIN).mean()),
        Metrics.CERTIFIED_RADIUS_MEDIAN: float(np.median(np.where(right, radius, 0.0))),
        Metrics.CERTIFY_SECONDS: certify_seconds,
        Metrics.SECONDS: attack_seconds,
        Metrics.IMAGES: float(len(y)),
        Metrics.CONFLICTS: float(conflicts),
        Metrics.L2_MAX: float(distances[largest].max()),
        Metrics.L2_MEAN: float(distances[largest].mean()),
        Metrics.LINF_MAX: float(a["linf"].max()),
        Metrics.LINF_MEAN: float(a["linf"].mean()),
    }
    covid = y == options.positive_class
    if covid.any():
        metrics[Metrics.SENSITIVITY_CLEAN] = float(clean_right[covid].mean())
        metrics[Metrics.SENSITIVITY_ADVERSARIAL] = float(per_radius[largest][covid].mean())
    # The worst case at the largest radius: the clean image where its own vote was already wrong.
    adv_vote = np.where(votes[0.0] != y, votes[0.0], votes[largest])
    k = options.n_examples
    examples = Examples(a["x"][:k], a["x_adv"][:k], y[:k], votes[0.0][:k], adv_vote[:k])
    shares = {
        name: c / c.sum(1, keepdims=True) for name, c in (("clean", a["clean_counts"]), ("adv", a[f"counts_{largest}"]))
    }
    probabilities = {
        "labels": y,
        "clean": shares["clean"],
        "adversarial": np.where((votes[0.0] != y)[:, None], shares["clean"], shares["adv"]),
    }
    matrices = {
        "clean": confusion(y, votes[0.0], options.num_classes),
        "adversarial": confusion(y, adv_vote, options.num_classes),
    }
    certificate = {
        "sigma": sigma,
        "alpha": settings.alpha,
        "n0": settings.n0,
        "n": settings.n,
        "labels": y.tolist(),
        "prediction": prediction.tolist(),  # -1: CERTIFY abstained
        "radius": radius.tolist(),
        "p_lower": a["p_lower"].tolist(),
        "attacked_right": {radius_key(r): per_radius[r].tolist() for r in settings.radii},
        "l2": {radius_key(r): distances[r].tolist() for r in settings.radii},
    }
    tags = {Tags.EVALUATION: "smoothed", Tags.STRONGEST_EVALUATION: "smoothed"}
    return EvaluationResult(metrics, tags, examples, matrices, probabilities, certificate=certificate)


def _check_conflicts(overruled, a, votes, distances, y, sigma, r, settings: Certification) -> None:
    """Stop where a vote against a certified image is too unlikely to be the vote's own noise."""
    for i in np.flatnonzero(overruled):
        # the first vote that went wrong, at the clean image (distance 0) or an example within r
        wrong_at = next(s for s in (0.0, *settings.radii) if s <= r and votes[s][i] != y[i])
        q = norm.cdf(norm.ppf(a["p_lower"][i]) - distances[wrong_at][i] / sigma)
        chance = binom.cdf(settings.predict_n // 2, settings.predict_n, q)
        if chance < IMPLAUSIBLE:
            raise AttackCheckError(
                f"image {i} is certified at L2 radius {a['radius'][i]:.3f} (p_lower {a['p_lower'][i]:.4f}), yet the "
                f"smoothed classifier's vote on its example at distance {distances[wrong_at][i]:.3f} is wrong, a "
                f"chance of {chance:.1e} if the certificate held: certified accuracy would exceed attacked accuracy."
            )
