"""The evaluation callback: after the test loop, attack the test split and measure what the attack did.

The model is evaluated as deployed, with its input-transformation defense if it has one; each evaluation
(see defenses/transforms.py) crafts its examples its own way, on this model or, for a transfer attack,
on a source model. Per image the worst case counts, over the clean image and every evaluation's
example: an adversary who cannot do better than the clean image submits the clean image, so an image
the model gets wrong unattacked is never counted as robust.
"""

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from ..attacks.factory import build_attack, build_classifier, in_pixels
from ..defenses.transforms import Defense, build_classifiers, predict
from .checks import EvalModeGuard, check_adversarial_batch, check_not_above_clean
from .passes import PassCounter

log = logging.getLogger(__name__)


@dataclass
class Examples:
    """A few test images as attacked, for the example grid."""
    clean: np.ndarray
    adversarial: np.ndarray
    labels: np.ndarray
    pred_clean: np.ndarray
    pred_adv: np.ndarray


@dataclass
class _Totals:
    y: list = field(default_factory=list)
    clean: list = field(default_factory=list)
    adv: list = field(default_factory=list)
    linf: list = field(default_factory=list)
    l2: list = field(default_factory=list)
    seconds: float = 0.0
    forward: int = 0
    backward: int = 0
    by_evaluation: dict = field(default_factory=dict)  # evaluation: predictions on its examples, per batch


def attack_metrics(t: _Totals, positive: int) -> dict[str, float]:
    y, clean, adv = (np.concatenate(a) for a in (t.y, t.clean, t.adv))
    linf, l2 = np.concatenate(t.linf), np.concatenate(t.l2)
    correct = clean == y
    covid = y == positive
    check_not_above_clean(correct, adv == y)
    return {
        "clean_accuracy": float(correct.mean()),
        "adversarial_accuracy": float((adv == y).mean()),
        # Among images the model got right, the share the attack turned wrong.
        "attack_success_rate": float((adv[correct] != y[correct]).mean()) if correct.any() else 0.0,
        "covid_sensitivity_clean": float((clean[covid] == positive).mean()) if covid.any() else float("nan"),
        "covid_sensitivity_adversarial": float((adv[covid] == positive).mean()) if covid.any() else float("nan"),
        "linf_mean": float(linf.mean()), "linf_max": float(linf.max()),
        "l2_mean": float(l2.mean()), "l2_max": float(l2.max()),
        "attack_seconds": t.seconds,
        "attack_images": float(len(y)),
        # Passes through the model per attacked image: the attack's cost independent of hardware.
        "attack_forward_passes": t.forward / len(y),
        "attack_backward_passes": t.backward / len(y),
        **{f"adversarial_accuracy_{e}": float((np.concatenate(p) == y).mean()) for e, p in t.by_evaluation.items()},
    }


def worst_case(y: np.ndarray, candidates: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Per image, the first (examples, predictions) pair that fools the model, else the last pair's.

    Callers put the clean images and their predictions first: candidate zero of every worst case.
    """
    x_adv, pred = (a.copy() for a in candidates[-1])
    fooled = np.zeros(len(y), dtype=bool)
    for xs, ps in candidates:
        take = (ps != y) & ~fooled
        x_adv[take], pred[take] = xs[take], ps[take]
        fooled |= take
    return x_adv, pred


def majority_accuracy(y: np.ndarray) -> float:
    """The accuracy of always answering the most frequent class of y."""
    return float(np.bincount(y).max() / len(y))


def untrained_reason(y: np.ndarray, pred: np.ndarray, y_test: np.ndarray, test_accuracy: float | None) -> str:
    """Why a model is no better than always answering the majority class; "" when it is better.

    Such a model predicts (almost) one class: an attack cannot turn its answers wrong, so its adversarial
    accuracy would read as robustness.
    """
    reasons = []
    if len(np.unique(pred)) == 1:
        reasons.append(f"it predicts one class ({int(pred[0])}) for all {len(y)} attacked images")
    if (acc := float((pred == y).mean())) <= majority_accuracy(y):
        reasons.append(f"clean accuracy {acc:.3f} on the attacked images <= {majority_accuracy(y):.3f} of the majority class")
    if test_accuracy is not None and test_accuracy <= majority_accuracy(y_test):
        reasons.append(f"test accuracy {test_accuracy:.3f} <= {majority_accuracy(y_test):.3f} of the majority class")
    return "; ".join(reasons)


class AdversarialEvaluation(pl.Callback):
    def __init__(self, attack: dict, image_size: int, num_classes: int, positive_class: int,
                 max_images: int | None = None, batch_size: int = 64, n_examples: int = 6,
                 defense: Defense | None = None, source: torch.nn.Module | None = None, seed: int = 0):
        self.attack_cfg = dict(attack)
        self.defense = defense or Defense()
        self.source = source  # the trained network a transfer attack crafts its examples on
        self.image_size, self.num_classes, self.positive = image_size, num_classes, positive_class
        self.max_images, self.batch_size, self.n_examples = max_images, batch_size, n_examples
        self.seed = seed
        self.metrics: dict[str, float] = {}
        self.tags: dict[str, str] = {}
        self.examples: Examples | None = None

    def _attacked_set(self, trainer):
        dataset = trainer.test_dataloaders.dataset
        if self.max_images is not None and self.max_images < len(dataset):
            dataset = Subset(dataset, range(self.max_images))
        return dataset

    def _loader(self, trainer) -> DataLoader:
        dataset = self._attacked_set(trainer)
        # An attack whose rule spans the whole set (ART's spatial transformation: one transform for all
        # images) sees every attacked image in one call, so its result does not depend on eval.batch_size.
        whole = self.attack_cfg.get("whole_set", False)
        return DataLoader(dataset, batch_size=len(dataset) if whole else self.batch_size, shuffle=False)

    def _predict(self, classifier, x: np.ndarray) -> np.ndarray:
        return predict(classifier, x, self.defense, self.seed)

    def on_test_end(self, trainer, pl_module):
        # Lightning runs test hooks under inference mode; attacks need gradients, but only with respect
        # to the input: frozen weights spare every backward pass their weight gradients.
        weights = [p for p in pl_module.parameters() if p.requires_grad]
        if self.source is not None:
            weights += [p for p in self.source.parameters() if p.requires_grad]
        # The same random state at the attack whether this job trained the model or loaded it
        # (random starts, Square's draws, random defenses).
        pl.seed_everything(self.seed, workers=True, verbose=False)
        try:
            for p in weights:
                p.requires_grad_(False)
            with torch.inference_mode(False), torch.enable_grad():
                self._evaluate(trainer, pl_module)
        finally:
            for p in weights:
                p.requires_grad_(True)
        if trainer.logger is not None:
            trainer.logger.log_metrics(self.metrics)

    def _classifiers(self, net):
        defended, crafting = build_classifiers(net, self.defense, self.image_size, self.num_classes)
        if self.source is not None:  # transfer: the source model's own gradients, whatever the target's defense
            crafting = {"transfer": build_classifier(self.source.eval(), self.image_size, self.num_classes)}
        return defended, crafting

    def _evaluate(self, trainer, pl_module):
        net = pl_module.net.eval()
        defended, crafting = self._classifiers(net)
        attack_cfg, budget = in_pixels(self.attack_cfg, float(net.std))
        self.metrics.update(budget)
        name, eps = attack_cfg["name"], attack_cfg.get("eps")
        totals = _Totals()
        if self.defense.preprocessor is not None:
            self.metrics.update(self._defended_test_metrics(trainer, defended))
        for x, y in tqdm(self._loader(trainer), desc=f"attack {name}", unit="batch",
                         disable=not trainer.progress_bar_callback):
            x, y = x.numpy(), y.numpy()
            pred_clean = self._predict(defended, x)
            candidates = [(x, pred_clean)]  # the adversary may always submit the clean image
            for evaluation, classifier in crafting.items():
                # A fresh attack per batch: some ART attacks keep state from one generate() call to the next.
                attack = build_attack(attack_cfg, classifier)
                attacked = classifier.model
                with EvalModeGuard(attacked, name), PassCounter(attacked) as passes:
                    start = time.perf_counter()
                    x_adv = attack.generate(x, y).astype(np.float32)
                    totals.seconds += time.perf_counter() - start
                totals.forward += passes.forward
                totals.backward += passes.backward
                check_adversarial_batch(x, x_adv, eps, name)
                pred = self._predict(defended, x_adv)
                # Each evaluation's own number is a worst case with the clean image too.
                totals.by_evaluation.setdefault(evaluation, []).append(worst_case(y, [(x, pred_clean), (x_adv, pred)])[1])
                candidates.append((x_adv, pred))
            x_adv, pred_adv = worst_case(y, candidates)
            delta = (x_adv - x).reshape(len(x), -1)
            totals.y.append(y)
            totals.clean.append(pred_clean)
            totals.adv.append(pred_adv)
            totals.linf.append(np.abs(delta).max(1))
            totals.l2.append(np.linalg.norm(delta, axis=1))
            if self.examples is None:
                k = self.n_examples
                self.examples = Examples(x[:k], x_adv[:k], y[:k], pred_clean[:k], pred_adv[:k])
        self.metrics.update(attack_metrics(totals, self.positive))
        y_all = np.concatenate(totals.y)
        accuracy = {e: float((np.concatenate(p) == y_all).mean()) for e, p in totals.by_evaluation.items()}
        # Which evaluation produced the reported number: the per-image worst case over these.
        self.tags = {"evaluation": " + ".join(crafting), "strongest_evaluation": min(accuracy, key=accuracy.get)}
        if len(crafting) == 1:  # the per-evaluation number is the reported one
            self.metrics.pop(f"adversarial_accuracy_{next(iter(crafting))}")
        self._flag_untrained(trainer, y_all, np.concatenate(totals.clean))

    def _flag_untrained(self, trainer, y: np.ndarray, pred: np.ndarray) -> None:
        y_test = trainer.test_dataloaders.dataset.tensors[1].numpy()
        test_acc = trainer.callback_metrics.get("test/acc")
        reason = untrained_reason(y, pred, y_test, None if test_acc is None else float(test_acc))
        self.metrics.update({"test_images": float(len(y_test)), "majority_class_accuracy": majority_accuracy(y),
                             "clean_predicted_classes": float(len(np.unique(pred)))})
        self.tags.update({"untrained_model": str(bool(reason)).lower(), "untrained_model_reason": reason})
        if reason:
            log.warning("the model is no better than always answering the majority class (%s): its adversarial "
                        "accuracy says nothing about robustness", reason)

    def _defended_test_metrics(self, trainer, defended) -> dict[str, float]:
        """Clean accuracy and COVID-19 sensitivity on the whole test split, through the defense."""
        ys, preds = [], []
        for x, y in trainer.test_dataloaders:
            ys.append(y.numpy())
            preds.append(self._predict(defended, x.numpy()))
        y, pred = np.concatenate(ys), np.concatenate(preds)
        covid = y == self.positive
        return {"defended_test_accuracy": float((pred == y).mean()),
                "defended_test_sensitivity": float((pred[covid] == self.positive).mean()) if covid.any() else float("nan")}
