"""The report's one reader of MLflow: a study's finished runs as a tidy table (one Job per evaluated cell),
the training and probe runs beside them, and the artifacts of its jobs on demand.

Every page reads the study through what this module returns, never the store itself, so what the report
reads is stated here once and the pages can be built from hand-made jobs as well.
"""

import io
import json
import tempfile
from dataclasses import dataclass, field, replace

import numpy as np
from mlflow.tracking import MlflowClient

from ..errors import ConfigError
from ..record import (
    JOB_ROLE,
    PROBE_ROLE,
    TRAINING_ROLE,
    Artifacts,
    Job,
    Tags,
    datasets_of,
    finished_jobs,
    newest_per_cell,
    search,
)
from ..record.masking import study_flags
from . import slices
from .labels import Labels

__all__ = ["ArtifactReader", "Job", "Probe", "Study", "TrainingRun", "collect", "newest_per_cell", "studies"]


@dataclass(frozen=True)
class TrainingRun:
    """A training a job used (in this study's experiment or another's): when it ran, where, and on what data."""

    run_id: str
    start_time: int
    end_time: int
    tags: dict[str, str]
    datasets: tuple[dict, ...] = ()


@dataclass(frozen=True)
class Probe:
    """One finished shortcut-probe run (probe.py): which probe, on which model's training, what it scored."""

    model: str
    probe: str  # border or statistics
    metrics: dict[str, float]
    params: dict[str, str]


class ArtifactReader:
    """The artifacts of a study's job runs, downloaded when a page asks for one: a page shows a few of the
    many a study logs (the examples of one job per model and attack, the radii of one job per model).

    Without a client (a study made by hand) every job has none.
    """

    def __init__(self, client: MlflowClient | None = None):
        self._client = client
        self._read: dict[tuple[str, str], bytes | None] = {}  # pages ask for one artifact more than once

    def read(self, job: Job, name: str) -> bytes | None:
        """The bytes of one of the job's artifacts, or None where it logged none of that name."""
        if (job.run_id, name) not in self._read:
            self._read[(job.run_id, name)] = self._download(job.run_id, name)
        return self._read[(job.run_id, name)]

    def _download(self, run_id: str, name: str) -> bytes | None:
        if self._client is None or name not in {a.path for a in self._client.list_artifacts(run_id)}:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            with open(self._client.download_artifacts(run_id, name, tmp), "rb") as f:
                return f.read()

    def hold(self, joined: dict[str, dict | None]) -> None:
        """Jobs joined from slices (slices.py), by run id, with their pooled confusion.json: a joined job reads
        that and its first slice's examples; a per-image file of one slice (radii, a reliability diagram) is
        not the whole's, so it has none."""
        for run_id, confusion in joined.items():
            self._read[(run_id, Artifacts.CONFUSION)] = None if confusion is None else json.dumps(confusion).encode()
            for name in (Artifacts.RADII, Artifacts.RELIABILITY, Artifacts.CERTIFIED_RADII):
                self._read[(run_id, name)] = None

    def examples(self, job: Job) -> dict[str, np.ndarray] | None:
        """The job's examples.npz (clean, adversarial, labels, pred_clean, pred_adv), if it logged one."""
        raw = self.read(job, Artifacts.EXAMPLES)
        if raw is None:
            return None
        with np.load(io.BytesIO(raw)) as arrays:
            return dict(arrays)

    def radii(self, job: Job) -> dict | None:
        """A radius job's radii.json: classes, labels and each image's radius (None: beyond the largest budget)."""
        raw = self.read(job, Artifacts.RADII)
        return None if raw is None else json.loads(raw)

    def confusion(self, job: Job) -> dict | None:
        """The job's confusion.json: classes, and the clean and adversarial counts (true class x predicted)."""
        raw = self.read(job, Artifacts.CONFUSION)
        return None if raw is None else json.loads(raw)

    def reliability(self, job: Job) -> bytes | None:
        """The job's reliability diagram (reliability.png), clean and attacked, if it drew one."""
        return self.read(job, Artifacts.RELIABILITY)


@dataclass
class Study:
    """One study as the report reads it: its jobs, the runs beside them, its labels and its artifacts."""

    name: str
    uri: str
    experiment_id: str
    jobs: list[Job]  # the newest run of each cell, newest first
    replaced: list[tuple[Job, Job]] = field(default_factory=list)  # (older run left out, the run kept)
    trainings: dict[str, dict[str, float]] = field(default_factory=dict)  # run id: last value per metric
    probes: list[Probe] = field(default_factory=list)  # finished shortcut-probe runs, newest first
    artifacts: ArtifactReader = field(default_factory=ArtifactReader)
    labels: Labels = field(default_factory=Labels)  # from its jobs' runs; made by hand: the paper's names
    training_runs: dict[str, TrainingRun] = field(default_factory=dict)  # the trainings its jobs used, by run id
    # (start, end) in ms of its job and training runs that did not finish (failed, or killed: end 0)
    unfinished: list[tuple[int, int]] = field(default_factory=list)

    @property
    def job_runs(self) -> list[Job]:
        """The job runs used, each slice of a joined job (slices.py) on its own: what ran, where and when."""
        return [p for j in self.jobs for p in j.parts]


def studies(client: MlflowClient) -> list[str]:
    return sorted(e.name for e in client.search_experiments() if e.name != "Default")


def collect(client: MlflowClient, name: str) -> Study:
    """The study's finished job runs, newest first, one per cell, the training and probe runs beside them, and the
    labels its runs give their models and attacks."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        raise ConfigError(
            f"study {name!r} is not in the MLflow store at {client.tracking_uri}; "
            f"available studies: {', '.join(studies(client)) or 'none'}."
        )
    jobs = finished_jobs(client, experiment.experiment_id)
    if not jobs:
        raise ConfigError(
            f"study {name!r} has no finished job runs in {client.tracking_uri}; run a sweep with study={name} first."
        )
    kept, replaced = newest_per_cell(jobs)
    artifacts = ArtifactReader(client)
    kept, joined = slices.joined(kept, artifacts.confusion)
    artifacts.hold(joined)
    # Computed here as the sweep computes them, so a report of an interrupted sweep has them too.
    flags = study_flags(kept)
    kept = [replace(j, masking=j.run_id in flags, masking_reasons="; ".join(flags.get(j.run_id, []))) for j in kept]
    query = f"tags.{Tags.ROLE} = '{TRAINING_ROLE}' and attributes.status = 'FINISHED'"
    trainings = {run.info.run_id: dict(run.data.metrics) for run in search(client, experiment.experiment_id, query)}
    query = f"tags.{Tags.ROLE} = '{PROBE_ROLE}' and attributes.status = 'FINISHED'"
    probes = [
        Probe(run.data.tags[Tags.MODEL], run.data.tags[Tags.PROBE], dict(run.data.metrics), dict(run.data.params))
        for run in search(client, experiment.experiment_id, query)
    ]
    unfinished = [
        (run.info.start_time, run.info.end_time or 0)
        for run in search(client, experiment.experiment_id, "attributes.status != 'FINISHED'")
        if run.data.tags.get(Tags.ROLE) in (JOB_ROLE, TRAINING_ROLE)
    ]
    used = {j.training_run_id for j in kept} | {
        j.tags[Tags.SOURCE_TRAINING_RUN] for j in kept if j.tags.get(Tags.SOURCE_TRAINING_RUN)
    }
    training_runs = {}
    for run_id in sorted(used - {""}):
        run = client.get_run(run_id)
        trainings.setdefault(run_id, dict(run.data.metrics))  # a training of another study of the store
        info = run.info
        training_runs[run_id] = TrainingRun(
            run_id, info.start_time, info.end_time or 0, dict(run.data.tags), datasets_of(run)
        )
    return Study(
        name,
        client.tracking_uri,
        experiment.experiment_id,
        kept,
        replaced,
        trainings,
        probes,
        artifacts=artifacts,
        labels=Labels.of(kept),
        training_runs=training_runs,
        unfinished=unfinished,
    )
