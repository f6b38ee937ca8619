"""The report's pages: which tables and figures each holds, in what order, and the files they are written to.

Two pages: report (the study's provenance, the paper's tables and figures, then defenses, transfer, shift,
the study's runs) and, where the study has clinical jobs, clinical. Each is written as Markdown and as one
HTML page, its figures as PNGs beside them, with Table II and the runs as CSV, the provenance as
manifest.json and the numbers for other tools as results.json.
"""

import json
from pathlib import Path

from ..data.classes import task_classes
from ..record import Artifacts, Params
from . import certified, clinical, defenses, figures, html, manifest, markdown, paper_eps, results, shift, tables
from .blocks import Figure, Link, Table
from .collect import Study
from .records import job_records, table2_records, write_csv
from .summary import newest_job_per_model, rows, sweeps


def build(study: Study, out: Path) -> list[Path]:
    """Writes the report into out and returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    table_rows = rows(study)
    newest = newest_job_per_model(study)
    provenance = manifest.manifest(study)
    (out / "manifest.json").write_text(json.dumps(provenance, indent=1) + "\n", encoding="utf-8")
    sections: list = [
        manifest.table(provenance),
        manifest.setup_table(provenance),
        tables.overview(study),
        tables.table2(table_rows, study.labels),
        tables.table2_average(table_rows, study.labels),
    ]
    if (said := tables.verdicts(study)) is not None:
        sections.append(said)
    if (probes := shift.probe_table(study)) is not None:  # beside Table II: what its clean row may measure
        sections.append(probes)

    def add_figure(file: str, title: str, caption: str, fig) -> None:
        sections.append(Figure(file, title, caption, figures.to_png(fig)))

    add_figure(
        "figure3_accuracy.png",
        "Figure 3: accuracy per model and evaluation set",
        "Bars: our accuracy (clean: whole test split; attacks: the attacked images), with its 95 % Wilson "
        "interval; dots: each seed, where there are several. Black ticks: the paper's value for the row it "
        "compares with. Hollow triangles, where the jobs were escalated: what stands after the escalation ladder, "
        "on its own images (its interval in Table II). Hatched: possible gradient masking. Faded, ∅: a model no "
        "better than the majority class. "
        f"A sweep over {figures.LONG_SWEEP} budgets or more is drawn in the robustness curves instead.",
        figures.accuracy_bars(figures.bar_rows(table_rows), study.labels),
    )
    curves = sweeps(table_rows)
    if curves:
        add_figure(
            "robustness_curves.png",
            "Robustness curves",
            "Accuracy (top, with its 95 % Wilson interval) and COVID-19 sensitivity (bottom) on the attacked "
            "images against the L-inf budget; eps 0 is the clean value on the same images. Red crosses: "
            "possible gradient masking.",
            figures.robustness_curves(curves, study.labels),
        )
    if equivalents := paper_eps.equivalents(table_rows):
        sections.append(paper_eps.table(equivalents, study.labels))
        add_figure(
            "paper_equivalent_eps.png",
            "Figure: paper-equivalent budgets",
            "Our accuracy against the budget (log scale) per model, with its 95 % Wilson band; dashed: the "
            "paper's value for that model and attack; diamond: where our curve meets it, with the range where "
            "the band contains it; dotted: the paper's eps of 0.3 std on [0, 1] pixels.",
            paper_eps.figure(equivalents, study.labels),
        )
    chosen = figures.kernel_jobs(table_rows)
    arrays = {
        job.run_id: ex
        for by_model in chosen.values()
        for _, job in by_model.values()
        if (ex := study.artifacts.examples(job)) is not None
    }
    if arrays:
        classes = task_classes(study.jobs[0].params[Params.TASK])
        add_figure(
            "figure2_kernels.png",
            "Figure 2: attack kernels",
            "Per model, the first test image (left) and the perturbation each attack added to it "
            "(adversarial - clean, red brighter, blue darker, each scaled to its own largest change, "
            f"given in grey levels); for ST the transformed image. From each job's {Artifacts.EXAMPLES}.",
            figures.kernels(chosen, arrays, classes, study.labels),
        )
    sections += certified.sections(study)  # randomized smoothing's bounds, where the study certified
    if defenses.has_defenses(study):
        sections += [defenses.bought(study), defenses.per_model(study)]
        add_figure("defenses.png", *defenses.ROBUSTNESS_FIGURE, defenses.robustness_by_defense(study))
    if defenses.has_transfer(study):
        sections += defenses.transfer_tables(study)
        add_figure("transfer.png", *defenses.TRANSFER_FIGURE, defenses.transfer_heatmaps(study))
    if shift.corruption_jobs(study):
        sections.append(shift.corruption_table(study))
        add_figure("corruptions.png", *shift.CORRUPTION_FIGURE, shift.corruption_heatmaps(study))
        if (table := shift.corruption_attack_table(study)) is not None:
            sections.append(table)
    if shift.external_jobs(study):
        sections.append(shift.external_table(study))
        add_figure("external.png", *shift.EXTERNAL_FIGURE, shift.external_figure(study))
    written, clinical_pages = [], []
    if clinical.has_clinical(study):
        clinical_pages = clinical_sections(study)
        written += _page(out, "clinical", f"Clinical reading: study {study.name}", clinical_pages)
        sections.append(
            Link(
                "Clinical reading",
                "clinical.html",
                "Missed COVID-19 and false alarms against the budget, calibration and reliability under attack, "
                "the operating point, robust radii per class and targeted attacks (clinical.html)",
            )
        )
    sections += [tables.clean_metrics(study), tables.parameter_counts(study, newest)]
    # Every table up to here goes into results.json as the page prints it, for a README's regions to quote;
    # the table of jobs is runs.csv's.
    summary_tables = [s for s in sections + clinical_pages if isinstance(s, Table)]
    sections.append(tables.jobs(study))
    if (reruns := tables.replaced(study)) is not None:
        sections.append(reruns)
    written += _page(out, "report", f"Adversarial robustness report: study {study.name}", sections)
    write_csv(out / "table2.csv", table2_records(table_rows))
    write_csv(out / "runs.csv", job_records(study))
    numbers = results.results(study, table_rows, provenance, summary_tables)
    (out / "results.json").write_text(json.dumps(numbers, indent=1) + "\n", encoding="utf-8")
    return written + [out / name for name in ("table2.csv", "runs.csv", "manifest.json", "results.json")]


def _page(out: Path, name: str, title: str, sections: list) -> list[Path]:
    """Writes one page (name.md, name.html) and its figures' PNGs; returns the files written."""
    written = []
    for section in sections:
        if isinstance(section, Figure):
            (out / section.file).write_bytes(section.png)
            written.append(out / section.file)
    (out / f"{name}.md").write_text(markdown.render(title, sections), encoding="utf-8")
    (out / f"{name}.html").write_text(html.render(title, sections), encoding="utf-8")
    return written + [out / f"{name}.md", out / f"{name}.html"]


def clinical_sections(study: Study) -> list:
    """The clinical page (report/clinical.py): its tables, and figures where there is something to draw."""
    sections: list = []
    if clinical.harm_jobs(study):
        sections.append(clinical.harm_table(study))
    found = clinical.radius_data(study)
    drawn = [
        (
            "clinical_harm.png",
            "Missed COVID-19 and false alarms against the budget",
            "Per model: the share of COVID-19 images read right that the attack turned to another class (solid) "
            "and of the other images read right turned to COVID-19 (dashed), against the L-inf budget; markers: "
            "fixed-budget jobs, black lines: read off the radius job's per-image radii (two classes).",
            clinical.harm_figure(study, found),
        ),
        (
            "clinical_reliability.png",
            "Reliability under attack",
            "Per model, the reliability diagram of its strongest gradient attack (lowest attacked accuracy): "
            "accuracy against confidence per bin, clean (blue) and attacked (red); marker area ~ images.",
            clinical.reliability_figure(study),
        ),
    ]
    for file, title, caption, fig in drawn:
        if fig is not None:
            sections.append(Figure(file, title, caption, figures.to_png(fig)))
    for table in (clinical.operating_table(study), clinical.radius_table(study)):
        if table is not None:
            sections.append(table)
    if (fig := clinical.radius_figure(found, study.labels)) is not None:
        caption = (
            "Per model and class, the distribution of each image's robust radius (attack=radius); images "
            "that stand at the largest budget searched are drawn at it and counted under the box."
        )
        sections.append(Figure("clinical_radii.png", "Robust radii per class", caption, figures.to_png(fig)))
    if (table := clinical.targeted_table(study)) is not None:
        sections.append(table)
    return sections
