"""Checks on a composed config that stop a job before any data is read or model trained."""

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .attacks.factory import validate_attack
from .defenses.transforms import build_defense
from .data.classes import task_classes
from .errors import ConfigError
from .models.registry import spec
from .transfer import source_config


def validate(cfg: DictConfig) -> None:
    task_classes(cfg.data.task)
    validate_attack(OmegaConf.to_container(cfg.attack, resolve=True))
    build_defense(OmegaConf.to_container(cfg.defense, resolve=True))
    source = source_config(cfg)
    size = cfg.data.image_size
    for name in [cfg.model.name] + ([source.model.name] if source is not None else []):
        model = spec(name)
        if not isinstance(size, int) or size < model.min_size:
            raise ConfigError(
                f"data.image_size={size} is too small for {model.name}, which needs at least {model.min_size} px."
            )
    if cfg.data.source == "folder":
        if cfg.data.root is None:
            raise ConfigError("data.root is not set; give the folder that holds the class folders, e.g. data.root=/data/cxr.")
        if not Path(cfg.data.root).is_dir():
            raise ConfigError(f"data.root={cfg.data.root!r} is not a directory; point it at a folder with one sub-folder per class.")
    n = cfg.eval.max_images
    if n is not None and (not isinstance(n, int) or n < 1):
        raise ConfigError(f"eval.max_images={n!r} must be a positive number of images, or null for the whole test split.")
    if cfg.trainer.max_epochs is None or cfg.trainer.max_epochs < 1:
        raise ConfigError(f"trainer.max_epochs={cfg.trainer.max_epochs} must be at least 1.")
