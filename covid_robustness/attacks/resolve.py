"""An attack config made concrete for one job: its budget in [0, 1] pixels and its target class as an index.

A config gives `eps`, the L-inf budget, in the unit `eps_unit`: `pixel` ([0, 1] pixels) or `std`
(standard deviations of the training pixels, the model's own normalisation: what ART's eps means for a
model fed standardised images); `in_pixels` converts it once the model's std is known. `target_class` (a
class name; null: untargeted) is resolved by `with_target` to `target_index` once the task's classes are.
"""

from ..errors import ConfigError
from ..record import Metrics
from .validation import validate_attack

# Keys in the unit of eps: converted with it.
EPS_KEYS = ("eps", "eps_step")


def in_pixels(cfg: dict, std: float) -> tuple[dict, dict[str, float]]:
    """The attack config with its budget in [0, 1] pixels, and the budget in both units (metrics).

    std is the model's normalisation std (of its training pixels): eps_unit std multiplies eps and
    eps_step by it. The converted budget is checked like any pixel budget.
    """
    unit = cfg.get("eps_unit", "pixel")
    scale = std if unit == "std" else 1.0
    out = {k: v for k, v in cfg.items() if k != "eps_unit"}
    for key in EPS_KEYS:
        if out.get(key) is not None:
            out[key] = float(out[key]) * scale
    validate_attack(out)
    if out.get("eps") is None:
        return out, {}
    return out, {Metrics.EPS_PIXEL: out["eps"], Metrics.EPS_STD: out["eps"] / std, Metrics.NORMALISATION_STD: std}


def with_target(cfg: dict, classes: tuple[str, ...] | list[str]) -> dict:
    """The attack config with `target_index`, the index of its target_class among the task's classes
    (None when untargeted); ConfigError for a name that is not one of them."""
    target = cfg.get("target_class")
    if target is not None and target not in classes:
        raise ConfigError(f"attack.target_class={target!r} is not a class of this task; choose one of {list(classes)}.")
    return {**cfg, "target_index": None if target is None else list(classes).index(target)}
