"""Randomized smoothing's CERTIFY and PREDICT on a linear classifier, whose smoothed answer and certified
radius are known in closed form: under N(0, sigma^2 I) noise, f(x) = [w.x + b > 0] with |w| = 1 answers
its class with probability Phi(|w.x + b| / sigma), so the exact radius is the distance |w.x + b| to the
hyperplane, and the certificate from n samples is sigma * Phi^-1 of the Clopper-Pearson bound."""

import numpy as np
import pytest
import torch
from scipy.stats import norm
from torch import nn

from covid_robustness.evaluation.certify import ABSTAIN, Certificate, certify, lower_confidence_bound, predict

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


def test_certify_agrees_with_arts_randomized_smoothing(problem):
    """ART's PyTorchRandomizedSmoothing.certify on the same model, n0, n and alpha (its own numpy noise):
    the same answers, and radii within the Monte Carlo deviation of two independent estimates."""
    from art.estimators.certification.randomized_smoothing import PyTorchRandomizedSmoothing

    net, x = problem
    n = 4000
    art = PyTorchRandomizedSmoothing(
        model=net,
        loss=nn.CrossEntropyLoss(),
        input_shape=(1, 8, 8),
        nb_classes=2,
        sample_size=N0,
        scale=SIGMA,
        alpha=ALPHA,
        device_type="cpu",
    )
    np.random.seed(0)
    art_prediction, art_radius = art.certify(x.numpy(), n=n, batch_size=1000)
    ours = certify(net, x, SIGMA, N0, n, ALPHA, 2, batch=1000, generator=torch.Generator().manual_seed(4))
    assert list(ours.prediction) == list(art_prediction) == [0, 0, ABSTAIN, 1, 1, 1]
    p = norm.cdf(np.abs(STEPS))
    deviation = SIGMA * np.sqrt(p * (1 - p) / n) / norm.pdf(norm.ppf(p))
    decided = STEPS != 0
    assert (np.abs(ours.radius - art_radius)[decided] <= 4 * np.sqrt(2) * deviation[decided] + 1e-9).all()


# ------------------------------------------------------------------ attack=certify: both bounds in one job

RADII = (0.1, 0.3, 0.6)
SETTINGS = dict(n0=32, n=1000, alpha=ALPHA, predict_n=101, attack_steps=10, attack_samples=4, radii=list(RADII))


@pytest.fixture(scope="module")
def images():
    """40 images of 16 x 16 px at known distances to a linear classifier's hyperplane (0.02 to 1.0 on either
    side), labelled with their side: the smoothed classifier is the linear one, its exact robust radius
    the distance."""
    g = torch.Generator().manual_seed(3)
    w = torch.randn(256, generator=g)
    w /= w.norm()
    x0 = 0.3 + 0.4 * torch.rand(1, 1, 16, 16, generator=g)
    distance = torch.linspace(0.02, 1.0, 20).repeat(2)
    side = torch.tensor([1.0] * 20 + [-1.0] * 20)
    x = x0 + (side * distance)[:, None, None, None] * w.view(1, 1, 16, 16)
    y = (side > 0).long()
    net = Linear(w, -float(x0.flatten() @ w))
    return net, x.clamp(0, 1), y, distance.numpy()


def _options(sigma=SIGMA):
    from covid_robustness.defenses.transforms import build_defense
    from covid_robustness.evaluation.options import EvaluationOptions

    smoothing = {"_target_": "art.defences.preprocessor.GaussianAugmentation", "sigma": sigma, "augmentation": False}
    smoothing |= {"apply_fit": False, "apply_predict": True}
    defense = build_defense(
        {"name": "smoothing", "preprocessor": smoothing, "random": True, "evaluations": ["bpda_eot"], "eot_samples": 2}
    )
    attack = {"name": "certify", "impl": "fast", "setting": "certificate", "eps": None, **SETTINGS}
    return EvaluationOptions(attack, 2, 1, defense=defense, progress=False)


@pytest.fixture(scope="module")
def certified(images):
    from torch.utils.data import TensorDataset

    from covid_robustness.evaluation.evaluate import evaluate

    net, x, y, _ = images
    return evaluate(net, TensorDataset(x, y), _options())


def test_certified_and_attacked_accuracy_bracket_the_exact_robust_accuracy(images, certified):
    _, _, y, distance = images
    m, cert = certified.metrics, certified.certificate
    assert m["clean_accuracy"] >= 0.9 and m["attack_images"] == 40  # the vote may miss images within 0.5 sigma
    assert m["test_images"] == 40 and m["majority_class_accuracy"] == 0.5 and m["clean_predicted_classes"] == 2
    previous = (1.0, 1.0)
    for r in RADII:
        exact = float((distance > r).mean())  # the linear classifier's robust accuracy at r
        lower, upper = m[f"certified_accuracy_{r:g}"], m[f"attacked_accuracy_{r:g}"]
        assert lower <= exact <= upper and (lower, upper) <= previous, r  # sound, and falling with r
        previous = (lower, upper)
        right = np.array(cert["attacked_right"][f"{r:g}"])
        # the attack finds the hyperplane wherever it lies half a sigma inside the ball, and nothing beyond
        assert not right[distance < r - 0.5 * SIGMA].any() and right[distance > r + 0.5 * SIGMA].all(), r
        assert max(cert["l2"][f"{r:g}"]) <= r * (1 + 1e-5)
    radius = np.array(cert["radius"])
    assert (radius <= distance + 1e-9).all() and np.corrcoef(radius, distance)[0, 1] > 0.9
    assert (
        m["certify_conflicts"] >= 0 and m["smoothing_sigma"] == SIGMA and certified.tags["untrained_model"] == "false"
    )


def test_a_base_network_that_answers_one_class_is_flagged_untrained(images):
    """Certified everywhere, and meaningless: the smoothed classifier of a constant network."""
    from torch.utils.data import TensorDataset

    from covid_robustness.evaluation.evaluate import evaluate

    net, x, y, _ = images
    constant = Linear(torch.zeros_like(net.w), 1.0)  # class 1 whatever it sees
    result = evaluate(constant, TensorDataset(x, y), _options())
    assert result.tags["untrained_model"] == "true" and "predicts one class" in result.tags["untrained_model_reason"]
    assert result.metrics["clean_predicted_classes"] == 1


def test_a_certificate_the_attack_breaks_stops_the_job(images, monkeypatch):
    """Certificates far larger than the distances (a broken CERTIFY): the attack's votes contradict them."""
    from torch.utils.data import TensorDataset

    from covid_robustness.evaluation import smoothing
    from covid_robustness.evaluation.checks import AttackCheckError
    from covid_robustness.evaluation.evaluate import evaluate

    def inflated(net, x, *args, **kwargs):
        y = (net(x)[:, 1] > 0).long().numpy()
        return Certificate(y, np.full(len(x), 5.0), np.full(len(x), 1 - 1e-9))

    monkeypatch.setattr(smoothing, "certify", inflated)
    net, x, y, _ = images
    with pytest.raises(AttackCheckError, match="certified accuracy would exceed attacked accuracy"):
        evaluate(net, TensorDataset(x, y), _options())


def test_the_reports_largest_certifiable_radius_is_what_certify_gives_when_every_copy_votes_right():
    from covid_robustness.report.certified import largest_certifiable

    for sigma, n in ((0.12, 300), (0.25, 1000), (0.5, 100_000)):
        expected = sigma * norm.ppf(lower_confidence_bound(n, n, ALPHA))
        assert largest_certifiable(sigma, n, ALPHA) == pytest.approx(float(expected), rel=1e-9)
