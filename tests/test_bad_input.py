"""Bad input tried as a new user would: one sentence, a non-zero exit, no half-made MLflow run."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from covid_robustness.errors import ConfigError
from covid_robustness.job.train import save_checkpoint
from covid_robustness.models.module import CXRClassifier

from .conftest import TINY, run_cli, store_runs

FOLDER = [
    "data=folder",
    "data.image_size=32",
    "data.batch_size=16",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "eval.max_images=8",
]


def _images(folder: Path, n: int):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (40, 40), dtype=np.uint8)).save(folder / f"{i}.png")


def _assert_clean_failure(result, tmp_path, message):
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    db = tmp_path / "mlruns" / "mlflow.db"
    if db.exists():  # nothing half-made: no run may be left RUNNING or FAILED by the refusal
        client = MlflowClient(f"sqlite:///{db}")
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
        assert all(r.info.status == "FINISHED" for r in runs)


def _setup_missing_class(root):
    _images(root / "Normal", 4)


def _setup_empty_class(root):
    _images(root / "Normal", 4)
    (root / "COVID-19").mkdir()


def _setup_no_images(root):
    for cls in ("Normal", "COVID-19"):
        (root / cls).mkdir(parents=True)
        (root / cls / "readme.txt").write_text("no images here")


def _setup_corrupt(root):
    _images(root / "Normal", 12)
    _images(root / "COVID-19", 12)
    (root / "COVID-19" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)


def _setup_truncated(root):
    _images(root / "Normal", 6)
    _images(root / "COVID-19", 6)
    Image.fromarray(np.zeros((60, 60, 3), np.uint8)).save(root / "COVID-19" / "cut.jpg")
    data = (root / "COVID-19" / "cut.jpg").read_bytes()
    (root / "COVID-19" / "cut.jpg").write_bytes(data[: len(data) // 2])


def _setup_too_few(root):
    _images(root / "Normal", 2)
    _images(root / "COVID-19", 1)


@pytest.mark.parametrize(
    "setup, message",
    [
        (_setup_missing_class, "for class 'COVID-19' does not exist"),
        (_setup_empty_class, "holds no images"),
        (_setup_no_images, "holds no images"),
        (_setup_corrupt, "1 image(s) could not be read"),
        (_setup_truncated, "cut.jpg"),
        (_setup_too_few, "3 images {'Normal': 2, 'COVID-19': 1} are too few to split"),
    ],
)
def test_bad_data_folders(tmp_path, setup, message):
    root = tmp_path / "cxr"
    setup(root)
    result = run_cli(
        *FOLDER, f"data.root={root}", f"tracking.dir={tmp_path / 'mlruns'}", f"hydra.run.dir={tmp_path / 'out'}"
    )
    _assert_clean_failure(result, tmp_path, message)


def test_unreadable_images_can_be_skipped_and_are_counted(tmp_path):
    root = tmp_path / "cxr"
    _setup_corrupt(root)
    result = run_cli(
        *FOLDER,
        f"data.root={root}",
        "data.skip_unreadable=true",
        f"tracking.dir={tmp_path / 'mlruns'}",
        f"hydra.run.dir={tmp_path / 'out'}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    job = store_runs(tmp_path / "mlruns", role="attack")[0]
    assert job.data.params["data.skipped_images"] == "1"


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    common = [*TINY, "eval.max_images=8", f"tracking.dir={tmp_path / 'mlruns'}", f"hydra.run.dir={tmp_path / 'out'}"]
    assert run_cli("model=resnet18", *common).returncode == 0
    (checkpoint,) = (tmp_path / "mlruns" / "checkpoints").glob("*.pt")
    # The resnet18 key now holds a wrn16_8 (as a copied or renamed checkpoint would).
    save_checkpoint(CXRClassifier("wrn16_8", 2, 1, mean=0.5, std=0.25, model_kwargs={"stem": "downsample"}), checkpoint)
    result = run_cli("model=resnet18", "attack=pgd", *common)
    _assert_clean_failure(result, tmp_path, "holds a wrn16_8, not the resnet18 this job needs")


def test_an_unreachable_tracking_server(tmp_path):
    result = run_cli(
        *TINY,
        "tracking.uri=http://127.0.0.1:9",
        f"tracking.dir={tmp_path / 'mlruns'}",
        f"hydra.run.dir={tmp_path / 'out'}",
    )
    _assert_clean_failure(result, tmp_path, "the MLflow tracking server at http://127.0.0.1:9 does not answer")


def test_a_read_only_store(tmp_path):
    store = tmp_path / "mlruns"
    store.mkdir()
    store.chmod(0o555)
    immutable = os.geteuid() == 0  # root ignores permission bits; the immutable flag stops root too
    if immutable:
        subprocess.run(["chattr", "+i", str(store)], check=True)
    try:
        result = run_cli(*TINY, f"tracking.dir={store}", f"hydra.run.dir={tmp_path / 'out'}")
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(store)], check=True)
        store.chmod(0o755)
    _assert_clean_failure(result, tmp_path, f"tracking.dir='{store}' is not writable")
    assert not any(store.iterdir())


@pytest.mark.parametrize(
    "setup, message",
    [
        (_setup_missing_class, "for class 'COVID-19' does not exist"),
        (_setup_empty_class, "holds no images"),
    ],
)
def test_a_sweep_check_reads_each_folders_listing_before_anything_trains(tmp_path, setup, message):
    from hydra import compose, initialize_config_dir

    from covid_robustness.job.plan import _listing, validate

    from .conftest import CONF

    def folder(root):
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose("config", overrides=["data=folder", f"data.root={root}", "data.image_size=32"])

    setup(tmp_path / "data")
    with pytest.raises(ConfigError, match=message):
        validate(folder(tmp_path / "data"))
    _images(tmp_path / "ok" / "Normal", 3)
    _images(tmp_path / "ok" / "COVID-19", 3)
    ok = folder(tmp_path / "ok")
    validate(ok)
    hits = _listing.cache_info().hits
    validate(ok)  # the next job of a sweep on the same folder: listed once
    assert _listing.cache_info().hits == hits + 1
