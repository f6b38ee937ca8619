"""The report's numbers as CSV, for a reader who computes with them: table2.csv and runs.csv.

The pages round every number for reading; these files keep full precision, one line per value, so a
table can be checked against MLflow or redrawn elsewhere without parsing the Markdown.
"""

import csv
from pathlib import Path

from ..record import Metrics, Params, Tags
from ..record.checklist import recorded_verdict
from ..record.sections import WHERE, within
from .blocks import when
from .collect import Job, Study
from .estimate import escalated, measured
from .evalsets import shown_value
from .labels import model_order
from .summary import CLEAN, Row


def table2_records(rows: list[Row]) -> list[dict]:
    """Table II as a tidy table, one line per evaluation set and model, with full precision."""
    out = []
    for row in rows:
        for model in model_order(row.accuracy):
            e = row.accuracy[model]
            lo, hi = e.interval
            evalset = row.evalset
            out.append(
                {
                    "evaluation_set": row.label,
                    "attack": row.attack,
                    "setting": row.setting,
                    "eps": "" if row.eps is None else row.eps,
                    "eps_configured": "" if evalset is None or evalset.eps is None else evalset.eps,
                    "eps_unit": "" if evalset is None else evalset.eps_unit,
                    "impl": row.impl,
                    "model": model,
                    "accuracy": e.mean,
                    "accuracy_min": e.spread[0],
                    "accuracy_max": e.spread[1],
                    "n_seeds": e.seeds,
                    "correct": e.correct,
                    "images": e.total,
                    "ci95_low": lo,
                    "ci95_high": hi,
                    "covid_sensitivity": row.sensitivity[model],
                    "paper_accuracy": row.paper.get(model, ""),
                    **_escalated_fields(e if row.attack != CLEAN else None),
                    Tags.MASKING: "" if row.attack == CLEAN else e.masking,
                    Tags.UNTRAINED: e.untrained,
                    "run_id": " ".join(r for j in e.jobs for r in j.run_ids),
                }
            )
    return out


def _escalated_fields(estimate) -> dict:
    """The escalated accuracy of an attacked estimate, with its interval and images ("" where none)."""
    e = escalated(estimate)
    if e is None:
        return {Metrics.ESCALATED: "", "escalated_ci95_low": "", "escalated_ci95_high": "", "escalated_images": ""}
    lo, hi = e.interval
    return {Metrics.ESCALATED: e.mean, "escalated_ci95_low": lo, "escalated_ci95_high": hi, "escalated_images": e.total}


def setting_values(jobs: list[Job]) -> dict[str, list[str]]:
    """Each setting (flattened param) of the jobs, where they ran aside, with the values it takes ("": unset)."""
    keys = sorted({k for j in jobs for k in j.params if not within(k, WHERE)})
    return {k: sorted({j.params.get(k, "") for j in jobs}) for k in keys}


def varying_settings(jobs: list[Job]) -> list[str]:
    """The settings that take more than one value over the jobs."""
    return [k for k, values in setting_values(jobs).items() if len(values) > 1]


def job_records(study: Study) -> list[dict]:
    """Every job used, one line each: the cell, each setting that varies within the study (target class,
    corruption and severities, remedy, external set, defense, seed: whichever vary; a folder by its name),
    its run and all its metrics."""
    records = []
    varying = varying_settings(study.jobs)
    for j in study.jobs:
        lo, hi = measured([j], Metrics.ADVERSARIAL).interval
        records.append(
            {
                "run_id": " ".join(j.run_ids),
                "training_run_id": j.training_run_id,
                "start_time": when(j.start_time),
                Tags.CELL_KEY: j.cell,
                **{k: shown_value(k, j.params.get(k, "")) for k in varying},
                Tags.MODEL: j.model,
                Tags.ATTACK: j.attack,
                Tags.SETTING: j.setting,
                "eps": "" if j.eps is None else j.eps,
                "eps_unit": j.params.get(Params.EPS_UNIT, "pixel"),
                "impl": j.impl,
                Tags.DEFENSE: j.defense,
                "source_model": j.source_model or "",
                "seed": j.seed,
                Tags.EVALUATION: j.evaluation,
                Tags.STRONGEST_EVALUATION: j.strongest_evaluation,
                Tags.MASKING: j.masking,
                Tags.MASKING_REASONS: j.masking_reasons,
                Tags.UNTRAINED: j.untrained,
                Tags.UNTRAINED_REASON: j.untrained_reason,
                f"{Metrics.ADVERSARIAL}_ci95_low": lo,
                f"{Metrics.ADVERSARIAL}_ci95_high": hi,
                **_escalated_fields(measured([j], Metrics.ADVERSARIAL)),
                **dict(zip((Tags.VERDICT, Tags.VERDICT_EVIDENCE), recorded_verdict(j))),
                **{k: v for k, v in sorted(j.metrics.items()) if k != Metrics.ESCALATED},
            }
        )
    return records


def write_csv(path: Path, records: list[dict]) -> None:
    """The records as one CSV file, its columns every field of any record, in the order they first appear."""
    fields = list(dict.fromkeys(k for r in records for k in r))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fields)
        writer.writeheader()
        writer.writerows(records)
