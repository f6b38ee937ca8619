"""One accuracy as the report states it: the runs of one cell that differ only in the seed, taken together.

A reader needs two kinds of doubt beside a number: how much it moves with the seed (mean and min-max
over seeds) and how much it could move with other images (the Wilson interval of the images counted,
pooled over the seeds).
"""

from collections.abc import Iterable
from dataclasses import dataclass

from ..record import Metrics
from ..record.intervals import wilson
from .collect import Job


@dataclass(frozen=True)
class Estimate:
    """An accuracy over seeds (or, pooled, over models too), with the images each value counts."""

    values: tuple[float, ...]  # one fraction per seed
    images: tuple[float, ...]  # the images each value counts
    jobs: tuple[Job, ...] = ()
    counted_on_attacked: bool = False  # a run lacked the test split's count: its clean value counts the attacked

    @property
    def seeds(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values)

    @property
    def spread(self) -> tuple[float, float]:
        return min(self.values), max(self.values)

    @property
    def correct(self) -> int:
        return sum(round(v * n) for v, n in zip(self.values, self.images))

    @property
    def total(self) -> int:
        return sum(round(n) for n in self.images)

    @property
    def pooled(self) -> float:
        """Correct over counted images, all seeds together (the mean when every seed counts as many)."""
        return self.correct / self.total if self.total else self.mean

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.correct, self.total)

    @property
    def masking(self) -> bool:
        return any(j.masking for j in self.jobs)

    @property
    def untrained(self) -> bool:
        return any(j.untrained for j in self.jobs)

    def text(self) -> str:
        """ "93.75 [88.3, 96.8]", or with seeds "72.50 (70.00-75.00, 3 seeds) [66.1, 78.0]", in %."""
        lo, hi = self.interval
        low, high = self.spread
        # Seeds that count different numbers of images (an escalation ladder's): the interval is the pooled value's.
        pooled = "" if len({round(n) for n in self.images}) == 1 else f"; pooled {100 * self.pooled:.2f}"
        seeds = "" if self.seeds == 1 else f" ({100 * low:.2f}-{100 * high:.2f}, {self.seeds} seeds{pooled})"
        return f"{100 * self.mean:.2f}{seeds} [{100 * lo:.1f}, {100 * hi:.1f}]"


def per_seed(jobs: Iterable[Job]) -> list[Job]:
    """The newest job of each seed (jobs newest first): a cell's repeats, one per seed."""
    newest: dict[str, Job] = {}
    for job in jobs:
        newest.setdefault(job.seed, job)
    return list(newest.values())


def measured(jobs: Iterable[Job], metric: str, count: str = Metrics.IMAGES) -> Estimate:
    """The metric over the jobs (one per seed), counted on the images named by count (else the attacked ones)."""
    jobs = tuple(jobs)
    return Estimate(
        tuple(j.metrics[metric] for j in jobs),
        tuple(j.metrics.get(count, j.metrics[Metrics.IMAGES]) for j in jobs),
        jobs,
        any(count not in j.metrics for j in jobs),
    )


def escalated(estimate: Estimate | None) -> Estimate | None:
    """What stands of an attacked estimate's images after escalation (evaluation/escalation.py), counted on the
    ladder's images; None unless every job of it was escalated."""
    if estimate is None or not estimate.jobs or any(Metrics.ESCALATED not in j.metrics for j in estimate.jobs):
        return None
    return measured(estimate.jobs, Metrics.ESCALATED, Metrics.ESCALATION_IMAGES)


def deployed_metric(job: Job) -> str:
    """The clean accuracy on the whole test split as deployed: through an input-transformation defense if any."""
    return Metrics.DEFENDED_TEST_ACCURACY if Metrics.DEFENDED_TEST_ACCURACY in job.metrics else Metrics.TEST_ACCURACY


def clean_on_test(jobs: Iterable[Job]) -> Estimate:
    """The clean accuracy on the whole test split as deployed, over the jobs (one per seed)."""
    return pooled(measured([j], deployed_metric(j), Metrics.TEST_IMAGES) for j in jobs)


def pooled(estimates: Iterable[Estimate]) -> Estimate:
    """Several estimates as one: every value and count together (an average over models, say)."""
    estimates = list(estimates)
    return Estimate(
        tuple(v for e in estimates for v in e.values),
        tuple(n for e in estimates for n in e.images),
        tuple(j for e in estimates for j in e.jobs),
        any(e.counted_on_attacked for e in estimates),
    )


Seeds = dict[str, tuple[float, float]]  # seed -> (accuracy, images counted)


def by_seed(estimate: Estimate) -> Seeds:
    """An estimate's value and images per seed."""
    return {j.seed: (v, n) for v, n, j in zip(estimate.values, estimate.images, estimate.jobs)}


@dataclass(frozen=True)
class Average:
    """Several models' accuracies as one number, each model weighing the same whatever its seeds and images.

    Per model, its accuracy over its seeds (correct over images). The average is the mean of the models'
    accuracies, as the paper's average is; its Wilson interval counts the models' images of one seed (their
    mean, per model), so a model whose escalation read fewer images neither weighs less nor narrows the
    interval beyond what was read. spread: the average at each seed, a model without that seed held at its
    own accuracy, lowest and highest: how far a new seed could move it.
    """

    parts: tuple[Seeds, ...]  # one per model

    @classmethod
    def of(cls, estimates: Iterable[Estimate]) -> "Average":
        return cls(tuple(by_seed(e) for e in estimates))

    @staticmethod
    def _model(seeds: Seeds) -> tuple[float, float]:
        """(accuracy, images of one seed) of one model."""
        images = sum(n for _, n in seeds.values())
        return sum(v * n for v, n in seeds.values()) / images, images / len(seeds)

    def _at(self, seed: str | None = None) -> tuple[float, float]:
        """(correct, images) over the models, each model weighing the mean images of one seed: each at the
        seed given where it has it, else at its own accuracy."""
        per_model = [self._model(s)[1] for s in self.parts]
        n = sum(per_model) / len(per_model) if per_model else 0.0
        accuracy = [s[seed][0] if seed in s else self._model(s)[0] for s in self.parts]
        return sum(accuracy) * n, n * len(accuracy)

    @property
    def value(self) -> float:
        correct, images = self._at()
        return correct / images if images else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(*self._at())

    @property
    def seeds(self) -> int:
        return max((len(s) for s in self.parts), default=0)

    @property
    def spread(self) -> tuple[float, float]:
        at = [c / n for c, n in (self._at(s) for s in sorted({s for p in self.parts for s in p})) if n]
        return (min(at), max(at)) if at else (self.value, self.value)

    def contains(self, percent: float) -> bool:
        """Whether a value in % lies inside the interval: then the data cannot tell the average from it."""
        lo, hi = self.interval
        return 100 * lo <= percent <= 100 * hi

    def text(self) -> str:
        """ "58.33 [52.0, 64.4]", or with seeds "58.33 (57.10-59.20 over 3 seeds) [52.0, 64.4]", in %."""
        lo, hi = self.interval
        low, high = self.spread
        seeds = "" if self.seeds <= 1 else f" ({100 * low:.2f}-{100 * high:.2f} over {self.seeds} seeds)"
        return f"{100 * self.value:.2f}{seeds} [{100 * lo:.1f}, {100 * hi:.1f}]"
