from covid_robustness.evaluation.masking import Result, masking_flags


def r(run_id, attack, eps, acc, images=100, settings="s"):
    return Result(run_id, attack, settings, eps, acc, images)


def test_a_consistent_sweep_raises_no_flag():
    results = [r("f1", "fgsm", 0.01, 0.6), r("f2", "fgsm", 0.03, 0.3), r("p1", "pgd", 0.01, 0.4),
               r("p2", "pgd", 0.03, 0.1), r("p3", "pgd", 1.0, 0.0), r("st", "st", None, 0.5)]
    assert masking_flags(results) == {}


def test_accuracy_rising_with_eps_is_flagged_beyond_one_image():
    flags = masking_flags([r("a", "fgsm", 0.01, 0.30), r("b", "fgsm", 0.03, 0.305), r("c", "fgsm", 0.05, 0.5)])
    assert list(flags) == ["c"] and "rises with eps" in flags["c"][0]


def test_only_like_settings_are_compared():
    assert masking_flags([r("a", "pgd", 0.01, 0.3, settings="10 steps"), r("b", "pgd", 0.03, 0.5, settings="1 step")]) == {}


def test_pgd_weaker_than_fgsm_and_pgd_surviving_the_full_ball_are_flagged():
    flags = masking_flags([r("f", "fgsm", 0.03, 0.2), r("p", "pgd", 0.03, 0.4), r("p1", "pgd", 1.0, 0.3)])
    assert "above FGSM" in flags["p"][0]
    assert any("ball holds every image" in reason for reason in flags["p1"])


def test_pgd_and_fgsm_are_compared_only_within_one_defense_and_source():
    fgsm = Result("f", "fgsm", "s", 0.03, 0.2, 100, context="none None")
    assert masking_flags([fgsm, Result("p", "pgd", "s", 0.03, 0.6, 100, context="jpeg None")]) == {}
    assert "p" in masking_flags([fgsm, Result("p", "pgd", "s", 0.03, 0.6, 100, context="none None")])
