"""The shortcut probes: how much of the task a model solves without the lungs (probe=border, statistics)."""

import numpy as np
import pytest
from omegaconf import open_dict
from PIL import Image

from covid_robustness.__main__ import probe_arguments
from covid_robustness.data import cache
from covid_robustness.data.classes import TASKS
from covid_robustness.data.datamodule import CXRDataModule
from covid_robustness.data.filestats import FILE_STATS, array_statistics
from covid_robustness.data.folder import read_folder
from covid_robustness.errors import ConfigError
from covid_robustness.job.keys import cell_key, job_settings, training_key
from covid_robustness.job.plan import validate
from covid_robustness.job.probe import (
    blank_interior,
    blank_splits,
    frame_width,
    probe_metrics,
    statistics_probe,
)
from covid_robustness.job.run import run
from covid_robustness.job.summary import probe_summary
from covid_robustness.job.sweep import SweepCallbacks
from covid_robustness.shortcut import verdict, verdict_table
from covid_robustness.tracking import Tracker, flatten

from .conftest import make_cfg, store_runs

STAT = {name: i for i, name in enumerate(FILE_STATS)}


def _noise(rng, size: int) -> np.ndarray:
    return rng.integers(40, 220, (size, size), dtype=np.uint8)


def _write(folder, images, fmt: str, mode: str, **save) -> None:
    folder.mkdir(parents=True)
    for i, image in enumerate(images):
        Image.fromarray(image).convert(mode).save(folder / f"{i}.{fmt.lower()}", fmt, **save)


def _folder_module(root, tmp_path) -> CXRDataModule:
    dm = CXRDataModule(
        source="folder", root=str(root), image_size=32, cache_dir=str(tmp_path / "cache"), dedupe=False, seed=0
    )
    dm.setup()
    return dm


# (a) The statistics probe.


def test_file_statistics_describe_the_original_file(tmp_path):
    rng = np.random.default_rng(0)
    _write(tmp_path / "COVID-19", [rng.integers(0, 255, (30, 50, 3), dtype=np.uint8)], "PNG", "RGBA")
    _write(tmp_path / "Normal", [rng.integers(0, 255, (40, 20, 3), dtype=np.uint8)], "JPEG", "RGB")
    images, labels, paths, _, stats = read_folder(tmp_path, TASKS["binary"], {}, 16, stats=True)
    assert images.shape == (2, 16, 16) and stats.shape == (2, len(FILE_STATS))
    for path, row in zip(paths, stats):
        with Image.open(path) as img:
            gray = np.asarray(img.convert("L"), dtype=np.float64)  # no transparency here: alpha is 255
            assert row[STAT["width"]] == img.width and row[STAT["height"]] == img.height
            assert row[STAT["aspect_ratio"]] == pytest.approx(img.width / img.height)
            assert row[STAT[f"mode_{img.mode}"]] == 1 and row[STAT[f"format_{img.format}"]] == 1
        assert row[[STAT[f"mode_{m}"] for m in ("L", "RGB", "RGBA", "P", "I;16", "other")]].sum() == 1
        assert row[STAT["file_bytes"]] == path.stat().st_size
        assert row[STAT["gray_mean"]] == pytest.approx(gray.mean())
        assert row[STAT["gray_std"]] == pytest.approx(gray.std())
    generated = array_statistics(images)  # the synthetic source: its size, mode L, no file
    assert generated[0, STAT["width"]] == 16 and generated[0, STAT["mode_L"]] == 1
    assert generated[0, STAT["format_other"]] == 1 and generated[0, STAT["file_bytes"]] == 0
    assert generated[0, STAT["gray_mean"]] == pytest.approx(images[0].mean())


def test_statistics_probe_finds_a_format_shortcut_and_not_a_lung_difference(tmp_path):
    rng = np.random.default_rng(0)
    # Same pixel distribution; COVID-19 saved as 40 x 40 RGB JPEGs, Normal as 48 x 48 grayscale PNGs.
    _write(tmp_path / "shortcut" / "COVID-19", [_noise(rng, 40) for _ in range(40)], "JPEG", "RGB")
    _write(tmp_path / "shortcut" / "Normal", [_noise(rng, 48) for _ in range(40)], "PNG", "L")
    found = statistics_probe(_folder_module(tmp_path / "shortcut", tmp_path), seed=0)
    assert found["probe_accuracy"] == 1.0 and found["majority_class_accuracy"] == 0.5
    assert verdict(None, {"statistics": found["probe_accuracy"]}, 0.5).startswith("shortcut: the statistics probe")

    # Same size, mode and format (uncompressed PNG: the same bytes); COVID-19 differs in the lung fields only,
    # where its pixels are sorted into an opacity-like gradient: every image holds the same pixel values.
    def lungs(sort: bool) -> np.ndarray:
        image = _noise(rng, 48)
        if sort:
            image[12:36, 6:42] = np.sort(image[12:36, 6:42], axis=None).reshape(24, 36)
        return image

    _write(tmp_path / "lungs" / "COVID-19", [lungs(True) for _ in range(100)], "PNG", "L", compress_level=0)
    _write(tmp_path / "lungs" / "Normal", [lungs(False) for _ in range(100)], "PNG", "L", compress_level=0)
    dm = _folder_module(tmp_path / "lungs", tmp_path)
    x, y = dm.file_statistics("train")
    assert len(np.unique(x[:, STAT["file_bytes"]])) == 1  # nothing but the lungs tells the classes apart
    near = statistics_probe(dm, seed=0)
    assert abs(near["probe_above_chance"]) < 0.15, near
    assert verdict(None, {"statistics": near["probe_accuracy"]}, near["majority_class_accuracy"]).startswith("no ")


def test_decode_cache_keeps_the_file_statistics_and_renews_an_older_entry(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    root, store = tmp_path / "cxr", tmp_path / "cache"
    _write(root / "COVID-19", [_noise(rng, 36) for _ in range(3)], "JPEG", "RGB")
    _write(root / "Normal", [_noise(rng, 30) for _ in range(3)], "PNG", "L")
    first = cache.read_folder_cached(root, TASKS["binary"], {}, 24, cache_dir=store)
    assert first[4].shape == (6, len(FILE_STATS)) and set(first[4][:, STAT["width"]]) == {30, 36}

    def no_reading(*args, **kwargs):
        raise AssertionError("read a file although the cache holds these files")

    with monkeypatch.context() as m:  # a warm run opens no image file
        m.setattr(cache, "read_folder", no_reading)
        m.setattr(Image, "open", no_reading)
        warm = cache.read_folder_cached(root, TASKS["binary"], {}, 24, cache_dir=store)
    assert np.array_equal(warm[4], first[4]) and np.array_equal(warm[0], first[0])

    # An entry written before the statistics existed: decoded again (no KeyError) and written with them.
    (entry,) = store.glob("*.npz")
    with np.load(entry) as f:
        old = {k: f[k] for k in ("images", "labels", "hashes", "skipped")}
    np.savez(entry, **old)
    renewed = cache.read_folder_cached(root, TASKS["binary"], {}, 24, cache_dir=store)
    assert np.array_equal(renewed[4], first[4])
    with np.load(entry) as f:
        assert "stats" in f.files


# (b) The border probe.


def test_blank_interior_keeps_exactly_the_frame():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (3, 32, 40), dtype=np.uint8)
    before = images.copy()
    out = blank_interior(images, 0.15, fill=7)
    assert (frame_width(32, 0.15), frame_width(40, 0.15)) == (5, 6)  # round(4.8), round(6.0)
    frame = np.ones((32, 40), bool)
    frame[5:27, 6:34] = False
    assert np.array_equal(out[:, frame], images[:, frame])  # every frame pixel as it was
    assert (out[:, ~frame] == 7).all()  # every interior pixel the fill
    assert np.array_equal(images, before)  # the input is not changed
    assert (blank_interior(images, 0.0, 9) == 9).all()  # no frame: nothing stays
    assert frame_width(32, 0.49) == 16

    dm = CXRDataModule(n_images=40, image_size=32)
    dm.setup()
    original = {k: s.images.copy() for k, s in dm.splits.items()}
    fill = blank_splits(dm, 0.25)
    assert fill == round(original["train"].mean())  # the training split's mean pixel
    for name, split in dm.splits.items():  # train, validation and test alike
        assert (split.images[:, 8:24, 8:24] == fill).all()
        assert np.array_equal(split.images[:, :8], original[name][:, :8])


def test_border_probe_job_trains_its_own_model_logs_and_resumes(tmp_path, capsys):
    cfg = make_cfg("probe=border", "study=probe", tmp_path=tmp_path)
    first = run(cfg)
    assert set(first) >= {
        "probe_accuracy",
        "probe_sensitivity",
        "probe_specificity",
        "majority_class_accuracy",
        "probe_above_chance",
    }
    assert first["probe_above_chance"] == pytest.approx(first["probe_accuracy"] - first["majority_class_accuracy"])
    assert first["probe_frame_pixels"] == 5  # round(0.15 x 32)
    store = tmp_path / "mlruns"
    (probe,) = store_runs(store, "probe", role="probe")
    (training,) = store_runs(store, "probe", role="training")
    assert probe.data.tags["probe"] == "border" and probe.data.tags["model"] == "resnet18"
    assert probe.data.tags["cell_key"] == cell_key(cfg)
    assert probe.data.tags["mlflow.parentRunId"] == training.info.run_id  # nested under its own training
    assert probe.data.params["probe.border"] == "0.15" and probe.data.params["model.name"] == "resnet18"
    assert probe.data.metrics["probe_accuracy"] == first["probe_accuracy"]
    assert training.data.tags["training_key"] == training_key(cfg) != training_key(make_cfg())
    assert training.data.tags["probe"] == "border" and training.data.params["probe.border"] == "0.15"
    assert (store / "checkpoints" / f"{training_key(cfg)}.pt").is_file()

    assert run(cfg) == probe.data.metrics  # the finished cell is skipped
    assert len(store_runs(store, "probe", role="probe")) == 1 and len(store_runs(store, "probe", role="training")) == 1

    # The statistics probe on the synthetic source (features of the generated images) depends on no model:
    # the second model's job finds it finished.
    stats = run(make_cfg("probe=statistics", "study=probe", tmp_path=tmp_path))
    assert 0 <= stats["probe_accuracy"] <= 1
    run(make_cfg("probe=statistics", "study=probe", "model=wrn16_8", tmp_path=tmp_path))
    assert [r.data.tags["probe"] for r in store_runs(store, "probe", role="probe")] == ["statistics", "border"]
    assert "mlflow.parentRunId" not in store_runs(store, "probe", role="probe")[0].data.tags
    probes = [cfg, make_cfg("probe=statistics", "study=probe", tmp_path=tmp_path)]
    table = probe_summary(probes)
    assert table.splitlines()[2].split()[:3] == ["resnet18", "not", "run"]  # no normal job of this training
    assert f"{100 * first['probe_accuracy']:.1f}" in table and f"{100 * stats['probe_accuracy']:.1f}" in table

    # A normal job of the same training (recorded as run.py records one; running it would take 20 s): its
    # clean test accuracy joins the table, which the sweep prints when it ends instead of a table of cells.
    tracker = Tracker.from_config(cfg)
    normal = tracker.start_job(None, "resnet18 fgsm", {"training_key": training_key(make_cfg()), "cell_key": "x"})
    tracker.log_metrics(normal, {"test/acc": 0.8125})
    tracker.end(normal, ok=True)
    callbacks = SweepCallbacks()
    callbacks.jobs = [([], c) for c in probes]
    callbacks.on_multirun_end(config=None)
    printed = capsys.readouterr().out
    assert "resnet18  81.2 " in printed and "resnet18: " in printed
    assert "cells finished" not in printed


# (c) probe=none changes no key of a normal job.


@pytest.mark.parametrize("overrides", [(), ("attack=pgd", "defense=jpeg"), ("defense=adv_train_pgd", "seed=3")])
def test_probe_none_leaves_every_key_and_param_as_before(overrides):
    with_group = make_cfg(*overrides)
    without = make_cfg(*overrides, "~probe")  # composed as before the probe group existed
    assert "probe" in with_group and "probe" not in without
    assert training_key(with_group) == training_key(without)
    assert cell_key(with_group) == cell_key(without)
    assert flatten(job_settings(with_group)) == flatten(job_settings(without))
    deleted = make_cfg(*overrides)
    with open_dict(deleted):
        del deleted["probe"]
    assert cell_key(deleted) == cell_key(with_group)


def test_probe_keys_are_their_own():
    normal, border, statistics = make_cfg(), make_cfg("probe=border"), make_cfg("probe=statistics")
    assert training_key(border) != training_key(normal)
    assert training_key(make_cfg("probe=border", "probe.border=0.2")) != training_key(border)
    assert len({cell_key(normal), cell_key(border), cell_key(statistics)}) == 3
    assert cell_key(make_cfg("probe=border", "attack=pgd")) == cell_key(border)  # a probe attacks nothing
    assert cell_key(make_cfg("probe=border", "model=wrn16_8")) != cell_key(border)
    assert cell_key(make_cfg("probe=statistics", "model=wrn16_8")) == cell_key(statistics)  # no model
    assert cell_key(make_cfg("probe=statistics", "seed=1")) != cell_key(statistics)


def test_bad_probe_settings_are_refused():
    with pytest.raises(ConfigError, match="probe.border=0.5"):
        validate(make_cfg("probe=border", "probe.border=0.5"))
    with pytest.raises(ConfigError, match="probe.name='lungs'"):
        validate(make_cfg("probe=none", "probe.name=lungs"))
    assert probe_arguments(["model=vgg19", "-m"]) == ["-m", "model=vgg19", "probe=border,statistics"]
    with pytest.raises(SystemExit):
        probe_arguments(["probe=border"])


# (d) The verdict.


def test_verdict_thresholds():
    no = "no strong shortcut found"
    # Within 5 points of the full model (and more than 5 above chance), though under 20 above chance.
    assert verdict(0.80, {"border": 0.76}, 0.65).startswith("shortcut: the border probe reaches 76.0 %")
    assert verdict(0.80, {"border": 0.74}, 0.65) == no  # 6 below the full model, 9 above chance
    # More than 20 points above chance, whatever the full model.
    assert verdict(0.99, {"statistics": 0.71}, 0.50).startswith("shortcut: the statistics probe")
    assert verdict(None, {"statistics": 0.71}, 0.50).startswith("shortcut:")
    assert verdict(0.99, {"statistics": 0.69}, 0.50) == no
    # A full model no better than chance, matched by a probe at chance: nothing learned, no shortcut.
    assert verdict(0.66, {"border": 0.65, "statistics": 0.653}, 0.653) == no
    assert verdict(0.98, {"border": None, "statistics": None}, 0.65) == no  # not run
    assert probe_metrics(np.array([0, 0, 0, 1]), np.array([0, 0, 1, 1]), 1) == {
        "probe_accuracy": 0.75,
        "probe_sensitivity": 1.0,
        "probe_specificity": 2 / 3,
        "majority_class_accuracy": 0.75,
        "probe_above_chance": 0.0,
    }
    table = verdict_table(
        [
            {"model": "resnet18", "full": 0.98, "border": 0.95, "statistics": 0.9, "chance": 0.65},
            {"model": "vgg19", "full": None, "border": 0.66, "statistics": None, "chance": 0.65},
        ]
    )
    assert "resnet18: shortcut: the border probe reaches 95.0 %" in table and "vgg19: no strong shortcut" in table
    assert table.splitlines()[3].split()[:3] == ["vgg19", "not", "run"]
