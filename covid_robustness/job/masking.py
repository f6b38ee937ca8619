"""Gradient-masking flags written on the job runs they concern (evaluation/masking.py decides them).

Run once when a sweep ends, or when a job run alone ends (for its model's jobs): never by one job of a
sweep over its siblings while they run.
"""

import logging

from ..record import Tags, finished_jobs, newest_per_cell
from ..record.checklist import verdict
from ..record.masking import study_flags
from ..tracking import Tracker

log = logging.getLogger(__name__)


def flag_masking(
    tracker: Tracker, training_runs: set[str] | None = None, jobs: list | None = None
) -> dict[str, list[str]]:
    """Check the jobs of the given training runs (all of the study's when None); write what changed.

    jobs: the study's newest job per cell, when the caller has read them already.
    """
    if jobs is None:
        jobs, _ = newest_per_cell(finished_jobs(tracker.client, tracker.experiment_id))
    if training_runs is not None:
        jobs = [j for j in jobs if j.training_run_id in training_runs]
    flags = study_flags(jobs)
    for job in jobs:
        reasons = flags.get(job.run_id, [])
        tags = {Tags.MASKING: str(bool(reasons)).lower(), Tags.MASKING_REASONS: "; ".join(reasons)[:5000]}
        said, evidence = verdict(job, reasons)
        if said or job.tags.get(Tags.VERDICT):
            tags |= {Tags.VERDICT: said, Tags.VERDICT_EVIDENCE: evidence[:5000]}
        tracker.set_tags(job.run_id, {k: v for k, v in tags.items() if job.tags.get(k) != v})
        if reasons and job.tags.get(Tags.MASKING) != "true":
            log.warning("possible gradient masking in run %s (%s): %s", job.run_id, job.model, "; ".join(reasons))
    return flags
