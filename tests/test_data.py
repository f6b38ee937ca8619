import numpy as np
import pytest
from PIL import Image
from sklearn.model_selection import train_test_split

from covid_robustness.data.classes import COVID, TASKS
from covid_robustness.data.datamodule import CXRDataModule
from covid_robustness.data.duplicates import group_labels, image_hashes, mixed_label_groups, near_duplicate_groups
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
    assert dm.split_metrics() == {} and dm.hashes is None  # synthetic images are never hashed


def test_datamodule_rejects_bad_values():
    with pytest.raises(ConfigError, match="data.task='three'"):
        CXRDataModule(task="three")
    with pytest.raises(ConfigError, match="data.source='s3'"):
        CXRDataModule(source="s3")
    with pytest.raises(ConfigError, match="test_fraction"):
        CXRDataModule(test_fraction=1.5)
    with pytest.raises(ConfigError, match="data.dedupe_distance=-1"):
        CXRDataModule(source="folder", dedupe_distance=-1)


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
    dm = CXRDataModule(source="folder", root=str(SHARED_CXR), task="binary", image_size=32, seed=0, dedupe=False)
    dm.setup()
    n = sum(len(s.labels) for s in dm.splits.values())
    assert n == 834 + 1575  # every COVID-19 and Normal image of the folder, all decodable
    test = dm.splits["test"].labels
    assert len(test) == round(0.2 * n) and abs(test.mean() - 834 / n) < 0.01  # stratified 80/20
    assert len(dm.splits["val"].labels) == round(0.1 * (n - len(test)))
    # Four Normal images are posted twice; with dedupe off two of them leak into the test split.
    assert dm.split_metrics() == {
        "test_near_duplicates_in_train": 2,
        "near_duplicate_groups": 4,
        "near_duplicate_images": 8,
        "near_duplicate_groups_mixed_labels": 0,
    }
    deduped = CXRDataModule(source="folder", root=str(SHARED_CXR), task="binary", image_size=32, seed=0)
    deduped.setup()  # a cache hit: images and hashes come from the entry the first load wrote
    assert deduped.split_metrics()["test_near_duplicates_in_train"] == 0
    assert abs(len(deduped.splits["test"].labels) - len(test)) <= 4


def test_cache_hits_and_is_invalidated_when_files_change(tmp_path, monkeypatch):
    from covid_robustness.data import cache

    root, store = tmp_path / "cxr", tmp_path / "cache"
    _write_images(root / "COVID-19", 3)
    _write_images(root / "Normal", 3)
    first = cache.read_folder_cached(root, TASKS["binary"], {}, 24, cache_dir=store)
    assert len(list(store.glob("*.npz"))) == 1 and first[2].shape == (6, 32)  # 256-bit hashes, packed

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although the cache holds these files")

    monkeypatch.setattr(cache, "read_folder", no_decoding)
    monkeypatch.setattr(cache, "image_hashes", no_decoding)
    second = cache.read_folder_cached(root, TASKS["binary"], {}, 24, cache_dir=store)
    assert all(np.array_equal(a, b) for a, b in zip(first[:3], second[:3]))

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


# Near-duplicate edits a re-post carries: (suffix, edit of a grayscale PIL image).
EDITS = [
    ("jpg", lambda im: im),  # re-encoded as JPEG
    ("png", lambda im: im.point(lambda v: min(255, round(v * 1.1)))),  # brightened
    ("png", lambda im: im.resize((im.width - 6, im.height - 6))),  # resized a little
]


def _write_xrays(folder, cls, first, n, edits=()):
    """n distinct chest-X-ray-like PNGs (synthetic images first..first+n-1) and, per (image, edit index),
    an edited copy: different patients look alike, copies differ in their pixels."""
    folder.mkdir(parents=True)
    for i in range(first, first + n):
        Image.fromarray(synthetic_image(0, i, cls, 64)).save(folder / f"{i}.png")
    for i, e in edits:
        suffix, edit = EDITS[e]
        edit(Image.open(folder / f"{i}.png")).save(folder / f"{i}-copy{e}.{suffix}")


def test_near_duplicates_are_grouped_and_unrelated_images_are_not(tmp_path):
    _write_xrays(tmp_path / "COVID-19", COVID, 0, 8, edits=[(0, 0), (0, 1), (1, 1), (2, 2)])
    _write_xrays(tmp_path / "Normal", "Normal", 8, 8, edits=[(8, 0)])
    Image.open(tmp_path / "COVID-19" / "3.png").save(tmp_path / "Normal" / "3-filed-twice.jpg")  # another label
    images, labels, paths, _ = read_folder(tmp_path, TASKS["binary"], {}, 32)
    groups = near_duplicate_groups(image_hashes(images), CXRDataModule.dedupe_distance)
    group_of = {p.stem: g for p, g in zip(paths, groups)}
    for copy, original in (
        ("0-copy0", "0"),
        ("0-copy1", "0"),
        ("1-copy1", "1"),
        ("2-copy2", "2"),
        ("8-copy0", "8"),
        ("3-filed-twice", "3"),
    ):
        assert group_of[copy] == group_of[original], copy
    assert len(set(groups)) == 16  # 16 different images: no two of them share a group
    assert mixed_label_groups(labels, groups) == 1
    assert group_labels(labels, groups)[group_of["3"]] == 0  # a tie goes to the lower label


def test_dedupe_keeps_near_duplicates_in_one_split(tmp_path):
    # Every image has a JPEG copy: with dedupe off, a random split must put some pairs across train and test.
    _write_xrays(tmp_path / "COVID-19", COVID, 0, 15, edits=[(i, 0) for i in range(15)])
    _write_xrays(tmp_path / "Normal", "Normal", 15, 15, edits=[(i, 0) for i in range(15, 30)])
    dm = CXRDataModule(source="folder", root=str(tmp_path), image_size=32, seed=0, cache_dir=str(tmp_path / "cache"))
    dm.setup()
    split_of = np.empty(60, int)
    for k, name in enumerate(("train", "val", "test")):
        split_of[dm.indices[name]] = k
    assert all(len(set(split_of[dm.groups == g])) == 1 for g in range(30))  # no pair straddles two splits
    assert dm.split_metrics() == {
        "test_near_duplicates_in_train": 0,
        "near_duplicate_groups": 30,
        "near_duplicate_images": 60,
        "near_duplicate_groups_mixed_labels": 0,
    }
    assert {k: len(s.labels) for k, s in dm.splits.items()} == {"train": 42, "val": 6, "test": 12}
    assert np.bincount(dm.splits["test"].labels).tolist() == [6, 6]  # stratified by group

    off = CXRDataModule(source="folder", root=str(tmp_path), image_size=32, seed=0, dedupe=False, cache=False)
    off.setup()
    assert np.array_equal(off.hashes, dm.hashes)  # the uncached path hashes the same
    assert off.split_metrics()["test_near_duplicates_in_train"] > 0
    # dedupe off is the plain stratified split, index for index.
    train, test = train_test_split(np.arange(60), test_size=0.2, stratify=off.labels, random_state=0)
    train, val = train_test_split(train, test_size=0.1, stratify=off.labels[train], random_state=0)
    assert all(np.array_equal(off.indices[k], i) for k, i in (("train", train), ("val", val), ("test", test)))


def test_harmonise_makes_two_sources_of_one_image_look_alike_and_keeps_its_own_cache_entry(tmp_path):
    from covid_robustness.data.cache import cache_key
    from covid_robustness.data.folder import decode

    x = synthetic_image(0, 3, COVID, 96)
    Image.fromarray(x).save(tmp_path / "a.png")  # one hospital: PNG, full exposure, 96 px
    dim = Image.fromarray((x * 0.55).astype(np.uint8)).resize((50, 50))
    dim.convert("RGB").save(tmp_path / "b.jpg", quality=60)  # another: a darker, smaller RGB JPEG
    plain = [decode(tmp_path / f, 32).astype(float) for f in ("a.png", "b.jpg")]
    same = [decode(tmp_path / f, 32, harmonise=True).astype(float) for f in ("a.png", "b.jpg")]
    assert np.abs(same[0] - same[1]).mean() < np.abs(plain[0] - plain[1]).mean() / 4
    # Equalised: the grey levels spread over the whole range whatever the exposure.
    assert same[1].min() < 20 and same[1].max() > 235 and plain[1].max() < 160

    paths = [tmp_path / "a.png"]
    args = (tmp_path, paths, 32, TASKS["binary"], {}, False)
    assert cache_key(*args) == cache_key(*args, False) != cache_key(*args, True)


def test_harmonise_off_leaves_the_training_key_and_on_changes_it():
    from omegaconf import open_dict

    from covid_robustness.job.keys import job_settings, training_key

    from .conftest import make_cfg

    off, on = make_cfg(), make_cfg()
    with open_dict(off), open_dict(on):  # the folder source's setting, on the tests' synthetic config
        off.data.harmonise, on.data.harmonise = False, True
    assert training_key(off) == training_key(make_cfg())
    assert "harmonise" not in job_settings(off)["data"] and job_settings(on)["data"]["harmonise"] is True
    assert training_key(off) != training_key(on)
