"""Beyond the adversary: corrupted test images, another source's images, side by side with the attacks.

Read from the jobs' `corruption_*` metrics (corruption=medmnistc jobs) and `external_*` metrics (jobs run
with data.external_root); nothing is run again. A model's trainings that differ in a data setting (a
remedy switched on, say) are told apart by that setting.
"""

from collections import defaultdict

import matplotlib.pyplot as plt
import numpy as np

from ..record import Metrics, ProbeMetrics, numbers_params
from ..record.budget import grey_levels
from ..record.intervals import overlap
from ..record.sections import ATTACK, EVAL, PROBE, is_training_param, section
from ..shortcut import PROBES, verdict
from .blocks import DASH, SAME, Table, pct
from .collect import Job, Probe, Study
from .estimate import Estimate, measured, pooled
from .evalsets import differing, settings, training_settings
from .figures import COLORS, error_bars
from .labels import Labels, model_order

BORDER, STATISTICS = PROBES
SEVERITY_NOTE = "mean over the job's severities"


# The title and caption of each figure this module draws, as the report prints them.
CORRUPTION_FIGURE = (
    "Corruption accuracy per severity",
    "Accuracy (%) of each model on its test images corrupted by each MedMNIST-C corruption (rows) at "
    "each severity (columns), read clean; green is high.",
)
EXTERNAL_FIGURE = (
    "Internal against external accuracy",
    "Clean accuracy on the model's own test split and on every image of the external set (another "
    "source), each with its 95 % Wilson interval; black ticks: the external set's majority-class share, what "
    "always answering that class scores.",
)


def corruption_jobs(study: Study) -> list[Job]:
    return [j for j in study.jobs if j.corruption is not None and j.source_model is None and j.defense == "none"]


def external_jobs(study: Study) -> list[Job]:
    return [j for j in study.jobs if Metrics.EXTERNAL_ACCURACY in j.metrics]


def probe_table(study: Study) -> Table | None:
    """Per model: its clean test accuracy beside the shortcut probes' and chance, with the verdict."""
    if not study.probes:
        return None
    statistics = next((p for p in study.probes if p.probe == STATISTICS), None)  # one serves every model
    models = model_order({p.model for p in study.probes if p.probe == BORDER} | {j.model for j in study.jobs})
    rows = []
    for model in models:
        border = next((p for p in study.probes if p.probe == BORDER and p.model == model), None)
        full = _full_model_accuracy(study, model, border or statistics)
        found = {BORDER: border, STATISTICS: statistics}
        chance = next((p.metrics[ProbeMetrics.CHANCE] for p in found.values() if p is not None), None)
        accuracy = {k: None if p is None else p.metrics[ProbeMetrics.ACCURACY] for k, p in found.items()}
        rows.append(
            [
                study.labels.model(model),
                pct(full),
                *(DASH if accuracy[k] is None else pct(accuracy[k]) for k in PROBES),
                pct(chance),
                DASH if chance is None else verdict(full, accuracy, chance),
            ]
        )
    return Table(
        "Shortcut probe: the task without the lungs (%)",
        ["model", "full model (clean, test split)", "border probe", "statistics probe", "chance", "verdict"],
        rows,
        [
            "Border probe: the model trained and tested on images whose interior is blanked (only a frame along "
            "the edges visible). Statistics probe: gradient-boosted trees on each original file's size, mode, "
            "format, bytes and grey-level mean and std, no image. Chance: always the test split's majority "
            "class. A probe near the full model, or far above chance, means the classes can be told apart by "
            "where the images came from: the clean accuracy then says little about the disease."
        ],
    )


def _full_model_accuracy(study: Study, model: str, probe: Probe | None) -> float | None:
    """The clean test accuracy of the model's training that matches the probe's training settings best (a
    study may also train the model with a remedy switched on: that one is not the probe's full model)."""
    plain = [j for j in study.jobs if j.model == model and j.plain and Metrics.TEST_ACCURACY in j.metrics]
    if not plain:
        return None
    params = numbers_params(probe.params) if probe is not None else {}
    wanted = {(k, v) for k, v in params.items() if is_training_param(k) and section(k) != PROBE}
    best = min(plain, key=lambda j: len(set(training_settings(j)) ^ wanted))
    return best.metrics[Metrics.TEST_ACCURACY]


def _variants(jobs: list[Job]) -> dict[tuple, str]:
    """Each training variant (training settings less the model) labelled by how it differs from the others."""
    sets = {training_settings(j): dict(training_settings(j)) for j in jobs}
    differs = differing(sets)
    return {k: ", ".join(differs.get(k, [])) for k in sets}


def _model_variant(job: Job, variants: dict[tuple, str], labels: Labels) -> str:
    variant = variants.get(training_settings(job), "")
    return labels.model(job.model) + (f" ({variant})" if variant else "")


def _ordered(keys, variants: dict[tuple, str]) -> list[tuple[str, tuple]]:
    """(model, training variant) pairs in the paper's model order, then by variant label."""
    order = model_order({m for m, _ in keys})
    return sorted(keys, key=lambda mv: (order.index(mv[0]), variants.get(mv[1], "")))


def _severities(job: Job) -> list[int]:
    return sorted(int(k.removeprefix(Metrics.CORRUPTED_AT)) for k in job.metrics if k.startswith(Metrics.CORRUPTED_AT))


def _reading_jobs(study: Study) -> dict[tuple[str, tuple, str], Job]:
    """Per (model, training variant, corruption) the job whose clean reading of the corrupted images counts
    the most images (attack=none reads the whole split; an attack job its first eval.max_images)."""
    best: dict[tuple[str, tuple, str], Job] = {}
    for job in corruption_jobs(study):  # newest first
        k = (job.model, training_settings(job), job.corruption)
        if k not in best or job.metrics[Metrics.IMAGES] > best[k].metrics[Metrics.IMAGES]:
            best[k] = job
    return best


def corruption_heatmaps(study: Study):
    """One heatmap per model (and training variant): accuracy (%) per corruption (rows) and severity (columns)."""
    readings = _reading_jobs(study)
    variants = _variants(list(readings.values()))
    panels = defaultdict(dict)
    for (model, variant, corruption), job in readings.items():
        panels[(model, variant)][corruption] = job
    order = _ordered(panels, variants)
    severities = sorted({s for by in panels.values() for j in by.values() for s in _severities(j)})
    corruptions = sorted({c for by in panels.values() for c in by})
    fig, axes = plt.subplots(
        1,
        len(order),
        figsize=(1.2 + 0.55 * len(severities) * len(order) + 1.2, 0.5 + 0.32 * len(corruptions)),
        squeeze=False,
        sharey=True,
    )
    for ax, mv in zip(axes[0], order):
        grid = np.full((len(corruptions), len(severities)), np.nan)
        for i, c in enumerate(corruptions):
            if (job := panels[mv].get(c)) is not None:
                for jdx, s in enumerate(severities):
                    grid[i, jdx] = 100 * job.metrics.get(f"{Metrics.CORRUPTED_AT}{s}", np.nan)
        image = ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=100, aspect="auto")
        for (i, jdx), v in np.ndenumerate(grid):
            if v == v:
                ax.text(jdx, i, f"{v:.0f}", ha="center", va="center", fontsize=7)
        first = next(iter(panels[mv].values()))
        ax.set_title(_model_variant(first, variants, study.labels), fontsize=9)
        ax.set_xticks(range(len(severities)), [str(s) for s in severities])
        ax.set_xlabel("severity")
        ax.set_yticks(range(len(corruptions)), [c.replace("_", " ") for c in corruptions], fontsize=8)
    fig.colorbar(image, ax=axes[0].tolist(), fraction=0.03, label="accuracy (%)")
    return fig


def corruption_table(study: Study) -> Table:
    """Per model: clean, mean over every corruption and severity, and the worst corruption."""
    readings = _reading_jobs(study)
    variants = _variants(list(readings.values()))
    by_model = defaultdict(list)
    for (model, variant, _), job in readings.items():
        by_model[(model, variant)].append(job)
    rows = []
    for model, variant in _ordered(by_model, variants):
        jobs = by_model[(model, variant)]
        clean = _clean(study, model, variant)
        means = {j.corruption: measured([j], Metrics.CORRUPTED_MEAN) for j in jobs}  # on every reading
        worst = min(means, key=lambda c: means[c].mean)
        pooled = _pooled(list(means.values()))
        rows.append(
            [
                _model_variant(jobs[0], variants, study.labels),
                DASH if clean is None else clean.text(),
                pooled.text(),
                f"{worst.replace('_', ' ')} {means[worst].text()}",
                str(len(means)),
            ]
        )
    return Table(
        "Corruption accuracy (%)",
        ["model", "clean (test split)", "mean corruption accuracy", "worst corruption", "corruptions"],
        rows,
        [
            "Corruptions of MedMNIST-C (chest X-ray parameters) applied to the test images; the mean is over "
            "the corruptions and the severities each job ran (clean reading, no attack), each accuracy with the "
            "95 % Wilson interval of the readings it counts (images x severities)."
        ],
    )


def _pooled(parts: list[Estimate]) -> Estimate:
    """One accuracy over all the readings of several estimates (not seeds: one value, their images summed)."""
    every = pooled(parts)
    return Estimate((every.pooled,), (every.total,), every.jobs)


def _clean(study: Study, model: str, variant: tuple) -> Estimate | None:
    """The model's clean accuracy on its whole, uncorrupted test split (any of its jobs' Lightning test loop)."""
    for job in study.jobs:
        if job.model == model and training_settings(job) == variant and Metrics.TEST_ACCURACY in job.metrics:
            return measured([job], Metrics.TEST_ACCURACY, Metrics.TEST_IMAGES)
    return None


def corruption_attack_table(study: Study) -> Table | None:
    """Accuracy (%) under each attack setting with and without each corruption (mean over severities)."""
    attacked = [j for j in corruption_jobs(study) if j.attack != "none"]
    if not attacked:
        return None
    variants = _variants(attacked)
    wanted = {_attack_settings(j) for j in attacked}
    trainings = {training_settings(j) for j in attacked}
    # The same attack settings on the test images as they are, where the study has them, on the same
    # trainings (a training the corruptions were not run on, with a remedy say, has no column here).
    uncorrupted = [
        j for j in study.jobs if j.plain and _attack_settings(j) in wanted and training_settings(j) in trainings
    ]
    cells: dict[tuple[str, str], dict[tuple, float]] = defaultdict(dict)
    heads: dict[tuple, str] = {}
    for job in attacked + uncorrupted:  # newest first within each
        mv = (job.model, training_settings(job))
        heads.setdefault(mv, _model_variant(job, variants, study.labels))
        cells[(_attack_text(job, study.labels), job.corruption or "none")].setdefault(
            mv, measured([job], Metrics.ADVERSARIAL)
        )
    columns = _ordered(heads, variants)
    rows = [
        [attack, corruption.replace("_", " ")]
        + [DASH if (e := cells[(attack, corruption)].get(mv)) is None else e.text() for mv in columns]
        for attack, corruption in sorted(cells, key=lambda r: (r[0], r[1] != "none", r[1]))
    ]
    return Table(
        "Corruption x attack: accuracy (%)",
        ["attack", "corruption", *(heads[mv] for mv in columns)],
        rows,
        [
            f"The adversary starts from the corrupted image; {SEVERITY_NOTE}, with the 95 % Wilson interval of "
            "its readings (images x severities). corruption none: the same attack on the test images as they are."
        ],
    )


def _attack_settings(job: Job) -> tuple:
    """What an attack row holds fixed: the attack's and the evaluation's settings."""
    return tuple(sorted((k, v) for k, v in settings(job).items() if k.startswith((f"{ATTACK}.", f"{EVAL}."))))


def _attack_text(job: Job, labels: Labels) -> str:
    eps = job.eps_pixel
    return labels.attack(job.attack) + ("" if eps is None else f" eps={grey_levels(eps)}")


def _change(a: Estimate, b: Estimate) -> str:
    """a - b in points, marked where their intervals overlap."""
    return f"{100 * (a.mean - b.mean):+.1f}" + (f" {SAME}" if overlap(a.interval, b.interval) else "")


def external_table(study: Study) -> Table:
    """Per model (and training variant): internal against external accuracy, and how the errors fall."""
    jobs = external_jobs(study)
    variants = _variants(jobs)
    newest: dict[tuple[str, tuple], Job] = {}
    for job in jobs:  # newest first; the clean reading is the same for every attack of one training
        newest.setdefault((job.model, training_settings(job)), job)
    rows, first = [], {}
    for mv in _ordered(newest, variants):
        job = newest[mv]
        m = job.metrics
        external = _accuracy(job, Metrics.EXTERNAL_ACCURACY, Metrics.EXTERNAL_IMAGES)
        internal = _accuracy(job, Metrics.TEST_ACCURACY, Metrics.TEST_IMAGES)
        base = first.setdefault(job.model, external)  # the model's first training variant
        rows.append(
            [
                _model_variant(job, variants, study.labels),
                DASH if internal is None else internal.text(),
                external.text(),
                DASH if internal is None else _change(external, internal),
                DASH if base is external else _change(external, base),
                pct(m[Metrics.EXTERNAL_SENSITIVITY]),
                pct(m[Metrics.EXTERNAL_SPECIFICITY]),
                pct(m[Metrics.EXTERNAL_PREDICTED_COVID]),
                pct(m[Metrics.EXTERNAL_MAJORITY]),
                f"{m.get(Metrics.EXTERNAL_NEAR_DUPLICATES, 0):.0f}",
            ]
        )
    return Table(
        "Internal against external accuracy (%)",
        [
            "model",
            "internal (test split)",
            "external",
            "gap (points)",
            "external against the model's first row (points)",
            "external COVID-19 sensitivity",
            "external specificity",
            "called COVID-19",
            "always the majority class",
            "external images near-duplicating training images",
        ],
        rows,
        [
            "External: every image of data.external_root, another source than the training folder, read clean. "
            "A model below the majority-class column does worse than always answering that class.",
            "Accuracies with their 95 % Wilson interval. Gap: external - internal; against the model's first row: "
            "this training's external accuracy - the first's (another training of the model, e.g. with a remedy "
            f"switched on). {SAME}: the two intervals overlap, not a clear difference at this number of images.",
        ],
    )


def _accuracy(job: Job, accuracy: str, images: str) -> Estimate | None:
    m = job.metrics
    return Estimate((m[accuracy],), (m[images],), (job,)) if accuracy in m and images in m else None


def _bars(ax, x: np.ndarray, estimates: list[Estimate | None], **style) -> None:
    """A bar in % with its 95 % Wilson interval at each x where an accuracy was read."""
    shown = [i for i, e in enumerate(estimates) if e is not None]
    read = [estimates[i] for i in shown]
    ax.bar(x[shown], [100 * e.mean for e in read], 0.4, yerr=error_bars(read), capsize=3, **style)


def external_figure(study: Study):
    """Internal and external accuracy per model (and variant), side by side, each with its 95 % Wilson interval,
    and the majority baseline."""
    jobs = external_jobs(study)
    variants = _variants(jobs)
    newest: dict[tuple[str, tuple], Job] = {}
    for job in jobs:
        newest.setdefault((job.model, training_settings(job)), job)
    items = [(mv, newest[mv]) for mv in _ordered(newest, variants)]
    fig, ax = plt.subplots(figsize=(1.5 + 1.1 * len(items), 3.6))
    x = np.arange(len(items))
    internal = [_accuracy(j, Metrics.TEST_ACCURACY, Metrics.TEST_IMAGES) for _, j in items]
    external = [_accuracy(j, Metrics.EXTERNAL_ACCURACY, Metrics.EXTERNAL_IMAGES) for _, j in items]
    for offset, estimates, color, label in (
        (-0.2, internal, COLORS[0], "internal (test split)"),
        (0.2, external, COLORS[3], "external"),
    ):
        _bars(ax, x + offset, estimates, color=color, label=label)
    majority = [100 * j.metrics[Metrics.EXTERNAL_MAJORITY] for _, j in items]
    ax.scatter(x + 0.2, majority, marker="_", s=400, color="black", label="external: always the majority class")
    ax.set_xticks(x, [_model_variant(j, variants, study.labels) for _, j in items], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    return fig
