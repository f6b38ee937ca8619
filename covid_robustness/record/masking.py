"""Signs of gradient masking across the jobs that attacked one trained model.

A gradient-based attack that looks weak is more often broken than the model robust (Carlini et al.
2019, "On Evaluating Adversarial Robustness"). None of these is a theorem: a stronger attack follows the
same gradient for longer or more cleverly, so it should not leave more images correct than a weaker one.
PGD does not contain FGSM: ART's PGD has no random start and steps 2.5 eps / max_iter by default here
(a quarter of FGSM's step at 10 steps); it is expected to do at least as well because its iterates
follow the gradient across the same ball. Each check allows one image of slack:
- accuracy rises with eps between any two budgets of one attack setting (a larger ball holds the smaller);
- at one eps, a stronger evaluation leaves more images correct than a weaker one: FGSM < PGD < APGD <
  AutoAttack-2, fewer steps < more steps of one attack, and within a defended job oblivious < bpda,
  bpda_eot (the attacker who sees the defense);
- a gradient attack at eps >= 1 leaves images correct (the ball then holds every image);
- a gradient attack fools nothing on a model that predicts one class: no success says nothing there.
Only jobs with the same attacked images and context (test-time defense, transfer source) are compared.
An escalated job adds the checklist's flags (checklist.py), which read its own escalation.
"""

from collections import defaultdict
from dataclasses import dataclass

from . import Job, Metrics
from .checklist import flags as checklist_flags
from .sections import is_evaluation_param

FULL_BALL_ACCURACY = 0.1
# Weaker to stronger at one budget; an attack of each name with more steps is stronger.
ORDER = ("fgsm", "pgd", "apgd", "autoattack_binary")
NAMES = {"fgsm": "FGSM", "pgd": "PGD", "apgd": "APGD", "autoattack_binary": "AutoAttack-2"}
GRADIENT_ATTACKS = (*ORDER, "cw")
# Per-evaluation accuracies of a defended job: the stronger evaluations see the defense.
STRONGER_EVALUATIONS = {"bpda": "oblivious", "bpda_eot": "oblivious"}


@dataclass(frozen=True)
class Result:
    run_id: str
    attack: str
    settings: str  # every attack and evaluation setting but eps, to compare like with like
    eps: float | None
    accuracy: float  # per image the worst case over the job's evaluations
    images: int
    context: str = ""  # e.g. the test-time defense: only jobs of one context are compared
    clean_accuracy: float | None = None
    max_iter: int | None = None
    untrained: bool = False  # the model is no better than always answering the majority class
    by_evaluation: tuple[tuple[str, float], ...] = ()  # (evaluation, accuracy) of a defended job
    norm: float = float("inf")  # the ball's norm: budgets of different norms are not compared


def _label(r: Result) -> str:
    return NAMES.get(r.attack, r.attack) + ("" if r.max_iter is None else f"-{r.max_iter}")


def _weaker(a: Result, b: Result) -> bool:
    """Whether a should leave at least as many images correct as b at one budget. A stronger attack with
    fewer steps than the weaker one is not compared (APGD-20 need not beat PGD-100)."""
    if a.attack not in ORDER or b.attack not in ORDER:
        return False
    steps = a.max_iter is not None and b.max_iter is not None
    if a.attack == b.attack:
        return steps and a.max_iter < b.max_iter
    return ORDER.index(a.attack) < ORDER.index(b.attack) and not (steps and a.max_iter > b.max_iter)


def masking_flags(results: list[Result]) -> dict[str, list[str]]:
    """Reasons per run id; runs without a reason are not listed."""
    flags: dict[str, list[str]] = defaultdict(list)
    by_settings, by_budget = defaultdict(list), defaultdict(list)
    for r in results:
        if r.eps is not None:
            by_settings[(r.attack, r.settings)].append(r)
            by_budget[(r.eps, r.norm, r.images, r.context)].append(r)
    for (attack, _), group in by_settings.items():
        for hi in group:
            lo = min((r for r in group if r.eps < hi.eps), key=lambda r: r.accuracy, default=None)
            if lo is not None and hi.accuracy > lo.accuracy + 1 / hi.images:
                flags[hi.run_id].append(
                    f"{attack} accuracy rises with eps: {lo.accuracy:.3f} at {lo.eps:.4f}, "
                    f"{hi.accuracy:.3f} at {hi.eps:.4f}"
                )
    for group in by_budget.values():
        for strong in group:
            weak = min((r for r in group if _weaker(r, strong)), key=lambda r: r.accuracy, default=None)
            if weak is not None and strong.accuracy > weak.accuracy + 1 / strong.images:
                flags[strong.run_id].append(
                    f"{_label(strong)} accuracy {strong.accuracy:.3f} above {_label(weak)}'s "
                    f"{weak.accuracy:.3f} at eps {strong.eps:.4f}"
                )
    for r in results:
        if r.attack not in GRADIENT_ATTACKS:
            continue
        if r.eps is not None and r.norm == float("inf") and r.eps >= 1 and r.accuracy > FULL_BALL_ACCURACY:
            flags[r.run_id].append(f"{_label(r)} accuracy {r.accuracy:.3f} at eps {r.eps}: the ball holds every image")
        if r.untrained and r.clean_accuracy is not None and r.accuracy >= r.clean_accuracy:
            flags[r.run_id].append(
                f"{_label(r)} fooled no image ({r.accuracy:.3f} = clean accuracy), but the model "
                "predicts one class: zero attack success says nothing about robustness"
            )
        evaluations = dict(r.by_evaluation)
        for strong, weak in STRONGER_EVALUATIONS.items():
            if strong in evaluations and weak in evaluations and evaluations[strong] > evaluations[weak] + 1 / r.images:
                flags[r.run_id].append(
                    f"{strong} accuracy {evaluations[strong]:.3f} above {weak}'s "
                    f"{evaluations[weak]:.3f}: the attacker who sees the defense does worse"
                )
    return dict(flags)


def result(job: Job) -> Result:
    """What the checks compare of a job record."""
    settings = sorted((k, v) for k, v in job.params.items() if is_evaluation_param(k) and k != "attack.eps")
    return Result(
        job.run_id,
        job.attack,
        str(settings),
        job.eps_pixel,
        job.metrics[Metrics.ADVERSARIAL],
        int(job.metrics[Metrics.IMAGES]),
        job.context,
        clean_accuracy=job.metrics.get(Metrics.CLEAN),
        max_iter=job.max_iter,
        untrained=job.untrained,
        by_evaluation=tuple(sorted(job.by_evaluation.items())),
        norm=job.norm,
    )


def study_flags(jobs: list[Job]) -> dict[str, list[str]]:
    """Reasons per run id over the jobs of each trained model (jobs: one per cell), the checklist's last."""
    by_training = defaultdict(list)
    for job in jobs:
        by_training[job.training_run_id].append(result(job))
    flags = defaultdict(list)
    for group in by_training.values():
        for run_id, reasons in masking_flags(group).items():
            flags[run_id] += reasons
    for job in jobs:
        if reasons := checklist_flags(job):
            flags[job.run_id] += reasons
    return dict(flags)
