"""The attack job: a trained model (trained here, or reused) attacked on the test split, into MLflow.

The tracker writes every tag, param, metric and artifact of a job's run; Lightning's logger writes only
the training curves of a training run.
"""

import logging
from dataclasses import asdict

import matplotlib.pyplot as plt
from omegaconf import DictConfig

from ..accelerator import evaluation_batch_size
from ..attacks.registry import attack_label
from ..attacks.resolve import with_target
from ..attacks.validation import attack_norm
from ..data.datamodule import CXRDataModule
from ..errors import ConfigError
from ..evaluation.callback import AdversarialEvaluation
from ..evaluation.external import external_evaluation
from ..evaluation.figures import certified_curve, example_grid, reliability_diagram, robustness_curve
from ..evaluation.operating_point import validation_thresholds
from ..evaluation.options import EvaluationOptions
from ..models.module import CXRClassifier
from ..record import OPERATING_POINTS, Artifacts, Metrics, Tags, transfer_source
from ..record.budget import written
from ..tracking import Tracker
from .cell import claim, common_tags, job_run, setup_data
from .keys import cell_key, resolved, training_key
from .masking import flag_masking
from .plan import Plan
from .train import lightning_trainer, obtain_model

log = logging.getLogger(__name__)


def _norm_suffix(attack: dict) -> str:
    """ "-L2" for an attack in an L2 ball, "" in L-inf (the default threat model)."""
    return "-L2" if attack_norm(attack) == 2 else ""


def job_name(cfg: DictConfig) -> str:
    attack = resolved(cfg.attack)
    eps, defense = attack.get("eps"), cfg.defense.name
    source = transfer_source(cfg.model.name, attack.get("source_model"))
    budget = "" if eps is None else f" eps={written(eps, attack.get('eps_unit', 'pixel'))}"
    return (
        f"{cfg.model.name}"
        + ("" if defense == "none" else f" [{defense}]")
        + f" {attack['name']}"
        + _norm_suffix(attack).replace("-", " ")
        + budget
        + ("" if attack.get("target_class") is None else f" toward {attack['target_class']}")
        + ("" if source is None else f" from {source}")
        + ("" if not cfg.eval.get("first_image") else f" images {cfg.eval.first_image}+")
    )


def _thresholds(
    tracker: Tracker, parent_id: str, kept: dict[str, float], net, dm: CXRDataModule, plan: Plan, seed: int, batch: int
) -> dict[str, float]:
    """The operating points' thresholds: chosen on the validation split as deployed, by the first job of a
    training, and kept on the training run for its other jobs (a test-time defense's stay with its job)."""
    undefended = plan.defense.preprocessor is None
    if undefended and all(f"{Metrics.THRESHOLD}{k}" in kept for k in OPERATING_POINTS):
        return {k: kept[f"{Metrics.THRESHOLD}{k}"] for k in OPERATING_POINTS}
    thresholds = validation_thresholds(
        net, dm.splits["val"].tensors(), dm.num_classes, dm.positive_class, plan.defense, seed, batch
    )
    if undefended:
        tracker.log_metrics(parent_id, {f"{Metrics.THRESHOLD}{k}": v for k, v in thresholds.items()})
    return thresholds


def _log_artifacts(tracker: Tracker, run_id: str, result, classes: list[str], name: str, norm: float) -> None:
    """The confusion matrices, a radius job's radii and curve, the reliability diagram and the examples."""
    confusion = {"classes": classes, **{k: v.tolist() for k, v in result.confusion.items()}}
    tracker.log_json(run_id, confusion, Artifacts.CONFUSION)
    if result.radii is not None:  # attack=radius: the per-image radii and the curve read off them
        labels = result.probabilities["labels"]
        finite = [float(r) if r < float("inf") else None for r in result.radii]
        tracker.log_json(run_id, {"classes": classes, "labels": labels.tolist(), "radii": finite}, Artifacts.RADII)
        eps_max = result.metrics[Metrics.EPS_PIXEL]
        figure = robustness_curve(result.radii, labels, classes, eps_max, name, norm)
        tracker.log_figure(run_id, figure, Artifacts.ROBUSTNESS_CURVE)
        plt.close(figure)
    if result.certificate is not None:  # attack=certify: per-image certificates, both bounds' curves
        tracker.log_json(run_id, {"classes": classes, **result.certificate}, Artifacts.CERTIFIED_RADII)
        figure = certified_curve(result.certificate, name)
        tracker.log_figure(run_id, figure, Artifacts.CERTIFIED_CURVE)
        plt.close(figure)
    if result.probabilities:
        figure = reliability_diagram(result.probabilities, name)
        tracker.log_figure(run_id, figure, Artifacts.RELIABILITY)
        plt.close(figure)
    if result.examples is not None:
        tracker.log_arrays(run_id, asdict(result.examples), Artifacts.EXAMPLES)
        figure = example_grid(result.examples, classes, name)
        tracker.log_figure(run_id, figure, Artifacts.EXAMPLE_GRID)
        plt.close(figure)


def attack_and_track(
    cfg: DictConfig,
    plan: Plan,
    dm: CXRDataModule,
    module: CXRClassifier,
    tracker: Tracker,
    parent_id: str,
    tags: dict,
    source: CXRClassifier | None = None,
    escalation_sources: dict[str, CXRClassifier] | None = None,
) -> dict[str, float]:
    attack = with_target(resolved(cfg.attack), dm.classes)
    name = job_name(cfg)
    run_tags = {
        **tags,
        Tags.ATTACK: attack["name"],
        Tags.ATTACK_LABEL: attack_label(attack["name"], attack.get("_target_")) + _norm_suffix(attack),
        Tags.SETTING: str(attack.get("setting")),
        Tags.DEFENSE: cfg.defense.name,
    }
    with job_run(tracker, parent_id, name, run_tags, cfg, dm) as run_id:
        n_test = len(dm.splits["test"].labels)
        n_attacked = min(n_test - cfg.eval.get("first_image", 0), cfg.eval.max_images or n_test)
        net = module.net.to(plan.device)
        source_net = None if source is None else source.net.to(plan.device)
        batch = evaluation_batch_size(cfg.eval.batch_size, net, dm.image_size, n_attacked, plan.device)
        # What depends on the trained model alone (its operating points and test-loop metrics) is measured
        # by the first job of a training and kept on the training run; its other jobs read it back.
        kept = tracker.metrics(parent_id)
        thresholds = _thresholds(tracker, parent_id, kept, net, dm, plan, cfg.seed, batch)
        module.reuse_test_metrics({k: v for k, v in kept.items() if k.startswith(Metrics.TEST)} or None)
        evaluation_settings = {**resolved(cfg.eval), "batch_size": batch}
        evaluation_settings.pop("escalate_sources")  # by name: the models themselves come below
        options = EvaluationOptions(
            attack,
            dm.num_classes,
            dm.positive_class,
            **evaluation_settings,
            defense=plan.defense,
            source=source_net,
            escalation_sources={name: m.net.to(plan.device) for name, m in (escalation_sources or {}).items()},
            seed=cfg.seed,
            progress=cfg.trainer.enable_progress_bar,
            corruption=resolved(cfg.corruption) if "corruption" in cfg else None,
            thresholds=thresholds,
        )
        evaluation = AdversarialEvaluation(options)
        trainer = lightning_trainer(cfg, plan, False, [evaluation], progress=False, training=False)
        trainer.test(module, datamodule=dm, verbose=False)
        result = evaluation.result
        test_metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(Metrics.TEST)}
        if module.known_test_metrics is None:
            tracker.log_metrics(parent_id, test_metrics)
        metrics = {**test_metrics, **result.metrics, **dm.split_metrics()}
        if dm.external is not None:
            metrics |= dm.external_metrics() | external_evaluation(net, dm.external.tensors(), options)
        tracker.log_metrics(run_id, metrics)
        tracker.set_tags(run_id, result.tags)
        _log_artifacts(tracker, run_id, result, list(dm.classes), name, attack_norm(attack))
    log.info(
        "%s: clean %.3f, adversarial %.3f", name, result.metrics[Metrics.CLEAN], result.metrics[Metrics.ADVERSARIAL]
    )
    return result.metrics


def attack_job(cfg: DictConfig, plan: Plan, tracker: Tracker, overrides: str, sweep: bool) -> dict[str, float]:
    """One attack cell: its data, its model (and a transfer attack's source) trained or reused, attacked.

    Alone (not in a sweep), it checks its model's jobs for gradient masking when it ends; in a sweep the
    checks run once when the sweep ends (sweep.SweepCallbacks), never over siblings still running.
    """
    key, cell = training_key(cfg), cell_key(cfg)

    def work() -> dict[str, float]:
        dm = setup_data(cfg)
        n_test, first = len(dm.splits["test"].labels), cfg.eval.get("first_image", 0)
        if first >= n_test:  # known once the data is split; checked before anything trains
            raise ConfigError(f"eval.first_image={first} leaves no image of the {n_test} test images to attack.")
        if plan.gpu.data_on_device:
            dm.on_device(plan.device, plan.gpu.channels_last)
        job_tags = {**common_tags(cfg, overrides), Tags.TRAINING_KEY: key}
        module, parent_id = obtain_model(cfg, plan, dm, tracker, key, job_tags)
        source = None
        if plan.source is not None:
            source_key = training_key(plan.source)
            source_tags = {**common_tags(plan.source, overrides), Tags.TRAINING_KEY: source_key}
            source, source_run = obtain_model(plan.source, plan, dm, tracker, source_key, source_tags)
            job_tags[Tags.SOURCE_TRAINING_RUN] = source_run
        escalation_sources = {}  # the study's other models, trained here or reused, for escalation's transfer
        for name, other in plan.escalation_sources.items():
            other_key = training_key(other)
            other_tags = {**common_tags(other, overrides), Tags.TRAINING_KEY: other_key}
            escalation_sources[name], _ = obtain_model(other, plan, dm, tracker, other_key, other_tags)
        job_tags = {**job_tags, Tags.CELL_KEY: cell}
        metrics = attack_and_track(cfg, plan, dm, module, tracker, parent_id, job_tags, source, escalation_sources)
        if not sweep:
            flag_masking(tracker, {parent_id})
        return metrics

    return claim(tracker, cell, cfg.resume, work)
