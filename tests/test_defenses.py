"""Defenses: adversarial training (ours against ART, BatchNorm mode, robustness bought), input
transformations inside the classifier (BPDA, EOT, worst case), and the two-class strong attacks."""

import numpy as np
import pytest
import torch
from art.attacks.evasion import AutoAttack, AutoProjectedGradientDescent, ProjectedGradientDescent
from art.defences.preprocessor import GaussianAugmentation, JpegCompression
from art.estimators.classification import PyTorchClassifier
from omegaconf import OmegaConf
from torch import nn

from covid_robustness.attacks.apgd import APGD
from covid_robustness.attacks.build import build_attack
from covid_robustness.attacks.classifier import Classifier, build_classifier
from covid_robustness.attacks.margin import MarginLoss
from covid_robustness.data.classes import COVID, NORMAL
from covid_robustness.data.datamodule import CXRDataModule
from covid_robustness.data.synthetic import synthetic_dataset
from covid_robustness.defenses.adversarial_training import METHODS, adversarial_batch, fgsm_rs, pgd, validate_training
from covid_robustness.defenses.transforms import BPDA, EVALUATIONS, EOTClassifier, build_classifiers, build_defense
from covid_robustness.errors import ConfigError
from covid_robustness.evaluation.evaluate import worst_case
from covid_robustness.models.module import CXRClassifier

from .conftest import CONF, make_cfg, quiet_trainer
from .test_fast_attacks import SIZE, TinyNet


@pytest.fixture(scope="module")
def data():
    images, labels = synthetic_dataset(256, (NORMAL, COVID), SIZE, seed=5)
    return images[:, None].astype(np.float32) / 255, labels


def _train(x, y, adversarial=None, steps=150, seed=0) -> nn.Module:
    torch.manual_seed(seed)
    net = TinyNet()
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(steps):
        xb = xt if adversarial is None else adversarial(net, xt, yt)
        loss = nn.functional.cross_entropy(net(xb), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


@pytest.fixture(scope="module")
def trained(data):
    x, y = data
    return _train(x[:128], y[:128])


def _accuracy(clf, x, y) -> float:
    return float((clf.predict(x).argmax(1) == y).mean())


def test_training_pgd_takes_the_same_steps_as_art(data, trained):
    x, y = data[0][128:160], data[1][128:160]
    eps, step = 8 / 255, 2 / 255
    ours = pgd(trained, torch.from_numpy(x), torch.from_numpy(y), eps, step, iterations=5, random_start=False).numpy()
    art = ProjectedGradientDescent(
        build_classifier(trained, SIZE, 2),
        norm=np.inf,
        eps=eps,
        eps_step=step,
        max_iter=5,
        num_random_init=0,
        verbose=False,
    ).generate(x, y)
    assert np.abs(ours - x).max() <= eps + 1e-6 and np.abs(ours - x).max() > eps / 2
    assert np.abs(ours - art).max() < 1e-5


def test_fgsm_rs_starts_at_random_stays_in_the_ball_and_raises_the_loss(data, trained):
    x, y = torch.from_numpy(data[0][128:192]), torch.from_numpy(data[1][128:192])
    eps = 8 / 255
    torch.manual_seed(0)
    a = fgsm_rs(trained, x, y, eps)
    b = fgsm_rs(trained, x, y, eps)
    assert not torch.equal(a, b)  # the random start
    for x_adv in (a, b):
        assert (x_adv - x).abs().max() <= eps + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    with torch.no_grad():
        assert nn.functional.cross_entropy(trained(a), y) > nn.functional.cross_entropy(trained(x), y)


def test_adversarial_training_runs_batchnorm_in_train_mode(tmp_path):
    """Every forward pass of a training step (3 attack steps + the update) normalises with batch statistics."""
    dm = CXRDataModule(n_images=64, image_size=32, batch_size=16, seed=0)
    dm.setup()
    adversarial = {"method": "pgd", "eps": 8 / 255, "step": None, "iterations": 3, "random_start": True}
    module = CXRClassifier("resnet18", 2, dm.positive_class, *dm.pixel_stats(), adversarial=adversarial)
    bn = next(m for m in module.modules() if isinstance(m, nn.BatchNorm2d))
    modes = []
    bn.register_forward_pre_hook(lambda m, _: modes.append((m.training, torch.is_grad_enabled())))
    before = bn.running_mean.clone()
    quiet_trainer(max_steps=2, limit_val_batches=0).fit(module, datamodule=dm)
    assert len(modes) == 2 * (3 + 1)
    assert all(training for training, _ in modes)
    assert not torch.equal(before, bn.running_mean)


def test_pgd_training_buys_robustness(data):
    """Same network, data and steps: PGD training leaves far more images correct under PGD, at some clean cost."""
    x, y = data
    eps = 4 / 255
    plain = _train(x[:128], y[:128])
    robust = _train(x[:128], y[:128], adversarial=lambda net, xb, yb: pgd(net, xb, yb, eps, iterations=3))
    results = {}
    for name, net in (("plain", plain), ("robust", robust)):
        clf = build_classifier(net, SIZE, 2)
        x_adv = build_attack({"name": "pgd", "eps": eps, "max_iter": 10}, clf).generate(x[128:], y[128:])
        results[name] = (_accuracy(clf, x[128:], y[128:]), _accuracy(clf, x_adv, y[128:]))
    # Above 0.6 clean: not the constant classifier, which would be "robust" at 0.5 on these balanced images.
    assert results["plain"][0] > 0.8 and results["robust"][0] > 0.6, results
    assert results["robust"][1] > results["plain"][1] + 0.25, results


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF / "defense").glob("*.yaml")))
def test_every_defense_config_builds(name):
    defense = build_defense(OmegaConf.to_container(make_cfg(f"defense={name}").defense, resolve=True))
    assert defense.name == name  # the name a run records is the config's
    if defense.preprocessor is None:
        assert defense.evaluations == ["whitebox"]
    else:
        assert not defense.preprocessor.apply_fit and defense.preprocessor.apply_predict
        assert ("bpda_eot" in defense.evaluations) == defense.random


def _one_hot(y: np.ndarray) -> np.ndarray:
    """Labels as ART's attacks pass them to loss_gradient (integer labels fail there for two classes)."""
    return np.eye(2, dtype=np.float32)[y]


def test_bpda_passes_the_gradient_at_the_transformed_input_through_unchanged(data, trained):
    x, y = data[0][:16], _one_hot(data[1][:16])
    jpeg = JpegCompression(clip_values=(0.0, 1.0), quality=30, channels_first=True, apply_fit=False, apply_predict=True)
    bare = build_classifier(trained, SIZE, 2)
    bpda = build_classifier(trained, SIZE, 2, preprocessing_defences=[BPDA(jpeg)])
    compressed = jpeg(x)[0]
    assert np.abs(compressed - x).max() > 0.01  # the transformation does something
    np.testing.assert_allclose(bpda.loss_gradient(x, y), bare.loss_gradient(compressed, y), atol=1e-7)
    np.testing.assert_array_equal(bpda.predict(x), bare.predict(compressed))


def test_eot_averages_the_gradient_over_draws_of_the_transformation(data, trained):
    x, y = data[0][:8], _one_hot(data[1][:8])
    noise = BPDA(
        GaussianAugmentation(sigma=0.1, augmentation=False, clip_values=(0.0, 1.0), apply_fit=False, apply_predict=True)
    )
    single = build_classifier(trained, SIZE, 2, preprocessing_defences=[noise])
    eot = build_classifier(trained, SIZE, 2, preprocessing_defences=[noise], cls=EOTClassifier, samples=4)
    np.random.seed(1)
    draws = [single.loss_gradient(x, y) for _ in range(4)]
    np.random.seed(1)
    averaged = eot.loss_gradient(x, y)
    np.testing.assert_allclose(averaged, np.mean(draws, axis=0), rtol=1e-5, atol=1e-8)
    assert not np.allclose(draws[0], draws[1])  # each draw is a different transformation


@pytest.mark.parametrize(
    "change, message",
    [
        ({"preprocessor": {"apply_fit": True}}, "applies when the model predicts"),
        ({"evaluations": ["whitebox"]}, "not whitebox"),
        ({"evaluations": ["oblivious", "bpda", "magic"]}, "choose from"),
    ],
)
def test_bad_defense_configs_are_refused(change, message):
    cfg = OmegaConf.merge(make_cfg("defense=jpeg").defense, change)
    with pytest.raises(ConfigError, match=message):
        build_defense(OmegaConf.to_container(cfg, resolve=True))


def test_training_methods_are_registered_with_the_keys_they_take():
    assert METHODS.names() == ["pgd", "fgsm_rs", "gaussian"] and METHODS.get("fgsm_rs").params == ("eps", "step")
    with pytest.raises(
        ConfigError, match=r"method='trades' is not known; choose one of \['pgd', 'fgsm_rs', 'gaussian'\]"
    ):
        validate_training({"method": "trades", "eps": 0.1})
    with pytest.raises(ConfigError, match=r"fgsm_rs does not take \['iterations'\]"):
        validate_training({"method": "fgsm_rs", "eps": 0.1, "iterations": 3})
    with pytest.raises(ConfigError, match="iterations=None must be a positive number"):
        validate_training({"method": "pgd", "eps": 0.1})
    with pytest.raises(ConfigError, match="sigma=0 must be a positive noise level"):
        validate_training({"method": "gaussian", "sigma": 0})
    with pytest.raises(ConfigError, match=r"gaussian does not take \['eps'\]"):
        validate_training({"method": "gaussian", "sigma": 0.25, "eps": 0.1})
    torch.manual_seed(0)
    x, y = torch.rand(4, 1, SIZE, SIZE), torch.tensor([0, 1, 0, 1])
    x_adv = adversarial_batch(TinyNet(), x, y, {"method": "pgd", "eps": 0.05, "iterations": 2})
    assert (x_adv - x).abs().max() <= 0.05 + 1e-6


def test_each_evaluation_crafts_on_its_registered_classifier():
    assert EVALUATIONS.names() == ["whitebox", "oblivious", "bpda", "bpda_eot"]
    net = TinyNet().eval()
    defense = build_defense(OmegaConf.to_container(make_cfg("defense=jpeg").defense, resolve=True))
    defense.evaluations, defense.eot_samples = ["oblivious", "bpda", "bpda_eot"], 3
    defended, crafting = build_classifiers(net, defense, SIZE, 2)
    assert list(crafting) == defense.evaluations
    assert [p.preprocessor for p in defended.preprocessing_defences] == [defense.preprocessor]  # cast to float32
    assert crafting["oblivious"].preprocessing_defences is None
    assert isinstance(crafting["bpda"].preprocessing_defences[0], BPDA) and type(crafting["bpda"]) is Classifier
    assert isinstance(crafting["bpda_eot"], EOTClassifier) and crafting["bpda_eot"].samples == 3
    bare, crafting = build_classifiers(net, build_defense({"name": "none"}), SIZE, 2)
    assert crafting == {"whitebox": bare} and bare.preprocessing_defences is None


def test_the_worst_case_keeps_per_image_the_first_example_that_fools():
    y = np.array([0, 1, 1, 0])
    a = (np.full((4, 1), 1.0), np.array([0, 0, 1, 0]))  # fools image 1
    b = (np.full((4, 1), 2.0), np.array([1, 1, 1, 0]))  # fools images 0 and 1
    x_adv, pred = worst_case(y, [a, b])
    np.testing.assert_array_equal(pred, [1, 0, 1, 0])
    np.testing.assert_array_equal(x_adv[:, 0], [2.0, 1.0, 2.0, 2.0])


def test_margin_loss_is_positive_exactly_when_misclassified():
    logits = torch.tensor([[2.0, -1.0], [0.5, 1.5], [0.0, 0.0]])
    y = torch.tensor([0, 0, 1])
    per_image = MarginLoss(reduction="none")(logits, y)
    torch.testing.assert_close(per_image, torch.tensor([-3.0, 1.0, 0.0]))
    one_hot = nn.functional.one_hot(y, 2).float()  # what ART passes to a loss it does not know
    torch.testing.assert_close(MarginLoss()(logits, one_hot), per_image.mean())


def test_apgd_and_autoattack_binary_work_on_two_classes(data, trained):
    x, y = data[0][128:192], data[1][128:192]
    clf = build_classifier(trained, SIZE, 2)
    eps = 4 / 255
    with pytest.raises(IndexError, match="index -3"):  # ART's default list: its DLR loss needs a third class
        AutoAttack(clf, eps=eps, batch_size=64).generate(x[:4], y[:4])
    accuracy = {}
    for name, extra in (
        ("fgsm", {}),
        ("apgd", {"max_iter": 20}),
        ("autoattack_binary", {"max_iter": 20, "square_max_iter": 50}),
    ):
        np.random.seed(0)
        x_adv = build_attack({"name": name, "eps": eps, **extra}, clf).generate(x, y)
        assert np.abs(x_adv - x).max() <= eps + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
        accuracy[name] = _accuracy(clf, x_adv, y)
    clean = _accuracy(clf, x, y)
    slack = 1 / len(y)
    assert accuracy["apgd"] <= accuracy["fgsm"] + slack < clean, (clean, accuracy)
    assert accuracy["autoattack_binary"] <= accuracy["apgd"] + slack, accuracy


class _Bump(nn.Module):
    """One pixel; class 1 (wrong for label 0) only within 0.025 of 0.59. From 0.5 with eps 0.1, APGD's first
    step lands on 0.6 (fooled) and its momentum step falls back below 0.5 (not fooled)."""

    def forward(self, x):
        margin = 1 - 40 * (x.flatten(1)[:, 0] - 0.59).abs()
        return torch.stack([torch.zeros_like(margin), margin], 1)


def test_apgd_counts_an_image_fooled_at_any_iterate():
    clf = build_classifier(_Bump(), 1, 2)
    x, y = np.full((16, 1, 1, 1), 0.5, np.float32), np.zeros(16, int)
    cfg = {"eps": 0.1, "max_iter": 2}
    np.random.seed(0)
    art_fooled = (
        clf.predict(
            AutoProjectedGradientDescent(
                clf, eps=0.1, eps_step=0.2, max_iter=2, nb_random_init=1, verbose=False
            ).generate(x, y)
        ).argmax(1)
        != y
    ).sum()
    assert art_fooled < 8  # only images whose random start already fooled the model
    for name, extra in (("apgd", {}), ("autoattack_binary", {"square_max_iter": 0})):
        np.random.seed(0)
        x_adv = build_attack({"name": name, **cfg, **extra}, clf).generate(x, y)
        assert (clf.predict(x_adv).argmax(1) != y).all(), name
        assert np.abs(x_adv - x).max() <= 0.1 + 1e-6


class _Recording(PyTorchClassifier):
    points: list = []

    def loss_gradient(self, x, y, **kwargs):
        self.points.append(x.copy())
        return super().loss_gradient(x, y, **kwargs)


@pytest.mark.parametrize("norm, eps", [(np.inf, 2 / 255), (2, 0.1)])
def test_apgd_takes_arts_steps_and_fools_at_least_as_many(data, trained, norm, eps):
    x, y = data[0][128:192], data[1][128:192]
    clf = build_classifier(trained, SIZE, 2, cls=_Recording)
    kw = dict(norm=norm, eps=eps, eps_step=2 * eps, max_iter=50, nb_random_init=1, batch_size=64, verbose=False)
    fooled = {}
    for cls in (AutoProjectedGradientDescent, APGD):
        np.random.seed(0)
        x_adv = cls(clf, **kw).generate(x, y)
        distance = (
            np.abs(x_adv - x).max() if norm == np.inf else np.linalg.norm((x_adv - x).reshape(len(x), -1), axis=1).max()
        )
        assert distance <= eps * (1 + 1e-6) + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
        fooled[cls] = clf.predict(x_adv).argmax(1) != y
    assert 0 < fooled[AutoProjectedGradientDescent].sum() < len(y)
    assert (fooled[APGD] | ~fooled[AutoProjectedGradientDescent]).all()
    # On images no iterate fools, the same random start gives the same iterates, step-size halvings included.
    keep = ~fooled[APGD] & (clf.predict(x).argmax(1) == y)
    points = {}
    for cls in (AutoProjectedGradientDescent, APGD):
        clf.points = []
        np.random.seed(1)
        cls(clf, **kw).generate(x[keep], y[keep])
        points[cls] = np.stack(clf.points)
    assert points[APGD].shape == (50, keep.sum(), 1, SIZE, SIZE)
    np.testing.assert_array_equal(points[APGD], points[AutoProjectedGradientDescent])


def test_a_preprocessor_that_returns_float64_is_evaluated_in_float32(data, trained):
    """ART's FeatureSqueezing returns float64 images: the defended classifier and BPDA give the model float32."""
    from covid_robustness.evaluation.evaluate import evaluate
    from covid_robustness.evaluation.operating_point import validation_thresholds
    from covid_robustness.evaluation.options import EvaluationOptions
    from covid_robustness.models.module import Normalized

    squeeze = {"_target_": "art.defences.preprocessor.FeatureSqueezing", "clip_values": [0.0, 1.0], "bit_depth": 3}
    squeeze |= {"apply_fit": False, "apply_predict": True}
    defense = build_defense(
        {"name": "feature_squeezing", "preprocessor": squeeze, "evaluations": ["oblivious", "bpda"]}
    )
    assert defense.preprocessor(data[0][:2])[0].dtype == np.float64  # what ART gives
    net = Normalized(trained, 0.0, 1.0)
    test = torch.utils.data.TensorDataset(torch.tensor(data[0][:32]), torch.tensor(data[1][:32]))
    assert set(validation_thresholds(net, test, 2, 1, defense)) == {"sens95", "youden"}
    pgd = {"name": "pgd", "impl": "fast", "eps": 4 / 255, "max_iter": 3, "early_stop": True}
    metrics = evaluate(net, test, EvaluationOptions(pgd, 2, 1, defense=defense, progress=False)).metrics
    assert metrics["adversarial_accuracy"] <= metrics["clean_accuracy"]
    assert {"adversarial_accuracy_oblivious", "adversarial_accuracy_bpda"} <= set(metrics)


# Every preprocessor class ART ships, as a defense config would name it: those that transform a batch of
# grey images at test time with their settings here, the others with why they cannot be a defense here.
IMAGE_PREPROCESSORS = {
    "FeatureSqueezing": {"clip_values": [0.0, 1.0], "bit_depth": 4},
    "GaussianAugmentation": {"sigma": 0.05, "augmentation": False, "clip_values": [0.0, 1.0]},
    "JpegCompression": {"clip_values": [0.0, 1.0], "quality": 50, "channels_first": True},
    "SpatialSmoothing": {"window_size": 3, "channels_first": True, "clip_values": [0.0, 1.0]},
    "TotalVarMin": {"prob": 0.3, "max_iter": 2, "clip_values": [0.0, 1.0]},
}
NOT_A_DEFENSE_HERE = {
    **dict.fromkeys(
        ["CutMix", "CutMixPyTorch", "Cutout", "CutoutPyTorch", "Mixup", "MixupPyTorch", "LabelSmoothing"],
        "a training augmentation of images and labels (apply_fit only): train with defense.training instead",
    ),
    **dict.fromkeys(["CutMixTensorFlowV2", "CutoutTensorFlowV2", "MixupTensorFlowV2"], "TensorFlow only"),
    "SpatialSmoothingTensorFlowV2": "TensorFlow only",
    **dict.fromkeys(["Mp3Compression", "Mp3CompressionPyTorch", "Resample"], "audio"),
    **dict.fromkeys(["VideoCompression", "VideoCompressionPyTorch"], "video"),
    "ThermometerEncoding": "changes the channel count: the models take one grey channel",
    "PixelDefend": "needs a trained PixelCNN of the images",
    "SpatialSmoothingPyTorch": "needs kornia, which is not a dependency; SpatialSmoothing is the same filter",
}


def test_every_art_preprocessor_is_a_defense_or_named_as_not_one():
    import inspect

    import art.defences.preprocessor as preprocessors

    shipped = {
        n for n, c in vars(preprocessors).items() if inspect.isclass(c) and issubclass(c, preprocessors.Preprocessor)
    } - {"Preprocessor"}
    assert shipped == set(IMAGE_PREPROCESSORS) | set(NOT_A_DEFENSE_HERE)  # a new class must be placed


@pytest.mark.parametrize("name", sorted(IMAGE_PREPROCESSORS))
def test_each_image_preprocessor_runs_a_job_evaluation_from_its_config(name, data, trained):
    from covid_robustness.evaluation.evaluate import evaluate
    from covid_robustness.evaluation.options import EvaluationOptions
    from covid_robustness.models.module import Normalized

    random = name == "GaussianAugmentation"
    preprocessor = {"_target_": f"art.defences.preprocessor.{name}", **IMAGE_PREPROCESSORS[name]}
    preprocessor |= {"apply_fit": False, "apply_predict": True}
    cfg = {"name": name, "preprocessor": preprocessor, "random": random}
    cfg |= {"evaluations": ["oblivious", "bpda_eot"], "eot_samples": 2} if random else {"evaluations": ["bpda"]}
    defense = build_defense(cfg)
    test = torch.utils.data.TensorDataset(torch.tensor(data[0][:8]), torch.tensor(data[1][:8]))
    fgsm = {"name": "fgsm", "impl": "fast", "eps": 4 / 255}
    metrics = evaluate(
        Normalized(trained, 0.0, 1.0), test, EvaluationOptions(fgsm, 2, 1, defense=defense, progress=False)
    )
    assert 0 <= metrics.metrics["adversarial_accuracy"] <= metrics.metrics["clean_accuracy"] <= 1
