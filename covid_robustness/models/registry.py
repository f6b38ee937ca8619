"""Model registry: a name, how to build it for one-channel input, its smallest input and Table I's count."""

from dataclasses import dataclass
from typing import Callable

import timm
from torch import nn

from ..errors import ConfigError
from .wrn import WideResNet


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[..., nn.Module]
    min_size: int  # smallest image side the architecture accepts
    paper_params: int  # Table I of the paper (Keras counts, BatchNorm statistics included)


_REGISTRY: dict[str, ModelSpec] = {}


def register(name: str, min_size: int, paper_params: int):
    def wrap(build):
        _REGISTRY[name] = ModelSpec(name, build, min_size, paper_params)
        return build
    return wrap


def _timm(arch: str):
    return lambda num_classes, **kw: timm.create_model(arch, pretrained=False, in_chans=1, num_classes=num_classes, **kw)


register("resnet18", 32, 11_185_218)(_timm("resnet18"))
register("resnet50", 32, 23_558_978)(_timm("resnet50"))
register("vgg19", 32, 139_577_282)(_timm("vgg19"))
register("inception_v3", 75, 21_806_306)(_timm("inception_v3"))
register("wrn16_8", 16, 11_033_186)(lambda num_classes, **kw: WideResNet(16, 8, num_classes, 1, **kw))


def names() -> list[str]:
    return sorted(_REGISTRY)


def spec(name: str) -> ModelSpec:
    if name not in _REGISTRY:
        raise ConfigError(f"model {name!r} is not registered; choose one of {names()}.")
    return _REGISTRY[name]


def create(name: str, num_classes: int, **kwargs) -> nn.Module:
    return spec(name).build(num_classes, **kwargs)


def count_params(net: nn.Module) -> tuple[int, int]:
    """(trainable parameters, parameters plus BatchNorm running statistics as Keras counts them)."""
    params = sum(p.numel() for p in net.parameters())
    stats = sum(b.numel() for n, b in net.named_buffers() if n.endswith(("running_mean", "running_var")))
    return params, params + stats
