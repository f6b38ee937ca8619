"""Jobs log through a real MLflow tracking server, started as `make server` starts it: on sqlite, on
PostgreSQL with parallel workers, and behind MLflow's basic-auth app beyond 127.0.0.1."""

import urllib.error
import urllib.request

import pytest
from mlflow.tracking import MlflowClient

from .conftest import TINY, run_cli, served


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


def test_parallel_workers_log_through_a_server_on_postgresql_and_resume(postgres, tmp_path):
    with served(tmp_path / "server", backend=postgres) as uri:
        sweep = [
            "-m",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "attack=fgsm,pgd",
            "attack.eps=0.01,0.02",
            *TINY,
            "eval.max_images=8",
            "study=pg",
            f"tracking.uri={uri}",
            f"tracking.dir={tmp_path / 'local'}",
            f"hydra.sweep.dir={tmp_path / 'multirun'}",
        ]
        result = run_cli(*sweep)
        assert result.returncode == 0, result.stderr[-3000:]
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name("pg").experiment_id
        runs = client.search_runs([experiment], max_results=100)
        jobs = [r for r in runs if r.data.tags["role"] == "attack"]
        assert len(jobs) == 4 and all(r.info.status == "FINISHED" for r in runs)
        assert len({r.data.tags["cell_key"] for r in jobs}) == 4
        assert len([r for r in runs if r.data.tags["role"] == "training"]) == 1
        again = run_cli(*sweep)  # resumed: every cell is done, nothing runs again
        assert again.returncode == 0, again.stderr[-3000:]
        assert len(client.search_runs([experiment], max_results=100)) == len(runs)
    assert not (tmp_path / "server" / "mlflow.db").exists()  # the runs went to PostgreSQL


def test_a_server_beyond_localhost_asks_for_credentials(tmp_path, monkeypatch):
    admin = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": "a-long-test-password-0"}
    with served(tmp_path / "server", host="0.0.0.0", env=admin) as uri:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{uri}/api/2.0/mlflow/experiments/search?max_results=1", timeout=10)
        assert refused.value.code == 401
        result = run_cli(
            *TINY,
            "eval.max_images=8",
            "study=guarded",
            f"tracking.uri={uri}",
            f"tracking.dir={tmp_path / 'local'}",
            f"hydra.run.dir={tmp_path / 'out'}",
            env=admin,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        for name, value in admin.items():
            monkeypatch.setenv(name, value)
        client = MlflowClient(uri)
        runs = client.search_runs([client.get_experiment_by_name("guarded").experiment_id])
        assert {r.data.tags["role"] for r in runs} == {"training", "attack"}
        assert all(r.info.status == "FINISHED" for r in runs)
    config = tmp_path / "server" / "basic_auth.ini"
    assert config.stat().st_mode & 0o077 == 0  # the admin's password is readable by its owner only
