"""MLflow: one experiment per study, a training run per trained model, a nested run per job, a summary run
per report; Tracker writes them all, the job's runs and the report's alike.

The embedded store is sqlite at <dir>/mlflow.db with artifacts in <dir>/artifacts (MLflow 3.13+
refuses plain file stores); a sqlite URI keeps its artifacts beside its database too. With a server's URI,
the server decides where artifacts go.
"""

import functools
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import torch
from filelock import FileLock
from mlflow.entities import (
    Dataset,
    DatasetInput,
    InputTag,
    LoggedModelOutput,
    LoggedModelStatus,
    Metric,
    Param,
    RunStatus,
)
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import MLFlowLogger

from .errors import ConfigError
from .record import JOB_ROLE, REPORT_ROLE, TRAINING_ROLE, Artifacts, Metrics, Params, Tags

LOCAL_UI = "http://127.0.0.1:5000"  # `make ui`


# The study's saved view of its runs in the MLflow UI (its "Views" menu, and the page every printed link
# opens): the attack jobs, their model, attack, budget and defense, clean, adversarial and escalated accuracy
# and the verdict, least robust first. MLflow 3.17 keeps a saved view as an experiment tag
# `mlflow.sharedViewState.<key>` holding {name, createdAt, updatedAt, state}, state being the runs page's
# search facets and column settings as JSON; `?viewStateShareKey=<key>` on the runs page opens it.
VIEW_KEY = "accuracy"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
VIEW_STATE = {
    "searchFilter": f"tags.{Tags.ROLE} = '{JOB_ROLE}'",
    "orderByKey": f"metrics.`{Metrics.ADVERSARIAL}`",
    "orderByAsc": True,
    "startTime": "ALL",
    "lifecycleFilter": "Active",
    "datasetsFilter": [],
    "modelVersionFilter": "All Runs",
    "selectedColumns": [
        *(f"metrics.`{m}`" for m in (Metrics.CLEAN, Metrics.ADVERSARIAL, Metrics.ESCALATED)),
        *(f"tags.`{t}`" for t in (Tags.MODEL, Tags.ATTACK_LABEL)),
        *(f"params.`{p}`" for p in (Params.EPS, Params.DEFENSE)),
        f"tags.`{Tags.VERDICT}`",
    ],
    "columnOrder": [],
    "columnWidths": {},
    "runsPinned": [],
    "runsHidden": [],
    "runsHiddenMode": "FIRST_10_RUNS",
    "viewMaximized": False,
    "runListHidden": False,
    "isAccordionReordered": False,
    "useGroupedValuesInCharts": True,
    "hideEmptyCharts": True,
    "groupBy": None,
    "groupsExpanded": {},
}


def runs_view(now_ms: int | None = None) -> str:
    """The saved view's tag value."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    return json.dumps({"name": "Accuracy", "createdAt": now_ms, "updatedAt": now_ms, "state": json.dumps(VIEW_STATE)})


def runs_page(experiment_id: str, uri: str | None = None, view: bool = True) -> str:
    """The link that opens a study's runs table in the MLflow UI, in its saved view (view: the study has it):
    on the tracking server when uri is one, else on `make ui`. The UI opens on its GenAI screens unless the
    link asks for the model-training mode."""
    base = uri.rstrip("/") if uri and uri.startswith(("http://", "https://")) else LOCAL_UI
    shared = f"viewStateShareKey={VIEW_KEY}&" if view else ""
    return f"{base}/#/experiments/{experiment_id}/runs?{shared}workflowType=machine_learning"


def study_pages(uri: str, ui: str = LOCAL_UI) -> str:
    """One line per study of the store at uri: its name and the link to its runs in the UI served at ui."""
    from mlflow.tracking import MlflowClient

    studies = [e for e in MlflowClient(uri).search_experiments() if e.name != "Default"]
    return (
        "\n".join(f"study {e.name}: {runs_page(e.experiment_id, ui, VIEW_TAG in e.tags)}" for e in studies)
        or "no study yet"
    )


def flatten(d: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, f"{key}."))
        else:
            out[key] = str(v)
    return out


def git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=True
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# The libraries whose versions change what a job computes or records (a manifest lists them).
LIBRARIES = (
    "torch",
    "torchvision",
    "pytorch-lightning",
    "adversarial-robustness-toolbox",
    "timm",
    "numpy",
    "scipy",
    "mlflow",
    "hydra-core",
)


@functools.cache  # the same for every run of a process, which tags several runs per job
def machine() -> str:
    """The CPU model, its core count and the GPU a job ran on, e.g. "AMD EPYC 7B13, 2 cores, no GPU"."""
    cpu = platform.processor() or platform.machine()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}"


@functools.cache
def versions() -> str:
    """Python's and LIBRARIES' versions, e.g. "python 3.12.3; torch 2.5.1; ..." (one not installed is left out)."""
    found = [f"python {platform.python_version()}"]
    for name in LIBRARIES:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    if torch.version.cuda:  # the CUDA torch was built with (its wheel's +cuXYZ)
        found.append(f"cuda {torch.version.cuda}")
    return "; ".join(found)


def _check_writable(root: Path) -> None:
    """Checkpoints, locks and the embedded store live under root: fail now, not after training."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".write-test"):
            pass
    except OSError as err:
        raise ConfigError(
            f"tracking.dir={str(root)!r} is not writable ({err.strerror}); choose another with tracking.dir=<folder>."
        ) from err


def check_server(uri: str) -> None:
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=10) as response:
            response.read()
    except (OSError, ValueError) as err:
        raise ConfigError(
            f"the MLflow tracking server at {uri} does not answer ({getattr(err, 'reason', err)}); "
            "start it (make server) or unset MLFLOW_TRACKING_URI to use the embedded store."
        ) from err


def _set_tracking_uri(uri: str) -> None:
    """mlflow.set_tracking_uri, without the MLFLOW_TRACKING_URI it exports for subprocesses: the config reads
    that variable as the user's store (tracking.uri), so the next job composed in this process (a notebook's,
    a test's) would write to this job's store instead of its own tracking.dir."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


class Tracker:
    """The one writer of runs: a study's experiment at uri (None: the embedded store under root).

    root holds the checkpoints and the locks of the jobs; a writer that needs neither (the report's, which
    logs a summary run to a store it has read) passes None with a uri.
    """

    def __init__(self, uri: str | None, root: str | Path | None, experiment: str):
        if uri is None and root is None:
            raise ValueError("a Tracker needs a tracking URI or a folder for the embedded store")
        self.root = None if root is None else Path(root).resolve()
        if self.root is not None:
            _check_writable(self.root)
        if uri is None:
            uri = f"sqlite:///{self.root / 'mlflow.db'}"
        if uri.startswith("sqlite:///"):  # beside the database, not in ./mlruns of wherever the job started
            artifact_location = (Path(uri.removeprefix("sqlite:///")).resolve().parent / "artifacts").as_uri()
        else:
            artifact_location = None
            if uri.startswith(("http://", "https://")):
                check_server(uri)
        self.uri = uri
        _set_tracking_uri(uri)
        self.client = MlflowClient(uri)
        exp = self.client.get_experiment_by_name(experiment)
        self.experiment_id = exp.experiment_id if exp else self.client.create_experiment(experiment, artifact_location)
        self.experiment = experiment
        if exp is None or VIEW_TAG not in exp.tags:  # a study made before the view had none
            self.client.set_experiment_tag(self.experiment_id, VIEW_TAG, runs_view())

    @classmethod
    def from_config(cls, cfg: DictConfig) -> "Tracker":
        return cls(cfg.tracking.uri, cfg.tracking.dir, cfg.study)

    def checkpoint_path(self, key: str) -> Path:
        return self.root / "checkpoints" / f"{key}.pt"

    def epochs_path(self, key: str) -> Path:
        """The training's last finished epoch (job/epochs.py), while it trains; gone once it is done."""
        return self.root / "checkpoints" / f"{key}.last.ckpt"

    def reopen(self, run_id: str) -> dict[str, str] | None:
        """Set an interrupted training run of this store RUNNING again (of any study: trainings are the
        store's), without the error its interruption left, and return its other tags; None when no such run
        is in the store (deleted, or another store)."""
        try:
            run = self.client.get_run(run_id)
        except MlflowException:
            return None
        if run.info.lifecycle_stage != "active":
            return None
        tags = dict(run.data.tags)
        if tags.pop(Tags.ERROR, None) is not None:
            self.client.delete_tag(run_id, Tags.ERROR)
        self.client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
        return tags

    def lock(self, name: str) -> FileLock:
        """An inter-process lock beside the store; the OS releases it if its holder dies."""
        (self.root / "locks").mkdir(parents=True, exist_ok=True)
        return FileLock(self.root / "locks" / f"{name}.lock")

    def _runs(
        self, role: str, tag: str, value: str, status: str = "FINISHED", max_results: int = 5000, store: bool = False
    ) -> list:
        """Runs of this study with the tag's value, newest first; store=True: of every study in the store."""
        studies = [e.experiment_id for e in self.client.search_experiments()] if store else [self.experiment_id]
        return self.client.search_runs(
            studies,
            f"tags.{tag} = '{value}' and tags.{Tags.ROLE} = '{role}' and attributes.status = '{status}'",
            max_results=max_results,
            order_by=["attributes.start_time DESC"],
        )

    def find_training(self, key: str) -> str | None:
        """The finished training run with this key whose checkpoint is on disk, if any, in any study of the
        store: the key holds every setting that made the weights, and the checkpoint is the store's, so a
        study whose recipe trains as another's did (clinical_cpu as paper_cpu) reads that training."""
        if not self.checkpoint_path(key).is_file():
            return None
        runs = self._runs(TRAINING_ROLE, Tags.TRAINING_KEY, key, max_results=1, store=True)
        return runs[0].info.run_id if runs else None

    def find_job(self, cell: str, role: str = JOB_ROLE):
        """The finished job run (or run of another role: a probe's) of this grid cell, if any."""
        runs = self._runs(role, Tags.CELL_KEY, cell, max_results=1)
        return runs[0] if runs else None

    def fail_interrupted(self, role: str, tag: str, value: str, store: bool = False) -> int:
        """Mark runs left RUNNING by a killed process as FAILED (store=True: in any study of the store, as a
        training's lock is the store's). Call only while holding their lock."""
        runs = self._runs(role, tag, value, status="RUNNING", store=store)
        for run in runs:
            self.end(run.info.run_id, ok=False, error="interrupted: its process ended before the run did")
        return len(runs)

    def logger(self, run_name: str | None = None, tags: dict | None = None, run_id: str | None = None) -> MLFlowLogger:
        """A Lightning logger on a new run (run_name, tags) or an existing one (run_id)."""
        return MLFlowLogger(
            experiment_name=self.experiment,
            run_name=run_name,
            tracking_uri=self.uri,
            tags=tags,
            run_id=run_id,
            log_model=False,
        )

    def start_job(self, parent_run_id: str | None, run_name: str, tags: dict) -> str:
        """A job's run, nested under its training run (none: a top-level run); tags may set another role."""
        parent = {} if parent_run_id is None else {Tags.PARENT: parent_run_id}
        run = self.client.create_run(
            self.experiment_id,
            run_name=run_name,
            tags={**parent, Tags.ROLE: JOB_ROLE, **tags},
        )
        return run.info.run_id

    def log_params(self, run_id: str, params: dict[str, str]) -> None:
        items = [Param(k, v[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(run_id, params=items[i : i + 100])

    def log_metrics(self, run_id: str, metrics: dict[str, float]) -> None:
        self.client.log_batch(
            run_id, metrics=[Metric(k, float(v), int(time.time() * 1000), 0) for k, v in metrics.items()]
        )

    def metrics(self, run_id: str) -> dict[str, float]:
        """A run's metrics (the latest value of each)."""
        return dict(self.client.get_run(run_id).data.metrics)

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        for name, value in tags.items():
            self.client.set_tag(run_id, name, value)

    def log_config(self, run_id: str, cfg: DictConfig) -> None:
        self.client.log_text(run_id, OmegaConf.to_yaml(cfg, resolve=True), Artifacts.CONFIG)

    def log_arrays(self, run_id: str, arrays: dict[str, np.ndarray], name: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            np.savez_compressed(path, **arrays)
            self.client.log_artifact(run_id, str(path))

    def log_json(self, run_id: str, data: dict, name: str) -> None:
        self.client.log_dict(run_id, data, name)

    def log_figure(self, run_id: str, figure, name: str) -> None:
        self.client.log_figure(run_id, figure, name)

    def end(self, run_id: str, ok: bool, error: str | None = None) -> None:
        if error:
            self.client.set_tag(run_id, Tags.ERROR, error[:5000])
        self.client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED if ok else RunStatus.FAILED))

    def log_report(self, files: list[Path], jobs: int) -> str:
        """A summary run of the study's report (role report, tagged current) holding its files; the study's
        earlier summary runs are marked superseded by it. jobs: how many job runs the report used.

        A failed upload leaves the new run FAILED and the earlier ones current.
        """
        earlier = self.client.search_runs(
            [self.experiment_id],
            f"tags.{Tags.ROLE} = '{REPORT_ROLE}' and tags.{Tags.CURRENT} = 'true'",
            max_results=1000,
        )
        run_id = self.client.create_run(
            self.experiment_id,
            run_name=f"report {self.experiment}",
            tags={Tags.ROLE: REPORT_ROLE, Tags.CURRENT: "true", Tags.JOBS: str(jobs), Tags.COMMIT: git_commit()},
        ).info.run_id
        try:
            for path in files:
                self.client.log_artifact(run_id, str(path))
        except BaseException:
            self.end(run_id, ok=False)
            raise
        self.end(run_id, ok=True)
        for run in earlier:
            self.set_tags(run.info.run_id, {Tags.CURRENT: "false", Tags.SUPERSEDED_BY: run_id})
        return run_id

    def log_dataset(self, run_id: str, info: dict, context: str = "test") -> None:
        """The data a run saw as an MLflow dataset input: the runs list's Dataset column and filter.

        info is CXRDataModule.dataset_info(). MLflow stores one dataset per name and digest in an
        experiment, so the digest must determine the profile (split sizes, class counts).
        The UI shows a "local" source as a path and lists the profile's top-level keys, so
        the source goes into the profile too: other source types have no source line there.
        """
        source_type = info.get("source_type", "local")
        source = {"uri": info["source"]} if source_type == "local" else {"description": info["source"]}
        profile = {
            "source": info["source"],
            "images": sum(info["split_sizes"].values()),
            "split_sizes": info["split_sizes"],
            **{f"{split}_classes": counts for split, counts in info["class_counts"].items()},
        }
        if "image_size" in info:
            profile["image_size"] = f"{info['image_size']} x {info['image_size']} grayscale"
        if info.get("skipped"):
            profile["skipped_unreadable"] = info["skipped"]
        dataset = Dataset(
            name=info["name"],
            digest=info["digest"],
            source_type=source_type,
            source=json.dumps(source),
            profile=json.dumps(profile),
        )
        self.client.log_inputs(run_id, datasets=[DatasetInput(dataset, [InputTag(MLFLOW_DATASET_CONTEXT, context)])])

    def log_trained_model(
        self,
        run_id: str,
        name: str,
        params: dict[str, str],
        metrics: dict[str, float] | None = None,
        tags: dict | None = None,
        dataset: dict | None = None,
    ) -> str:
        """A logged model (the experiment's Models tab) for the weights a training run made; its id.

        No weights are uploaded: the checkpoint stays in the training cache, so its path belongs in
        params or tags. MLflow rejects / : . % and quotes in model names; they become "-".
        Model metrics are run metrics that name the model, so a metric the run already has is
        logged again with its own step and timestamp, which the store keeps as one point.
        dataset (a dataset_info) names the data the metrics were measured on, for the Models tab's
        Dataset column.
        """
        model = self.client.create_logged_model(
            self.experiment_id,
            name=re.sub(r"[/:.%\"']", "-", name),
            source_run_id=run_id,
            params={k: str(v)[:6000] for k, v in params.items()},
            tags={k: str(v)[:5000] for k, v in (tags or {}).items()},
        )
        if metrics:
            self.client.log_batch(run_id, metrics=self._model_metrics(run_id, model.model_id, metrics, dataset))
        self.client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
        self.client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
        return model.model_id

    def _model_metrics(
        self, run_id: str, model_id: str, metrics: dict[str, float], dataset: dict | None
    ) -> list[Metric]:
        """The metrics for a model, at the step and time of the run's equal latest value where it has one."""
        latest = self.metrics(run_id)
        now, out = int(time.time() * 1000), []
        for key, value in metrics.items():
            at = (now, 0)
            if latest.get(key) == float(value):
                last = max(self.client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
                at = (last.timestamp, last.step)
            out.append(
                Metric(
                    key,
                    float(value),
                    *at,
                    model_id=model_id,
                    dataset_name=dataset and dataset["name"],
                    dataset_digest=dataset and dataset["digest"],
                )
            )
        return out
