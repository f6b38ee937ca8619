"""The main page's figures (Figure 3's bars, the robustness curves, Figure 2's kernels) and what every figure
of the report shares: its colours, its error bars and seed dots, its budget axis and its PNG.

Drawn from the rows and the examples collect.py read; matplotlib draws off-screen (Agg), as the report
runs without a display.
"""

import io
import textwrap
from collections import defaultdict
from statistics import mean

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ..record import Metrics
from .blocks import UNTRAINED
from .collect import Job
from .estimate import Estimate, escalated, measured
from .labels import Labels, model_order
from .summary import CLEAN, Row, sweeps

COLORS = plt.get_cmap("tab10").colors


def to_png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def error_bars(estimates: list[Estimate]) -> np.ndarray:
    """Asymmetric error bars (%) from each estimate's value to the ends of its Wilson interval."""
    return np.array(
        [[100 * (e.mean - e.interval[0]) for e in estimates], [100 * (e.interval[1] - e.mean) for e in estimates]]
    ).clip(min=0)


def seed_dots(ax, x: float, estimate: Estimate, color) -> None:
    """Each seed's value as a small dot, where a number is a mean over seeds."""
    if estimate.seeds > 1:
        ax.plot(
            [x] * estimate.seeds,
            [100 * v for v in estimate.values],
            ".",
            color=color,
            markersize=4,
            markeredgecolor="black",
            markeredgewidth=0.3,
            zorder=4,
        )


ESCALATED_MARKER = "v"  # Figure 3's hollow triangle: what stands of a bar's images after the escalation ladder
LONG_SWEEP = 4  # budgets from which a sweep is drawn as curves only
PER_PANEL = 10  # groups of bars per panel, so that labels stay readable


def bar_rows(rows: list[Row]) -> list[Row]:
    """Figure 3's groups: every row but those of a sweep of LONG_SWEEP budgets or more (the curves show them)."""
    curves = {id(r) for group in sweeps(rows).values() if len(group) >= LONG_SWEEP for r in group if not r.compared}
    return [r for r in rows if r.accuracy and id(r) not in curves]


def accuracy_bars(rows: list[Row], labels: Labels):
    """Figure 3: accuracy per evaluation set (groups) and model (bars) with its interval.

    The paper's value is a tick on its bar.
    """
    models = model_order({m for r in rows for m in r.accuracy})
    width = 0.8 / len(models)
    size = -(-len(rows) // -(-len(rows) // PER_PANEL))  # panels of about equal size, none over PER_PANEL
    panels = [rows[i : i + size] for i in range(0, len(rows), size)]
    span = max(len(p) for p in panels)
    fig, axes = plt.subplots(
        len(panels), 1, squeeze=False, figsize=(max(6.0, 1.1 * span * max(1, len(models) / 2.5)), 4.4 * len(panels))
    )
    for ax, panel in zip(axes[:, 0], panels):
        for i, model in enumerate(models):
            for x, row in enumerate(panel):
                if model in row.accuracy:
                    _bar(ax, x - 0.4 + width * (i + 0.5), width, row, model, COLORS[i % 10])
        ax.set_xticks(range(len(panel)), [r.label for r in panel], rotation=25, ha="right", fontsize=9)
        ax.set_xlim(-0.6, span - 0.4)
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 118)
        ax.set_yticks(range(0, 101, 20))
        ax.grid(axis="y", alpha=0.3)
    handles = [Patch(facecolor=COLORS[i % 10], edgecolor="black", label=labels.model(m)) for i, m in enumerate(models)]
    handles.append(Line2D([], [], color="black", linewidth=2.5, label="paper"))
    handles.append(Line2D([], [], color="black", linewidth=0.8, marker="_", label="95 % interval"))
    if any(escalated(e) for r in rows if r.attack != CLEAN for e in r.accuracy.values()):
        handles.append(
            Line2D(
                [],
                [],
                color="black",
                marker=ESCALATED_MARKER,
                markerfacecolor="none",
                linestyle="none",
                label="escalated: what stands after the ladder",
            )
        )
    if any(e.masking for r in rows if r.attack != CLEAN for e in r.accuracy.values()):
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="///", label="possible gradient masking"))
    if any(e.untrained for r in rows for e in r.accuracy.values()):
        handles.append(Patch(facecolor="lightgrey", edgecolor="black", label=f"{UNTRAINED} untrained (faded)"))
    axes[0, 0].legend(
        handles=handles,
        fontsize=8,
        ncol=min(len(handles), 9),
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        frameon=False,
    )
    fig.tight_layout()
    return fig


def _bar(ax, pos: float, width: float, row: Row, model: str, color) -> None:
    """One model's bar of one row: its interval, its seeds, its flags, its number and the paper's tick."""
    estimate = row.accuracy[model]
    value = 100 * estimate.mean
    ax.bar(
        pos,
        value,
        width,
        color=color,
        edgecolor="black",
        linewidth=0.4,
        hatch="///" if estimate.masking and row.attack != CLEAN else None,
        alpha=0.35 if estimate.untrained else 1.0,
    )
    ax.errorbar(pos, value, yerr=error_bars([estimate]), fmt="none", ecolor="black", elinewidth=0.8, capsize=1.5)
    seed_dots(ax, pos, estimate, color)
    after = None if row.attack == CLEAN else escalated(estimate)
    if after is not None:  # what stands after the ladder, on its own (fewer) images: a marker, no interval
        ax.plot(pos, 100 * after.mean, ESCALATED_MARKER, markersize=6, markerfacecolor="none", color="black", zorder=5)
    # The number tells a bar at 0 % from a model that was not attacked with this setting.
    ax.text(
        pos,
        max(100 * estimate.interval[1], 100 * after.mean + 3 if after else 0) + 1.5,
        f"{value:.0f}" + (f" {UNTRAINED}" if estimate.untrained else ""),
        ha="center",
        va="bottom",
        fontsize=7,
        rotation=90,
    )
    if model in row.paper:
        ax.plot([pos - width / 2, pos + width / 2], [row.paper[model]] * 2, color="black", linewidth=2.5)


def eps_axis(ax, levels: list[float]) -> None:
    """A budget axis in grey levels: linear for a short grid, log-like (0 still shown) for one spanning decades."""
    positive = sorted({v for v in levels if v > 0})
    if len(positive) > 1 and positive[-1] / positive[0] >= 8:
        ax.set_xscale("symlog", linthresh=positive[0], linscale=0.5)
        ax.set_xticks([0.0, *positive], ["0", *(f"{v:g}" for v in positive)], fontsize=8)
        ax.minorticks_off()
    ax.set_xlabel("eps (/255)")


def robustness_curves(sweeps: dict[str, list[Row]], labels: Labels):
    """Accuracy (with its interval) and COVID-19 sensitivity against eps.

    eps 0 is the clean value on the same images.
    """
    fig, axes = plt.subplots(2, len(sweeps), figsize=(4.6 * len(sweeps), 7), squeeze=False, sharey="row")
    models = model_order({m for group in sweeps.values() for r in group for m in r.accuracy})
    for col, (name, group) in enumerate(sweeps.items()):
        for i, model in enumerate(models):
            points = [r for r in group if model in r.accuracy]
            if not points:
                continue
            color = COLORS[i % 10]
            eps = [0.0] + [255 * r.eps for r in points]
            accuracy = [measured(points[0].accuracy[model].jobs, Metrics.CLEAN)] + [r.accuracy[model] for r in points]
            axes[0, col].errorbar(
                eps,
                [100 * e.mean for e in accuracy],
                yerr=error_bars(accuracy),
                fmt="o-",
                color=color,
                capsize=2.5,
                elinewidth=1,
                markersize=4,
                label=labels.model(model),
            )
            for x, e in zip(eps, accuracy):
                seed_dots(axes[0, col], x, e, color)
            first = points[0].accuracy[model].jobs
            sensitivity = [mean(j.metrics.get(Metrics.SENSITIVITY_CLEAN, np.nan) for j in first)] + [
                r.sensitivity[model] for r in points
            ]
            axes[1, col].plot(
                eps, 100 * np.array(sensitivity), "o-", color=color, markersize=4, label=labels.model(model)
            )
            for ax, values in ((axes[0, col], [e.mean for e in accuracy[1:]]), (axes[1, col], sensitivity[1:])):
                masked = [(x, v) for x, v, r in zip(eps[1:], values, points) if r.accuracy[model].masking]
                if masked:
                    x, v = zip(*masked)
                    ax.plot(x, 100 * np.array(v), "x", color="crimson", markersize=11, markeredgewidth=2)
        axes[0, col].set_title(name)
        for ax in axes[:, col]:
            eps_axis(ax, [255 * r.eps for r in group])
    axes[0, 0].set_ylabel("accuracy (%), 95 % interval")
    axes[1, 0].set_ylabel("COVID-19 sensitivity under attack (%)")
    if any(r.accuracy[m].masking for group in sweeps.values() for r in group for m in r.accuracy):
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
        for model, jobs in row.jobs.items():
            job = jobs[0]
            best = chosen[row.attack].get(model)
            if best is None or (bool(row.paper), row.eps or 0.0) > (bool(best[0].paper), best[0].eps or 0.0):
                chosen[row.attack][model] = (row, job)
    return dict(chosen)


UNCHANGED = 1e-3 / 255  # a largest change below this is float rounding: the attack left the image as it was


def _column_title(label: str) -> str:
    return "\n".join(textwrap.wrap(label, 26))


def kernels(
    chosen: dict[str, dict[str, tuple[Row, Job]]],
    arrays: dict[str, dict[str, np.ndarray]],
    class_names: tuple[str, ...],
    labels: Labels,
):
    """Figure 2: per model, the first test image and what each attack did to it.

    A perturbation (adversarial - clean) is scaled to its own largest value so that it is visible; one
    whose largest change is below UNCHANGED is said to be none instead of drawn as a blank panel. The
    spatial attack's output is shown as the transformed image, since its difference is not a kernel. Each
    column is titled once with its evaluation set; each panel with its largest change and prediction.
    """
    chosen = {
        a: {m: (row, arrays[job.run_id]) for m, (row, job) in by_model.items() if job.run_id in arrays}
        for a, by_model in chosen.items()
    }
    attacks = [a for a in chosen if chosen[a]]
    models = model_order({m for by_model in chosen.values() for m in by_model})
    fig, axes = plt.subplots(
        len(models), len(attacks) + 1, squeeze=False, figsize=(2.4 * (len(attacks) + 1), 2.6 * len(models) + 0.7)
    )
    for j, attack in enumerate(attacks):
        row = next(iter(chosen[attack].values()))[0]
        axes[0, j + 1].annotate(
            _column_title(row.label), (0.5, 1.12), xycoords="axes fraction", ha="center", va="bottom", fontsize=8
        )
    for i, model in enumerate(models):
        ex = next(chosen[a][model][1] for a in attacks if model in chosen[a])
        axes[i, 0].imshow(ex["clean"][0, 0], cmap="gray", vmin=0, vmax=1)
        axes[i, 0].set_title(
            f"{labels.model(model)}: true {class_names[ex['labels'][0]]}, pred {class_names[ex['pred_clean'][0]]}",
            fontsize=7,
        )
        for ax, attack in zip(axes[i, 1:], attacks):
            if model not in chosen[attack]:
                _say(ax, f"{labels.attack(attack)}\nnot run")
                continue
            row, ex = chosen[attack][model]
            adv = ex["adversarial"][0, 0]
            verdict = f"pred {class_names[ex['pred_adv'][0]]}"
            if attack == "st":
                ax.imshow(adv, cmap="gray", vmin=0, vmax=1)
                ax.set_title(f"transformed, {verdict}", fontsize=7)
                continue
            delta = adv - ex["clean"][0, 0]
            scale = float(np.abs(delta).max())
            if scale < UNCHANGED:
                _say(ax, f"no change\n(largest {scale * 255:.1g}/255)\n{verdict}")
                continue
            ax.imshow(delta, cmap="RdBu_r", vmin=-scale, vmax=scale)
            ax.set_title(f"±{scale * 255:.2g}/255, {verdict}", fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.7 / fig.get_figheight()))
    return fig


def _say(ax, text: str) -> None:
    """A panel with words instead of an image."""
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=7, color="gray", transform=ax.transAxes)
