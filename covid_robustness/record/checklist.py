"""Carlini et al.'s checklist ("On Evaluating Adversarial Robustness", 2019) as automatic checks of one cell,
read from what its escalation measured (evaluation/escalation.py), and the verdict they give.

Over the ladder's images (n, the first attacked images, escalation_images), of which the cell's attack
left s standing; "beyond the interval" means below the lower end of the 95 % Wilson interval of the
accuracy it is compared with:
- (a) twice the iterations: the cell's own attack with twice its iterations leaves fewer images standing
  than s, beyond the interval of s / n (attacks with iterations only);
- (b) large budget: APGD-CE at 64/255 (escalation.LARGE_BUDGET, or the cell's budget if larger) on the s
  standing images leaves one of them standing: a gradient that leads anywhere crosses a ball that large;
- (c) gradient-free or transfer: Square and the transfers break images that every gradient stage left
  standing, beyond the interval of what the gradient stages left;
- (d) random noise: random signs of the budget's size leave more than one image fewer correct than the
  cell's attack (s);
- (e) escalation: the ladder leaves fewer images than s, beyond the interval of s / n.

(b), (c) and (d) are signs of gradient masking: the gradient does not lead where an image of the other class
lies, or other means find what it hides. (a) and (e) alone are not: a stronger gradient attack found what
the cell's attack did not (FGSM's one step against APGD, say), so the cell's attack under-reported and its
number overstates robustness, but the gradient did lead the way.

A verdict per cell: "masked (...)" names every check that flagged it where (b), (c), (d) or the sweep's own
checks (record/masking.py: "sweep") are among them; "under-attacked (...)" where only (a) or (e) flagged
it (read the escalated accuracy); "stands after escalation" when every check ran and none flagged; "not
established (...)" names what was not run. The verdict is computed from the job's record, so a report
reads every job the same way whenever its sweep ran.
"""

from dataclasses import dataclass

from . import RADIUS, Job, Metrics
from .intervals import wilson
from .sections import ESCALATE

FLAGGED, PASSED, NOT_RUN, NOT_APPLICABLE = "flagged", "passed", "not run", "n/a"
STANDS, MASKED, NOT_ESTABLISHED = "stands after escalation", "masked", "not established"
UNDER_ATTACKED = "under-attacked"
MASKING_CHECKS = ("b", "c", "d")  # signs of a hidden gradient; (a) and (e) alone say the attack under-reported
GRADIENT_STAGES = ("noise", "twice_iterations", "apgd_ce", "apgd_margin")
OTHER_STAGES = ("square", "transfer")


@dataclass(frozen=True)
class Check:
    letter: str
    name: str
    state: str  # FLAGGED, PASSED, NOT_RUN or NOT_APPLICABLE
    evidence: str

    def __str__(self) -> str:
        return f"({self.letter}) {self.name}: {self.evidence}"


def _pct(k: float, n: float) -> str:
    return f"{100 * k / n:.1f} %" if n else "n/a"


def _low(k: float, n: float) -> float:
    """The lower end of the Wilson interval of k / n, in images."""
    return wilson(k, n)[0] * n


def broken(job: Job, stage: str) -> float | None:
    """The images a stage of the job's ladder broke; None where the stage did not run."""
    return job.metrics.get(f"{Metrics.ESCALATION}{stage}_broken")


def escalated(job: Job) -> bool:
    return Metrics.ESCALATED in job.metrics


def escalation_asked(job: Job) -> bool:
    return str(job.params.get(ESCALATE, "false")).lower() == "true"


def checklist(job: Job) -> list[Check]:
    """The five checks of an escalated job (an empty list for a job that was not escalated)."""
    if not escalated(job):
        return []
    m = job.metrics
    n, s = m[Metrics.ESCALATION_IMAGES], m[Metrics.ESCALATION_STANDING]
    label = job.attack_label or job.attack
    checks = []

    twice = broken(job, "twice_iterations")
    if twice is None:
        checks.append(Check("a", "twice the iterations", NOT_APPLICABLE, f"{label} takes one step"))
    else:
        state = FLAGGED if s - twice < _low(s, n) else PASSED
        evidence = f"twice the iterations broke {twice:.0f} of {s:.0f} standing images ({_pct(s - twice, n)} left)"
        checks.append(Check("a", "twice the iterations", state, evidence))

    if Metrics.CHECK_LARGE_BUDGET in m:
        left, budget = m[Metrics.CHECK_LARGE_BUDGET], m[Metrics.CHECK_LARGE_BUDGET_EPS]
        state = FLAGGED if left > 0 else PASSED
        evidence = f"APGD-CE at {255 * budget:.0f}/255 leaves {_pct(left * n, n)} of {n:.0f} images correct"
        checks.append(Check("b", "large budget", state, evidence))
    else:
        checks.append(Check("b", "large budget", NOT_RUN, "no large-budget attack was run"))

    others = [stage for stage in OTHER_STAGES if broken(job, stage) is not None]
    if others:
        left = s - sum(broken(job, stage) or 0.0 for stage in GRADIENT_STAGES)
        beaten = sum(broken(job, stage) for stage in others)
        state = FLAGGED if left - beaten < _low(left, n) else PASSED
        evidence = f"{' and '.join(others)} broke {beaten:.0f} of the {left:.0f} images the gradient stages left"
        checks.append(Check("c", "gradient-free or transfer", state, evidence))
    else:
        checks.append(Check("c", "gradient-free or transfer", NOT_RUN, "neither Square nor a transfer ran"))

    if Metrics.CHECK_NOISE in m:
        noise = m[Metrics.CHECK_NOISE] * n
        state = FLAGGED if noise < s - 1 else PASSED
        evidence = f"random signs leave {_pct(noise, n)} correct, {label} {_pct(s, n)}"
        checks.append(Check("d", "random noise", state, evidence))
    else:
        checks.append(Check("d", "random noise", NOT_RUN, "no noise was drawn"))

    alive = m[Metrics.ESCALATED] * n
    lo, hi = wilson(s, n)
    state = FLAGGED if alive < lo * n else PASSED
    evidence = (
        f"escalated {_pct(alive, n)} vs {label}'s {_pct(s, n)} [{100 * lo:.1f}, {100 * hi:.1f}] on {n:.0f} images"
    )
    checks.append(Check("e", "escalation", state, evidence))
    return checks


def flags(job: Job) -> list[str]:
    """The checklist's signs of gradient masking in the job, one line each: checks (b), (c), (d) that flagged."""
    return [str(c) for c in checklist(job) if c.state == FLAGGED and c.letter in MASKING_CHECKS]


def verdict(job: Job, reasons: list[str]) -> tuple[str, str]:
    """The verdict on a job's number and its evidence; reasons: the job's masking reasons (the checklist's
    and the sweep's own). ("", "") for a job without a budget to escalate at (ST, attack=none, targeted)."""
    checks = checklist(job)
    evidence = "; ".join(dict.fromkeys([*reasons, *map(str, checks)]))  # the flags first, then every check
    if not checks:
        nothing = job.eps is None or job.target_class is not None or job.attack == RADIUS or job.norm != float("inf")
        if escalation_asked(job) or nothing:
            return "", ""  # nothing to escalate at (ST, attack=none, targeted, the radius search, an L2 ball)
        if reasons:  # the sweep's own checks flagged it, escalated or not
            return f"{MASKED} (sweep)", evidence
        return f"{NOT_ESTABLISHED} (no escalation run)", evidence
    letters = [c.letter for c in checks if c.state == FLAGGED]
    masking = [x for x in letters if x in MASKING_CHECKS]
    if len(reasons) > len(masking):  # the sweep's own checks flagged it too
        letters.append("sweep")
        masking.append("sweep")
    if masking:
        return f"{MASKED} ({', '.join(letters)})", evidence
    if letters:
        return f"{UNDER_ATTACKED} ({', '.join(letters)})", evidence
    missing = [c.name for c in checks if c.state == NOT_RUN]
    if missing:
        return f"{NOT_ESTABLISHED} ({', '.join(missing)} not run)", evidence
    return STANDS, evidence


def recorded_verdict(job: Job) -> tuple[str, str]:
    """The verdict the job's record gives, with its masking reasons (those the report or the sweep computed).
    The tag the sweep wrote (Tags.VERDICT) is what the checks said then; this is what they say now."""
    return verdict(job, job.masking_reasons.split("; ") if job.masking_reasons else [])


def stage_breaks(job: Job) -> dict[str, float]:
    """The images each stage of the job's ladder broke, by stage, in the order they ran."""
    prefix, suffix = Metrics.ESCALATION, "_broken"
    return {
        k[len(prefix) : -len(suffix)]: v for k, v in job.metrics.items() if k.startswith(prefix) and k.endswith(suffix)
    }
