import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir

import covid_robustness  # noqa: F401  (registers the ${px:} resolver)

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SHARED_CXR = ROOT.parent / "shared" / "data" / "cxr"

# make test runs the suite in two processes (pytest-xdist, a file to a process): each, and every job it
# starts, computes on its share of the cores. More threads than cores make torch's spinning OpenMP threads
# wait on each other (tiny models' passes, tens of times slower).
THREADS = max(1, len(os.sched_getaffinity(0)) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
os.environ["OMP_NUM_THREADS"] = str(THREADS)
torch.set_num_threads(THREADS)
# Decoded-image caches of the tests (and the jobs they start) stay out of the user's cache.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="covid-robustness-test-cache-")

# The longest files first: xdist hands out files in collection order, so the last one to start (a cluster
# test that waits on its queue for minutes) does not run alone at the end.
LONGEST_FIRST = ("test_slurm.py", "test_defenses.py", "test_attacks.py", "test_recipes.py", "test_server.py")


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: each file's tests keep their order


# Small everything: 32 px synthetic images, one short epoch, CPU.
TINY = [
    "data.image_size=32",
    "data.n_images=160",
    "data.batch_size=16",
    "trainer.max_epochs=1",
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
    "eval.batch_size=32",
]


def make_cfg(*overrides: str, tmp_path: Path | None = None):
    extra = [f"tracking.dir={tmp_path / 'mlruns'}", "tracking.uri=null"] if tmp_path else []
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=[*TINY, *extra, *overrides])


def run_cli(*args: str, cwd: Path = ROOT, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [sys.executable, "-m", "covid_robustness", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def quiet_trainer(**kwargs) -> pl.Trainer:
    """A Lightning Trainer on the CPU that logs, checkpoints and prints nothing."""
    options = dict(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    return pl.Trainer(**{**options, **kwargs})


def store_runs(store: Path, study: str = "default", role: str | None = None) -> list:
    """The runs of a study in a test's embedded store (tracking.dir=store), newest first; one role if given."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(study)
    assert experiment is not None, f"no study {study!r} in {store}"
    runs = client.search_runs([experiment.experiment_id], max_results=1000, order_by=["attributes.start_time DESC"])
    return [r for r in runs if role is None or r.data.tags.get("role") == role]


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(store: Path, backend: str | None = None, host: str = "127.0.0.1", env: dict | None = None):
    """A real MLflow tracking server, started as `make server` starts it; yields its URI on 127.0.0.1."""
    port = _free_port()
    make = ["make", "server", f"PORT={port}", f"STORE={store}", f"HOST={host}"] + (
        [f"BACKEND={backend}"] if backend else []
    )
    store.mkdir(parents=True, exist_ok=True)
    log = open(store.parent / f"{store.name}.log", "w")
    server = subprocess.Popen(
        make, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    uri, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 120
    try:
        while True:
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=2).read()
                break
            except OSError:
                started = server.poll() is None and time.monotonic() < deadline
                assert started, f"the server did not start: {Path(log.name).read_text()[-3000:]}"
                time.sleep(1)
        yield uri
    finally:
        subprocess.run(["pkill", "-TERM", "-s", str(server.pid)])
        server.wait(timeout=30)
        log.close()


@pytest.fixture
def mlflow_server(tmp_path):
    """A tracking server over tmp_path/server (sqlite); its URI."""
    with served(tmp_path / "server") as uri:
        yield uri


def _postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    assert found, "PostgreSQL's server is not installed (.ci/run installs the distribution's package)"
    return found[-1].parent


@pytest.fixture
def postgres():
    """A throwaway PostgreSQL cluster on 127.0.0.1 with a database `mlflow`; its URI.

    The server refuses to run as root, so as root it runs as the distribution's `postgres` user.
    """
    bindir = _postgres_bin()
    as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    data = Path(tempfile.mkdtemp(prefix="covid-robustness-pg-"))
    if as_owner:
        shutil.chown(data, "postgres", "postgres")
    port = _free_port()

    def pg(tool: str, *args: str) -> None:
        subprocess.run([*as_owner, str(bindir / tool), *args], check=True, capture_output=True, cwd=data)

    pg("initdb", "-D", str(data / "db"), "-U", "mlflow", "--auth=trust")
    pg(
        "pg_ctl",
        "-D",
        str(data / "db"),
        "-l",
        str(data / "log"),
        "-w",
        "start",
        "-o",
        f"-p {port} -h 127.0.0.1 -k {data}",
    )
    try:
        pg("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow", "mlflow")
        yield f"postgresql://mlflow@127.0.0.1:{port}/mlflow"
    finally:
        pg("pg_ctl", "-D", str(data / "db"), "-m", "fast", "-w", "stop")
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="module")
def slurm():
    """A one-node SLURM cluster on 127.0.0.1 (tests/cluster/slurm.sh) for the module; the environment its
    client tools need. Without SLURM's packages the test fails (.ci/run installs them), it does not skip."""
    folder = Path(tempfile.mkdtemp(prefix="slurm-", dir="/tmp"))  # munge's socket path must stay short
    script = str(ROOT / "tests" / "cluster" / "slurm.sh")
    started = subprocess.run(["bash", script, "start", str(folder)], capture_output=True, text=True)
    assert started.returncode == 0, started.stderr
    try:
        yield {"SLURM_CONF": str(folder / "slurm.conf")}
    finally:
        subprocess.run(["bash", script, "stop", str(folder)], check=True)
        shutil.rmtree(folder, ignore_errors=True)
