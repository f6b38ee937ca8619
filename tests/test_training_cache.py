import pytest
import torch

from covid_robustness.job.keys import cell_key, job_settings, training_key
from covid_robustness.job.train import load_checkpoint, save_checkpoint
from covid_robustness.models.module import CXRClassifier
from covid_robustness.models.registry import model_kwargs

from .conftest import make_cfg


def test_key_ignores_attack_and_evaluation_but_not_training():
    base = training_key(make_cfg())
    assert base == training_key(make_cfg("attack=pgd", "attack.eps=0.1", "eval.max_images=5", "study=x"))
    assert base == training_key(make_cfg("data.num_workers=2", "trainer.enable_progress_bar=true"))
    for change in ("model=resnet50", "seed=1", "data.image_size=48", "optim.lr=0.1", "trainer.max_epochs=2"):
        assert training_key(make_cfg(change)) != base, change


def test_gradient_clipping_is_the_models_own_unless_the_trainer_sets_it():
    vgg, inception = make_cfg("model=vgg19"), make_cfg("model=inception_v3")
    assert vgg.trainer.gradient_clip_val == 1.0 and inception.trainer.gradient_clip_val is None
    assert make_cfg("model=vgg19", "trainer.gradient_clip_val=5").trainer.gradient_clip_val == 5
    assert make_cfg("model=inception_v3", "trainer.gradient_clip_val=2").trainer.gradient_clip_val == 2
    # no clipping leaves the key as it was before the setting existed; clipping changes it
    assert "gradient_clip_val" not in job_settings(inception)["trainer"]
    assert training_key(make_cfg("trainer.gradient_clip_val=2")) != training_key(make_cfg())
    # the setting is the trainer's, not an argument of the architecture
    module = CXRClassifier("vgg19", 2, 1, mean=0.5, std=0.25, model_kwargs=model_kwargs(vgg))
    assert module(torch.rand(2, 1, 32, 32)).shape == (2, 2)


def test_gpu_settings_join_the_keys_and_params_of_gpu_jobs_only(monkeypatch):
    off = ("gpu.bf16_training=false", "gpu.channels_last=false", "gpu.cudnn_benchmark=false")
    cpu, cpu_off = make_cfg("trainer.accelerator=cpu"), make_cfg("trainer.accelerator=cpu", *off)
    assert training_key(cpu) == training_key(cpu_off) and cell_key(cpu) == cell_key(cpu_off)
    assert "gpu" not in job_settings(cpu) and "trainer" in job_settings(cpu)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    gpu, gpu_off = make_cfg("trainer.accelerator=gpu"), make_cfg("trainer.accelerator=gpu", *off)
    assert training_key(gpu) != training_key(gpu_off) and cell_key(gpu) != cell_key(gpu_off)
    assert job_settings(gpu)["gpu"]["bf16_training"] is True


def test_checkpoint_round_trip_is_exact_and_atomic(tmp_path):
    module = CXRClassifier("wrn16_8", 2, 1, mean=0.4, std=0.25, model_kwargs={"stem": "downsample"}).eval()
    path = tmp_path / "ck" / "key.pt"
    save_checkpoint(module, path)
    assert [p.name for p in path.parent.iterdir()] == ["key.pt"]  # no temporary file left behind
    loaded = load_checkpoint(path).eval()
    x = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(module(x), loaded(x))
    assert loaded.hparams.model == "wrn16_8" and float(loaded.net.mean) == pytest.approx(0.4)


def test_adversarial_training_is_in_the_training_key_and_test_time_defenses_are_not():
    from covid_robustness.job.keys import cell_key

    base = make_cfg()
    assert (
        training_key(make_cfg("defense=jpeg")) == training_key(make_cfg("defense=gaussian_noise")) == training_key(base)
    )
    keys = {training_key(make_cfg(f"defense={d}")) for d in ("adv_train_pgd", "adv_train_pgd3", "adv_train_fgsm_rs")}
    assert len(keys) == 3 and training_key(base) not in keys
    cells = {cell_key(make_cfg(f"defense={d}")) for d in ("none", "jpeg", "gaussian_noise", "adv_train_pgd")}
    assert len(cells) == 4
    assert cell_key(make_cfg("attack.source_model=wrn16_8")) != cell_key(base)
    assert cell_key(make_cfg("attack.source_model=resnet18")) == cell_key(base)  # the model itself: white-box


def test_a_trainings_test_metrics_and_thresholds_are_measured_once_and_read_back_by_its_other_jobs(tmp_path):
    """The first job keeps its model's test-loop metrics and validation thresholds on the training run; a later
    job of the same training reads them there (a value planted on the run comes back) instead of measuring."""
    from mlflow.tracking import MlflowClient

    from covid_robustness.job.run import run

    from .conftest import store_runs

    run(make_cfg("attack=none", "eval.max_images=8", tmp_path=tmp_path))
    [training] = store_runs(tmp_path / "mlruns", role="training")
    [first] = store_runs(tmp_path / "mlruns", role="attack")
    kept = training.data.metrics
    for key in ("test/acc", "test/loss", "test/sensitivity", "test/specificity"):
        assert kept[key] == first.data.metrics[key]
    assert {"threshold_sens95", "threshold_youden"} <= set(kept)

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    client.log_metric(training.info.run_id, "test/acc", 0.123)
    client.log_metric(training.info.run_id, "threshold_youden", 0.7)
    run(make_cfg("attack=fgsm", "eval.max_images=8", tmp_path=tmp_path))
    second = next(r for r in store_runs(tmp_path / "mlruns", role="attack") if r.data.tags["attack"] == "fgsm")
    assert second.data.metrics["test/acc"] == pytest.approx(0.123)  # through the test loop's float32 log
    assert second.data.metrics["test/loss"] == first.data.metrics["test/loss"]
    assert MlflowClient(client.tracking_uri).get_run(training.info.run_id).data.metrics["threshold_youden"] == 0.7
