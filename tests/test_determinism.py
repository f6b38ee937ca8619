"""The same config and seed on the CPU give the same numbers, run after run."""

from mlflow.tracking import MlflowClient

from .conftest import TINY, run_cli


def _metrics(store):
    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("default").experiment_id], "tags.role = 'attack'")
    assert len(runs) == 1
    return runs[0].data.metrics


def test_two_runs_of_one_config_agree(tmp_path):
    stores = [tmp_path / "a", tmp_path / "b"]
    for store in stores:  # separate stores: the second run must train and attack again, not resume
        result = run_cli(*TINY, "attack=pgd", "eval.max_images=32", "seed=7", f"tracking.dir={store}",
                         f"hydra.run.dir={store / 'out'}")
        assert result.returncode == 0, result.stderr[-2000:]
    first, second = (_metrics(s) for s in stores)
    for name in ("test/acc", "clean_accuracy", "adversarial_accuracy", "linf_mean", "l2_mean", "test/auroc"):
        assert first[name] == second[name], name


def test_a_cell_measures_the_same_whether_it_trained_the_model_or_loaded_it(tmp_path):
    """Training consumes random numbers; the attack (here with a random start) must not see the difference."""
    store = tmp_path / "store"
    for run in ("trains", "loads"):
        result = run_cli(*TINY, "attack=pgd", "attack.num_random_init=1", "eval.max_images=32", "resume=false",
                         f"tracking.dir={store}", f"hydra.run.dir={tmp_path / run}")
        assert result.returncode == 0, result.stderr[-2000:]
        assert ("reusing the trained" in result.stdout + result.stderr) == (run == "loads")
    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("default").experiment_id], "tags.role = 'attack'")
    first, second = (r.data.metrics for r in runs)
    for name in ("clean_accuracy", "adversarial_accuracy", "linf_mean", "l2_mean", "l2_max"):
        assert first[name] == second[name], name
