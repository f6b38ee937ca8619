"""The blocks every page is made of: a table, a figure, a link to another page, and the way a number is written.

A page is a list of these; the Markdown and the HTML renderers (markdown.py, html.py) turn the same list into
each format, so the two pages cannot disagree. A table's cells are text already: how an accuracy, its
interval and its flags read is decided here once, for every table.
"""

from dataclasses import dataclass, field
from datetime import datetime

from ..record import Tags
from ..record.budget import grey_levels
from .estimate import Estimate

MASK = "⚠"
UNTRAINED = "∅"
DASH = "–"
SAME = "≈"  # beside a difference whose two accuracies' intervals overlap
UNTRAINED_NOTE = (
    f"{UNTRAINED}: the model is no better than always answering the majority class (tag {Tags.UNTRAINED}, "
    "reason in the table of jobs): an attack cannot turn its answers wrong, so its accuracy says nothing "
    "about robustness."
)
INTERVAL_NOTE = (
    "[low, high]: the 95 % Wilson score interval of the images counted; with several seeds the mean over "
    "them, their (min-max, n seeds) and the interval of all their images together (where the seeds count "
    "different numbers of images, of the pooled value it names)."
)


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)


@dataclass
class Figure:
    file: str  # the PNG's name in the report folder
    title: str
    caption: str
    png: bytes


@dataclass
class Link:
    """A section that points to another page of the report."""

    title: str
    href: str  # relative to the report folder
    text: str


def pct(value: float | None) -> str:
    return DASH if value is None or value != value else f"{100 * value:.2f}"


def marks(jobs, masking: bool = True) -> str:
    """The flags a number carries: possible gradient masking (of an attack's number), an untrained model."""
    jobs = list(jobs)
    return (f" {MASK}" if masking and any(j.masking for j in jobs) else "") + (
        f" {UNTRAINED}" if any(j.untrained for j in jobs) else ""
    )


def cell(estimate: Estimate | None, masking: bool = True) -> str:
    """An accuracy with its interval, its seeds and its flags; a dash where there is none.

    masking=False for clean accuracies, which no attack produced.
    """
    return DASH if estimate is None else estimate.text() + marks(estimate.jobs, masking)


def _job_text(job) -> str:
    budget = "" if job.eps_pixel is None else f" at {grey_levels(job.eps_pixel)}"
    return f"{job.model_label or job.model} {job.attack_label or job.attack}{budget}"


def mask_note(jobs) -> str | None:
    """The masking legend, naming the jobs flagged among these; None where none is."""
    flagged = sorted({_job_text(j) for j in jobs if j.masking})
    if not flagged:
        return None
    return (
        f"{MASK}: possible gradient masking flagged in {', '.join(flagged)} (reasons in the table of jobs; "
        "what each flag means and what to do: docs/flags.md)."
    )


def flag_notes(jobs, masking: bool = True) -> list[str]:
    """The legend of the marks the table uses: only of those that stand in it."""
    jobs = list(jobs)
    note = mask_note(jobs) if masking else None
    return [note] * (note is not None) + [UNTRAINED_NOTE] * any(j.untrained for j in jobs)


def when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")
