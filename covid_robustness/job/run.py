"""One job of a sweep: the config checked, then the attack job or a shortcut probe in its place."""

from omegaconf import DictConfig

from ..accelerator import job_device, use_allocated_cpus
from ..console import quiet
from ..registry import load_plugins
from ..shortcut import probe_name
from ..tracking import Tracker
from .attack import attack_job
from .plan import validate
from .probe import probe_job


def run(cfg: DictConfig, overrides: str = "", sweep: bool = False) -> dict[str, float]:
    """One grid cell. A cell already finished in this study is skipped (resume), unless resume=false."""
    quiet(cfg.get("verbose", False))
    load_plugins(cfg.get("plugins"))
    plan = validate(cfg)
    use_allocated_cpus()
    plan.device = job_device(cfg.trainer.accelerator)
    plan.gpu = plan.gpu.on(plan.device)  # all off on a CPU
    tracker = Tracker.from_config(cfg)
    if probe_name(cfg) != "none":  # a shortcut probe instead of train + attack
        return probe_job(cfg, plan, tracker, overrides)
    return attack_job(cfg, plan, tracker, overrides, sweep)
