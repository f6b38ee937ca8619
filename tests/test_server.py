"""Jobs log through a real MLflow tracking server, started as `make server` starts it."""

import socket
import subprocess
import time
import urllib.request

from mlflow.tracking import MlflowClient

from .conftest import ROOT, TINY, run_cli


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_jobs_log_through_the_tracking_server(tmp_path):
    port = _free_port()
    server = subprocess.Popen(
        ["make", "server", f"PORT={port}", f"STORE={tmp_path / 'server'}"], cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=2).read()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
                time.sleep(1)
        result = run_cli("-m", "attack=fgsm", "attack.eps=0.01,0.03", *TINY, "eval.max_images=8", "study=served",
                         f"tracking.uri={uri}", f"tracking.dir={tmp_path / 'local'}",
                         f"hydra.sweep.dir={tmp_path / 'multirun'}")
        assert result.returncode == 0, result.stderr[-3000:]
        client = MlflowClient(uri)
        runs = client.search_runs([client.get_experiment_by_name("served").experiment_id])
        jobs = [r for r in runs if r.data.tags["role"] == "attack"]
        assert len(jobs) == 2 and all(r.info.status == "FINISHED" for r in jobs)
        assert {"examples.png", "config.yaml"} <= {a.path for a in client.list_artifacts(jobs[0].info.run_id)}
        assert not (tmp_path / "local" / "mlflow.db").exists()  # nothing went to the embedded store
        assert (tmp_path / "server" / "mlflow.db").exists()
    finally:
        subprocess.run(["pkill", "-TERM", "-s", str(server.pid)])
        server.wait(timeout=30)
