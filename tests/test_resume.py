"""A sweep killed with SIGKILL and run again finishes the missing cells only."""

import os
import signal
import subprocess
import sys
import time

from mlflow.tracking import MlflowClient

from .conftest import ROOT, TINY, run_cli

EPS = "0.01,0.02,0.03,0.04,0.05,0.06"


def _jobs(client, status=None):
    exp = client.get_experiment_by_name("resume")
    if exp is None:
        return []
    runs = client.search_runs([exp.experiment_id], "tags.role = 'attack'", max_results=100)
    return [r for r in runs if status is None or r.info.status == status]


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
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "covid_robustness", *args],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
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
