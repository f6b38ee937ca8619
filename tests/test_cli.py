"""What a user sees on the command line: bad input stops early with one sentence."""

import pytest

from covid_robustness.arguments import check
from covid_robustness.errors import ConfigError
from covid_robustness.job.plan import validate

from .conftest import make_cfg, run_cli


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["attack.eps=-0.1"], "attack.eps=-0.1 is out of range"),
        (["data=folder"], "data.root is not set"),
        (["data=folder", "data.root=/no/such/folder"], "data.root='/no/such/folder' is not a directory"),
        # A key no config has, caught before Hydra composes (the other names: test_unknown_names_...).
        (["+atack.eps=0.1"], "+atack.eps=0.1: no config has a key 'atack'. Did you mean 'attack'?"),
    ],
)
def test_bad_values_stop_before_training_with_one_sentence(tmp_path, overrides, message):
    result = run_cli(
        "trainer.max_epochs=1", f"tracking.dir={tmp_path / 'mlruns'}", f"hydra.run.dir={tmp_path / 'out'}", *overrides
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert not (tmp_path / "mlruns").exists()  # stopped before any store, run or training


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["attack=pgd", "attack.eps=2"], "attack.eps=2 is out of range"),
        (["attack.eps=abc"], "attack.eps='abc' is not a number"),
        (["attack=st", "attack.eps=0.03"], "attack st has no epsilon"),
        (["model=inception_v3", "data.image_size=64"], "too small for inception_v3, which needs at least 75 px"),
        (["model.name=resnet19"], "model 'resnet19' is not registered"),
        (["data.task=three_class"], "data.task='three_class' is not a task"),
        (["data.test_fraction=1.5"], "data.test_fraction=1.5 must lie strictly between 0 and 1"),
        (["defense=jpeg", "defense.preprocessor.apply_fit=true"], "applies when the model predicts"),
        (["defense=gaussian_noise", "defense.evaluations=[oblivious]"], "its evaluations must include bpda_eot"),
        (["defense=adv_train_pgd", "defense.training.method=trades"], "defense.training.method='trades' is not known"),
        (["defense=jpeg", "defense.preprocessor._target_=art.defences.preprocessor.Nothing"], "cannot be built"),
        (["attack.source_model=resnet19"], "attack.source_model='resnet19' is not a model config"),
        (["defense=jpeg", "defense.preprocessor._target_=os.system"], "is not one of ART's preprocessors"),
    ],
)
def test_bad_values_are_refused_by_the_jobs_check(overrides, message):
    """The check every job (and a sweep, for each of its jobs) runs before anything else: in-process here,
    the command line's exit status and single sentence are tested above."""
    with pytest.raises(ConfigError) as err:
        validate(make_cfg(*overrides))
    assert message in str(err.value)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["attack.epss=0.1"], "Key 'epss' is not in struct"),
    ],
)
def test_unknown_names_and_keys_are_refused_by_hydra(tmp_path, overrides, message):
    result = run_cli(f"tracking.dir={tmp_path / 'mlruns'}", f"hydra.run.dir={tmp_path / 'out'}", *overrides)
    assert result.returncode != 0 and message in result.stderr


def test_params_prints_table_one():
    result = run_cli("params")
    assert result.returncode == 0
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:6]}
    assert set(lines) == {"resnet18", "resnet50", "wrn16_8", "vgg19", "inception_v3"}
    assert "23,558,978" in lines["resnet50"] and "139,577,282" in lines["vgg19"]


@pytest.mark.parametrize(
    "sweep, message",
    [
        (["attack=fgsm", "attack.eps=0.01,2"], "job #1 of 2 (attack=fgsm attack.eps=2"),
        (["data.test_fraction=0.2,1.5"], "job #1 of 2 (data.test_fraction=1.5 "),
    ],
)
def test_a_bad_job_stops_the_whole_sweep_before_any_training(tmp_path, sweep, message):
    result = run_cli(
        "-m",
        *sweep,
        "trainer.max_epochs=1",
        f"tracking.dir={tmp_path / 'mlruns'}",
        f"hydra.sweep.dir={tmp_path / 'multirun'}",
    )
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert (
        "is out of range" in result.stderr
        or "data.test_fraction=1.5 must lie strictly between 0 and 1" in result.stderr
    )
    assert not (tmp_path / "mlruns").exists()  # job #0 did not run either


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model=resnet99"], "model=resnet99: there is no conf/model/resnet99.yaml. Did you mean 'resnet50'?"),
        (["-m", "model=resnet18,resnet99"], "model=resnet99: there is no conf/model/resnet99.yaml"),
        (["attack=foo"], "attack=foo: there is no conf/attack/foo.yaml"),
        (["experiment=nope"], "experiment=nope: there is no conf/experiment/nope.yaml"),
        (["atack.eps=0.1"], "atack.eps=0.1: no config has a key 'atack'. Did you mean 'attack'?"),
        (["+atack.eps=0.1"], "+atack.eps=0.1: no config has a key 'atack'. Did you mean 'attack'?"),
        (["model=efficientnet_b0"], "'efficientnet_b0' is a timm model: it needs no file, run it with model.name="),
        (["data=folder", "data.n_images=160"], "data.n_images=160: data=folder has no setting 'n_images'."),
        (["attack=pgd", "attack.epss=0.1"], "attack=pgd has no setting 'epss'. Did you mean 'eps'?"),
    ],
)
def test_unknown_names_are_refused_before_hydra_with_the_nearest_known_one(overrides, message):
    with pytest.raises(ConfigError) as err:
        check(overrides)
    assert message in str(err.value)


def test_known_names_sweeps_and_hydras_own_settings_pass_the_check():
    check(["-m", "model=resnet18,vgg19", "attack=pgd,fgsm", "attack.eps=0.01,0.03", "+eval.max_images=4"])
    check(["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "experiment=null", "attack.eps=range(1,3)"])
    check(["--config-dir=/my/conf", "model=my_own_net"])  # options from elsewhere are Hydra's to find
    check(["attack=pgd_art_fast_std", "attack.max_iter=10", "attack.eps_unit=std"])  # settings of its defaults too
    check(["data=folder", "+data.n_images=160"])  # added on purpose


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
