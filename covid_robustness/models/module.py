"""One LightningModule for every architecture: SGD, cross-entropy, accuracy and COVID-19 metrics.

With `adversarial` (a defense.training config) each training batch is replaced by adversarial examples
crafted against the model as it trains, in train mode: BatchNorm uses batch statistics throughout.
"""

import math
from contextlib import contextmanager

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import BinaryAUROC, BinaryRecall, BinarySpecificity, MulticlassAccuracy

from ..defenses.adversarial_training import adversarial_batch
from ..errors import ConfigError
from .registry import create

SCHEDULES = ("none", "cosine", "step")


class Normalized(nn.Module):
    """Takes pixels in [0, 1]; normalising inside keeps attack budgets and clip values in pixel space."""

    def __init__(self, net: nn.Module, mean: float, std: float):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean))
        self.register_buffer("std", torch.tensor(std))

    def forward(self, x):
        return self.net((x - self.mean) / self.std)


def covid_metrics(num_classes: int) -> MetricCollection:
    """Accuracy over all classes; sensitivity, specificity and AUROC of COVID-19 against the rest."""
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes, average="micro"),
            "sensitivity": BinaryRecall(),
            "specificity": BinarySpecificity(),
            "auroc": BinaryAUROC(),
        }
    )


def update_covid_metrics(metrics: MetricCollection, logits, y, positive: int):
    is_covid = (y == positive).long()
    p_covid = logits.softmax(1)[:, positive]
    metrics["acc"].update(logits, y)
    pred_covid = (logits.argmax(1) == positive).long()
    metrics["sensitivity"].update(pred_covid, is_covid)
    metrics["specificity"].update(pred_covid, is_covid)
    metrics["auroc"].update(p_covid, is_covid)


@contextmanager
def images_through(net: nn.Module):
    """Counts the images that pass forward through `net` inside the block (a list of one count)."""
    count = [0]
    handle = net.register_forward_pre_hook(lambda _, args: count.__setitem__(0, count[0] + len(args[0])))
    try:
        yield count
    finally:
        handle.remove()


class CXRClassifier(pl.LightningModule):
    def __init__(
        self,
        model: str,
        num_classes: int,
        positive_class: int,
        mean: float,
        std: float,
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        nesterov: bool = False,
        schedule: str = "cosine",
        step_size: int = 30,
        gamma: float = 0.1,
        warmup_epochs: float = 0.0,
        model_kwargs: dict | None = None,
        adversarial: dict | None = None,
    ):
        super().__init__()
        if schedule not in SCHEDULES:
            raise ConfigError(f"optim.schedule={schedule!r} is not a schedule; choose one of {list(SCHEDULES)}.")
        self.save_hyperparameters()
        self.net = Normalized(create(model, num_classes, **(model_kwargs or {})), mean, std)
        self.train_metrics = covid_metrics(num_classes)
        self.val_metrics = covid_metrics(num_classes)
        self.test_metrics = covid_metrics(num_classes)
        self.known_test_metrics: dict[str, float] | None = None  # see reuse_test_metrics
        # Training images, and images through the network in training steps (each with its backward pass):
        # their ratio is the training's cost per image whatever else the machine was doing (1 for plain
        # training, 1 + its steps for PGD training).
        self.training_images = self.training_passes = 0

    def passes_per_training_image(self) -> float | None:
        """Forward (and backward) passes through the network per training image, attack steps included."""
        return self.training_passes / self.training_images if self.training_images else None

    def reuse_test_metrics(self, metrics: dict[str, float] | None) -> None:
        """This trained model's test-loop metrics (test/acc, ...), as an earlier job measured them: the test
        loop then logs them instead of classifying the test split again. None: measure them."""
        self.known_test_metrics = metrics

    def forward(self, x):
        return self.net(x)

    def _step(self, batch, stage: str):
        x, y = batch
        if stage == "train":
            with images_through(self.net) as passes:
                if self.hparams.adversarial:
                    x = adversarial_batch(self.net, x, y, self.hparams.adversarial)
                logits = self(x)
            self.training_images += len(y)
            self.training_passes += passes[0]
        else:
            logits = self(x)
        # Inception v3 and others may return auxiliary outputs in training; the main logits come first.
        if isinstance(logits, (tuple, list)):
            logits = logits[0]
        loss = F.cross_entropy(logits, y)
        update_covid_metrics(getattr(self, f"{stage}_metrics"), logits.detach(), y, self.hparams.positive_class)
        self.log(f"{stage}/loss", loss, prog_bar=stage != "test", on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def _log_epoch(self, stage: str):
        values = getattr(self, f"{stage}_metrics").compute()
        self.log(f"{stage}/acc", values.pop("acc"), prog_bar=True)
        self.log_dict({f"{stage}/{k}": v for k, v in values.items()})
        getattr(self, f"{stage}_metrics").reset()

    def training_step(self, batch, _):
        return self._step(batch, "train")

    def validation_step(self, batch, _):
        self._step(batch, "val")

    def test_step(self, batch, _):
        if self.known_test_metrics is None:
            self._step(batch, "test")

    def on_train_epoch_end(self):
        self._log_epoch("train")

    def on_validation_epoch_end(self):
        self._log_epoch("val")

    def on_test_epoch_end(self):
        if self.known_test_metrics is None:
            self._log_epoch("test")
        else:
            self.log_dict(self.known_test_metrics)

    def configure_optimizers(self):
        h = self.hparams
        opt = torch.optim.SGD(
            self.parameters(), lr=h.lr, momentum=h.momentum, weight_decay=h.weight_decay, nesterov=h.nesterov
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        per_epoch = total / max(1, self.trainer.max_epochs)
        warmup = h.warmup_epochs * per_epoch

        def factor(step: int) -> float:
            # A linear warm-up keeps deep networks trained from scratch at a high rate from blowing up
            # in their first steps; the schedule runs per step so it is smooth within short runs.
            scale = min(1.0, (step + 1) / warmup) if warmup else 1.0
            if h.schedule == "cosine":
                return scale * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
            if h.schedule == "step":
                return scale * h.gamma ** int(step // (h.step_size * per_epoch))
            return scale

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
