"""The margin loss max_{j != y} z_j - z_y of Carlini & Wagner, for attacks that follow its gradient.

Positive exactly when an image is misclassified; unlike the DLR loss of AutoAttack it needs no third
class. ART's PyTorchClassifier passes one-hot labels to a loss it does not know and sets `reduction`
before asking for per-image values, so both are honoured here.
"""

import torch
from torch import nn


class MarginLoss(nn.modules.loss._Loss):
    def __init__(self, reduction: str = "mean"):
        super().__init__(reduction=reduction)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        y = target.argmax(1) if target.ndim == 2 else target.long()
        true = logits.gather(1, y[:, None]).squeeze(1)
        others = logits.masked_fill(nn.functional.one_hot(y, logits.shape[1]).bool(), float("-inf"))
        margin = others.amax(1) - true
        if self.reduction == "none":
            return margin
        return margin.sum() if self.reduction == "sum" else margin.mean()
