"""A grid cell claimed by one process: its lock, resume, interrupted runs, its data and its run.

The attack job and the probe job claim their cells the same way: a cell another process holds is left
to it; a cell already finished is skipped (resume) unless resume=false; a run left RUNNING by a killed
process is marked FAILED before the cell runs again.
"""

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytorch_lightning as pl
import torch
from filelock import Timeout
from omegaconf import DictConfig

from ..data.datamodule import CXRDataModule
from ..models.registry import spec
from ..record import JOB_ROLE, Tags
from ..record.sections import SKIPPED_IMAGES
from ..tracking import Tracker, flatten, git_commit, machine, versions
from .keys import job_settings, resolved

log = logging.getLogger(__name__)


def claim(tracker: Tracker, cell: str, resume: bool, work: Callable[[], dict], role: str = JOB_ROLE) -> dict:
    """Run `work` for this cell unless another process holds it ({}), or resume finds it finished (its
    metrics); runs of the cell left RUNNING by a killed process are marked FAILED first."""
    what = "cell" if role == JOB_ROLE else f"{role} cell"
    lock = tracker.lock(f"cell-{cell}")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.warning("%s %s is being run by another process; leaving it to that one", what, cell)
        return {}
    try:
        if resume and (done := tracker.find_job(cell, role)) is not None:
            log.info("%s %s already finished in run %s; skipping it", what, cell, done.info.run_id)
            return dict(done.data.metrics)
        if interrupted := tracker.fail_interrupted(role, Tags.CELL_KEY, cell):
            log.warning("marked %d interrupted run(s) of %s %s as failed; running it again", interrupted, what, cell)
        return work()
    finally:
        lock.release()


def setup_data(cfg: DictConfig) -> CXRDataModule:
    """The job's data, set up: seeded first, so the splits and the training are the same whichever job runs."""
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = CXRDataModule(**resolved(cfg.data))
    dm.setup()
    if dm.skipped:
        log.warning("left out %d unreadable image(s)", dm.skipped)
    return dm


def common_tags(cfg: DictConfig, overrides: str) -> dict[str, str]:
    """The tags every run of a job carries: where the code was, the command line, the model and the machine."""
    return {
        Tags.COMMIT: git_commit(),
        Tags.OVERRIDES: overrides,
        Tags.MODEL: cfg.model.name,
        Tags.MODEL_LABEL: spec(cfg.model.name).label,
        Tags.THREADS: str(torch.get_num_threads()),
        Tags.MACHINE: machine(),
        Tags.VERSIONS: versions(),
    }


@contextmanager
def job_run(
    tracker: Tracker, parent: str | None, name: str, run_tags: dict, cfg: DictConfig, dm: CXRDataModule
) -> Iterator[str]:
    """A job's run (nested under its training run, if any) with its params, config and test data; it ends
    FINISHED when the block does, FAILED with the error when the block raises."""
    run_id = tracker.start_job(parent, name, run_tags)
    try:
        tracker.log_params(run_id, {**flatten(job_settings(cfg)), SKIPPED_IMAGES: str(dm.skipped)})
        tracker.log_config(run_id, cfg)
        tracker.log_dataset(run_id, dm.dataset_info(), context="test")
        if (external := dm.external_info()) is not None:
            tracker.log_dataset(run_id, external, context="external")
        yield run_id
    except BaseException as err:
        tracker.end(run_id, ok=False, error=f"{type(err).__name__}: {err}")
        raise
    tracker.end(run_id, ok=True)
