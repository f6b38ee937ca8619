import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from art.attacks.attack import EvasionAttack
from art.attacks.evasion import DeepFool, SpatialTransformation
from omegaconf import OmegaConf
from torch import nn

from covid_robustness.attacks.bounded import BoundedAttack
from covid_robustness.attacks.build import build_attack
from covid_robustness.attacks.classifier import build_classifier
from covid_robustness.attacks.registry import attack_label, attack_names
from covid_robustness.attacks.reset import reset_attack
from covid_robustness.attacks.resolve import with_target
from covid_robustness.attacks.smoothing import Certification
from covid_robustness.attacks.validation import takes_eps, validate_attack
from covid_robustness.data.classes import task_classes
from covid_robustness.data.datamodule import CXRDataModule
from covid_robustness.errors import ConfigError
from covid_robustness.models.module import CXRClassifier

from .conftest import CONF, make_cfg, quiet_trainer
from .test_fast_attacks import SIZE, TinyNet


@pytest.fixture(scope="module")
def trained():
    """A ResNet-18 trained briefly on 32 px synthetic images, and a batch of its test images."""
    pl.seed_everything(0, verbose=False)
    dm = CXRDataModule(n_images=480, image_size=32, batch_size=32, seed=0)
    dm.setup()
    module = CXRClassifier("resnet18", 2, dm.positive_class, *dm.pixel_stats(), lr=0.05)
    quiet_trainer(max_epochs=8).fit(module, datamodule=dm)
    net = module.net.eval()
    x = torch.from_numpy(dm.splits["test"].images[:64]).unsqueeze(1).float().numpy() / 255
    y = dm.splits["test"].labels[:64]
    return net, build_classifier(net, 32, 2), x.astype(np.float32), y


def accuracy(clf, x, y):
    return float((clf.predict(x).argmax(1) == y).mean())


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF / "attack").glob("*.yaml")))
def test_every_attack_config_builds(name, trained):
    cfg = make_cfg(f"attack={name}")
    resolved = with_target(OmegaConf.to_container(cfg.attack, resolve=True), task_classes(cfg.data.task))
    attack = build_attack(resolved, trained[1])
    if name == "certify":  # settings for the smoothed classifier's evaluation, not an attack on the model
        assert isinstance(attack, Certification) and attack.radii == (0.25, 0.5, 1.0) and attack.n == 1000
        return
    assert hasattr(attack, "generate")
    assert getattr(attack, "targeted", False) == (resolved.get("target_class") is not None)


def test_budgeted_attacks_stay_in_the_ball_and_lower_accuracy(trained):
    _, clf, x, y = trained
    clean = accuracy(clf, x, y)
    assert clean > 0.7, "the fixture model should have learned something"
    for name in ("fgsm", "pgd"):
        accs = []
        for eps in (1 / 255, 4 / 255, 16 / 255):
            x_adv = build_attack(
                {"name": name, "eps": eps, "max_iter": 10} if name == "pgd" else {"name": name, "eps": eps}, clf
            ).generate(x, y)
            assert np.abs(x_adv - x).max() <= eps + 1e-6 and 0 <= x_adv.min() and x_adv.max() <= 1
            accs.append(accuracy(clf, x_adv, y))
        assert accs == sorted(accs, reverse=True) and accs[-1] < clean - 0.3, (name, clean, accs)


def test_pgd_is_at_least_as_strong_as_fgsm(trained):
    _, clf, x, y = trained
    eps = 2 / 255
    fgsm = accuracy(clf, build_attack({"name": "fgsm", "eps": eps}, clf).generate(x, y), y)
    pgd = accuracy(clf, build_attack({"name": "pgd", "eps": eps, "max_iter": 10}, clf).generate(x, y), y)
    assert pgd <= fgsm


def test_pgd_matches_a_plain_torch_pgd(trained):
    net, clf, x, y = trained
    eps, step, iters = 4 / 255, 1 / 255, 5
    art = build_attack({"name": "pgd", "eps": eps, "eps_step": step, "max_iter": iters}, clf).generate(x, y)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    adv = xt.clone()
    for _ in range(iters):
        adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(torch.nn.functional.cross_entropy(net(adv), yt), adv)
        adv = (xt + (adv.detach() + step * grad.sign() - xt).clamp(-eps, eps)).clamp(0, 1)
    assert np.abs(art - adv.numpy()).max() < 1e-5


class _Far(EvasionAttack):
    """Stands in for an unbounded attack that moves every pixel far."""

    _estimator_requirements = ()

    def generate(self, x, y=None, **kwargs):
        return np.clip(x + 0.5, 0, 1)


def test_bounded_attack_projects_onto_the_ball(trained):
    _, clf, x, y = trained
    assert np.abs(_Far(estimator=clf).generate(x) - x).max() > 0.4
    x_adv = BoundedAttack(_Far(estimator=clf), 0.01).generate(x, y)
    assert np.abs(x_adv - x).max() == pytest.approx(0.01, abs=1e-6)


def test_cw_with_eps_is_bounded(trained):
    _, clf, x, y = trained
    attack = build_attack({"name": "cw", "eps": 2 / 255, "max_iter": 2, "largest_const": 1e-3}, clf)
    assert isinstance(attack, BoundedAttack)
    x_adv = attack.generate(x[:2], y[:2])
    assert np.abs(x_adv - x[:2]).max() <= 2 / 255 + 1e-6


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({"name": "deepfool"}, "attack 'deepfool' is not known"),
        ({"name": "fgsm", "eps": None}, "attack fgsm needs attack.eps"),
        ({"name": "fgsm", "eps": -0.1}, "attack.eps=-0.1 is out of range"),
        ({"name": "pgd", "eps": 1.5}, "attack.eps=1.5 is out of range"),
        ({"name": "st", "eps": 0.03}, "attack st has no epsilon"),
        ({"name": "fgsm", "eps": 0.1, "impl": "foolbox"}, "attack.impl='foolbox' is not available for fgsm"),
        ({"name": "st", "impl": "foolbox"}, r"choose one of \['art', 'fast'\]"),
        ({"name": "x", "_target_": "os.system"}, "_target_='os.system' is not one of ART's evasion attacks"),
        ({"name": "x", "_target_": "art.defences.preprocessor.JpegCompression"}, "not one of ART's evasion attacks"),
        (
            {"name": "x", "_target_": "art.attacks.evasion.NoSuchAttack"},
            "is not an evasion attack in art.attacks.evasion",
        ),
        ({"name": "x", "_target_": "art.attacks.evasion.deepfool.np"}, "is not an evasion attack"),
        ({"_target_": "art.attacks.evasion.DeepFool"}, "needs attack.name"),
        ({"name": "pgd", "_target_": "art.attacks.evasion.DeepFool"}, "'pgd' is a registered attack"),
        (
            {"name": "deepfool", "_target_": "art.attacks.evasion.DeepFool", "eps": 0.1},
            "attack deepfool has no epsilon",
        ),
        (
            {"name": "deepfool", "_target_": "art.attacks.evasion.DeepFool", "impl": "fast"},
            "attack.impl='fast' does not",
        ),
    ],
)
def test_attack_config_errors(cfg, message):
    with pytest.raises(ConfigError, match=message):
        validate_attack(cfg)


def test_unknown_attack_parameter_is_named(trained):
    with pytest.raises(ConfigError, match="does not take one of"):
        build_attack({"name": "fgsm", "eps": 0.1, "epsilon_step": 0.1}, trained[1])


def test_registered_attacks_carry_their_labels_and_budget_rules():
    names = ["apgd", "autoattack_binary", "certify", "cw", "cw_l2", "fgsm", "none", "pgd", "radius", "st"]
    assert attack_names() == names
    labels = ["APGD", "AutoAttack-2", "Certified", "C&W", "C&W", "FGSM", "None", "PGD", "Radius", "ST"]
    assert [attack_label(n) for n in attack_names()] == labels
    assert attack_label("deepfool") == "deepfool"  # an attack from _target_ has no label of its own
    assert attack_label("bim", "art.attacks.evasion.BasicIterativeMethod") == "BasicIterativeMethod"  # its class's
    assert takes_eps({"name": "cw", "impl": "fast"}) and not takes_eps({"name": "st"})
    assert takes_eps({"name": "cw_l2"}) and not takes_eps({"name": "certify", "impl": "fast"})
    assert takes_eps({"name": "x", "_target_": "art.attacks.evasion.FastGradientMethod"})
    assert not takes_eps({"name": "x", "_target_": "art.attacks.evasion.DeepFool"})


def test_an_attack_target_outside_art_evasion_is_refused_before_anything_is_built():
    clf = build_classifier(TinyNet().eval(), SIZE, 2)
    with pytest.raises(ConfigError, match="is not one of ART's evasion attacks"):
        build_attack({"name": "x", "_target_": "subprocess.Popen", "args": ["true"]}, clf)


def test_the_deepfool_config_builds_art_deepfool_from_the_yaml_alone():
    torch.manual_seed(0)
    clf = build_classifier(TinyNet().eval(), SIZE, 2)
    cfg = OmegaConf.to_container(make_cfg("attack=deepfool_art").attack, resolve=True)
    attack = build_attack(cfg, clf)
    assert isinstance(attack, DeepFool) and attack.max_iter == 50 and attack.batch_size == 64
    assert attack.verbose is False  # passed because DeepFool takes it
    x = np.random.default_rng(0).random((6, 1, SIZE, SIZE), dtype=np.float32)
    x_adv = attack.generate(x)
    assert x_adv.shape == x.shape and x_adv.min() >= 0 and x_adv.max() <= 1
    margin = [np.abs(np.diff(clf.predict(images), axis=1)) for images in (x, x_adv)]
    assert (margin[1] < 0.01 * margin[0]).all()  # each image moved onto the decision boundary
    with pytest.raises(ConfigError, match="does not take one of"):
        build_attack({**cfg, "max_iterations": 5}, clf)
    with pytest.raises(ConfigError, match="rejects its parameters"):
        build_attack({**cfg, "max_iter": -1}, clf)


class _BarNet(nn.Module):
    """Class 0 while the image's bright columns lie mostly in columns 12-19: a translation of 3 px fools a
    bar at column 13 only to the left and a bar at column 18 only to the right."""

    def forward(self, x):
        columns = x[:, 0].mean(1)
        inside = columns[:, 12:20].sum(1)
        margin = inside - (columns.sum(1) - inside)
        return torch.stack([margin, -margin], 1) * 10


def _bars(column: int, n: int = 4) -> np.ndarray:
    x = np.zeros((n, 1, SIZE, SIZE), np.float32)
    x[..., column] = 1
    return x


def test_reset_attack_makes_art_spatial_transformation_search_again():
    clf = build_classifier(_BarNet(), SIZE, 2)
    cfg = {
        "name": "st",
        "impl": "art",
        "max_translation": 10.0,
        "num_translations": 3,
        "max_rotation": 0.0,
        "num_rotations": 1,
    }
    left, right = _bars(13), _bars(18)
    fresh = [build_attack(cfg, clf).generate(batch) for batch in (left, right)]
    assert all((clf.predict(f).argmax(1) == 1).all() for f in fresh)  # each batch has its own fooling shift
    attack = build_attack(cfg, clf)
    attack.generate(left)
    assert (clf.predict(attack.generate(right)).argmax(1) == 0).all()  # ART kept the left batch's shift
    np.testing.assert_array_equal(reset_attack(attack).generate(right), fresh[1])
    wrapped = BoundedAttack(attack, 1.0)  # reset reaches an attack inside a wrapper
    wrapped.generate(left)
    assert isinstance(wrapped.attack, SpatialTransformation) and attack.attack_trans_y is not None
    reset_attack(wrapped)
    assert (attack.attack_trans_x, attack.attack_trans_y, attack.attack_rot, attack.fooling_rate) == (None,) * 4
    np.testing.assert_array_equal(wrapped.generate(right), fresh[1])
