"""The same config and seed on the CPU give the same numbers, run after run, trained or loaded."""

from .conftest import TINY, run_cli, store_runs


def _metrics(store) -> list[dict]:
    return [r.data.metrics for r in reversed(store_runs(store, role="attack"))]


def test_one_config_measures_the_same_in_a_new_store_and_from_the_cache(tmp_path):
    """Store b trains again; the rerun in store a loads a's checkpoint. Training consumes random numbers,
    and the attack (here with a random start) must not see the difference."""
    a, b = tmp_path / "a", tmp_path / "b"
    for store, run in ((a, "trains"), (b, "trains"), (a, "loads")):
        result = run_cli(
            *TINY,
            "attack=pgd",
            "attack.num_random_init=1",
            "eval.max_images=32",
            "seed=7",
            "resume=false",
            f"tracking.dir={store}",
            f"hydra.run.dir={tmp_path / 'out'}",
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert ("reusing the trained" in result.stdout + result.stderr) == (run == "loads")
    (first, loaded), (second,) = _metrics(a), _metrics(b)
    for name in ("test/acc", "clean_accuracy", "adversarial_accuracy", "linf_mean", "l2_mean", "l2_max", "test/auroc"):
        assert first[name] == second[name] == loaded[name], name


def test_a_study_that_trains_as_another_did_reads_that_training(tmp_path):
    """One store, two studies with one training recipe: the second reads the first's training (and its
    checkpoint) instead of training again, and its report still counts the model's parameters."""
    from mlflow.tracking import MlflowClient

    from covid_robustness.report.collect import collect
    from covid_robustness.report.pages import build

    store = tmp_path / "store"
    for study, attack in (("first", "fgsm"), ("second", "pgd")):
        out = f"hydra.run.dir={tmp_path / study}"
        result = run_cli(*TINY, f"attack={attack}", "eval.max_images=8", f"study={study}", f"tracking.dir={store}", out)
        assert result.returncode == 0, result.stderr[-2000:]
        assert ("reusing the trained" in result.stdout + result.stderr) == (study == "second")
    (training,) = store_runs(store, "first", role="training")
    assert store_runs(store, "second", role="training") == []
    (job,) = store_runs(store, "second", role="attack")
    assert job.data.tags["mlflow.parentRunId"] == training.info.run_id
    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    build(collect(client, "second"), tmp_path / "report")
    table1 = (tmp_path / "report" / "report.md").read_text().split("## Table I: parameters")[1].split("\n## ")[0]
    assert f"| {int(training.data.metrics['model_parameters']):,} |" in table1
