"""One job: data -> model (trained, or the checkpoint of an identical training) -> attack -> MLflow.

The tracker writes every tag, param, metric and artifact of a job's run; Lightning's logger writes only
the training curves of a training run.
"""

import logging
import time
from dataclasses import asdict

import matplotlib.pyplot as plt
import pytorch_lightning as pl
import torch
from filelock import Timeout
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import LearningRateMonitor

from .accelerator import evaluation_batch_size, job_device, trainer_options
from .attacks.factory import attack_label, with_target
from .console import TrainingBar, quiet
from .data.datamodule import CXRDataModule
from .evaluation.callback import AdversarialEvaluation
from .evaluation.external import external_evaluation
from .evaluation.figures import example_grid, reliability_diagram, robustness_curve
from .evaluation.operating_point import POINTS, validation_thresholds
from .masking_tags import flag_masking
from .models.module import CXRClassifier
from .models.registry import count_params, spec
from .plugins import load_plugins
from .probe import run_probe
from .record import JOB_ROLE, TRAINING_ROLE, Metrics, Tags, transfer_source
from .sections import MODEL_TRAINING_SETTINGS, is_evaluation_param
from .shortcut import probe_name
from .tracking import Tracker, flatten, git_commit
from .training_cache import cell_key, job_settings, load_checkpoint, save_checkpoint, training_key
from .validate import Plan, validate

# Keys of the model group that are not the architecture's constructor arguments.
MODEL_SETTINGS = ("name", *MODEL_TRAINING_SETTINGS)


def model_kwargs(cfg: DictConfig) -> dict:
    """The model group's arguments for the architecture's constructor."""
    return {k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items() if k not in MODEL_SETTINGS}


log = logging.getLogger(__name__)


def _container(node) -> dict:
    return OmegaConf.to_container(node, resolve=True)


def _trainer(cfg: DictConfig, plan: Plan, logger, callbacks, progress: bool, training: bool) -> pl.Trainer:
    options = {
        **_container(cfg.trainer),
        "enable_progress_bar": progress,
        **trainer_options(plan.device, plan.gpu, training),
    }
    bar = [TrainingBar()] if progress else []
    return pl.Trainer(
        **options, logger=logger, callbacks=[*callbacks, *bar], enable_checkpointing=False, enable_model_summary=False
    )


def train(
    cfg: DictConfig, plan: Plan, dm: CXRDataModule, tracker: Tracker, key: str, tags: dict
) -> tuple[CXRClassifier, str]:
    pl.seed_everything(cfg.seed, workers=True, verbose=False)  # the same weights whichever job trains them
    mean, std = dm.pixel_stats()
    adversarial = _container(cfg.defense).get("training")
    module = CXRClassifier(
        cfg.model.name,
        dm.num_classes,
        dm.positive_class,
        mean,
        std,
        model_kwargs=model_kwargs(cfg),
        adversarial=adversarial,
        **_container(cfg.optim),
    )
    if plan.gpu.channels_last:
        module = module.to(memory_format=torch.channels_last)
    kind = "plain" if adversarial is None else f"adversarial ({adversarial['method']})"
    logger = tracker.logger(
        run_name=f"train {cfg.model.name}"
        + ("" if adversarial is None else f" {adversarial['method']}")
        + ("" if probe_name(cfg) == "none" else f" ({probe_name(cfg)} probe)"),
        tags={Tags.ROLE: TRAINING_ROLE, Tags.TRAINING: kind, **tags},
    )
    run_id = logger.run_id
    # What made these weights: not the attack, the evaluation or a test-time defense that may reuse them.
    tracker.log_params(run_id, {k: v for k, v in flatten(job_settings(cfg)).items() if not is_evaluation_param(k)})
    params, with_stats = count_params(module.net.net)
    paper = spec(cfg.model.name).paper_params
    tracker.log_metrics(
        run_id,
        {
            Metrics.PARAMETERS: params,
            Metrics.PARAMETERS_WITH_STATS: with_stats,
            **({} if paper is None else {Metrics.PAPER_PARAMETERS: paper}),
        },
    )
    info = dm.dataset_info()
    tracker.log_dataset(run_id, info, context="training")
    start = time.perf_counter()
    trainer = _trainer(cfg, plan, logger, [LearningRateMonitor("epoch")], cfg.trainer.enable_progress_bar, True)
    trainer.fit(module, datamodule=dm)
    tracker.log_metrics(run_id, {"training_seconds": time.perf_counter() - start})
    path = tracker.checkpoint_path(key)
    save_checkpoint(module, path)
    tracker.set_tags(run_id, {Tags.CHECKPOINT: str(path)})
    tracker.log_trained_model(
        run_id,
        f"{cfg.model.name} {kind}",
        {
            "architecture": cfg.model.name,
            "training_key": key,
            "checkpoint": str(path),
            "parameters": str(params),
            "parameters_with_bn_stats": str(with_stats),
        },
        tags={Tags.TRAINING: kind},
        dataset=info,
    )
    return module, run_id


def obtain_model(cfg: DictConfig, plan: Plan, dm: CXRDataModule, tracker: Tracker, key: str, tags: dict):
    """The trained model of this key and its training run: trained here, or loaded from its checkpoint.

    The lock makes a job that needs a checkpoint another process is training wait for it, instead of
    training it twice; holding it also means a RUNNING training run of this key was interrupted.
    """
    with tracker.lock(f"train-{key}"):
        parent_id = tracker.find_training(key)
        if parent_id is not None:
            log.info("reusing the trained %s of run %s", cfg.model.name, parent_id)
            return load_checkpoint(tracker.checkpoint_path(key), cfg.model.name), parent_id
        if interrupted := tracker.fail_interrupted(TRAINING_ROLE, Tags.TRAINING_KEY, key):
            log.warning("marked %d interrupted training run(s) of key %s as failed", interrupted, key)
        log.info("training %s (key %s)", cfg.model.name, key)
        return train(cfg, plan, dm, tracker, key, tags)


def job_name(cfg: DictConfig) -> str:
    attack = _container(cfg.attack)
    eps, defense = attack.get("eps"), cfg.defense.name
    source = transfer_source(cfg.model.name, attack.get("source_model"))
    budget = (
        "" if eps is None else f" eps={eps:g} std" if attack.get("eps_unit") == "std" else f" eps={eps * 255:.3g}/255"
    )
    return (
        f"{cfg.model.name}"
        + ("" if defense == "none" else f" [{defense}]")
        + f" {attack['name']}"
        + budget
        + ("" if attack.get("target_class") is None else f" toward {attack['target_class']}")
        + ("" if source is None else f" from {source}")
    )


THRESHOLD, TEST = "threshold_", "test/"


def _kept_thresholds(kept: dict[str, float]) -> dict[str, float] | None:
    """The operating points' thresholds an earlier job of the training kept on its run, if it kept them all."""
    if all(f"{THRESHOLD}{k}" in kept for k in POINTS):
        return {k: kept[f"{THRESHOLD}{k}"] for k in POINTS}
    return None


def attack_and_track(
    cfg: DictConfig,
    plan: Plan,
    dm: CXRDataModule,
    module: CXRClassifier,
    tracker: Tracker,
    parent_id: str,
    tags: dict,
    source: CXRClassifier | None = None,
) -> dict[str, float]:
    attack = with_target(_container(cfg.attack), dm.classes)
    name = job_name(cfg)
    run_id = tracker.start_job(
        parent_id,
        name,
        {
            **tags,
            Tags.ATTACK: attack["name"],
            Tags.ATTACK_LABEL: attack_label(attack["name"]),
            Tags.SETTING: str(attack.get("setting")),
            Tags.DEFENSE: cfg.defense.name,
        },
    )
    try:
        tracker.log_params(run_id, {**flatten(job_settings(cfg)), "data.skipped_images": str(dm.skipped)})
        tracker.log_config(run_id, cfg)
        tracker.log_dataset(run_id, dm.dataset_info(), context="test")
        n_test = len(dm.splits["test"].labels)
        n_attacked = min(n_test, cfg.eval.max_images or n_test)
        net = module.net.to(plan.device)
        batch = evaluation_batch_size(cfg.eval.batch_size, net, dm.image_size, n_attacked, plan.device)
        # What depends on the trained model alone (its operating points, chosen on the validation split as
        # deployed, and its test-loop metrics) is measured by the first job of a training and kept on the
        # training run; the training's other jobs read it back instead of classifying those splits again.
        kept = tracker.metrics(parent_id)
        undefended = plan.defense.preprocessor is None  # a test-time defense's thresholds stay with its own job
        thresholds = _kept_thresholds(kept) if undefended else None
        if thresholds is None:
            thresholds = validation_thresholds(
                net, dm.splits["val"].tensors(), dm.num_classes, dm.positive_class, plan.defense, cfg.seed, batch
            )
            if undefended:
                tracker.log_metrics(parent_id, {f"{THRESHOLD}{k}": v for k, v in thresholds.items()})
        module.reuse_test_metrics({k: v for k, v in kept.items() if k.startswith(TEST)} or None)
        evaluation = AdversarialEvaluation(
            attack,
            dm.num_classes,
            dm.positive_class,
            **{**_container(cfg.eval), "batch_size": batch},
            defense=plan.defense,
            source=None if source is None else source.net.to(plan.device),
            seed=cfg.seed,
            progress=cfg.trainer.enable_progress_bar,
            corruption=_container(cfg.corruption) if "corruption" in cfg else None,
            thresholds=thresholds,
        )
        trainer = _trainer(cfg, plan, False, [evaluation], progress=False, training=False)
        trainer.test(module, datamodule=dm, verbose=False)
        result = evaluation.result
        test_metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(TEST)}
        if module.known_test_metrics is None:
            tracker.log_metrics(parent_id, test_metrics)
        metrics = {**test_metrics, **result.metrics, **dm.split_metrics()}
        if dm.external is not None:
            metrics |= dm.external_metrics() | external_evaluation(
                net,
                dm.external.tensors(),
                attack,
                dm.num_classes,
                dm.positive_class,
                defense=plan.defense,
                source=None if source is None else source.net.to(plan.device),
                max_images=cfg.eval.max_images,
                batch_size=batch,
                seed=cfg.seed,
                progress=cfg.trainer.enable_progress_bar,
                thresholds=thresholds,
            )
        tracker.log_metrics(run_id, metrics)
        tracker.set_tags(run_id, result.tags)
        tracker.log_json(
            run_id,
            {"classes": list(dm.classes), **{k: v.tolist() for k, v in result.confusion.items()}},
            "confusion.json",
        )
        if result.radii is not None:  # attack=radius: the per-image radii and the curve read off them
            labels = result.probabilities["labels"]
            finite = [float(r) if r < float("inf") else None for r in result.radii]
            tracker.log_json(
                run_id, {"classes": list(dm.classes), "labels": labels.tolist(), "radii": finite}, "radii.json"
            )
            figure = robustness_curve(result.radii, labels, dm.classes, result.metrics["eps_pixel"], name)
            tracker.log_figure(run_id, figure, "robustness_curve.png")
            plt.close(figure)
        if result.probabilities:
            figure = reliability_diagram(result.probabilities, name)
            tracker.log_figure(run_id, figure, "reliability.png")
            plt.close(figure)
        if result.examples is not None:
            tracker.log_arrays(run_id, asdict(result.examples), "examples.npz")
            figure = example_grid(result.examples, dm.classes, name)
            tracker.log_figure(run_id, figure, "examples.png")
            plt.close(figure)
    except BaseException as err:
        tracker.end(run_id, ok=False, error=f"{type(err).__name__}: {err}")
        raise
    tracker.end(run_id, ok=True)
    log.info(
        "%s: clean %.3f, adversarial %.3f", name, result.metrics[Metrics.CLEAN], result.metrics[Metrics.ADVERSARIAL]
    )
    return result.metrics


def run(cfg: DictConfig, overrides: str = "", sweep: bool = False) -> dict[str, float]:
    """One grid cell. A cell already finished in this study is skipped (resume), unless resume=false.

    In a sweep the masking checks run once when the sweep ends (sweep.SweepCallbacks); a job run alone
    checks its model's jobs when it ends.
    """
    quiet(cfg.get("verbose", False))
    load_plugins(cfg.get("plugins"))
    plan = validate(cfg)
    plan.device = job_device(cfg.trainer.accelerator)
    plan.gpu = plan.gpu.on(plan.device)  # all off on a CPU
    tracker = Tracker.from_config(cfg)
    if probe_name(cfg) != "none":  # a shortcut probe instead of train + attack
        return run_probe(cfg, plan, tracker, overrides, obtain_model)
    key, cell = training_key(cfg), cell_key(cfg)
    lock = tracker.lock(f"cell-{cell}")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.warning("cell %s is being run by another process; leaving it to that one", cell)
        return {}
    try:
        if cfg.resume and (done := tracker.find_job(cell)) is not None:
            log.info("cell %s already finished in run %s; skipping it", cell, done.info.run_id)
            return dict(done.data.metrics)
        if interrupted := tracker.fail_interrupted(JOB_ROLE, Tags.CELL_KEY, cell):
            log.warning("marked %d interrupted run(s) of cell %s as failed; running it again", interrupted, cell)
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        dm = CXRDataModule(**_container(cfg.data))
        dm.setup()
        if plan.gpu.data_on_device:
            dm.on_device(plan.device, plan.gpu.channels_last)
        if dm.skipped:
            log.warning("left out %d unreadable image(s)", dm.skipped)
        tags = {
            Tags.COMMIT: git_commit(),
            Tags.OVERRIDES: overrides,
            Tags.MODEL: cfg.model.name,
            Tags.MODEL_LABEL: spec(cfg.model.name).label,
            Tags.TRAINING_KEY: key,
        }
        module, parent_id = obtain_model(cfg, plan, dm, tracker, key, tags)
        source = None
        if plan.source is not None:
            source_key = training_key(plan.source)
            source, source_run = obtain_model(
                plan.source,
                plan,
                dm,
                tracker,
                source_key,
                {
                    **tags,
                    Tags.MODEL: plan.source.model.name,
                    Tags.MODEL_LABEL: spec(plan.source.model.name).label,
                    Tags.TRAINING_KEY: source_key,
                },
            )
            tags[Tags.SOURCE_TRAINING_RUN] = source_run
        metrics = attack_and_track(cfg, plan, dm, module, tracker, parent_id, {**tags, Tags.CELL_KEY: cell}, source)
    finally:
        lock.release()
    if not sweep:
        flag_masking(tracker, {parent_id})
    return metrics
