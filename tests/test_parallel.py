"""Jobs in parallel processes share one store and one training, and lose nothing."""

from .conftest import TINY, run_cli
from .conftest import store_runs as _runs


def test_four_joblib_workers_eight_jobs_one_store_one_training(tmp_path):
    store = tmp_path / "mlruns"
    result = run_cli(
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=4",
        "model=resnet18",
        "attack=fgsm,pgd",
        "attack.eps=0.01,0.02,0.03,0.04",
        *TINY,
        "eval.max_images=16",
        "study=parallel",
        f"tracking.dir={store}",
        f"hydra.sweep.dir={tmp_path / 'multirun'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "database is locked" not in result.stdout + result.stderr
    runs = _runs(store, "parallel")
    jobs = [r for r in runs if r.data.tags["role"] == "attack"]
    training = [r for r in runs if r.data.tags["role"] == "training"]
    assert len(jobs) == 8 and all(r.info.status == "FINISHED" for r in jobs)
    assert len({r.data.tags["cell_key"] for r in jobs}) == 8
    assert len(training) == 1 and training[0].info.status == "FINISHED"  # the lock: one trains, seven wait
    assert {r.data.tags["mlflow.parentRunId"] for r in jobs} == {training[0].info.run_id}


def test_submitit_local_launcher_runs_the_jobs(tmp_path):
    store = tmp_path / "mlruns"
    result = run_cli(
        "-m",
        "hydra/launcher=submitit_local",
        "model=resnet18",
        "attack=fgsm",
        "attack.eps=0.01,0.03",
        *TINY,
        "eval.max_images=16",
        "study=submitit",
        f"tracking.dir={store}",
        f"hydra.sweep.dir={tmp_path / 'multirun'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = [r for r in _runs(store, "submitit") if r.data.tags["role"] == "attack"]
    assert sorted(r.data.params["attack.eps"] for r in jobs) == ["0.01", "0.03"]
    assert all(r.info.status == "FINISHED" for r in jobs)
