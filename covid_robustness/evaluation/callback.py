"""The evaluation callback: after the test loop, attack the test split and measure what the attack did."""

import time
from dataclasses import dataclass, field

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from ..attacks.factory import build_attack, build_classifier
from .checks import EvalModeGuard, check_adversarial_batch
from .passes import PassCounter


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


def attack_metrics(t: _Totals, positive: int) -> dict[str, float]:
    y, clean, adv = (np.concatenate(a) for a in (t.y, t.clean, t.adv))
    linf, l2 = np.concatenate(t.linf), np.concatenate(t.l2)
    correct = clean == y
    covid = y == positive
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
    }


class AdversarialEvaluation(pl.Callback):
    def __init__(self, attack: dict, image_size: int, num_classes: int, positive_class: int,
                 max_images: int | None = None, batch_size: int = 64, n_examples: int = 6):
        self.attack_cfg = dict(attack)
        self.image_size, self.num_classes, self.positive = image_size, num_classes, positive_class
        self.max_images, self.batch_size, self.n_examples = max_images, batch_size, n_examples
        self.metrics: dict[str, float] = {}
        self.examples: Examples | None = None

    def _loader(self, trainer) -> DataLoader:
        dataset = trainer.test_dataloaders.dataset
        if self.max_images is not None and self.max_images < len(dataset):
            dataset = Subset(dataset, range(self.max_images))
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=False)

    @torch.no_grad()
    def _predict(self, net, x: np.ndarray, device) -> np.ndarray:
        return net(torch.from_numpy(x).to(device)).argmax(1).cpu().numpy()

    def on_test_end(self, trainer, pl_module):
        # Lightning runs test hooks under inference mode; attacks need gradients, but only with respect
        # to the input: frozen weights spare every backward pass their weight gradients.
        weights = [p for p in pl_module.parameters() if p.requires_grad]
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

    def _evaluate(self, trainer, pl_module):
        net = pl_module.net.eval()
        device = pl_module.device
        classifier = build_classifier(net, self.image_size, self.num_classes)
        name, eps = self.attack_cfg["name"], self.attack_cfg.get("eps")
        totals = _Totals()
        loader = self._loader(trainer)
        for x, y in tqdm(loader, desc=f"attack {name}", unit="batch", disable=not trainer.progress_bar_callback):
            x, y = x.numpy(), y.numpy()
            # A fresh attack per batch: some ART attacks keep state from one generate() call to the next.
            attack = build_attack(self.attack_cfg, classifier)
            with EvalModeGuard(net, name), PassCounter(net) as passes:
                start = time.perf_counter()
                x_adv = attack.generate(x, y).astype(np.float32)
                totals.seconds += time.perf_counter() - start
            totals.forward += passes.forward
            totals.backward += passes.backward
            check_adversarial_batch(x, x_adv, eps, name)
            delta = (x_adv - x).reshape(len(x), -1)
            totals.y.append(y)
            totals.clean.append(self._predict(net, x, device))
            totals.adv.append(self._predict(net, x_adv, device))
            totals.linf.append(np.abs(delta).max(1))
            totals.l2.append(np.linalg.norm(delta, axis=1))
            if self.examples is None:
                k = self.n_examples
                self.examples = Examples(x[:k], x_adv[:k], y[:k], totals.clean[0][:k], totals.adv[0][:k])
        self.metrics = attack_metrics(totals, self.positive)
