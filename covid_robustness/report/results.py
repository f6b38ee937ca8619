"""results.json: a study's numbers for other tools to read, in the spirit of RobustBench's model info.

Per model and evaluation set (threat model and budget; attack=none's clean readings are left out): the
clean and adversarial accuracy on the attacked images and the escalated accuracy, each with its 95 % Wilson
interval, images and seeds (with the lowest and highest seed); the attack's and the ladder's passes per
image; the flags and verdicts; the same per defense for defended models. Per model, the clean accuracy on
the whole test split; the five-model averages beside the paper's, with and without flagged models; the
commit and the data digests (manifest.json); every summary table of the report's pages (title, columns,
rows, notes) as they print it. The README's generated regions (readme.py) are rendered from this file.
"""

from collections import defaultdict
from dataclasses import asdict
from statistics import mean

from ..record import CERTIFY, Metrics
from ..record.checklist import recorded_verdict
from . import certified
from .blocks import Table
from .collect import Study
from .estimate import Average, Estimate, escalated, measured, per_seed
from .evalsets import EvalSet, evaluation_sets, key
from .labels import PAPER_MODELS, model_order
from .summary import CLEAN, Averaged, Row, averages

NONE = "none"  # attack=none: a clean reading, no threat model


def estimate(e: Estimate | None) -> dict | None:
    """An accuracy over seeds as fractions: the mean over seeds, the pooled count's interval, the spread."""
    if e is None:
        return None
    return {
        "accuracy": e.mean,
        "ci95": list(e.interval),
        "correct": e.correct,
        "images": e.total,
        "seeds": e.seeds,
        "seed_min": e.spread[0],
        "seed_max": e.spread[1],
    }


def average(a: Average | None) -> dict | None:
    if a is None:
        return None
    return {"accuracy": a.value, "ci95": list(a.interval), "seeds": a.seeds, "seed_spread": list(a.spread)}


def _threat(s: EvalSet) -> dict:
    return {
        "evaluation_set": s.label,
        "attack": s.attack,
        "setting": s.setting,
        "impl": s.impl,
        "norm": "L2" if s.l2 else ("Linf" if s.eps is not None else "none"),
        "eps": s.eps,
        "eps_unit": s.eps_unit,
        "eps_pixel": s.eps_pixel,
        "eps_std": s.eps_std,
    }


def _entry(row: Row, model: str) -> dict:
    return _numbers(model, row.evalset, row.accuracy[model]) | {"paper_accuracy": row.paper.get(model)}


def _numbers(model: str, evalset: EvalSet, e: Estimate) -> dict:
    """A cell's numbers over its seeds: e is its adversarial accuracy."""
    jobs = e.jobs
    passes = [j.metrics[Metrics.FORWARD_PASSES] for j in jobs if Metrics.FORWARD_PASSES in j.metrics]
    ladder = [j.metrics[k] for j in jobs if (k := Metrics.ESCALATION_PASSES_PER_IMAGE) in j.metrics]
    return {
        "model": model,
        **_threat(evalset),
        "clean": estimate(measured(jobs, Metrics.CLEAN)),
        "adversarial": estimate(e),
        "escalated": estimate(escalated(e)),
        "forward_passes_per_image": mean(passes) if passes else None,
        "escalation_passes_per_image": mean(ladder) if ladder else None,
        "gradient_masking": e.masking,
        "untrained": e.untrained,
        "verdicts": sorted({v for j in jobs if (v := recorded_verdict(j)[0])}),
        "run_ids": [r for j in jobs for r in j.run_ids],
    }


def _defended(study: Study) -> list[dict]:
    """Per model, defense and evaluation set, the defended cells (no transfer, no certification): Table II's
    numbers with the defense; clean is on the attacked images, through the defense."""
    sets = evaluation_sets(study.jobs, study.labels)
    cells: dict[tuple, list] = defaultdict(list)
    for job in study.jobs:  # newest first
        if job.defense != NONE and job.source_model is None and job.attack != CERTIFY:
            cells[(job.model, job.defense, key(job))].append(job)
    order = model_order({m for m, _, _ in cells})
    return [
        {"defense": defense} | _numbers(model, sets[k], measured(per_seed(jobs), Metrics.ADVERSARIAL))
        for (model, defense, k), jobs in sorted(
            cells.items(), key=lambda kv: (order.index(kv[0][0]), kv[0][1], sets[kv[0][2]].order)
        )
    ]


def _averaged(a: Averaged) -> dict:
    return {
        "paper_row": a.row.paper_row,
        "evaluation_set": a.row.label.removesuffix(": not in this study"),
        "ours": average(a.ours),
        "missing": a.missing,
        "escalated": average(a.escalated),
        "paper": a.paper,
        "paper_inside_ours": None if a.ours is None else a.ours.contains(a.paper),
        "left_out": a.left_out,
        "without_left_out": average(a.without),
        "without_left_out_escalated": average(a.without_escalated),
        "paper_without_left_out": a.paper_without,
        "paper_inside_without": None if a.without is None else a.without.contains(a.paper_without),
    }


def _certified(study: Study) -> list[dict]:
    """Per model and sigma (attack=certify): the smoothed classifier's clean vote, and at each L2 radius the
    certified (lower bound) and attacked (upper bound) accuracy over its seeds."""
    out = []
    for (model, sigma), jobs in certified.cells(study).items():
        seeds = per_seed(jobs)
        out.append(
            {
                "model": model,
                "sigma": sigma,
                "clean_vote": estimate(measured(seeds, Metrics.CLEAN)),
                "radii": [
                    {
                        "radius": r,
                        "certified": estimate(measured(seeds, f"{Metrics.CERTIFIED}{r:g}")),
                        "attacked": estimate(measured(seeds, f"{Metrics.ATTACKED}{r:g}")),
                    }
                    for r in certified.radii(seeds[0])
                    if all(f"{Metrics.CERTIFIED}{r:g}" in j.metrics for j in seeds)
                ],
                "run_ids": [j.run_id for j in seeds],
            }
        )
    return out


def results(study: Study, rows: list[Row], manifest: dict, tables: list[Table] = ()) -> dict:
    """The study's results.json; tables: the report's summary tables as its pages print them."""
    name = study.name
    clean = next((r for r in rows if r.attack == CLEAN and r.accuracy), None)
    return {
        "study": name,
        "commit": manifest["commit"],
        "data": [{"name": d["name"], "digest": d["digest"], "source": d.get("source", "")} for d in manifest["data"]],
        "models": {m: PAPER_MODELS.get(m, m) for m in model_order({m for r in rows for m in r.accuracy})},
        "clean_test_split": {} if clean is None else {m: estimate(e) for m, e in clean.accuracy.items()},
        "evaluations": [
            _entry(r, m)
            for r in rows
            if r.attack not in (CLEAN, NONE) and r.evalset is not None
            for m in model_order(r.accuracy)
        ],
        "defended": _defended(study),
        "averages": [_averaged(a) for a in averages(rows)],
        "certified": _certified(study),
        "tables": [asdict(t) for t in tables],
    }
