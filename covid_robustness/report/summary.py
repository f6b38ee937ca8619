"""The study as the paper's Table II lays it out: one row per evaluation set, one value per model.

The paper ran ART at its defaults on standardised images, so its eps 0.3 most likely meant 0.3 standard
deviations of the input: its FGSM and PGD values compare with our ART-default rows in std units, its
C&W with ART's defaults, its spatial attack with ART's rule (one transform for all attacked images,
horizontal translations only). Each paper row is compared with our rows of that setting only.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from math import nan
from statistics import mean

from ..record import Metrics
from .collect import Job, Study
from .estimate import Average, Estimate, escalated, measured, per_seed
from .evalsets import EvalSet, describe, differing, evaluation_sets, key, training_settings
from .labels import PAPER_MODELS as MODELS
from .labels import Labels

CLEAN = "clean"
CLEAN_SPLIT = "whole test split"

# Table II of the paper, accuracy in %, in the order of MODELS.
PAPER_TABLE2 = {
    CLEAN: (93.52, 98.35, 99.56, 97.04, 95.39),
    "fgsm": (51.9, 63.11, 38.1, 24.84, 27.88),
    "pgd": (18.48, 40.56, 30.65, 19.06, 18.77),
    "cw": (38.63, 53.28, 56.3, 58.71, 43.81),
    "st": (56.31, 46.65, 59.39, 65.64, 53.9),
}
# Which of our evaluation sets each paper row compares with: the EvalSet fields it must have.
PAPER_SETTING = {
    "fgsm": {"setting": "art_default", "eps_unit": "std", "eps": 0.3},
    "pgd": {"setting": "art_default", "eps_unit": "std", "eps": 0.3},
    "cw": {"setting": "art_default", "eps": None},
    "st": {"setting": "art_rule"},
}
PAPER_WHY = {
    "fgsm": "the paper ran ART's defaults on standardised images, so its eps 0.3 was 0.3 standard deviations "
    "of the input, not 0.3 on [0, 1] pixels (76.5/255, the ART-default rows in pixel units)",
    "cw": "ART's defaults, unbounded, as the paper ran them",
    "st": "ART's rule, as the paper ran it: one transform (the one that fools the most images) for all attacked "
    "images, horizontal translations only; our per-image worst case (paper setting) is a stronger attack",
}
PAPER_WHY["pgd"] = PAPER_WHY["fgsm"]


def compares_with_paper(evalset: EvalSet) -> bool:
    spec = PAPER_SETTING.get(evalset.attack)
    return spec is not None and all(getattr(evalset, k) == v for k, v in spec.items())


def paper_label(attack: str, labels: Labels) -> str:
    """The evaluation set a paper row compares with, as our row of it would be labelled."""
    spec = PAPER_SETTING[attack]
    text = (
        "unbounded"
        if attack == "cw"
        else "rot ±30°, shift ±10%"
        if attack == "st"
        else f"eps={spec['eps']:g} {spec['eps_unit']}"
    )
    return describe(labels, attack, spec["setting"], "art", budget_text=text)


@dataclass
class Row:
    """One evaluation set: accuracy per model over its seeds, and mean COVID-19 sensitivity, as fractions."""

    label: str
    attack: str  # CLEAN for the clean test split
    evalset: EvalSet | None = None  # None: a clean row, or a paper row this study did not run
    accuracy: dict[str, Estimate] = field(default_factory=dict)
    sensitivity: dict[str, float] = field(default_factory=dict)
    compared: bool = False  # the paper's row of this attack compares with this one
    attack_label: str = ""  # the attack as the study's runs label it

    @property
    def setting(self) -> str:
        return "" if self.evalset is None else self.evalset.setting

    @property
    def eps(self) -> float | None:
        """The budget on [0, 1] pixels."""
        return None if self.evalset is None else self.evalset.eps_pixel

    @property
    def impl(self) -> str:
        return "" if self.evalset is None else self.evalset.impl

    @property
    def paper_row(self) -> str:
        return ("Clean" if self.attack == CLEAN else self.attack_label) if self.compared else ""

    @property
    def jobs(self) -> dict[str, list[Job]]:
        """Per model, the runs of its seeds; empty for the clean rows."""
        return {} if self.evalset is None else {m: list(e.jobs) for m, e in self.accuracy.items()}

    @property
    def paper(self) -> dict[str, float]:
        """The paper's accuracy (%) per model, where this row is the one the paper's row compares with."""
        return dict(zip(MODELS, PAPER_TABLE2[self.attack])) if self.compared else {}


def newest_job_per_model(study: Study) -> dict[str, Job]:
    """Per model, its newest job without defense or transfer (the paper's setting), else its newest job."""
    newest: dict[str, Job] = {}
    for job in study.jobs:  # newest first
        if job.plain:
            newest.setdefault(job.model, job)
    for job in study.jobs:
        newest.setdefault(job.model, job)
    return newest


def _clean_jobs(study: Study) -> list[Job]:
    """Per model its jobs without defense or transfer, or all its jobs where it has none."""
    plain = {j.model for j in study.jobs if j.plain}
    return [j for j in study.jobs if j.plain or j.model not in plain]


def clean_rows(study: Study) -> list[Row]:
    """One row per training setting (usually one): the accuracy on the whole test split, over the seeds."""
    groups: dict[tuple, dict[str, list[Job]]] = defaultdict(lambda: defaultdict(list))
    for job in _clean_jobs(study):
        groups[training_settings(job)][job.model].append(job)
    extras = differing({k: dict(k) for k in groups})
    out = []
    for k, by_model in groups.items():
        row = Row(f"Clean ({', '.join([CLEAN_SPLIT, *extras[k]])})", CLEAN, compared=True)
        for model, jobs in by_model.items():
            seeds = per_seed(jobs)
            # the bare model, as the paper's
            row.accuracy[model] = measured(seeds, Metrics.TEST_ACCURACY, Metrics.TEST_IMAGES)
            row.sensitivity[model] = mean(j.metrics[Metrics.TEST_SENSITIVITY] for j in seeds)
        out.append(row)
    return sorted(out, key=lambda r: r.label)


def attack_rows(study: Study) -> list[Row]:
    """One row per evaluation set of the jobs without defense or transfer, in the report's order."""
    sets = evaluation_sets(study.jobs, study.labels)  # labelled against every set of the study, as the other tables are
    groups: dict[tuple, dict[str, list[Job]]] = defaultdict(lambda: defaultdict(list))
    for job in study.jobs:
        if job.plain:
            groups[key(job)][job.model].append(job)
    out = []
    for k, by_model in groups.items():
        evalset = sets[k]
        label = study.labels.attack(evalset.attack)
        row = Row(evalset.label, evalset.attack, evalset, compared=compares_with_paper(evalset), attack_label=label)
        for model, jobs in by_model.items():
            seeds = per_seed(jobs)
            row.accuracy[model] = measured(seeds, Metrics.ADVERSARIAL)
            # nan where a job's records cannot say (slices joined without their confusion.json: slices.py)
            row.sensitivity[model] = mean(j.metrics.get(Metrics.SENSITIVITY_ADVERSARIAL, nan) for j in seeds)
        out.append(row)
    return sorted(out, key=lambda r: r.evalset.order)


def rows(study: Study) -> list[Row]:
    """The clean rows, then one row per evaluation set, then the paper's rows this study did not run (where
    it ran one of them: a study of one's own is not given the paper's rows as gaps).

    Only jobs in the paper's setting (no defense, examples crafted on the model itself); defenses and
    transfer attacks have tables of their own.
    """
    attacked = attack_rows(study)
    compared = {row.attack for row in attacked if row.compared}
    missing = [
        Row(f"{paper_label(a, study.labels)}: not in this study", a, compared=True, attack_label=study.labels.attack(a))
        for a in PAPER_SETTING
        if a not in compared and compared
    ]
    return [*clean_rows(study), *attacked, *missing]


def average(row: Row, models=tuple(MODELS)) -> tuple[Average | None, list[str]]:
    """The row over the models (the paper's five), each counted once (estimate.Average); else the models it lacks."""
    missing = [m for m in models if m not in row.accuracy]
    return (None, missing) if missing or not models else (Average.of(row.accuracy[m] for m in models), [])


def flagged(row: Row) -> list[str]:
    """The paper's models whose number in this row is flagged: untrained, or (an attack row) possible masking."""
    return [
        m
        for m in MODELS
        if m in row.accuracy and (row.accuracy[m].untrained or (row.attack != CLEAN and row.accuracy[m].masking))
    ]


@dataclass
class Averaged:
    """One compared row over the paper's five models, as Table II's averages and results.json give it."""

    row: Row
    paper: float  # the paper's mean of the five, in %
    ours: Average | None = None  # None: a model lacks a value (missing)
    missing: list[str] = field(default_factory=list)
    escalated: Average | None = None  # where every model's jobs were escalated
    left_out: list[str] = field(default_factory=list)  # flagged models (flagged())
    without: Average | None = None  # the average without them (None: none flagged, or all)
    without_escalated: Average | None = None
    paper_without: float | None = None  # the paper's mean of the same models, in %


def _escalated_average(row: Row, models) -> Average | None:
    parts = [escalated(row.accuracy[m]) for m in models]
    return None if row.attack == CLEAN or any(p is None for p in parts) else Average.of(parts)


def averages(rows: list[Row]) -> list[Averaged]:
    """Each row the paper's rows compare with, in the paper's order, over the five models."""
    out = []
    for row in sorted((r for r in rows if r.compared), key=lambda r: list(PAPER_TABLE2).index(r.attack)):
        a = Averaged(row, paper_average(row.attack))
        if row.accuracy:
            a.ours, a.missing = average(row)
        if a.ours is not None:
            a.escalated = _escalated_average(row, MODELS)
            a.left_out = flagged(row)
            kept = tuple(m for m in MODELS if m not in a.left_out)
            if a.left_out and kept:
                a.without, _ = average(row, kept)
                a.without_escalated = _escalated_average(row, kept)
                a.paper_without = paper_average(row.attack, kept)
        out.append(a)
    return out


def paper_average(attack: str, models=tuple(MODELS)) -> float:
    """The paper's headline average of a row over its five models (or those given), in %."""
    return mean(v for m, v in zip(MODELS, PAPER_TABLE2[attack]) if m in models)


def sweeps(rows: list[Row]) -> dict[str, list[Row]]:
    """Rows that differ only in their budget, where there are several, by the name of what they share."""
    groups: dict[tuple, list[Row]] = defaultdict(list)
    for row in rows:
        if row.evalset is not None and row.evalset.sweep is not None and row.eps is not None:
            groups[row.evalset.sweep].append(row)
    ordered = sorted((g for g in groups.values() if len(g) > 1), key=lambda g: min(r.evalset.order for r in g))
    return {g[0].evalset.name: sorted(g, key=lambda r: r.eps) for g in ordered}
