"""The report's tables, as plain rows of text that the Markdown and HTML pages both render."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from ..data.classes import task_classes
from ..models.registry import count_params, create, spec
from .collect import Job, Study
from .summary import CLEAN, Row, model_label, model_order, newest_job_per_model, row_label

MASK = "⚠"
DASH = "–"


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)


def pct(value: float | None) -> str:
    return DASH if value is None or value != value else f"{100 * value:.2f}"


def when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def _number_first(value: str) -> tuple:
    try:
        return 0, float(value), ""
    except ValueError:
        return 1, 0.0, value


def _distinct(jobs: list[Job], key: str, none: str = "None") -> str:
    values = {none if v == "None" else v for v in (j.params.get(key, DASH) for j in jobs)}
    return ", ".join(sorted(values, key=_number_first))


def overview(study: Study) -> Table:
    jobs = study.jobs
    facts = [
        ("study", study.name),
        ("tracking URI", study.uri),
        ("job runs used", f"{len(jobs)} (finished, newest per cell; {len(study.replaced)} older reruns left out)"),
        ("training runs", str(len({j.training_run_id for j in jobs}))),
        ("data", f"{_distinct(jobs, 'data.source')}, task {_distinct(jobs, 'data.task')}, "
                 f"{_distinct(jobs, 'data.image_size')} px"),
        ("epochs", _distinct(jobs, "trainer.max_epochs")),
        ("defenses", ", ".join(sorted({j.defense for j in jobs}))),
        ("transfer attacks", f"{sum(j.source_model is not None for j in jobs)} jobs"),
        ("attacked test images per job", _distinct(jobs, "eval.max_images", none="the whole test split")),
        ("seed", _distinct(jobs, "seed")),
        ("runs started", f"{when(min(j.start_time for j in jobs))} to {when(max(j.start_time for j in jobs))}"),
    ]
    return Table("Study", ["", ""], [list(f) for f in facts])


def table2(rows: list[Row]) -> Table:
    models = model_order({m for r in rows for m in r.accuracy})
    columns = ["evaluation set"] + [c for m in models for c in (model_label(m), f"{model_label(m)} paper")]
    body = []
    for row in rows:
        cells = [row.label]
        for m in models:
            job = row.jobs.get(m)
            ours = pct(row.accuracy.get(m)) + (f" {MASK}" if job and job.masking else "")
            paper = row.paper.get(m)
            cells += [ours, DASH if paper is None else f"{paper:.2f}"]
        body.append(cells + [row.paper_row or DASH])
    images = sorted({int(j.metrics["attack_images"]) for r in rows for j in r.jobs.values()})
    notes = [
        "Accuracy in %. The clean row is the accuracy on the whole test split (test/acc); attack rows are the "
        f"accuracy on the attacked test images ({', '.join(map(str, images))} per job, eval.max_images).",
        "Paper values (the paper's Table II) stand beside the row they compare with, named in the last column: "
        "the paper ran FGSM, PGD and C&W at ART's default settings (our setting art_default) and ST on its "
        "rotation and translation grid (our setting paper). Rows without a paper value have no counterpart there.",
        f"{MASK}: the sweep flagged possible gradient masking for this run (reasons in the table of jobs).",
    ]
    return Table("Table II: accuracy under attack", columns + ["paper row"], body, notes)


def parameter_counts(configs: dict[str, dict]) -> Table:
    """Table I, counted on each model as the study configured it (e.g. the WRN stem)."""
    body = []
    for model in model_order(configs):
        cfg = configs[model]
        kwargs = {k: v for k, v in cfg["model"].items() if k != "name"}
        params, with_stats = count_params(create(model, len(task_classes(cfg["data"]["task"])), **kwargs))
        paper = spec(model).paper_params
        body.append([model_label(model), f"{params:,}", f"{with_stats:,}", f"{paper:,}", f"{with_stats / paper:.4f}"])
    columns = ["model", "ours", "ours + BatchNorm statistics", "paper", "ratio (with statistics / paper)"]
    return Table("Table I: parameters", columns, body,
                 ["The paper's counts are Keras counts, which include BatchNorm running statistics: "
                  "compare them with the third column. Counted from the registry, not read from MLflow."])


def clean_metrics(study: Study) -> Table:
    body = []
    newest = newest_job_per_model(study)
    for model in model_order(newest):
        job = newest[model]
        m = job.metrics
        val = study.trainings.get(job.training_run_id, {}).get("val/acc")
        body.append([model_label(model), job.params.get("trainer.max_epochs", DASH), pct(val), pct(m["test/acc"]),
                     pct(m["test/sensitivity"]), pct(m["test/specificity"]), pct(m["test/auroc"])])
    notes = ["In %. Validation accuracy at the last epoch; test metrics on the whole test split, "
             "sensitivity and specificity of COVID-19 against the rest."]
    runs = defaultdict(set)
    for job in study.jobs:
        runs[job.model].add(job.training_run_id)
    for model, ids in runs.items():
        if len(ids) > 1:
            notes.append(f"{model_label(model)} was trained {len(ids)} times in this study (different settings); "
                         "this table shows the training of its newest job.")
    return Table("Clean test metrics", ["model", "epochs", "val acc", "test acc", "COVID-19 sensitivity",
                                        "specificity", "AUROC"], body, notes)


def jobs(study: Study) -> Table:
    models = model_order({j.model for j in study.jobs})
    order = sorted(study.jobs, key=lambda j: (models.index(j.model), j.defense != "none", j.defense,
                                              j.source_model or "", j.attack, j.setting, j.eps or -1.0, j.impl))
    body = []
    for job in order:
        m = job.metrics
        body.append([model_label(job.model), job.defense, DASH if job.source_model is None else model_label(job.source_model),
                     row_label(job), job.evaluation, str(int(m["attack_images"])), pct(m["clean_accuracy"]),
                     pct(m["adversarial_accuracy"]), pct(m["attack_success_rate"]),
                     pct(m["covid_sensitivity_clean"]), pct(m["covid_sensitivity_adversarial"]),
                     f"{m['linf_max']:.4f}", f"{m['l2_mean']:.3f}",
                     f"{m.get('attack_forward_passes', 0):g} / {m.get('attack_backward_passes', 0):g}",
                     f"{m['attack_seconds']:.1f}",
                     f"{MASK} {job.masking_reasons}" if job.masking else "no", job.run_id[:8]])
    return Table("Jobs", ["model", "defense", "crafted on", "evaluation set", "evaluation", "images", "clean acc",
                          "adv acc", "success rate", "COVID-19 sens. clean", "COVID-19 sens. adv", "L-inf max", "L2 mean",
                          "passes fwd / bwd per image", "seconds", "gradient masking", "run"], body,
                 ["In % unless noted, on the attacked images (clean: through the defense). Success rate: the share of "
                  "correctly classified images the attack turned wrong. Perturbation sizes on [0, 1] pixels. Crafted on: "
                  "the source model of a transfer attack. Passes and seconds: all evaluations of the job together."])


def replaced(study: Study) -> Table | None:
    if not study.replaced:
        return None
    body = [[model_label(old.model), row_label(old), f"{old.run_id[:8]} ({when(old.start_time)})",
             f"{kept.run_id[:8]} ({when(kept.start_time)})"] for old, kept in study.replaced]
    return Table("Reruns left out", ["model", "evaluation set", "left out", "used instead"], body,
                 ["Two finished job runs evaluated the same model, attack, setting, eps and implementation: "
                  "the report uses the newest."])


def table2_records(rows: list[Row]) -> list[dict]:
    """Table II as a tidy table, one line per evaluation set and model, with full precision."""
    return [{"evaluation_set": row.label, "attack": row.attack, "setting": row.setting,
             "eps": "" if row.eps is None else row.eps, "impl": row.impl, "model": model,
             "accuracy": row.accuracy[model], "covid_sensitivity": row.sensitivity[model],
             "paper_accuracy": row.paper.get(model, ""),
             "gradient_masking": row.jobs[model].masking if model in row.jobs else "",
             "run_id": row.jobs[model].run_id if model in row.jobs else ""}
            for row in rows for model in model_order(row.accuracy)]


def job_records(study: Study) -> list[dict]:
    """Every job used, one line each: the cell, its run and all its metrics."""
    return [{"run_id": j.run_id, "training_run_id": j.training_run_id, "start_time": when(j.start_time),
             "model": j.model, "attack": j.attack, "setting": j.setting, "eps": "" if j.eps is None else j.eps,
             "impl": j.impl, "defense": j.defense, "source_model": j.source_model or "", "evaluation": j.evaluation,
             "strongest_evaluation": j.strongest_evaluation, "gradient_masking": j.masking, "gradient_masking_reasons": j.masking_reasons,
             **dict(sorted(j.metrics.items()))} for j in study.jobs]
