"""Recipes that cannot rot: the first job of every conf/experiment/*.yaml runs for real, shrunk.

Each recipe is composed as `python -m covid_robustness -m experiment=<name>` composes it, its sweep is
expanded as the sweep's own check expands it (job.sweep.job_overrides), and its first job runs through that command as a
multirun of that one job (the sweep's checks before it, the masking flags and the table of cells after
it), into a store of its own. Only sizes change: a slice of the shared chest X-rays (or as many synthetic
images), the smallest image side the job's model takes, one epoch, a few attacked images. A recipe added
to conf/experiment is covered without a change here.

The command runs in this process, as `python -m` runs it (runpy): a new process would spend most of a tiny
job's time importing torch, Lightning, ART and MLflow again, about 10 s a recipe on 2 cores.
"""

import logging
import runpy
import shutil
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from covid_robustness.job.sweep import job_overrides

from .conftest import CONF, SHARED_CXR, store_runs

RECIPES = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
PER_CLASS = 24  # images per class: every split keeps both classes after the 80/20 and 10 % cuts
ATTACKED = 4
SHRINK = [
    "trainer.max_epochs=1",
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
    "data.num_workers=0",
    "data.batch_size=16",  # two training batches, so that half an epoch (limit_train_batches=0.5) is one
    f"eval.max_images={ATTACKED}",
    # A recipe's escalation runs, shortened; its transfer sources (each a training) are tested in
    # test_escalation.py, not once per recipe.
    "eval.escalate_max_iter=2",
    "eval.escalate_restarts=1",
    "eval.escalate_square_queries=10",
    "eval.escalate_sources=[]",
]
SYNTHETIC = [f"data.n_images={2 * PER_CLASS}"]


def first_job(recipe: str) -> tuple[list[str], DictConfig]:
    """The recipe's first job as its sweep would run it: overrides that pin every swept key to that job's
    value, and the job's composed config."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        config = compose("config", overrides=[f"experiment={recipe}"], return_hydra_config=True)
        job = [o for o in job_overrides(config)[0] if o != f"experiment={recipe}"]
        return job, compose("config", overrides=[f"experiment={recipe}", *job])


def min_image_size(cfg: DictConfig) -> int:
    """The smallest image side that the job's model (and a transfer attack's source model) takes."""
    from covid_robustness.models.registry import spec

    source = cfg.attack.get("source_model")
    return max(spec(name).min_size for name in {cfg.model.name, *([source] if source else [])})


@contextmanager
def app_state():
    """Puts back what a Hydra app run in this process leaves behind: sys.argv, the global Hydra and its
    config, and the root logger's handlers and level (its job logging replaces them)."""
    root = logging.getLogger()
    argv, handlers, level = sys.argv, root.handlers[:], root.level
    try:
        yield
    finally:
        for handler in root.handlers:
            if handler not in handlers:
                handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
        sys.argv = argv
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = None


def covid_robustness(*args: str) -> int:
    """`python -m covid_robustness *args`, run in this process as `-m` runs it; its exit status."""
    with app_state():
        sys.argv = ["covid_robustness", *args]
        try:
            with warnings.catch_warnings():  # the module is imported already when a test imported it
                warnings.filterwarnings("ignore", "'covid_robustness.__main__' found in sys.modules", RuntimeWarning)
                runpy.run_module("covid_robustness", run_name="__main__", alter_sys=True)
        except SystemExit as stop:
            return stop.code if isinstance(stop.code, int) else int(stop.code is not None)
    return 0


@pytest.fixture(scope="module")
def cxr_slice(tmp_path_factory) -> Path:
    """The first PER_CLASS images of each binary class of the shared chest X-rays, copied into a folder."""
    root = tmp_path_factory.mktemp("cxr-slice")
    for name in ("COVID-19", "Normal"):
        images = sorted(p for p in (SHARED_CXR / name).iterdir() if p.is_file())[:PER_CLASS]
        assert len(images) == PER_CLASS, f"{SHARED_CXR / name} holds {len(images)} images, fewer than {PER_CLASS}"
        (root / name).mkdir()
        for image in images:
            shutil.copy2(image, root / name / image.name)
    return root


@pytest.fixture(scope="module")
def blank_store(tmp_path_factory) -> Path:
    """An MLflow store with its tables made and no run: making the tables takes seconds, so every recipe's
    store starts as a copy of this one."""
    from mlflow.tracking import MlflowClient

    db = tmp_path_factory.mktemp("blank-store") / "mlflow.db"
    MlflowClient(f"sqlite:///{db}").search_experiments()
    return db


def test_the_recipes_are_found():
    assert {"smoke", "paper", "paper_cpu"} <= set(RECIPES)


@pytest.mark.parametrize("recipe", RECIPES)
def test_the_first_job_of_every_recipe_runs_tiny(recipe, tmp_path, cxr_slice, blank_store, capsys):
    job, cfg = first_job(recipe)
    store = tmp_path / "mlruns"
    store.mkdir()
    shutil.copy2(blank_store, store / "mlflow.db")
    data = [f"data.root={cxr_slice}"] if cfg.data.source == "folder" else SYNTHETIC
    status = covid_robustness(
        "-m",
        f"experiment={recipe}",
        *job,
        *data,
        *SHRINK,
        f"data.image_size={min_image_size(cfg)}",
        f"tracking.dir={store}",
        "tracking.uri=null",
        f"hydra.sweep.dir={tmp_path / 'multirun'}",
    )
    out, err = capsys.readouterr()
    command = f"python -m covid_robustness -m experiment={recipe} {' '.join(job)}"
    assert status == 0, f"{command} exited {status}:\n{err[-3000:]}"
    probe = cfg.get("probe", {}).get("name", "none") != "none"
    if not probe:
        assert f"study {cfg.study}: 1 of 1 cells finished" in out, out[-3000:]
    runs = store_runs(store, cfg.study)
    jobs = [r for r in runs if r.data.tags.get("role") == ("probe" if probe else "attack")]
    assert [r.info.status for r in jobs] == ["FINISHED"], f"{command}: job runs {[r.info.status for r in jobs]}"
    assert jobs[0].data.params["model.name"] == cfg.model.name
    if not probe:
        trainings = [r for r in runs if r.data.tags.get("role") == "training"]
        assert [r.info.status for r in trainings] == ["FINISHED"], command
        corrupted = cfg.get("corruption", {}).get("name", "none") != "none"
        readings = len(cfg.corruption.severities) if corrupted else 1  # a corrupted job reads each severity
        assert jobs[0].data.metrics["attack_images"] == ATTACKED * readings
        budget = cfg.attack.get("eps") is not None and cfg.attack.get("target_class") is None
        if cfg.eval.escalate and budget and cfg.attack.name != "radius":  # the recipe escalates: it did
            assert "escalated_accuracy" in jobs[0].data.metrics and jobs[0].data.tags["verdict"], command
