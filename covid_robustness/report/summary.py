"""The study as the paper's Table II lays it out: one row per evaluation set, one value per model.

The paper ran ART's FGSM, PGD and C&W at ART's default settings and its spatial transformation attack
on its own rotation and translation grid, so each paper row is compared with our row of that setting.
"""

from dataclasses import dataclass, field

from .collect import Job, Study

# Model names and the paper's column order.
MODELS = {"resnet18": "RN-18", "resnet50": "RN-50", "wrn16_8": "WRN-16-8", "vgg19": "VGG-19", "inception_v3": "Inc-v3"}
ATTACKS = {"fgsm": "FGSM", "pgd": "PGD", "apgd": "APGD", "autoattack_binary": "AutoAttack-2", "cw": "C&W", "st": "ST"}
SETTINGS = {"budget": "", "art_default": "ART default", "paper": "paper setting"}
CLEAN = "clean"

# Table II of the paper, accuracy in %, in the order of MODELS.
PAPER_TABLE2 = {
    CLEAN: (93.52, 98.35, 99.56, 97.04, 95.39),
    "fgsm": (51.9, 63.11, 38.1, 24.84, 27.88),
    "pgd": (18.48, 40.56, 30.65, 19.06, 18.77),
    "cw": (38.63, 53.28, 56.3, 58.71, 43.81),
    "st": (56.31, 46.65, 59.39, 65.64, 53.9),
}
PAPER_SETTING = {"fgsm": "art_default", "pgd": "art_default", "cw": "art_default", "st": "paper"}


@dataclass
class Row:
    """One evaluation set: accuracy and COVID-19 sensitivity per model, as fractions."""
    label: str
    attack: str  # CLEAN for the clean test split
    setting: str = ""
    eps: float | None = None
    impl: str = ""
    accuracy: dict[str, float] = field(default_factory=dict)
    sensitivity: dict[str, float] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)  # empty for the clean row

    @property
    def paper(self) -> dict[str, float]:
        """The paper's accuracy (%) per model, where this row is the one the paper's row compares with."""
        if self.attack != CLEAN and PAPER_SETTING.get(self.attack) != self.setting:
            return {}
        return dict(zip(MODELS, PAPER_TABLE2.get(self.attack, ())))

    @property
    def paper_row(self) -> str:
        return ("Clean" if self.attack == CLEAN else ATTACKS[self.attack]) if self.paper else ""


def model_order(models) -> list[str]:
    """The paper's column order, then any model it did not have."""
    return [m for m in MODELS if m in models] + sorted(set(models) - set(MODELS))


def model_label(model: str) -> str:
    return MODELS.get(model, model)


def eps_label(eps: float) -> str:
    """8/255 where eps is a whole number of grey levels (as ${px:8} writes it), else the number."""
    levels = eps * 255
    return f"{round(levels)}/255" if abs(levels - round(levels)) < 0.02 else f"{eps:g}"


def row_label(job: Job) -> str:
    parts = [ATTACKS.get(job.attack, job.attack.upper())]
    if job.attack == "st":  # its budget is the transform grid
        p = job.params
        parts.append(f"rot ±{float(p['attack.max_rotation']):g}°, shift ±{float(p['attack.max_translation']):g}%")
    elif job.eps is not None:
        parts.append(f"eps={eps_label(job.eps)}")
    elif job.attack == "cw":
        parts.append("unbounded")
    setting = SETTINGS.get(job.setting, job.setting)
    if setting:
        parts.append(f"({setting})")
    if job.impl != "art":
        parts.append(f"[{job.impl}]")
    return " ".join(parts)


def evaluation_order(attack: str, setting: str, eps: float | None, impl: str) -> tuple:
    """Sort key of an evaluation set: attacks and settings in the report's order, then budget, implementation."""
    attacks, settings = list(ATTACKS), list(SETTINGS)
    return (attacks.index(attack) if attack in attacks else len(attacks), attack,
            settings.index(setting) if setting in settings else len(settings), setting,
            -1.0 if eps is None else eps, impl)


def _order(row: Row) -> tuple:
    return evaluation_order(row.attack, row.setting, row.eps, row.impl)


def newest_job_per_model(study: Study) -> dict[str, Job]:
    """Per model, its newest job without defense or transfer (the paper's setting), else its newest job."""
    newest: dict[str, Job] = {}
    for job in study.jobs:  # newest first
        if job.plain:
            newest.setdefault(job.model, job)
    for job in study.jobs:
        newest.setdefault(job.model, job)
    return newest


def rows(study: Study) -> list[Row]:
    """The clean row, then one row per attack setting, then the paper's rows this study did not run.

    Only jobs in the paper's setting (no defense, examples crafted on the model itself); defenses and
    transfer attacks have tables of their own.
    """
    clean = Row("Clean (whole test split)", CLEAN)
    for model, job in newest_job_per_model(study).items():
        clean.accuracy[model] = job.metrics["test/acc"]
        clean.sensitivity[model] = job.metrics["test/sensitivity"]
    attacked: dict[tuple, Row] = {}
    for job in study.jobs:
        if not job.plain:
            continue
        key = (job.attack, job.setting, job.eps, job.impl)
        row = attacked.setdefault(key, Row(row_label(job), *key))
        row.accuracy[job.model] = job.metrics["adversarial_accuracy"]
        row.sensitivity[job.model] = job.metrics["covid_sensitivity_adversarial"]
        row.jobs[job.model] = job
    compared = {row.attack for row in attacked.values() if row.paper}
    missing = [Row(f"{ATTACKS[a]} ({SETTINGS[s]}): not in this study", a, s)
               for a, s in PAPER_SETTING.items() if a not in compared]
    return [clean, *sorted(attacked.values(), key=_order), *missing]
