"""The report's rules on hand-made jobs: rows by cell, seeds, intervals, paper rows, averages, budgets, flags."""

import itertools
from dataclasses import replace

import pytest

from covid_robustness.record.intervals import overlap, wilson
from covid_robustness.report import blocks, defenses, figures, paper_eps, records, tables
from covid_robustness.report.collect import Job, Study, newest_per_cell
from covid_robustness.report.estimate import escalated, measured
from covid_robustness.report.labels import Labels
from covid_robustness.report.summary import CLEAN, MODELS, PAPER_TABLE2, average, paper_average, rows, sweeps

PX = 1 / 255
STD = 0.2  # normalisation std of the hand-made data: 0.3 std = 0.06 = 15.3/255
_clock = itertools.count(1_700_000_000_000, 1000)
NAMES = Labels()  # hand-made jobs carry no labels: the paper's names


def job(
    model: str = "resnet18",
    attack: str = "fgsm",
    eps: float | None = 8 * PX,
    acc: float = 0.5,
    n: int = 64,
    seed: int = 0,
    setting: str = "budget",
    impl: str = "art",
    unit: str = "pixel",
    defense: str = "none",
    params: dict | None = None,
    metrics: dict | None = None,
    **fields,
) -> Job:
    """A finished job run as collect() reads it; later calls are newer runs."""
    p = {
        "model.name": model,
        "attack.name": attack,
        "attack.setting": setting,
        "attack.impl": impl,
        "attack.eps": str(eps),
        "attack.source_model": "None",
        "defense.name": defense,
        "seed": str(seed),
        "data.image_size": "75",
        "eval.max_images": str(n),
        "eval.n_examples": "6",
        "study": "s",
        "tracking.dir": "mlruns",
        "resume": "true",
        **({} if unit == "pixel" else {"attack.eps_unit": unit}),
        **(params or {}),
    }
    pixel = None if eps is None else eps * (STD if unit == "std" else 1.0)
    m = {
        "adversarial_accuracy": acc,
        "attack_images": float(n),
        "clean_accuracy": 1.0,
        "test/acc": 0.97,
        "test_images": 480.0,
        "test/sensitivity": 0.95,
        "test/specificity": 0.98,
        "test/auroc": 0.99,
        "covid_sensitivity_clean": 1.0,
        "covid_sensitivity_adversarial": acc,
        "attack_success_rate": 1 - acc,
        "linf_max": pixel or 0.0,
        "l2_mean": 1.0,
        "attack_seconds": 1.0,
        **({} if pixel is None else {"eps_pixel": pixel, "eps_std": pixel / STD}),
        **(metrics or {}),
    }
    run_id = f"{next(_clock):x}"
    return Job(
        run_id=run_id,
        start_time=int(run_id, 16),
        model=model,
        attack=attack,
        setting=setting,
        impl=impl,
        eps=eps,
        training_run_id=f"train-{model}-{seed}-{defense}",
        params=p,
        metrics=m,
        masking=fields.pop("masking", False),
        masking_reasons=fields.pop("masking_reasons", ""),
        defense=defense,
        seed=str(seed),
        **fields,
    )


def study(*jobs: Job) -> Study:
    """A study as collect() builds it: newest first, one job per cell."""
    kept, replaced = newest_per_cell(sorted(jobs, key=lambda j: -j.start_time))
    return Study("s", "sqlite://", "0", kept, replaced)


def _row(table_rows, label: str):
    return next(r for r in table_rows if r.label == label)


# 1. Rows keyed by the cell


def test_runs_that_differ_in_any_setting_are_rows_not_reruns():
    s = study(job(n=16, acc=0.25), job(n=64, acc=0.5))
    assert not s.replaced and len(s.jobs) == 2
    labels = [r.label for r in rows(s) if r.attack == "fgsm" and r.evalset]
    assert labels == ["FGSM eps=8/255 (eval.max_images=16)", "FGSM eps=8/255 (eval.max_images=64)"]


def test_seeds_escalated_from_other_sources_are_seeds_of_one_row():
    sources = {"eval.escalate": "True", "eval.escalate_sources": "['resnet18', 'vgg19']"}
    fewer = {**sources, "eval.escalate_sources": "['resnet18']"}
    s = study(job(acc=0.25, params=sources), job(acc=0.5, seed=1, params=fewer), job(acc=0.75, seed=2, params=fewer))
    (row,) = [r for r in rows(s) if r.attack == "fgsm" and r.evalset]
    assert row.label == "FGSM eps=8/255" and row.accuracy["resnet18"].seeds == 3
    assert row.accuracy["resnet18"].mean == pytest.approx(0.5)


def test_seeds_that_draw_their_own_split_are_seeds_of_one_row():
    """A folder's split is drawn with the job's seed (data.seed = seed), so each seed has its own std and an
    eps in std units its own pixel budget: still seeds of one row, clean and attacked."""
    std = {"attack.eps_unit": "std", "attack.setting": "art_default"}
    s = study(
        *(
            job(eps=0.3, acc=a, seed=k, unit="std", params={**std, "data.seed": str(k)}, metrics={"eps_pixel": px})
            for k, a, px in ((0, 0.25, 17.7 / 255), (1, 0.5, 17.6 / 255), (2, 0.75, 17.6 / 255))
        ),
        job(eps=0.3, acc=0.1, seed=0, unit="std", params={**std, "data.seed": "5"}),  # a split drawn otherwise
    )
    clean = [r for r in rows(s) if r.attack == CLEAN]
    attacked = [r for r in rows(s) if r.attack == "fgsm" and r.evalset]
    assert len(clean) == len(attacked) == 2
    three = next(r for r in attacked if r.accuracy["resnet18"].seeds == 3)
    assert three.label.startswith("FGSM eps=0.3 std = 17.6/255") and "data.seed=5" not in three.label
    assert three.accuracy["resnet18"].mean == pytest.approx(0.5)
    assert any("data.seed=5" in r.label for r in attacked)


def test_figure_3_marks_what_stands_after_escalation_on_each_escalated_bar():
    after = {"escalated_accuracy": 0.25, "escalation_images": 20}
    s = study(job("resnet18", "pgd", acc=0.5, metrics=after), job("vgg19", "pgd", acc=0.5), job("vgg19", "fgsm"))
    fig = figures.accuracy_bars(figures.bar_rows(rows(s)), NAMES)
    marks = [line for line in fig.axes[0].get_lines() if line.get_marker() == figures.ESCALATED_MARKER]
    assert [m.get_ydata()[0] for m in marks] == [25.0]  # RN-18's PGD bar only: the other bars were not escalated
    assert "escalated: what stands after the ladder" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_seeds_counting_different_images_name_the_pooled_value_their_interval_belongs_to():
    from covid_robustness.report.estimate import Estimate

    unequal, equal = Estimate((0.5, 0.0), (10, 30)), Estimate((0.5, 0.25), (20, 20))
    lo, hi = wilson(5, 40)
    assert unequal.text() == f"25.00 (0.00-50.00, 2 seeds; pooled 12.50) [{100 * lo:.1f}, {100 * hi:.1f}]"
    assert "pooled" not in equal.text() and equal.text().startswith("37.50 (25.00-50.00, 2 seeds) [")


def test_same_cell_key_is_a_rerun_and_the_newest_is_kept():
    old, new = job(acc=0.25, cell_key="c1"), job(acc=0.5, cell_key="c1")
    s = study(old, new, job(acc=0.75, cell_key="c2", params={"attack.batch_size": "32"}))
    assert s.replaced == [(old, new)] and new in s.jobs and len(s.jobs) == 2
    # Without the tag (older runs), the params that can change numbers key the cell; where it logs does not.
    a, b = job(), job(params={"tracking.dir": "elsewhere", "resume": "false"})
    assert study(a, b).replaced == [(a, b)]


def test_label_names_what_differs_from_the_same_attacks_rows_only():
    s = study(
        job("resnet18", "pgd", params={"attack.max_iter": "10"}),
        job("resnet18", "pgd", params={"attack.max_iter": "50"}),
        job("resnet18", "pgd", eps=0.3, setting="art_default", params={"attack.max_iter": "100"}),
        job("resnet18", "fgsm"),
    )
    labels = [r.label for r in rows(s) if r.evalset is not None]
    # The ART-default row's own max_iter is what its setting label means; FGSM has no neighbour that differs.
    assert labels == [
        "FGSM eps=8/255",
        "PGD eps=8/255 (max_iter=10)",
        "PGD eps=8/255 (max_iter=50)",
        "PGD eps=76.5/255 (ART default)",
    ]


def test_models_share_a_row_and_their_own_params_do_not_split_it():
    # model.*, and the module's hyperparameters Lightning logs without a section (std follows from the data and seed)
    s = study(
        job("resnet18", params={"model": "resnet18", "std": "0.21"}),
        job(
            "wrn16_8",
            params={"model.stem": "downsample", "model": "wrn16_8", "model_kwargs/stem": "downsample", "std": "0.22"},
        ),
    )
    (row,) = [r for r in rows(s) if r.attack == "fgsm" and r.evalset]
    assert set(row.accuracy) == {"resnet18", "wrn16_8"} and row.label == "FGSM eps=8/255"


def test_a_models_own_gradient_clipping_does_not_split_its_row_and_another_value_does():
    own = {"model.gradient_clip_val": "1.0", "trainer.gradient_clip_val": "1.0"}
    s = study(job("resnet18"), job("vgg19", params=own))
    (row,) = [r for r in rows(s) if r.attack == "fgsm" and r.evalset]
    assert set(row.accuracy) == {"resnet18", "vgg19"} and row.label == "FGSM eps=8/255"
    # clipping set for every model (here 2.0, against VGG-19's own 1.0) is a setting of its own
    other = {"trainer.gradient_clip_val": "2.0"}
    s = study(job("resnet18"), job("resnet18", params=other), job("vgg19", params={**own, **other}))
    labels = sorted(r.label for r in rows(s) if r.attack == "fgsm" and r.evalset)
    assert labels == ["FGSM eps=8/255 (trainer.gradient_clip_val=2.0)", "FGSM eps=8/255 (trainer.gradient_clip_val=–)"]


def test_trainings_with_different_settings_are_rows_of_their_own_clean_and_attacked():
    s = study(job(params={"trainer.max_epochs": "2"}), job(params={"trainer.max_epochs": "4"}))
    assert [r.label for r in rows(s) if r.evalset or r.attack == "clean"] == [
        "Clean (whole test split, trainer.max_epochs=2)",
        "Clean (whole test split, trainer.max_epochs=4)",
        "FGSM eps=8/255 (trainer.max_epochs=2)",
        "FGSM eps=8/255 (trainer.max_epochs=4)",
    ]


def test_seeds_aggregate_to_mean_and_min_max():
    s = study(*(job(seed=k, acc=a, n=40) for k, a in enumerate((0.7, 0.725, 0.75))))
    (row,) = [r for r in rows(s) if r.attack == "fgsm" and r.evalset]
    e = row.accuracy["resnet18"]
    assert e.seeds == 3 and e.mean == pytest.approx(0.725) and e.spread == (0.7, 0.75)
    lo, hi = wilson(87, 120)  # 28 + 29 + 30 of 3 x 40 images
    assert e.text() == f"72.50 (70.00-75.00, 3 seeds) [{100 * lo:.1f}, {100 * hi:.1f}]"
    (record,) = [r for r in records.table2_records(rows(s)) if r["attack"] == "fgsm"]
    assert (record["accuracy"], record["accuracy_min"], record["accuracy_max"], record["n_seeds"]) == (
        pytest.approx(0.725),
        0.7,
        0.75,
        3,
    )
    assert len(records.job_records(s)) == 3  # runs.csv keeps one line per run


# 2. Intervals


@pytest.mark.parametrize(
    "correct, n, expected",
    [(0, 10, (0.0, 27.75)), (5, 10, (23.66, 76.34)), (10, 10, (72.25, 100.0)), (60, 64, (85.0, 97.54))],
)
def test_wilson_interval_against_known_values(correct, n, expected):
    lo, hi = wilson(correct, n)
    assert (round(100 * lo, 2), round(100 * hi, 2)) == pytest.approx(expected, abs=0.01)


def test_overlap():
    assert overlap((0.1, 0.3), (0.3, 0.5)) and not overlap((0.1, 0.29), (0.3, 0.5))


def test_table2_cells_carry_their_interval_counted_on_the_right_images():
    s = study(job(acc=0.9375, n=64))
    table = tables.table2(rows(s), NAMES)
    fgsm = next(r for r in table.rows if r[0] == "FGSM eps=8/255")
    assert fgsm[1] == "93.75 [85.0, 97.5]"
    clean = next(r for r in table.rows if r[0] == "Clean (whole test split)")
    lo, hi = wilson(round(0.97 * 480), 480)  # the whole test split, not the 64 attacked images
    assert clean[1] == f"97.00 [{100 * lo:.1f}, {100 * hi:.1f}]"
    assert not any("did not log test_images" in n for n in table.notes)


def test_clean_interval_falls_back_to_the_attacked_images_with_a_note():
    old = job(acc=0.9375, n=64)
    del old.metrics["test_images"]
    table = tables.table2(rows(study(old)), NAMES)
    lo, hi = wilson(round(0.97 * 64), 64)
    assert next(r for r in table.rows if r[0].startswith("Clean"))[1] == f"97.00 [{100 * lo:.1f}, {100 * hi:.1f}]"
    assert any("did not log test_images" in n for n in table.notes)


def test_what_a_defense_bought_says_when_intervals_overlap():
    jobs = []
    for model in ("resnet18", "wrn16_8"):
        for eps, none, pgd_trained in ((4 * PX, 0.50, 0.55), (16 * PX, 0.10, 0.90)):
            jobs += [
                job(model, "pgd", eps, none, n=40),
                job(model, "pgd", eps, pgd_trained, n=40, defense="adv_train_pgd"),
            ]
    s = study(*jobs)
    # PGD-3 training: 4 passes per image; its wall time measured under a lighter load than the plain ones'
    for model in ("resnet18", "wrn16_8"):
        s.trainings[f"train-{model}-0-none"] = {"training_seconds": 100.0, "training_passes_per_image": 1.0}
        s.trainings[f"train-{model}-0-adv_train_pgd"] = {"training_seconds": 50.0, "training_passes_per_image": 4.0}
    table = defenses.bought(s)
    assert table.columns[3:5] == ["PGD eps=4/255 change", "PGD eps=16/255 change"]
    assert table.columns[5:] == ["training passes vs none", "training wall time vs none"]
    (line,) = table.rows
    assert line[3] == f"+5.0 {defenses.SAME}" and line[4] == "+80.0"  # 20-22 of 80 images apart vs 8 and 72
    assert line[2] == f"+0.0 {defenses.SAME}"  # the same clean accuracy
    assert line[5:] == ["4.00x", "0.50x"]
    assert defenses.per_model(s).rows[1][2:4] == ["50", "4.00"]  # RN-18 PGD-trained: seconds, passes per image
    assert defenses.SAME_NOTE in table.notes and "not a clear difference" in defenses.SAME_NOTE


def test_a_defense_that_buys_only_the_attacks_number_shows_it_after_escalation():
    """PGD training gains 70 points under the sweep's PGD but none after the ladder: both changes are printed,
    and the per-model table sets the escalated accuracy beside the attack's."""

    def escalation(after: float, n: int = 40) -> dict:
        return {"escalated_accuracy": after, "escalation_images": n}

    jobs = []
    for model in ("resnet18", "wrn16_8"):
        jobs += [
            job(model, "pgd", 16 * PX, 0.10, n=40, metrics=escalation(0.05)),
            job(model, "pgd", 16 * PX, 0.80, n=40, defense="adv_train_pgd", metrics=escalation(0.05)),
        ]
    s = study(*jobs)
    table = defenses.bought(s)
    assert table.columns[3:5] == ["PGD eps=16/255 change", "PGD eps=16/255 change, escalated"]
    (line,) = table.rows
    assert line[3] == "+70.0" and line[4] == f"+0.0 {defenses.SAME}"
    per_model = defenses.per_model(s)
    assert per_model.columns[5:7] == ["PGD eps=16/255", "PGD eps=16/255 escalated"]
    trained = next(r for r in per_model.rows if r[:2] == ["RN-18", "adv_train_pgd"])
    assert trained[5].startswith("80.00 [") and trained[6].startswith("5.00 [")
    assert defenses.ESCALATED_NOTE in per_model.notes
    figure = defenses.robustness_by_defense(s)
    marked = [line for ax in figure.axes for line in ax.get_lines() if line.get_label().endswith(", escalated")]
    assert len(marked) == 4 and all(list(line.get_ydata()) == [5.0] for line in marked)  # 2 models x 2 defenses
    # without escalation, no escalated columns
    plain = defenses.bought(
        study(job("resnet18", "pgd", 16 * PX, 0.1), job("resnet18", "pgd", 16 * PX, 0.8, defense="d"))
    )
    assert not any("escalated" in c for c in plain.columns)


# 3. Paper rows


def test_paper_values_compare_with_the_std_and_art_rule_rows():
    s = study(
        job(eps=0.3, setting="art_default", unit="std", acc=0.4),
        job(eps=0.3, setting="art_default", acc=0.1),
        job(
            attack="st",
            eps=None,
            setting="paper",
            impl="fast",
            params={"attack.max_rotation": "30.0", "attack.max_translation": "10.0"},
        ),
        job(
            attack="st",
            eps=None,
            setting="art_rule",
            impl="fast",
            params={"attack.max_rotation": "30.0", "attack.max_translation": "10.0", "attack.per_image": "False"},
        ),
    )
    table_rows = rows(s)
    std = _row(table_rows, "FGSM eps=0.3 std = 15.3/255 (ART default)")
    pixel = _row(table_rows, "FGSM eps=76.5/255 (ART default)")
    assert std.paper["resnet18"] == 51.9 and not pixel.paper and std.eps == pytest.approx(0.06)
    assert _row(table_rows, "ST rot ±30°, shift ±10% (ART's rule) [fast]").paper["resnet18"] == 56.31
    assert not _row(table_rows, "ST rot ±30°, shift ±10% (paper setting) [fast]").paper
    assert [r.label for r in table_rows if r.evalset is None and r.attack != "clean"] == [
        "PGD eps=0.3 std (ART default): not in this study",
        "C&W unbounded (ART default): not in this study",
    ]
    notes = " ".join(tables.table2(table_rows, NAMES).notes)
    assert "The paper's FGSM compares with our 'FGSM eps=0.3 std = 15.3/255 (ART default)'" in notes
    assert (
        "standard deviations" in notes
        and "The paper's ST compares with our 'ST rot ±30°, shift ±10% (ART's rule) [fast]'" in notes
    )
    assert "The paper's C&W compares with 'C&W unbounded (ART default)' (not in this study)" in notes


def test_a_row_in_std_units_is_ordered_by_its_pixel_budget():
    s = study(job(eps=0.3, setting="art_default", unit="std"), job(eps=0.3, setting="art_default"))
    labels = [r.label for r in rows(s) if r.attack == "fgsm" and r.evalset]
    assert labels == ["FGSM eps=0.3 std = 15.3/255 (ART default)", "FGSM eps=76.5/255 (ART default)"]


# 4. The headline average


def test_average_over_the_five_models_weighs_each_model_the_same():
    jobs = [
        job(m, eps=0.3, setting="art_default", unit="std", acc=a, n=n, params={"eval.max_images": "None"})
        for m, a, n in zip(MODELS, (0.5, 0.25, 0.75, 0.0, 1.0), (40, 40, 40, 40, 80))
    ]
    table_rows = rows(study(*jobs))
    ours, missing = average(_row(table_rows, "FGSM eps=0.3 std = 15.3/255 (ART default)"))
    # The mean of the five, as the paper's: Inc-v3's 80 images weigh as the others' 40; the interval counts
    # the mean images per model (48) five times.
    assert not missing and ours.value == pytest.approx((0.5 + 0.25 + 0.75 + 0.0 + 1.0) / 5)
    assert ours.interval == pytest.approx(wilson(0.5 * 240, 240))
    assert paper_average("fgsm") == pytest.approx(sum(PAPER_TABLE2["fgsm"]) / 5)
    table = tables.table2_average(table_rows, NAMES)
    fgsm = next(r for r in table.rows if r[0] == "FGSM")
    lo, hi = wilson(120, 240)
    assert fgsm[2:] == [
        f"50.00 [{100 * lo:.1f}, {100 * hi:.1f}]",
        "41.17",
        f"{50 - paper_average('fgsm'):+.2f} (outside our interval)",
        "as ours (no model flagged)",
    ]
    assert next(r for r in table.rows if r[0] == "PGD")[2] == "not in this study"


def test_average_counts_each_model_once_gives_its_spread_over_seeds_and_leaves_flagged_models_out():
    fgsm = {"eps": 0.3, "setting": "art_default", "unit": "std", "n": 100, "params": {"eval.max_images": "None"}}
    jobs = [job("resnet18", acc=a, seed=s, **fgsm) for s, a in enumerate((0.2, 0.4, 0.6))]
    jobs += [job(m, acc=0.5, masking=m == "vgg19", **fgsm) for m in MODELS if m != "resnet18"]
    table_rows = rows(study(*jobs))
    ours, _ = average(_row(table_rows, "FGSM eps=0.3 std = 15.3/255 (ART default)"))
    assert ours.value == pytest.approx((0.4 + 4 * 0.5) / 5)  # RN-18's three seeds count as one model
    assert ours.interval == pytest.approx(wilson(40 + 4 * 50, 500))
    assert ours.spread == pytest.approx((0.44, 0.52)) and ours.seeds == 3  # the average at seed 0, 1 and 2
    row = next(r for r in tables.table2_average(table_rows, NAMES).rows if r[0] == "FGSM")
    assert row[2].startswith("48.00 (44.00-52.00 over 3 seeds) [") and row[2].endswith("⚠")
    kept = ("resnet18", "resnet50", "wrn16_8", "inception_v3")
    assert row[-1].startswith("47.50 (42.50-52.50 over 3 seeds) [")
    assert f"; paper {paper_average('fgsm', kept):.2f}, " in row[-1] and row[-1].endswith("(without VGG-19)")


def test_average_names_the_models_it_lacks():
    table_rows = rows(study(*(job(m, eps=0.3, setting="art_default", unit="std") for m in ("resnet18", "vgg19"))))
    assert average(_row(table_rows, "FGSM eps=0.3 std = 15.3/255 (ART default)"))[1] == [
        "resnet50",
        "wrn16_8",
        "inception_v3",
    ]
    fgsm = next(r for r in tables.table2_average(table_rows, NAMES).rows if r[0] == "FGSM")
    assert fgsm[2] == "– (no RN-50, WRN-16-8, Inc-v3)"


# 5. Paper-equivalent budgets


def test_crossing_is_linear_in_log_eps():
    assert paper_eps.crossing([1, 2, 4], [0.8, 0.6, 0.2], 0.5) == pytest.approx(2 * 2**0.25)
    assert paper_eps.crossing([1, 2, 4], [0.8, 0.6, 0.2], 0.6) == 2
    assert paper_eps.crossing([1, 2, 4], [0.8, 0.6, 0.2], 0.9) == paper_eps.BELOW
    assert paper_eps.crossing([1, 2, 4], [0.8, 0.6, 0.2], 0.1) == paper_eps.ABOVE


def test_paper_equivalent_eps_from_a_grid():
    paper = PAPER_TABLE2["pgd"][0] / 100  # RN-18: 18.48 %
    grid = {1: 0.8, 2: 0.6, 4: 0.1, 8: 0.0}
    s = study(
        *(job("resnet18", "pgd", k * PX, acc, n=100) for k, acc in grid.items()),
        *(job("resnet18", "fgsm", k * PX, 0.9, n=100) for k in grid),
    )
    (pgd, fgsm) = sorted(paper_eps.equivalents(rows(s)), key=lambda q: q.curve, reverse=True)
    expected = 2 * 2 ** ((0.6 - paper) / (0.6 - 0.1))
    assert pgd.value == pytest.approx(expected * PX)
    lo, hi = pgd.range
    assert lo < pgd.value < hi
    assert lo == pytest.approx(paper_eps.crossing([2, 4], [wilson(60, 100)[0], wilson(10, 100)[0]], paper) * PX)
    assert fgsm.value == paper_eps.ABOVE and fgsm.text(255, ".2f") == "above the grid (> 8.00)"
    assert pgd.paper_eps == pytest.approx(0.3 * STD)
    table = paper_eps.table([pgd, fgsm], NAMES)
    assert table.rows[1][4].startswith(f"{255 * pgd.value:.2f} [") and table.rows[1][6] == f"{255 * 0.3 * STD:.1f}"
    assert table.rows[1][5].startswith(f"{pgd.value / STD:.3f} [")


def test_no_paper_equivalent_budgets_without_a_pixel_budget_grid():
    s = study(
        job("resnet18", "pgd", 8 * PX),
        job("resnet18", "pgd", 0.3, setting="art_default"),
        *(job("resnet18", "pgd", e, unit="std", setting="art_default") for e in (0.1, 0.3)),
    )
    assert paper_eps.equivalents(rows(s)) == []
    assert list(sweeps(rows(s))) == ["PGD (ART default, eps in std)"]


# 6. Untrained models


def test_untrained_models_are_marked_and_listed():
    s = study(
        job("resnet18", acc=0.5),
        job(
            "wrn16_8", acc=1.0, untrained=True, untrained_reason="it predicts one class (0) for all 64 attacked images"
        ),
    )
    table = tables.table2(rows(s), NAMES)
    fgsm = next(r for r in table.rows if r[0] == "FGSM eps=8/255")
    assert fgsm[1].endswith("]") and fgsm[3].endswith(f"] {blocks.UNTRAINED}")
    assert blocks.UNTRAINED_NOTE in table.notes
    listed = tables.jobs(s)
    column = listed.columns.index("untrained model")
    assert [r[column] for r in listed.rows] == [
        "no",
        f"{blocks.UNTRAINED} it predicts one class (0) for all 64 attacked images",
    ]
    assert [r["untrained_model"] for r in records.table2_records(rows(s)) if r["attack"] == "fgsm"] == [False, True]


def test_masking_and_untrained_marks_follow_the_interval():
    s = study(job(acc=0.5, masking=True, masking_reasons="r", untrained=True))
    cell = next(r for r in tables.table2(rows(s), NAMES).rows if r[0] == "FGSM eps=8/255")[1]
    assert cell == f"{measured(s.jobs, 'adversarial_accuracy').text()} {blocks.MASK} {blocks.UNTRAINED}"


def test_transfer_tables_and_every_figure_render_from_hand_made_jobs():
    jobs = [
        job(
            target,
            "fgsm",
            0.03,
            acc,
            n=16,
            seed=seed,
            params={"attack.source_model": source},
            **({} if source == target else {"source_model": source}),
        )
        for seed in (0, 1)
        for source in ("resnet18", "wrn16_8")
        for target, acc in (("resnet18", 0.25), ("wrn16_8", 0.5))
    ]
    jobs += [
        job(m, "pgd", k * PX, 0.5 / k, seed=seed)
        for m in ("resnet18", "wrn16_8")
        for k in (1, 2, 4, 8)
        for seed in (0, 1)
    ]
    jobs += [job("resnet18", "pgd", k * PX, 0.6, defense="jpeg") for k in (1, 2, 4, 8)]
    s = study(*jobs)
    (table,) = defenses.transfer_tables(s)
    assert table.title == "Transfer: FGSM eps=7.65/255" and table.columns == ["source \\ target", "RN-18", "WRN-16-8"]
    assert (
        table.rows[0][1]
        == measured(
            [j for j in s.jobs if j.attack == "fgsm" and j.model == "resnet18" and j.source_model is None],
            "adversarial_accuracy",
        ).text()
    )
    table_rows = rows(s)
    assert [len(g) for g in sweeps(table_rows).values()] == [4]
    for fig in (
        figures.accuracy_bars(figures.bar_rows(table_rows), NAMES),
        figures.robustness_curves(sweeps(table_rows), NAMES),
        paper_eps.figure(paper_eps.equivalents(table_rows), NAMES),
        defenses.robustness_by_defense(s),
        defenses.transfer_heatmaps(s),
    ):
        assert figures.to_png(fig)[:4] == b"\x89PNG"
    # A sweep of four budgets is drawn as curves; Figure 3 keeps the other rows.
    assert [r.label for r in figures.bar_rows(table_rows) if r.evalset] == ["FGSM eps=7.65/255"]


def test_the_masking_note_appears_exactly_when_a_job_is_flagged_and_names_it():
    from covid_robustness.report.blocks import MASK, flag_notes

    clean = [job(model="resnet18", attack="pgd")]
    flagged = clean + [job(model="vgg19", attack="fgsm", masking=True, model_label="VGG-19")]
    assert not any(note.startswith(MASK) for note in flag_notes(clean))
    [note] = [n for n in flag_notes(flagged) if n.startswith(MASK)]
    assert "VGG-19 fgsm at 8/255" in note and "resnet18" not in note
    assert not any(n.startswith(MASK) for n in flag_notes(flagged, masking=False))


def test_pages_name_a_local_folder_by_its_name_only():
    from covid_robustness.report.evalsets import differing, shown_uri

    sets = {"a": {"data.external_root": "/data/sites/external"}, "b": {"data.external_root": "None"}}
    assert differing(sets)["a"] == ["data.external_root=external"]
    assert shown_uri("sqlite:////srv/stores/paper/mlflow.db") == "sqlite:///<...>/paper/mlflow.db"
    assert shown_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_a_study_of_ones_own_gets_no_paper_gaps_and_its_attacks_their_class_names():
    jobs = [
        job("mynet", "bim", eps=8 * PX, setting="None", attack_label="BasicIterativeMethod", model_label="MyNet"),
        job("resnet18", "bim", eps=0.01, setting="None", attack_label="BasicIterativeMethod"),
    ]
    own = replace(study(*jobs), labels=Labels.of(jobs))
    table_rows = rows(own)
    assert not any("not in this study" in r.label for r in table_rows)  # no paper row was run: none is a gap
    labels = sorted(r.label for r in table_rows if r.evalset)
    assert labels == ["BasicIterativeMethod eps=2.55/255", "BasicIterativeMethod eps=8/255"]  # no "(None)"
    table = tables.table2(table_rows, own.labels)
    assert "MyNet paper" not in table.columns and "RN-18 paper" in table.columns  # paper columns: paper models only
    assert all(len(row) == len(table.columns) for row in table.rows)


def test_an_l2_budget_reads_as_an_l2_length_and_stays_out_of_the_l_inf_curves():
    jobs = [job(attack="pgd", eps=e, params={"attack.norm": "2"}, attack_label="PGD-L2") for e in (0.25, 0.5, 1.0)]
    jobs += [job(attack="pgd", eps=e * PX, params={"attack.norm": "inf"}, attack_label="PGD") for e in (2, 4, 8)]
    s = study(*jobs)
    table_rows = rows(s)
    labels = [r.label for r in table_rows if r.evalset]
    assert {"PGD L2 eps=0.25 (norm=2)", "PGD L2 eps=1 (norm=2)", "PGD eps=8/255 (norm=inf)"} <= set(labels), labels
    assert [[r.eps for r in group] for group in sweeps(table_rows).values()] == [[2 * PX, 4 * PX, 8 * PX]]


def test_the_certified_section_sets_each_bound_beside_the_other_per_model_and_sigma():
    from covid_robustness.report import certified

    def cert(model, sigma, lower, upper):
        metrics = {"smoothing_sigma": sigma, "smoothed_clean_accuracy": 0.9, "certify_abstention_rate": 0.05}
        metrics |= {"certified_radius_median": 0.3, "certify_seconds_per_image": 0.5, "certified_accuracy_0": 0.95}
        metrics |= {f"certified_accuracy_{r:g}": v for r, v in zip((0.25, 0.5), lower)}
        metrics |= {f"attacked_accuracy_{r:g}": v for r, v in zip((0.25, 0.5), upper)}
        params = {"defense.sigma": str(sigma)}
        return job(model=model, attack="certify", eps=None, n=128, defense="smoothing", metrics=metrics, params=params)

    s = study(
        cert("resnet18", 0.5, (0.6, 0.3), (0.8, 0.6)),
        cert("resnet18", 0.12, (0.5, 0.0), (0.7, 0.2)),
        cert("vgg19", 0.25, (0.7, 0.4), (0.9, 0.7)),
        job(attack="pgd"),
    )
    table = certified.table(s)
    assert [row[:2] for row in table.rows] == [["RN-18", "0.12"], ["RN-18", "0.5"], ["VGG-19", "0.25"]]
    assert table.columns[5:9] == ["certified at 0.25", "attacked at 0.25", "certified at 0.5", "attacked at 0.5"]
    assert table.rows[0][5].startswith("50.00 [") and table.rows[0][8].startswith("20.00 [")
    assert figures.to_png(certified.figure(s))[:4] == b"\x89PNG"
    assert not defenses.has_defenses(s) and certified.sections(study(job(attack="pgd"))) == []


def test_the_verdicts_region_gives_each_escalated_cell_its_verdict_and_a_dash_elsewhere():
    from covid_robustness.report import readme

    def entry(model, label, said):
        return {"model": model, "evaluation_set": label, "verdicts": said}

    results = {
        "models": {"resnet18": "RN-18", "vgg19": "VGG-19"},
        "evaluations": [
            entry("resnet18", "PGD 8/255", ["under-attacked (e)"]),
            entry("vgg19", "PGD 8/255", ["masked (c, e)", "stands after escalation"]),  # two seeds, two verdicts
            entry("resnet18", "C&W", []),  # not escalated: no row
            entry("vgg19", "FGSM 8/255", ["stands after escalation"]),
        ],
        "defended": [entry("vgg19", "PGD 8/255", ["masked (b)"]) | {"defense": "jpeg"}],
    }
    lines = readme.verdicts(results, {}).splitlines()
    assert lines[:5] == [
        "| evaluation set | RN-18 | VGG-19 |",
        "|---|---|---|",
        "| PGD 8/255 | under-attacked (e) | masked (c, e); stands after escalation |",
        "| FGSM 8/255 | – | stands after escalation |",
        "| PGD 8/255 [jpeg] | – | masked (b) |",
    ]
    assert lines[5] == "" and "Under-attacked: a stronger gradient attack" in lines[6]


def test_time_under_way_counts_side_by_side_runs_once_and_the_gaps_between_sittings_not_at_all():
    from covid_robustness.report.manifest import _under_way, wall_time_text

    # two runs side by side (0-10 s and 5-12 s), a pause, one run (100-130 s), one inside it, a killed one
    assert _under_way([(0, 10_000), (5_000, 12_000), (100_000, 130_000), (110_000, 120_000), (200_000, 0)]) == 42
    assert _under_way([]) == 0
    t = {"training": 60, "jobs": 7200, "escalation": 0, "first_start_to_last_end": 86_400, "under_way": 5400}
    assert wall_time_text(t).endswith("first start to last end 24 h 00 min (1 h 30 min with a run under way)")


def test_slices_of_the_test_split_make_one_job_and_share_a_row_with_a_job_of_their_images():
    from covid_robustness.report.slices import joined

    def ladder(standing, broken, n):
        return {
            "escalated_accuracy": (standing - broken) / n,
            "escalation_images": n,
            "escalation_standing": standing,
            "escalation_square_broken": broken,
        }

    cut = {"eval.max_images": "50"}
    parts = [
        job("vgg19", "pgd", acc=0.7, n=50, metrics=ladder(35, 1, 50)),
        job("vgg19", "pgd", acc=0.6, n=50, params={"eval.first_image": "50"}, metrics=ladder(30, 2, 50)),
        job("vgg19", "pgd", acc=0.5, n=20, params=cut | {"eval.first_image": "100"}, metrics=ladder(10, 0, 20)),
    ]
    # Each slice ran a minute, at its own commit; the first 120 test images in one job besides.
    parts = [
        replace(p, end_time=p.start_time + 60_000, tags={"mlflow.source.git.commit": c}) for p, c in zip(parts, "aab")
    ]
    whole = job("resnet18", "pgd", acc=0.1, n=120)
    jobs, confusions = joined(sorted([*parts, whole], key=lambda j: -j.start_time), lambda j: None)
    assert len(jobs) == 2 and confusions == {parts[0].run_id: None}
    s = study(*jobs)
    [pgd] = [r for r in rows(s) if r.attack == "pgd"]

    def interval(k, n):
        return "[{:.1f}, {:.1f}]".format(*(100 * v for v in wilson(k, n)))

    assert pgd.accuracy["vgg19"].text() == f"62.50 {interval(75, 120)}" and pgd.accuracy["resnet18"].total == 120
    assert escalated(pgd.accuracy["vgg19"]).text() == f"60.00 {interval(72, 120)}"
    [line] = [r for r in records.job_records(s) if r["model"] == "vgg19"]
    assert line["run_id"] == " ".join(j.run_id for j in parts) and "eval.first_image" not in line
    assert line["escalation_square_broken"] == 3 and line["attack_images"] == 120
    # The study's runs started with the first slice and ended with the last to start, not with the one job.
    from covid_robustness.report.blocks import when

    [vgg] = [j for j in jobs if j.run_id == parts[0].run_id]
    started = dict(tables.overview(study(vgg)).rows)["runs started"]
    assert (
        started
        == f"{when(parts[0].start_time)} to {when(parts[2].start_time)}"
        != f"{when(parts[0].start_time)} to {when(parts[0].start_time)}"
    )
    from covid_robustness.report import manifest

    assert manifest.wall_time(s)["jobs"] == 180.0 and manifest._commits(s) == ["a", "b", "unknown"]
    m = {"jobs": 2, "job_runs": 4, "trainings": 2, "commits": [], "clean_tree": True, "data": []}
    m |= {"machine": [], "cpu_threads": [], "library_versions": [], "wall_time_seconds": manifest.wall_time(s)}
    runs = dict(manifest.table(m).rows)["runs"]
    assert runs == "2 jobs (4 runs: slices of the test split read as one job each), 2 trainings"
