"""Train once, attack many: the key of a training, and the key of a cell.

Jobs of a sweep that differ only in how they attack share one training. The training key hashes
every setting that changes the trained weights (data, model, optimisation, trainer, seed, and the
defense's adversarial training) and nothing else: an input-transformation defense acts at test time,
so a model defended by one shares the training of the undefended model. The cell key adds the whole
defense, the attack and the evaluation, and names one job's result.
"""

import hashlib
import json

from omegaconf import DictConfig, OmegaConf

from ..accelerator import uses_cuda
from ..record import transfer_source
from ..record.sections import (
    CELL,
    CORRUPTION,
    DATA,
    ESCALATE,
    ESCALATION,
    EXTERNAL_DATA,
    FIRST_IMAGE,
    HARMONISE,
    LOGGED_WHEN_ON,
    NOT_IN_KEY,
    PROBE,
    TRAINING,
)
from ..shortcut import probe_name


def resolved(node) -> dict:
    """A config node as plain, resolved values."""
    return OmegaConf.to_container(node, resolve=True)


def job_settings(cfg: DictConfig) -> dict:
    """The resolved config less what this job ignores or leaves off: on a CPU, the gpu section; without
    gradient clipping, its setting; without a corruption, an external test set, the harmonise remedy or
    a probe, their settings.

    What a job ignores changes none of its weights or numbers, so it joins neither its keys nor its
    params: a job finds the trainings and cells of a store written before those settings existed.
    """
    settings = resolved(cfg)
    if not uses_cuda(cfg.trainer.accelerator):
        settings.pop("gpu", None)
    if settings["trainer"].get("gradient_clip_val") is None:  # no clipping: keyed as before the setting existed
        settings["trainer"].pop("gradient_clip_val", None)
    # The settings logged only when on (the remedy, the corruption, the external set, escalation), and when
    # each is off:
    # then keyed and logged as before it existed.
    off = {
        CORRUPTION: _setting(settings, f"{CORRUPTION}.name", "none") == "none",
        HARMONISE: not _setting(settings, HARMONISE, False),
        **{f"{DATA}.{name}": _setting(settings, f"{DATA}.external_root") is None for name in EXTERNAL_DATA},
        **dict.fromkeys(ESCALATION, not _setting(settings, ESCALATE, False)),
        FIRST_IMAGE: not _setting(settings, FIRST_IMAGE, 0),
    }
    for name in LOGGED_WHEN_ON:
        if off[name]:
            head, _, key = name.partition(".")
            if key:
                settings[head].pop(key, None)
            else:
                settings.pop(head, None)
    if probe_name(settings) == "none":  # a normal job: keyed and logged as before the probe group existed
        settings.pop(PROBE, None)
    return settings


def _setting(settings: dict, name: str, default=None):
    """One setting of the resolved config by its param name (section.key)."""
    head, _, key = name.partition(".")
    return settings.get(head, {}).get(key, default)


def _parts(settings: dict, sections) -> dict:
    parts = {}
    for section in sections:
        if section not in settings:
            continue
        value = settings[section]
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in NOT_IN_KEY.get(section, ())}
        parts[section] = value
    return parts


def _hash(parts: dict) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _training_parts(settings: dict) -> dict:
    parts = _parts(settings, TRAINING)
    # The external test set is evaluated on, never trained on: it joins the cell, not the training.
    for name in EXTERNAL_DATA:
        parts["data"].pop(name, None)
    # Added only when set, so the key of an undefended training is the same with or without the defense group.
    if (training := (settings.get("defense") or {}).get("training")) is not None:
        parts["adversarial_training"] = training
    # A probe's training (the border probe's, on blanked images) is its own, never the full-image model's.
    if PROBE in settings:
        parts[PROBE] = settings[PROBE]
    return parts


def training_key(cfg: DictConfig) -> str:
    return _hash(_training_parts(job_settings(cfg)))


def cell_key(cfg: DictConfig) -> str:
    """A grid cell: everything that can change a job's numbers, whatever its position in a sweep."""
    settings = job_settings(cfg)
    if PROBE in settings:
        return _probe_cell_key(settings)
    # The defense joins the key only when there is one, as the adversarial training above.
    parts = {**_training_parts(settings), **_parts(settings, [s for s in CELL if s not in (*TRAINING, "defense")])}
    if (data := settings["data"]).get("external_root") is not None:
        parts["external"] = {name: data[name] for name in EXTERNAL_DATA}
    # Not a transfer attack: the same cell as a white-box job, keyed as before the option existed.
    source = parts["attack"].get("source_model")
    if "source_model" in parts["attack"] and transfer_source(settings["model"]["name"], source) is None:
        del parts["attack"]["source_model"]
    if (defense := settings.get("defense")) is not None and defense.get("name", "none") != "none":
        parts["defense"] = defense
    return _hash(parts)


def _probe_cell_key(settings: dict) -> str:
    """A probe's cell: what its numbers depend on, never an attack's. The border probe depends on its
    training (which holds the probe's settings); the statistics probe only on the data and its split, so
    one statistics probe serves every model of a sweep (the other models' jobs find it finished)."""
    parts = _training_parts(settings)
    if probe_name(settings) == "statistics":
        parts = {"data": parts["data"], "seed": settings["seed"], PROBE: settings[PROBE]}
    return _hash({**parts, "study": settings["study"]})
