"""A Hydra callback that validates every job of a multirun before the first one starts.

Hydra checks that each job's config composes; our value checks (epsilon ranges, image size against
the model, data paths) would otherwise surface only when the sweep reaches the bad job, after
earlier jobs have trained. Expanding the sweep the way Hydra's BasicSweeper does lets us stop first.
"""

import sys

from hydra import compose
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from .errors import ConfigError


def job_overrides(config: DictConfig) -> list[list[str]]:
    params = [f"{k}={v}" for k, v in (config.hydra.sweeper.get("params") or {}).items()]
    parsed = OverridesParser.create().parse_overrides(params + list(config.hydra.overrides.task))
    return [list(job) for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


class ValidateSweep(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        from .validate import validate

        jobs = job_overrides(config)
        for number, overrides in enumerate(jobs):
            try:
                validate(compose(config.hydra.job.config_name, overrides=overrides))
            except ConfigError as err:
                print(f"error: job #{number} of {len(jobs)} ({' '.join(overrides)}): {err}", file=sys.stderr)
                sys.exit(2)
