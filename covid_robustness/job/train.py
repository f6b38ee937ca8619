"""A job's trained model: trained here, or the checkpoint of an identical training loaded.

A training is keyed by every setting that changes its weights (keys.training_key); its checkpoint is
stored under that key, so the jobs of a sweep that differ only in how they attack share one training.
"""

import logging
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.callbacks import LearningRateMonitor
from pytorch_lightning.plugins.environments import LightningEnvironment

from ..accelerator import trainer_options
from ..console import TrainingBar
from ..data.datamodule import CXRDataModule
from ..errors import ConfigError
from ..files import written_aside
from ..models.module import CXRClassifier
from ..models.registry import count_params, model_kwargs, spec
from ..record import TRAINING_ROLE, Metrics, Tags
from ..record.sections import is_evaluation_param
from ..shortcut import probe_name
from ..tracking import Tracker, flatten
from .epochs import EpochCheckpoint, saved_progress
from .keys import job_settings, resolved
from .plan import Plan

log = logging.getLogger(__name__)


def lightning_trainer(cfg: DictConfig, plan: Plan, logger, callbacks, progress: bool, training: bool) -> pl.Trainer:
    options = {
        **resolved(cfg.trainer),
        "enable_progress_bar": progress,
        **trainer_options(plan.device, plan.gpu, training),
    }
    bar = [TrainingBar()] if progress else []
    return pl.Trainer(
        **options,
        logger=logger,
        callbacks=[*callbacks, *bar],
        enable_checkpointing=False,
        enable_model_summary=False,
        # One process per job, also inside a SLURM allocation: Lightning's SLURM environment would install
        # its own requeue handler beside submitit's (hydra/launcher=slurm_*), and the two would fight.
        plugins=[LightningEnvironment()],
    )


def train(
    cfg: DictConfig, plan: Plan, dm: CXRDataModule, tracker: Tracker, key: str, tags: dict
) -> tuple[CXRClassifier, str]:
    pl.seed_everything(cfg.seed, workers=True, verbose=False)  # the same weights whichever job trains them
    mean, std = dm.pixel_stats()
    adversarial = resolved(cfg.defense).get("training")
    module = CXRClassifier(
        cfg.model.name,
        dm.num_classes,
        dm.positive_class,
        mean,
        std,
        model_kwargs=model_kwargs(cfg),
        adversarial=adversarial,
        **resolved(cfg.optim),
    )
    if plan.gpu.channels_last:
        module = module.to(memory_format=torch.channels_last)
    kind = "plain" if adversarial is None else f"adversarial ({adversarial['method']})"
    partial = tracker.epochs_path(key)
    progress = saved_progress(partial)
    reopened = None if progress is None else tracker.reopen(progress["run_id"])
    if reopened is None:
        progress = None  # nothing to resume, or its run is gone from the study: a new run from epoch 0
    params, with_stats = count_params(module.net.net)
    info = dm.dataset_info()
    if progress is None:
        logger = tracker.logger(
            run_name=f"train {cfg.model.name}"
            + ("" if adversarial is None else f" {adversarial['method']}")
            + ("" if probe_name(cfg) == "none" else f" ({probe_name(cfg)} probe)"),
            tags={Tags.ROLE: TRAINING_ROLE, Tags.TRAINING: kind, **tags},
        )
        run_id = logger.run_id
        log_training(cfg, tracker, run_id, (params, with_stats), info)
    else:
        run_id = progress["run_id"]
        logger = tracker.logger(run_id=run_id)
        done = f"{progress['epochs']} of {cfg.trainer.max_epochs}"
        log.info("resuming the training of %s (key %s) after epoch %s", cfg.model.name, key, done)
        resumed = reopened.get(Tags.RESUMED)
        tracker.set_tags(run_id, {Tags.RESUMED: done if resumed is None else f"{resumed}, {done}"})
    epochs = EpochCheckpoint(partial, run_id, 0.0 if progress is None else progress["seconds"])
    trainer = lightning_trainer(
        cfg, plan, logger, [LearningRateMonitor("epoch"), epochs], cfg.trainer.enable_progress_bar, True
    )
    trainer.fit(module, datamodule=dm, ckpt_path=None if progress is None else partial, weights_only=True)
    passes = module.passes_per_training_image()
    tracker.log_metrics(
        run_id,
        {
            Metrics.TRAINING_SECONDS: epochs.elapsed(),
            **({} if passes is None else {Metrics.TRAINING_PASSES_PER_IMAGE: passes}),
        },
    )
    path = tracker.checkpoint_path(key)
    save_checkpoint(module, path)
    tracker.set_tags(run_id, {Tags.CHECKPOINT: str(path)})
    tracker.log_trained_model(
        run_id,
        f"{cfg.model.name} {kind}",
        {
            "architecture": cfg.model.name,
            Tags.TRAINING_KEY: key,
            Tags.CHECKPOINT: str(path),
            "parameters": str(params),
            "parameters_with_bn_stats": str(with_stats),
        },
        tags={Tags.TRAINING: kind},
        dataset=info,
    )
    partial.unlink(missing_ok=True)  # the weights are saved: the epochs' state is done with
    return module, run_id


def log_training(cfg: DictConfig, tracker: Tracker, run_id: str, sizes: tuple[int, int], info: dict) -> None:
    """What a new training run records before its first epoch: its settings, sizes and data."""
    # What made these weights: not the attack, the evaluation or a test-time defense that may reuse them.
    tracker.log_params(run_id, {k: v for k, v in flatten(job_settings(cfg)).items() if not is_evaluation_param(k)})
    params, with_stats = sizes
    paper = spec(cfg.model.name).paper_params
    tracker.log_metrics(
        run_id,
        {
            Metrics.PARAMETERS: params,
            Metrics.PARAMETERS_WITH_STATS: with_stats,
            **({} if paper is None else {Metrics.PAPER_PARAMETERS: paper}),
        },
    )
    tracker.log_dataset(run_id, info, context="training")


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
        if interrupted := tracker.fail_interrupted(TRAINING_ROLE, Tags.TRAINING_KEY, key, store=True):
            log.warning("marked %d interrupted training run(s) of key %s as failed", interrupted, key)
        log.info("training %s (key %s)", cfg.model.name, key)
        return train(cfg, plan, dm, tracker, key, tags)


def save_checkpoint(module: CXRClassifier, path: Path) -> None:
    """Written aside and renamed, so a half-written checkpoint is never seen under its name."""
    with written_aside(path) as tmp:
        torch.save({"hparams": dict(module.hparams), "state_dict": module.state_dict()}, tmp)


def load_checkpoint(path: Path, model: str | None = None) -> CXRClassifier:
    """The module stored at path; with `model`, refuse a checkpoint of any other architecture."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        stored = state["hparams"]["model"]
    except Exception as err:  # unpickling errors come in many types
        raise ConfigError(f"checkpoint {str(path)!r} cannot be read ({err}); delete it to train again.") from err
    if model is not None and stored != model:
        raise ConfigError(
            f"checkpoint {str(path)!r} holds a {stored}, not the {model} this job needs; delete it to train again."
        )
    module = CXRClassifier(**state["hparams"])
    module.load_state_dict(state["state_dict"])
    return module
