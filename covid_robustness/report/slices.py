"""A long evaluation cut into slices of the test split (eval.first_image), read as the one evaluation it is.

A job with eval.first_image and eval.max_images attacks test images first_image .. first_image + max_images
- 1 (evaluation/evaluate.py attacked_images). Slices that follow one another from image 0 attack exactly
the images one job with their total as max_images would, so the report reads them as that job: counts
add up; a share is weighed by the images it is a share of (the attacked images, those right on the clean
input, the escalation ladder's, the COVID-19 images, read off each slice's confusion.json); a maximum is the
largest; a reading of the whole test split (test/acc, thresholds, the budget in pixels) is the same in every
slice. A metric that the slices' records cannot pool (an AUROC, an ECE) is left out of the joined job
unless every slice logged the same value. The checklist and its verdict (record/checklist.py) then read
the pooled counts, so the whole is judged on all of its images, not slice by slice.
"""

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from ..data.classes import COVID
from ..record import Job, Metrics, Params, Tags, numbers_params
from ..record.sections import FIRST_IMAGE

# Counts, over all images: they add up.
SUMMED = {
    Metrics.IMAGES,
    Metrics.SECONDS,
    Metrics.ESCALATION_IMAGES,
    Metrics.ESCALATION_STANDING,
    Metrics.CHECK_LARGE_BUDGET_PASSES,
}
SUMMED_STAGE = ("_broken", "_passes", "_seconds")  # escalation_<stage>_...: each stage's images, passes, seconds
LARGEST = {Metrics.LINF_MAX, Metrics.L2_MAX}
# Readings of the whole test split (or of the trained model), the same in every slice: the first slice's.
WHOLE_SPLIT = (
    Metrics.TEST,
    Metrics.THRESHOLD,
    Metrics.TEST_IMAGES,
    Metrics.DEFENDED_TEST_ACCURACY,
    Metrics.DEFENDED_TEST_SENSITIVITY,
    Metrics.EPS_PIXEL,
    Metrics.EPS_STD,
    Metrics.NORMALISATION_STD,
    Metrics.TEST_NEAR_DUPLICATES,
    "near_duplicate_",
    "model_parameters",
    Metrics.PAPER_PARAMETERS,
)
# Tags a job wrote of its own numbers: the report computes them again for the whole.
OWN_TAGS = (Tags.CELL_KEY, Tags.MASKING, Tags.MASKING_REASONS, Tags.VERDICT, Tags.VERDICT_EVIDENCE)

Weight = Callable[[dict[str, float], dict | None], float | None]  # (metrics, _counts) -> images


def _attacked(m, _c):
    return m[Metrics.IMAGES]


def _counted(name: str) -> Weight:
    return lambda _m, c: None if c is None else c[name]


# The images each share is a share of; None where a slice's records cannot say (no confusion.json).
WEIGHTS: dict[str, Weight] = {
    **dict.fromkeys(
        (
            Metrics.CLEAN,
            Metrics.ADVERSARIAL,
            Metrics.FORWARD_PASSES,
            Metrics.BACKWARD_PASSES,
            Metrics.LINF_MEAN,
            Metrics.L2_MEAN,
            f"{Metrics.BRIER}_clean",
            f"{Metrics.BRIER}_adversarial",
        ),
        _attacked,
    ),
    Metrics.ATTACK_SUCCESS: lambda m, _c: m[Metrics.CLEAN] * m[Metrics.IMAGES],
    f"{Metrics.CONFIDENT_ERRORS}_clean": lambda m, _c: (1 - m[Metrics.CLEAN]) * m[Metrics.IMAGES],
    f"{Metrics.CONFIDENT_ERRORS}_adversarial": lambda m, _c: (1 - m[Metrics.ADVERSARIAL]) * m[Metrics.IMAGES],
    **dict.fromkeys(
        (Metrics.ESCALATED, Metrics.ESCALATION_PASSES_PER_IMAGE, Metrics.CHECK_NOISE, Metrics.CHECK_LARGE_BUDGET),
        lambda m, _c: m[Metrics.ESCALATION_IMAGES],
    ),
    Metrics.SENSITIVITY_CLEAN: _counted("covid"),
    Metrics.SENSITIVITY_ADVERSARIAL: _counted("covid"),
    Metrics.MISSED_COVID: _counted("covid_right"),  # among the images right on the clean input
    Metrics.FALSE_ALARM: _counted("others_right"),
}
WEIGHT_PREFIXES: dict[str, Weight] = {
    Metrics.PER_EVALUATION: _attacked,
    Metrics.CURVE: _attacked,
    Metrics.SENSITIVITY_AT: _counted("covid"),
    Metrics.SPECIFICITY_AT: _counted("others"),
}


def groups(jobs: list[Job]) -> list[list[Job]]:
    """The slices that follow one another from test image 0, in image order, two or more to a group: jobs of
    one trained model whose every setting that can change their numbers agrees but eval.first_image."""
    candidates: dict[tuple, list[Job]] = defaultdict(list)
    for job in jobs:
        if job.params.get(Params.MAX_IMAGES, "None") != "None" and Metrics.IMAGES in job.metrics:
            settings = {k: v for k, v in numbers_params(job.params).items() if k != FIRST_IMAGE}
            candidates[(job.training_run_id, tuple(sorted(settings.items())))].append(job)
    out = []
    for found in candidates.values():
        chain, end = [], 0
        for job in sorted(found, key=lambda j: j.first_image):
            if job.first_image != end:
                break
            chain.append(job)
            end += int(job.metrics[Metrics.IMAGES])
        if len(chain) > 1:
            out.append(chain)
    return out


def _pooled(values, weights) -> float | None:
    """The weighted mean; a slice that weighs nothing (a rate over no such image: nan) adds nothing."""
    if any(w is None for w in weights):
        return None
    total = sum(weights)
    if not total:
        return float("nan")
    return float(sum(v * w for v, w in zip(values, weights) if w) / total)


def _same(values) -> bool:
    first = values[0]
    return all(v == first or (math.isnan(v) and math.isnan(first)) for v in values)


def _weight(name: str) -> Weight | None:
    if name in WEIGHTS:
        return WEIGHTS[name]
    return next((w for prefix, w in WEIGHT_PREFIXES.items() if name.startswith(prefix)), None)


def _counts(confusion: dict | None) -> dict[str, float] | None:
    """A slice's images by COVID-19 or not, and those of each the model got right on the clean input, from its
    confusion.json (true class x predicted); None without one."""
    if confusion is None or COVID not in confusion["classes"]:
        return None
    counts = np.asarray(confusion["clean"], dtype=float)
    k = confusion["classes"].index(COVID)
    others = [i for i in range(len(counts)) if i != k]
    return {
        "covid": counts[k].sum(),
        "covid_right": counts[k, k],
        "others": counts[others].sum(),
        "others_right": sum(counts[i, i] for i in others),
    }


def pooled_metrics(slices: list[Job], confusions: list[dict | None], whole: dict | None) -> dict[str, float]:
    """The metrics of the whole the slices make up (confusions: each slice's confusion.json, or None; whole:
    their sum)."""
    metrics = [j.metrics for j in slices]
    counts = [_counts(c) for c in confusions]
    out = {}
    for name in dict.fromkeys(k for m in metrics for k in m):
        if any(name not in m for m in metrics):
            continue  # logged by some slices only: nothing to pool
        values = [m[name] for m in metrics]
        stage = name.startswith(Metrics.ESCALATION) and name.endswith(SUMMED_STAGE)
        if name in SUMMED or stage:
            out[name] = float(sum(values))
        elif name in LARGEST:
            out[name] = float(max(values))
        elif name.startswith(WHOLE_SPLIT):
            out[name] = values[0]
        elif (weight := _weight(name)) is not None:
            if (value := _pooled(values, [weight(m, c) for m, c in zip(metrics, counts)])) is not None:
                out[name] = value
        elif _same(values):
            out[name] = values[0]
    if whole is not None:
        matrix = np.asarray(whole["clean"], dtype=float)
        out[Metrics.MAJORITY] = float(matrix.sum(1).max() / matrix.sum())
        out[Metrics.PREDICTED_CLASSES] = float((matrix.sum(0) > 0).sum())
    return out


def pooled_confusion(confusions: list[dict | None]) -> dict | None:
    """The slices' confusion.json summed: the whole's."""
    if not confusions or any(c is None for c in confusions):
        return None
    first = confusions[0]
    return {
        "classes": first["classes"],
        **{k: np.sum([c[k] for c in confusions], axis=0).astype(int).tolist() for k in ("clean", "adversarial")},
    }


def join(slices: list[Job], confusions: list[dict | None]) -> tuple[Job, dict | None]:
    """The one job the slices make up (in image order): the first slice's run, settings and examples, with
    the whole's images as its max_images (None: the whole test split), its pooled metrics, and the slices
    themselves (Job.slices: their runs, commits, command lines and times); and its confusion.json."""
    first, confusion = slices[0], pooled_confusion(confusions)
    metrics = pooled_metrics(slices, confusions, confusion)
    images = int(metrics[Metrics.IMAGES])
    whole = images == metrics.get(Metrics.TEST_IMAGES)
    params = {k: v for k, v in first.params.items() if k != FIRST_IMAGE}
    params[Params.MAX_IMAGES] = "None" if whole else str(images)
    untrained = [f"images {j.first_image}+: {j.untrained_reason}" for j in slices if j.untrained]
    job = replace(
        first,
        start_time=min(j.start_time for j in slices),
        end_time=max(j.end_time for j in slices),
        params=params,
        metrics=metrics,
        masking=False,
        masking_reasons="",
        cell_key="",  # keyed by its settings, as the one job it is
        untrained=bool(untrained),
        untrained_reason="; ".join(untrained),
        tags={k: v for k, v in first.tags.items() if k not in OWN_TAGS},
        slices=tuple(slices),
    )
    return job, confusion


def joined(jobs: list[Job], confusion: Callable[[Job], dict | None]) -> tuple[list[Job], dict[str, dict | None]]:
    """The jobs (newest first) with each group of slices read as one job, where its newest slice stood; and the
    pooled confusion.json of each joined job, by its run id."""
    found = groups(jobs)
    whole, confusions = {}, {}
    for group in found:
        job, confusions[group[0].run_id] = join(group, [confusion(j) for j in group])
        whole[max(group, key=lambda j: j.start_time).run_id] = job
    parts = {j.run_id for group in found for j in group}
    out = [whole.get(j.run_id, j) for j in jobs if j.run_id not in parts or j.run_id in whole]
    return out, confusions
