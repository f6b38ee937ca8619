"""The report's numbers as CSV, for a reader who computes with them: table2.csv and runs.csv.

The pages round every number for reading; these files keep full precision, one line per value, so a
table can be checked against MLflow or redrawn elsewhere without parsing the Markdown.
"""

import csv
from pathlib import Path

from .blocks import when
from .collect import Study
from .estimate import measured
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
                    "gradient_masking": "" if row.attack == CLEAN else e.masking,
                    "untrained_model": e.untrained,
                    "run_id": " ".join(j.run_id for j in e.jobs),
                }
            )
    return out


def job_records(study: Study) -> list[dict]:
    """Every job used, one line each: the cell, its run and all its metrics."""
    records = []
    for j in study.jobs:
        lo, hi = measured([j], "adversarial_accuracy").interval
        records.append(
            {
                "run_id": j.run_id,
                "training_run_id": j.training_run_id,
                "start_time": when(j.start_time),
                "cell_key": j.cell,
                "model": j.model,
                "attack": j.attack,
                "setting": j.setting,
                "eps": "" if j.eps is None else j.eps,
                "eps_unit": j.params.get("attack.eps_unit", "pixel"),
                "impl": j.impl,
                "defense": j.defense,
                "source_model": j.source_model or "",
                "seed": j.seed,
                "evaluation": j.evaluation,
                "strongest_evaluation": j.strongest_evaluation,
                "gradient_masking": j.masking,
                "gradient_masking_reasons": j.masking_reasons,
                "untrained_model": j.untrained,
                "untrained_model_reason": j.untrained_reason,
                "adversarial_accuracy_ci95_low": lo,
                "adversarial_accuracy_ci95_high": hi,
                **dict(sorted(j.metrics.items())),
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
