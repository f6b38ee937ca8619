"""data.external_root: every job also reads another source's images, clean and under its attack."""

import numpy as np
import pytest
import torch
from PIL import Image

from covid_robustness.data.classes import COVID
from covid_robustness.data.datamodule import CXRDataModule
from covid_robustness.data.synthetic import synthetic_image
from covid_robustness.errors import ConfigError
from covid_robustness.run import run
from covid_robustness.training_cache import cell_key, training_key

from .conftest import make_cfg, store_runs

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
    # The training splits do not change with an external set.
    plain = CXRDataModule(image_size=32, n_images=160)
    plain.setup()
    assert plain.digest() == dm.digest() and plain.external is None and plain.external_metrics() == {}


def test_external_folder_errors_name_the_external_settings(tmp_path):
    with pytest.raises(ConfigError, match="data.external_root="):
        _dm(tmp_path / "nowhere").setup()
    root = _external(tmp_path / "ext")
    with pytest.raises(ConfigError, match=r"set data.external_class_dirs.Normal to its name"):
        CXRDataModule(image_size=32, n_images=160, external_root=str(root)).setup()
    with pytest.raises(ConfigError, match="data.external_root="):
        from covid_robustness.validate import validate

        validate(make_cfg(f"data.external_root={tmp_path / 'nowhere'}"))


def test_a_job_logs_its_external_accuracy_beside_the_test_split_and_reuses_the_training(tmp_path):
    root = _external(tmp_path / "ext")
    dirs = [f"+data.external_class_dirs.{cls}={folder}" for cls, folder in FOLDERS.items()]
    # Trained long enough to tell the classes apart, so the external numbers are not one class's share.
    base = (
        "model=resnet18",
        "trainer.max_epochs=4",
        "optim.lr=0.05",
        "attack=fgsm",
        "attack.eps=0.03",
        "eval.max_images=8",
    )
    plain = make_cfg(*base, tmp_path=tmp_path)
    external = make_cfg(*base, f"data.external_root={root}", *dirs, tmp_path=tmp_path)
    assert training_key(plain) == training_key(external) and cell_key(plain) != cell_key(external)

    run(plain)
    run(external)
    jobs = store_runs(tmp_path / "mlruns", role="attack")
    trainings = store_runs(tmp_path / "mlruns", role="training")
    assert len(jobs) == 2 and len(trainings) == 1  # the second job reused the first one's training
    assert "data.external_root" in jobs[0].data.params and "data.external_root" not in jobs[1].data.params
    assert "data.external_root" not in trainings[0].data.params
    metrics, without = jobs[0].data.metrics, jobs[1].data.metrics
    assert not any(k.startswith("external_") for k in without)
    # The test split's numbers do not move with an external set.
    for name in ("clean_accuracy", "adversarial_accuracy", "test/acc"):
        assert metrics[name] == without[name], name

    assert metrics["external_images"] == 16 and metrics["external_attack_images"] == 8
    assert 0 <= metrics["external_adversarial_accuracy"] <= metrics["external_clean_accuracy"] <= 1
    assert metrics["external_linf_max"] <= 0.03 + 1e-6
    # The clean reading of all 16 images, recomputed here from the stored model.
    from covid_robustness.training_cache import load_checkpoint

    module = load_checkpoint(trainings[0].data.tags["checkpoint"]).eval()
    dm = _dm(root)
    dm.setup()
    with torch.no_grad():
        pred = module.net(dm.external.tensors().tensors[0]).argmax(1).numpy()
    y = dm.external.labels
    assert len(set(pred)) == 2
    assert metrics["external_accuracy"] == pytest.approx((pred == y).mean())
    assert metrics["external_sensitivity"] == pytest.approx((pred[y == 1] == 1).mean())  # COVID-19 is label 1
    assert metrics["external_specificity"] == pytest.approx((pred[y == 0] == 0).mean())
    assert metrics["external_predicted_covid"] == pytest.approx((pred == 1).mean())
    assert metrics["external_clean_accuracy"] == pytest.approx((pred[:8] == y[:8]).mean())
