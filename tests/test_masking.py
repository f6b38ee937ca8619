from types import SimpleNamespace

from covid_robustness.record.masking import Result, masking_flags


def r(run_id, attack, eps, acc, images=100, settings="s", **kwargs):
    return Result(run_id, attack, settings, eps, acc, images, **kwargs)


def test_a_consistent_sweep_raises_no_flag():
    results = [
        r("f1", "fgsm", 0.01, 0.6),
        r("f2", "fgsm", 0.03, 0.3),
        r("p1", "pgd", 0.01, 0.4, max_iter=10),
        r("p2", "pgd", 0.03, 0.1, max_iter=10),
        r("p3", "pgd", 1.0, 0.0, max_iter=10),
        r("q1", "pgd", 0.01, 0.35, max_iter=100, settings="100 steps"),
        r("a1", "apgd", 0.01, 0.3, max_iter=100),
        r("aa", "autoattack_binary", 0.01, 0.3, max_iter=100),
        r("st", "st", None, 0.5, clean_accuracy=0.9),
        r("c", "cw", None, 0.0, clean_accuracy=0.9),
    ]
    assert masking_flags(results) == {}


def test_accuracy_rising_with_eps_is_flagged_beyond_one_image():
    flags = masking_flags([r("a", "fgsm", 0.01, 0.30), r("b", "fgsm", 0.03, 0.305), r("c", "fgsm", 0.05, 0.5)])
    assert list(flags) == ["c"] and "rises with eps" in flags["c"][0]


def test_accuracy_rising_with_eps_is_compared_between_every_two_budgets():
    # Each neighbour within one image of the last, yet 0.218 at eps 0.03 is two images above 0.200 at 0.01.
    creeping = [r("a", "pgd", 0.01, 0.200), r("b", "pgd", 0.02, 0.209), r("c", "pgd", 0.03, 0.218)]
    assert list(masking_flags(creeping)) == ["c"]
    # A dip and a partial recovery: 0.3 at eps 0.03 is above 0.1 at 0.01, though below 0.5 at 0.02.
    flags = masking_flags([r("a", "pgd", 0.01, 0.1), r("b", "pgd", 0.02, 0.5), r("c", "pgd", 0.03, 0.3)])
    assert sorted(flags) == ["b", "c"] and "0.100 at 0.0100" in flags["c"][0]


def test_only_like_settings_are_compared():
    assert (
        masking_flags([r("a", "pgd", 0.01, 0.3, settings="10 steps"), r("b", "pgd", 0.03, 0.5, settings="1 step")])
        == {}
    )


def test_pgd_weaker_than_fgsm_and_pgd_surviving_the_full_ball_are_flagged():
    flags = masking_flags([r("f", "fgsm", 0.03, 0.2), r("p", "pgd", 0.03, 0.4), r("p1", "pgd", 1.0, 0.3)])
    assert "above FGSM" in flags["p"][0]
    assert any("ball holds every image" in reason for reason in flags["p1"])


def test_pgd_and_fgsm_are_compared_only_within_one_defense_and_source():
    fgsm = Result("f", "fgsm", "s", 0.03, 0.2, 100, context="none None")
    assert masking_flags([fgsm, Result("p", "pgd", "s", 0.03, 0.6, 100, context="jpeg None")]) == {}
    assert "p" in masking_flags([fgsm, Result("p", "pgd", "s", 0.03, 0.6, 100, context="none None")])


def test_a_stronger_attack_leaving_more_images_correct_is_flagged():
    pgd = r("p", "pgd", 0.03, 0.30, max_iter=10)
    flags = masking_flags(
        [pgd, r("a", "apgd", 0.03, 0.40, max_iter=100), r("aa", "autoattack_binary", 0.03, 0.35, max_iter=100)]
    )
    assert flags["a"] == ["APGD-100 accuracy 0.400 above PGD-10's 0.300 at eps 0.0300"]
    assert "above PGD-10's" in flags["aa"][0]  # the weakest evaluation it should beat: PGD's 0.30, not APGD's
    flags = masking_flags([pgd, r("p100", "pgd", 0.03, 0.35, max_iter=100, settings="100 steps")])
    assert "PGD-100 accuracy 0.350 above PGD-10's" in flags["p100"][0]


def test_stronger_attacks_are_not_flagged_within_one_image_or_with_fewer_steps_or_elsewhere():
    pgd = r("p", "pgd", 0.03, 0.30, max_iter=100)
    assert masking_flags([pgd, r("a", "apgd", 0.03, 0.31, max_iter=100)]) == {}  # one image of slack
    assert masking_flags([pgd, r("a", "apgd", 0.03, 0.40, max_iter=20)]) == {}  # APGD-20 need not beat PGD-100
    assert masking_flags([pgd, r("a", "apgd", 0.03, 0.40, max_iter=100, images=50)]) == {}
    assert masking_flags([pgd, r("a", "apgd", 0.03, 0.40, max_iter=100, context="jpeg None")]) == {}
    assert masking_flags([pgd, r("a", "apgd", 0.02, 0.40, max_iter=100)]) == {}
    assert masking_flags([pgd, r("c", "cw", 0.03, 0.40, max_iter=10)]) == {}  # C&W is outside the order


def test_every_gradient_attack_surviving_the_full_ball_is_flagged():
    flags = masking_flags(
        [
            r("f", "fgsm", 1.0, 0.3),
            r("a", "apgd", 1.0, 0.2, max_iter=100, settings="a"),
            r("aa", "autoattack_binary", 1.0, 0.2, settings="aa"),
            r("c", "cw", 1.0, 0.5, settings="c"),
            r("ok", "apgd", 1.0, 0.05, settings="ok"),
        ]
    )
    assert sorted(flags) == ["a", "aa", "c", "f"]
    assert all(any("the ball holds every image" in reason for reason in reasons) for reasons in flags.values())


def test_no_attack_success_on_a_one_class_model_is_flagged():
    untrained = dict(clean_accuracy=0.5, untrained=True)
    flags = masking_flags(
        [
            r("f", "fgsm", 0.03, 0.5, **untrained),
            r("c", "cw", None, 0.5, **untrained),
            r("p", "pgd", 0.03, 0.4, **untrained),  # it fooled some: no flag
            r("st", "st", None, 0.5, **untrained),  # no gradient
            r("t", "pgd", 0.01, 0.5, clean_accuracy=0.5),
        ]
    )  # a trained model that resists
    assert sorted(flags) == ["c", "f"]
    assert "predicts one class: zero attack success says nothing about robustness" in flags["f"][0]


def test_a_defended_job_whose_defense_aware_attack_does_worse_is_flagged():
    def defended(run_id, **accuracy):
        return r(
            run_id,
            "pgd",
            0.03,
            min(accuracy.values()),
            context="jpeg None",
            settings=run_id,
            by_evaluation=tuple(accuracy.items()),
        )

    flags = masking_flags(
        [
            defended("b", oblivious=0.3, bpda=0.5),
            defended("e", oblivious=0.3, bpda=0.3, bpda_eot=0.32),
            defended("ok", oblivious=0.5, bpda=0.2, bpda_eot=0.305),
        ]
    )
    assert sorted(flags) == ["b", "e"]
    assert flags["b"] == ["bpda accuracy 0.500 above oblivious's 0.300: the attacker who sees the defense does worse"]
    assert flags["e"][0].startswith("bpda_eot accuracy 0.320")


def _run(run_id, attack, eps, accuracy, clean=0.5, untrained="false", **metrics):
    params = {
        "attack.name": attack,
        "attack.eps": str(eps),
        "attack.max_iter": "10" if attack != "fgsm" else "None",
        "attack.source_model": "None",
        "model.name": "resnet18",
        "defense.name": "jpeg",
        "eval.max_images": "64",
    }
    return SimpleNamespace(
        info=SimpleNamespace(run_id=run_id, start_time=0, end_time=0),
        data=SimpleNamespace(
            params=params,
            tags={"untrained_model": untrained, "mlflow.parentRunId": "parent"},
            metrics={"adversarial_accuracy": accuracy, "attack_images": 100.0, "clean_accuracy": clean, **metrics},
        ),
    )


def test_the_flags_are_built_from_the_job_records_params_metrics_and_tags():
    from covid_robustness.record import Job
    from covid_robustness.record.masking import study_flags

    runs = [
        _run("f", "fgsm", 0.03, 0.2),
        _run("p", "pgd", 0.03, 0.2, adversarial_accuracy_oblivious=0.2, adversarial_accuracy_bpda=0.4),
        _run("u", "pgd", 0.01, 0.5, untrained="true"),
        _run("s", "pgd", 2 / 255, 0.2, eps_pixel=1.0),
    ]
    flags = study_flags([Job.from_run(r) for r in runs])
    assert set(flags) == {"p", "u", "s"}
    assert "bpda accuracy 0.400" in "; ".join(flags["p"])
    assert "predicts one class" in "; ".join(flags["u"])
    assert "PGD-10 accuracy 0.200 at eps 1.0" in "; ".join(flags["s"])  # eps in std units, 1 in pixels
