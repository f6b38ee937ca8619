"""One job: data -> model (trained, or the checkpoint of an identical training) -> attack -> MLflow."""

import logging
import time
from dataclasses import asdict

import matplotlib.pyplot as plt
import pytorch_lightning as pl
from filelock import Timeout
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import LearningRateMonitor

from .data.datamodule import CXRDataModule
from .defenses.transforms import build_defense
from .evaluation.callback import AdversarialEvaluation
from .evaluation.figures import example_grid
from .evaluation.masking import Result, masking_flags
from .models.module import CXRClassifier
from .tracking import JOB_ROLE, TRAINING_ROLE, Tracker, flatten, git_commit
from .training_cache import cell_key, load_checkpoint, save_checkpoint, training_key
from .transfer import source_config, transfer_source
from .validate import validate

log = logging.getLogger(__name__)


def _container(node) -> dict:
    return OmegaConf.to_container(node, resolve=True)


def _trainer(cfg: DictConfig, logger, callbacks) -> pl.Trainer:
    return pl.Trainer(**_container(cfg.trainer), logger=logger, callbacks=callbacks,
                      enable_checkpointing=False, enable_model_summary=False)


def train(cfg: DictConfig, dm: CXRDataModule, tracker: Tracker, key: str, tags: dict) -> tuple[CXRClassifier, str]:
    pl.seed_everything(cfg.seed, workers=True, verbose=False)  # the same weights whichever job trains them
    mean, std = dm.pixel_stats()
    model_kwargs = {k: v for k, v in _container(cfg.model).items() if k != "name"}
    adversarial = _container(cfg.defense).get("training")
    module = CXRClassifier(cfg.model.name, dm.num_classes, dm.positive_class, mean, std,
                           model_kwargs=model_kwargs, adversarial=adversarial, **_container(cfg.optim))
    kind = "plain" if adversarial is None else f"adversarial ({adversarial['method']})"
    logger = tracker.logger(run_name=f"train {cfg.model.name}" + ("" if adversarial is None else f" {adversarial['method']}"),
                            tags={"role": TRAINING_ROLE, "training": kind, **tags})
    # What made these weights: not the attack, the evaluation or a test-time defense that may reuse them.
    logger.log_hyperparams({k: v for k, v in flatten(_container(cfg)).items()
                            if not k.startswith(("attack.", "eval.", "defense.")) or k.startswith("defense.training.")})
    start = time.perf_counter()
    _trainer(cfg, logger, [LearningRateMonitor("epoch")]).fit(module, datamodule=dm)
    logger.log_metrics({"training_seconds": time.perf_counter() - start})
    path = tracker.checkpoint_path(key)
    save_checkpoint(module, path)
    tracker.client.set_tag(logger.run_id, "checkpoint", str(path))
    return module, logger.run_id


def flag_gradient_masking(tracker: Tracker, parent_id: str) -> None:
    """Re-check every job on this trained model, now that one more has finished."""
    runs = tracker.job_runs(parent_id)
    results = []
    for r in runs:
        p, m = r.data.params, r.data.metrics
        settings = sorted((k, v) for k, v in p.items()
                          if k.startswith(("attack.", "eval.", "defense.")) and k != "attack.eps")
        eps = None if p.get("attack.eps") in (None, "None") else float(p["attack.eps"])
        eps = m.get("eps_pixel", eps)  # a budget given in std units, in [0, 1] pixels
        steps = p.get("attack.max_iter")
        # Jobs on one trained model may differ in test-time defense and in the model that crafted the examples.
        context = f"{p.get('defense.name', 'none')} {transfer_source(p['model.name'], p.get('attack.source_model'))}"
        by_evaluation = tuple(sorted((k.removeprefix("adversarial_accuracy_"), v) for k, v in m.items()
                                     if k.startswith("adversarial_accuracy_")))
        results.append(Result(r.info.run_id, p["attack.name"], str(settings), eps,
                              m["adversarial_accuracy"], int(m["attack_images"]), context,
                              clean_accuracy=m.get("clean_accuracy"),
                              max_iter=None if steps in (None, "None") else int(steps),
                              untrained=r.data.tags.get("untrained_model") == "true", by_evaluation=by_evaluation))
    flags = masking_flags(results)
    for r in runs:  # write only what changed: each job re-checks all its siblings
        reasons = flags.get(r.info.run_id, [])
        tags = {"gradient_masking": str(bool(reasons)).lower(), "gradient_masking_reasons": "; ".join(reasons)[:5000]}
        for name, value in tags.items():
            if r.data.tags.get(name) != value:
                tracker.client.set_tag(r.info.run_id, name, value)
        if reasons and r.data.tags.get("gradient_masking") != "true":
            log.warning("possible gradient masking in run %s: %s", r.info.run_id, "; ".join(reasons))


def obtain_model(cfg: DictConfig, dm: CXRDataModule, tracker: Tracker, key: str, tags: dict):
    """The trained model of this key and its training run: trained here, or loaded from its checkpoint.

    The lock makes a job that needs a checkpoint another process is training wait for it, instead of
    training it twice; holding it also means a RUNNING training run of this key was interrupted.
    """
    with tracker.lock(f"train-{key}"):
        parent_id = tracker.find_training(key)
        if parent_id is not None:
            log.info("reusing the trained %s of run %s (key %s)", cfg.model.name, parent_id, key)
            return load_checkpoint(tracker.checkpoint_path(key), cfg.model.name), parent_id
        if interrupted := tracker.fail_interrupted(TRAINING_ROLE, "training_key", key):
            log.warning("marked %d interrupted training run(s) of key %s as failed", interrupted, key)
        log.info("training %s (key %s)", cfg.model.name, key)
        return train(cfg, dm, tracker, key, tags)


def job_name(cfg: DictConfig) -> str:
    attack = _container(cfg.attack)
    eps, defense = attack.get("eps"), cfg.defense.name
    source = transfer_source(cfg.model.name, attack.get("source_model"))
    budget = "" if eps is None else f" eps={eps:g} std" if attack.get("eps_unit") == "std" else f" eps={eps * 255:.3g}/255"
    return (f"{cfg.model.name}" + ("" if defense == "none" else f" [{defense}]") + f" {attack['name']}"
            + budget + ("" if source is None else f" from {source}"))


def attack_and_track(cfg: DictConfig, dm: CXRDataModule, module: CXRClassifier, tracker: Tracker,
                     parent_id: str, tags: dict, source: CXRClassifier | None = None) -> dict[str, float]:
    attack = _container(cfg.attack)
    name = job_name(cfg)
    run_id = tracker.start_job(parent_id, name, {**tags, "attack": attack["name"], "setting": str(attack.get("setting")),
                                                 "defense": cfg.defense.name})
    try:
        tracker.log_params(run_id, {**flatten(_container(cfg)), "data.skipped_images": str(dm.skipped)})
        tracker.log_config(run_id, cfg)
        evaluation = AdversarialEvaluation(attack, dm.image_size, dm.num_classes, dm.positive_class,
                                           **_container(cfg.eval), defense=build_defense(_container(cfg.defense)),
                                           source=None if source is None else source.net, seed=cfg.seed)
        _trainer(cfg, tracker.logger(run_id=run_id), [evaluation]).test(module, datamodule=dm, verbose=False)
        tracker.log_metrics(run_id, dm.split_metrics())
        for tag, value in evaluation.tags.items():
            tracker.client.set_tag(run_id, tag, value)
        if evaluation.examples is not None:
            tracker.log_arrays(run_id, asdict(evaluation.examples), "examples.npz")
            figure = example_grid(evaluation.examples, dm.classes, name)
            tracker.log_figure(run_id, figure, "examples.png")
            plt.close(figure)
    except BaseException as err:
        tracker.end(run_id, ok=False, error=f"{type(err).__name__}: {err}")
        raise
    tracker.end(run_id, ok=True)
    flag_gradient_masking(tracker, parent_id)
    log.info("%s: clean %.3f, adversarial %.3f", name, evaluation.metrics["clean_accuracy"],
             evaluation.metrics["adversarial_accuracy"])
    return evaluation.metrics


def run(cfg: DictConfig, overrides: str = "") -> dict[str, float]:
    """One grid cell. A cell already finished in this study is skipped (resume), unless resume=false."""
    validate(cfg)
    tracker = Tracker.from_config(cfg)
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
        if interrupted := tracker.fail_interrupted(JOB_ROLE, "cell_key", cell):
            log.warning("marked %d interrupted run(s) of cell %s as failed; running it again", interrupted, cell)
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        dm = CXRDataModule(**_container(cfg.data))
        dm.setup()
        if dm.skipped:
            log.warning("left out %d unreadable image(s)", dm.skipped)
        tags = {"mlflow.source.git.commit": git_commit(), "hydra.overrides": overrides,
                "model": cfg.model.name, "training_key": key}
        module, parent_id = obtain_model(cfg, dm, tracker, key, tags)
        source = None
        if (source_cfg := source_config(cfg)) is not None:
            source_key = training_key(source_cfg)
            source, source_run = obtain_model(source_cfg, dm, tracker, source_key,
                                              {**tags, "model": source_cfg.model.name, "training_key": source_key})
            tags["source_training_run"] = source_run
        return attack_and_track(cfg, dm, module, tracker, parent_id, {**tags, "cell_key": cell}, source)
    finally:
        lock.release()
