"""Randomized smoothing's CERTIFY and PREDICT on a linear classifier, whose smoothed answer and certified
radius are known in closed form: under N(0, sigma^2 I) noise, f(x) = [w.x + b > 0] with |w| = 1 answers
its class with probability Phi(|w.x + b| / sigma), so the exact radius is the distance |w.x + b| to the
hyperplane, and the certificate from n samples is sigma * Phi^-1 of the Clopper-Pearson bound."""

import numpy as np
import pytest
import torch
from scipy.stats import norm
from torch import nn

from covid_robustness.evaluation.certify import ABSTAIN, certify, lower_confidence_bound, predict

SIGMA, N0, N, ALPHA = 0.25, 100, 20000, 0.001
# signed distances to the hyperplane, in sigmas: one on it (the smoothed classifier cannot decide)
STEPS = np.array([-2.0, -0.8, 0.0, 0.4, 1.5, 2.5])


class Linear(nn.Module):
    def __init__(self, w: torch.Tensor, b: float):
        super().__init__()
        self.w, self.b = w, b

    def forward(self, x):
        s = x.flatten(1) @ self.w + self.b
        return torch.stack([-s, s], 1)  # class 1 where w.x + b > 0


@pytest.fixture(scope="module")
def problem():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(64, generator=g)
    w /= w.norm()
    x0 = torch.rand(1, 1, 8, 8, generator=g)
    b = -float(x0.flatten() @ w)  # x0 on the hyperplane
    x = x0 + torch.tensor(STEPS * SIGMA, dtype=torch.float32)[:, None, None, None] * w.view(1, 1, 8, 8)
    return Linear(w, b), x


def test_certify_gives_the_closed_form_radius_of_a_linear_classifier(problem):
    net, x = problem
    cert = certify(net, x, SIGMA, N0, N, ALPHA, 2, generator=torch.Generator().manual_seed(1))
    distance = np.abs(STEPS) * SIGMA
    p = norm.cdf(np.abs(STEPS))  # the top class's exact probability under the noise
    decided = STEPS != 0
    assert (cert.prediction[decided] == (STEPS[decided] > 0)).all()
    assert cert.prediction[~decided] == ABSTAIN and cert.radius[~decided] == 0
    # Sound: never beyond the exact radius. Tight: where n samples put it, within 4 Monte Carlo deviations.
    assert (cert.radius <= distance + 1e-9).all()
    expected = SIGMA * norm.ppf(lower_confidence_bound(np.round(N * p), N, ALPHA))
    deviation = SIGMA * np.sqrt(p * (1 - p) / N) / norm.pdf(norm.ppf(p))
    assert (np.abs(cert.radius - expected)[decided] <= 4 * deviation[decided]).all()
    assert (distance[decided] - cert.radius[decided] < 0.15 * SIGMA).all()  # what finite n costs here


def test_predict_answers_the_side_and_abstains_on_the_hyperplane(problem):
    net, x = problem
    answers = predict(net, x, SIGMA, N, ALPHA, 2, generator=torch.Generator().manual_seed(2))
    assert list(answers) == [0, 0, ABSTAIN, 1, 1, 1]


def test_the_clopper_pearson_bound_is_exact_at_its_ends():
    assert lower_confidence_bound(np.array([0]), 100, 0.05)[0] == 0
    # all n successes: the bound solves p^n = alpha
    assert lower_confidence_bound(np.array([100]), 100, 0.05)[0] == pytest.approx(0.05 ** (1 / 100))
