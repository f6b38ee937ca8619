"""What the MLflow UI shows of a run: its data as a dataset input, its trained model as a logged model."""

import json
import os
from pathlib import Path

import numpy as np
from mlflow.entities import LoggedModelStatus
from PIL import Image

from covid_robustness.data import datamodule
from covid_robustness.data.datamodule import CXRDataModule
from covid_robustness.tracking import Tracker

from .conftest import make_cfg

TINY_DATA = {"n_images": 40, "image_size": 16, "seed": 1}


def _log_dataset_and_model(tracker: Tracker) -> tuple[str, str, dict]:
    info = CXRDataModule(**TINY_DATA).dataset_info()
    run_id = tracker.client.create_run(tracker.experiment_id, run_name="train resnet18").info.run_id
    tracker.log_metrics(run_id, {"val_accuracy": 0.75})
    tracker.log_dataset(run_id, info)
    model_id = tracker.log_trained_model(
        run_id,
        "resnet18 eps=0.3",
        {"architecture": "resnet18", "parameters": "11170000", "checkpoint": "/c/k.pt"},
        metrics={"val_accuracy": 0.75, "test_accuracy": 0.5},
        tags={"training_key": "k"},
        dataset=info,
    )
    return run_id, model_id, info


def _check_store(tracker: Tracker, run_id: str, model_id: str, info: dict) -> None:
    run = tracker.client.get_run(run_id)
    [entry] = run.inputs.dataset_inputs
    dataset = entry.dataset
    assert (dataset.name, dataset.digest, dataset.source_type) == ("synthetic-binary", info["digest"], "synthetic")
    assert json.loads(dataset.source) == {"description": info["source"]} and "seed=1" in info["source"]
    profile = json.loads(dataset.profile)
    assert profile["split_sizes"] == {"train": 28, "val": 4, "test": 8}
    assert profile["test_classes"] == {"Normal": 4, "COVID-19": 4} and profile["source"] == info["source"]
    assert {(t.key, t.value) for t in entry.tags} == {("mlflow.data.context", "test")}

    [model] = tracker.client.search_logged_models([tracker.experiment_id])
    assert (model.model_id, model.name, model.source_run_id) == (model_id, "resnet18 eps=0-3", run_id)
    assert model.status == LoggedModelStatus.READY
    assert model.params == {"architecture": "resnet18", "parameters": "11170000", "checkpoint": "/c/k.pt"}
    assert model.tags["training_key"] == "k"
    assert {m.key: m.value for m in model.metrics} == {"val_accuracy": 0.75, "test_accuracy": 0.5}
    assert {(m.dataset_name, m.dataset_digest) for m in model.metrics} == {(info["name"], info["digest"])}
    assert [o.model_id for o in run.outputs.model_outputs] == [model_id]
    # The run's own metric keeps one point: the model's copy reuses its step and timestamp.
    assert len(tracker.client.get_metric_history(run_id, "val_accuracy")) == 1


def test_run_shows_its_dataset_and_trained_model(tmp_path):
    tracker = Tracker(uri=None, root=tmp_path, experiment="x")
    _check_store(tracker, *_log_dataset_and_model(tracker))


def test_an_embedded_store_is_not_exported_to_the_next_jobs_config(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    Tracker(uri=None, root=tmp_path / "first", experiment="x")
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert make_cfg(f"tracking.dir={tmp_path / 'second'}").tracking.uri is None  # its own store, not the first's
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://server:5000")  # the user's server stays chosen
    Tracker(uri=None, root=tmp_path / "third", experiment="x")
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://server:5000"


def test_a_sqlite_store_keeps_its_artifacts_beside_its_database(tmp_path):
    (tmp_path / "store").mkdir()
    tracker = Tracker(uri=f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}", root=None, experiment="x")
    location = tracker.client.get_experiment(tracker.experiment_id).artifact_location
    assert location == (tmp_path / "store" / "artifacts").as_uri()


def test_digest_is_equal_for_equal_data_and_changes_with_one_image(monkeypatch):
    info = CXRDataModule(**TINY_DATA).dataset_info()
    assert CXRDataModule(**TINY_DATA).dataset_info() == info
    assert CXRDataModule(**{**TINY_DATA, "seed": 2}).digest() != info["digest"]  # another split, other test images
    for split, size in info["split_sizes"].items():
        assert sum(info["class_counts"][split].values()) == size
    assert sum(info["split_sizes"].values()) == TINY_DATA["n_images"]

    generate = datamodule.synthetic_dataset

    def one_pixel_changed(*args):
        images, labels = generate(*args)
        images[7, 3, 3] ^= 1
        return images, labels

    monkeypatch.setattr(datamodule, "synthetic_dataset", one_pixel_changed)
    changed = CXRDataModule(**TINY_DATA).dataset_info()
    assert changed["digest"] != info["digest"] and changed["split_sizes"] == info["split_sizes"]


def test_folder_digest_is_the_same_from_the_cache(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("COVID-19", "Normal"):
        (tmp_path / "cxr" / cls).mkdir(parents=True)
        for i in range(10):
            image = rng.integers(0, 255, (20, 20), dtype=np.uint8)
            Image.fromarray(image).save(tmp_path / "cxr" / cls / f"{i}.png")
    settings = {
        "source": "folder",
        "root": str(tmp_path / "cxr"),
        "image_size": 16,
        "dedupe": False,
        "cache_dir": str(tmp_path / "cache"),
    }
    info = CXRDataModule(**settings).dataset_info()
    assert (info["name"], info["source_type"], info["source"]) == (
        "cxr-binary",
        "local",
        str((tmp_path / "cxr").resolve()),
    )
    assert CXRDataModule(**settings).dataset_info()["digest"] == info["digest"]  # read back from the cache
    assert CXRDataModule(**settings, cache=False).dataset_info()["digest"] == info["digest"]


def test_dataset_and_model_through_the_tracking_server(mlflow_server, tmp_path):
    tracker = Tracker(uri=mlflow_server, root=tmp_path / "local", experiment="x")
    _check_store(tracker, *_log_dataset_and_model(tracker))


def test_the_links_open_each_studys_runs_in_its_saved_view(tmp_path):
    from covid_robustness.tracking import VIEW_STATE, VIEW_TAG, runs_page, study_pages

    tracker = Tracker(uri=None, root=tmp_path, experiment="paper_cpu")
    old = tracker.client.create_experiment("made_before_the_view")  # no view: its link opens the plain table
    pages = study_pages(f"sqlite:///{tmp_path / 'mlflow.db'}", "http://127.0.0.1:5001").splitlines()
    assert sorted(pages) == [
        f"study made_before_the_view: http://127.0.0.1:5001/#/experiments/{old}/runs?workflowType=machine_learning",
        f"study paper_cpu: http://127.0.0.1:5001/#/experiments/{tracker.experiment_id}/runs"
        "?viewStateShareKey=accuracy&workflowType=machine_learning",
    ]
    assert runs_page("7", "http://mlflow-host:5000/").startswith("http://mlflow-host:5000/#/experiments/7/runs?")
    assert runs_page("7", "sqlite:///x.db").startswith("http://127.0.0.1:5000/#/experiments/7/runs?")
    # The view as the UI reads it: an envelope whose state is the runs page's settings as JSON.
    envelope = json.loads(tracker.client.get_experiment(tracker.experiment_id).tags[VIEW_TAG])
    assert envelope["name"] == "Accuracy" and isinstance(envelope["createdAt"], int)
    assert json.loads(envelope["state"]) == VIEW_STATE
    Tracker(uri=None, root=tmp_path, experiment="made_before_the_view")  # the next job there adds it
    assert VIEW_TAG in tracker.client.get_experiment(old).tags


def test_the_mlflow_ui_reads_saved_views_as_the_tool_writes_them():
    """The installed UI's code holds the tag prefix, the link's parameter and the envelope's fields: an MLflow
    whose UI reads views another way fails here rather than opening the runs page without its columns."""
    import mlflow

    from covid_robustness.tracking import VIEW_STATE, VIEW_TAG

    bundle = Path(mlflow.__file__).parent / "server" / "js" / "build" / "static" / "js"
    code = "".join(f.read_text(errors="ignore") for f in bundle.glob("*.js"))
    assert f'"{VIEW_TAG.removesuffix("accuracy")}"' in code and '"viewStateShareKey"' in code
    assert "Invalid saved-view envelope" in code and "number `createdAt`, and string `state`" in code
    for column in VIEW_STATE["selectedColumns"]:  # the UI's canonical column key: type.`name`
        assert column.split(".", 1)[0] in ("metrics", "params", "tags") and column.endswith("`")
