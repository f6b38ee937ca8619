"""The main page's tables: the study, Table II and its average, Table I, the clean metrics, the jobs and the
reruns left out.

Each is built from the study's rows and jobs into a blocks.Table of text, so the Markdown and HTML pages
print the same cells; the tables of defenses, shift, paper-equivalent budgets and the clinical page have
modules of their own.
"""

from statistics import mean

from ..record import Metrics, Params, Tags, value
from ..record.budget import grey_levels
from ..record.checklist import MASKED, NOT_ESTABLISHED, STANDS, UNDER_ATTACKED, recorded_verdict, stage_breaks
from .blocks import DASH, INTERVAL_NOTE, MASK, UNTRAINED, Table, cell, flag_notes, marks, pct, when
from .collect import Job, Study
from .estimate import Average, escalated, measured
from .evalsets import evaluation_sets, shown_uri
from .evalsets import key as evaluation_key
from .labels import Labels, model_order
from .summary import (
    CLEAN,
    MODELS,
    PAPER_SETTING,
    PAPER_WHY,
    Row,
    averages,
    clean_rows,
    paper_label,
)


def _number_first(value: str) -> tuple:
    try:
        return 0, float(value), ""
    except ValueError:
        return 1, 0.0, value


def _distinct(jobs: list[Job], key: str, none: str = "none") -> str:
    """The values of one param over the jobs, as logged; a param logged as None shows as `none`."""
    values = {none if value(v) is None else v for v in (j.params.get(key, DASH) for j in jobs)}
    return ", ".join(sorted(values, key=_number_first))


def overview(study: Study) -> Table:
    jobs = study.jobs
    starts = [r.start_time for r in study.job_runs]  # a job joined from slices started with each of them
    facts = [
        ("study", study.name),
        ("tracking URI", shown_uri(study.uri)),
        ("job runs used", f"{len(jobs)} (finished, newest per cell; {len(study.replaced)} older reruns left out)"),
        ("training runs", str(len({j.training_run_id for j in jobs}))),
        (
            "data",
            f"{_distinct(jobs, Params.DATA_SOURCE)}, task {_distinct(jobs, Params.TASK)}, "
            f"{_distinct(jobs, Params.IMAGE_SIZE)} px",
        ),
        ("epochs", _distinct(jobs, Params.MAX_EPOCHS)),
        ("defenses", ", ".join(sorted({j.defense for j in jobs}))),
        ("transfer attacks", f"{sum(j.source_model is not None for j in jobs)} jobs"),
        ("attacked test images per job", _distinct(jobs, Params.MAX_IMAGES, none="the whole test split")),
        ("seed", _distinct(jobs, Params.SEED)),
        ("untrained models", f"{sum(j.untrained for j in jobs)} jobs{marks(jobs, masking=False)}"),
        (
            "possible gradient masking",
            f"{sum(j.masking for j in jobs)} jobs flagged{f' {MASK}' * any(j.masking for j in jobs)}",
        ),
        ("verdicts after escalation", _verdict_counts(jobs)),
        ("runs started", f"{when(min(starts))} to {when(max(starts))}"),
    ]
    return Table("Study", ["", ""], [list(f) for f in facts])


def _verdict_counts(jobs: list[Job]) -> str:
    """How many jobs got each kind of verdict (stands, under-attacked, masked, not established), in that order."""
    kinds = [recorded_verdict(j)[0].split(" (")[0] for j in jobs]
    counts = [f"{kinds.count(k)} {k}" for k in (STANDS, UNDER_ATTACKED, MASKED, NOT_ESTABLISHED) if kinds.count(k)]
    return ", ".join(counts) + " (table of verdicts)" if counts else DASH


def _counts(rows: list[Row], clean: bool) -> str:
    estimates = [e for r in rows if (r.attack == CLEAN) == clean for e in r.accuracy.values()]
    return ", ".join(f"{n:g}" for n in sorted({n for e in estimates for n in e.images}))


def _paper_notes(rows: list[Row], labels: Labels) -> list[str]:
    """Which of our rows each paper row compares with, and why that one."""
    notes = [
        "Paper values (the paper's Table II) stand beside the row they compare with, named in the last column; "
        "rows without a paper value have no counterpart there."
    ]
    for attack in PAPER_SETTING:
        ours = [r.label for r in rows if r.attack == attack and r.compared and r.evalset is not None]
        which = (
            " and ".join(f"our '{label}'" for label in ours) or f"'{paper_label(attack, labels)}' (not in this study)"
        )
        notes.append(f"The paper's {labels.attack(attack)} compares with {which}: {PAPER_WHY[attack]}.")
    return notes


ESCALATED_NOTE = (
    "Escalated: what stands of the same attacked images after the escalation ladder at the row's budget (random "
    "signs, the row's attack with twice its iterations, APGD on the cross-entropy, APGD on the margin loss with "
    "restarts, Square, transfers from the study's other models; each on the images still standing), counted "
    f"on the first {Metrics.ESCALATION_IMAGES} attacked images, with its 95 % Wilson interval; the row's own "
    "number is what the paper's attack found. On the ladder's images the escalated accuracy never exceeds what "
    f"the row's attack left ({Metrics.ESCALATION_STANDING}); against the row's number, counted on all the attacked "
    "images, it can read higher when fewer of them were escalated: two samples, compare their intervals. A dash: "
    "the job was not escalated. Verdicts in the table of verdicts."
)


def _escalating(rows: list[Row]) -> bool:
    return any(escalated(e) is not None for r in rows for e in r.accuracy.values())


def table2(rows: list[Row], labels: Labels) -> Table:
    models = model_order({m for r in rows for m in r.accuracy})
    both = _escalating(rows)
    columns = ["evaluation set"]
    for m in models:  # a paper column only for the paper's models
        paper = [f"{labels.model(m)} paper"] * (m in MODELS)
        columns += [labels.model(m), *([f"{labels.model(m)} escalated"] * both), *paper]
    body = []
    for row in rows:
        cells = [row.label]
        for m in models:
            paper = row.paper.get(m)
            estimate = row.accuracy.get(m)
            cells.append(cell(estimate, masking=row.attack != CLEAN))
            if both:  # a clean row's jobs are attack jobs: their escalation is not its number
                cells.append(DASH if row.attack == CLEAN else cell(escalated(estimate), masking=False))
            if m in MODELS:
                cells.append(DASH if paper is None else f"{paper:.2f}")
        body.append(cells + [row.paper_row or DASH])
    attacked = _counts(rows, clean=False)
    notes = [
        f"Accuracy in %. Clean rows: the whole test split ({Metrics.TEST_ACCURACY}, counted on {Metrics.TEST_IMAGES}: "
        f"{_counts(rows, clean=True) or DASH} per run); attack rows: the attacked test images "
        f"({Metrics.IMAGES}: {attacked or DASH} per job, {Params.MAX_IMAGES}).",
        INTERVAL_NOTE,
    ]
    if both:
        notes.append(ESCALATED_NOTE)
    if any(e.counted_on_attacked for r in rows for e in r.accuracy.values()):
        notes.append(
            f"Some runs did not log {Metrics.TEST_IMAGES} (older runs): their clean interval counts the attacked "
            f"images instead ({Metrics.IMAGES}), so it is wider than the whole test split would give."
        )
    notes += _paper_notes(rows, labels)
    notes += flag_notes(j for r in rows for e in r.accuracy.values() for j in e.jobs)
    return Table("Table II: accuracy under attack", columns + ["paper row"], body, notes)


def against_paper(ours: Average, paper: float) -> str:
    """Ours - paper in points, and whether the paper's value lies inside our interval."""
    return f"{100 * ours.value - paper:+.2f} ({'inside' if ours.contains(paper) else 'outside'} our interval)"


def table2_average(rows: list[Row], labels: Labels) -> Table:
    """The paper's headline row: each compared row over the five models, ours beside the paper's (and what
    stands of ours after escalation, where every job of the row was escalated); then the same without the
    models whose number is flagged, beside the paper's average of the same models."""
    both = _escalating(rows)
    body = []
    for a in averages(rows):
        row = a.row
        after = without = DASH
        if a.ours is not None:
            jobs = [j for m in MODELS for j in row.accuracy[m].jobs]
            text, diff = a.ours.text() + marks(jobs, masking=row.attack != CLEAN), against_paper(a.ours, a.paper)
            after = DASH if a.escalated is None else a.escalated.text()
            if not a.left_out:
                without = "as ours (no model flagged)"
            elif a.without is None:
                without = "every model flagged"
            else:
                escal = "" if a.without_escalated is None else f", escalated {a.without_escalated.text()}"
                without = (
                    f"{a.without.text()}{escal}; paper {a.paper_without:.2f}, "
                    f"{against_paper(a.without, a.paper_without)} "
                    f"(without {', '.join(labels.model(m) for m in a.left_out)})"
                )
        elif a.missing and row.accuracy:
            text, diff = f"{DASH} (no {', '.join(labels.model(m) for m in a.missing)})", DASH
        else:
            text, diff = "not in this study", DASH
        label = row.label.removesuffix(": not in this study")
        body.append([row.paper_row, label, text, *([after] * both), f"{a.paper:.2f}", diff, without])
    notes = [
        f"In %. Ours: the mean of the five models' accuracies ({', '.join(MODELS.values())}; each over its "
        "seeds), as the paper's mean, with a 95 % Wilson interval that counts each model's images of one seed; "
        "with several seeds, the average at each seed (a model without that seed held at its own) from lowest "
        "to highest. Only where all five have a value. Paper: the mean of its five "
        "Table II values; its text prints these means cut to one decimal (clean 96.7, FGSM 41.1, PGD 25.5, "
        "C&W 50.1, ST 56.3). Ours - paper: in points, and whether the paper's mean lies inside our interval "
        "(outside: the data tell the two apart).",
        "Without flagged models: the same average without the models whose number is flagged (untrained, or "
        "possible gradient masking on an attack row), beside the paper's mean of the same models.",
    ]
    if both:
        notes.append(
            "Escalated: the same average of the escalated accuracies, where all the models' jobs were escalated."
        )
    return Table(
        "Table II: average over the five models",
        [
            "paper row",
            "our evaluation set",
            "ours",
            *(["ours escalated"] * both),
            "paper",
            "ours - paper",
            "without flagged models",
        ],
        body,
        notes,
    )


def verdicts(study: Study) -> Table | None:
    """Per model and budget, the verdict on each escalated job's number and the evidence for it."""
    said = {j.run_id: recorded_verdict(j) for j in study.jobs}
    chosen = [j for j in study.jobs if said[j.run_id][0]]
    if not chosen:
        return None
    models = model_order({j.model for j in chosen})
    sets = evaluation_sets(study.jobs, study.labels)
    order = sorted(chosen, key=lambda j: (models.index(j.model), j.eps_pixel or 0.0, sets[evaluation_key(j)].order))
    body = []
    for job in order:
        m = job.metrics
        breaks = stage_breaks(job)
        most = max(breaks, key=breaks.get, default=None)
        attacked = measured([job], Metrics.ADVERSARIAL)
        after = escalated(attacked)
        body.append(
            [
                study.labels.model(job.model),
                DASH if job.eps_pixel is None else grey_levels(job.eps_pixel),
                sets[evaluation_key(job)].label,
                attacked.text() + f" (n={m[Metrics.IMAGES]:g})",
                DASH if after is None else after.text() + f" (n={m[Metrics.ESCALATION_IMAGES]:g})",
                DASH if most is None or not breaks[most] else f"{most}: {breaks[most]:g}",
                DASH if after is None else f"{m[Metrics.ESCALATION_PASSES_PER_IMAGE]:.0f}",
                said[job.run_id][0],
                said[job.run_id][1] or DASH,
            ]
        )
    return Table(
        "Verdicts: does the number stand?",
        [
            "model",
            "budget",
            "evaluation set",
            "attack",
            "escalated",
            "stage that broke most",
            "passes per image",
            "verdict",
            "evidence",
        ],
        body,
        [
            "Accuracy in % with its 95 % Wilson interval. Attack: the job's own attack on its attacked images; "
            "escalated: what stands after the ladder, on the first escalation_images of them (Table II's note). "
            "Stage that broke most: the ladder's stage that took the most standing images away, with their "
            "number. Passes per image: the ladder's forward and backward passes over its images. Verdict: "
            "'stands after escalation' when every check ran and none flagged; 'under-attacked (checks)' when "
            "only (a) twice the iterations or (e) escalation flagged it: a stronger gradient attack found what "
            "the job's attack did not, so read the escalated number; 'masked (checks)' when a sign of gradient "
            "masking is among them ((b) large budget, (c) gradient-free or transfer, (d) random noise; 'sweep': "
            "the sweep's own masking checks); 'not established' names what did not run. What each check means "
            "and what to do: docs/flags.md."
        ],
    )


def parameter_counts(study: Study, newest: dict[str, Job]) -> Table:
    """Table I, as each model's training run counted it (on the model as the study configured it)."""
    body = []
    for model in model_order(newest):
        m = study.trainings.get(newest[model].training_run_id, {})
        if Metrics.PARAMETERS not in m:
            body.append([study.labels.model(model), DASH, DASH, DASH, DASH])
            continue
        params, with_stats, paper = (
            m.get(k) for k in (Metrics.PARAMETERS, Metrics.PARAMETERS_WITH_STATS, Metrics.PAPER_PARAMETERS)
        )
        body.append(
            [
                study.labels.model(model),
                f"{params:,.0f}",
                f"{with_stats:,.0f}",
                DASH if paper is None else f"{paper:,.0f}",
                DASH if paper is None else f"{with_stats / paper:.4f}",
            ]
        )
    columns = ["model", "ours", "ours + BatchNorm statistics", "paper", "ratio (with statistics / paper)"]
    return Table(
        "Table I: parameters",
        columns,
        body,
        [
            "The paper's counts are Keras counts, which include BatchNorm running statistics: "
            "compare them with the third column. Counted by each model's training run; – where a run "
            "logged no count."
        ],
    )


def clean_metrics(study: Study) -> Table:
    """Per model (and training setting), the clean metrics of its trainings, over the seeds."""
    rows = clean_rows(study)
    body = []
    for row in rows:
        for model in model_order(row.accuracy):
            estimate = row.accuracy[model]
            jobs = estimate.jobs
            vals = [
                v
                for j in jobs
                if (v := study.trainings.get(j.training_run_id, {}).get(Metrics.VAL_ACCURACY)) is not None
            ]
            means = (
                pct(mean(j.metrics[k] for j in jobs))
                for k in (Metrics.TEST_SENSITIVITY, Metrics.TEST_SPECIFICITY, Metrics.TEST_AUROC)
            )
            body.append(
                [study.labels.model(model)]
                + ([row.label] if len(rows) > 1 else [])
                + [
                    _distinct(list(jobs), Params.MAX_EPOCHS),
                    pct(mean(vals) if vals else None),
                    cell(estimate, masking=False),
                    *means,
                ]
            )
    notes = [
        "In %. Validation accuracy at the last epoch; test metrics on the whole test split, sensitivity and "
        "specificity of COVID-19 against the rest. With several seeds: the mean over them.",
        INTERVAL_NOTE,
    ]
    notes += flag_notes((j for r in rows for e in r.accuracy.values() for j in e.jobs), masking=False)
    if len(rows) > 1:
        notes.append("The models were trained with different settings in this study: one line per training setting.")
    return Table(
        "Clean test metrics",
        ["model"]
        + (["training"] if len(rows) > 1 else [])
        + ["epochs", "val acc", "test acc", "COVID-19 sensitivity", "specificity", "AUROC"],
        body,
        notes,
    )


def jobs(study: Study) -> Table:
    models = model_order({j.model for j in study.jobs})
    sets = evaluation_sets(study.jobs, study.labels)
    order = sorted(
        study.jobs,
        key=lambda j: (
            models.index(j.model),
            j.defense != "none",
            j.defense,
            j.source_model or "",
            sets[evaluation_key(j)].order,
            j.seed,
        ),
    )
    body = []
    for job in order:
        m = job.metrics
        source = DASH if job.source_model is None else study.labels.model(job.source_model)
        body.append(
            [
                study.labels.model(job.model),
                job.defense,
                source,
                sets[evaluation_key(job)].label,
                job.seed,
                job.evaluation,
                f"{m[Metrics.IMAGES]:g}",
                measured([job], Metrics.CLEAN).text(),
                measured([job], Metrics.ADVERSARIAL).text(),
                *(
                    pct(m[k])
                    for k in (
                        Metrics.ATTACK_SUCCESS,
                        Metrics.SENSITIVITY_CLEAN,
                        Metrics.SENSITIVITY_ADVERSARIAL,
                    )
                ),
                f"{m[Metrics.LINF_MAX]:.4f}",
                f"{m[Metrics.L2_MEAN]:.3f}",
                f"{m.get(Metrics.FORWARD_PASSES, 0):.1f} / {m.get(Metrics.BACKWARD_PASSES, 0):.1f}",
                f"{m[Metrics.SECONDS]:.1f}",
                f"{MASK} {job.masking_reasons}" if job.masking else "no",
                f"{UNTRAINED} {job.untrained_reason}" if job.untrained else "no",
                job.run_id[:8],
            ]
        )
    return Table(
        "Jobs",
        [
            "model",
            "defense",
            "crafted on",
            "evaluation set",
            "seed",
            "evaluation",
            "images",
            "clean acc",
            "adv acc",
            "success rate",
            "COVID-19 sens. clean",
            "COVID-19 sens. adv",
            "L-inf max",
            "L2 mean",
            "passes fwd / bwd per image",
            "seconds",
            "gradient masking",
            "untrained model",
            "run",
        ],
        body,
        [
            "In % unless noted, on the attacked images (clean: through the defense), accuracies with their 95 % "
            "Wilson interval. Success rate: the share of correctly classified images the attack turned wrong. "
            "Perturbation sizes on [0, 1] pixels. Crafted on: the source model of a transfer attack. Passes and "
            "seconds: all evaluations of the job together. Untrained model: no better than always answering the "
            "majority class."
        ],
    )


def replaced(study: Study) -> Table | None:
    if not study.replaced:
        return None
    sets = evaluation_sets(study.jobs + [old for old, _ in study.replaced], study.labels)
    body = [
        [
            study.labels.model(old.model),
            sets[evaluation_key(old)].label,
            old.seed,
            f"{old.run_id[:8]} ({when(old.start_time)})",
            f"{kept.run_id[:8]} ({when(kept.start_time)})",
        ]
        for old, kept in study.replaced
    ]
    return Table(
        "Reruns left out",
        ["model", "evaluation set", "seed", "left out", "used instead"],
        body,
        [
            f"Two finished job runs of the same cell (tag {Tags.CELL_KEY}: every setting that can change a job's "
            "numbers is the same, seed included): the report uses the newest. Runs that differ in any such setting "
            "are kept apart, as rows or as seeds."
        ],
    )
