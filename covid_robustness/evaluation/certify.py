"""Randomized smoothing's certificate (Cohen, Rosenfeld and Kolter, 2019): CERTIFY and PREDICT.

The smoothed classifier g(x) answers the class the base classifier f gives most often under Gaussian
noise N(0, sigma^2 I) added to the image's [0, 1] pixels. CERTIFY picks that class from n0 noisy copies,
counts it in n fresh ones, bounds its probability pA from below with a one-sided Clopper-Pearson
interval at confidence 1 - alpha and, where the bound exceeds 1/2, certifies the L2 radius
sigma * Phi^-1(pA): within it g provably keeps its answer (with probability 1 - alpha over the noise).
Where it does not, g abstains. PREDICT answers the top class unless a binomial test of the top two
counts cannot tell them apart at alpha.

Written for batches of images on the model's device, noisy copies in chunks of `batch`; ART's
PyTorchRandomizedSmoothing.certify does the same per image.
"""

from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import beta, binomtest, norm

ABSTAIN = -1


@dataclass(frozen=True)
class Certificate:
    """Per image: the smoothed prediction (ABSTAIN where none) and its certified L2 radius (0 there)."""

    prediction: np.ndarray  # int, ABSTAIN = -1
    radius: np.ndarray  # float, in [0, 1]-pixel L2 units
    p_lower: np.ndarray  # the Clopper-Pearson lower bound on the top class's probability


def lower_confidence_bound(successes: np.ndarray, n: int, alpha: float) -> np.ndarray:
    """One-sided (1 - alpha) Clopper-Pearson lower bound on a binomial proportion; 0 for no success."""
    k = np.asarray(successes, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bound = beta.ppf(alpha, k, n - k + 1)
    return np.where(k > 0, bound, 0.0)


@torch.no_grad()
def noisy_counts(
    net: torch.nn.Module,
    x: torch.Tensor,
    n: int,
    sigma: float,
    num_classes: int,
    batch: int = 256,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """For each image of x (N x C x H x W, [0, 1] pixels), how often f (in eval mode) answers each class
    over n noisy copies: an N x num_classes count tensor. Noise is not clipped to [0, 1], as in Cohen et al."""
    counts = torch.zeros(len(x), num_classes, dtype=torch.long, device=x.device)
    per_image = max(1, batch // max(1, len(x)))  # copies of every image per forward pass
    done = 0
    was_training = net.training
    net.eval()
    try:
        while done < n:
            k = min(per_image, n - done)
            copies = x.repeat_interleave(k, dim=0)
            noise = torch.randn(copies.shape, generator=generator, device=x.device)  # a generator on x's device
            logits = net(copies + sigma * noise)
            if isinstance(logits, (tuple, list)):
                logits = logits[0]
            answers = logits.argmax(1).view(len(x), k)
            counts += torch.nn.functional.one_hot(answers, num_classes).sum(1)
            done += k
    finally:
        net.train(was_training)
    return counts


def certify(
    net: torch.nn.Module,
    x: torch.Tensor,
    sigma: float,
    n0: int,
    n: int,
    alpha: float,
    num_classes: int,
    batch: int = 256,
    generator: torch.Generator | None = None,
) -> Certificate:
    """Cohen et al.'s CERTIFY for each image of x: the class chosen on n0 copies, its probability bounded
    on n others, the radius sigma * Phi^-1(pA) where pA > 1/2, else an abstention."""
    chosen = noisy_counts(net, x, n0, sigma, num_classes, batch, generator).argmax(1)
    counts = noisy_counts(net, x, n, sigma, num_classes, batch, generator)
    top = counts.gather(1, chosen[:, None])[:, 0].cpu().numpy()
    p_lower = lower_confidence_bound(top, n, alpha)
    certified = p_lower > 0.5
    radius = np.where(certified, sigma * norm.ppf(np.clip(p_lower, 0.5, 1.0)), 0.0)
    prediction = np.where(certified, chosen.cpu().numpy(), ABSTAIN)
    return Certificate(prediction.astype(np.int64), radius.astype(np.float64), p_lower)


def predict(
    net: torch.nn.Module,
    x: torch.Tensor,
    sigma: float,
    n: int,
    alpha: float,
    num_classes: int,
    batch: int = 256,
    generator: torch.Generator | None = None,
) -> np.ndarray:
    """Cohen et al.'s PREDICT: the top class over n noisy copies, ABSTAIN where a two-sided binomial test
    of the top two counts does not reject equal odds at alpha."""
    return abstaining(noisy_counts(net, x, n, sigma, num_classes, batch, generator).cpu().numpy(), alpha)


def abstaining(counts: np.ndarray, alpha: float) -> np.ndarray:
    """PREDICT's answer from the counts of noisy copies (N x classes): the top class, ABSTAIN where a
    two-sided binomial test of the top two counts does not reject equal odds at alpha."""
    order = np.argsort(-counts, axis=1, kind="stable")
    answers = order[:, 0].copy()
    for i, row in enumerate(counts):
        first, second = row[order[i, 0]], row[order[i, 1]] if counts.shape[1] > 1 else 0
        if binomtest(int(first), int(first + second), 0.5).pvalue > alpha:
            answers[i] = ABSTAIN
    return answers
