"""The READMEs' generated regions say what the committed results say: each is rendered again from the
report files it names (results.json, manifest.json under docs/results) and must come out unchanged."""

from pathlib import Path

import pytest

from covid_robustness.report import readme

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs" / "results").glob("*/README.md"))]
GENERATED = [p for p in PAGES if readme.REGION.search(p.read_text(encoding="utf-8"))]


def test_some_committed_readme_has_generated_regions():
    assert GENERATED, "no README under docs/results has a generated region"


@pytest.mark.parametrize("page", GENERATED, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_committed_readmes_regions_are_what_its_files_give(page):
    text = page.read_text(encoding="utf-8")
    assert readme.render(page, text) == text, f"run: python -m covid_robustness readme {page.relative_to(ROOT)}"
