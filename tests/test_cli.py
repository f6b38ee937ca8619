"""What a user sees on the command line: bad input stops early with one sentence."""

import pytest

from covid_robustness.arguments import check
from covid_robustness.errors import ConfigError
from covid_robustness.job.plan import validate

from .conftest import make_cfg, run_cli


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["defense=jpeg", "defense.preprocessor.apply_fit=true"], "applies when the model predicts"),
        (["defense=gaussian_noise", "defense.evaluations=[oblivious]"], "its evaluations must include bpda_eot"),
        (["defense=adv_train_pgd", "defense.training.method=trades"], "defense.training.method='trades' is not known"),
        (["defense=jpeg", "defense.preprocessor._target_=art.defences.preprocessor.Nothing"], "cannot be built"),
        (["attack.source_model=resnet19"], "attack.source_model='resnet19' is not a model config"),
    ],
)
def test_bad_values_are_refused_by_the_jobs_check(overrides, message):
    """The check every job (and a sweep, for each of its jobs) runs before anything else; the command line's
    exit status and single sentence for these and the other mistakes: tests/test_bad_input.py."""
    with pytest.raises(ConfigError) as err:
        validate(make_cfg(*overrides))
    assert message in str(err.value)


def test_params_prints_table_one():
    result = run_cli("params")
    assert result.returncode == 0
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:6]}
    assert set(lines) == {"resnet18", "resnet50", "wrn16_8", "vgg19", "inception_v3"}
    assert "23,558,978" in lines["resnet50"] and "139,577,282" in lines["vgg19"]


def test_known_names_sweeps_and_hydras_own_settings_pass_the_check():
    check(["-m", "model=resnet18,vgg19", "attack=pgd,fgsm", "attack.eps=0.01,0.03", "+eval.max_images=4"])
    check(["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "experiment=null", "attack.eps=range(1,3)"])
    check(["--config-dir=/my/conf", "model=my_own_net"])  # options from elsewhere are Hydra's to find
    check(["attack=pgd_art_fast_std", "attack.max_iter=10", "attack.eps_unit=std"])  # settings of its defaults too
    check(["data=folder", "+data.n_images=160"])  # added on purpose
    check(["attack.max_iter=10", "eval.escalate=true", "trainer.max_epochs=2"])  # some option's setting, a node's


def test_the_launchers_settings_are_checked_with_the_sweep():
    from covid_robustness.job.sweep import check_launcher

    joblib = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    check_launcher({"_target_": joblib, "n_jobs": -1})
    with pytest.raises(ConfigError, match="hydra.launcher.n_jobs=0 must be a number of worker processes"):
        check_launcher({"_target_": joblib, "n_jobs": 0})
    slurm = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    check_launcher({"_target_": slurm, "timeout_min": 60, "nodes": 1})
    with pytest.raises(ConfigError, match="hydra.launcher.timeout_min=0 must be a whole number"):
        check_launcher({"_target_": slurm, "timeout_min": 0})
    check_launcher(None)  # Hydra's basic launcher: nothing to check
