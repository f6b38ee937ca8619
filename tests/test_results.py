"""The committed studies under docs/results: no local path in any of their text."""

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
