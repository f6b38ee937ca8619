"""Read one study's finished runs from MLflow into a tidy table: one Job per evaluated cell."""

import hashlib
import json
import tempfile
from dataclasses import dataclass, field

import numpy as np
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from ..errors import ConfigError
from ..tracking import JOB_ROLE, TRAINING_ROLE
from ..transfer import transfer_source
from .params import numbers_params

FINISHED = "attributes.status = 'FINISHED'"


@dataclass(frozen=True)
class Job:
    """One finished job run: a trained model attacked with one attack setting."""
    run_id: str
    start_time: int
    model: str
    attack: str
    setting: str
    impl: str
    eps: float | None
    training_run_id: str
    params: dict[str, str]
    metrics: dict[str, float]
    masking: bool  # flagged as possible gradient masking by the sweep
    masking_reasons: str
    defense: str = "none"
    source_model: str | None = None  # a transfer attack's source; None: crafted on the model itself
    evaluation: str = ""  # how the examples were crafted (e.g. "oblivious + bpda")
    strongest_evaluation: str = ""
    seed: str = "0"
    cell_key: str = ""  # the run's tag: a hash of every setting that can change its numbers
    untrained: bool = False  # its model is no better than always answering the majority class
    untrained_reason: str = ""

    @property
    def cell(self) -> str:
        """What a job evaluates: two runs of one cell are reruns of one another, whatever else they share.

        Runs logged before the tag existed are keyed by the params that can change their numbers.
        """
        if self.cell_key:
            return self.cell_key
        params = numbers_params(self.params)
        if self.source_model is None:  # no source, or the model itself: a white-box job either way
            params.pop("attack.source_model", None)
        blob = json.dumps(params, sort_keys=True)
        return "params:" + hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def plain(self) -> bool:
        """No defense, examples crafted on the model itself: the paper's setting."""
        return self.defense == "none" and self.source_model is None


@dataclass
class Study:
    name: str
    uri: str
    experiment_id: str
    jobs: list[Job]  # the newest run of each cell, newest first
    replaced: list[tuple[Job, Job]] = field(default_factory=list)  # (older run left out, the run kept)
    trainings: dict[str, dict[str, float]] = field(default_factory=dict)  # run id: last value per metric


def _search(client: MlflowClient, experiment_id: str, filter_string: str) -> list:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string, max_results=1000,
                                  order_by=["attributes.start_time DESC"], page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _eps(value: str | None) -> float | None:
    return None if value in (None, "None") else float(value)


def _job(run) -> Job:
    p, t = run.data.params, run.data.tags
    return Job(run_id=run.info.run_id, start_time=run.info.start_time, model=p["model.name"],
               attack=p["attack.name"], setting=p.get("attack.setting", t.get("setting", "")),
               impl=p.get("attack.impl", "art"), eps=_eps(p.get("attack.eps")),
               training_run_id=t.get("mlflow.parentRunId", ""), params=dict(p), metrics=dict(run.data.metrics),
               masking=t.get("gradient_masking") == "true", masking_reasons=t.get("gradient_masking_reasons", ""),
               defense=p.get("defense.name", "none"), source_model=transfer_source(p["model.name"], p.get("attack.source_model")),
               evaluation=t.get("evaluation", "whitebox"), strongest_evaluation=t.get("strongest_evaluation", "whitebox"),
               seed=p.get("seed", "0"), cell_key=t.get("cell_key", ""), untrained=t.get("untrained_model") == "true",
               untrained_reason=t.get("untrained_model_reason", ""))


def studies(client: MlflowClient) -> list[str]:
    return sorted(e.name for e in client.search_experiments() if e.name != "Default")


def collect(client: MlflowClient, name: str) -> Study:
    """The study's finished job runs, newest first, one per cell, and the training runs they used."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        raise ConfigError(f"study {name!r} is not in the MLflow store at {client.tracking_uri}; "
                          f"available studies: {', '.join(studies(client)) or 'none'}.")
    runs = _search(client, experiment.experiment_id, f"tags.role = '{JOB_ROLE}' and {FINISHED}")
    if not runs:
        raise ConfigError(f"study {name!r} has no finished job runs in {client.tracking_uri}; "
                          f"run a sweep with study={name} first.")
    study = Study(name, client.tracking_uri, experiment.experiment_id, [])
    study.jobs, study.replaced = newest_per_cell(map(_job, runs))
    for run in _search(client, experiment.experiment_id, f"tags.role = '{TRAINING_ROLE}' and {FINISHED}"):
        study.trainings[run.info.run_id] = dict(run.data.metrics)
    return study


def newest_per_cell(jobs) -> tuple[list[Job], list[tuple[Job, Job]]]:
    """The newest job of each cell (jobs newest first), and each older rerun with the job kept instead."""
    kept: dict[str, Job] = {}
    replaced = []
    for job in jobs:
        if job.cell in kept:
            replaced.append((job, kept[job.cell]))
        else:
            kept[job.cell] = job
    return list(kept.values()), replaced


def examples(client: MlflowClient, job: Job) -> dict[str, np.ndarray] | None:
    """The job's examples.npz (clean, adversarial, labels, pred_clean, pred_adv), if it logged one."""
    if "examples.npz" not in {a.path for a in client.list_artifacts(job.run_id)}:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        with np.load(client.download_artifacts(job.run_id, "examples.npz", tmp)) as arrays:
            return dict(arrays)


def config(client: MlflowClient, job: Job) -> dict:
    """The job's resolved config as logged (config.yaml), with its types, unlike the string params."""
    with tempfile.TemporaryDirectory() as tmp:
        return OmegaConf.to_container(OmegaConf.load(client.download_artifacts(job.run_id, "config.yaml", tmp)))
