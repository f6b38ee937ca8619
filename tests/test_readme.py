"""The READMEs' generated regions say what the committed results say: each is rendered again from the
report files it names (results.json, manifest.json under docs/results) and must come out unchanged."""

import bisect
import re
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


FENCED = re.compile(r"```.*?```|<!-- generated: .*?<!-- /generated -->", re.S)
STATED = re.compile(r"(?<![\w.])(\d+)\.(\d+)(?![\w.]*/)(?!\.\d)")  # 12.3, not 0.3/255 nor 127.0.0.1
READ = re.compile(r"-?\d+(?:\.\d+)?(?:[eE]-?\d+)?")
RESULT_FILES = ("report.md", "results.json", "runs.csv", "clinical.md", "manifest.json")


def _values(study: Path) -> list[float]:
    """Every number a study's committed files hold, as written and as a percentage."""
    out = set()
    for name in RESULT_FILES:
        if (study / name).exists():
            for m in READ.finditer((study / name).read_text(encoding="utf-8")):
                v = abs(float(m.group(0)))
                out |= {v, 100 * v}
    return sorted(out)


def _sections(page: Path):
    """(heading, hand-written text, the studies it cites) per section of a page."""
    for section in re.split(r"\n(?=## )", page.read_text(encoding="utf-8")):
        cited = {ROOT / "docs" / "results" / s for s in re.findall(r"docs/results/(\w+)", section)}
        if page.parent.parent.name == "results":
            cited.add(page.parent)
        yield section.splitlines()[0], FENCED.sub("", section), cited


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_decimal_the_prose_states_is_a_number_of_the_results_it_cites(page):
    unfound = []
    for heading, prose, cited in _sections(page):
        if not cited:
            continue
        values = sorted({v for study in cited for v in _values(study)})
        for m in STATED.finditer(prose):
            x, tol = float(m.group(0)), 0.5 * 10 ** -len(m.group(2)) + 1e-9
            i = bisect.bisect_left(values, x - tol)
            if not (i < len(values) and values[i] <= x + tol):
                unfound.append(f"{heading[:50]}: {prose[max(0, m.start() - 50) : m.end() + 10]!r}")
    assert not unfound, "\n".join(unfound)
