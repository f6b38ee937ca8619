"""What a job prints: one progress bar per training and per attack, warnings that matter, and at the
end of a sweep a table of what it found. `verbose=true` brings back everything the libraries say."""

import logging
import warnings

from pytorch_lightning.callbacks import TQDMProgressBar

from .record import Metrics
from .record.budget import written
from .record.checklist import MASKED, UNDER_ATTACKED, recorded_verdict

# Loggers whose INFO lines are banners, tips and per-batch chatter: Lightning's GPU/TPU banner and tips,
# ART's "Success rate of ... attack" after every batch and "set ART_DATA_PATH", MLflow's store set-up lines.
CHATTY = (
    "pytorch_lightning.utilities.rank_zero",
    "lightning.pytorch.utilities.rank_zero",
    "lightning_fabric.utilities.rank_zero",
    "art",
    "mlflow",
)

LIGHTNING_ADVICE = (
    "The `srun` command is available on your system but is not used",
    r"The number of training batches \(\d+\) is smaller than the logging interval",
)


def quiet(verbose: bool) -> None:
    """Silence the libraries' banners, INFO lines and deprecation warnings unless verbose."""
    if verbose:
        return
    import mlflow  # noqa: F401  (MLflow sets its loggers' level when imported: set ours after that)

    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING)
    for category in (DeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)
    # Lightning's advice that does not apply here: SLURM's srun (on every cluster's login node the tools are
    # installed; a job runs one process per task, launched by submitit, never by srun inside a job), and
    # the training epochs shorter than the logging interval (the epoch's metrics are logged at its end).
    for message in LIGHTNING_ADVICE:
        warnings.filterwarnings("ignore", message=message)


class TrainingBar(TQDMProgressBar):
    """Lightning's bar for the training epochs only: no sanity-check, validation or test bars."""

    def init_sanity_tqdm(self):
        return self._hidden(super().init_sanity_tqdm())

    def init_validation_tqdm(self):
        return self._hidden(super().init_validation_tqdm())

    def init_test_tqdm(self):
        return self._hidden(super().init_test_tqdm())

    @staticmethod
    def _hidden(bar):
        bar.disable = True
        return bar


def percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def flag(job) -> str:
    """A cell's flag in a few characters: its verdict after escalation, ⚠ where it is flagged."""
    verdict = recorded_verdict(job)[0]
    kind = verdict.split(" (")[0]
    if job.masking:
        return "⚠ " + verdict if kind == MASKED else "⚠ masked"
    if kind == UNDER_ATTACKED:
        return verdict
    return kind if Metrics.ESCALATED in job.metrics else "–"


FLAG_LEGEND = (
    "flag: ⚠ masked (checks) = possible gradient masking; stands = escalation found nothing more;",
    "      under-attacked (checks) = a stronger gradient attack found more: read the escalated column",
    "reasons: the runs' tags gradient_masking_reasons, verdict_evidence; what to do: docs/flags.md",
)


def cells_table(jobs) -> str:
    """A sweep's cells, one line each: model, defense, attack, budget, clean and adversarial accuracy (and the
    escalated accuracy where a cell was escalated), and its flag."""
    escalated = any(Metrics.ESCALATED in j.metrics for j in jobs)
    header = ("model", "defense", "attack", "eps", "clean %", "adv %", *(["escalated %"] * escalated), "flag")
    rows = [header]

    for j in sorted(
        jobs, key=lambda j: (j.model, j.defense, j.attack, j.eps_pixel or 0.0, j.target_class or "", j.first_image)
    ):
        budget = written(j.eps, j.params.get("attack.eps_unit", "pixel"))
        source = "" if j.source_model is None else f" from {j.source_model}"
        source += "" if j.target_class is None else f" toward {j.target_class}"
        source += f" images {j.first_image}+" if j.first_image else ""
        rows.append(
            (
                j.model,
                j.defense,
                j.attack + source,
                budget,
                percent(j.metrics.get(Metrics.CLEAN)),
                percent(j.metrics.get(Metrics.ADVERSARIAL)),
                *([percent(j.metrics.get(Metrics.ESCALATED))] * escalated),
                flag(j),
            )
        )
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if any(r[-1] != "–" for r in rows[1:]):
        lines += FLAG_LEGEND
    return "\n".join(lines)
