"""Transfer attacks: the config of the model a job's examples are crafted on (attack.source_model).

The source is trained like the target (same data, optimisation, trainer, seed and defense training)
with the architecture of conf/model/<source_model>.yaml, so the train-once cache serves it: in a sweep
over models, each source is the very model another job of the sweep trained.
"""

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .errors import ConfigError

MODEL_CONFIGS = Path(__file__).resolve().parents[1] / "conf" / "model"


def transfer_source(model: str, source: str | None) -> str | None:
    """The source model of a transfer attack, or None when the examples are crafted on the model itself:
    no source, or the model itself (the diagonal of a models x source_model sweep, a white-box job)."""
    return None if source in (None, "None", model) else source


def source_config(cfg: DictConfig) -> DictConfig | None:
    """The job's config with its model replaced by the source model; None when the attack is not a transfer.

    A source that is the attacked model itself (the diagonal of a models x source_model sweep) is no
    transfer: the examples are crafted on the model, as in a white-box job.
    """
    name = transfer_source(cfg.model.name, cfg.attack.get("source_model"))
    if name is None:
        return None
    known = sorted(p.stem for p in MODEL_CONFIGS.glob("*.yaml"))
    if name not in known:
        raise ConfigError(f"attack.source_model={name!r} is not a model config; choose one of {known}.")
    source = cfg.copy()
    OmegaConf.set_struct(source, False)
    source.model = OmegaConf.load(MODEL_CONFIGS / f"{name}.yaml")
    OmegaConf.set_struct(source, True)
    return source
