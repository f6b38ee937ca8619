"""The attack side of randomized smoothing: attack=certify's settings and the L2 attack on a smoothed classifier.

A smoothed classifier g answers the class its base network f gives most often under Gaussian noise of
standard deviation sigma (evaluation/certify.py certifies it). Attacking g itself needs a gradient
through a majority vote, which has none; SmoothAdv (Salman et al. 2019) attacks the smoothed *soft*
classifier instead, the mean of f's softmax over noisy copies, with the loss -log of its probability of
the true class, estimated on `samples` fresh draws per step. Here that soft classifier is a network
(`SmoothedSoft`, whose log-probabilities cross-entropy reads as that loss) under this package's L2 PGD
(gradient.py, every image taking every step: an early exit would judge a noisy estimate), so the steps,
projections and checks are PGD's.

attack=certify (`Certification`) is not an attack on its own: its evaluation (evaluation/smoothing.py)
certifies each image and attacks the smoothed classifier with `smoothed_pgd` at each radius.
"""

from dataclasses import dataclass

import torch
from torch import nn

from ..record import CERTIFY
from .classifier import build_classifier
from .gradient import PGD, pgd_step
from .registry import register_attack


class SmoothedSoft(nn.Module):
    """log E_noise[softmax(f(x + noise))], estimated on `samples` draws of N(0, sigma^2 I) per image and call."""

    def __init__(self, net: nn.Module, sigma: float, samples: int):
        super().__init__()
        self.net, self.sigma, self.samples = net, sigma, samples

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        copies = x.repeat_interleave(self.samples, dim=0)
        logits = self.net(copies + self.sigma * torch.randn_like(copies))
        if isinstance(logits, (tuple, list)):
            logits = logits[0]
        p = logits.softmax(1).view(len(x), self.samples, -1).mean(1)
        return p.clamp_min(1e-12).log()


def smoothed_classifier(net: nn.Module, image_size: int, num_classes: int, sigma: float, samples: int):
    """ART's view of the smoothed soft classifier of net at sigma, `samples` noise draws per call."""
    return build_classifier(SmoothedSoft(net, sigma, samples), image_size, num_classes)


def smoothed_pgd(classifier, eps: float, steps: int, batch_size: int) -> PGD:
    """L2 PGD of `steps` steps (2.5 eps / steps each) on a smoothed soft classifier, every image to the end."""
    return PGD(
        classifier,
        eps=eps,
        eps_step=pgd_step(eps, steps),
        max_iter=steps,
        batch_size=batch_size,
        early_stop=False,
        verbose=False,
        norm=2,
    )


@dataclass(frozen=True)
class Certification:
    """attack=certify's settings (conf/attack/certify.yaml): CERTIFY's n0, n and alpha; the L2 radii at
    which certified and attacked accuracy are logged; the attack's steps and noise draws per step; the
    draws that judge each attacked image (predict_n); noisy copies per forward pass (noise_batch)."""

    n0: int = 100
    n: int = 1000
    alpha: float = 0.001
    radii: tuple[float, ...] = (0.25, 0.5, 1.0)
    predict_n: int = 100
    attack_steps: int = 10
    attack_samples: int = 8
    noise_batch: int = 512
    batch_size: int = 64

    def __post_init__(self):
        for name in ("n0", "n", "predict_n", "attack_steps", "attack_samples", "noise_batch", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, not {value!r}.")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not 0 < self.alpha < 1:
            raise ValueError(f"`alpha` must lie in (0, 1), not {self.alpha!r}.")
        radii = tuple(self.radii)
        if not radii or any(isinstance(r, bool) or not isinstance(r, (int, float)) or r <= 0 for r in radii):
            raise ValueError(f"`radii` must be positive L2 lengths on [0, 1] pixels, not {self.radii!r}.")
        object.__setattr__(self, "radii", tuple(sorted(float(r) for r in radii)))


@register_attack(CERTIFY, "fast", needs_eps=False, takes_eps=False, label="Certified")
def _certify(clf, eps, params) -> Certification:
    """The settings only: evaluation/smoothing.py runs the certification and the attacks."""
    return Certification(**params)
