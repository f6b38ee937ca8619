"""Model registry: a name, how to build it for one-channel input, its smallest input and Table I's count.

A model registers itself beside its definition with `register` (wrn.py; the timm architectures in
timm_models.py), and models/__init__.py imports every module of this package, so a new model file
needs no entry anywhere else. A name that is not registered but that timm knows builds with timm and
the defaults (min_size 32, no paper count): such a model needs only conf/model/<name>.yaml.
"""

from collections.abc import Callable
from dataclasses import dataclass

import timm
from omegaconf import DictConfig, OmegaConf
from torch import nn

from ..errors import ConfigError
from ..record.sections import MODEL_TRAINING_SETTINGS
from ..registry import Registry

MODELS = Registry("model")
MIN_SIZE = 32
# Keys of the model group that are not the architecture's constructor arguments.
MODEL_SETTINGS = ("name", *MODEL_TRAINING_SETTINGS)


def model_kwargs(cfg: DictConfig) -> dict:
    """The model group's arguments for the architecture's constructor."""
    return {k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items() if k not in MODEL_SETTINGS}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[..., nn.Module]  # (num_classes, **kwargs) -> a model of one-channel images
    min_size: int  # smallest image side the architecture accepts
    paper_params: int | None  # Table I of the paper (Keras counts, BatchNorm statistics included); None: not in it
    label: str  # short name in tables (RN-18)


def register(name: str, *, min_size: int = MIN_SIZE, label: str | None = None, paper_params: int | None = None):
    """Decorator on a builder `(num_classes, **kwargs) -> nn.Module` that takes one-channel images.

    Meta: min_size (smallest image side), label (short name for tables; default the name),
    paper_params (the paper's Table I count; None where the paper has none).
    """
    return MODELS.register(name, min_size=min_size, label=label or name, paper_params=paper_params)


def timm_builder(arch: str) -> Callable[..., nn.Module]:
    """timm's `arch` with random weights and one input channel."""

    def build(num_classes: int, **kwargs) -> nn.Module:
        return timm.create_model(arch, pretrained=False, in_chans=1, num_classes=num_classes, **kwargs)

    build.__qualname__ = f"timm_builder({arch!r})"
    return build


def register_timm(name: str, **meta) -> None:
    """Registers timm's architecture `name` under its own name, with metadata as `register`."""
    register(name, **meta)(timm_builder(name))


def names() -> list[str]:
    """Registered names, sorted (MODELS.names() keeps registration order); timm-only names are not listed."""
    return sorted(MODELS.names())


def spec(name: str) -> ModelSpec:
    if name in MODELS:
        entry = MODELS.get(name)
        return ModelSpec(name, entry.obj, entry.min_size, entry.paper_params, entry.label)
    if isinstance(name, str) and timm.is_model(name):
        return ModelSpec(name, timm_builder(name), MIN_SIZE, None, name)
    raise ConfigError(
        f"model {name!r} is not registered and timm has no such model; choose one of {names()} "
        "or a model name that timm knows (timm.list_models())."
    )


def create(name: str, num_classes: int, **kwargs) -> nn.Module:
    return spec(name).build(num_classes, **kwargs)


def count_params(net: nn.Module) -> tuple[int, int]:
    """(trainable parameters, parameters plus BatchNorm running statistics as Keras counts them)."""
    params = sum(p.numel() for p in net.parameters())
    stats = sum(b.numel() for n, b in net.named_buffers() if n.endswith(("running_mean", "running_var")))
    return params, params + stats
