"""The sweep on a SLURM cluster (tests/cluster/slurm.sh: one node on 127.0.0.1) through submitit's SLURM
executor: a job array logging to a tracking server on PostgreSQL with a tracking.dir the jobs share,
cancelled and launched again; a training requeued by the signal SLURM sends before a time limit."""

import os
import subprocess
import sys
import time

import torch
from mlflow.tracking import MlflowClient

from covid_robustness.job.epochs import saved_progress

from .conftest import ROOT, TINY, run_cli, served


def _launch(args: list[str], env: dict, log) -> subprocess.Popen:
    env = {**{k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}, "PYTHONUNBUFFERED": "1", **env}
    return subprocess.Popen(
        [sys.executable, "-m", "covid_robustness", *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )


def _squeue(env: dict) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i %T"], env={**os.environ, **env}, capture_output=True, text=True)
    return out.stdout.split("\n")[:-1]


def _wait(condition, proc: subprocess.Popen, log_path, seconds: float = 600):
    deadline = time.monotonic() + seconds
    while not condition():
        assert proc.poll() is None, log_path.read_text()[-3000:]
        assert time.monotonic() < deadline, log_path.read_text()[-3000:]
        time.sleep(0.5)


def test_a_job_array_cancelled_and_launched_again_finishes_each_cell_once(slurm, postgres, tmp_path):
    with served(tmp_path / "server", backend=postgres) as uri:
        sweep = [
            "-m",
            "hydra/launcher=slurm_cpu",
            "hydra.launcher.partition=debug",
            "hydra.launcher.cpus_per_task=1",
            "hydra.launcher.mem_gb=1",
            "hydra.launcher.timeout_min=10",
            "model=resnet18,wrn16_8",
            "attack=fgsm,pgd,none",
            *TINY,
            "eval.max_images=8",
            "study=slurm",
            f"tracking.uri={uri}",
            f"tracking.dir={tmp_path / 'shared'}",
            f"hydra.sweep.dir={tmp_path / 'multirun'}",
        ]
        client = MlflowClient(uri)

        def jobs(status=None):
            experiment = client.get_experiment_by_name("slurm")
            if experiment is None:
                return []
            runs = client.search_runs([experiment.experiment_id], "tags.role = 'attack'", max_results=100)
            return [r for r in runs if status is None or r.info.status == status]

        log_path = tmp_path / "first.log"
        with open(log_path, "w") as log:
            first = _launch(sweep, slurm, log)
            _wait(lambda: len(jobs("FINISHED")) >= 2, first, log_path)
            array = {line.split("_")[0] for line in _squeue(slurm)}
            subprocess.run(["scancel", *array], env={**os.environ, **slurm}, check=True)
            # With accounting (sacct) the launcher learns of the cancel; this cluster has none: the launcher
            # is stopped too (SIGTERM: a shell's background job, as under CI, ignores SIGINT).
            first.terminate()
            first.wait(timeout=60)
        assert first.returncode != 0
        before = {r.info.run_id for r in jobs("FINISHED")}
        assert 2 <= len(before) < 6

        again = run_cli(*sweep, env=slurm)
        assert again.returncode == 0, again.stderr[-3000:]
        assert "study slurm: 6 of 6 cells finished" in again.stdout
        finished = jobs("FINISHED")
        cells = [r.data.tags["cell_key"] for r in finished]
        assert len(cells) == 6 and len(set(cells)) == 6  # nothing lost, nothing duplicated
        assert before <= {r.info.run_id for r in finished}  # the cells finished before the cancel were kept
        assert all(r.info.status in ("FINISHED", "FAILED") for r in jobs())  # none left RUNNING
        experiment = client.get_experiment_by_name("slurm").experiment_id
        trainings = client.search_runs([experiment], "tags.role = 'training'", max_results=100)
        done = [r for r in trainings if r.info.status == "FINISHED"]
        assert sorted(r.data.tags["model"] for r in done) == ["resnet18", "wrn16_8"]  # each trained once
        # A training cancelled before its first epoch ended had nothing to resume: its run was closed.
        assert all(r.data.tags["error"].startswith("interrupted") for r in trainings if r not in done)
        # Each job ran as a task of an array, on the allocation's one CPU (the node has more).
        assert {r.data.tags["cpu_threads"] for r in finished} == {"1"} and (os.cpu_count() or 1) > 1
        assert len(list((tmp_path / "multirun" / ".submitit").glob("*_*/*_0_result.pkl"))) >= 6


def test_a_training_signalled_before_its_time_limit_is_requeued_and_resumes(slurm, tmp_path):
    """SLURM sends submitit's signal (SIGUSR2) signal_delay_s before a job's time limit, on its own clock
    (up to a minute early, as sbatch's manual says); the test sends that signal itself once the training
    has a finished epoch, so the job is cut mid-training at a known point."""
    store, epochs = tmp_path / "shared", 8
    args = [
        "-m",
        "hydra/launcher=slurm_cpu",
        "hydra.launcher.partition=debug",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=1",
        # Under 10 minutes submitit reads any signal as the time limit's; SLURM's own comes no earlier
        # than 3 min - 10 s - 1 min after the start, long after this test's.
        "hydra.launcher.timeout_min=3",
        "hydra.launcher.signal_delay_s=10",
        "hydra.launcher.max_num_timeout=1",
        "model=resnet18",
        "attack=none",
        *TINY,
        f"trainer.max_epochs={epochs}",
        "eval.max_images=8",
        "study=requeue",
        f"tracking.dir={store}",
        f"hydra.sweep.dir={tmp_path / 'multirun'}",
    ]
    log_path = tmp_path / "sweep.log"

    def saved():
        found = list((store / "checkpoints").glob("*.last.ckpt")) if (store / "checkpoints").is_dir() else []
        return bool(found) and saved_progress(found[0]) is not None

    with open(log_path, "w") as log:
        sweep = _launch(args, slurm, log)
        _wait(saved, sweep, log_path)
        (job,) = [line.split()[0] for line in _squeue(slurm)]
        subprocess.run(["scancel", "--signal=USR2", job], env={**os.environ, **slurm}, check=True)
        sweep.wait(timeout=300)
    assert sweep.returncode == 0, log_path.read_text()[-3000:]
    said = "".join(p.read_text() for p in (tmp_path / "multirun" / ".submitit").glob("*/*_0_log.*"))
    assert "Caught signal SIGUSR2" in said and "Requeued job" in said
    assert "resuming the training of resnet18" in said

    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("requeue").experiment_id
    (training,) = client.search_runs([experiment], "tags.role = 'training'")  # one run, resumed
    resumed = training.data.tags["resumed"]  # once: "k of 8"
    assert training.info.status == "FINISHED" and "," not in resumed and resumed.endswith(f"of {epochs}")
    assert len(client.get_metric_history(training.info.run_id, "train/loss")) == epochs
    (path,) = (store / "checkpoints").glob("*.pt")
    assert torch.load(path, weights_only=True)["hparams"]["model"] == "resnet18"
    assert not list((store / "checkpoints").glob("*.last.ckpt"))
