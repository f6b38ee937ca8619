"""Extending the grid: a model and an attack of one's own, each a Python file plus its yaml, run in a sweep."""

import os
import textwrap

from .conftest import TINY, run_cli, store_runs

TOY = """
import numpy as np
from art.attacks.evasion import FastGradientMethod
from torch import nn

from covid_robustness.attacks import register_attack
from covid_robustness.models.registry import register


@register("toy_net", min_size=8, label="Toy net")
def toy_net(num_classes, **kwargs):
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(16, num_classes))


@register_attack("toy_fgm", needs_eps=True, takes_eps=True, label="Toy FGM")
def toy_fgm(classifier, eps, params):
    return FastGradientMethod(classifier, norm=np.inf, eps=eps, **params)
"""


def test_a_toy_model_and_a_toy_attack_run_in_a_sweep_without_editing_the_package(tmp_path):
    (tmp_path / "toy_ext.py").write_text(textwrap.dedent(TOY))
    conf = tmp_path / "conf"
    (conf / "model").mkdir(parents=True)
    (conf / "attack").mkdir()
    (conf / "model" / "toy_net.yaml").write_text("name: toy_net\n")
    (conf / "attack" / "toy_fgm.yaml").write_text(
        "name: toy_fgm\nimpl: art\nsetting: budget\neps: 0.03\neps_unit: pixel\nsource_model: null\nbatch_size: 32\n"
    )
    os.environ["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    try:
        result = run_cli(
            "-m",
            *TINY,
            "model=toy_net",
            "attack=toy_fgm",
            "plugins=[toy_ext]",
            f"hydra.searchpath=[file://{conf}]",
            f"tracking.dir={tmp_path / 'mlruns'}",
            f"hydra.sweep.dir={tmp_path / 'multirun'}",
            "study=toy",
        )
    finally:
        os.environ["PYTHONPATH"] = os.environ["PYTHONPATH"].removeprefix(f"{tmp_path}{os.pathsep}")
    assert result.returncode == 0, result.stderr[-3000:]
    runs = store_runs(tmp_path / "mlruns", "toy")
    job = next(r for r in runs if r.data.tags["role"] == "attack")
    training = next(r for r in runs if r.data.tags["role"] == "training")
    assert job.data.params["model.name"] == "toy_net" and job.data.params["attack.name"] == "toy_fgm"
    assert job.data.tags["model_label"] == "Toy net"
    assert job.data.metrics["linf_max"] <= 0.03 + 1e-6 and "adversarial_accuracy" in job.data.metrics
    assert training.data.metrics["model_parameters"] == 4 * 9 + 4 + 8 + 16 * 2 + 2
    # The sweep ends with its table of cells.
    assert "make report STUDY=toy" in result.stdout, result.stderr[-3000:]
    table = result.stdout[result.stdout.index("study toy: 1 of 1 cells finished") :]
    assert "toy_net" in table and "toy_fgm" in table
