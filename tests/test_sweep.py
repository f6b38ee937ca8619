"""The main job end to end: a real Hydra multirun into a real MLflow store."""

from pathlib import Path

from mlflow.tracking import MlflowClient

from .conftest import TINY, run_cli

METRICS = {"clean_accuracy", "adversarial_accuracy", "attack_success_rate", "covid_sensitivity_clean",
           "covid_sensitivity_adversarial", "linf_mean", "linf_max", "l2_mean", "l2_max", "attack_seconds",
           "test/acc", "test/sensitivity", "test/specificity", "test/auroc"}


def test_multirun_trains_each_model_once_and_tracks_every_job(tmp_path):
    store = tmp_path / "mlruns"
    result = run_cli("-m", "model=resnet18,wrn16_8", "attack=fgsm,pgd", "attack.eps=0.01,0.03", *TINY,
                     "eval.max_images=16", "study=e2e", f"tracking.dir={store}", f"hydra.sweep.dir={tmp_path / 'multirun'}")
    assert result.returncode == 0, result.stderr[-3000:]

    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    exp = client.get_experiment_by_name("e2e")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    training = {r.info.run_id: r for r in runs if r.data.tags.get("role") == "training"}
    jobs = [r for r in runs if r.data.tags.get("role") == "attack"]
    assert len(training) == 2 and len(jobs) == 8
    assert sorted(r.data.tags["model"] for r in training.values()) == ["resnet18", "wrn16_8"]
    assert all(r.info.status == "FINISHED" for r in runs)

    cells = set()
    for job in jobs:
        parent = training[job.data.tags["mlflow.parentRunId"]]  # nested under the training it used
        assert parent.data.tags["model"] == job.data.params["model.name"]
        assert parent.data.tags["training_key"] == job.data.tags["training_key"]
        assert METRICS <= set(job.data.metrics), METRICS - set(job.data.metrics)
        eps = float(job.data.params["attack.eps"])
        assert job.data.metrics["linf_max"] <= eps + 1e-5
        assert job.data.tags["gradient_masking"] in ("true", "false")
        assert job.data.metrics["attack_backward_passes"] == (1 if job.data.params["attack.name"] == "fgsm" else 10)
        assert job.data.tags["mlflow.source.git.commit"] and "attack=" in job.data.tags["hydra.overrides"]
        artifacts = {a.path for a in client.list_artifacts(job.info.run_id)}
        assert {"config.yaml", "examples.png", "examples.npz"} <= artifacts
        png = Path(client.download_artifacts(job.info.run_id, "examples.png", str(tmp_path)))
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        cells.add((job.data.params["model.name"], job.data.params["attack.name"], eps))
    assert len(cells) == 8

    for run in training.values():  # the training run holds the curves
        history = client.get_metric_history(run.info.run_id, "val/acc")
        assert len(history) == 1 and Path(run.data.tags["checkpoint"]).is_file()
