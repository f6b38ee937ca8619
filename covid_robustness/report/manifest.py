"""A study's provenance: manifest.json, and the table its report opens with.

Everything is read from the runs the report uses (the jobs and the trainings they used): the commit they
were made at and whether the tree was clean, their command lines, the resolved recipe (what all jobs share
and what varies), the data (name, digest of the images read, split sizes and class counts, the folder's
name), the machine, the library versions and the wall time per phase. A local path is written as its last
folder's name: a committed manifest names no absolute path.
"""

import json
import re

from ..record import Metrics, Tags
from ..tracking import git_commit
from .blocks import Table
from .collect import Study
from .records import setting_values

# An absolute path (not a fraction such as 8/255): a slash that starts a token, then its parts.
_PATH = re.compile(r"(?<![\w.:$}/])/(?:[^\s/,\]\['\"]+/)*([^\s/,\]\['\"]+)/?")
_ESCALATION_SECONDS = re.compile(r"escalation_.+_seconds")


def local(text: str) -> str:
    """text with every absolute path replaced by its last part: /data/curated-cxr -> curated-cxr."""
    return _PATH.sub(r"\1", text)


def _commits(study: Study) -> list[str]:
    runs = [*study.job_runs, *study.training_runs.values()]
    return sorted({r.tags.get(Tags.COMMIT, "unknown") for r in runs})


def _recipe(study: Study) -> dict:
    """The settings every job shares (fixed) and those that take several values (varies: each value)."""
    values = {k: sorted({local(v) for v in vs}) for k, vs in setting_values(study.jobs).items()}
    return {
        "fixed": {k: v[0] for k, v in values.items() if len(v) == 1},
        "varies": {k: v for k, v in values.items() if len(v) > 1},
    }


def _data(study: Study) -> list[dict]:
    """Each dataset the runs read (one per digest, with the contexts it was read in: training, test,
    external): what it holds, and where from (a folder by its name only)."""
    seen: dict[str, dict] = {}
    for run in [*study.training_runs.values(), *study.job_runs]:
        for d in run.datasets:
            profile = json.loads(d.get("profile") or "{}")
            source = local(profile.pop("source", ""))  # a folder by its name; generated data by its settings
            entry = seen.setdefault(d["digest"], {"name": d["name"], "digest": d["digest"], "contexts": []})
            entry.update({"source": source, **profile})
            if d["context"] not in entry["contexts"]:
                entry["contexts"] = sorted([*entry["contexts"], d["context"]])
    return sorted(seen.values(), key=lambda e: (e["name"], e["digest"]))


def _seconds(start: int, end: int) -> float:
    return max(end - start, 0) / 1000 if end else 0.0


def _under_way(intervals: list[tuple[int, int]]) -> float:
    """Seconds in which at least one of the (start, end) intervals (ms) was under way: jobs that ran side
    by side count once, and the hours between two sittings of a resumed sweep not at all."""
    total, reach = 0, None
    for start, end in sorted((s, e) for s, e in intervals if e > s):
        if reach is None or start > reach:
            total, reach = total + end - start, end
        elif end > reach:
            total, reach = total + end - reach, end
    return total / 1000


def wall_time(study: Study) -> dict[str, float]:
    """Seconds per phase: the trainings the jobs used (some may be shared with other studies), the jobs
    (attack and evaluation, escalation included), escalation alone, from the first start to the last end, and
    of that the time some run was under way (every run, finished or not); beside them the study's runs that
    did not finish (an interrupted sweep's, run again on resuming) and the seconds they ran before they
    stopped, counted in no phase."""
    trainings, jobs = study.training_runs.values(), study.job_runs
    starts = [r.start_time for r in [*jobs, *trainings]]
    ends = [r.end_time for r in [*jobs, *trainings] if r.end_time]
    intervals = [(r.start_time, r.end_time) for r in [*jobs, *trainings]] + list(study.unfinished)
    return {
        "training": round(sum(_seconds(r.start_time, r.end_time) for r in trainings), 1),
        "jobs": round(sum(_seconds(j.start_time, j.end_time) for j in jobs), 1),
        "escalation": round(
            sum(v for j in study.jobs for k, v in j.metrics.items() if _ESCALATION_SECONDS.fullmatch(k)), 1
        ),
        "first_start_to_last_end": round(_seconds(min(starts), max(ends)), 1) if ends else 0.0,
        "under_way": round(_under_way(intervals), 1),
        "unfinished_runs": len(study.unfinished),
        "unfinished_seconds": round(sum(_seconds(start, end) for start, end in study.unfinished), 1),
    }


def manifest(study: Study) -> dict:
    """The study's provenance as manifest.json holds it."""
    commits = _commits(study)
    runs = study.job_runs
    tags = [*runs, *study.training_runs.values()]
    return {
        "study": study.name,
        "commit": commits[0].removesuffix("-dirty") if len(commits) == 1 else "mixed",
        "commits": [c.removesuffix("-dirty") for c in commits],
        "clean_tree": not any(c.endswith("-dirty") or c == "unknown" for c in commits),
        "report_commit": git_commit(),
        "jobs": len(study.jobs),
        "job_runs": len(runs),  # more than jobs where slices were joined into one job
        "trainings": len(study.training_runs),
        "commands": sorted({local(j.tags.get(Tags.OVERRIDES, "")) for j in runs}),
        "recipe": _recipe(study),
        "data": _data(study),
        "machine": sorted({r.tags[Tags.MACHINE] for r in tags if Tags.MACHINE in r.tags}),
        "cpu_threads": sorted({r.tags[Tags.THREADS] for r in tags if Tags.THREADS in r.tags}),
        "library_versions": sorted({r.tags[Tags.VERSIONS] for r in tags if Tags.VERSIONS in r.tags}),
        "wall_time_seconds": wall_time(study),
        "attacked_images": int(sum(j.metrics.get(Metrics.IMAGES, 0) for j in study.jobs)),
    }


def _slices(m: dict) -> str:
    runs = m.get("job_runs", m["jobs"])
    return "" if runs == m["jobs"] else f" ({runs} runs: slices of the test split read as one job each)"


def hours(seconds: float) -> str:
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def wall_time_text(t: dict) -> str:
    """The manifest's wall time per phase, and the runs that did not finish, in one line."""
    unfinished = (
        f"; {n} run{'s' if n > 1 else ''} did not finish (interrupted or failed, run again), "
        f"{hours(t['unfinished_seconds'])} before {'they' if n > 1 else 'it'} stopped, counted in none of these"
        if (n := t.get("unfinished_runs"))
        else ""
    )
    return (
        f"trainings {hours(t['training'])}, jobs {hours(t['jobs'])} (escalation {hours(t['escalation'])}); "
        f"first start to last end {hours(t['first_start_to_last_end'])} ({hours(t['under_way'])} with a run "
        f"under way){unfinished}"
    )


def table(m: dict) -> Table:
    """The manifest as the table a report opens with."""
    data = "; ".join(
        f"{d['name']} ({', '.join(d['contexts'])}) from {d['source'] or '?'}, digest {d['digest']}"
        + (f", {d['images']} images (" + ", ".join(f"{k} {v}" for k, v in d.get("split_sizes", {}).items()) + ")")
        * ("images" in d)
        for d in m["data"]
    )
    rows = [
        ["commit", ", ".join(m["commits"]) + ("" if m["clean_tree"] else " (uncommitted changes in the tree)")],
        ["data", data or "–"],
        ["machine", "; ".join(m["machine"]) or "not recorded on these runs"],
        ["CPU threads per job", ", ".join(m["cpu_threads"]) or "–"],
        ["libraries", " | ".join(m["library_versions"]) or "not recorded on these runs"],
        ["wall time", wall_time_text(m["wall_time_seconds"])],
        ["runs", f"{m['jobs']} jobs{_slices(m)}, {m['trainings']} trainings"],
    ]
    return Table(
        "Provenance",
        ["", ""],
        rows,
        [
            "manifest.json beside this page holds it all, with every job's command line and the resolved recipe "
            "(what every job shares and what varies)."
        ],
    )


# The paper's setup (its Section III), for the table that sets ours beside it.
PAPER_SETUP = {
    "images (Normal vs COVID-19)": "4,551",
    "train / validation / test": "3,640 (10 % of it validation) / 911",
    "image size": "255 x 255 grayscale",
    "training": "SGD, batch 64, 200 epochs, from scratch",
    "attacked test images": "the test split (911)",
}


def _setting(m: dict, key: str) -> str:
    """A setting of the recipe: its one value, or its values where they vary."""
    recipe = m["recipe"]
    if key in recipe["fixed"]:
        return recipe["fixed"][key]
    return " / ".join(recipe["varies"].get(key, ["?"]))


def setup(m: dict) -> dict[str, str]:
    """Ours, in PAPER_SETUP's terms, from the manifest."""
    data = m["data"][0] if m["data"] else {}
    sizes = data.get("split_sizes", {})
    attacked = _setting(m, "eval.max_images")
    epochs, lr, warmup = _setting(m, "trainer.max_epochs"), _setting(m, "optim.lr"), _setting(m, "optim.warmup_epochs")
    return {
        "images (Normal vs COVID-19)": f"{data.get('images', '?'):,}" if data else "?",
        "train / validation / test": f"{sizes.get('train', '?')} / {sizes.get('val', '?')} / {sizes.get('test', '?')}",
        "image size": f"{_setting(m, 'data.image_size')} x {_setting(m, 'data.image_size')} grayscale",
        "training": f"SGD, batch {_setting(m, 'data.batch_size')}, {epochs} epochs, lr {lr}, {warmup} warm-up epochs",
        "attacked test images": "the test split" if attacked == "None" else f"the first {attacked}",
    }


def setup_table(m: dict) -> Table:
    ours = setup(m)
    return Table(
        "Setup beside the paper's",
        ["", "this study", "the paper"],
        [[k, ours[k], PAPER_SETUP[k]] for k in PAPER_SETUP],
        [
            "The data: "
            + "; ".join(f"{d['name']} from {d.get('source') or '?'}" for d in m["data"])
            + ". A setting that varies within the study shows its values."
        ],
    )
