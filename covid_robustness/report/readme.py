"""`covid-robustness readme FILE...`: a README's generated regions, rendered from a study's committed files.

A region is marked in the Markdown as

    <!-- generated: docs/results/paper_cpu averages -->
    ...
    <!-- /generated -->

naming a report folder (relative to the README's own folder) and what to render from its results.json and
manifest.json: `table2` (accuracy per model and evaluation set, with intervals, seeds and flags),
`verdicts` (per model and evaluation set, the verdict after escalation; defended cells with their defense),
`averages` (the five-model averages beside the paper's, with and without flagged models), `certified`
(randomized smoothing's certified beside attacked accuracy per radius), `setup` (ours beside the paper's)
or `provenance` (commit, data, machine, wall time); or, as `<!-- generated: FOLDER table: TITLE -->`, one
of the report's summary tables by its title, as its page prints it (results.json holds them). The command
rewrites each region; with --check it changes nothing and exits 1 if a region differs from what the files
give, so prose around the regions is the only hand-written part and the numbers cannot drift from the
results they claim.
"""

import argparse
import json
import re
import sys
from pathlib import Path

from . import markdown
from .blocks import Table
from .labels import PAPER_MODELS
from .manifest import PAPER_SETUP, wall_time_text
from .manifest import setup as manifest_setup

REGION = re.compile(
    r"(?P<open><!-- generated: (?P<folder>\S+) (?P<kind>\w+)(?:: (?P<title>[^\n]+?))? -->\n)(?P<body>.*?)"
    r"(?P<close><!-- /generated -->)",
    re.S,
)
MASK, UNTRAINED, DASH = "⚠", "∅", "–"


def _pct(e: dict | None, seeds: bool = True) -> str:
    """ "71.31 [67.1, 75.2]", with seeds "72.50 (70.00-75.00, 3 seeds) [66.1, 78.0]"; a dash for none."""
    if e is None:
        return DASH
    lo, hi = e["ci95"]
    spread = ""
    if seeds and e.get("seeds", 1) > 1:
        low, high = e.get("seed_spread") or (e["seed_min"], e["seed_max"])
        spread = f" ({100 * low:.2f}-{100 * high:.2f}, {e['seeds']} seeds)"
    return f"{100 * e['accuracy']:.2f}{spread} [{100 * lo:.1f}, {100 * hi:.1f}]"


def _model(name: str, results: dict) -> str:
    return results.get("models", {}).get(name) or PAPER_MODELS.get(name, name)


def _flags(e: dict) -> str:
    return f" {MASK}" * bool(e["gradient_masking"]) + f" {UNTRAINED}" * bool(e["untrained"])


def table2(results: dict, manifest: dict) -> str:
    """Accuracy (%) per evaluation set and model: the clean test split, each attack and, where it ran, what
    stands after escalation."""
    models = list(results["models"])
    by_set: dict[str, dict[str, dict]] = {}
    for e in results["evaluations"]:
        by_set.setdefault(e["evaluation_set"], {})[e["model"]] = e
    lines = [
        "| evaluation set | " + " | ".join(_model(m, results) for m in models) + " |",
        "|---|" + "---|" * len(models),
        "| clean (whole test split) | " + " | ".join(_pct(results["clean_test_split"].get(m)) for m in models) + " |",
    ]
    for label, cells in by_set.items():
        lines.append(
            f"| {label} | "
            + " | ".join(_pct(c["adversarial"]) + _flags(c) if (c := cells.get(m)) else DASH for m in models)
            + " |"
        )
        if any(c["escalated"] for c in cells.values()):
            lines.append(
                f"| {label}, escalated | "
                + " | ".join(_pct(c["escalated"]) if (c := cells.get(m)) else DASH for m in models)
                + " |"
            )
    notes = (
        f"Accuracy in % with its 95 % Wilson interval; with several seeds their mean, (lowest-highest, seeds) "
        f"and the interval of all their images. {MASK}: possible gradient masking; {UNTRAINED}: a model no better "
        f"than the majority class. Escalated: what stands after the escalation ladder, on its images (on them never "
        f"more than the row's attack left; beside the row's number on all the attacked images it can read higher)."
    )
    return "\n".join(lines) + "\n\n" + notes + "\n"


def verdicts(results: dict, manifest: dict) -> str:
    """Per evaluation set and model, the verdict on the number after escalation (where one was given); a
    defended model's cells as rows of their own, the defense in brackets after the evaluation set."""
    models = list(results["models"])
    by_set: dict[str, dict[str, dict]] = {}
    for e in results["evaluations"] + results.get("defended", []):
        if e["verdicts"]:
            label = e["evaluation_set"] + (f" [{e['defense']}]" if "defense" in e else "")
            by_set.setdefault(label, {})[e["model"]] = e
    lines = [
        "| evaluation set | " + " | ".join(_model(m, results) for m in models) + " |",
        "|---|" + "---|" * len(models),
    ]
    for label, cells in by_set.items():
        lines.append(
            f"| {label} | "
            + " | ".join("; ".join(c["verdicts"]) if (c := cells.get(m)) else DASH for m in models)
            + " |"
        )
    note = (
        "Stands after escalation: every check ran and none found more. Under-attacked: a stronger gradient attack "
        "of the ladder found more than the row's attack ((a) twice the iterations, (e) escalation): read the "
        "escalated accuracy. Masked: a sign of gradient masking ((b) large budget, (c) gradient-free or transfer, "
        "(d) random noise, or the sweep's own checks). Not established: what did not run. The evidence per cell "
        "is in the report's table of verdicts; what each check means: docs/flags.md."
    )
    return "\n".join(lines) + "\n\n" + note + "\n"


def averages(results: dict, manifest: dict) -> str:
    """The five-model averages beside the paper's, with and without flagged models."""
    lines = [
        "| paper row | ours | ours escalated | paper | paper inside ours | without flagged models |",
        "|---|---|---|---|---|---|",
    ]
    for a in results["averages"]:
        if a["ours"] is None:
            continue
        without = "as ours (none flagged)"
        if a["left_out"]:
            kept = a["without_left_out"]
            without = (
                "every model flagged"
                if kept is None
                else f"{_pct(kept)}"
                + (f", escalated {_pct(e)}" if (e := a["without_left_out_escalated"]) else "")
                + f"; paper {a['paper_without_left_out']:.2f}, inside: {'yes' if a['paper_inside_without'] else 'no'}"
                + f" (without {', '.join(_model(m, results) for m in a['left_out'])})"
            )
        lines.append(
            f"| {a['paper_row']} ({a['evaluation_set']}) | {_pct(a['ours'])} | {_pct(a['escalated'])} | "
            f"{a['paper']:.2f} | {'yes' if a['paper_inside_ours'] else 'no'} | {without} |"
        )
    note = (
        "In %: the mean of the five models' accuracies with its 95 % Wilson interval (with seeds, the average's "
        "lowest-highest over them); paper inside ours: whether the paper's mean lies in our interval (no: the "
        "data tell them apart). Without flagged models: the same without the models flagged untrained or "
        "possibly masked, beside the paper's mean of the same models."
    )
    return "\n".join(lines) + "\n\n" + note + "\n"


def certified(results: dict, manifest: dict) -> str:
    """Randomized smoothing: per model and sigma, certified beside attacked accuracy at each L2 radius."""
    lines = ["| model | sigma | clean (vote) | L2 radius | certified | attacked |", "|---|---|---|---|---|---|"]
    for c in results.get("certified", []):
        for i, r in enumerate(c["radii"]):
            head = [_model(c["model"], results), f"{c['sigma']:g}", _pct(c["clean_vote"])] if i == 0 else [""] * 3
            cells = [*head, f"{r['radius']:g}", _pct(r["certified"]), _pct(r["attacked"])]
            lines.append("| " + " | ".join(cells) + " |")
    note = (
        "Accuracy of the smoothed classifier in % with its 95 % Wilson interval. Certified: the share certified "
        "with the true class at a radius of at least r (a lower bound); attacked: the share still right after "
        "the attack at r (an upper bound). What any attack of that size leaves lies between the two."
    )
    return "\n".join(lines) + "\n\n" + note + "\n"


def setup(results: dict, manifest: dict) -> str:
    """The study's setup beside the paper's."""
    mine = manifest_setup(manifest)
    lines = ["| | this study | the paper |", "|---|---|---|"]
    lines += [f"| {k} | {mine[k]} | {v} |" for k, v in PAPER_SETUP.items()]
    return "\n".join(lines) + "\n"


def provenance(results: dict, manifest: dict) -> str:
    """Where the numbers come from: commit, data, machine, wall time."""
    data = "; ".join(
        f"{d['name']} from `{d.get('source', '')}` (digest {d['digest']}, {d.get('images', '?')} images)"
        for d in manifest["data"]
    )
    clean = "" if manifest["clean_tree"] else " (with uncommitted changes)"
    return (
        f"- commit: {', '.join(c[:10] for c in manifest['commits'])}{clean}; "
        f"{manifest['jobs']} jobs, {manifest['trainings']} trainings\n"
        f"- data: {data}\n"
        f"- machine: {'; '.join(manifest['machine']) or 'not recorded on these runs'}\n"
        f"- wall time: {wall_time_text(manifest['wall_time_seconds'])}\n"
    )


def table(results: dict, title: str) -> str:
    """One of the report's summary tables, as its page prints it (without its heading)."""
    found = {t["title"]: t for t in results.get("tables", [])}
    if title not in found:
        raise ValueError(f"the report has no table {title!r}; it has {sorted(found)}")
    return markdown.grid(Table(**found[title])) + "\n"


KINDS = {
    "table2": table2,
    "verdicts": verdicts,
    "averages": averages,
    "certified": certified,
    "setup": setup,
    "provenance": provenance,
}


def render(readme: Path, text: str) -> str:
    """The README's text with every generated region rendered from the files it names."""

    def one(match: re.Match) -> str:
        folder = readme.parent / match["folder"]
        kind = KINDS.get(match["kind"])
        quoted = match["kind"] == "table"
        if (kind is None and not quoted) or quoted != bool(match["title"]):
            raise ValueError(
                f"{readme}: a region is `<!-- generated: FOLDER KIND -->` with KIND one of {sorted(KINDS)}, or "
                f"`<!-- generated: FOLDER table: TITLE -->`; not {match['open'].strip()!r}"
            )
        results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
        if kind is None:
            return match["open"] + table(results, match["title"]) + match["close"]
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        return match["open"] + kind(results, manifest) + match["close"]

    return REGION.sub(one, text)


def refresh(path: Path) -> bool:
    """Rewrites the file's regions from the files they name; whether anything changed."""
    text = path.read_text(encoding="utf-8")
    new = render(path, text)
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="covid-robustness readme", description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="Markdown files with generated regions")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a region is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path in args.files:
        text = path.read_text(encoding="utf-8")
        try:
            new = render(path, text)
        except (OSError, ValueError, KeyError) as err:
            print(f"error: {path}: {err}", file=sys.stderr)
            sys.exit(2)
        if new != text:
            stale.append(path)
            if not args.check:
                path.write_text(new, encoding="utf-8")
    for path in stale:
        print(f"{path}: {'out of date' if args.check else 'regions rewritten'}")
    sys.exit(1 if stale and args.check else 0)
