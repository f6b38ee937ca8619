"""Evaluation sets: the jobs that measure one thing, whatever the model and the seed.

Two jobs belong to one evaluation set (a row of Table II, a column of the defense tables) when every
param that can change their numbers agrees, except the model (each model is a column), the seed (repeats
of one measurement, which the report aggregates) and the defense and transfer source (dimensions of
tables of their own). A set is labelled by its attack and budget, its setting label and the params in
which it differs from the other sets of the same attack, so runs need no invented label to stay apart.
"""

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import PurePath
from statistics import mean

from ..record import Job, Metrics, Params, numbers_params
from ..record.budget import written
from ..record.sections import (
    ATTACK,
    DEFENSE,
    ESCALATION,
    FOLDERS,
    LOGGED_WHEN_ON,
    MODEL,
    MODEL_TRAINING_SETTINGS,
    TRAINER,
    is_training_param,
    within,
)
from .labels import ATTACKS, Labels

MISSING = "–"  # a param one run logged and another did not
# Settings a job logs only when they are on (no corruption, no external set): missing means off, not shown.
# An untargeted attack's target_class (None) is read as missing too (settings()).
SHOWN_WHEN_ON = (*LOGGED_WHEN_ON, Params.TARGET_CLASS)

SETTINGS = {"budget": "", "art_default": "ART default", "art_rule": "ART's rule", "paper": "paper setting"}

# Set apart: each model is a column, seeds are aggregated, defenses and transfer sources have their own tables,
# and how a cell was escalated changes its escalated accuracy, never the row's own number (a seed whose ladder
# transfers from fewer models is a seed of the same row).
APART = {Params.SEED, Params.SOURCE_MODEL, *ESCALATION}
APART_PREFIXES = (f"{MODEL}.", f"{DEFENSE}.")
# Training settings a model config may carry (conf/model/vgg19.yaml's gradient clipping): at the model's
# own value they belong to its column, not to a row; set otherwise (for every model, say) they label one.
MODEL_OWN = {f"{TRAINER}.{name}": f"{MODEL}.{name}" for name in MODEL_TRAINING_SETTINGS}
# In the label already: the attack, its setting label, implementation and budget.
IN_LABEL = {
    Params.ATTACK,
    Params.SETTING,
    Params.IMPL,
    Params.EPS,
    Params.EPS_UNIT,
    Params.MAX_ROTATION,
    Params.MAX_TRANSLATION,
}
ATTACK_PARAM = f"{ATTACK}."  # an attack's own params are labelled without their section


def settings(job: Job) -> dict[str, str]:
    """The params that can change the job's numbers, less the model, seed, defense and source (and an
    untargeted attack's target_class, None: off, and the split's seed where it is the job's), and a training
    setting at the model's own value."""
    return {
        k: v
        for k, v in numbers_params(job.params).items()
        if k not in APART
        and not k.startswith(APART_PREFIXES)
        and not (k == Params.TARGET_CLASS and v == "None")
        and not (k in MODEL_OWN and v == job.params.get(MODEL_OWN[k]))
        and not (k == Params.DATA_SEED and v == job.params.get(Params.SEED, "0"))  # a seed draws its own split
    }


def key(job: Job) -> tuple:
    """The job's evaluation set."""
    return tuple(sorted(settings(job).items()))


def training_settings(job: Job) -> tuple:
    """The settings its trained model depends on, less the model and seed: what a clean row groups by."""
    return tuple(sorted((k, v) for k, v in settings(job).items() if is_training_param(k)))


def shown_value(param: str, value: str) -> str:
    """A param's value as a page shows it: a folder of the machine that ran the job by its name only."""
    return PurePath(value).name if param in FOLDERS and value.startswith("/") else value


def shown_uri(uri: str) -> str:
    """A tracking URI as a page shows it: an embedded store by its folder's name, a server as it is."""
    if uri.startswith("sqlite:///"):
        path = PurePath(uri.removeprefix("sqlite:///"))
        return f"sqlite:///<...>/{path.parent.name}/{path.name}"
    return uri


def differing(
    sets: dict, neighbours: Callable[[dict], str] = lambda s: "", setting: Callable[[dict], str] = lambda s: ""
) -> dict:
    """Per set (key: its params), "name=value" for each param in which it differs from its neighbours.

    An attack param that differs only between sets of different setting labels is left out: the label
    (ART default, the paper's grid) names it.
    """
    groups = defaultdict(list)
    for k, params in sets.items():
        groups[neighbours(params)].append(k)
    out = {}
    for members in groups.values():
        names = sorted(
            {p for k in members for p in sets[k]} - IN_LABEL, key=lambda p: (not p.startswith(ATTACK_PARAM), p)
        )
        for k in members:
            mine, shown = sets[k], []
            for p in names:
                peers = [
                    sets[o] for o in members if not p.startswith(ATTACK_PARAM) or setting(sets[o]) == setting(mine)
                ]
                if len({s.get(p, MISSING) for s in peers}) > 1 and (p in mine or not within(p, SHOWN_WHEN_ON)):
                    shown.append(f"{p.removeprefix(ATTACK_PARAM)}={shown_value(p, mine.get(p, MISSING))}")
            out[k] = shown
    return out


@dataclass(frozen=True)
class EvalSet:
    key: tuple
    attack: str
    setting: str
    impl: str
    eps: float | None  # as configured, in eps_unit
    eps_unit: str
    eps_pixel: float | None  # the budget on [0, 1] pixels that the attack used
    eps_std: float | None  # the same in standard deviations of the training pixels
    label: str  # "PGD eps=8/255 (max_iter=50)"
    name: str  # the same without the budget: names a sweep over eps

    @property
    def l2(self) -> bool:
        """Whether the budget bounds an L2 ball (attack.norm=2) rather than an L-inf one."""
        return dict(self.key).get(Params.NORM) == "2"

    @property
    def sweep(self) -> tuple | None:
        """Sets that differ only in their budget share this; None without an L-inf budget."""
        return None if self.eps is None or self.l2 else tuple(kv for kv in self.key if kv[0] != Params.EPS)

    @property
    def order(self) -> tuple:
        return (*evaluation_order(self.attack, self.setting, self.eps_pixel, self.impl), self.label)


def evaluation_order(attack: str, setting: str, eps: float | None, impl: str) -> tuple:
    """Sort key of an evaluation set: attacks and settings in the report's order, then budget, implementation."""
    attacks, labels = list(ATTACKS), list(SETTINGS)
    return (
        attacks.index(attack) if attack in attacks else len(attacks),
        attack,
        labels.index(setting) if setting in labels else len(labels),
        setting,
        -1.0 if eps is None else eps,
        impl,
    )


def _metric(jobs: list[Job], name: str) -> float | None:
    values = [j.metrics[name] for j in jobs if name in j.metrics]
    return mean(values) if values else None


def budget(attack: str, params: dict[str, str], eps: float | None, eps_pixel: float | None) -> str:
    """The budget as the label states it: eps in its unit (with its pixel value for std), or ST's grid."""
    if attack == "st":
        return (
            f"rot ±{float(params.get(Params.MAX_ROTATION, 'nan')):g}°, "
            f"shift ±{float(params.get(Params.MAX_TRANSLATION, 'nan')):g}%"
        )
    if eps is None:
        return "unbounded" if attack in ("cw", "cw_l2") else ""
    if params.get(Params.NORM) == "2":  # an L2 length, in its unit
        unit = params.get(Params.EPS_UNIT, "pixel")
        return f"L2 eps={eps:g}" + (" std" if unit == "std" else "")
    return f"eps={written(eps, params.get(Params.EPS_UNIT, 'pixel'), eps_pixel)}"


def describe(
    labels: Labels, attack: str, setting: str, impl: str, extras: Iterable[str] = (), budget_text: str = ""
) -> str:
    """ "FGSM eps=0.3 std = 17.7/255 (ART default)", "PGD eps=8/255 (max_iter=50)", "C&W unbounded [fast]"."""
    named = "" if setting in (None, "", "None") else SETTINGS.get(setting, setting)  # a yaml without setting:
    notes = [n for n in (named, *extras) if n]
    return " ".join(
        p
        for p in (
            labels.attack(attack),
            budget_text,
            f"({', '.join(notes)})" if notes else "",
            f"[{impl}]" if impl != "art" else "",
        )
        if p
    )


def evaluation_sets(jobs: Iterable[Job], labels: Labels) -> dict[tuple, EvalSet]:
    """Every evaluation set of the jobs, labelled against the other sets of the same attack."""
    members: dict[tuple, list[Job]] = defaultdict(list)
    for job in jobs:
        members[key(job)].append(job)
    extras = differing(
        {k: dict(k) for k in members},
        neighbours=lambda s: s.get(Params.ATTACK, ""),
        setting=lambda s: s.get(Params.SETTING, ""),
    )
    sets = {}
    for k, group in members.items():
        first, params = group[0], dict(k)
        unit = params.get(Params.EPS_UNIT, "pixel")
        eps_pixel = _metric(group, Metrics.EPS_PIXEL)
        if eps_pixel is None and unit == "pixel":
            eps_pixel = first.eps
        text = budget(first.attack, params, first.eps, eps_pixel)
        # A sweep's name says its unit, since eps_unit is in the labels' budget, not among the extras.
        name_extras = [*extras[k], *(["eps in std"] if unit == "std" else [])]
        sets[k] = EvalSet(
            k,
            first.attack,
            first.setting,
            first.impl,
            first.eps,
            unit,
            eps_pixel,
            _metric(group, Metrics.EPS_STD),
            describe(labels, first.attack, first.setting, first.impl, extras[k], text),
            describe(labels, first.attack, first.setting, first.impl, name_extras),
        )
    return sets
