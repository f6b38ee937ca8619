"""Jobs read as a clinician would, in one tiny study: PGD at two budgets, PGD toward each class, and the
radius job; then the report's clinical page on them."""

import json

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from covid_robustness.job.run import run

from .conftest import make_cfg, store_runs

BASE = ("model=resnet18", "trainer.max_epochs=4", "optim.lr=0.05")  # every test image (32) attacked
PGD = ("attack=pgd", "attack.max_iter=5")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clinical")
    for extra in (
        (*PGD, "attack.eps=0.01"),
        (*PGD, "attack.eps=0.03"),
        (*PGD, "attack.eps=0.03", "attack.target_class=Normal"),
        (*PGD, "attack.eps=0.03", "attack.target_class=COVID-19"),
        ("attack=radius", "attack.eps=0.03", "attack.steps=4", "attack.max_iter=5"),
    ):
        run(make_cfg(*BASE, *extra, tmp_path=tmp))
    return tmp


def _jobs(store) -> dict[str, object]:
    out = {}
    for job in store_runs(store / "mlruns", role="attack"):
        p = job.data.params
        out[f"{p['attack.name']} {float(p['attack.eps']):g} {p.get('attack.target_class', 'None')}"] = job
    return out


def test_targeted_jobs_push_toward_their_class_only(store):
    jobs = _jobs(store)
    assert len(store_runs(store / "mlruns", role="training")) == 1  # one model for every job
    untargeted = jobs["pgd 0.03 None"].data.metrics
    toward_normal, toward_covid = jobs["pgd 0.03 Normal"], jobs["pgd 0.03 COVID-19"]
    assert toward_normal.data.metrics["false_alarm_rate"] == 0 and toward_covid.data.metrics["missed_covid_rate"] == 0
    assert toward_normal.data.metrics["targeted_success_rate"] == toward_normal.data.metrics["missed_covid_rate"]
    assert "targeted_success_rate" not in untargeted
    assert "toward Normal" in toward_normal.data.tags["mlflow.runName"]
    # Two classes: PGD toward the other class takes the untargeted steps, so each direction matches.
    assert untargeted["missed_covid_rate"] == pytest.approx(toward_normal.data.metrics["missed_covid_rate"])
    assert untargeted["false_alarm_rate"] == pytest.approx(toward_covid.data.metrics["false_alarm_rate"])


def test_the_radius_job_logs_radii_that_agree_with_the_fixed_budget_jobs(store):
    jobs = _jobs(store)
    radius = jobs["radius 0.03 None"]
    client = MlflowClient(f"sqlite:///{store / 'mlruns' / 'mlflow.db'}")
    assert {"radii.json", "robustness_curve.png", "reliability.png"} <= {
        a.path for a in client.list_artifacts(radius.info.run_id)
    }
    with open(client.download_artifacts(radius.info.run_id, "radii.json", str(store))) as f:
        data = json.load(f)
    assert data["classes"] == ["Normal", "COVID-19"] and len(data["radii"]) == len(data["labels"]) == 32
    r = np.array([np.inf if v is None else v for v in data["radii"]])
    m = radius.data.metrics
    assert m["adversarial_accuracy"] == pytest.approx((r > 0.03).mean())
    # PGD-5 at 0.01 and 0.03 as separate jobs: the curve lies at most one image above them.
    for eps in (0.01, 0.03):
        fixed = jobs[f"pgd {eps:g} None"].data.metrics["adversarial_accuracy"]
        assert (r > eps).mean() <= fixed + 1 / 32 + 1e-9, eps


def test_the_clinical_page_shows_harm_calibration_operating_points_radii_and_targets(store):
    from covid_robustness.report.collect import collect
    from covid_robustness.report.pages import build

    client = MlflowClient(f"sqlite:///{store / 'mlruns' / 'mlflow.db'}")
    written = {p.name for p in build(collect(client, "default"), store / "report")}
    pages = {"clinical.html", "clinical.md", "clinical_harm.png", "clinical_reliability.png", "clinical_radii.png"}
    assert pages <= written
    page = (store / "report" / "clinical.md").read_text()
    for title in (
        "Both directions of harm, and calibration under attack",
        "The operating point, clean → attacked",
        "Robust radius: the smallest budget that flips each image",
        "Targeted attacks toward each class",
    ):
        assert f"## {title}" in page
    jobs = _jobs(store)
    normal = jobs["pgd 0.03 Normal"].data.metrics
    targeted = page.split("## Targeted attacks toward each class")[1]
    row = next(line for line in targeted.splitlines() if "| Normal |" in line)
    assert f"| {100 * normal['targeted_success_rate']:.2f} |" in row
    # The main page links the clinical page; Table II holds neither the targeted nor the radius jobs.
    report = (store / "report" / "report.md").read_text()
    assert "(clinical.md)" in report and 'href="clinical.html"' in (store / "report" / "report.html").read_text()
    table2 = report.split("## Table II: accuracy under attack")[1].split("\n## ")[0]
    rows = [line.split(" |")[0] for line in table2.splitlines() if line.startswith("| PGD eps=")]
    assert rows == ["| PGD eps=2.55/255 [fast]", "| PGD eps=7.65/255 [fast]"] and "Radius" not in table2
