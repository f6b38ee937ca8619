import numpy as np
import pytest
from PIL import Image

from covid_robustness.data.classes import COVID, TASKS
from covid_robustness.data.datamodule import CXRDataModule
from covid_robustness.data.folder import read_folder
from covid_robustness.data.synthetic import synthetic_dataset, synthetic_image
from covid_robustness.errors import ConfigError

from .conftest import SHARED_CXR


def test_synthetic_is_deterministic_and_independent_of_size():
    a, ya = synthetic_dataset(8, TASKS["binary"], 32, seed=3)
    b, yb = synthetic_dataset(12, TASKS["binary"], 32, seed=3)
    assert a.dtype == np.uint8 and a.shape == (8, 32, 32)
    assert np.array_equal(a, b[:8]) and np.array_equal(ya, yb[:8])
    assert not np.array_equal(a, synthetic_dataset(8, TASKS["binary"], 32, seed=4)[0])


def test_synthetic_classes_are_balanced_and_not_separable_by_brightness():
    x, y = synthetic_dataset(400, TASKS["binary"], 32, seed=0)
    assert np.bincount(y).tolist() == [200, 200]
    mean = x.reshape(len(x), -1).mean(1)
    gap = abs(mean[y == 0].mean() - mean[y == 1].mean())
    assert gap < 0.5 * mean.std()  # class means overlap: brightness alone does not tell the class


def test_synthetic_four_classes_differ():
    x = [synthetic_image(0, 0, c, 48).astype(float) for c in TASKS["four_class"]]
    assert all(np.abs(x[i] - x[j]).mean() > 0.5 for i in range(4) for j in range(i + 1, 4))


def test_datamodule_splits_are_stratified_disjoint_and_in_pixel_range():
    dm = CXRDataModule(n_images=200, image_size=32, seed=1)
    dm.setup()
    sizes = {k: len(s.labels) for k, s in dm.splits.items()}
    assert sizes == {"train": 144, "val": 16, "test": 40}
    assert np.bincount(dm.splits["test"].labels).tolist() == [20, 20]
    x, y = next(iter(dm.test_dataloader()))
    assert x.shape[1:] == (1, 32, 32) and 0 <= x.min() and x.max() <= 1
    assert dm.classes[dm.positive_class] == COVID
    train = {img.tobytes() for img in dm.splits["train"].images}
    assert not any(img.tobytes() in train for img in dm.splits["test"].images)


def test_datamodule_rejects_bad_values():
    with pytest.raises(ConfigError, match="data.task='three'"):
        CXRDataModule(task="three")
    with pytest.raises(ConfigError, match="data.source='s3'"):
        CXRDataModule(source="s3")
    with pytest.raises(ConfigError, match="test_fraction"):
        CXRDataModule(test_fraction=1.5)


def _write_images(folder, n, size=40, fmt="png", mode="L"):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        arr = rng.integers(0, 255, (size, size + i, 3 if mode != "L" else 1), dtype=np.uint8).squeeze()
        Image.fromarray(arr).convert(mode).save(folder / f"img{i}.{fmt}")


def test_folder_reads_formats_and_modes(tmp_path):
    _write_images(tmp_path / "COVID-19", 3, fmt="png", mode="RGBA")
    _write_images(tmp_path / "Normal", 4, fmt="jpeg", mode="RGB")
    (tmp_path / "Normal" / "notes.txt").write_text("not an image")
    images, labels, paths, skipped = read_folder(tmp_path, TASKS["binary"], {}, 24)
    assert images.shape == (7, 24, 24) and images.dtype == np.uint8
    assert labels.tolist() == [0, 0, 0, 0, 1, 1, 1]  # Normal = 0, COVID-19 = 1
    assert skipped == 0 and all(p.suffix != ".txt" for p in paths)


def test_folder_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="is not a directory"):
        read_folder(tmp_path / "nope", TASKS["binary"], {}, 24)
    _write_images(tmp_path / "Normal", 2)
    with pytest.raises(ConfigError, match="for class 'COVID-19' does not exist"):
        read_folder(tmp_path, TASKS["binary"], {}, 24)
    (tmp_path / "COVID-19").mkdir()
    with pytest.raises(ConfigError, match="holds no images"):
        read_folder(tmp_path, TASKS["binary"], {}, 24)


def test_folder_corrupt_image_stops_or_is_skipped(tmp_path):
    _write_images(tmp_path / "COVID-19", 3)
    _write_images(tmp_path / "Normal", 3)
    (tmp_path / "COVID-19" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(ConfigError, match=r"1 image\(s\) could not be read .*broken.png"):
        read_folder(tmp_path, TASKS["binary"], {}, 24)
    images, labels, _, skipped = read_folder(tmp_path, TASKS["binary"], {}, 24, skip_unreadable=True)
    assert skipped == 1 and len(images) == 6


def test_folder_class_dirs_are_configurable(tmp_path):
    _write_images(tmp_path / "covid", 2)
    _write_images(tmp_path / "healthy", 2)
    _, labels, _, _ = read_folder(tmp_path, TASKS["binary"], {"COVID-19": "covid", "Normal": "healthy"}, 16)
    assert sorted(labels.tolist()) == [0, 0, 1, 1]


def test_folder_source_on_real_chest_xrays():
    assert SHARED_CXR.is_dir(), f"the real chest X-rays are expected at {SHARED_CXR}"
    dm = CXRDataModule(source="folder", root=str(SHARED_CXR), task="binary", image_size=32, seed=0)
    dm.setup()
    n = sum(len(s.labels) for s in dm.splits.values())
    assert n == 834 + 1575  # every COVID-19 and Normal image of the folder, all decodable
    test = dm.splits["test"].labels
    assert len(test) == round(0.2 * n) and abs(test.mean() - 834 / n) < 0.01  # stratified 80/20
    assert len(dm.splits["val"].labels) == round(0.1 * (n - len(test)))


def test_cache_hits_and_is_invalidated_when_files_change(tmp_path, monkeypatch):
    from covid_robustness.data import cache

    root, store = tmp_path / "cxr", tmp_path / "cache"
    _write_images(root / "COVID-19", 3)
    _write_images(root / "Normal", 3)
    first = cache.read_folder_cached(root, TASKS["binary"], {}, 24, cache_dir=store)
    assert len(list(store.glob("*.npz"))) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although the cache holds these files")

    monkeypatch.setattr(cache, "read_folder", no_decoding)
    second = cache.read_folder_cached(root, TASKS["binary"], {}, 24, cache_dir=store)
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])

    Image.fromarray(np.zeros((30, 30), np.uint8)).save(root / "Normal" / "img0.png")  # a file changes
    with pytest.raises(AssertionError, match="decoded"):
        cache.read_folder_cached(root, TASKS["binary"], {}, 24, cache_dir=store)
    with pytest.raises(AssertionError, match="decoded"):  # another size is another entry
        cache.read_folder_cached(root, TASKS["binary"], {}, 32, cache_dir=store)


def test_truncated_image_is_named(tmp_path):
    _write_images(tmp_path / "COVID-19", 2, fmt="jpeg", mode="RGB")
    _write_images(tmp_path / "Normal", 2)
    whole = (tmp_path / "COVID-19" / "img1.jpeg").read_bytes()
    (tmp_path / "COVID-19" / "img1.jpeg").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ConfigError, match="img1.jpeg"):
        read_folder(tmp_path, TASKS["binary"], {}, 24)
