import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

import covid_robustness  # noqa: F401  (registers the ${px:} resolver)

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SHARED_CXR = ROOT.parent / "shared" / "data" / "cxr"

torch.set_num_threads(2)
# Decoded-image caches of the tests (and the jobs they start) stay out of the user's cache.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="covid-robustness-test-cache-")

# Small everything: 32 px synthetic images, one short epoch, CPU.
TINY = ["data.image_size=32", "data.n_images=160", "data.batch_size=16", "trainer.max_epochs=1",
        "trainer.accelerator=cpu", "trainer.enable_progress_bar=false", "eval.batch_size=32"]


def make_cfg(*overrides: str, tmp_path: Path | None = None):
    extra = [f"tracking.dir={tmp_path / 'mlruns'}", "tracking.uri=null"] if tmp_path else []
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=[*TINY, *extra, *overrides])


def run_cli(*args: str, cwd: Path = ROOT, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-m", "covid_robustness", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
