"""Everything is checked before anything runs: each attack's own parameters, every experiment's jobs."""

import pytest
from hydra import compose, initialize_config_dir

from covid_robustness.errors import ConfigError
from covid_robustness.job.plan import validate
from covid_robustness.job.sweep import job_configs

from .conftest import CONF, SHARED_CXR, TINY, make_cfg, run_cli

# One bad parameter per attack config, as ART (or our implementation) checks it.
BAD = [
    ("fgsm", "attack.batch_size=0"),
    ("pgd", "attack.max_iter=-3"),
    ("pgd_art_std", "attack.max_iter=-3"),
    ("fgsm_art_fast", "attack.batch_size=0"),
    ("pgd_art_fast_std", "attack.max_iter=-3"),
    ("apgd", "attack.max_iter=-3"),
    ("autoattack_binary", "attack.max_iter=-3"),
    ("cw", "attack.max_iter=-3"),
    ("cw_art", "attack.max_iter=-3"),
    ("cw_l2", "attack.binary_search_steps=-1"),
    ("cw_l2", "attack.norm=inf"),
    ("st", "attack.max_translation=-5"),
    ("st_art", "attack.max_translation=-5"),
    ("deepfool_art", "attack.max_iter=-3"),
    ("none", "+attack.max_iter=3"),  # no attack takes no setting
    ("radius", "attack.steps=0"),
    ("radius", "attack.eps=0"),  # the largest budget searched must be positive
    ("pgd", "attack.target_class=Pneumonia-Viral"),  # not a class of the binary task
    ("apgd", "attack.target_class=normal"),  # class names are spelled as the task's
    ("pgd", "attack.norm=1"),  # L-inf or L2
    ("fgsm_art", "attack.norm=1"),
    ("apgd", "attack.norm=two"),
]


@pytest.mark.parametrize("attack", ["fgsm", "pgd", "apgd", "cw", "fgsm_art", "pgd_art_fast", "cw_art"])
def test_a_target_class_validates_for_the_targeted_attacks_and_is_refused_for_st(attack):
    validate(make_cfg(f"attack={attack}", "attack.target_class=Normal"))
    with pytest.raises(ConfigError, match="no targeted form"):
        validate(make_cfg("attack=st", "+attack.target_class=Normal"))


def test_every_attack_config_has_a_bad_parameter_case():
    assert {p.stem for p in (CONF / "attack").glob("*.yaml")} - {name for name, _ in BAD} <= {
        "fgsm_art",
        "fgsm_art_std",
        "pgd_art",
        "fgsm_art_fast_std",
        "pgd_art_fast",
        "cw_art_fast",
        "st_art_rule",
        "pgd_toward_normal",
        "pgd_toward_covid",
        "certify",  # needs a smoothed classifier: tested below
    }  # variants of a config above


def test_certify_needs_a_smoothed_classifier_and_checks_its_settings():
    validate(make_cfg("attack=certify", "defense=smoothing"))
    validate(make_cfg("attack=pgd", "attack.norm=2", "attack.eps=1.5"))  # an L2 length may exceed 1
    with pytest.raises(ConfigError, match="choose defense=smoothing"):
        validate(make_cfg("attack=certify"))
    for bad in ("attack.alpha=2", "attack.n=0", "attack.radii=[]", "attack.radii=[0.5,-1]", "+attack.eps_step=0.1"):
        with pytest.raises(ConfigError):
            validate(make_cfg("attack=certify", "defense=smoothing", bad))
    with pytest.raises(ConfigError, match="sigma=0 must be a positive noise level"):
        validate(make_cfg("attack=certify", "defense=smoothing", "defense.sigma=0"))


@pytest.mark.parametrize("attack, override", BAD)
def test_an_attacks_bad_parameter_is_refused_before_training(attack, override):
    validate(make_cfg(f"attack={attack}"))  # the config as shipped passes
    with pytest.raises(ConfigError):
        validate(make_cfg(f"attack={attack}", override))


def test_a_bad_attack_parameter_stops_the_job_before_it_trains(tmp_path):
    result = run_cli(
        *TINY,
        "attack=pgd",
        "attack.max_iter=-3",
        f"tracking.dir={tmp_path / 'mlruns'}",
        f"hydra.run.dir={tmp_path / 'out'}",
        timeout=120,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "attack pgd rejects its parameters" in result.stderr
    assert not (tmp_path / "mlruns" / "checkpoints").exists()  # nothing trained


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (CONF / "experiment").glob("*.yaml")))
def test_every_job_of_every_experiment_validates(experiment):
    overrides = [f"experiment={experiment}"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        config = compose("config", overrides=overrides, return_hydra_config=True)
        if config.data.source == "folder":  # the shared chest X-rays stand in for the user's folder
            config = compose("config", overrides=[*overrides, f"data.root={SHARED_CXR}"], return_hydra_config=True)
        jobs = job_configs(config)
        assert len(jobs) >= 1
        for job_overrides, cfg in jobs:
            assert validate(cfg) is not None, job_overrides
