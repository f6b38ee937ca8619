"""What each defense bought and cost, and how well examples transfer between models.

Defense jobs are compared with the undefended jobs of the same model, attack and budget: robust
accuracy gained, clean accuracy lost (on the whole test split, through the defense), training time.
"""

from collections import defaultdict
from statistics import mean

import matplotlib.pyplot as plt
import numpy as np

from .collect import Job, Study
from .figures import COLORS
from .summary import ATTACKS, eps_label, evaluation_order, model_label, model_order, row_label
from .tables import DASH, MASK, Table, pct

NONE = "none"


def _attack_key(job: Job) -> tuple:
    return job.attack, job.setting, job.eps, job.impl


def _order(keys) -> list[tuple]:
    return sorted(keys, key=lambda k: evaluation_order(*k))


def defense_order(defenses) -> list[str]:
    return ([NONE] if NONE in defenses else []) + sorted(set(defenses) - {NONE})


def clean_accuracy(job: Job) -> float:
    """On the whole test split, through the job's input-transformation defense when it has one."""
    return job.metrics.get("defended_test_accuracy", job.metrics["test/acc"])


def training_seconds(study: Study, job: Job) -> float | None:
    return study.trainings.get(job.training_run_id, {}).get("training_seconds")


def _cells(study: Study) -> tuple[dict, dict, list]:
    """(model, defense) -> attack key -> job, (model, defense) -> newest job, and the attack keys."""
    cells: dict[tuple, dict[tuple, Job]] = defaultdict(dict)
    newest: dict[tuple, Job] = {}
    for job in study.jobs:  # newest first
        if job.source_model is None:
            cells[(job.model, job.defense)].setdefault(_attack_key(job), job)
            newest.setdefault((job.model, job.defense), job)
    keys = _order({k for by_attack in cells.values() for k in by_attack})
    return cells, newest, keys


def has_defenses(study: Study) -> bool:
    return any(j.defense != NONE for j in study.jobs)


def _label(study: Study, key: tuple) -> str:
    return row_label(next(j for j in study.jobs if _attack_key(j) == key))


def per_model(study: Study) -> Table:
    cells, newest, keys = _cells(study)
    models = model_order({m for m, _ in cells})
    defenses = defense_order({d for _, d in cells})
    body = []
    for model in models:
        for defense in defenses:
            if (model, defense) not in cells:
                continue
            job, by_attack = newest[(model, defense)], cells[(model, defense)]
            seconds = training_seconds(study, job)
            robust = []
            for key in keys:
                j = by_attack.get(key)
                robust.append(DASH if j is None else pct(j.metrics["adversarial_accuracy"]) + (f" {MASK}" if j.masking else ""))
            evaluations = sorted({j.strongest_evaluation for j in by_attack.values()})
            body.append([model_label(model), defense, DASH if seconds is None else f"{seconds:.0f}",
                         pct(clean_accuracy(job)), *robust, ", ".join(evaluations)])
    return Table("Defenses: accuracy per model", ["model", "defense", "training (s)", "clean acc",
                                                  *(_label(study, k) for k in keys), "strongest evaluation"], body,
                 ["In %. Clean: the whole test split, through the defense. Attack columns: the attacked test images; "
                  "for an input-transformation defense the per-image worst case over its evaluations (oblivious: "
                  "examples of the bare model; bpda: gradients through the transformation as the identity; bpda_eot: "
                  "BPDA averaged over draws of a random transformation); the last column names the evaluation that "
                  "left the fewest images correct. Training time: the training run's wall time; an input-transformation "
                  "defense reuses the undefended model's training.",
                  f"{MASK}: the sweep flagged possible gradient masking for this run."])


def bought(study: Study) -> Table:
    """Per defense, averaged over the models evaluated with both it and no defense: gains and costs."""
    cells, newest, keys = _cells(study)
    defenses = [d for d in defense_order({d for _, d in cells}) if d != NONE]
    body = []
    for defense in defenses:
        models = [m for m, d in cells if d == defense and (m, NONE) in cells]
        if not models:
            continue
        clean = mean(clean_accuracy(newest[(m, defense)]) - clean_accuracy(newest[(m, NONE)]) for m in models)
        gains = []
        for key in keys:
            pairs = [(cells[(m, defense)][key], cells[(m, NONE)][key]) for m in models
                     if key in cells[(m, defense)] and key in cells[(m, NONE)]]
            gain = DASH if not pairs else f"{100 * mean(d.metrics['adversarial_accuracy'] - n.metrics['adversarial_accuracy'] for d, n in pairs):+.1f}"
            if pairs and len(pairs) < len(models):  # say which models this average is over
                gain += f" ({', '.join(model_label(d.model) for d, _ in pairs)})"
            gains.append(gain)
        times = [(training_seconds(study, newest[(m, defense)]), training_seconds(study, newest[(m, NONE)])) for m in models]
        times = [(d, n) for d, n in times if d is not None and n]
        cost = DASH if not times else f"{sum(d for d, _ in times) / sum(n for _, n in times):.2f}x"
        body.append([defense, ", ".join(model_label(m) for m in model_order(models)), f"{100 * clean:+.1f}", *gains, cost])
    return Table("Defenses: what each bought and what it cost", ["defense", "models", "clean acc change",
                                                                 *(f"{_label(study, k)} change" for k in keys),
                                                                 "training time vs none"], body,
                 ["Percentage points, averaged over the models listed (or those in brackets, where only they were "
                  "evaluated with that attack), against the same model without defense. "
                  "Training time: the defended trainings' total over the undefended ones' (1.00x: the same training)."])


def robustness_by_defense(study: Study):
    """Accuracy against eps, one panel per model, one line per defense and attack setting."""
    cells, newest, keys = _cells(study)
    models = model_order({m for m, _ in cells})
    defenses = defense_order({d for _, d in cells})
    curves = list(dict.fromkeys(k[:2] + k[3:] for k in keys if k[2] is not None))  # in the report's attack order
    fig, axes = plt.subplots(1, len(models), figsize=(3.2 * len(models), 3.2), squeeze=False, sharey=True)
    for ax, model in zip(axes[0], models):
        for i, defense in enumerate(defenses):
            by_attack = cells.get((model, defense), {})
            for style, curve in zip(("-", "--", ":", "-."), curves):
                points = sorted((k[2], j) for k, j in by_attack.items() if k[2] is not None and k[:2] + k[3:] == curve)
                if not points:
                    continue
                xs = [0.0] + [255 * e for e, _ in points]
                ys = [100 * points[0][1].metrics["clean_accuracy"]] + [100 * j.metrics["adversarial_accuracy"] for _, j in points]
                setting = "" if curve[1] == "budget" else f" ({curve[1]})"
                label = defense if len(curves) == 1 else f"{defense}, {ATTACKS.get(curve[0], curve[0])}{setting}"
                ax.plot(xs, ys, style, marker="o", color=COLORS[i % 10], label=label)
        ax.set_title(model_label(model))
        ax.set_xlabel("eps (/255)")
        ax.set_ylim(-3, 103)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy (%)")
    legend = {}
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    fig.tight_layout()
    fig.legend(legend.values(), legend.keys(), loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    return fig


def _transfer(study: Study) -> dict[tuple, dict[tuple[str, str], Job]]:
    """(attack key, defense) -> (source, target) -> job; white-box jobs on the diagonal."""
    keyed = {(_attack_key(j), j.defense) for j in study.jobs if j.source_model is not None}
    grid: dict[tuple, dict] = defaultdict(dict)
    for job in study.jobs:  # newest first
        if (_attack_key(job), job.defense) in keyed:
            grid[(_attack_key(job), job.defense)].setdefault((job.source_model or job.model, job.model), job)
    return grid


def has_transfer(study: Study) -> bool:
    return any(j.source_model is not None for j in study.jobs)


def transfer_tables(study: Study) -> list[Table]:
    tables = []
    for (key, defense), cells in sorted(_transfer(study).items(), key=lambda kv: (_order([kv[0][0]]), kv[0][1] != NONE, kv[0][1])):
        sources = model_order({s for s, _ in cells})
        targets = model_order({t for _, t in cells})
        body = [[model_label(s)] + [DASH if (s, t) not in cells else pct(cells[(s, t)].metrics["adversarial_accuracy"])
                                    for t in targets] for s in sources]
        title = f"Transfer: {_label(study, key)}" + ("" if defense == NONE else f", defense {defense}")
        tables.append(Table(title, ["source \\ target", *(model_label(t) for t in targets)], body,
                            ["Accuracy (%) of the target model (columns) on examples crafted on the source model (rows); "
                             "the diagonal is the white-box attack. Higher off the diagonal: the examples transfer less."]))
    return tables


def transfer_heatmaps(study: Study):
    grids = sorted(_transfer(study).items(), key=lambda kv: (_order([kv[0][0]]), kv[0][1] != NONE, kv[0][1]))
    fig, axes = plt.subplots(1, len(grids), figsize=(4.2 * len(grids), 3.8), squeeze=False)
    for ax, ((key, defense), cells) in zip(axes[0], grids):
        sources, targets = model_order({s for s, _ in cells}), model_order({t for _, t in cells})
        values = np.array([[100 * cells[(s, t)].metrics["adversarial_accuracy"] if (s, t) in cells else np.nan
                            for t in targets] for s in sources])
        image = ax.imshow(values, vmin=0, vmax=100, cmap="viridis")
        for (i, j), v in np.ndenumerate(values):
            if v == v:
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", color="white" if v < 60 else "black", fontsize=9)
        ax.set_xticks(range(len(targets)), [model_label(t) for t in targets], rotation=30, ha="right")
        ax.set_yticks(range(len(sources)), [model_label(s) for s in sources])
        ax.set_xlabel("target")
        ax.set_ylabel("source")
        eps = "" if key[2] is None else f" eps={eps_label(key[2])}"
        ax.set_title(f"{key[0].upper()}{eps}" + ("" if defense == NONE else f" [{defense}]"), fontsize=10)
        fig.colorbar(image, ax=ax, fraction=0.046, label="accuracy (%)")
    fig.tight_layout()
    return fig
