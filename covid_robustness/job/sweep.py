"""Hydra callbacks of a multirun: check every job before the first starts, conclude when the last ends.

Before: Hydra checks that each job's config composes; our value checks (epsilon ranges, image size
against the model, data paths, the attack's own parameters) would otherwise surface only when the sweep
reaches the bad job, after earlier jobs have trained. Expanding the sweep the way Hydra's BasicSweeper
does lets us stop first. It also creates the MLflow store and experiments before any job starts:
parallel jobs racing to create a sqlite schema or an experiment fail.

After: the gradient-masking checks run once over the jobs of the sweep's trained models and are written
on the runs they concern, and the sweep's cells are printed as a table; shortcut probe jobs (probe=border,
statistics) are printed as a verdict table instead.
"""

import sys

from hydra import compose
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ..errors import ConfigError
from ..registry import load_plugins


def job_overrides(config: DictConfig) -> list[list[str]]:
    params = [f"{k}={v}" for k, v in (config.hydra.sweeper.get("params") or {}).items()]
    parsed = OverridesParser.create().parse_overrides(params + list(config.hydra.overrides.task))
    return [list(job) for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def job_configs(config: DictConfig) -> list[tuple[list[str], DictConfig]]:
    """Each job of the sweep: its overrides and its composed config (with the sweep's config search path)."""
    search = [o for o in config.hydra.overrides.hydra if o.startswith("hydra.searchpath=")]
    return [
        (overrides, compose(config.hydra.job.config_name, overrides=[*search, *overrides]))
        for overrides in job_overrides(config)
    ]


def _whole(value, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def check_launcher(launcher: DictConfig | dict | None) -> None:
    """The launcher's settings that it would reject only once the first jobs are dispatched (joblib's
    n_jobs=0 is a raw ValueError there), or not at all (a SLURM job of no minutes)."""
    launcher = launcher or {}
    target = str(launcher.get("_target_", ""))
    if target.endswith("JoblibLauncher"):
        n = launcher.get("n_jobs")
        if not (isinstance(n, int) and not isinstance(n, bool) and n != 0):
            raise ConfigError(
                f"hydra.launcher.n_jobs={n!r} must be a number of worker processes: 1 or more, or -1 for one per CPU."
            )
    if "submitit" in target:
        for name in ("timeout_min", "nodes", "tasks_per_node"):
            if name in launcher and not _whole(launcher.get(name), 1):
                raise ConfigError(f"hydra.launcher.{name}={launcher.get(name)!r} must be a whole number, at least 1.")


def _swept(jobs: list[list[str]]) -> set[str]:
    """The keys whose values differ between the jobs: what names one job of the sweep."""
    values: dict[str, set[str]] = {}
    for overrides in jobs:
        for override in overrides:
            key, _, value = override.partition("=")
            values.setdefault(key, set()).add(value)
    return {key for key, seen in values.items() if len(seen) > 1 or len(jobs) == 1}


class SweepCallbacks(Callback):
    def __init__(self) -> None:
        self.jobs: list[tuple[list[str], DictConfig]] = []  # the sweep's jobs, composed once when it starts

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        from ..console import quiet

        quiet(config.get("verbose", False))  # before ART's import, which logs where it keeps its data
        from ..tracking import Tracker
        from .plan import validate

        try:
            load_plugins(config.get("plugins"))
            check_launcher(config.hydra.get("launcher"))
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        try:
            jobs = self.jobs = job_configs(config)
        except Exception as err:  # Hydra would only warn about an exception raised here, and go on
            print(f"error: the sweep's jobs do not compose: {err}", file=sys.stderr)
            sys.exit(2)
        stores = {}
        swept = _swept([overrides for overrides, _ in jobs])
        for number, (overrides, cfg) in enumerate(jobs):
            try:
                validate(cfg)
            except ConfigError as err:
                named = " ".join(o for o in overrides if o.split("=")[0] in swept) or " ".join(overrides)
                print(f"error: job #{number} of {len(jobs)} ({named}): {err}", file=sys.stderr)
                sys.exit(2)
            stores[(cfg.tracking.uri, cfg.tracking.dir, cfg.study)] = cfg
        for cfg in stores.values():
            try:
                Tracker.from_config(cfg)
            except ConfigError as err:
                print(f"error: {err}", file=sys.stderr)
                sys.exit(2)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from dataclasses import replace

        from ..console import cells_table
        from ..record import Tags, finished_jobs, newest_per_cell
        from ..shortcut import probe_name
        from ..tracking import Tracker, runs_page
        from .keys import cell_key
        from .masking import flag_masking
        from .summary import probe_summary

        cells, stores = {}, {}
        probes = [cfg for _, cfg in self.jobs if probe_name(cfg) != "none"]
        for _, cfg in self.jobs:  # composed and validated when the sweep started
            if probe_name(cfg) != "none":
                continue
            store = (cfg.tracking.uri, cfg.tracking.dir, cfg.study)
            stores[store] = cfg
            cells.setdefault(store, set()).add(cell_key(cfg))
        pages = []
        for store, cfg in stores.items():
            tracker = Tracker.from_config(cfg)
            pages.append((tracker, cfg))
            jobs, _ = newest_per_cell(finished_jobs(tracker.client, tracker.experiment_id))
            mine = [j for j in jobs if j.cell_key in cells[store]]
            flags = flag_masking(tracker, {j.training_run_id for j in mine}, jobs)
            fresh = (Tags.VERDICT, Tags.VERDICT_EVIDENCE)  # written by flag_masking after the jobs were read
            shown = [
                replace(
                    j,
                    masking=j.run_id in flags,
                    masking_reasons="; ".join(flags.get(j.run_id, [])),
                    tags={k: v for k, v in j.tags.items() if k not in fresh},
                )
                for j in mine
            ]
            missing, flagged = len(cells[store]) - len(shown), sum(j.masking for j in shown)
            print(
                f"\nstudy {cfg.study}: {len(shown)} of {len(cells[store])} cells finished"
                + (f" ({missing} failed or not run: see the log above)" if missing else "")
                + (f", {flagged} flagged for possible gradient masking" if flagged else "")
            )
            if shown:
                print(cells_table(shown))
        if probes:
            print("\nshortcut probes: test accuracy without the lungs (full model: a normal job of the same training)")
            print(probe_summary(probes))
        studies = {cfg.study for _, cfg in self.jobs}
        study = next(iter(studies)) if len(studies) == 1 else "<study>"
        print("\nLook further:")
        for tracker, cfg in pages:
            if not str(cfg.tracking.uri or "").startswith(("http://", "https://")):
                store = "" if str(cfg.tracking.dir) == "mlruns" else f" STORE={cfg.tracking.dir}"
                print(f"  the MLflow UI:       make ui{store}")
            print(f"  study {cfg.study}'s runs:  {runs_page(tracker.experiment_id, cfg.tracking.uri)}")
        print(f"  the report:          make report STUDY={study}   (tables, figures and an HTML page)")
