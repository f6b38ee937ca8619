"""Input-transformation defenses: an ART preprocessor inside the classifier, and how an attacker sees it.

A defense config names any ART preprocessor with `_target_` (JPEG compression, spatial smoothing,
Gaussian noise, ...); it runs inside ART's PyTorchClassifier (`preprocessing_defences`) whenever the
defended model predicts. Such defenses are known to defeat attacks that follow the defended model's
gradient without defeating attacks (Athalye et al. 2018), so each is evaluated several ways:

- oblivious: the examples are crafted on the bare model and then shown to the defended model;
- bpda: the attacker queries the defended model; its gradient passes through the transformation
  as the identity (Backward Pass Differentiable Approximation), whatever the preprocessor itself offers;
- bpda_eot: bpda with each gradient averaged over `eot_samples` draws of a random transformation
  (Expectation over Transformation).
A job reports each evaluation's accuracy and, per image, the worst case over all of them.

A random defense answers each query with a fresh draw, so two predictions of one image may differ: a
single draw would count noise-only errors as attack successes (once per evaluation). Predictions
through it vote over `predict_samples` draws, and the draws are the same for every call (common
random numbers): an image and its unchanged copy get the same answer, clean or attacked.
"""

import logging
from dataclasses import dataclass, field

import numpy as np
import torch
from art.defences.preprocessor import Preprocessor
from art.estimators.classification import PyTorchClassifier
from hydra.utils import instantiate
from torch.utils.data import DataLoader, Dataset

from ..attacks.classifier import Classifier, build_classifier
from ..errors import ConfigError
from ..registry import Registry

# defense.evaluations: name -> (net, defense, make) -> the classifier its examples are crafted on, where
# make(model, **kwargs) builds an ART classifier of the job's image size and classes (build_classifier).
EVALUATIONS = Registry("defense evaluation", key="defense.evaluations")
# The only classes a config may name: a config is data, and must not import or build anything else.
PREPROCESSORS = "art.defences.preprocessor."

# GaussianAugmentation logs two INFO lines per call: thousands per attack.
logging.getLogger("art.defences.preprocessor.gaussian_augmentation").setLevel(logging.WARNING)


@dataclass
class Defense:
    name: str = "none"
    training: dict | None = None  # adversarial training; see adversarial_training.py
    preprocessor: Preprocessor | None = None
    random: bool = False
    evaluations: list[str] = field(default_factory=lambda: ["whitebox"])
    eot_samples: int = 1
    predict_samples: int = 1  # a random defense's predictions: the majority of this many draws


def predict(classifier: PyTorchClassifier, x: np.ndarray, defense: Defense, seed: int = 0) -> np.ndarray:
    """Predicted classes of x through the classifier; through a random defense, the majority vote of
    defense.predict_samples draws from a fixed seed (ART's random preprocessors draw from numpy's global
    generator, whose state is restored afterwards)."""
    return scores(classifier, x, defense, seed)[0]


def scores(
    classifier: PyTorchClassifier, x: np.ndarray, defense: Defense, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(predicted classes, class probabilities) of x, from one pass: the softmax of the logits (the classes
    from the logits themselves); through a random defense, the majority vote and the shares of the votes."""
    if not defense.random:
        logits = classifier.predict(x, batch_size=len(x)).astype(np.float64)
        exp = np.exp(logits - logits.max(1, keepdims=True))
        return logits.argmax(1), exp / exp.sum(1, keepdims=True)
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        votes = sum(
            np.eye(classifier.nb_classes, dtype=np.int64)[classifier.predict(x, batch_size=len(x)).argmax(1)]
            for _ in range(defense.predict_samples)
        )
    finally:
        np.random.set_state(state)
    return votes.argmax(1), votes / defense.predict_samples  # a tie goes to the lower class index


class Float32(Preprocessor):
    """A preprocessor's images in float32, as the model takes them: some of ART's numpy preprocessors return
    float64 (FeatureSqueezing does), which the model's float32 weights refuse."""

    def __init__(self, preprocessor: Preprocessor):
        super().__init__(is_fitted=True, apply_fit=False, apply_predict=True)
        self.preprocessor = preprocessor

    def __call__(self, x: np.ndarray, y=None):
        x, y = self.preprocessor(x, y)
        return x.astype(np.float32, copy=False), y

    def estimate_gradient(self, x: np.ndarray, grad: np.ndarray) -> np.ndarray:
        return self.preprocessor.estimate_gradient(x, grad)


class BPDA(Float32):
    """The wrapped preprocessor forward (in float32), the identity backward."""

    def estimate_gradient(self, x: np.ndarray, grad: np.ndarray) -> np.ndarray:
        return grad


class EOTClassifier(Classifier):
    """Gradients averaged over `samples` calls, each drawing the random preprocessing afresh."""

    estimator_params = PyTorchClassifier.estimator_params + ["samples"]

    def __init__(self, *args, samples: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        self.samples = samples

    def loss_gradient(self, x, y, **kwargs):
        return sum(super(EOTClassifier, self).loss_gradient(x, y, **kwargs) for _ in range(self.samples)) / self.samples

    def class_gradient(self, x, label=None, **kwargs):
        return (
            sum(super(EOTClassifier, self).class_gradient(x, label, **kwargs) for _ in range(self.samples))
            / self.samples
        )


def build_defense(cfg: dict) -> Defense:
    """The defense of a resolved `defense` config; ConfigError on anything that does not fit."""
    from .adversarial_training import validate_training

    name, training, target = cfg.get("name", "none"), cfg.get("training"), cfg.get("preprocessor")
    validate_training(training)
    evaluations = list(cfg.get("evaluations") or ["whitebox"])
    if unknown := [e for e in evaluations if e not in EVALUATIONS]:
        raise ConfigError(f"defense.evaluations has {unknown}; choose from {EVALUATIONS.names()}.")
    random, samples = bool(cfg.get("random", False)), int(cfg.get("eot_samples") or 1)
    votes = cfg.get("predict_samples", 1)
    if not isinstance(votes, int) or votes < 1 or (not random and votes != 1):
        raise ConfigError(
            f"defense {name}: predict_samples={votes!r} must be a positive number of draws"
            + (" (an odd one avoids ties)" if random else ", and 1 for a deterministic defense")
            + "."
        )
    if target is None:
        if evaluations != ["whitebox"]:
            raise ConfigError(
                f"defense {name} has no preprocessor, so its only evaluation is whitebox, not {evaluations}."
            )
        return Defense(name, training)
    if "whitebox" in evaluations:
        raise ConfigError(
            f"defense {name} transforms its input: evaluate it with oblivious, bpda or bpda_eot, not whitebox."
        )
    if random and "bpda_eot" not in evaluations:
        raise ConfigError(
            f"defense {name} is random: its evaluations must include bpda_eot (Expectation over Transformation)."
        )
    if "bpda_eot" in evaluations and samples < 2:
        raise ConfigError(f"defense {name}: bpda_eot needs defense.eot_samples >= 2, not {samples}.")
    if not str(target.get("_target_", "")).startswith(PREPROCESSORS):
        raise ConfigError(
            f"defense {name}: preprocessor._target_={target.get('_target_')!r} is not one of ART's "
            f"preprocessors; name a class in {PREPROCESSORS.rstrip('.')}."
        )
    try:
        preprocessor = instantiate(target, _convert_="all")
    except Exception as err:  # an unknown class or keyword, reported by Hydra in many types
        cause = err.__cause__ or err  # Hydra wraps the class's own error in lines of its own
        raise ConfigError(
            f"defense {name}: {target.get('_target_')} cannot be built: {' '.join(str(cause).split())}"
        ) from err
    if not isinstance(preprocessor, Preprocessor):
        raise ConfigError(f"defense {name}: {target.get('_target_')} is not an ART preprocessor.")
    if preprocessor.apply_fit or not preprocessor.apply_predict:
        raise ConfigError(
            f"defense {name}: a preprocessor defense applies when the model predicts, not in training; "
            "set apply_fit: false and apply_predict: true (train with defense.training instead)."
        )
    return Defense(name, training, preprocessor, random, evaluations, samples, votes)


@EVALUATIONS.register("whitebox")
def _whitebox(net, defense: Defense, make) -> PyTorchClassifier:
    """The undefended model attacked directly (a defense without a preprocessor)."""
    return make(net)


@EVALUATIONS.register("oblivious")
def _oblivious(net, defense: Defense, make) -> PyTorchClassifier:
    """Examples crafted on the bare model, then shown to the defended one."""
    return make(net)


@EVALUATIONS.register("bpda")
def _bpda(net, defense: Defense, make) -> PyTorchClassifier:
    """The defended model, its preprocessor the identity in the backward pass."""
    return make(net, preprocessing_defences=[BPDA(defense.preprocessor)])


@EVALUATIONS.register("bpda_eot")
def _bpda_eot(net, defense: Defense, make) -> PyTorchClassifier:
    """bpda with each gradient averaged over defense.eot_samples draws of the random preprocessor."""
    return make(
        net, preprocessing_defences=[BPDA(defense.preprocessor)], cls=EOTClassifier, samples=defense.eot_samples
    )


def build_classifiers(
    net, defense: Defense, image_size: int, num_classes: int
) -> tuple[PyTorchClassifier, dict[str, PyTorchClassifier]]:
    """The defended classifier that is evaluated, and the classifier each evaluation crafts its examples on."""
    bare = build_classifier(net, image_size, num_classes)

    def make(model, **kwargs):  # the undefended model is built once and shared
        return bare if model is net and not kwargs else build_classifier(model, image_size, num_classes, **kwargs)

    if defense.preprocessor is None:  # nothing between the attacker and the model
        return bare, {"whitebox": _whitebox(net, defense, make)}
    defended = make(net, preprocessing_defences=[Float32(defense.preprocessor)])
    return defended, {e: EVALUATIONS.get(e).obj(net, defense, make) for e in defense.evaluations}


def dataset_scores(
    net, dataset: Dataset, num_classes: int, defense: Defense, seed: int = 0, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, predicted classes, class probabilities) of every image of a dataset of (image, label)
    pairs, read through the model's defense as deployed (scores), batch by batch."""
    image_size = int(dataset[0][0].shape[-1])
    defended, _ = build_classifiers(net.eval(), defense, image_size, num_classes)
    ys, preds, probs = [], [], []
    with torch.no_grad():
        for x, y in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            pred, p = scores(defended, x.numpy(), defense, seed)
            ys.append(y.numpy())
            preds.append(pred)
            probs.append(p)
    return np.concatenate(ys), np.concatenate(preds), np.concatenate(probs)
