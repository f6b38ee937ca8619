"""A Hydra callback that validates every job of a multirun before the first one starts.

Hydra checks that each job's config composes; our value checks (epsilon ranges, image size against
the model, data paths) would otherwise surface only when the sweep reaches the bad job, after
earlier jobs have trained. Expanding the sweep the way Hydra's BasicSweeper does lets us stop first.

It also creates the MLflow store and experiments before any job starts: parallel jobs racing to
create a sqlite schema or an experiment fail.
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
        from .tracking import Tracker
        from .validate import validate

        jobs = job_overrides(config)
        stores = {}
        for number, overrides in enumerate(jobs):
            cfg = compose(config.hydra.job.config_name, overrides=overrides)
            try:
                validate(cfg)
            except ConfigError as err:
                print(f"error: job #{number} of {len(jobs)} ({' '.join(overrides)}): {err}", file=sys.stderr)
                sys.exit(2)
            stores[(cfg.tracking.uri, cfg.tracking.dir, cfg.study)] = cfg
        for cfg in stores.values():
            try:
                Tracker.from_config(cfg)
            except ConfigError as err:
                print(f"error: {err}", file=sys.stderr)
                sys.exit(2)
