"""The main job end to end: a real Hydra multirun into a real MLflow store."""

import os
from pathlib import Path

import torch
from mlflow.tracking import MlflowClient

from .conftest import TINY, run_cli, store_runs

METRICS = {
    "clean_accuracy",
    "adversarial_accuracy",
    "attack_success_rate",
    "covid_sensitivity_clean",
    "covid_sensitivity_adversarial",
    "linf_mean",
    "linf_max",
    "l2_mean",
    "l2_max",
    "attack_seconds",
    "test/acc",
    "test/sensitivity",
    "test/specificity",
    "test/auroc",
}


def test_multirun_trains_each_model_once_and_tracks_every_job(tmp_path):
    store = tmp_path / "mlruns"
    # SLURM's tools on the PATH, as on a cluster's login node: Lightning's srun hint must not show.
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "srun").write_text("#!/bin/sh\nexit 0\n")
    (tmp_path / "bin" / "srun").chmod(0o755)
    result = run_cli(
        "-m",
        "model=resnet18,wrn16_8",
        "attack=fgsm,pgd",
        "attack.eps=0.01,0.03",
        *TINY,
        "eval.max_images=16",
        "study=e2e",
        f"tracking.dir={store}",
        f"hydra.sweep.dir={tmp_path / 'multirun'}",
        env={"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"},
    )
    assert result.returncode == 0, result.stderr[-3000:]

    runs = store_runs(store, "e2e")
    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    training = {r.info.run_id: r for r in runs if r.data.tags.get("role") == "training"}
    jobs = [r for r in runs if r.data.tags.get("role") == "attack"]
    assert len(training) == 2 and len(jobs) == 8
    assert sorted(r.data.tags["model"] for r in training.values()) == ["resnet18", "wrn16_8"]
    assert all(r.info.status == "FINISHED" for r in runs)

    cells, pgd_passes = set(), []
    for job in jobs:
        parent = training[job.data.tags["mlflow.parentRunId"]]  # nested under the training it used
        assert parent.data.tags["model"] == job.data.params["model.name"]
        assert parent.data.tags["training_key"] == job.data.tags["training_key"]
        assert METRICS <= set(job.data.metrics), METRICS - set(job.data.metrics)
        eps = float(job.data.params["attack.eps"])
        assert job.data.metrics["linf_max"] <= eps + 1e-5
        assert job.data.tags["gradient_masking"] in ("true", "false")
        passes = job.data.metrics["attack_backward_passes"]
        if job.data.params["attack.name"] == "fgsm":
            assert passes == 1
        else:  # PGD-10 stops on an image at its first fooling iterate: 1 to 10 gradient passes per image
            assert 1 <= passes <= 10
            pgd_passes.append(passes)
        assert job.data.tags["mlflow.source.git.commit"] and "attack=" in job.data.tags["hydra.overrides"]
        assert f"{os.cpu_count()} cores" in job.data.tags["machine"]
        assert f"torch {torch.__version__.split('+')[0]}" in job.data.tags["library_versions"].split("; ")
        artifacts = {a.path for a in client.list_artifacts(job.info.run_id)}
        assert {"config.yaml", "examples.png", "examples.npz"} <= artifacts
        png = Path(client.download_artifacts(job.info.run_id, "examples.png", str(tmp_path)))
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        cells.add((job.data.params["model.name"], job.data.params["attack.name"], eps))
    assert len(cells) == 8
    assert sum(pgd_passes) / len(pgd_passes) < 10  # images that fall (or were wrong already) stop early

    for run in training.values():  # the training run holds the curves
        history = client.get_metric_history(run.info.run_id, "val/acc")
        assert len(history) == 1 and Path(run.data.tags["checkpoint"]).is_file()
        assert run.data.metrics["model_parameters"] > 0 and run.data.tags["model_label"] in ("RN-18", "WRN-16-8")

    # The UI names the data: a dataset input per run, the same digest for every job of one data config.
    digests = {i.dataset.digest for j in jobs for i in client.get_run(j.info.run_id).inputs.dataset_inputs}
    assert len(digests) == 1
    # Each trained model is listed in the Models tab with its parameter counts.
    models = client.search_logged_models([client.get_experiment_by_name("e2e").experiment_id])
    assert sorted(m.source_run_id for m in models) == sorted(training)
    assert all(int(m.params["parameters"]) > 0 for m in models)

    # A quiet console that ends with the answer: no Lightning tip or banner, no ART INFO line, no deprecation.
    console = result.stdout + result.stderr
    noises = ("Tip:", "GPU available", "Success rate of", "deprecated", "Testing DataLoader", "srun", "ART_DATA_PATH")
    noises += ("Creating initial MLflow database tables",)  # MLflow's INFO lines on a new store
    for noise in (*noises, "logging interval"):
        assert noise not in console, noise
    table = result.stdout[result.stdout.index("study e2e: 8 of 8 cells finished") :]
    cells = table[: table.index("Look further:")]
    assert max(len(line) for line in cells.splitlines()) <= 100, cells
    assert len([line for line in table.splitlines() if line.startswith(("resnet18 ", "wrn16_8 "))]) == 8
    assert "make ui" in table and "make report STUDY=e2e" in table
    experiment = client.get_experiment_by_name("e2e").experiment_id  # the link opens the runs, not GenAI screens
    assert f"http://127.0.0.1:5000/#/experiments/{experiment}/runs?viewStateShareKey=accuracy&" in table


def test_jobs_of_a_sweep_leave_the_masking_flags_to_its_end(tmp_path):
    from covid_robustness.job.masking import flag_masking
    from covid_robustness.job.run import run
    from covid_robustness.tracking import Tracker

    from .conftest import make_cfg

    cfgs = [
        make_cfg("attack=fgsm", f"attack.eps={eps}", "eval.max_images=16", tmp_path=tmp_path) for eps in (0.01, 0.03)
    ]
    for cfg in cfgs:
        run(cfg, sweep=True)
    jobs = store_runs(tmp_path / "mlruns", role="attack")
    assert len(jobs) == 2 and not any("gradient_masking" in j.data.tags for j in jobs)  # no job wrote on another
    flag_masking(Tracker.from_config(cfgs[0]))  # what the sweep's end does
    assert all(
        j.data.tags["gradient_masking"] in ("true", "false") for j in store_runs(tmp_path / "mlruns", role="attack")
    )
    run(make_cfg("attack=fgsm", "attack.eps=0.02", "eval.max_images=16", tmp_path=tmp_path))  # a job run alone
    assert all("gradient_masking" in j.data.tags for j in store_runs(tmp_path / "mlruns", role="attack"))
