import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from art.attacks.attack import EvasionAttack

from covid_robustness.attacks import ATTACKS
from covid_robustness.data.datamodule import CXRDataModule
from covid_robustness.evaluation.callback import AdversarialEvaluation
from covid_robustness.evaluation.checks import AttackCheckError, EvalModeGuard, check_adversarial_batch
from covid_robustness.evaluation.evaluate import evaluate
from covid_robustness.evaluation.options import EvaluationOptions
from covid_robustness.evaluation.passes import PassCounter
from covid_robustness.models.module import CXRClassifier
from covid_robustness.registry import Registry

from .conftest import quiet_trainer


def test_checks_pass_a_valid_batch_and_catch_each_violation():
    x = np.full((2, 1, 4, 4), 0.5, np.float32)
    check_adversarial_batch(x, x + 0.03, 0.03, "ok")
    with pytest.raises(AttackCheckError, match="left the epsilon ball"):
        check_adversarial_batch(x, x + 0.05, 0.03, "far")
    with pytest.raises(AttackCheckError, match=r"valid pixel range \[0, 1\]"):
        check_adversarial_batch(x, x + 0.6, None, "bright")
    with pytest.raises(AttackCheckError, match="non-finite"):
        check_adversarial_batch(x, x * np.nan, None, "nan")
    with pytest.raises(AttackCheckError, match="returned shape"):
        check_adversarial_batch(x, x[:1], None, "short")


def test_eval_mode_guard_sees_a_forward_pass_in_training_mode():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2)).eval()
    with EvalModeGuard(net, "fine"):
        net(torch.rand(2, 1, 5, 5))
    with pytest.raises(AttackCheckError, match="training mode"):
        with EvalModeGuard(net, "sneaky"):
            net.train()
            net(torch.rand(2, 1, 5, 5))
            net.eval()  # switched back: only the hook saw it


class _LeavesTheBall(EvasionAttack):
    _estimator_requirements = ()

    def __init__(self, estimator, eps):
        super().__init__(estimator=estimator)
        self.eps = eps

    def generate(self, x, y=None, **kwargs):
        return np.clip(x + 2 * self.eps * np.sign(np.random.default_rng(0).normal(size=x.shape)), 0, 1)


class _TrainsWhileAttacking(EvasionAttack):
    _estimator_requirements = ()

    def generate(self, x, y=None, **kwargs):
        model = self.estimator.model
        model.train()
        self.estimator.predict(x, training_mode=True)
        model.eval()
        return x


@pytest.fixture
def tiny():
    pl.seed_everything(0, verbose=False)
    dm = CXRDataModule(n_images=160, image_size=32, batch_size=16, seed=0)  # 32 test images
    dm.setup()
    return dm, CXRClassifier("resnet18", 2, dm.positive_class, *dm.pixel_stats())


def _evaluate(dm, module, attack_cfg):
    """Through the Lightning callback, as a job runs it."""
    evaluation = AdversarialEvaluation(EvaluationOptions(attack_cfg, 2, dm.positive_class, max_images=24, batch_size=8))
    quiet_trainer(callbacks=[evaluation]).test(module, datamodule=dm, verbose=False)
    return evaluation.result


def test_evaluate_needs_no_lightning_loop_and_agrees_with_the_callback(tiny):
    dm, module = tiny
    direct = evaluate(
        module.net,
        dm.splits["test"].tensors(),
        EvaluationOptions(
            {"name": "fgsm", "eps": 4 / 255}, 2, dm.positive_class, max_images=24, batch_size=8, progress=False
        ),
    )
    through_callback = _evaluate(dm, module, {"name": "fgsm", "eps": 4 / 255})

    def comparable(metrics):  # nan (a rate with no image to count) equals itself here
        return {k: "nan" if v != v else v for k, v in metrics.items() if k != "attack_seconds"}

    assert comparable(direct.metrics) == comparable(through_callback.metrics)
    # The callback adds the test loop's accuracy to the untrained-model check's reasons.
    assert {k: v for k, v in direct.tags.items() if k != "untrained_model_reason"} == {
        k: v for k, v in through_callback.tags.items() if k != "untrained_model_reason"
    }


def test_pass_counter_counts_images_through_the_model():
    net = torch.nn.Linear(3, 2)
    with PassCounter(net) as passes:
        net(torch.rand(4, 3))
        net(torch.rand(5, 3, requires_grad=True)).sum().backward()
        with torch.no_grad():
            net(torch.rand(2, 3))
    assert (passes.forward, passes.backward) == (11, 5)


def test_callback_measures_a_real_attack(tiny):
    dm, module = tiny
    ev = _evaluate(dm, module, {"name": "fgsm", "eps": 4 / 255})
    m = ev.metrics
    assert m["attack_images"] == 24
    assert m["linf_max"] == pytest.approx(4 / 255, abs=1e-6) and m["l2_mean"] > 0
    assert 0 <= m["adversarial_accuracy"] <= 1 and 0 <= m["attack_success_rate"] <= 1
    assert m["attack_seconds"] > 0
    assert m["attack_backward_passes"] == 1 and m["attack_forward_passes"] >= 1  # FGSM: one gradient
    assert ev.examples.clean.shape == ev.examples.adversarial.shape == (6, 1, 32, 32)
    assert all(p.requires_grad for p in module.parameters())  # weights frozen for the attack only


@pytest.mark.parametrize(
    "attack, message",
    [
        (_LeavesTheBall, "left the epsilon ball"),
        (_TrainsWhileAttacking, "training mode"),
    ],
)
def test_callback_stops_a_broken_attack(tiny, monkeypatch, attack, message):
    dm, module = tiny
    builder = (
        (lambda clf, eps, params: attack(clf, eps))
        if attack is _LeavesTheBall
        else (lambda clf, eps, params: attack(estimator=clf))
    )
    broken = Registry("implementation of attack broken")
    broken.register("art", needs_eps=False, takes_eps=True, label="broken")(builder)
    monkeypatch.setitem(ATTACKS, "broken", broken)
    with pytest.raises(AttackCheckError, match=message):
        _evaluate(dm, module, {"name": "broken", "eps": 4 / 255})


def test_attack_none_returns_the_images_as_they_are_at_no_cost(tiny):
    dm, module = tiny
    metrics = evaluate(
        module.net,
        dm.splits["test"].tensors(),
        EvaluationOptions({"name": "none", "impl": "identity"}, 2, dm.positive_class, batch_size=8, progress=False),
    ).metrics
    assert metrics["adversarial_accuracy"] == metrics["clean_accuracy"] and metrics["attack_images"] == 32
    assert metrics["linf_max"] == 0 and metrics["attack_forward_passes"] == metrics["attack_backward_passes"] == 0


def test_the_two_directions_of_harm_and_the_confusion_counts_by_hand():
    from covid_robustness.evaluation.evaluate import confusion, harm_rates

    # Four classes, COVID-19 = 0. Right on the clean input: images 0, 1, 2 (COVID-19), 3, 4, 5 (others).
    y = np.array([0, 0, 0, 1, 2, 3, 1])
    clean = np.array([0, 0, 0, 1, 2, 3, 0])  # image 6 wrong already: counts in neither rate
    adv = np.array([0, 1, 2, 0, 1, 3, 0])
    rates = harm_rates(y, clean, adv, positive=0)
    assert rates["missed_covid_rate"] == pytest.approx(2 / 3)  # images 1 and 2 sent elsewhere
    assert rates["false_alarm_rate"] == pytest.approx(1 / 3)  # image 3 called COVID-19; image 4 (2 -> 1) is not
    assert np.isnan(harm_rates(y[3:6], clean[3:6], adv[3:6], positive=0)["missed_covid_rate"])
    matrix = confusion(y, adv, 4)
    assert matrix.tolist() == [[1, 1, 1, 0], [2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]]
    assert matrix.sum() == len(y) and np.trace(confusion(y, clean, 4)) == 6


def test_calibration_by_hand():
    from covid_robustness.evaluation.calibration import calibration_metrics, reliability

    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.95, 0.05], [0.6, 0.4], [0.97, 0.03], [0.2, 0.8]])  # image 2: wrong at 0.97
    m = calibration_metrics(y, probs)
    # Bins (of 1/15) hold 0.95 + 0.97 (one bin: 14/15 < p <= 1), 0.6 and 0.8: the gaps are
    # |0.96 - 0.5| x 2, |0.6 - 1| and |0.8 - 1|, weighted by images.
    assert m["ece"] == pytest.approx((2 * 0.46 + 0.4 + 0.2) / 4)
    assert m["brier"] == pytest.approx((2 * 0.05**2 + 2 * 0.4**2 + 2 * 0.97**2 + 2 * 0.2**2) / 4)
    assert m["confident_error_share"] == 1.0  # the one error, at 0.97
    assert np.isnan(calibration_metrics(y, np.eye(2)[y] * 0.9 + 0.05)["confident_error_share"])  # no error
    confidence, accuracy, counts = reliability(y, probs)
    assert confidence.tolist() == pytest.approx([0.6, 0.8, 0.96]) and accuracy.tolist() == [1, 1, 0.5]
    assert counts.tolist() == [1, 1, 2]


def test_a_job_reports_calibration_clean_and_under_attack(tiny):
    dm, module = tiny
    result = _evaluate(dm, module, {"name": "fgsm", "eps": 8 / 255})
    p = result.probabilities
    assert p["clean"].shape == p["adversarial"].shape == (24, 2) and np.allclose(p["clean"].sum(1), 1)
    # The adversarial probabilities are those of the worst-case image each counts.
    assert ((p["adversarial"].argmax(1) == p["labels"]).mean()) == result.metrics["adversarial_accuracy"]
    for name in ("ece", "brier"):
        assert 0 <= result.metrics[f"{name}_clean"] <= 2 and 0 <= result.metrics[f"{name}_adversarial"] <= 2


def test_operating_points_by_hand():
    from covid_robustness.evaluation.operating_point import at_operating_points, choose, reading

    # Validation: 20 COVID-19 images (label 1) with P(COVID-19) 0.05, 0.10, ..., 1.00; 10 others at 0.02 ... 0.20
    y = np.array([1] * 20 + [0] * 10)
    p = np.concatenate([np.arange(1, 21) / 20, np.arange(1, 11) / 50])
    t = choose(y, p, positive=1)
    assert t["sens95"] == pytest.approx(0.10)  # the highest threshold keeping 19 of 20 COVID-19 images
    assert t["youden"] == pytest.approx(0.25)  # above every other image (0.20), keeping 16 of 20: J = 0.8
    assert reading(y, p, 1, 0.25) == (pytest.approx(0.8), 1.0)
    assert reading(y, p, 1, 0.10) == (pytest.approx(0.95), pytest.approx(0.4))  # only 0.02 ... 0.08 stay below
    assert np.isnan(choose(np.ones(3, int), np.ones(3), positive=1)["youden"])
    # Test images, clean and attacked: the attack pushes every image toward the other side.
    y_test = np.array([1, 1, 0, 0])
    clean = np.array([[0.1, 0.9], [0.4, 0.6], [0.8, 0.2], [0.95, 0.05]])
    adv = clean[:, ::-1]
    m = at_operating_points(y_test, clean, adv, 1, {"youden": 0.25})
    assert (m["sensitivity_at_youden_clean"], m["specificity_at_youden_clean"]) == (1.0, 1.0)
    assert (m["sensitivity_at_youden_adversarial"], m["specificity_at_youden_adversarial"]) == (0.5, 0.0)
    assert m["auroc_clean"] == 1.0 and m["auroc_adversarial"] == 0.0 and m["threshold_youden"] == 0.25


def test_targeted_success_counts_other_classes_turned_into_the_target_by_hand():
    from covid_robustness.evaluation.evaluate import targeted_success_rate

    # Target Normal = 1 of four classes. Right on the clean input and not Normal: images 0, 1, 3, 4.
    y = np.array([0, 0, 1, 2, 3, 0])
    clean = np.array([0, 0, 1, 2, 3, 2])  # image 5 wrong already; image 2 is Normal itself
    adv = np.array([1, 2, 0, 1, 3, 1])  # 0 and 3 reach the target; 1 is fooled toward another class
    assert targeted_success_rate(y, clean, adv, target=1) == pytest.approx(2 / 4)
    assert np.isnan(targeted_success_rate(y[2:3], clean[2:3], adv[2:3], target=1))
