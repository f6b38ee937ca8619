"""Jobs log through a real MLflow tracking server, started as `make server` starts it."""

from mlflow.tracking import MlflowClient

from .conftest import TINY, run_cli


def test_jobs_log_through_the_tracking_server(mlflow_server, tmp_path):
    uri = mlflow_server
    result = run_cli(
        "-m",
        "attack=fgsm",
        "attack.eps=0.01,0.03",
        *TINY,
        "eval.max_images=8",
        "study=served",
        f"tracking.uri={uri}",
        f"tracking.dir={tmp_path / 'local'}",
        f"hydra.sweep.dir={tmp_path / 'multirun'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("served").experiment_id])
    jobs = [r for r in runs if r.data.tags["role"] == "attack"]
    assert len(jobs) == 2 and all(r.info.status == "FINISHED" for r in jobs)
    assert {"examples.png", "config.yaml"} <= {a.path for a in client.list_artifacts(jobs[0].info.run_id)}
    assert all(len(client.get_run(j.info.run_id).inputs.dataset_inputs) == 1 for j in jobs)  # the data, by http
    assert len(client.search_logged_models([client.get_experiment_by_name("served").experiment_id])) == 1
    assert not (tmp_path / "local" / "mlflow.db").exists()  # nothing went to the embedded store
    assert (tmp_path / "server" / "mlflow.db").exists()
