import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from art.attacks.attack import EvasionAttack

from covid_robustness.attacks.bounded import BoundedAttack
from covid_robustness.attacks.factory import build_attack, build_classifier, validate_attack
from covid_robustness.data.datamodule import CXRDataModule
from covid_robustness.errors import ConfigError
from covid_robustness.models.module import CXRClassifier
from omegaconf import OmegaConf

from .conftest import CONF, make_cfg


@pytest.fixture(scope="module")
def trained():
    """A ResNet-18 trained briefly on 32 px synthetic images, and a batch of its test images."""
    pl.seed_everything(0, verbose=False)
    dm = CXRDataModule(n_images=480, image_size=32, batch_size=32, seed=0)
    dm.setup()
    module = CXRClassifier("resnet18", 2, dm.positive_class, *dm.pixel_stats(), lr=0.05)
    pl.Trainer(max_epochs=8, accelerator="cpu", logger=False, enable_checkpointing=False,
               enable_progress_bar=False, enable_model_summary=False).fit(module, datamodule=dm)
    net = module.net.eval()
    x = torch.from_numpy(dm.splits["test"].images[:64]).unsqueeze(1).float().numpy() / 255
    y = dm.splits["test"].labels[:64]
    return net, build_classifier(net, 32, 2), x.astype(np.float32), y


def accuracy(clf, x, y):
    return float((clf.predict(x).argmax(1) == y).mean())


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF / "attack").glob("*.yaml")))
def test_every_attack_config_builds(name, trained):
    cfg = make_cfg(f"attack={name}")
    attack = build_attack(OmegaConf.to_container(cfg.attack, resolve=True), trained[1])
    assert hasattr(attack, "generate")


def test_budgeted_attacks_stay_in_the_ball_and_lower_accuracy(trained):
    _, clf, x, y = trained
    clean = accuracy(clf, x, y)
    assert clean > 0.7, "the fixture model should have learned something"
    for name in ("fgsm", "pgd"):
        accs = []
        for eps in (1 / 255, 4 / 255, 16 / 255):
            x_adv = build_attack({"name": name, "eps": eps, "max_iter": 10} if name == "pgd" else
                                 {"name": name, "eps": eps}, clf).generate(x, y)
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
        grad, = torch.autograd.grad(torch.nn.functional.cross_entropy(net(adv), yt), adv)
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


@pytest.mark.parametrize("cfg, message", [
    ({"name": "deepfool"}, "attack 'deepfool' is not known"),
    ({"name": "fgsm", "eps": None}, "attack fgsm needs attack.eps"),
    ({"name": "fgsm", "eps": -0.1}, "attack.eps=-0.1 is out of range"),
    ({"name": "pgd", "eps": 1.5}, "attack.eps=1.5 is out of range"),
    ({"name": "st", "eps": 0.03}, "attack st has no epsilon"),
    ({"name": "fgsm", "eps": 0.1, "impl": "foolbox"}, "attack.impl='foolbox' is not available for fgsm"),
])
def test_attack_config_errors(cfg, message):
    with pytest.raises(ConfigError, match=message):
        validate_attack(cfg)


def test_unknown_attack_parameter_is_named(trained):
    with pytest.raises(ConfigError, match="does not take one of"):
        build_attack({"name": "fgsm", "eps": 0.1, "epsilon_step": 0.1}, trained[1])
