"""ART's view of a trained model: the PyTorchClassifier that attacks and defense evaluations run on.

The model takes [0, 1] pixels (its normalisation is inside the network), so the classifier clips to
[0, 1] and adds no standardisation of its own; defenses and attacks reach the model only through it.
"""

import numpy as np
from art.estimators.classification import PyTorchClassifier
from torch import nn


class Classifier(PyTorchClassifier):
    """ART's PyTorchClassifier, taking float64 images as well: ART's decision-based attacks (BoundaryAttack,
    HopSkipJump) query the model with float64 arrays, which a float32 network refuses ("Input type (double)
    and bias type (float) should be the same")."""

    def predict(self, x: np.ndarray, batch_size: int = 128, training_mode: bool = False, **kwargs) -> np.ndarray:
        return super().predict(
            np.asarray(x, dtype=np.float32), batch_size=batch_size, training_mode=training_mode, **kwargs
        )


def build_classifier(
    net: nn.Module,
    image_size: int,
    num_classes: int,
    preprocessing_defences=None,
    loss: nn.Module | None = None,
    cls: type = Classifier,
    **extra,
) -> PyTorchClassifier:
    """ART's view of a model that takes [0, 1] pixels (normalisation is inside `net`), optionally defended.

    On the device the network is on: ART moves a "gpu" classifier's network to the current CUDA device,
    so a job told to compute on the CPU on a GPU machine attacks on the CPU too.
    """
    on_gpu = any(p.is_cuda for p in net.parameters())
    return cls(
        model=net,
        loss=loss if loss is not None else nn.CrossEntropyLoss(),
        input_shape=(1, image_size, image_size),
        nb_classes=num_classes,
        clip_values=(0.0, 1.0),
        preprocessing_defences=preprocessing_defences,
        device_type="gpu" if on_gpu else "cpu",
        **extra,
    )


def with_loss(clf: PyTorchClassifier, loss: nn.Module) -> PyTorchClassifier:
    """The same classifier (model, defenses, class) with another loss for its loss gradients."""
    params = clf.get_params()
    params.update(loss=loss, device_type="gpu" if clf.device.type == "cuda" else "cpu")
    params.pop("preprocessing", None)  # ART's default identity standardisation: normalisation is inside the model
    return type(clf)(**params)
