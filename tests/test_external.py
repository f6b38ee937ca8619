"""data.external_root: every job also reads another source's images, clean and under its attack."""

import numpy as np
import pytest
from PIL import Image

from covid_robustness.data.classes import COVID
from covid_robustness.data.datamodule import CXRDataModule
from covid_robustness.data.synthetic import synthetic_image
from covid_robustness.errors import ConfigError

from .conftest import make_cfg

FOLDERS = {COVID: "covid", "Normal": "healthy"}  # another source names its folders its own way


def _external(root, n_covid=6, n_normal=10, copies=()):
    """Synthetic X-rays of another seed (another 'hospital') as PNG files, plus copies of training images."""
    for cls, n, first in ((COVID, n_covid, 0), ("Normal", n_normal, n_covid)):
        folder = root / FOLDERS[cls]
        folder.mkdir(parents=True)
        for i in range(first, first + n):
            Image.fromarray(synthetic_image(1, i, cls, 48)).save(folder / f"{i}.png")
    for i in copies:  # training image i of the synthetic source (seed 0), as another hospital filed it
        cls = ("Normal", COVID)[i % 2]  # the binary task's label order
        Image.fromarray(synthetic_image(0, i, cls, 32)).save(root / FOLDERS[cls] / f"copy{i}.png")
    return root


def _dm(root, **kwargs):
    return CXRDataModule(image_size=32, n_images=160, external_root=str(root), external_class_dirs=FOLDERS, **kwargs)


def test_the_external_set_is_read_shuffled_once_and_its_copies_of_training_images_are_counted(tmp_path):
    root = _external(tmp_path / "ext", copies=range(10))
    dm = _dm(root, cache_dir=str(tmp_path / "cache"))
    dm.setup()
    ext = dm.external
    assert ext.images.shape == (26, 32, 32) and ext.images.dtype == np.uint8
    assert np.bincount(ext.labels).tolist() == [15, 11]  # Normal, COVID-19
    # Shuffled with the seed: the first images (what eval.max_images attacks) hold both classes.
    assert len(set(ext.labels[:8])) == 2
    again = _dm(root, cache_dir=str(tmp_path / "cache"))
    again.setup()
    assert np.array_equal(again.external.images, ext.images) and np.array_equal(again.external.labels, ext.labels)
    metrics = dm.external_metrics()
    in_train = int(np.isin(np.arange(10), dm.indices["train"]).sum())
    assert 0 < in_train < 10
    assert metrics["external_near_duplicates_in_train"] == in_train  # copies of test/val images do not count
    assert (metrics["external_images"], metrics["external_images_COVID-19"], metrics["external_images_Normal"]) == (
        26,
        11,
        15,
    )
    info = dm.external_info()  # what the runs log as their "external" dataset input
    assert (info["name"], info["split_sizes"], info["class_counts"]) == (
        "ext-binary",
        {"external": 26},
        {"external": {"Normal": 15, COVID: 11}},
    )
    assert again.external_info()["digest"] == info["digest"] != dm.digest()
    (root / "healthy" / "6.png").unlink()  # one image fewer: another set
    assert _dm(root, cache_dir=str(tmp_path / "cache")).external_info()["digest"] != info["digest"]
    # The training splits do not change with an external set.
    plain = CXRDataModule(image_size=32, n_images=160)
    plain.setup()
    assert plain.digest() == dm.digest() and plain.external is None and plain.external_metrics() == {}
    assert plain.external_info() is None


def test_external_folder_errors_name_the_external_settings(tmp_path):
    with pytest.raises(ConfigError, match="data.external_root="):
        _dm(tmp_path / "nowhere").setup()
    root = _external(tmp_path / "ext")
    with pytest.raises(ConfigError, match=r"set data.external_class_dirs.Normal to its name"):
        CXRDataModule(image_size=32, n_images=160, external_root=str(root)).setup()
    with pytest.raises(ConfigError, match="data.external_root="):
        from covid_robustness.job.plan import validate

        validate(make_cfg(f"data.external_root={tmp_path / 'nowhere'}"))
