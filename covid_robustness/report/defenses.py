"""What each defense bought and cost, and how well examples transfer between models.

Defense jobs are compared with the undefended jobs of the same model and evaluation set: robust
accuracy gained, clean accuracy lost (on the whole test split, through the defense), training time.
Every accuracy is taken over its seeds with its Wilson interval, so a difference can be read against
what the images allow. Where the jobs were escalated, what stands after the ladder is set beside the
attack's own number, and the gain is given both ways: a defense that only hides the gradient buys less
after escalation than before.
"""

import itertools
from collections import defaultdict
from statistics import mean

import matplotlib.pyplot as plt
import numpy as np

from ..record import CERTIFY, Metrics
from ..record.intervals import overlap
from .blocks import DASH, SAME, Table, cell, flag_notes, marks
from .collect import Job, Study
from .estimate import Estimate, clean_on_test, escalated, measured, per_seed, pooled
from .evalsets import EvalSet, evaluation_sets, key
from .figures import COLORS, eps_axis, error_bars, seed_dots
from .labels import model_order

NONE = "none"
ESCALATED_NOTE = (
    "Escalated: what stands of the attacked images after the escalation ladder at the same budget (docs/flags.md), "
    f"counted on its own images ({Metrics.ESCALATION_IMAGES}), so its interval is wider than the attack's. On "
    "those images it never exceeds what the attack left; beside the attack's number on all the attacked images, "
    "another sample, it can read higher. A dash: the job was not escalated."
)
ESCALATED = ", escalated"  # a legend label's suffix: the markers of what stands after escalation
SAME_NOTE = (
    f"{SAME}: the 95 % Wilson intervals of the two accuracies (defended and undefended, the models' images "
    "together) overlap: not a clear difference at this number of images."
)


# The title and caption of each figure this module draws, as the report prints them.
ROBUSTNESS_FIGURE = (
    "Robustness per defense",
    "Accuracy on the attacked images against the L-inf budget, per model and defense, with its 95 % "
    "Wilson interval; eps 0 is the clean accuracy on the same images (through the defense). Hollow "
    "triangles, where the jobs were escalated: what stands after the escalation ladder, on its own images "
    "(its interval in the table of accuracy per model).",
)
TRANSFER_FIGURE = (
    "Transfer matrices",
    "Accuracy (%) of each target model on examples crafted on each source model; diagonal: white-box.",
)


def defense_order(defenses) -> list[str]:
    return ([NONE] if NONE in defenses else []) + sorted(set(defenses) - {NONE})


def training_metric(study: Study, job: Job, metric: str) -> float | None:
    """A metric of the training run the job's model came from (Metrics.TRAINING_SECONDS, say)."""
    return study.trainings.get(job.training_run_id, {}).get(metric)


def _ratio(study: Study, trainings: list[list[Job]], metric: str) -> str:
    """The defended trainings' total of the metric over the undefended ones', over the (defended, undefended)
    pairs where both recorded it."""
    pairs = [tuple(training_metric(study, j, metric) for j in pair) for pair in trainings]
    pairs = [(d, n) for d, n in pairs if d is not None and n]
    return DASH if not pairs else f"{sum(d for d, _ in pairs) / sum(n for _, n in pairs):.2f}x"


class _Grid:
    """(model, defense) -> evaluation set -> accuracy over seeds, and the clean accuracy of each (model, defense)."""

    def __init__(self, study: Study):
        self.sets = evaluation_sets(study.jobs, study.labels)
        jobs: dict[tuple, dict[tuple, list[Job]]] = defaultdict(lambda: defaultdict(list))
        for job in study.jobs:  # newest first
            if job.source_model is None and job.attack != CERTIFY:
                jobs[(job.model, job.defense)][key(job)].append(job)
        self.robust = {
            md: {k: measured(per_seed(js), Metrics.ADVERSARIAL) for k, js in by_set.items()}
            for md, by_set in jobs.items()
        }
        self.escalated = {md: {k: escalated(e) for k, e in by_set.items()} for md, by_set in self.robust.items()}
        self.escalating = any(e is not None for by_set in self.escalated.values() for e in by_set.values())
        self.clean = {
            md: clean_on_test(per_seed(j for js in by_set.values() for j in js)) for md, by_set in jobs.items()
        }
        # Evaluation sets run on a defended model: the others have nothing to compare and stay in Table II.
        defended = {k for (_, d), by_set in jobs.items() if d != NONE for k in by_set}
        self.keys = sorted(defended, key=lambda k: self.sets[k].order)
        self.models = model_order({m for m, _ in jobs})
        self.defenses = defense_order({d for _, d in jobs})

    def label(self, k: tuple) -> str:
        return self.sets[k].label


def has_defenses(study: Study) -> bool:
    """Whether the study attacked a defended model (certify jobs have a section of their own: certified.py)."""
    return any(j.defense != NONE and j.attack != CERTIFY for j in study.jobs)


def per_model(study: Study) -> Table:
    grid = _Grid(study)
    body = []
    for model in grid.models:
        for defense in grid.defenses:
            if (model, defense) not in grid.robust:
                continue
            by_set, clean = grid.robust[(model, defense)], grid.clean[(model, defense)]
            after = grid.escalated[(model, defense)]
            seconds, passes = (
                [v for j in clean.jobs if (v := training_metric(study, j, metric)) is not None]
                for metric in (Metrics.TRAINING_SECONDS, Metrics.TRAINING_PASSES_PER_IMAGE)
            )
            evaluations = sorted({j.strongest_evaluation for e in by_set.values() for j in e.jobs})
            body.append(
                [
                    study.labels.model(model),
                    defense,
                    f"{mean(seconds):.0f}" if seconds else DASH,
                    f"{mean(passes):.2f}" if passes else DASH,
                    cell(clean, masking=False),
                    *(
                        c
                        for k in grid.keys
                        for c in [cell(by_set.get(k)), *[cell(after.get(k), masking=False)] * grid.escalating]
                    ),
                    ", ".join(evaluations),
                ]
            )
    jobs = [j for by_set in grid.robust.values() for e in by_set.values() for j in e.jobs]
    return Table(
        "Defenses: accuracy per model",
        [
            "model",
            "defense",
            "training (s)",
            "passes per training image",
            "clean acc",
            *(c for k in grid.keys for c in [grid.label(k), *[f"{grid.label(k)} escalated"] * grid.escalating]),
            "strongest evaluation",
        ],
        body,
        [
            "In %, with the 95 % Wilson interval of the images counted. Clean: the whole test split, through the "
            "defense. Attack columns: the attacked test images; for an input-transformation defense the per-image "
            "worst case over its evaluations (oblivious: examples of the bare model; bpda: gradients through the "
            "transformation as the identity; bpda_eot: BPDA averaged over draws of a random transformation); the "
            "last column names the evaluation that left the fewest images correct. Training time: the training "
            "run's wall time, which depends on what else the machine ran meanwhile; passes per training image: "
            "forward and backward passes through the network per training image, attack steps included (a dash: "
            "not recorded by the run), the training's cost whatever the load; an input-transformation defense "
            "reuses the undefended model's training.",
            *[ESCALATED_NOTE] * grid.escalating,
            *flag_notes(jobs),
        ],
    )


def difference(pairs: list[tuple[Estimate, Estimate]], masking: bool = True) -> str:
    """The mean over models of defended - undefended, in points, marked where the pooled intervals overlap."""
    gain = mean(d.mean - n.mean for d, n in pairs)
    defended, undefended = pooled(d for d, _ in pairs), pooled(n for _, n in pairs)
    same = overlap(defended.interval, undefended.interval)
    return f"{100 * gain:+.1f}" + (f" {SAME}" if same else "") + marks(defended.jobs + undefended.jobs, masking)


def bought(study: Study) -> Table:
    """Per defense, averaged over the models evaluated with both it and no defense: gains and costs."""
    grid = _Grid(study)
    body = []
    for defense in [d for d in grid.defenses if d != NONE]:
        models = [m for m in grid.models if (m, defense) in grid.robust and (m, NONE) in grid.robust]
        if not models:
            continue
        clean = difference([(grid.clean[(m, defense)], grid.clean[(m, NONE)]) for m in models], masking=False)
        gains = []
        for k in grid.keys:
            for numbers in [grid.robust, *[grid.escalated] * grid.escalating]:
                pairs = [
                    (d, n)
                    for m in models
                    if (d := numbers[(m, defense)].get(k)) is not None and (n := numbers[(m, NONE)].get(k)) is not None
                ]
                gain = DASH if not pairs else difference(pairs)
                if pairs and len(pairs) < len(models):  # say which models this average is over
                    gain += f" ({', '.join(study.labels.model(d.jobs[0].model) for d, _ in pairs)})"
                gains.append(gain)
        trainings = [[grid.clean[(m, d)].jobs[0] for d in (defense, NONE)] for m in models]
        passes = _ratio(study, trainings, Metrics.TRAINING_PASSES_PER_IMAGE)
        times = _ratio(study, trainings, Metrics.TRAINING_SECONDS)
        body.append([defense, ", ".join(map(study.labels.model, models)), clean, *gains, passes, times])
    return Table(
        "Defenses: what each bought and what it cost",
        [
            "defense",
            "models",
            "clean acc change",
            *(
                c
                for k in grid.keys
                for c in [f"{grid.label(k)} change", *[f"{grid.label(k)} change, escalated"] * grid.escalating]
            ),
            "training passes vs none",
            "training wall time vs none",
        ],
        body,
        [
            "Percentage points, averaged over the models listed (or those in brackets, where only they were "
            "evaluated with that attack), against the same model without defense. "
            "Training passes: the defended trainings' passes through the network per training image (attack "
            "steps included) over the undefended ones', the cost whatever the load (a dash: not recorded by the "
            "runs); training wall time: the same ratio of their wall times, which also carries what else the "
            "machine ran meanwhile (1.00x: the same training).",
            *[
                "Change, escalated: the same difference between what stands after the escalation ladder, each on its "
                "own escalated images; where the two changes part, the attack's own number overstated one side."
            ]
            * grid.escalating,
            SAME_NOTE,
            *flag_notes(j for by_set in grid.robust.values() for e in by_set.values() for j in e.jobs),
        ],
    )


def _curves(grid: _Grid) -> list[tuple]:
    """The sweeps over eps among the evaluation sets, in the report's order; one budget draws from eps 0 to it."""
    return list(dict.fromkeys(grid.sets[k].sweep for k in grid.keys if grid.sets[k].sweep is not None))


def robustness_by_defense(study: Study):
    """Accuracy against eps with its interval, one panel per model, one line per defense and attack setting."""
    grid = _Grid(study)
    curves = _curves(grid)
    fig, axes = plt.subplots(1, len(grid.models), figsize=(3.4 * len(grid.models), 3.4), squeeze=False, sharey=True)
    for ax, model in zip(axes[0], grid.models):
        levels = []
        for i, defense in enumerate(grid.defenses):
            by_set = grid.robust.get((model, defense), {})
            for style, curve in zip(itertools.cycle(("-", "--", ":", "-.")), curves):
                sets: list[EvalSet] = sorted(
                    (grid.sets[k] for k in by_set if grid.sets[k].sweep == curve), key=lambda s: s.eps_pixel or 0.0
                )
                if not sets:
                    continue
                points = [measured(by_set[sets[0].key].jobs, Metrics.CLEAN)] + [by_set[s.key] for s in sets]
                xs = [0.0] + [255 * (s.eps_pixel or 0.0) for s in sets]
                levels += xs
                label = defense if len(curves) == 1 else f"{defense}, {sets[0].name}"
                ax.errorbar(
                    xs,
                    [100 * p.mean for p in points],
                    yerr=error_bars(points),
                    fmt=style,
                    marker="o",
                    markersize=4,
                    capsize=2.5,
                    elinewidth=1,
                    color=COLORS[i % 10],
                    label=label,
                )
                for x, p in zip(xs, points):
                    seed_dots(ax, x, p, COLORS[i % 10])
                after = [(x, e) for x, s in zip(xs[1:], sets) if (e := grid.escalated[(model, defense)][s.key])]
                if after:  # what stands after the ladder, on its own (fewer) images: a marker, no interval
                    ax.plot(
                        [x for x, _ in after],
                        [100 * e.mean for _, e in after],
                        "v",
                        markersize=7,
                        markerfacecolor="none",
                        color=COLORS[i % 10],
                        label=label + ESCALATED,
                    )
        ax.set_title(study.labels.model(model))
        eps_axis(ax, levels)
        ax.set_ylim(-3, 103)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy (%), 95 % interval")
    legend = {}
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    # each line, then its escalated markers
    order = [x for label in legend if not label.endswith(ESCALATED) for x in (label, label + ESCALATED)]
    order = [label for label in order if label in legend]
    fig.tight_layout()
    fig.legend([legend[x] for x in order], order, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    return fig


def _transfer(study: Study) -> dict[tuple, dict[tuple[str, str], Estimate]]:
    """(evaluation set, defense) -> (source, target) -> accuracy over seeds; white-box jobs on the diagonal."""
    keyed = {(key(j), j.defense) for j in study.jobs if j.source_model is not None}
    jobs: dict[tuple, dict[tuple[str, str], list[Job]]] = defaultdict(lambda: defaultdict(list))
    for job in study.jobs:  # newest first
        if (key(job), job.defense) in keyed:
            jobs[(key(job), job.defense)][(job.source_model or job.model, job.model)].append(job)
    sets = evaluation_sets(study.jobs, study.labels)
    ordered = sorted(jobs.items(), key=lambda kv: (sets[kv[0][0]].order, kv[0][1] != NONE, kv[0][1]))
    return {k: {st: measured(per_seed(js), Metrics.ADVERSARIAL) for st, js in cells.items()} for k, cells in ordered}


def has_transfer(study: Study) -> bool:
    return any(j.source_model is not None for j in study.jobs)


def transfer_tables(study: Study) -> list[Table]:
    sets = evaluation_sets(study.jobs, study.labels)
    tables = []
    for (k, defense), cells in _transfer(study).items():
        sources = model_order({s for s, _ in cells})
        targets = model_order({t for _, t in cells})
        body = [[study.labels.model(s)] + [cell(cells.get((s, t))) for t in targets] for s in sources]
        title = f"Transfer: {sets[k].label}" + ("" if defense == NONE else f", defense {defense}")
        tables.append(
            Table(
                title,
                ["source \\ target", *(study.labels.model(t) for t in targets)],
                body,
                [
                    "Accuracy (%) of the target model (columns) on examples crafted on the source model (rows), "
                    "with its 95 % Wilson interval; the diagonal is the white-box attack. Higher off the "
                    "diagonal: the examples transfer less."
                ],
            )
        )
    return tables


def transfer_heatmaps(study: Study):
    sets = evaluation_sets(study.jobs, study.labels)
    grids = list(_transfer(study).items())
    fig, axes = plt.subplots(1, len(grids), figsize=(4.2 * len(grids), 3.8), squeeze=False)
    for ax, ((k, defense), cells) in zip(axes[0], grids):
        sources, targets = model_order({s for s, _ in cells}), model_order({t for _, t in cells})
        values = np.array([[100 * cells[(s, t)].mean if (s, t) in cells else np.nan for t in targets] for s in sources])
        image = ax.imshow(values, vmin=0, vmax=100, cmap="viridis")
        for (i, j), v in np.ndenumerate(values):
            if v == v:
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", color="white" if v < 60 else "black", fontsize=9)
        ax.set_xticks(range(len(targets)), [study.labels.model(t) for t in targets], rotation=30, ha="right")
        ax.set_yticks(range(len(sources)), [study.labels.model(s) for s in sources])
        ax.set_xlabel("target")
        ax.set_ylabel("source")
        ax.set_title(sets[k].label + ("" if defense == NONE else f" [{defense}]"), fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.046, label="accuracy (%)")
    fig.tight_layout()
    return fig
