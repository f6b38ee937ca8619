"""A sweep killed with SIGKILL and run again finishes the missing cells only."""

import os
import signal
import subprocess
import sys
import time

import torch
from mlflow.tracking import MlflowClient

from covid_robustness.job.epochs import saved_progress
from covid_robustness.job.run import run as run_job

from .conftest import ROOT, TINY, make_cfg, run_cli

EPS = "0.01,0.02,0.03,0.04,0.05,0.06"


def _jobs(client, status=None):
    exp = client.get_experiment_by_name("resume")
    if exp is None:
        return []
    runs = client.search_runs([exp.experiment_id], "tags.role = 'attack'", max_results=100)
    return [r for r in runs if status is None or r.info.status == status]


def _start(args: list[str], log_path) -> subprocess.Popen:
    """The CLI in a process group of its own (so SIGKILL reaches every process it starts), logging to log_path."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    with open(log_path, "w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "covid_robustness", *args],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def test_sigkill_then_rerun_finishes_missing_cells_without_duplicates(tmp_path):
    store = tmp_path / "mlruns"
    args = [
        "-m",
        "model=resnet18",
        "attack=fgsm",
        f"attack.eps={EPS}",
        *TINY,
        "eval.max_images=16",
        "study=resume",
        f"tracking.dir={store}",
        f"hydra.sweep.dir={tmp_path / 'multirun'}",
    ]
    proc = _start(args, tmp_path / "first.log")
    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    deadline = time.monotonic() + 600
    while True:  # kill as soon as two cells are done and a third has started
        assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        assert time.monotonic() < deadline
        try:
            if len(_jobs(client, "FINISHED")) >= 2 and len(_jobs(client, "RUNNING")) >= 1:
                break
        except Exception:  # the store may not exist yet, or be mid-write
            pass
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {r.info.run_id for r in _jobs(client, "FINISHED")}
    assert 2 <= len(before) < 6 and len(_jobs(client, "RUNNING")) == 1

    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    finished = _jobs(client, "FINISHED")
    cells = [r.data.tags["cell_key"] for r in finished]
    assert len(cells) == 6 and len(set(cells)) == 6  # every cell once: nothing lost, nothing duplicated
    assert before <= {r.info.run_id for r in finished}  # the cells done before the kill were kept
    failed = _jobs(client, "FAILED")
    assert len(failed) == 1 and failed[0].data.tags["error"].startswith("interrupted")
    assert failed[0].data.tags["cell_key"] in cells  # the interrupted cell was redone
    assert not _jobs(client, "RUNNING")
    assert "already finished" in result.stdout + result.stderr
    exp = client.get_experiment_by_name("resume")
    trainings = client.search_runs([exp.experiment_id], "tags.role = 'training'")
    assert [r.info.status for r in trainings] == ["FINISHED"]  # trained before the kill, reused after


def _training(store, epochs):
    """A small ResNet-18 trained adversarially from random starts (both of the training's random sources:
    the loader's shuffle and the global generator), then only its clean accuracy measured."""
    return [
        "model=resnet18",
        "attack=none",
        "defense=adv_train_fgsm_rs",
        *TINY,
        f"trainer.max_epochs={epochs}",
        "eval.max_images=16",
        "study=resume",
        f"tracking.dir={store}",
    ]


def _weights(store):
    (path,) = (store / "checkpoints").glob("*.pt")
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_a_training_killed_part_way_resumes_from_its_last_epoch_to_the_same_weights(tmp_path):
    epochs = 4
    store = tmp_path / "killed"
    args = [*_training(store, epochs), f"hydra.run.dir={tmp_path / 'run'}"]
    proc = _start(args, tmp_path / "first.log")
    deadline = time.monotonic() + 300
    while True:  # SIGKILL as soon as an epoch is saved: the next one is under way
        assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        assert time.monotonic() < deadline
        saved = list((store / "checkpoints").glob("*.last.ckpt")) if (store / "checkpoints").is_dir() else []
        if saved and (progress := saved_progress(saved[0])) is not None:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not list((store / "checkpoints").glob("*.pt"))  # killed before the training ended
    done, key = progress["epochs"], saved[0].name.split(".")[0]

    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    said = result.stdout + result.stderr
    assert f"resuming the training of resnet18 (key {key}) after epoch {done} of {epochs}" in said
    assert not list((store / "checkpoints").glob("*.last.ckpt"))  # done with once the weights are saved

    whole = tmp_path / "whole"  # the same training, never interrupted
    run_job(make_cfg(*_training(whole, epochs)))
    resumed, uninterrupted = _weights(store), _weights(whole)
    assert resumed.keys() == uninterrupted.keys()
    for name, tensor in uninterrupted.items():
        assert torch.equal(resumed[name], tensor), name  # bit for bit: the same batches, starts and steps

    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    exp = client.get_experiment_by_name("resume").experiment_id
    (training,) = client.search_runs([exp], "tags.role = 'training'")  # one run, resumed, not a second one
    assert training.info.status == "FINISHED" and "error" not in training.data.tags
    assert training.data.tags["resumed"] == f"{done} of {epochs}"
    history = client.get_metric_history(training.info.run_id, "train/loss")
    assert len(history) == epochs  # every epoch's loss in the one run: the killed epoch's never logged


def test_sigterm_ends_a_job_while_it_attacks():
    """Lightning's SIGTERM handler only takes note (its loops stop at the next batch); an attack has no next
    batch, so while the evaluation runs SIGTERM takes its default action, and the handler comes back after."""
    code = (
        "import os, signal, time\n"
        "from covid_robustness.evaluation.callback import sigterm_ends_the_process\n"
        "note = lambda *a: print('noted', flush=True)\n"
        "signal.signal(signal.SIGTERM, note)\n"
        "with sigterm_ends_the_process():\n"
        "    pass\n"
        "assert signal.getsignal(signal.SIGTERM) is note\n"
        "print('restored', flush=True)\n"
        "with sigterm_ends_the_process():\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(30)\n"
        "print('survived', flush=True)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["restored"] and result.returncode == -signal.SIGTERM, result.stderr
