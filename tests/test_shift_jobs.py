"""Jobs beyond the adversary, in one tiny study: an external test set (data.external_root) and corrupted
test images (corruption=medmnistc), and the report's page on them."""

import numpy as np
import pytest
import torch

from covid_robustness.data.datamodule import CXRDataModule
from covid_robustness.errors import ConfigError
from covid_robustness.evaluation.corrupted import corrupted_set
from covid_robustness.job.keys import cell_key, job_settings, training_key
from covid_robustness.job.plan import validate
from covid_robustness.job.run import run
from covid_robustness.job.train import load_checkpoint

from .conftest import make_cfg, store_runs
from .test_external import FOLDERS, _external

NOISE = ("corruption=medmnistc", "corruption.name=gaussian_noise", "corruption.severities=[1,5]")
EXTERNAL_DIRS = tuple(f"+data.external_class_dirs.{cls}={folder}" for cls, folder in FOLDERS.items())


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One model (trained long enough to tell the classes apart), four jobs: FGSM; FGSM reading the
    external set too; then with the external set, Gaussian noise alone and under FGSM."""
    tmp = tmp_path_factory.mktemp("shift")
    external = (f"data.external_root={_external(tmp / 'ext')}",) + EXTERNAL_DIRS
    base = ("model=resnet18", "trainer.max_epochs=4", "optim.lr=0.05")
    fgsm = ("attack=fgsm", "attack.eps=0.03", "eval.max_images=8")
    for extra in (fgsm, (*fgsm, *external), ("attack=none", *NOISE, *external), (*fgsm, *NOISE, *external)):
        run(make_cfg(*base, *extra, tmp_path=tmp))
    run(make_cfg(*base, "probe=statistics", tmp_path=tmp))  # no training: features of the generated images
    # Another training of the same model (a remedy, say), newest, FGSM only: no corruption was run on it.
    run(make_cfg(*base[:-1], f"optim.lr={OTHER_LR}", *fgsm, tmp_path=tmp))
    return tmp


OTHER_LR = "0.0001"  # the fixture's other training


def _runs(store, role):
    """The store's runs of this role, less those of the fixture's other training."""
    return [r for r in store_runs(store / "mlruns", role=role) if r.data.params.get("optim.lr") != OTHER_LR]


def _metrics(store, attack):
    jobs = [j for j in store_runs(store / "mlruns", role="attack") if j.data.tags["attack"] == attack]
    corrupted = [j for j in jobs if "corruption.name" in j.data.params]
    return corrupted[0].data.metrics, corrupted[0]


def test_corrupted_accuracy_is_the_models_reading_of_the_corrupted_images(store):
    metrics, job = _metrics(store, "none")
    (training,) = _runs(store, "training")  # the corruption jobs reuse the training
    module = load_checkpoint(training.data.tags["checkpoint"]).eval()
    dm = CXRDataModule(image_size=32, n_images=160, batch_size=16)
    dm.setup()
    test = dm.splits["test"].tensors()
    for s in (1, 5):
        x, y = corrupted_set(test, {"name": "gaussian_noise", "severities": [1, 5]}, s, 0, torch.device("cpu")).tensors
        assert not torch.equal(x, test.tensors[0])  # corrupted
        with torch.no_grad():
            pred = module.net(x).argmax(1).numpy()
        assert metrics[f"corruption_accuracy_s{s}"] == pytest.approx((pred == y.numpy()).mean())
        assert metrics[f"corruption_adversarial_accuracy_s{s}"] == metrics[f"corruption_accuracy_s{s}"]  # no attack
    mean = np.mean([metrics["corruption_accuracy_s1"], metrics["corruption_accuracy_s5"]])
    assert metrics["corruption_accuracy_mean"] == metrics["clean_accuracy"] == pytest.approx(mean)
    # Every reading counted: 2 severities x the whole test split, so mean x readings is a count of images.
    assert metrics["corruption_images_s1"] == metrics["corruption_images_s5"] == 32
    assert metrics["attack_images"] == 64
    right = metrics["clean_accuracy"] * metrics["attack_images"]
    assert right == pytest.approx(round(right))
    # Untrained or not is read on the uncorrupted images.
    with torch.no_grad():
        pred = module.net(test.tensors[0]).argmax(1).numpy()
    assert len(np.unique(pred)) == 2 and job.data.tags["untrained_model"] == "false"
    assert job.data.params["corruption.severities"] == "[1, 5]"


def test_the_adversary_acts_on_the_corrupted_image(store):
    metrics, _ = _metrics(store, "fgsm")
    for s in (1, 5):
        assert metrics[f"corruption_adversarial_accuracy_s{s}"] <= metrics[f"corruption_accuracy_s{s}"]
    assert metrics["linf_max"] <= 0.03 + 1e-6  # measured from the corrupted image, not the clean one
    assert metrics["attack_images"] == 2 * 8  # 2 severities x eval.max_images
    clean = [j for j in _runs(store, "attack") if "corruption.name" not in j.data.params]
    assert len(clean) == 2 and not any("corruption_accuracy_mean" in j.data.metrics for j in clean)


def test_no_corruption_leaves_keys_and_params_as_before_and_bad_ones_are_refused():
    plain = make_cfg()
    assert "corruption" not in job_settings(plain)
    noisy = make_cfg(*NOISE)
    assert training_key(noisy) == training_key(plain) and cell_key(noisy) != cell_key(plain)
    for bad, match in (
        ("corruption.name=fog", "not a corruption"),
        ("corruption.severities=[0,3]", "severity 0"),
        ("corruption.severities=[]", "distinct severities"),
        ("corruption.benchmark=cifar", "benchmark"),
    ):
        with pytest.raises(ConfigError, match=match):
            validate(make_cfg(*NOISE, bad))


def test_the_report_shows_corruption_and_external_accuracy_beside_the_attacks(store):
    from mlflow.tracking import MlflowClient

    from covid_robustness.report.collect import collect
    from covid_robustness.report.pages import build

    client = MlflowClient(f"sqlite:///{store / 'mlruns' / 'mlflow.db'}")
    study = collect(client, "default")
    written = {p.name for p in build(study, store / "report")}
    assert {"corruptions.png", "external.png"} <= written
    report = (store / "report" / "report.md").read_text()
    # runs.csv tells the cells apart: a column per setting that varies, a folder by its name only.
    import csv

    with (store / "report" / "runs.csv").open() as f:
        runs = list(csv.DictReader(f))
    assert {"corruption.name", "corruption.severities", "data.external_root", "optim.lr"} <= set(runs[0])
    assert "tracking.dir" not in runs[0] and str(store) not in (store / "report" / "runs.csv").read_text()
    assert {r["data.external_root"] for r in runs} == {"", "ext"}
    # The manifest lists the external set beside the training data, as what it is: read, never trained on.
    from covid_robustness.report.manifest import manifest

    (external,) = [d for d in manifest(study)["data"] if d["contexts"] == ["external"]]
    assert (external["name"], external["source"], external["split_sizes"]) == ("ext-binary", "ext", {"external": 16})
    assert {r["corruption.name"] for r in runs} == {"", "gaussian_noise"}
    none, _ = _metrics(store, "none")
    fgsm, _ = _metrics(store, "fgsm")
    # Per model: the mean corruption accuracy of the attack=none job (it reads the whole test split).
    row = next(line for line in report.splitlines() if line.startswith("| RN-18 |") and "gaussian noise" in line)
    from covid_robustness.record.intervals import wilson

    readings = none["attack_images"]  # severities x images
    lo, hi = wilson(round(none["corruption_accuracy_mean"] * readings), readings)
    assert f"| {100 * none['corruption_accuracy_mean']:.2f} [{100 * lo:.1f}, {100 * hi:.1f}]" in row
    attack_rows = [line for line in report.splitlines() if line.startswith("| FGSM eps=7.65/255 |")]
    assert [r.split("|")[2].strip() for r in attack_rows] == ["none", "gaussian noise"]
    assert attack_rows[1].split("|")[3].strip().startswith(f"{100 * fgsm['adversarial_accuracy']:.2f} [")
    section = report.split("## Internal against external accuracy (%)")[1].split("\n## ")[0]
    external = next(line for line in section.splitlines() if line.startswith("| RN-18 |"))
    assert f"{100 * none['external_accuracy']:.2f} [" in external
    cells = [c.strip() for c in external.split("|")[2:6]]
    assert cells[0].startswith(f"{100 * none['test/acc']:.2f} [")  # internal, with its interval too
    gap = f"{100 * (none['external_accuracy'] - none['test/acc']):+.1f}"
    assert cells[2] in (gap, f"{gap} ≈") and cells[3] == "–"  # the model's first row: nothing to compare with
    # The external figure draws each bar with the interval the table prints (its first model is RN-18).
    from matplotlib.container import BarContainer

    from covid_robustness.report.shift import external_figure

    internal_bars, external_bars = [c for c in external_figure(study).axes[0].containers if isinstance(c, BarContainer)]
    for bars, accuracy, images in (
        (internal_bars, "test/acc", "test_images"),
        (external_bars, "external_accuracy", "external_images"),
    ):
        low, high = bars.errorbar.lines[2][0].get_segments()[0]  # the first bar's interval, bottom to top
        lo, hi = wilson(round(none[accuracy] * none[images]), none[images])
        assert bars[0].get_height() == pytest.approx(100 * none[accuracy]) and (low[1], high[1]) == pytest.approx(
            (100 * lo, 100 * hi)
        )
    # Beside Table II, the shortcut probe against the full model's clean accuracy.
    section = report.split("## Shortcut probe: the task without the lungs (%)")[1].split("\n## ")[0]
    (stats,) = [r for r in store_runs(store / "mlruns", role="probe")]
    full = fgsm["test/acc"]
    row = next(line for line in section.splitlines() if line.startswith("| RN-18 |")).split("|")
    assert [c.strip() for c in row[2:6]] == [
        f"{100 * full:.2f}",
        "–",  # no border probe in this study
        f"{100 * stats.data.metrics['probe_accuracy']:.2f}",
        f"{100 * stats.data.metrics['majority_class_accuracy']:.2f}",
    ]
    assert row[6].strip().startswith(("shortcut:", "no strong shortcut found"))
    # The model's other training (newest, near chance) is neither the probe's full model nor a column of
    # the corruption x attack table, which holds the trainings the corruptions ran on.
    other = next(j for j in store_runs(store / "mlruns", role="attack") if j.data.params.get("optim.lr") == OTHER_LR)
    assert other.data.metrics["test/acc"] != full
    section = report.split("## Corruption x attack: accuracy (%)")[1].split("\n## ")[0]
    assert section.splitlines()[2].count("RN-18") == 1
    # Table II holds the uncorrupted job only.
    table2 = report.split("## Table II: accuracy under attack")[1].split("\n## ")[0]
    assert "corruption" not in table2


def test_a_job_logs_its_external_accuracy_beside_the_test_split_and_reuses_the_training(store):
    root = store / "ext"
    base = ("model=resnet18", "trainer.max_epochs=4", "optim.lr=0.05", "attack=fgsm", "attack.eps=0.03")
    plain = make_cfg(*base, "eval.max_images=8")
    external = make_cfg(*base, "eval.max_images=8", f"data.external_root={root}", *EXTERNAL_DIRS)
    assert training_key(plain) == training_key(external) and cell_key(plain) != cell_key(external)
    fgsm = [j for j in _runs(store, "attack") if "corruption.name" not in j.data.params]
    trainings = _runs(store, "training")
    assert len(fgsm) == 2 and len(trainings) == 1  # every job reused the first one's training
    with_external, without = fgsm  # newest first
    assert "data.external_root" in with_external.data.params and "data.external_root" not in without.data.params
    assert "data.external_root" not in trainings[0].data.params
    contexts = {(d.dataset.name, t.value) for d in with_external.inputs.dataset_inputs for t in d.tags}
    assert contexts == {("synthetic-binary", "test"), ("ext-binary", "external")}
    assert {d.dataset.name for d in without.inputs.dataset_inputs} == {"synthetic-binary"}
    metrics = with_external.data.metrics
    assert not any(k.startswith("external_") for k in without.data.metrics)
    # The test split's numbers do not move with an external set.
    for name in ("clean_accuracy", "adversarial_accuracy", "test/acc"):
        assert metrics[name] == without.data.metrics[name], name

    assert metrics["external_images"] == 16 and metrics["external_attack_images"] == 8
    assert 0 <= metrics["external_adversarial_accuracy"] <= metrics["external_clean_accuracy"] <= 1
    assert metrics["external_linf_max"] <= 0.03 + 1e-6
    # The clean reading of all 16 images, recomputed here from the stored model.
    module = load_checkpoint(trainings[0].data.tags["checkpoint"]).eval()
    dm = CXRDataModule(image_size=32, n_images=160, external_root=str(root), external_class_dirs=FOLDERS)
    dm.setup()
    with torch.no_grad():
        pred = module.net(dm.external.tensors().tensors[0]).argmax(1).numpy()
    y = dm.external.labels
    assert len(set(pred)) == 2  # a model that tells the classes apart: not one class's share
    assert metrics["external_accuracy"] == pytest.approx((pred == y).mean())
    assert metrics["external_sensitivity"] == pytest.approx((pred[y == 1] == 1).mean())  # COVID-19 is label 1
    assert metrics["external_specificity"] == pytest.approx((pred[y == 0] == 0).mean())
    assert metrics["external_predicted_covid"] == pytest.approx((pred == 1).mean())
    assert metrics["external_clean_accuracy"] == pytest.approx((pred[:8] == y[:8]).mean())


def test_a_job_logs_its_confusion_matrices_and_both_directions_of_harm(store):
    import json

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{store / 'mlruns' / 'mlflow.db'}")
    job = store_runs(store / "mlruns", role="attack")[-1]  # the first job: FGSM on the test images as they are
    matrices = json.loads(open(client.download_artifacts(job.info.run_id, "confusion.json", str(store))).read())
    assert matrices["classes"] == ["Normal", "COVID-19"]
    clean, adversarial = np.array(matrices["clean"]), np.array(matrices["adversarial"])
    m = job.data.metrics
    assert clean.sum() == adversarial.sum() == m["attack_images"]
    assert np.trace(clean) / clean.sum() == pytest.approx(m["clean_accuracy"])
    assert np.trace(adversarial) / adversarial.sum() == pytest.approx(m["adversarial_accuracy"])
    for rate in ("missed_covid_rate", "false_alarm_rate"):
        assert rate in m and (m[rate] != m[rate] or 0 <= m[rate] <= 1)


def test_a_job_reads_the_validation_operating_points_on_its_test_images(store):
    from covid_robustness.evaluation.operating_point import reading

    (training,) = _runs(store, "training")
    job = _runs(store, "attack")[-1]  # FGSM on the test images as they are
    m = job.data.metrics
    for point in ("sens95", "youden"):
        assert training.data.metrics[f"threshold_{point}"] == m[f"threshold_{point}"]  # kept with the training
    module = load_checkpoint(training.data.tags["checkpoint"]).eval()
    dm = CXRDataModule(image_size=32, n_images=160, batch_size=16)
    dm.setup()
    x, y = dm.splits["test"].tensors().tensors
    with torch.no_grad():
        p_covid = torch.softmax(module.net(x[:8]), 1)[:, 1].double().numpy()  # the 8 attacked images
    sensitivity, specificity = reading(y[:8].numpy(), p_covid, 1, m["threshold_youden"])
    assert m["sensitivity_at_youden_clean"] == pytest.approx(sensitivity, nan_ok=True)
    assert m["specificity_at_youden_clean"] == pytest.approx(specificity, nan_ok=True)
    assert 0 <= m["auroc_adversarial"] <= 1 or m["auroc_adversarial"] != m["auroc_adversarial"]


class _ByBrightness(torch.nn.Module):
    """Class 1 for an image brighter on average than 0.5, else class 0."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(40.0))

    def forward(self, x):
        z = self.scale * (x.mean((1, 2, 3)) - 0.5)
        return torch.stack([-z, z], 1)


def test_untrained_is_read_on_the_uncorrupted_images():
    """A corruption that drives a model that tells the classes apart to one class leaves it trained."""
    from covid_robustness.evaluation.corrupted import evaluate_corrupted
    from covid_robustness.evaluation.options import EvaluationOptions
    from covid_robustness.models.module import Normalized

    y = torch.tensor([0, 1] * 8)
    x = (0.35 + 0.2 * y.float())[:, None, None, None].expand(16, 1, 16, 16).clone()
    net = Normalized(_ByBrightness(), 0.0, 1.0)
    options = EvaluationOptions(
        {"name": "none", "impl": "identity", "eps": None},
        2,
        1,
        progress=False,
        corruption={"name": "brightness_up", "severities": [5]},
    )
    result = evaluate_corrupted(net, torch.utils.data.TensorDataset(x, y), options)
    assert result.metrics["corruption_accuracy_s5"] == 0.5  # every corrupted image reads as class 1
    assert result.tags["untrained_model"] == "false" and result.tags["untrained_model_reason"] == ""
