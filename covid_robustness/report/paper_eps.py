"""Paper-equivalent budgets: at which eps our accuracy falls to the paper's, per model and attack.

The paper's eps is ambiguous (ART's 0.3 on standardised images); a study that sweeps FGSM or PGD over a
grid of pixel budgets can say which budget reproduces each of the paper's numbers instead. Between grid
points the curve is linear in log(eps), as budgets are spaced geometrically; the range is where the
curve's Wilson band contains the paper's value (the lower bound crosses first, the upper bound last).
eps 0 (the clean accuracy) has no place on a log scale: a paper value above the smallest budget's
accuracy reads "below the grid".
"""

from dataclasses import dataclass
from math import exp, log

import matplotlib.pyplot as plt
from matplotlib.lines import Line2D

from ..record import Metrics
from .blocks import DASH, Table, flag_notes, marks
from .estimate import Estimate
from .figures import COLORS
from .labels import Labels
from .summary import MODELS, PAPER_TABLE2, Row, sweeps

ATTACKS = ("fgsm", "pgd")  # the paper's attacks that have an L-inf budget
BELOW, ABOVE = "below", "above"  # the crossing lies outside the grid, on this side
PAPER_EPS_STD = 0.3  # ART's default, in standard deviations of the input


def crossing(eps: list[float], accuracy: list[float], target: float) -> float | str:
    """The first budget at which accuracy falls to target, linear in log(eps) between grid points.

    BELOW when accuracy is under target already at the smallest budget, ABOVE when it never falls to it.
    """
    for i, (e, a) in enumerate(zip(eps, accuracy)):
        if a == target:
            return e
        if a < target:
            if i == 0:
                return BELOW
            e0, a0 = eps[i - 1], accuracy[i - 1]
            return exp(log(e0) + (a0 - target) / (a0 - a) * (log(e) - log(e0)))
    return ABOVE


@dataclass(frozen=True)
class Equivalent:
    """The paper-equivalent budget of one model and attack, on [0, 1] pixels."""

    model: str
    curve: str  # the sweep's name, e.g. "PGD"
    attack: str
    paper: float  # the paper's accuracy, a fraction
    eps: tuple[float, ...]  # the grid, on [0, 1] pixels
    accuracy: tuple[Estimate, ...]
    std_per_pixel: float | None  # eps_std / eps_pixel: 1 / the normalisation std

    @property
    def value(self) -> float | str:
        return crossing(list(self.eps), [e.mean for e in self.accuracy], self.paper)

    @property
    def range(self) -> tuple[float | str, float | str]:
        """Where the Wilson band contains the paper's value: the lower bound's crossing to the upper bound's."""
        return (
            crossing(list(self.eps), [e.interval[0] for e in self.accuracy], self.paper),
            crossing(list(self.eps), [e.interval[1] for e in self.accuracy], self.paper),
        )

    @property
    def paper_eps(self) -> float | None:
        """The paper's eps of 0.3 std on [0, 1] pixels."""
        return None if self.std_per_pixel is None else PAPER_EPS_STD / self.std_per_pixel

    def text(self, scale: float, digits: str) -> str:
        """ "5.31 [3.90, 7.02]" in units of scale; "below the grid (< 0.25)" where it does not cross."""

        def one(v: float | str) -> str:
            if v == BELOW:
                return f"< {scale * self.eps[0]:{digits}}"
            if v == ABOVE:
                return f"> {scale * self.eps[-1]:{digits}}"
            return f"{scale * v:{digits}}"

        if self.value in (BELOW, ABOVE):
            return f"{self.value} the grid ({one(self.value)})"
        return f"{one(self.value)} [{one(self.range[0])}, {one(self.range[1])}]"


def equivalents(rows: list[Row]) -> list[Equivalent]:
    """Per paper model and budget sweep of FGSM or PGD in pixel units, where the study has one."""
    out = []
    for name, group in sweeps(rows).items():
        s = group[0].evalset
        if s.attack not in ATTACKS or s.setting != "budget" or s.eps_unit != "pixel":
            continue
        ratios = [r.evalset.eps_std / r.evalset.eps_pixel for r in group if r.evalset.eps_std and r.evalset.eps_pixel]
        for i, model in enumerate(MODELS):
            points = [(r.eps, r.accuracy[model]) for r in group if model in r.accuracy]
            if len(points) > 1:
                out.append(
                    Equivalent(
                        model,
                        name,
                        s.attack,
                        PAPER_TABLE2[s.attack][i] / 100,
                        tuple(e for e, _ in points),
                        tuple(a for _, a in points),
                        sum(ratios) / len(ratios) if ratios else None,
                    )
                )
    return out


def table(found: list[Equivalent], labels: Labels) -> Table:
    body = []
    for q in sorted(found, key=lambda q: (list(MODELS).index(q.model), q.curve)):
        grid = f"{255 * q.eps[0]:g}-{255 * q.eps[-1]:g}, {len(q.eps)} budgets"
        std = DASH if q.std_per_pixel is None else q.text(q.std_per_pixel, ".3f")
        body.append(
            [
                labels.model(q.model) + marks(j for a in q.accuracy for j in a.jobs),
                q.curve,
                grid,
                f"{100 * q.paper:.2f}",
                q.text(255, ".2f"),
                std,
                DASH if q.paper_eps is None else f"{255 * q.paper_eps:.1f}",
            ]
        )
    return Table(
        "Paper-equivalent budgets",
        [
            "model",
            "attack",
            "grid (/255)",
            "paper accuracy",
            "paper-equivalent eps (/255) [95 % range]",
            "in std units",
            f"{PAPER_EPS_STD:g} std (/255)",
        ],
        body,
        [
            "The budget at which our accuracy on the attacked images falls to the paper's value for that model "
            "and attack, linear in log(eps) between the grid's budgets; in brackets the budgets where the 95 % "
            "Wilson band of our curve contains the paper's value. Below or above the grid: our curve is already "
            "under the paper's value at the smallest budget, or still over it at the largest.",
            f"In std units: divided by the normalisation std (metrics {Metrics.EPS_STD} / {Metrics.EPS_PIXEL}). "
            f"Last column: the paper's eps of {PAPER_EPS_STD:g} (ART's default on standardised images) on [0, 1] "
            "pixels, for comparison.",
            *flag_notes(j for q in found for a in q.accuracy for j in a.jobs),
        ],
    )


def figure(found: list[Equivalent], labels: Labels):
    """Accuracy against eps per model, the paper's value as a dashed line and the crossing marked."""
    models = [m for m in MODELS if any(q.model == m for q in found)]
    curves = list(dict.fromkeys(q.curve for q in found))
    fig, axes = plt.subplots(1, len(models), figsize=(3.4 * len(models), 3.5), squeeze=False, sharey=True)
    for ax, model in zip(axes[0], models):
        levels = []
        for q in (q for q in found if q.model == model):
            color = COLORS[curves.index(q.curve) % 10]
            xs = [255 * e for e in q.eps]
            levels += xs
            ax.plot(xs, [100 * a.mean for a in q.accuracy], "o-", color=color, markersize=3.5)
            ax.fill_between(
                xs,
                [100 * a.interval[0] for a in q.accuracy],
                [100 * a.interval[1] for a in q.accuracy],
                color=color,
                alpha=0.15,
                linewidth=0,
            )
            ax.axhline(100 * q.paper, color=color, linestyle="--", linewidth=1)
            if isinstance(q.value, float):
                lo, hi = (255 * (v if isinstance(v, float) else q.eps[0 if v == BELOW else -1]) for v in q.range)
                x = 255 * q.value
                ax.errorbar(
                    [x],
                    [100 * q.paper],
                    xerr=[[x - lo], [hi - x]],
                    fmt="D",
                    color=color,
                    markersize=6,
                    markeredgecolor="black",
                    capsize=3,
                    zorder=5,
                )
            if q.paper_eps is not None:
                ax.axvline(255 * q.paper_eps, color="grey", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.set_xlabel("eps (/255)")
        ax.set_xticks(sorted(set(levels)), [f"{v:g}" for v in sorted(set(levels))], fontsize=7)
        ax.minorticks_off()
        ax.set_title(labels.model(model))
        ax.set_ylim(-3, 103)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy (%)")
    handles = [
        Line2D([], [], color=COLORS[i % 10], marker="o", markersize=3.5, label=f"{c}: ours, 95 % band")
        for i, c in enumerate(curves)
    ]
    handles += [
        Line2D([], [], color="black", linestyle="--", linewidth=1, label="paper's value"),
        Line2D([], [], color="black", marker="D", linestyle="none", label="paper-equivalent eps, range"),
        Line2D([], [], color="grey", linestyle=":", label=f"{PAPER_EPS_STD:g} std"),
    ]
    fig.tight_layout()
    fig.legend(
        handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(handles), fontsize=8, frameon=False
    )
    return fig
