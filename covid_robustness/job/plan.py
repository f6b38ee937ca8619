"""Checks on a composed config that stop a job before any data is read or model trained.

What the checks build (the defense, the transfer source's config) is returned for the job to use. The
attack is built too, on a stand-in classifier of the job's input shape, so ART's own parameter checks
run now rather than after training.
"""

import json
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from ..accelerator import GpuSettings
from ..attacks.build import build_attack
from ..attacks.classifier import build_classifier
from ..attacks.resolve import in_pixels, with_target
from ..attacks.validation import validate_attack
from ..data.classes import task_classes
from ..data.datamodule import CXRDataModule
from ..data.folder import EXTERNAL_FOLDER, TRAINING_FOLDER, list_images
from ..defenses.transforms import Defense, build_defense
from ..errors import ConfigError
from ..evaluation.corrupted import check_corruption
from ..evaluation.smoothing import smoothing_sigma
from ..models.registry import spec
from ..record import CERTIFY
from ..shortcut import PROBES, probe_name
from .keys import resolved
from .transfer import escalation_configs, source_config


@dataclass
class Plan:
    """What validation built, for the job to reuse."""

    defense: Defense
    source: DictConfig | None  # the config of a transfer attack's source model
    escalation_sources: dict[str, DictConfig] = field(default_factory=dict)  # the models escalation transfers from
    gpu: GpuSettings = field(default_factory=GpuSettings)  # what the job does differently on CUDA
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))  # set by the job (job_device)


def check_attack(attack: dict, image_size: int, num_classes: int) -> None:
    """Build the attack on a linear stand-in model: ART's constructor checks its parameters."""
    validate_attack(attack)
    eps = attack.get("eps")
    # A budget in std units is converted with the model's std, unknown before the data is read; a stand-in
    # std that keeps it inside [0, 1] keeps eps and eps_step in proportion, which is what ART checks.
    std = 1.0 / max(1.0, float(eps)) if attack.get("eps_unit") == "std" and eps else 1.0
    pixels, _ = in_pixels(attack, std)
    stand_in = nn.Sequential(nn.Flatten(), nn.Linear(image_size * image_size, num_classes))
    build_attack(pixels, build_classifier(stand_in, image_size, num_classes))


def check_escalation(evaluation: DictConfig) -> None:
    """The escalation settings (evaluation/escalation.py), when escalation is on."""
    if not evaluation.get("escalate"):
        return
    n = evaluation.get("escalate_max_images")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ConfigError(f"eval.escalate_max_images={n!r} must be a positive number of images, or null for all.")
    for name in ("escalate_max_iter", "escalate_restarts"):
        value = evaluation.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"eval.{name}={value!r} must be a whole number, at least 1.")
    queries = evaluation.get("escalate_square_queries")
    if isinstance(queries, bool) or not isinstance(queries, int) or queries < 0:
        raise ConfigError(f"eval.escalate_square_queries={queries!r} must be a whole number of queries, 0 or more.")


def check_first_image(cfg: DictConfig) -> None:
    """eval.first_image slices the test split's attacked images, for a job that attacks the test split alone."""
    first = cfg.eval.get("first_image", 0)
    if isinstance(first, bool) or not isinstance(first, int) or first < 0:
        raise ConfigError(f"eval.first_image={first!r} must be a test image's index: a whole number, 0 or more.")
    if not first:
        return
    corruption = cfg.get("corruption", {}).get("name", "none")
    for on, what in (
        (cfg.attack.name == CERTIFY, "attack=certify"),
        (corruption != "none", f"corruption={corruption}"),
        (cfg.data.get("external_root") is not None, "an external test set (data.external_root)"),
    ):
        if on:
            raise ConfigError(f"eval.first_image={first} slices the test split's attacked images; {what} reads others.")


def check_probe(cfg: DictConfig) -> None:
    name = probe_name(cfg)
    if name not in ("none", *PROBES):
        raise ConfigError(f"probe.name={name!r} is not a probe; choose none, {', '.join(PROBES)}.")
    border = cfg.probe.get("border") if name == "border" else None
    bad = isinstance(border, bool) or not isinstance(border, int | float) or not 0 <= border < 0.5
    if name == "border" and bad:
        raise ConfigError(
            f"probe.border={border!r} must be a share of the image side from 0 to below 0.5: the frame left "
            "visible on each side (0 blanks the whole image)."
        )


@cache
def _listing(root: str, classes: tuple[str, ...], class_dirs: str, settings: tuple[str, str]) -> int:
    """The images a folder's class folders list (read once per folder, for every job of a sweep)."""
    return len(list_images(Path(root), classes, json.loads(class_dirs), settings)[0])


def check_data(data: DictConfig, classes: tuple[str, ...]) -> None:
    """The data settings as the data module checks them, and each folder's class folders as listed: every
    class folder there and holding images, before any job trains."""
    settings = resolved(data)
    CXRDataModule(**settings)  # its own checks of the settings (split fractions, source, ...)
    if settings["source"] == "folder":
        if settings.get("root") is None:
            raise ConfigError(
                "data.root is not set; give the folder that holds the class folders, e.g. data.root=/data/cxr."
            )
        _listing(settings["root"], classes, json.dumps(settings.get("class_dirs") or {}), TRAINING_FOLDER)
    external = settings.get("external_root")
    if external is not None:
        if not Path(external).is_dir():
            raise ConfigError(
                f"data.external_root={external!r} is not a directory; point it at another source's folder with one "
                "sub-folder per class (data.external_class_dirs names them), or leave it null."
            )
        _listing(external, classes, json.dumps(settings.get("external_class_dirs") or {}), EXTERNAL_FOLDER)


def validate(cfg: DictConfig) -> Plan:
    classes = task_classes(cfg.data.task)
    defense = build_defense(OmegaConf.to_container(cfg.defense, resolve=True))
    source = source_config(cfg)
    check_escalation(cfg.eval)
    escalation = escalation_configs(cfg)
    size = cfg.data.image_size
    others = ([source.model.name] if source is not None else []) + [c.model.name for c in escalation.values()]
    for name in [cfg.model.name, *others]:
        model = spec(name)
        if not isinstance(size, int) or size < model.min_size:
            raise ConfigError(
                f"data.image_size={size} is too small for {model.name}, which needs at least {model.min_size} px."
            )
    check_attack(with_target(OmegaConf.to_container(cfg.attack, resolve=True), classes), size, len(classes))
    if cfg.attack.name == CERTIFY:
        smoothing_sigma(defense)  # a smoothed classifier to certify
    check_data(cfg.data, classes)
    check_corruption(OmegaConf.to_container(cfg.corruption, resolve=True) if "corruption" in cfg else {})
    n = cfg.eval.max_images
    if n is not None and (not isinstance(n, int) or n < 1):
        raise ConfigError(
            f"eval.max_images={n!r} must be a positive number of images, or null for the whole test split."
        )
    check_first_image(cfg)
    b = cfg.eval.batch_size
    if b != "auto" and (isinstance(b, bool) or not isinstance(b, int) or b < 1):
        raise ConfigError(f"eval.batch_size={b!r} must be a positive number of images, or auto.")
    gpu = cfg.get("gpu") or {}
    if unknown := sorted(set(gpu) - {f.name for f in fields(GpuSettings)}):
        raise ConfigError(f"gpu has no setting(s) {unknown}; it takes {[f.name for f in fields(GpuSettings)]}.")
    if cfg.trainer.max_epochs is None or cfg.trainer.max_epochs < 1:
        raise ConfigError(f"trainer.max_epochs={cfg.trainer.max_epochs} must be at least 1.")
    check_probe(cfg)
    return Plan(defense, source, escalation, GpuSettings(**gpu))
