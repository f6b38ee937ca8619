"""Wide ResNet (Zagoruyko & Komodakis, 2016), pre-activation basic blocks, depth 16 and widen factor 8.

timm has no WRN-16-8. The CIFAR network keeps full resolution through its first group, which at
255 px costs about 40x a ResNet-18 per image. stem="downsample" puts a ResNet-style stem in front
(7x7 conv stride 2, 3x3 max-pool stride 2, 16 channels): the feature maps shrink 4x before the first
group and the network otherwise stays the CIFAR WRN-16-8. It adds 784 - 144 = 640 weights
(a 7x7 instead of a 3x3 first convolution) plus one BatchNorm (32 parameters).
stem="cifar" is the original 3x3 stride-1 stem.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register


class _Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.dropout = dropout
        self.shortcut = None if c_in == c_out and stride == 1 else nn.Conv2d(c_in, c_out, 1, stride, bias=False)

    def forward(self, x):
        o = F.relu(self.bn1(x))
        y = self.conv1(o)
        y = F.relu(self.bn2(y))
        if self.dropout:
            y = F.dropout(y, self.dropout, self.training)
        y = self.conv2(y)
        return y + (x if self.shortcut is None else self.shortcut(o))


class WideResNet(nn.Module):
    def __init__(self, depth=16, widen=8, num_classes=2, in_chans=1, stem="downsample", dropout=0.0):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        if stem == "cifar":
            self.stem = nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False)
        elif stem == "downsample":
            self.stem = nn.Sequential(
                nn.Conv2d(in_chans, widths[0], 7, 2, 3, bias=False),
                nn.BatchNorm2d(widths[0]),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, 2, 1),
            )
        else:
            raise ValueError(f"WRN stem must be 'cifar' or 'downsample', got {stem!r}")
        blocks, c = [], widths[0]
        for group, width in enumerate(widths[1:]):
            for i in range(n):
                blocks.append(_Block(c, width, 2 if group and i == 0 else 1, dropout))
                c = width
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(c)
        self.fc = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.blocks(self.stem(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


@register("wrn16_8", min_size=16, label="WRN-16-8", paper_params=11_033_186)
def wrn16_8(num_classes: int, **kwargs) -> WideResNet:
    """WRN-16-8 on one-channel images; kwargs: stem, dropout."""
    return WideResNet(16, 8, num_classes, 1, **kwargs)
