"""Transfer attacks: the config of the model a job's examples are crafted on (attack.source_model), and
of the models escalation transfers from (eval.escalate_sources).

The source is trained like the target (same data, optimisation, trainer, seed and defense training)
with the architecture of the `model` config group's option <source_model>, composed by Hydra as the job's
own model was, so the train-once cache serves it: in a sweep over models, each source is the very model
another job of the sweep trained.
"""

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from ..errors import ConfigError
from ..record import transfer_source

CONF = Path(__file__).resolve().parents[2] / "conf"


def _model_config(name: str, setting: str) -> DictConfig:
    """The `model` group's option `name`, as Hydra composes it; setting names where the name came from."""
    if not GlobalHydra.instance().is_initialized():  # called outside a Hydra app (a script, a test)
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return _model_config(name, setting)
    options = GlobalHydra.instance().config_loader().get_group_options("model")
    if name not in options:
        raise ConfigError(f"{setting}={name!r} is not a model config; choose one of {sorted(options)}.")
    return compose("config", overrides=[f"model={name}"]).model


def with_model(cfg: DictConfig, name: str, setting: str) -> DictConfig:
    """The job's config with its model replaced by the `model` group's option `name`: trained like the job's
    own model, so the train-once cache serves it."""
    other = cfg.copy()
    OmegaConf.set_struct(other, False)
    other.model = _model_config(name, setting)
    OmegaConf.set_struct(other, True)
    return other


def source_config(cfg: DictConfig) -> DictConfig | None:
    """The job's config with its model replaced by the source model; None when the attack is not a transfer.

    A source that is the attacked model itself (the diagonal of a models x source_model sweep) is no
    transfer: the examples are crafted on the model, as in a white-box job.
    """
    name = transfer_source(cfg.model.name, cfg.attack.get("source_model"))
    return None if name is None else with_model(cfg, name, "attack.source_model")


def escalation_configs(cfg: DictConfig) -> dict[str, DictConfig]:
    """The configs of the study's other models that escalation transfers from (eval.escalate_sources)."""
    if not cfg.eval.get("escalate"):
        return {}
    names = [n for n in cfg.eval.get("escalate_sources") or [] if n != cfg.model.name]
    return {name: with_model(cfg, name, "eval.escalate_sources") for name in dict.fromkeys(names)}
