"""The clinical page: what an attack does to a reading, as a clinician would ask it.

Per model: the two directions of harm (missed COVID-19, false alarms) against the budget, calibration
under attack and the reliability diagrams, the operating points chosen on the validation split read
clean and attacked, each image's robust radius per class (attack=radius jobs), and targeted attacks
toward each class. Read from the jobs' metrics and artifacts (reliability.png, radii.json); nothing is
run again.
"""

import io
from collections import defaultdict

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from ..data.classes import COVID
from ..record import OPERATING_POINTS, RADIUS, Metrics, curve
from ..record.budget import grey_levels
from ..record.intervals import wilson
from .blocks import DASH, Table, pct
from .collect import Job, Study
from .evalsets import evaluation_sets, key
from .figures import COLORS
from .labels import Labels, model_order

# The calibration and the readings at each operating point, clean and attacked, as a job logs them
# (evaluation/calibration.py, operating_point.py: + "_clean" or "_adversarial").
ECE_CLEAN, ECE_ATTACKED = f"{Metrics.ECE}_clean", f"{Metrics.ECE}_adversarial"
CONFIDENT_ERRORS_ATTACKED = f"{Metrics.CONFIDENT_ERRORS}_adversarial"
RADIUS_MEDIANS = (Metrics.RADIUS_MEDIAN, Metrics.RADIUS_MEDIAN_COVID, Metrics.RADIUS_MEDIAN_NON_COVID)


def _budget(job: Job) -> str:
    return DASH if job.eps_pixel is None else grey_levels(job.eps_pixel)


def harm_jobs(study: Study) -> list[Job]:
    """The paper's-setting jobs (untargeted, no defense or transfer) that measured both directions of harm."""
    return [j for j in study.jobs if j.plain and Metrics.MISSED_COVID in j.metrics]


def has_clinical(study: Study) -> bool:
    return bool(harm_jobs(study) or radius_jobs(study) or targeted_jobs(study))


def _sorted(jobs: list[Job], labels: Labels) -> list[Job]:
    order = model_order({j.model for j in jobs})
    sets = evaluation_sets(jobs, labels)
    return sorted(jobs, key=lambda j: (order.index(j.model), sets[key(j)].name, j.eps_pixel or 0))


def harm_table(study: Study) -> Table:
    """Per model and evaluation: accuracy, missed-COVID and false-alarm rates, calibration clean and attacked."""
    jobs = _sorted(harm_jobs(study), study.labels)
    sets = evaluation_sets(jobs, study.labels)
    rows = []
    for j in jobs:
        m = j.metrics
        covid_right, other_right = _right_clean(study.artifacts.confusion(j))
        rows.append(
            [
                study.labels.model(j.model),
                sets[key(j)].label,
                pct(m.get(Metrics.CLEAN)),
                pct(m.get(Metrics.ADVERSARIAL)),
                _rate(m.get(Metrics.MISSED_COVID), covid_right),
                _rate(m.get(Metrics.FALSE_ALARM), other_right),
                f"{m[ECE_CLEAN]:.3f}" if ECE_CLEAN in m else DASH,
                f"{m[ECE_ATTACKED]:.3f}" if ECE_ATTACKED in m else DASH,
                pct(m.get(CONFIDENT_ERRORS_ATTACKED)),
            ]
        )
    return Table(
        "Both directions of harm, and calibration under attack",
        [
            "model",
            "evaluation",
            "clean acc. %",
            "attacked acc. %",
            "missed COVID-19 %",
            "false alarms %",
            "ECE clean",
            "ECE attacked",
            "confident errors attacked %",
        ],
        rows,
        [
            "Missed COVID-19: the share of COVID-19 images the model read right unattacked that the attack "
            "turned to another class (a patient sent home); false alarms: the share of the other images read "
            "right that it turned to COVID-19; each with the 95 % Wilson interval of those images (n, from the "
            "job's confusion.json). ECE: expected calibration error over 15 confidence bins; "
            "confident errors: the share of the attacked errors made with a top probability above 0.9."
        ],
    )


def _right_clean(confusion: dict | None) -> tuple[int | None, int | None]:
    """From a job's confusion.json: the COVID-19 images and the other images it read right unattacked."""
    if confusion is None or COVID not in confusion["classes"]:
        return None, None
    clean = np.array(confusion["clean"])
    positive = confusion["classes"].index(COVID)
    return int(clean[positive, positive]), int(np.trace(clean) - clean[positive, positive])


def _interval(rate: float, n: int) -> tuple[float, float]:
    """The Wilson interval of a share of n images."""
    return wilson(round(rate * n), n)


def _rate(rate: float | None, n: int | None) -> str:
    """A harm rate in % with its Wilson interval over the n images it is a share of."""
    if rate is None or rate != rate:
        return DASH
    if n is None:
        return pct(rate)
    lo, hi = _interval(rate, n)
    return f"{100 * rate:.2f} [{100 * lo:.1f}, {100 * hi:.1f}] (n={n})"


def harm_figure(study: Study, found: dict[str, tuple[Job, dict]]):
    """Per model, missed-COVID (solid) and false-alarm (dashed) rates against the budget: dots for the
    fixed-budget jobs, lines read off the radius job's radii where the task has two classes (an image
    flipped at budget b is a missed COVID-19 image or a false alarm there); each with its 95 % Wilson
    interval over the images it is a share of (bars; a band around a line)."""
    jobs = [j for j in harm_jobs(study) if j.eps_pixel is not None]
    curves = {m: v for m, v in found.items() if len(v[1]["classes"]) == 2}
    if not jobs and not curves:
        return None
    sets = evaluation_sets(jobs, study.labels)
    models = model_order({j.model for j in jobs} | set(curves))
    names = sorted({sets[key(j)].name for j in jobs})
    fig, axes = plt.subplots(1, len(models), figsize=(3.6 * len(models), 3.4), squeeze=False, sharey=True)
    for ax, model in zip(axes[0], models):
        if model in curves:
            job, data = curves[model]
            covid = np.array(data["labels"]) == data["classes"].index(COVID)
            r = np.array([np.inf if v is None else v for v in data["radii"]])
            budgets = np.linspace(0, job.eps_pixel, 129)
            for mine, style in ((covid, "-"), (~covid, "--")):
                right = r[mine & (r > 0)]  # read right unattacked
                if len(right):
                    fallen = 1 - curve(right, budgets)  # radius at most the budget: flipped there
                    ax.plot(budgets * 255, 100 * fallen, style, color="black", linewidth=1.2)
                    lo, hi = np.array([_interval(f, len(right)) for f in fallen]).T
                    ax.fill_between(budgets * 255, 100 * lo, 100 * hi, color="black", alpha=0.1, linewidth=0)
        for i, name in enumerate(names):
            mine = [j for j in jobs if j.model == model and sets[key(j)].name == name]
            mine.sort(key=lambda j: j.eps_pixel)
            if not mine:
                continue
            eps = [j.eps_pixel * 255 for j in mine]
            color = COLORS[i % len(COLORS)]
            counts = [_right_clean(study.artifacts.confusion(j)) for j in mine]
            for which, (metric, style, size) in enumerate(
                ((Metrics.MISSED_COVID, "o-", 5), (Metrics.FALSE_ALARM, "s--", 4))
            ):
                rates = [j.metrics[metric] for j in mine]
                ax.plot(
                    eps,
                    [100 * v for v in rates],
                    style,
                    color=color,
                    markersize=size,
                    label=name if which == 0 else "_nolegend_",
                )
                bars = [(x, v, c[which]) for x, v, c in zip(eps, rates, counts) if c[which] and v == v]
                for x, v, n in bars:
                    lo, hi = _interval(v, n)
                    ax.plot([x, x], [100 * lo, 100 * hi], color=color, linewidth=0.8, alpha=0.6)
        ax.set(title=study.labels.model(model), xlabel="L-inf budget (x/255)", ylim=(-3, 103))
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("% of the class's images read right")
    handles, labels = [], []
    for ax in axes[0]:
        for h, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(h)
                labels.append(label)
    handles += [Line2D([], [], color="grey", marker="o"), Line2D([], [], color="grey", marker="s", linestyle="--")]
    labels += ["missed COVID-19", "false alarms"]
    if curves:
        handles.append(Line2D([], [], color="black"))
        labels.append("from the radius job")
    fig.tight_layout()
    fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 5), fontsize=8, bbox_to_anchor=(0.5, 0))
    return fig


def operating_table(study: Study) -> Table | None:
    """The operating points chosen on the validation split, read on each job's images clean and attacked."""
    jobs = _sorted([j for j in harm_jobs(study) if Metrics.AUROC_CLEAN in j.metrics], study.labels)
    if not jobs:
        return None
    sets = evaluation_sets(jobs, study.labels)
    rows = []
    for j in jobs:
        m = j.metrics
        row = [study.labels.model(j.model), sets[key(j)].label]
        for point in OPERATING_POINTS:
            threshold = m.get(Metrics.THRESHOLD + point)
            row.append(DASH if threshold is None else f"{threshold:.3f}")
            row += [
                f"{pct(m.get(f'{reading}{point}_clean'))} → {pct(m.get(f'{reading}{point}_adversarial'))}"
                for reading in (Metrics.SENSITIVITY_AT, Metrics.SPECIFICITY_AT)
            ]
        row.append(f"{m[Metrics.AUROC_CLEAN]:.3f} → {m[Metrics.AUROC_ADVERSARIAL]:.3f}")
        rows.append(row)
    return Table(
        "The operating point, clean → attacked",
        [
            "model",
            "evaluation",
            "t (95 % sens.)",
            "sensitivity %",
            "specificity %",
            "t (Youden)",
            "sensitivity %",
            "specificity %",
            "AUROC",
        ],
        rows,
        [
            "Thresholds on P(COVID-19) chosen on the validation split before the test: the highest that keeps "
            "95 % of its COVID-19 images, and the one maximising Youden's J; then held fixed and read on the "
            "attacked test images, clean and under attack (each image's worst case, pushed to the wrong side)."
        ],
    )


def reliability_figure(study: Study):
    """Per model, the reliability diagram of its strongest gradient job (lowest attacked accuracy)."""
    chosen: dict[str, Job] = {}
    for j in harm_jobs(study):
        if j.attack in ("fgsm", "pgd", "apgd", "cw") and (
            j.model not in chosen or j.metrics[Metrics.ADVERSARIAL] < chosen[j.model].metrics[Metrics.ADVERSARIAL]
        ):
            chosen[j.model] = j
    images = {m: png for m, j in chosen.items() if (png := study.artifacts.reliability(j)) is not None}
    if not images:
        return None
    models = model_order(images)
    columns = min(len(models), 3)  # at most three a row, each at about the size it was drawn
    rows = -(-len(models) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 4.8 * rows), squeeze=False)
    for ax in axes.flat[len(models) :]:
        ax.axis("off")
    for ax, model in zip(axes.flat, models):
        ax.imshow(mpimg.imread(io.BytesIO(images[model]), format="png"))
        ax.set_title(
            f"{study.labels.model(model)}: {study.labels.attack(chosen[model].attack)} {_budget(chosen[model])}",
            fontsize=9,
        )
        ax.axis("off")
    fig.tight_layout()
    return fig


def _undefended(job: Job) -> bool:
    """No defense, crafted on the model itself, uncorrupted test images."""
    return job.defense == "none" and job.source_model is None and job.corruption is None


def radius_jobs(study: Study) -> list[Job]:
    """Undefended L-inf radius jobs (the page's budgets are grey levels; an L2 search has its own job figure)."""
    return [j for j in study.jobs if j.attack == RADIUS and _undefended(j) and j.norm == float("inf")]


def _curve_budget(name: str) -> str:
    """The budget of a radius job's curve metric, in grey levels as logged: curve_accuracy_8_255 -> 8."""
    return name.removeprefix(Metrics.CURVE).removesuffix("_255")


def radius_table(study: Study) -> Table | None:
    jobs = _sorted(radius_jobs(study), study.labels)
    if not jobs:
        return None
    budgets = sorted(
        {k for j in jobs for k in j.metrics if k.startswith(Metrics.CURVE)},
        key=lambda k: float(_curve_budget(k)),
    )
    rows = []
    for j in jobs:
        m = j.metrics
        medians = [m.get(k) for k in RADIUS_MEDIANS]
        rows.append(
            [
                study.labels.model(j.model),
                _budget(j),
                *(DASH if v is None else f"> {_budget(j)}" if v != v else f"{v * 255:.2f}/255" for v in medians),
                pct(m.get(Metrics.RADIUS_BEYOND)),
                *(pct(m.get(b)) for b in budgets),
            ]
        )
    return Table(
        "Robust radius: the smallest budget that flips each image",
        [
            "model",
            "largest budget searched",
            "median radius",
            "median, COVID-19",
            "median, others",
            "beyond it %",
            *(f"acc. % at {_curve_budget(b)}/255" for b in budgets),
        ],
        rows,
        [
            "Per image, the smallest L-inf budget at which PGD (10 steps) fools it, found by bisection in one "
            "job (attack=radius); 0 for an image misread unattacked. Accuracy at a budget is the share of "
            "images whose radius exceeds it: the whole robustness curve from one job."
        ],
    )


def radius_data(study: Study) -> dict[str, tuple[Job, dict]]:
    """Per model, its newest radius job and that job's radii.json."""
    found = {}
    for j in radius_jobs(study):
        if j.model not in found and (data := study.artifacts.radii(j)) is not None:
            found[j.model] = (j, data)
    return found


def radius_figure(found: dict[str, tuple[Job, dict]], labels: Labels):
    """Per model and class, the distribution of the radii (box plots); images beyond the largest budget
    are drawn at it and counted in the labels."""
    if not found:
        return None
    models = model_order(found)
    classes = found[models[0]][1]["classes"]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(models) * len(classes)), 3.8))
    positions, ticks, ticklabels = [], [], []
    for i, model in enumerate(models):
        job, data = found[model]
        top = job.eps_pixel * 255
        y = np.array(data["labels"])
        r = np.array([top if v is None else v * 255 for v in data["radii"]])
        beyond = np.array([v is None for v in data["radii"]])
        for c, name in enumerate(data["classes"]):
            pos = i * (len(classes) + 1) + c
            mine = y == c
            if not mine.any():
                continue
            box = ax.boxplot(r[mine], positions=[pos], widths=0.7, patch_artist=True, showfliers=True)
            for patch in box["boxes"]:
                patch.set_facecolor(COLORS[c % len(COLORS)])
                patch.set_alpha(0.6)
            positions.append(pos)
            ticks.append(pos)
            ticklabels.append(f"{labels.model(model)}\n{name}\n{beyond[mine].sum()}/{mine.sum()} > max")
    ax.set_xticks(ticks, ticklabels, fontsize=7)
    ax.set_ylabel("robust radius (x/255)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def targeted_jobs(study: Study) -> list[Job]:
    return [j for j in study.jobs if j.target_class is not None and _undefended(j)]


def targeted_table(study: Study) -> Table | None:
    """Per model and attack: the untargeted attack beside the same attack toward each class."""
    targeted = targeted_jobs(study)
    if not targeted:
        return None
    wanted = {(j.model, j.attack, j.setting, j.eps_pixel) for j in targeted}
    jobs = targeted + [j for j in harm_jobs(study) if (j.model, j.attack, j.setting, j.eps_pixel) in wanted]
    groups: dict[tuple, list[Job]] = defaultdict(list)
    for j in jobs:
        groups[(j.model, j.attack, j.eps_pixel or 0)].append(j)
    order = model_order({j.model for j in jobs})
    rows = []
    for model, attack, _ in sorted(groups, key=lambda k: (order.index(k[0]), k[1], k[2])):
        for j in sorted(groups[(model, attack, _)], key=lambda j: j.target_class or ""):
            m = j.metrics
            rows.append(
                [
                    study.labels.model(model),
                    f"{study.labels.attack(attack)} {_budget(j)}",
                    j.target_class or "(untargeted)",
                    pct(m.get(Metrics.TARGETED_SUCCESS)),
                    pct(m.get(Metrics.ADVERSARIAL)),
                    pct(m.get(Metrics.MISSED_COVID)),
                    pct(m.get(Metrics.FALSE_ALARM)),
                ]
            )
    return Table(
        "Targeted attacks toward each class",
        ["model", "attack", "target", "targeted success %", "attacked acc. %", "missed COVID-19 %", "false alarms %"],
        rows,
        [
            "Targeted success: among the images of the other classes read right unattacked, the share the attack "
            "turned into the target class. Toward Normal is the dangerous direction: a COVID-19 image read as "
            "healthy."
        ],
    )
