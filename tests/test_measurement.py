"""What a job measures: the clean image as candidate zero, random defenses, budgets in std units, ST at
ART's rule, untrained models, and BatchNorm statistics in adversarial training."""

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from covid_robustness.attacks.resolve import in_pixels
from covid_robustness.attacks.validation import validate_attack
from covid_robustness.data.datamodule import CXRDataModule
from covid_robustness.defenses.adversarial_training import adversarial_batch
from covid_robustness.defenses.transforms import build_defense
from covid_robustness.errors import ConfigError
from covid_robustness.evaluation.checks import AttackCheckError, check_not_above_clean
from covid_robustness.evaluation.evaluate import evaluate, untrained_reason
from covid_robustness.evaluation.options import EvaluationOptions
from covid_robustness.models.module import CXRClassifier, Normalized

from .conftest import make_cfg
from .test_defenses import _train


@pytest.fixture(scope="module")
def dm():
    dm = CXRDataModule(n_images=160, image_size=32, batch_size=16, seed=0)  # 32 test images
    dm.setup()
    return dm


def _module(dm, steps: int) -> CXRClassifier:
    """A CXRClassifier around a small CNN trained for `steps` Adam steps on the training split."""
    module = CXRClassifier("resnet18", 2, dm.positive_class, *dm.pixel_stats())
    x, y = (t.numpy() for t in dm.splits["train"].tensors().tensors)
    module.net = Normalized(_train(x, y, steps=steps), *dm.pixel_stats())
    return module.eval()


@pytest.fixture(scope="module")
def trained(dm):
    return _module(dm, 150)


@pytest.fixture(scope="module")
def weak(dm):
    """Half-trained: it gets some test images wrong, which an attack could 'fix'."""
    return _module(dm, 4)


def _evaluate(dm, module, attack: dict, defense=None, batch_size: int = 8, max_images: int = 32):
    return evaluate(
        module.net,
        dm.splits["test"].tensors(),
        EvaluationOptions(
            attack,
            2,
            dm.positive_class,
            max_images=max_images,
            batch_size=batch_size,
            defense=defense,
            progress=False,
        ),
    )


def test_an_attack_that_helps_the_model_cannot_raise_its_accuracy(dm, weak):
    """A targeted FGSM towards the true class moves wrong images to right ones: the clean image, candidate
    zero of the worst case, keeps them wrong."""
    m = _evaluate(dm, weak, {"name": "fgsm", "eps": 16 / 255, "targeted": True}).metrics
    assert m["clean_accuracy"] < 1
    assert m["adversarial_accuracy"] <= m["clean_accuracy"]
    assert m["adversarial_accuracy"] == pytest.approx(m["clean_accuracy"] * (1 - m["attack_success_rate"]))


def test_the_check_stops_an_accuracy_above_the_clean_one():
    clean = np.array([True, False, True])
    check_not_above_clean(clean, np.array([True, False, False]))
    with pytest.raises(AttackCheckError, match="1 image"):
        check_not_above_clean(clean, np.array([True, True, False]))


def _noise(sigma: float, votes: int):
    cfg = OmegaConf.to_container(make_cfg("defense=gaussian_noise").defense, resolve=True)
    cfg["preprocessor"]["sigma"], cfg["predict_samples"], cfg["eot_samples"] = sigma, votes, 2
    return build_defense(cfg)


def test_a_random_defense_counts_no_noise_as_an_attack(dm, trained):
    """With a zero budget the attacked images are the clean ones: their accuracy must be the clean one,
    however noisy the defense (single draws would count noise-only errors, once per evaluation)."""
    ev = _evaluate(dm, trained, {"name": "fgsm", "eps": 0.0}, defense=_noise(0.1, 5))
    m = ev.metrics
    assert 0.5 < m["clean_accuracy"] < 1  # the noise costs some images: there are votes to disagree
    assert m["adversarial_accuracy"] == m["clean_accuracy"]
    assert m["adversarial_accuracy_oblivious"] == m["adversarial_accuracy_bpda_eot"] == m["clean_accuracy"]


def test_random_defense_predictions_are_majority_votes(dm, trained, monkeypatch):
    from covid_robustness.defenses import transforms

    defense = _noise(0.1, 7)
    calls = []
    original = transforms.PyTorchClassifier.predict
    monkeypatch.setattr(
        transforms.PyTorchClassifier, "predict", lambda self, x, **kw: calls.append(len(x)) or original(self, x, **kw)
    )
    defended, _ = transforms.build_classifiers(trained.net, defense, 32, 2)
    x = dm.splits["test"].tensors().tensors[0][:10].numpy()
    state = np.random.get_state()[1].copy()
    first = transforms.predict(defended, x, defense)
    assert calls == [10] * 7
    np.testing.assert_array_equal(first, transforms.predict(defended, x, defense))  # the same draws each call
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # the global generator is left as it was
    with pytest.raises(ConfigError, match="predict_samples"):
        build_defense({**OmegaConf.to_container(make_cfg("defense=jpeg").defense, resolve=True), "predict_samples": 3})


def test_eps_in_std_units_is_converted_with_the_models_std(dm, trained):
    cfg, budget = in_pixels({"name": "pgd", "eps": 0.3, "eps_step": 0.1, "eps_unit": "std", "max_iter": 3}, 0.25)
    assert cfg["eps"] == pytest.approx(0.075) and cfg["eps_step"] == pytest.approx(0.025) and "eps_unit" not in cfg
    assert budget == pytest.approx({"eps_pixel": 0.075, "eps_std": 0.3, "normalisation_std": 0.25})
    with pytest.raises(ConfigError, match="out of range"):  # 5 std of 0.25 is more than the pixel range
        in_pixels({"name": "fgsm", "eps": 5.0, "eps_unit": "std"}, 0.25)
    with pytest.raises(ConfigError, match="eps_unit"):
        validate_attack({"name": "fgsm", "eps": 0.1, "eps_unit": "grey"})
    std = float(trained.net.std)
    m = _evaluate(dm, trained, {"name": "fgsm", "eps": 0.1, "eps_unit": "std"}).metrics
    assert m["eps_pixel"] == pytest.approx(0.1 * std) and m["eps_std"] == pytest.approx(0.1)
    assert m["linf_max"] == pytest.approx(0.1 * std, abs=1e-6)  # FGSM uses its whole budget


@pytest.mark.parametrize("impl", ["fast", "art"])
def test_st_at_arts_rule_takes_one_transform_for_all_attacked_images(dm, trained, impl):
    """ART's rule: one transform for the whole attacked set, so eval.batch_size cannot change the result."""
    cfg = OmegaConf.to_container(make_cfg("attack=st_art_rule", f"attack.impl={impl}").attack, resolve=True)
    if impl == "art":
        cfg = {
            k: v
            for k, v in cfg.items()
            if k not in ("per_image", "vertical_translation", "interpolation", "batch_size")
        }
    small, large = (_evaluate(dm, trained, cfg, batch_size=b) for b in (5, 32))
    assert small.metrics["adversarial_accuracy"] == large.metrics["adversarial_accuracy"]
    ex = small.examples
    moved = [i for i in range(len(ex.labels)) if not np.allclose(ex.clean[i], ex.adversarial[i])]
    assert moved, "the attack transformed no image"


def test_a_model_that_answers_one_class_is_flagged(dm, trained):
    constant = _module(dm, 0)
    last = constant.net.net.layers[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([1.0, 0.0]))
    ev = _evaluate(dm, constant, {"name": "fgsm", "eps": 4 / 255})
    assert ev.tags["untrained_model"] == "true" and "predicts one class" in ev.tags["untrained_model_reason"]
    assert ev.metrics["clean_predicted_classes"] == 1
    assert ev.metrics["adversarial_accuracy"] == ev.metrics["clean_accuracy"]  # nothing to attack: no robustness
    assert _evaluate(dm, trained, {"name": "fgsm", "eps": 4 / 255}).tags["untrained_model"] == "false"
    y = np.array([0, 0, 0, 1])
    assert untrained_reason(y, np.array([0, 0, 0, 0]), y, 0.75)
    assert not untrained_reason(y, np.array([0, 0, 0, 1]), y, 1.0)


def test_attack_steps_of_adversarial_training_leave_running_statistics_alone(dm):
    module = CXRClassifier("resnet18", 2, dm.positive_class, *dm.pixel_stats()).train()
    bn = next(m for m in module.modules() if isinstance(m, nn.BatchNorm2d))
    x, y = (t[:16] for t in dm.splits["train"].tensors().tensors)
    mean, count = bn.running_mean.clone(), bn.num_batches_tracked.clone()
    x_adv = adversarial_batch(module.net, x, y, {"method": "pgd", "eps": 8 / 255, "iterations": 3})
    assert torch.equal(bn.running_mean, mean) and torch.equal(bn.num_batches_tracked, count)
    assert not torch.equal(x_adv, x) and bn.track_running_stats  # the attack ran, and the layer is restored
    module.net(x_adv)  # the update step's forward pass
    assert not torch.equal(bn.running_mean, mean) and bn.num_batches_tracked == count + 1


def test_the_attack_draws_the_same_random_numbers_whatever_ran_before(dm, trained):
    """Training consumes random numbers and loading does not: the callback seeds right before attacking."""
    results = []
    for before in (1, 2):
        np.random.seed(before)
        torch.manual_seed(before)
        results.append(
            _evaluate(dm, trained, {"name": "pgd", "eps": 8 / 255, "max_iter": 2, "num_random_init": 1}).metrics
        )
    for name in ("adversarial_accuracy", "linf_mean", "l2_mean", "l2_max"):
        assert results[0][name] == results[1][name], name
