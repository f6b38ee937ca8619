"""A run as MLflow holds it and as the code reads it: the names a job writes, and a typed record.

MLflow stores params as strings (None as "None", lists as "[...]"); this module is the one place
that turns them back into values. Jobs write through tracking.Tracker with these names; the masking
checks, resume and the report read `Job` records.
"""

import ast
import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from . import sections
from .sections import is_numbers_param

# Run roles (tag "role").
TRAINING_ROLE = "training"
JOB_ROLE = "attack"
REPORT_ROLE = "report"
PROBE_ROLE = "probe"  # a shortcut probe's result (probe.py)


class Tags:
    ROLE = "role"
    PARENT = "mlflow.parentRunId"
    COMMIT = "mlflow.source.git.commit"
    OVERRIDES = "hydra.overrides"
    MODEL = "model"
    MODEL_LABEL = "model_label"
    TRAINING = "training"  # plain or adversarial (method)
    TRAINING_KEY = "training_key"
    CELL_KEY = "cell_key"
    CHECKPOINT = "checkpoint"
    RESUMED = "resumed"  # on a training run that went on from its last finished epoch: the epochs it had
    ATTACK = "attack"
    ATTACK_LABEL = "attack_label"
    SETTING = "setting"
    DEFENSE = "defense"
    SOURCE_TRAINING_RUN = "source_training_run"
    EVALUATION = "evaluation"
    STRONGEST_EVALUATION = "strongest_evaluation"
    UNTRAINED = "untrained_model"
    UNTRAINED_REASON = "untrained_model_reason"
    MASKING = "gradient_masking"
    MASKING_REASONS = "gradient_masking_reasons"
    VERDICT = "verdict"  # on an escalated job's number (record/checklist.py)
    VERDICT_EVIDENCE = "verdict_evidence"
    ERROR = "error"
    THREADS = "cpu_threads"  # the CPU threads a job computed with (its allocation's, under SLURM)
    MACHINE = "machine"  # its CPU model, cores and GPU (tracking.machine)
    VERSIONS = "library_versions"  # Python's and the libraries' (tracking.versions)
    PROBE = "probe"  # border or statistics, on a probe's run and on a border probe's training run
    # On a report's summary run (role report): the newest of the study's is current, the older ones name it.
    CURRENT = "current"
    SUPERSEDED_BY = "superseded_by"
    JOBS = "jobs"  # how many job runs the report used


class Params:
    """The flattened config settings (section.key) the run record and the report read."""

    MODEL = f"{sections.MODEL}.name"
    ATTACK = f"{sections.ATTACK}.name"
    SETTING = f"{sections.ATTACK}.setting"  # the attack's setting label (budget, art_default, ...)
    IMPL = f"{sections.ATTACK}.impl"
    EPS = f"{sections.ATTACK}.eps"
    DATA_SEED = f"{sections.DATA}.seed"  # the split's draw: the job's seed (conf/data/folder.yaml), unless set apart
    EPS_UNIT = f"{sections.ATTACK}.eps_unit"
    NORM = f"{sections.ATTACK}.norm"  # inf (absent in older runs) or 2
    MAX_ITER = f"{sections.ATTACK}.max_iter"
    MAX_ROTATION = f"{sections.ATTACK}.max_rotation"  # the spatial attack's grid
    MAX_TRANSLATION = f"{sections.ATTACK}.max_translation"
    SOURCE_MODEL = f"{sections.ATTACK}.source_model"
    TARGET_CLASS = f"{sections.ATTACK}.target_class"
    DEFENSE = f"{sections.DEFENSE}.name"
    CORRUPTION = f"{sections.CORRUPTION}.name"
    SEED = sections.SEED
    DATA_SOURCE = f"{sections.DATA}.source"
    TASK = f"{sections.DATA}.task"
    IMAGE_SIZE = f"{sections.DATA}.image_size"
    MAX_EPOCHS = f"{sections.TRAINER}.max_epochs"
    MAX_IMAGES = f"{sections.EVAL}.max_images"


# The operating points a job chooses on the validation split (evaluation/operating_point.py), in tables' order.
OPERATING_POINTS = ("sens95", "youden")


class Metrics:
    CLEAN = "clean_accuracy"
    ADVERSARIAL = "adversarial_accuracy"
    PER_EVALUATION = "adversarial_accuracy_"  # + evaluation name
    IMAGES = "attack_images"
    EPS_PIXEL = "eps_pixel"
    EPS_STD = "eps_std"  # the budget in standard deviations of the training pixels
    NORMALISATION_STD = "normalisation_std"  # the model's std, which converts one unit into the other
    PARAMETERS = "model_parameters"
    PARAMETERS_WITH_STATS = "model_parameters_with_bn_stats"
    PAPER_PARAMETERS = "paper_parameters"
    TRAINING_SECONDS = "training_seconds"  # on a training run
    # On a training run: passes through the network per training image (attack steps included), its cost
    # whatever the machine's load
    TRAINING_PASSES_PER_IMAGE = "training_passes_per_image"
    VAL_ACCURACY = "val/acc"  # on a training run: its last epoch's
    TEST = "test/"  # + name: the test loop's metrics of the bare model on the whole test split
    TEST_ACCURACY = TEST + "acc"
    TEST_SENSITIVITY = TEST + "sensitivity"  # of COVID-19 against the rest
    TEST_SPECIFICITY = TEST + "specificity"
    TEST_AUROC = TEST + "auroc"
    THRESHOLD = "threshold_"  # + operating point: its threshold, chosen on the validation split
    # Under attack, among the images the model got right clean (evaluation/evaluate.py).
    ATTACK_SUCCESS = "attack_success_rate"  # the share the attack turned wrong
    TARGETED_SUCCESS = "targeted_success_rate"  # a targeted attack: the share it turned into its target
    MISSED_COVID = "missed_covid_rate"  # COVID-19 images turned to another class
    FALSE_ALARM = "false_alarm_rate"  # other images turned to COVID-19
    SENSITIVITY_CLEAN = "covid_sensitivity_clean"
    SENSITIVITY_ADVERSARIAL = "covid_sensitivity_adversarial"
    # The perturbations' sizes, and the attack's cost (passes: per attacked image).
    LINF_MEAN = "linf_mean"
    LINF_MAX = "linf_max"
    L2_MEAN = "l2_mean"
    L2_MAX = "l2_max"
    SECONDS = "attack_seconds"  # all images
    FORWARD_PASSES = "attack_forward_passes"
    BACKWARD_PASSES = "attack_backward_passes"
    # Calibration (evaluation/calibration.py), each + "_clean" and + "_adversarial".
    ECE = "ece"
    BRIER = "brier"
    CONFIDENT_ERRORS = "confident_error_share"
    # The untrained-model check and a defense's clean reading of the whole test split.
    TEST_IMAGES = "test_images"
    MAJORITY = "majority_class_accuracy"  # always answering the majority class
    PREDICTED_CLASSES = "clean_predicted_classes"
    DEFENDED_TEST_ACCURACY = "defended_test_accuracy"
    DEFENDED_TEST_SENSITIVITY = "defended_test_sensitivity"
    # At the operating points (evaluation/operating_point.py): + point + "_clean" or "_adversarial".
    SENSITIVITY_AT = "sensitivity_at_"
    SPECIFICITY_AT = "specificity_at_"
    AUROC_CLEAN = "auroc_clean"
    AUROC_ADVERSARIAL = "auroc_adversarial"
    # attack=radius (evaluation/radius.py).
    RADIUS_MEDIAN = "radius_median"
    RADIUS_MEDIAN_COVID = "radius_median_covid"
    RADIUS_MEDIAN_NON_COVID = "radius_median_non_covid"
    RADIUS_BEYOND = "radius_beyond_max_share"  # images standing at the largest budget searched
    # attack=certify (evaluation/smoothing.py), per L2 radius r: certified_accuracy_<r>, attacked_accuracy_<r>
    CERTIFIED = "certified_accuracy_"
    ATTACKED = "attacked_accuracy_"
    SMOOTHED_CLEAN = "smoothed_clean_accuracy"  # PREDICT on the clean images, an abstention counted wrong
    ABSTENTION = "certify_abstention_rate"  # images CERTIFY abstains on
    CERTIFIED_RADIUS_MEDIAN = "certified_radius_median"  # over all images, 0 where not certified right
    CERTIFY_SECONDS = "certify_seconds_per_image"
    CONFLICTS = "certify_conflicts"  # attacked images the certificate overrules (Monte-Carlo noise of the vote)
    SIGMA = "smoothing_sigma"
    CURVE = "curve_accuracy_"  # + budget in 1/255 + "_255"
    # Escalation (evaluation/escalation.py): what stands after the cell's attack and a ladder of stronger and
    # different attacks at its budget, over the ladder's images (ESCALATION_IMAGES, the n of its interval).
    ESCALATED = "escalated_accuracy"
    ESCALATION = "escalation_"  # + stage + "_broken", "_passes", "_seconds"
    ESCALATION_IMAGES = "escalation_images"
    ESCALATION_STANDING = "escalation_standing"  # of them, those the cell's attack left standing
    ESCALATION_PASSES_PER_IMAGE = "escalation_passes_per_image"
    # The checklist's readings beside the ladder (record/checklist.py): random signs of the budget's size on
    # every ladder image, and what a large budget leaves standing.
    CHECK_NOISE = "check_noise_accuracy"
    CHECK_LARGE_BUDGET = "check_large_budget_accuracy"
    CHECK_LARGE_BUDGET_EPS = "check_large_budget_eps"
    CHECK_LARGE_BUDGET_PASSES = "check_large_budget_passes"
    # A corrupted test split (evaluation/corrupted.py), clean and attacked: at each severity, and the mean
    # over the job's severities.
    CORRUPTED_AT = "corruption_accuracy_s"  # + severity
    CORRUPTED_ADVERSARIAL_AT = "corruption_adversarial_accuracy_s"  # + severity
    CORRUPTED_MEAN = "corruption_accuracy_mean"
    CORRUPTED_ADVERSARIAL_MEAN = "corruption_adversarial_accuracy_mean"
    # Another source's images (evaluation/external.py): + the name of what is read there.
    EXTERNAL = "external_"
    EXTERNAL_ACCURACY = f"{EXTERNAL}accuracy"
    EXTERNAL_SENSITIVITY = f"{EXTERNAL}sensitivity"
    EXTERNAL_SPECIFICITY = f"{EXTERNAL}specificity"
    EXTERNAL_PREDICTED_COVID = f"{EXTERNAL}predicted_covid"
    EXTERNAL_MAJORITY = f"{EXTERNAL}majority_accuracy"
    EXTERNAL_IMAGES = "external_images"  # + "_" + class: its images
    EXTERNAL_SKIPPED = "external_skipped"
    EXTERNAL_NEAR_DUPLICATES = "external_near_duplicates_in_train"
    # Near-duplicates of the folder source (data/datamodule.py).
    TEST_NEAR_DUPLICATES = "test_near_duplicates_in_train"
    NEAR_DUPLICATE_GROUPS = "near_duplicate_groups"
    NEAR_DUPLICATE_IMAGES = "near_duplicate_images"
    NEAR_DUPLICATE_GROUPS_MIXED = "near_duplicate_groups_mixed_labels"


class Artifacts:
    """The files a job's run holds."""

    CONFIG = "config.yaml"
    CONFUSION = "confusion.json"
    RADII = "radii.json"  # attack=radius: per-image radii
    ROBUSTNESS_CURVE = "robustness_curve.png"
    CERTIFIED_RADII = "certified_radii.json"  # attack=certify: per-image certified radii and attacked results
    CERTIFIED_CURVE = "certified_vs_attacked.png"
    RELIABILITY = "reliability.png"
    EXAMPLES = "examples.npz"
    EXAMPLE_GRID = "examples.png"


class ProbeMetrics:
    """What a probe job logs, on the test split."""

    ACCURACY = "probe_accuracy"
    SENSITIVITY = "probe_sensitivity"
    SPECIFICITY = "probe_specificity"
    CHANCE = Metrics.MAJORITY  # always answering the test split's majority class
    ABOVE_CHANCE = "probe_above_chance"  # ACCURACY - CHANCE
    FILL = "probe_fill_pixel"  # border probe: the constant (0-255) its blanked interior is set to
    FRAME = "probe_frame_pixels"  # border probe: the visible frame's width on each side, in pixels
    FULL_MODEL = Metrics.TEST_ACCURACY  # what a normal job logs: its model's clean accuracy on the whole test split


def value(text: str | None):
    """A logged param as the value it was: None, a bool, a number, a list; any other text as is."""
    if text is None or text == "None":
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def number(text: str | None) -> float | None:
    v = value(text)
    return None if v is None else float(v)


def integer(text: str | None) -> int | None:
    v = value(text)
    return None if v is None else int(v)


def transfer_source(model: str, source: str | None) -> str | None:
    """The source model of a transfer attack, or None when the examples are crafted on the model itself:
    no source, or the model itself (the diagonal of a models x source_model sweep, a white-box job)."""
    return None if source in (None, "None", model) else source


RADIUS = "radius"  # attack=radius: a curve over budgets from one job, read on the clinical page
CERTIFY = "certify"  # attack=certify: randomized smoothing's certified and attacked accuracy per L2 radius


def curve(radii: np.ndarray, budgets: np.ndarray) -> np.ndarray:
    """A radius job's accuracy at each budget, read off its per-image radii (radii.json): the share of
    images whose radius exceeds the budget."""
    return (radii[None, :] > np.asarray(budgets, dtype=float)[:, None]).mean(1)


def certified_share(certificate: dict, radii) -> np.ndarray:
    """A certify job's certified accuracy at each radius, read off its per-image certificates
    (certified_radii.json): the share of images certified with their true class at a radius >= r."""
    right = np.array(certificate["prediction"]) == np.array(certificate["labels"])
    radius = np.where(right, np.array(certificate["radius"], dtype=float), -1.0)
    return (radius[None, :] >= np.asarray(radii, dtype=float)[:, None]).mean(1)


@dataclass(frozen=True)
class Job:
    """One finished job run: a trained model attacked with one attack setting."""

    run_id: str
    start_time: int
    model: str
    attack: str
    setting: str
    impl: str
    eps: float | None  # in the config's unit (attack.eps_unit)
    training_run_id: str
    params: dict[str, str]
    metrics: dict[str, float]
    masking: bool = False  # flagged as possible gradient masking (evaluation.masking)
    masking_reasons: str = ""
    defense: str = "none"
    source_model: str | None = None  # a transfer attack's source; None: crafted on the model itself
    evaluation: str = ""  # how the examples were crafted (e.g. "oblivious + bpda")
    strongest_evaluation: str = ""
    seed: str = "0"
    cell_key: str = ""  # a hash of every setting that can change its numbers
    untrained: bool = False  # its model is no better than always answering the majority class
    untrained_reason: str = ""
    model_label: str = ""
    attack_label: str = ""
    max_iter: int | None = None
    tags: dict[str, str] = field(default_factory=dict)
    end_time: int = 0
    datasets: tuple[dict, ...] = ()  # the run's dataset inputs: name, digest, profile (its JSON) and context
    slices: tuple["Job", ...] = ()  # a job the report joined from slices of the test split (report/slices.py)

    @classmethod
    def from_run(cls, run) -> "Job":
        p, t = run.data.params, run.data.tags
        return cls(
            run_id=run.info.run_id,
            start_time=run.info.start_time,
            model=p[Params.MODEL],
            attack=p[Params.ATTACK],
            setting=p.get(Params.SETTING, t.get(Tags.SETTING, "")),
            impl=p.get(Params.IMPL, "art"),
            eps=number(p.get(Params.EPS)),
            training_run_id=t.get(Tags.PARENT, ""),
            params=dict(p),
            metrics=dict(run.data.metrics),
            masking=t.get(Tags.MASKING) == "true",
            masking_reasons=t.get(Tags.MASKING_REASONS, ""),
            defense=p.get(Params.DEFENSE, "none"),
            source_model=transfer_source(p[Params.MODEL], p.get(Params.SOURCE_MODEL)),
            evaluation=t.get(Tags.EVALUATION, "whitebox"),
            strongest_evaluation=t.get(Tags.STRONGEST_EVALUATION, "whitebox"),
            seed=p.get(Params.SEED, "0"),
            cell_key=t.get(Tags.CELL_KEY, ""),
            untrained=t.get(Tags.UNTRAINED) == "true",
            untrained_reason=t.get(Tags.UNTRAINED_REASON, ""),
            model_label=t.get(Tags.MODEL_LABEL, ""),
            attack_label=t.get(Tags.ATTACK_LABEL, ""),
            max_iter=integer(p.get(Params.MAX_ITER)),
            tags=dict(t),
            end_time=run.info.end_time or 0,
            datasets=datasets_of(run),
        )

    @property
    def first_image(self) -> int:
        """The first test image a slice of the test split attacks (eval.first_image, logged when not 0)."""
        return int(self.params.get(sections.FIRST_IMAGE, 0))

    @property
    def parts(self) -> tuple["Job", ...]:
        """The runs that measured it: itself, or each slice it was joined from (report/slices.py)."""
        return self.slices or (self,)

    @property
    def run_ids(self) -> tuple[str, ...]:
        return tuple(p.run_id for p in self.parts)

    @property
    def norm(self) -> float:
        """The norm of the attack's ball (attack.norm): inf, or 2.0."""
        return float(self.params.get(Params.NORM, "inf"))

    @property
    def cell(self) -> str:
        """What a job evaluates: two runs of one cell are reruns of one another, whatever else they share.

        Runs logged before the tag existed are keyed by the params that can change their numbers.
        """
        if self.cell_key:
            return self.cell_key
        params = numbers_params(self.params)
        if self.source_model is None:  # no source, or the model itself: a white-box job either way
            params.pop(Params.SOURCE_MODEL, None)
        blob = json.dumps(params, sort_keys=True)
        return "params:" + hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def plain(self) -> bool:
        """No defense, examples crafted on the model itself, uncorrupted test images, an untargeted attack
        at one budget: the paper's setting."""
        return (
            self.defense == "none"
            and self.source_model is None
            and self.corruption is None
            and self.target_class is None
            and self.attack != RADIUS
        )

    @property
    def target_class(self) -> str | None:
        """The class a targeted attack crafted toward (attack.target_class), or None."""
        target = self.params.get(Params.TARGET_CLASS)
        return None if target in (None, "None") else target

    @property
    def corruption(self) -> str | None:
        """The corruption its test images went through (evaluation.corrupted), or None."""
        return self.params.get(Params.CORRUPTION)

    @property
    def eps_pixel(self) -> float | None:
        """The budget in [0, 1] pixels, whatever unit the config gave it in."""
        return self.metrics.get(Metrics.EPS_PIXEL, self.eps)

    @property
    def by_evaluation(self) -> dict[str, float]:
        """Accuracy per evaluation of a job with several (a defended job: oblivious, bpda, ...)."""
        prefix = Metrics.PER_EVALUATION
        return {k.removeprefix(prefix): v for k, v in self.metrics.items() if k.startswith(prefix)}

    @property
    def context(self) -> str:
        """What, besides the attack, decides the images a job's examples meet: defense, transfer source and
        the target class of a targeted attack (a targeted attack is compared with targeted ones only)."""
        return f"{self.defense} {self.source_model}" + (
            "" if self.target_class is None else f" toward {self.target_class}"
        )


# What older runs did not log, as they ran it.
DEFAULTS = {Params.EPS_UNIT: "pixel"}


def numbers_params(params: dict[str, str]) -> dict[str, str]:
    """The params that can change a job's numbers, with the values older runs ran without logging."""
    return {k: v for k, v in {**DEFAULTS, **params}.items() if is_numbers_param(k)}


def newest_per_cell(jobs) -> tuple[list[Job], list[tuple[Job, Job]]]:
    """The newest job of each cell (jobs newest first), and each older rerun with the job kept instead."""
    kept: dict[str, Job] = {}
    replaced = []
    for job in jobs:
        if job.cell in kept:
            replaced.append((job, kept[job.cell]))
        else:
            kept[job.cell] = job
    return list(kept.values()), replaced


def datasets_of(run) -> tuple[dict, ...]:
    """A run's dataset inputs (Tracker.log_dataset): name, digest, profile (its JSON) and context."""
    out = []
    for d in getattr(getattr(run, "inputs", None), "dataset_inputs", None) or []:
        context = next((t.value for t in d.tags if t.key == "mlflow.data.context"), "")
        out.append(
            {"name": d.dataset.name, "digest": d.dataset.digest, "profile": d.dataset.profile, "context": context}
        )
    return tuple(out)


def search(client, experiment_id: str, filter_string: str, order_by=("attributes.start_time DESC",)) -> list:
    """Every run of an experiment that matches, page by page."""
    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id], filter_string, max_results=1000, order_by=list(order_by), page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def finished_jobs(client, experiment_id: str, extra: str = "") -> list[Job]:
    """The experiment's finished job runs as records, newest first."""
    query = f"tags.{Tags.ROLE} = '{JOB_ROLE}' and attributes.status = 'FINISHED'" + (f" and {extra}" if extra else "")
    return [Job.from_run(r) for r in search(client, experiment_id, query)]
