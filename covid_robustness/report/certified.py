"""Randomized smoothing's two bounds (attack=certify, evaluation/smoothing.py) per model and noise level.

Per smoothed classifier: its clean accuracy (the vote of noisy copies; and Cohen et al.'s PREDICT, which
abstains where the vote is not significant), the share CERTIFY abstains on, and at each L2 radius the
certified accuracy (a lower bound on the accuracy any attack of that size leaves) beside the attacked
accuracy (an upper bound: what one attack left), each with its 95 % Wilson interval. The truth lies
between them; the gap is what neither bound settles.
"""

import json
from collections import defaultdict

import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import norm

from ..record import CERTIFY, Artifacts, Metrics, certified_share
from .blocks import DASH, Figure, Table
from .collect import Job, Study
from .estimate import measured, per_seed
from .figures import to_png
from .labels import model_order

FIGURE = (
    "certified_vs_attacked.png",
    "Certified and attacked accuracy against the L2 radius",
    "Per model, the smoothed classifier at each noise level sigma: certified accuracy (solid: the share of the "
    "images CERTIFY certifies with their true class at a radius at least r, a lower bound) and attacked "
    "accuracy (dashed, markers: the share still right after L2 PGD of radius r on the smoothed classifier, "
    "an upper bound), on [0, 1] pixels. The accuracy any attack of that size leaves lies between them. "
    "Dotted: the largest radius n noisy copies can certify at that sigma, sigma * Phi^-1(alpha^(1/n)) (all n "
    "copies right): the certified curve ends there because of n, not of the model.",
)


def largest_certifiable(sigma: float, n: int, alpha: float) -> float:
    """The radius CERTIFY gives when all n copies vote for the class: sigma * Phi^-1 of the Clopper-Pearson
    lower bound alpha^(1/n)."""
    return sigma * float(norm.ppf(alpha ** (1 / n)))


def certify_jobs(study: Study) -> list[Job]:
    return [j for j in study.jobs if j.attack == CERTIFY]


def radii(job: Job) -> list[float]:
    """The radii the job attacked at (its attacked_accuracy_<r> metrics), ascending."""
    return sorted(float(k[len(Metrics.ATTACKED) :]) for k in job.metrics if k.startswith(Metrics.ATTACKED))


def cells(study: Study) -> dict[tuple[str, float], list[Job]]:
    """(model, sigma) -> its certify jobs, newest first."""
    found: dict[tuple[str, float], list[Job]] = defaultdict(list)
    for job in certify_jobs(study):
        found[(job.model, job.metrics[Metrics.SIGMA])].append(job)
    order = model_order({m for m, _ in found})
    return dict(sorted(found.items(), key=lambda kv: (order.index(kv[0][0]), kv[0][1])))


def _at(seeds: list[Job], prefix: str, r: float) -> str:
    """The metric prefix<r> over the seeds with its interval; a dash where a job lacks it."""
    key = f"{prefix}{r:g}"
    return measured(seeds, key).text() if all(key in j.metrics for j in seeds) else DASH


def table(study: Study) -> Table:
    by_cell = cells(study)
    shown = sorted({r for jobs in by_cell.values() for r in radii(jobs[0])})
    body = []
    for (model, sigma), jobs in by_cell.items():
        seeds = per_seed(jobs)
        first = seeds[0]

        row = [study.labels.model(model), f"{sigma:g}", measured(seeds, Metrics.CLEAN).text()]
        row += [measured(seeds, Metrics.SMOOTHED_CLEAN).text(), f"{100 * first.metrics[Metrics.ABSTENTION]:.1f}"]
        for r in shown:
            row += [_at(seeds, Metrics.CERTIFIED, r), _at(seeds, Metrics.ATTACKED, r)]
        row += [
            f"{first.metrics[Metrics.CERTIFIED_RADIUS_MEDIAN]:.3f}",
            f"{first.metrics[Metrics.CERTIFY_SECONDS]:.2f}",
        ]
        row.append(f"{int(first.metrics[Metrics.IMAGES])}")
        body.append(row)
    columns = ["model", "sigma", "clean (vote)", "clean (PREDICT)", "CERTIFY abstains %"]
    for r in shown:
        columns += [f"certified at {r:g}", f"attacked at {r:g}"]
    columns += ["median certified radius", "CERTIFY s / image", "images"]
    first = next(iter(by_cell.values()))[0]
    p = first.params
    notes = [
        "Accuracies in % with their 95 % Wilson interval over the images. Radii are L2 lengths on [0, 1] pixels. "
        f"CERTIFY: n0 {p.get('attack.n0')}, n {p.get('attack.n')}, alpha {p.get('attack.alpha')}; the attack: "
        f"L2 PGD of {p.get('attack.attack_steps')} steps, {p.get('attack.attack_samples')} noise draws per step, "
        f"each example judged by the vote of {p.get('attack.predict_n')} noisy copies.",
        "clean (vote): the majority of the noisy copies; clean (PREDICT): Cohen et al.'s prediction, an "
        "abstention counted wrong. Certified never exceeds attacked: a job whose votes contradict a certificate "
        f"beyond chance stops ({Metrics.CONFLICTS} counts the votes the certificate overruled as noise).",
    ]
    return Table("Randomized smoothing: certified and attacked accuracy", columns, body, notes)


def figure(study: Study):
    by_cell = cells(study)
    models = list(dict.fromkeys(m for m, _ in by_cell))
    fig, axes = plt.subplots(1, len(models), figsize=(5.0 * len(models), 3.8), squeeze=False)
    colors = plt.get_cmap("viridis")
    sigmas = sorted({s for _, s in by_cell})
    for ax, model in zip(axes[0], models):
        top = 0.0
        for (m, sigma), jobs in by_cell.items():
            if m != model:
                continue
            job = jobs[0]
            color = colors(sigmas.index(sigma) / max(1, len(sigmas) - 1) * 0.85)
            data = study.artifacts.read(job, Artifacts.CERTIFIED_RADII)
            rs = radii(job)
            top = max(top, rs[-1] * 1.05)
            grid = np.linspace(0, top, 200)
            if data is not None:
                shares = certified_share(json.loads(data), grid)
                ax.plot(grid, shares, color=color, linewidth=2, label=f"sigma {sigma:g}")
            else:  # no artifact: the certified accuracy at the logged radii
                values = [job.metrics[Metrics.CERTIFIED + "0"]] + [job.metrics[f"{Metrics.CERTIFIED}{r:g}"] for r in rs]
                ax.plot([0, *rs], values, color=color, linewidth=2, label=f"sigma {sigma:g}")
            n, alpha = int(job.params.get("attack.n", 0)), float(job.params.get("attack.alpha", "nan"))
            if n > 0:
                ax.axvline(largest_certifiable(sigma, n, alpha), color=color, linestyle=":", linewidth=1)
            attacked = [job.metrics[Metrics.CLEAN]] + [job.metrics[f"{Metrics.ATTACKED}{r:g}"] for r in rs]
            ax.plot([0, *rs], attacked, color=color, linestyle="--", marker="o", markersize=4)
        ax.set(xlim=(0, top), ylim=(0, 1), xlabel="L2 radius ([0, 1] pixels)", ylabel="accuracy")
        ax.set_title(f"{study.labels.model(model)}: certified (solid), attacked (dashed)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def sections(study: Study) -> list:
    """The table and the figure, where the study has certify jobs."""
    if not certify_jobs(study):
        return []
    file, title, caption = FIGURE
    return [table(study), Figure(file, title, caption, to_png(figure(study)))]
