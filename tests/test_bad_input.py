"""Bad input tried as a new user would: one sentence, a non-zero exit, no half-made MLflow run."""

import os
import runpy
import subprocess
import sys
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


def _setup_two_corrupt(root):
    _setup_corrupt(root)
    (root / "Normal" / "bad.png").write_bytes(b"not an image")


def _folder(setup=None):
    """The extra arguments of a folder case: a root made by setup (none: the root does not exist)."""

    def make(tmp_path, request):
        root = tmp_path / "cxr"
        if setup:
            setup(root)
        return [*FOLDER, f"data.root={root}"]

    return make


def _empty_root(root):
    root.mkdir()


def _read_only_store(tmp_path, request):
    store = tmp_path / "mlruns"
    store.mkdir()
    store.chmod(0o555)
    request.addfinalizer(lambda: store.chmod(0o755))  # finalizers run last-in first
    if os.geteuid() == 0:  # root ignores permission bits; the immutable flag stops root too
        subprocess.run(["chattr", "+i", str(store)], check=True)
        request.addfinalizer(lambda: subprocess.run(["chattr", "-i", str(store)], check=True))
    return [*TINY]


def _tiny(tmp_path, request):
    return [*TINY]


JOB = _tiny  # a tiny synthetic job (the base of every case that is not about folders)

# The mistakes a new user makes, each with the sentence it must stop with: whoever catches it (the command
# line's check, Hydra, the sweep's check, the job's check, the data), it exits 2 with one line, leaves no run
# and trains nothing.
BAD_INPUT = [
    ("model=resnet99", JOB, ["model=resnet99"], "there is no conf/model/resnet99.yaml. Did you mean 'resnet50'?"),
    ("model sweep", JOB, ["-m", "model=resnet18,resnet99"], "model=resnet99: there is no conf/model/resnet99.yaml"),
    ("model.name", JOB, ["model.name=notamodel"], "model 'notamodel' is not registered"),
    ("timm name", JOB, ["model=efficientnet_b0"], "'efficientnet_b0' is a timm model: it needs no file, run it with"),
    ("attack=foo", JOB, ["attack=foo"], "attack=foo: there is no conf/attack/foo.yaml"),
    ("eps<0", JOB, ["attack.eps=-0.1"], "attack.eps=-0.1 is out of range"),
    ("eps>1", JOB, ["attack.eps=2"], "attack.eps=2 is out of range"),
    ("eps abc", JOB, ["-m", "attack.eps=0.01,abc"], "attack.eps='abc' is not a number"),
    ("eps sweep", JOB, ["-m", "attack.eps=0.01,1.5"], "job #1 of 2 (attack.eps=1.5): attack.eps=1.5 is out"),
    ("max_iter<0", JOB, ["attack=pgd", "attack.max_iter=-3"], "`max_iter` must be an integer >= 0"),
    ("target class", JOB, ["attack.target_class=Pneumonia"], "attack.target_class='Pneumonia'"),
    ("st eps", JOB, ["attack=st", "attack.eps=0.01"], "attack st has no epsilon"),
    ("attack setting", JOB, ["attack.epss=0.1"], "attack.epss=0.1: no attack config has a setting 'epss'. Did you"),
    ("option setting", JOB, ["attack=pgd", "attack.epss=0.1"], "attack=pgd has no setting 'epss'. Did you mean 'eps'?"),
    ("deep setting", JOB, ["defense=jpeg", "defense.preprocessor.qualty=50"], "Did you mean 'preprocessor.quality'?"),
    ("eval setting", JOB, ["eval.max_imgs=3"], "eval.max_imgs=3: eval has no setting 'max_imgs'. Did you mean 'max_"),
    ("no root", lambda tmp_path, request: FOLDER, [], "data.root is not set"),
    ("missing root", _folder(), [], "is not a directory"),
    ("empty root", _folder(_empty_root), [], "for class 'Normal' does not exist"),
    ("one class folder", _folder(_setup_missing_class), [], "for class 'COVID-19' does not exist"),
    ("empty class folder", _folder(_setup_empty_class), [], "holds no images"),
    ("no images", _folder(_setup_no_images), [], "holds no images"),
    ("two corrupt images", _folder(_setup_two_corrupt), [], "2 image(s) could not be read"),
    ("truncated image", _folder(_setup_truncated), [], "cut.jpg"),
    ("too few images", _folder(_setup_too_few), [], "3 images {'Normal': 2, 'COVID-19': 1} are too few to split"),
    ("n_images on folder", JOB, ["data=folder", "data.n_images=160"], "data=folder has no setting 'n_images'"),
    ("inception at 32 px", JOB, ["model=inception_v3"], "too small for inception_v3, which needs at least 75 px"),
    ("test_fraction", JOB, ["data.test_fraction=1.5"], "data.test_fraction=1.5 must lie strictly between 0 and 1"),
    ("test_fraction sweep", JOB, ["-m", "data.test_fraction=0.2,1.5"], "of 2 (data.test_fraction=1.5): data.test_"),
    ("experiment=nope", JOB, ["experiment=nope"], "experiment=nope: there is no conf/experiment/nope.yaml"),
    ("atack", JOB, ["atack.eps=0.1"], "atack.eps=0.1: no config has a key 'atack'. Did you mean 'attack'?"),
    ("+atack", JOB, ["+atack.eps=0.1"], "+atack.eps=0.1: no config has a key 'atack'. Did you mean 'attack'?"),
    ("task", JOB, ["data.task=three_class"], "data.task='three_class' is not a task"),
    ("window", JOB, ["defense=spatial_smoothing", "defense.preprocessor.window_size=-1"], "must be a positive"),
    ("preprocessor key", JOB, ["defense=jpeg", "+defense.preprocessor.qualty=50"], "keyword argument 'qualty'"),
    ("os.system", JOB, ["defense=jpeg", "defense.preprocessor._target_=os.system"], "is not one of ART's"),
    ("n_jobs=0", JOB, ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=0"], "hydra.launcher.n_jobs=0 must be"),
    ("max_images<0", JOB, ["eval.max_images=-5"], "eval.max_images=-5"),
    ("first_image<0", JOB, ["eval.first_image=-1"], "eval.first_image=-1 must be a test image's index"),
    (
        "first_image certify",
        JOB,
        ["attack=certify", "defense=smoothing", "eval.first_image=4"],
        "attack=certify reads others",
    ),
    ("first_image past the split", JOB, ["eval.first_image=100000"], "leaves no image of the"),
    ("max_epochs=0", JOB, ["trainer.max_epochs=0"], "trainer.max_epochs=0"),
    ("n_images=4", JOB, ["data.n_images=4"], "4 images {'Normal': 2, 'COVID-19': 2} are too few to split"),
    ("read-only store", _read_only_store, [], "is not writable"),
    ("no server", JOB, ["tracking.uri=http://127.0.0.1:9"], "server at http://127.0.0.1:9 does not answer"),
]


def run_in_process(args: list[str], capsys) -> tuple[int, str]:
    """`python -m covid_robustness <args>` in this process (the same entry point, without a new
    interpreter's start-up): its exit status and what it wrote on stderr."""
    argv = sys.argv
    sys.argv = ["covid_robustness", *args]
    try:
        runpy.run_module("covid_robustness", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as end:
        code = end.code
    finally:
        sys.argv = argv
    return code, capsys.readouterr().err


@pytest.mark.parametrize("setup, args, message", [case[1:] for case in BAD_INPUT], ids=[case[0] for case in BAD_INPUT])
def test_every_mistake_exits_2_with_one_sentence_and_leaves_nothing(tmp_path, request, capsys, setup, args, message):
    store = tmp_path / "mlruns"
    sweep = args[:1] == ["-m"]
    where = f"hydra.sweep.dir={tmp_path / 'multirun'}" if sweep else f"hydra.run.dir={tmp_path / 'out'}"
    command = [*args[:sweep], *setup(tmp_path, request), *args[sweep:], f"tracking.dir={store}", where]
    code, err = run_in_process(command, capsys)
    lines = err.split("\r")[-1].strip().splitlines()  # what a terminal shows: a cleared progress bar is gone
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err[-3000:]
    assert message in lines[0]
    if (store / "mlflow.db").exists():  # no run made, and so none left RUNNING or FAILED
        client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
        assert not client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert not list(store.glob("checkpoints/*.pt"))  # nothing trained


def test_bad_input_table_holds_every_kind_of_mistake():
    assert len(BAD_INPUT) >= 33 and len({case[0] for case in BAD_INPUT}) == len(BAD_INPUT)


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
