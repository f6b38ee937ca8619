"""Every evasion attack ART ships is an attack from a config (`_target_: art.attacks.evasion.<Class>`) or is
named with why it is not one here; each that applies runs an evaluation from its config. What is tested is
the way through the job's builder and the evaluation, not the attacks' strength: ART's defaults stand
except the iteration counts, cut below so that the 22 attacks take seconds on 4 tiny images."""

import inspect

import numpy as np
import pytest
import torch

from covid_robustness.errors import ConfigError
from covid_robustness.evaluation.evaluate import evaluate
from covid_robustness.evaluation.options import EvaluationOptions
from covid_robustness.models.module import Normalized

from .test_defenses import _train, data  # noqa: F401  (the module fixture)

# Each attack that applies, with the settings that shorten it (ART's defaults otherwise).
ATTACKS = {
    "AutoAttack": {},
    "AutoConjugateGradient": {"max_iter": 5, "nb_random_init": 1},
    "AutoProjectedGradientDescent": {"max_iter": 5, "nb_random_init": 1},
    "BasicIterativeMethod": {"max_iter": 5},
    "BoundaryAttack": {"max_iter": 5, "num_trial": 5, "sample_size": 5},
    "CarliniL0Method": {"max_iter": 2, "binary_search_steps": 2},
    "CarliniL2Method": {"max_iter": 2, "binary_search_steps": 2},
    "CarliniLInfMethod": {"max_iter": 2, "initial_const": 1.0, "largest_const": 4.0},
    "DeepFool": {"max_iter": 5},
    "ElasticNet": {"max_iter": 2, "binary_search_steps": 2},
    "FastGradientMethod": {},
    "HopSkipJump": {"max_iter": 2, "max_eval": 100, "init_eval": 10},
    "MomentumIterativeMethod": {"max_iter": 5},
    "NewtonFool": {"max_iter": 5},
    "ProjectedGradientDescent": {"max_iter": 5},
    "ProjectedGradientDescentNumpy": {"max_iter": 5},
    "ProjectedGradientDescentPyTorch": {"max_iter": 5},
    "RescalingAutoConjugateGradient": {"max_iter": 5, "nb_random_init": 1},
    "SpatialTransformation": {"max_translation": 10.0, "max_rotation": 10.0},  # no transform by default
    "SquareAttack": {"max_iter": 20, "nb_restarts": 1},
    "UniversalPerturbation": {"max_iter": 1, "attacker_params": {"max_iter": 5}},
    "ZooAttack": {"max_iter": 2, "binary_search_steps": 1, "nb_parallel": 8},
}
NOT_AN_ATTACK_HERE = {
    **dict.fromkeys(
        ["AdversarialPatch", "AdversarialPatchNumpy", "AdversarialPatchPyTorch", "AdversarialTexturePyTorch"],
        "makes a patch to print and place, not perturbed test images",
    ),
    **dict.fromkeys(
        ["AdversarialPatchTensorFlowV2", "FeatureAdversariesTensorFlowV2", "ProjectedGradientDescentTensorFlowV2"],
        "TensorFlow only",
    ),
    "MalwareGDTensorFlow": "malware binaries, TensorFlow only",
    **dict.fromkeys(["DPatch", "RobustDPatch", "OverloadPyTorch", "SNAL"], "object detectors"),
    **dict.fromkeys(["CarliniWagnerASR", "ImperceptibleASR", "ImperceptibleASRPyTorch"], "speech recognition"),
    **dict.fromkeys(["FrameSaliencyAttack", "OverTheAirFlickeringPyTorch"], "video"),
    **dict.fromkeys(["FeatureAdversariesNumpy", "FeatureAdversariesPyTorch"], "needs guide images, not labels"),
    **dict.fromkeys(["GRAPHITEBlackbox", "GRAPHITEWhiteboxPyTorch"], "a physical patch with a mask and target image"),
    **dict.fromkeys(
        ["PixelAttack", "SignOPTAttack", "ThresholdAttack"], "ART refuses a two-class classifier with them"
    ),
    **dict.fromkeys(["SimBA", "VirtualAdversarialMethod"], "needs a model that outputs probabilities, not logits"),
    "CompositeAdversarialAttackPyTorch": "needs kornia (not a dependency) and RGB images",
    "DecisionTreeAttack": "scikit-learn decision trees",
    "GeoDA": "ART's code calls np.mat, which NumPy 2 removed",
    "HighConfidenceLowUncertainty": "Gaussian-process classifiers",
    "LaserAttack": "needs a laser-beam image generator",
    "LowProFool": "tabular data: needs feature importances",
    "ShadowAttack": "attacks one image per call; the evaluation attacks batches",
    "Wasserstein": "overflows at its defaults on these images (ART's _conjugate_sinkhorn)",
    # Refused from a config (attacks/build.py): they read the true labels as the classes to reach.
    "SaliencyMapMethod": "targeted only: reads its labels as the classes to reach",
    "TargetedUniversalPerturbation": "targeted only: reads its labels as the classes to reach",
}


def test_every_art_evasion_attack_runs_from_a_config_or_is_named_as_not_one():
    import art.attacks.evasion as evasion
    from art.attacks.attack import EvasionAttack

    shipped = {n for n, c in vars(evasion).items() if inspect.isclass(c) and issubclass(c, EvasionAttack)}
    assert shipped == set(ATTACKS) | set(NOT_AN_ATTACK_HERE)  # a new class must be placed
    assert not set(ATTACKS) & set(NOT_AN_ATTACK_HERE)


@pytest.fixture(scope="module")
def model(data):  # noqa: F811
    return Normalized(_train(data[0][:128], data[1][:128]), 0.0, 1.0)


def _config(name: str) -> dict:
    return {"name": name.lower(), "_target_": f"art.attacks.evasion.{name}", "eps": None, **ATTACKS.get(name, {})}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_each_art_evasion_attack_runs_an_evaluation_from_its_config(name, data, model):  # noqa: F811
    """As a yaml with `_target_` would: built by the job's builder, run by the evaluation with its checks
    (images in [0, 1], the model in eval mode), the clean image first in every worst case."""
    torch.manual_seed(0)
    test = torch.utils.data.TensorDataset(torch.tensor(data[0][:4]), torch.tensor(data[1][:4]))
    metrics = evaluate(model, test, EvaluationOptions(_config(name), 2, 1, progress=False)).metrics
    assert 0 <= metrics["adversarial_accuracy"] <= metrics["clean_accuracy"] == 1
    assert metrics["attack_forward_passes"] > 0


@pytest.mark.parametrize("name", ["SaliencyMapMethod", "TargetedUniversalPerturbation"])
def test_an_attack_that_would_read_the_true_labels_as_targets_is_refused(name, model):
    from covid_robustness.attacks.build import build_attack
    from covid_robustness.attacks.classifier import build_classifier

    with pytest.raises(ConfigError, match="reading the true labels as the classes to reach"):
        build_attack(_config(name), build_classifier(model, 32, 2))


def test_an_attack_targeted_by_default_runs_untargeted_and_changes_images(data, model):  # noqa: F811
    """ART's BoundaryAttack is targeted by default: handed the true labels as targets, it left every image as
    it was; built from a config it runs untargeted, and queries the model in float64 (now cast)."""
    from covid_robustness.attacks.build import build_attack
    from covid_robustness.attacks.classifier import build_classifier

    attack = build_attack(_config("BoundaryAttack"), build_classifier(model, 32, 2))
    assert attack.targeted is False
    x = data[0][:2]
    assert np.abs(attack.generate(x, data[1][:2]) - x).max() > 0
