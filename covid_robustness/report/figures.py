"""The report's figures, drawn from the rows and example arrays read from MLflow."""

import io
from collections import defaultdict
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from .collect import Job  # noqa: E402
from .summary import ATTACKS, CLEAN, Row, model_label, model_order  # noqa: E402

COLORS = plt.get_cmap("tab10").colors


@dataclass
class Figure:
    file: str  # the PNG's name in the report folder
    title: str
    caption: str
    png: bytes


def to_png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def accuracy_bars(rows: list[Row]):
    """Figure 3: accuracy per evaluation set (groups) and model (bars), the paper's value as a tick."""
    rows = [r for r in rows if r.accuracy]
    models = model_order({m for r in rows for m in r.accuracy})
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(rows) * max(1, len(models) / 2.5)), 4.2))
    for i, model in enumerate(models):
        for x, row in enumerate(rows):
            if model not in row.accuracy:
                continue
            pos = x - 0.4 + width * (i + 0.5)
            job = row.jobs.get(model)
            value = 100 * row.accuracy[model]
            ax.bar(pos, value, width, color=COLORS[i % 10], edgecolor="black", linewidth=0.4,
                   hatch="///" if job and job.masking else None)
            # The number tells a bar at 0 % from a model that was not attacked with this setting.
            ax.text(pos, value + 1, f"{value:.0f}", ha="center", va="bottom", fontsize=7, rotation=90)
            if model in row.paper:
                ax.plot([pos - width / 2, pos + width / 2], [row.paper[model]] * 2, color="black", linewidth=2.5)
    handles = [Patch(facecolor=COLORS[i % 10], edgecolor="black", label=model_label(m)) for i, m in enumerate(models)]
    handles.append(Line2D([], [], color="black", linewidth=2.5, label="paper"))
    if any(j.masking for r in rows for j in r.jobs.values()):
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="///", label="possible gradient masking"))
    ax.set_xticks(range(len(rows)), [r.label for r in rows], rotation=25, ha="right", fontsize=9)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 110)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(handles=handles, fontsize=8, ncol=len(handles), loc="lower center", bbox_to_anchor=(0.5, 1.0),
              frameon=False)
    fig.tight_layout()
    return fig


def eps_sweeps(rows: list[Row]) -> dict[str, list[Row]]:
    """Rows of one attack and setting that differ only in eps, where a model was attacked at several."""
    groups = defaultdict(list)
    for row in rows:
        if row.attack != CLEAN and row.eps is not None and row.jobs:
            groups[(row.attack, row.setting, row.impl)].append(row)
    sweeps = {}
    for (attack, setting, impl), group in groups.items():
        if len(group) > 1:
            name = ATTACKS.get(attack, attack.upper()) + (f" ({setting})" if setting != "budget" else "")
            sweeps[name + (f" [{impl}]" if impl != "art" else "")] = sorted(group, key=lambda r: r.eps)
    return sweeps


def robustness_curves(sweeps: dict[str, list[Row]]):
    """Accuracy and COVID-19 sensitivity against eps; eps 0 is the clean value on the same images."""
    fig, axes = plt.subplots(2, len(sweeps), figsize=(4.6 * len(sweeps), 7), squeeze=False, sharey="row")
    models = model_order({m for group in sweeps.values() for r in group for m in r.jobs})
    for col, (name, group) in enumerate(sweeps.items()):
        for i, model in enumerate(models):
            points = [r for r in group if model in r.jobs]
            if not points:
                continue
            first = points[0].jobs[model].metrics
            eps = [0.0] + [255 * r.eps for r in points]
            for ax, clean_key, adv in ((axes[0, col], "clean_accuracy", "adversarial_accuracy"),
                                       (axes[1, col], "covid_sensitivity_clean", "covid_sensitivity_adversarial")):
                values = [first[clean_key]] + [r.jobs[model].metrics[adv] for r in points]
                ax.plot(eps, 100 * np.array(values), "o-", color=COLORS[i % 10], label=model_label(model))
                masked = [(e, v) for e, v, r in zip(eps[1:], values[1:], points) if r.jobs[model].masking]
                if masked:
                    e, v = zip(*masked)
                    ax.plot(e, 100 * np.array(v), "x", color="crimson", markersize=11, markeredgewidth=2)
        axes[0, col].set_title(name)
        axes[1, col].set_xlabel("eps (/255)")
    axes[0, 0].set_ylabel("accuracy (%)")
    axes[1, 0].set_ylabel("COVID-19 sensitivity under attack (%)")
    if any(j.masking for group in sweeps.values() for r in group for j in r.jobs.values()):
        axes[0, 0].plot([], [], "x", color="crimson", label="possible gradient masking")
    axes[0, 0].legend(fontsize=8)
    for ax in axes.flat:
        ax.set_ylim(-3, 103)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def kernel_jobs(rows: list[Row]) -> dict[str, dict[str, tuple[Row, Job]]]:
    """Per attack and model, the job Figure 2 shows: the setting compared with the paper, else the largest budget."""
    chosen: dict[str, dict[str, tuple[Row, Job]]] = defaultdict(dict)
    for row in rows:
        if row.attack == CLEAN:
            continue
        for model, job in row.jobs.items():
            best = chosen[row.attack].get(model)
            if best is None or (bool(row.paper), row.eps or 0.0) > (bool(best[0].paper), best[0].eps or 0.0):
                chosen[row.attack][model] = (row, job)
    return dict(chosen)


def kernels(chosen: dict[str, dict[str, tuple[Row, Job]]], arrays: dict[str, dict[str, np.ndarray]],
            class_names: tuple[str, ...]):
    """Figure 2: per model, the first test image and what each attack did to it.

    A perturbation (adversarial - clean) is scaled to its own largest value so that it is visible;
    the spatial attack's output is shown as the transformed image, since its difference is not a kernel.
    """
    chosen = {a: {m: (row, arrays[job.run_id]) for m, (row, job) in by_model.items() if job.run_id in arrays}
              for a, by_model in chosen.items()}
    attacks = [a for a in chosen if chosen[a]]
    models = model_order({m for by_model in chosen.values() for m in by_model})
    fig, axes = plt.subplots(len(models), len(attacks) + 1, squeeze=False,
                             figsize=(2.3 * (len(attacks) + 1), 2.8 * len(models)))
    for i, model in enumerate(models):
        ex = next(chosen[a][model][1] for a in attacks if model in chosen[a])
        axes[i, 0].imshow(ex["clean"][0, 0], cmap="gray", vmin=0, vmax=1)
        axes[i, 0].set_title(f"{model_label(model)}\ntrue {class_names[ex['labels'][0]]}, "
                             f"pred {class_names[ex['pred_clean'][0]]}", fontsize=7)
        for ax, attack in zip(axes[i, 1:], attacks):
            if model not in chosen[attack]:
                ax.text(0.5, 0.5, f"{ATTACKS.get(attack, attack)}\nnot run", ha="center", va="center", fontsize=7,
                        color="gray", transform=ax.transAxes)
                continue
            row, ex = chosen[attack][model]
            adv = ex["adversarial"][0, 0]
            verdict = f"pred {class_names[ex['pred_adv'][0]]}"
            if attack == "st":
                ax.imshow(adv, cmap="gray", vmin=0, vmax=1)
                ax.set_title(f"{row.label}\ntransformed, {verdict}", fontsize=7)
            else:
                delta = adv - ex["clean"][0, 0]
                scale = max(float(np.abs(delta).max()), 1e-12)
                ax.imshow(delta, cmap="RdBu_r", vmin=-scale, vmax=scale)
                ax.set_title(f"{row.label}\n±{scale * 255:.2g}/255, {verdict}", fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    return fig
