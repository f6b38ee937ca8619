"""The committed studies under docs/results: no local path in any of their text, each with its provenance,
all made at one commit."""

import csv
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
STUDIES = sorted(p for p in RESULTS.iterdir() if p.is_dir())
TEXT = {".md", ".html", ".csv", ".json", ".txt"}
LOCAL_PATH = re.compile(r"(?<![\w.])(/work/|/home/|/tmp/|/root/|/Users/|/mnt/|[A-Z]:\\)")


@pytest.mark.parametrize("study", STUDIES, ids=lambda p: p.name)
def test_no_committed_result_holds_a_local_path(study):
    for path in study.rglob("*"):
        if path.suffix in TEXT:
            found = LOCAL_PATH.search(path.read_text(encoding="utf-8"))
            assert found is None, f"{path.relative_to(ROOT)}: {found.group(0)!r}"


def _manifest(study: Path) -> dict:
    return json.loads((study / "manifest.json").read_text())


@pytest.mark.parametrize("study", STUDIES, ids=lambda p: p.name)
def test_each_study_carries_its_provenance(study):
    m = _manifest(study)
    assert re.fullmatch(r"[0-9a-f]{40}", m["commit"]) and m["commits"] == [m["commit"]] and m["clean_tree"] is True
    assert m["data"] and all(re.fullmatch(r"[0-9a-f]{12}", d["digest"]) for d in m["data"])
    assert m["jobs"] > 0 and m["wall_time_seconds"]["first_start_to_last_end"] > 0
    with (study / "runs.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == m["jobs"]


def test_every_study_was_made_at_one_commit():
    assert len({_manifest(study)["commit"] for study in STUDIES}) == 1


@pytest.mark.parametrize("study", STUDIES, ids=lambda p: p.name)
def test_a_masking_warning_is_printed_exactly_when_a_job_is_flagged(study):
    with (study / "runs.csv").open(newline="") as f:
        flagged = any(r["gradient_masking"] == "True" for r in csv.DictReader(f))
    assert ("possible gradient masking flagged in" in (study / "report.md").read_text()) == flagged


def test_paper_cpu_escalates_every_fgsm_and_pgd_row_and_never_raises_accuracy():
    """On the ladder's images what stands after escalation is at most what the row's attack left standing
    there (escalation_standing); against the row's number, counted on all its images, it may read higher."""
    with (RESULTS / "paper_cpu" / "runs.csv").open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["attack"] in ("fgsm", "pgd")]
    assert len(rows) == 4 * (5 + 2 * 3)  # 4 FGSM and PGD cells of 5 models at seed 0 and of 3 at seeds 1 and 2
    for r in rows:
        assert r["escalated_accuracy"] != "", r["run_id"]
        stands = round(float(r["escalated_accuracy"]) * float(r["escalated_images"]))
        assert stands <= float(r["escalation_standing"]) <= float(r["escalated_images"]), r["run_id"]
