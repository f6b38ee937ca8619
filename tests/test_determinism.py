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
