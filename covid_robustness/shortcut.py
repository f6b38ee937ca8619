"""What the shortcut probes (probe.py) say: the probe names and the one verdict the console and the report give.

A probe solves the task without the lungs: `border` sees only a frame along the image's edges, `statistics`
sees no image at all, only its file's size, mode, format, bytes and grey-level mean and std. A probe that
comes close to the full model, or far above always answering the majority class, means the classes can be
told apart by where the images came from, not by the disease.
"""

PROBES = ("border", "statistics")  # probe=none: a normal job (train, attack)

# The thresholds of `verdict`, in accuracy (0.05 = 5 percentage points).
NEAR_FULL_MODEL = 0.05
ABOVE_CHANCE = 0.20


def probe_name(cfg) -> str:
    """The job's probe, "none" for a normal job (or a config composed without the probe group)."""
    return (cfg.get("probe") or {}).get("name", "none")


def verdict(full: float | None, probes: dict[str, float | None], chance: float) -> str:
    """One line on the probes' test accuracies (in [0, 1]) against the full model's and chance's.

    "shortcut: ..." when a probe reaches within NEAR_FULL_MODEL (5 points) of the full model, or more than
    ABOVE_CHANCE (20 points) above chance (the majority class's share of the test split); else "no strong
    shortcut found". The first rule counts only for a probe more than 5 points above chance: a full model that
    learned nothing is matched by a probe that learned nothing too, which reveals no shortcut. A probe or a
    full model that was not run (None) is left out.
    """
    found = []
    for name, accuracy in probes.items():
        if accuracy is None:
            continue
        above = accuracy - chance
        if full is not None and accuracy >= full - NEAR_FULL_MODEL and above > NEAR_FULL_MODEL:
            found.append(f"the {name} probe reaches {_pc(accuracy)} % (full model {_pc(full)} %)")
        elif above > ABOVE_CHANCE:
            found.append(f"the {name} probe reaches {_pc(accuracy)} %, {_pc(above)} points above chance")
    if not found:
        return "no strong shortcut found"
    return f"shortcut: {'; '.join(found)} (chance {_pc(chance)} %): the classes can be told apart without the lungs"


def verdict_table(rows: list[dict]) -> str:
    """Rows of {model, full, border, statistics, chance} (accuracies or None) as a table with a verdict each."""
    header = ("model", "full model %", "border probe %", "statistics probe %", "chance %")
    lines = [header]
    for r in rows:
        lines.append(
            (
                r["model"],
                "not run" if r["full"] is None else _pc(r["full"]),
                *("not run" if r[p] is None else _pc(r[p]) for p in PROBES),
                "–" if r["chance"] is None else _pc(r["chance"]),
            )
        )
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    text = ["  ".join(str(v).ljust(w) for v, w in zip(line, widths)).rstrip() for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    for r in rows:
        if r["chance"] is not None:
            text.append(f"{r['model']}: {verdict(r['full'], {p: r[p] for p in PROBES}, r['chance'])}")
    return "\n".join(text)


def _pc(value: float) -> str:
    return f"{100 * value:.1f}"
