"""The sweep on a SLURM cluster (tests/cluster/slurm.sh: one node on 127.0.0.1) through submitit's SLURM
executor, logging to a tracking server on PostgreSQL, with a tracking.dir the jobs share."""

from mlflow.tracking import MlflowClient

from .conftest import TINY, run_cli, served


def test_a_sweep_runs_as_a_slurm_job_array_each_cell_and_training_once(slurm, postgres, tmp_path):
    with served(tmp_path / "server", backend=postgres) as uri:
        sweep = [
            "-m",
            "hydra/launcher=slurm_cpu",
            "hydra.launcher.partition=debug",
            "hydra.launcher.cpus_per_task=1",
            "hydra.launcher.mem_gb=1",
            "hydra.launcher.timeout_min=10",
            "model=resnet18,wrn16_8",
            "attack=fgsm,pgd",
            *TINY,
            "eval.max_images=8",
            "study=slurm",
            f"tracking.uri={uri}",
            f"tracking.dir={tmp_path / 'shared'}",
            f"hydra.sweep.dir={tmp_path / 'multirun'}",
        ]
        result = run_cli(*sweep, env=slurm)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "study slurm: 4 of 4 cells finished" in result.stdout
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name("slurm").experiment_id
        runs = client.search_runs([experiment], max_results=100)
        jobs = [r for r in runs if r.data.tags["role"] == "attack"]
        assert len(jobs) == 4 and len({r.data.tags["cell_key"] for r in jobs}) == 4
        assert all(r.info.status == "FINISHED" for r in runs)
        trainings = [r for r in runs if r.data.tags["role"] == "training"]
        assert sorted(r.data.tags["model"] for r in trainings) == ["resnet18", "wrn16_8"]  # each trained once
        # Each job ran as a task of the array, on the cluster: submitit's folder holds its SLURM output.
        assert len(list((tmp_path / "multirun" / ".submitit").glob("*_*/*_0_result.pkl"))) == 4
        again = run_cli(*sweep, env=slurm)  # launched again: every cell is done, nothing runs twice
        assert again.returncode == 0, again.stderr[-3000:]
        assert len(client.search_runs([experiment], max_results=100)) == len(runs)
