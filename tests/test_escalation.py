"""Escalation: a model whose gradient is hidden stands under PGD and falls under the ladder (the
gradient-free stage, or a transfer from a model without the hidden step); a model that is robust at the
budget by construction stays as it was; no stage raises accuracy."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from covid_robustness.evaluation.escalation import ladder_images
from covid_robustness.evaluation.evaluate import evaluate
from covid_robustness.evaluation.options import EvaluationOptions
from covid_robustness.models.module import Normalized
from covid_robustness.record import Job, Metrics
from covid_robustness.record.checklist import (
    FLAGGED,
    NOT_APPLICABLE,
    PASSED,
    STANDS,
    checklist,
    flags,
    verdict,
)

EPS = 8 / 255
PGD = {"name": "pgd", "impl": "fast", "eps": EPS, "max_iter": 10, "early_stop": True}


class MeanThreshold(nn.Module):
    """COVID-19 (class 1) where the image's mean exceeds 0.5: an L-inf change of eps moves the mean by eps
    at most, so an image whose mean lies further than eps from 0.5 cannot be turned; one closer can.

    hidden: the pixels are first rounded to 1/255, a step whose gradient is zero everywhere, so every
    gradient attack sees a flat loss while the decision stays as easy to cross."""

    def __init__(self, hidden: bool, scale: float = 50.0):
        super().__init__()
        self.hidden = hidden
        self.scale = nn.Parameter(torch.tensor(scale))

    def forward(self, x):
        if self.hidden:
            x = torch.round(x * 255) / 255
        m = x.flatten(1).mean(1) - 0.5
        return torch.stack([-m, m], 1) * self.scale


def images(offsets: np.ndarray, size: int = 12, seed: int = 0) -> TensorDataset:
    """Grey images (multiples of 1/255) whose means lie at 0.5 + offset, labelled by the side they lie on."""
    rng = np.random.default_rng(seed)
    levels = (
        rng.integers(-20, 21, size=(len(offsets), 1, size, size)) + np.round((0.5 + offsets) * 255)[:, None, None, None]
    )
    x = torch.tensor(np.clip(levels, 0, 255) / 255, dtype=torch.float32)
    y = (x.flatten(1).mean(1) > 0.5).long()
    return TensorDataset(x, y)


def run(net, data, **escalation):
    options = EvaluationOptions(PGD, 2, 1, batch_size=16, progress=False, escalate=True, **escalation)
    return evaluate(Normalized(net, 0.0, 1.0), data, options).metrics


def near():  # means within eps of the threshold (but beyond what a random start moves them): all can be turned
    return images(np.concatenate([-np.linspace(0.25, 0.6, 8), np.linspace(0.25, 0.6, 8)]) * EPS)


def stage(metrics, name, what="broken"):
    return metrics[f"{Metrics.ESCALATION}{name}_{what}"]


def test_a_hidden_gradient_stands_under_pgd_and_falls_to_the_gradient_free_stage():
    m = run(MeanThreshold(hidden=True), near(), escalate_restarts=1, escalate_square_queries=300)
    assert m[Metrics.CLEAN] == 1.0 and m[Metrics.ADVERSARIAL] == 1.0  # PGD follows a zero gradient
    assert stage(m, "apgd_ce") == stage(m, "apgd_margin") == 0  # so do both APGDs
    assert stage(m, "square") >= 8
    assert m[Metrics.ESCALATED] == pytest.approx(1 - (stage(m, "noise") + stage(m, "square")) / 16)
    assert m[Metrics.ESCALATION_IMAGES] == m[Metrics.ESCALATION_STANDING] == 16


def test_a_saturated_softmax_stands_under_pgd_and_falls_to_apgd_on_the_margin_loss():
    # Logits 1e5 apart: the softmax is exactly one-hot in float32, so the cross-entropy's gradient is zero.
    m = run(MeanThreshold(hidden=False, scale=1e5), near(), escalate_restarts=1, escalate_square_queries=0)
    assert m[Metrics.ADVERSARIAL] == 1.0 and stage(m, "apgd_ce") == 0
    assert stage(m, "noise") + stage(m, "apgd_margin") == 16 and m[Metrics.ESCALATED] == 0.0


def test_a_hidden_gradient_falls_to_a_transfer_from_a_model_without_it():
    source = Normalized(MeanThreshold(hidden=False), 0.0, 1.0)
    m = run(MeanThreshold(hidden=True), near(), escalate_square_queries=0, escalation_sources={"open": source})
    assert m[Metrics.ADVERSARIAL] == 1.0
    assert stage(m, "transfer") >= 12 and m[Metrics.ESCALATED] <= 0.25
    assert stage(m, "transfer", "passes") > 0


def test_the_same_model_with_its_gradient_falls_to_pgd_already_and_escalation_agrees():
    m = run(MeanThreshold(hidden=False), near(), escalate_restarts=1, escalate_square_queries=100)
    assert m[Metrics.ADVERSARIAL] <= 0.25
    assert m[Metrics.ESCALATED] <= m[Metrics.ADVERSARIAL]


def test_a_cell_its_attack_leaves_no_image_standing_is_flagged_by_no_check():
    """Nothing stands, nothing can hide: 0 of 0 images is below no interval (Wilson's lower end at 0 correct is 0
    exactly; its rounding once read as 'below' and flagged checks a, c and e)."""
    m = {
        Metrics.CLEAN: 0.975,
        Metrics.ADVERSARIAL: 0.0,
        Metrics.IMAGES: 200.0,
        Metrics.ESCALATED: 0.0,
        Metrics.ESCALATION_IMAGES: 200.0,
        Metrics.ESCALATION_STANDING: 0.0,
        Metrics.CHECK_NOISE: 0.975,
        Metrics.CHECK_LARGE_BUDGET: 0.0,
        Metrics.CHECK_LARGE_BUDGET_EPS: 64 / 255,
        **{f"{Metrics.ESCALATION}{s}_broken": 0.0 for s in ("noise", "twice_iterations", "square", "transfer")},
    }
    assert not flags(job(m))
    assert verdict(job(m), [])[0] == STANDS


def test_a_model_robust_at_the_budget_by_construction_is_left_as_it_was():
    far = images(np.concatenate([-np.linspace(2.5, 4, 8), np.linspace(2.5, 4, 8)]) * EPS)
    m = run(MeanThreshold(hidden=False), far, escalate_restarts=2, escalate_square_queries=200)
    assert m[Metrics.CLEAN] == m[Metrics.ADVERSARIAL] == m[Metrics.ESCALATED] == 1.0
    assert all(stage(m, s) == 0 for s in ("noise", "twice_iterations", "apgd_ce", "apgd_margin", "square"))
    assert m[Metrics.CHECK_NOISE] == 1.0 and m[Metrics.CHECK_LARGE_BUDGET] == 0.0  # 64/255 turns every image


def job(metrics, attack="pgd", **params) -> Job:
    return Job("r", 0, "m", attack, "", "fast", EPS, "t", {"eval.escalate": "True", **params}, metrics)


def test_the_checklist_flags_a_hidden_gradient_and_names_its_checks():
    m = run(MeanThreshold(hidden=True), near(), escalate_restarts=1, escalate_square_queries=300)
    checks = {c.letter: c for c in checklist(job(m))}
    assert stage(m, "twice_iterations") == 0  # twice PGD's steps follow the same zero gradient: (a) passes
    assert [checks[k].state for k in "abce"] == [PASSED, FLAGGED, FLAGGED, FLAGGED]
    assert (
        checks["b"].evidence.startswith("APGD-CE at 64/255 leaves") and "of 16 images correct" in checks["b"].evidence
    )
    reasons = flags(job(m))
    assert verdict(job(m), reasons)[0] == "masked (b, c, e)"
    assert verdict(job(m), [*reasons, "PGD accuracy rises with eps"])[0] == "masked (b, c, e, sweep)"


def test_the_checklist_leaves_a_model_robust_by_construction_standing():
    far = images(np.concatenate([-np.linspace(2.5, 4, 8), np.linspace(2.5, 4, 8)]) * EPS)
    m = run(MeanThreshold(hidden=False), far, escalate_restarts=1, escalate_square_queries=100)
    assert not flags(job(m))
    assert [c.state for c in checklist(job(m))] == [PASSED] * 5
    assert verdict(job(m), []) == (STANDS, "; ".join(map(str, checklist(job(m)))))


def test_the_noise_check_flags_an_attack_weaker_than_random_signs():
    # 16 images, the attack left 15 standing; random signs leave 12 correct: worse than the attack.
    m = {Metrics.ESCALATED: 12 / 16, Metrics.ESCALATION_IMAGES: 16, Metrics.ESCALATION_STANDING: 15}
    m |= {Metrics.CHECK_NOISE: 12 / 16, Metrics.CHECK_LARGE_BUDGET: 0.0, Metrics.CHECK_LARGE_BUDGET_EPS: 64 / 255}
    m |= {f"{Metrics.ESCALATION}{s}_broken": 0.0 for s in ("apgd_ce", "apgd_margin", "square")}
    m[f"{Metrics.ESCALATION}noise_broken"] = 3.0
    checks = {c.letter: c.state for c in checklist(job(m, attack="fgsm"))}
    assert checks == {"a": NOT_APPLICABLE, "b": PASSED, "c": PASSED, "d": FLAGGED, "e": PASSED}


def test_a_one_step_attack_that_apgd_beats_is_under_attacked_not_masked():
    """FGSM left 8 of 16 images standing and APGD-CE broke all 8: the gradient led the way, FGSM's one step
    did not follow it far enough. (e) flags the number; no sign of masking does."""
    from covid_robustness.console import flag

    m = {Metrics.ESCALATED: 0.0, Metrics.ESCALATION_IMAGES: 16, Metrics.ESCALATION_STANDING: 8}
    m |= {Metrics.CHECK_NOISE: 1.0, Metrics.CHECK_LARGE_BUDGET: 0.0, Metrics.CHECK_LARGE_BUDGET_EPS: 64 / 255}
    m |= {f"{Metrics.ESCALATION}{s}_broken": 0.0 for s in ("noise", "apgd_margin", "square", "transfer")}
    m[f"{Metrics.ESCALATION}apgd_ce_broken"] = 8.0
    fgsm = job(m, attack="fgsm")
    checks = {c.letter: c.state for c in checklist(fgsm)}
    assert checks == {"a": NOT_APPLICABLE, "b": PASSED, "c": PASSED, "d": PASSED, "e": FLAGGED}
    assert flags(fgsm) == []  # not a sign of gradient masking: no ⚠, no gradient_masking tag
    assert verdict(fgsm, [])[0] == "under-attacked (e)" and flag(fgsm) == "under-attacked (e)"
    assert verdict(fgsm, ["FGSM accuracy rises with eps"])[0] == "masked (e, sweep)"  # the sweep's sign: masked
    m[f"{Metrics.ESCALATION}apgd_ce_broken"], m[f"{Metrics.ESCALATION}square_broken"] = 0.0, 8.0
    assert verdict(job(m, attack="fgsm"), flags(job(m, attack="fgsm")))[0] == "masked (c, e)"  # Square found it


def test_a_cell_without_escalation_or_without_a_gradient_free_stage_is_not_established():
    plain = Job("r", 0, "m", "pgd", "", "fast", EPS, "t", {}, {Metrics.ADVERSARIAL: 0.7})
    assert verdict(plain, []) == ("not established (no escalation run)", "")
    assert verdict(plain, ["PGD accuracy rises with eps"])[0] == "masked (sweep)"
    m = run(MeanThreshold(hidden=False), near(), escalate_restarts=1, escalate_square_queries=0)
    assert verdict(job(m), [])[0] in ("not established (gradient-free or transfer not run)", "under-attacked (e)")
    st = Job("r", 0, "m", "st", "", "fast", None, "t", {}, {Metrics.ADVERSARIAL: 0.7})
    assert verdict(st, []) == ("", "")


def test_the_ladder_runs_on_the_first_images_that_hold_its_cap_of_standing_ones():
    standing = np.array([False, True, True, False, True, True])
    assert ladder_images(standing, None) == 6
    assert ladder_images(standing, 2) == 4  # images 0-3 hold two standing images, up to the third standing one
    assert ladder_images(standing, 3) == 5
    assert ladder_images(standing, 10) == ladder_images(standing, 4) == 6


def test_the_share_standing_on_the_ladders_images_is_not_biased_by_where_they_end():
    """Over many draws, max_images / n on the ladder's images averages the attack's accuracy p; a prefix ended
    at its last standing image would overstate it."""
    rng = np.random.default_rng(0)
    p, cap = 0.5, 4
    shares = []
    for _ in range(20_000):
        standing = rng.random(200) < p
        n = ladder_images(standing, cap)
        shares.append(standing[:n].sum() / n)
    assert standing[:n].sum() == cap
    assert abs(np.mean(shares) - p) < 0.005  # ended at the 4th standing image: 0.5 + about 0.05


def test_slices_of_the_test_split_attack_their_images_and_add_up_to_the_whole():
    """eval.first_image with eval.max_images cuts one evaluation into jobs: each attacks its own images (here
    the model is right on the first 10 and wrong on the last 6), and their counts add up to the whole's."""
    far = images(np.concatenate([-np.linspace(2.5, 4, 8), np.linspace(2.5, 4, 8)]) * EPS)
    x, y = far.tensors
    data = TensorDataset(x, torch.where(torch.arange(16) < 10, y, 1 - y))
    slices = [
        run(
            MeanThreshold(hidden=False),
            data,
            escalate_square_queries=0,
            escalate_restarts=1,
            first_image=f,
            max_images=6,
        )
        for f in (0, 6, 12)
    ]
    assert [m[Metrics.IMAGES] for m in slices] == [6, 6, 4]
    assert [m[Metrics.CLEAN] for m in slices] == [1.0, pytest.approx(4 / 6), 0.0]
    whole = run(MeanThreshold(hidden=False), data, escalate_square_queries=0, escalate_restarts=1)
    for name in (Metrics.CLEAN, Metrics.ADVERSARIAL, Metrics.ESCALATED):
        assert sum(m[name] * m[Metrics.IMAGES] for m in slices) == pytest.approx(whole[name] * 16), name
    assert sum(m[Metrics.ESCALATION_STANDING] for m in slices) == whole[Metrics.ESCALATION_STANDING] == 10
    with pytest.raises(ValueError, match="leaves no image of the 16"):
        run(MeanThreshold(hidden=False), data, first_image=16)


def test_the_report_reads_slices_as_the_one_evaluation_they_make_up():
    """Three slices joined (report/slices.py) count what the whole split's job counts, share by share, and the
    checklist judges the whole on the pooled counts; a slice that does not follow on from image 0 stays apart."""
    from covid_robustness.record.checklist import checklist
    from covid_robustness.report.slices import joined

    # Both classes in every slice; near the threshold (PGD turns them) or far from it; two labelled wrong.
    near, far = 0.4, 3.0
    sides = [-near, near, -far, near, -near, far, -near, far, -far, near, -near, far, -far, -near]
    x, y = images(np.array(sides) * EPS).tensors
    wrong = torch.isin(torch.arange(14), torch.tensor([7, 12]))
    data = TensorDataset(x, torch.where(wrong, 1 - y, y))
    classes = ["Normal", "COVID-19"]

    def measured(first_image=0, max_images=None):
        slice_ = {"first_image": first_image, "max_images": max_images}
        ladder = {"escalate": True, "escalate_restarts": 1, "escalate_square_queries": 0}
        options = EvaluationOptions(PGD, 2, 1, batch_size=16, progress=False, **ladder, **slice_)
        result = evaluate(Normalized(MeanThreshold(hidden=False), 0.0, 1.0), data, options)
        params = {"eval.max_images": str(max_images)} | ({"eval.first_image": str(first_image)} if first_image else {})
        run_id, start = f"r{first_image}-{max_images}", 100 - first_image
        job = Job(run_id, start, "m", "pgd", "", "fast", EPS, "t", params, result.metrics)
        return job, {"classes": classes, **{k: v.tolist() for k, v in result.confusion.items()}}

    whole, whole_confusion = measured()
    parts = [measured(f, 5) for f in (0, 5, 10)]
    apart = measured(12, 2)  # images 12-13: not a slice that follows on from 0 with these settings
    confusions = {j.run_id: c for j, c in [*parts, apart]}
    jobs, pooled = joined([apart[0], *(j for j, _ in reversed(parts))], lambda j: confusions[j.run_id])
    assert [j.run_id for j in jobs] == ["r12-2", "r0-5"] and jobs[1].run_ids == ("r0-5", "r5-5", "r10-5")
    one = jobs[1]
    assert one.params == whole.params == {"eval.max_images": "None"}  # all 14: the whole test split's settings
    assert one.slices == tuple(j for j, _ in parts)
    assert pooled == {"r0-5": whole_confusion}
    counted = [Metrics.IMAGES, Metrics.CLEAN, Metrics.ADVERSARIAL, Metrics.ATTACK_SUCCESS, Metrics.LINF_MAX]
    counted += [Metrics.SENSITIVITY_CLEAN, Metrics.SENSITIVITY_ADVERSARIAL, Metrics.MISSED_COVID, Metrics.FALSE_ALARM]
    counted += [Metrics.MAJORITY, Metrics.PREDICTED_CLASSES, Metrics.ESCALATED, Metrics.ESCALATION_IMAGES]
    counted += [Metrics.ESCALATION_STANDING, Metrics.CHECK_NOISE, Metrics.CHECK_LARGE_BUDGET]
    counted += [f"{Metrics.ESCALATION}{stage}_broken" for stage in ("noise", "twice_iterations", "apgd_ce")]
    for name in counted:
        assert one.metrics[name] == pytest.approx(whole.metrics[name]), name
    assert 0 < whole.metrics[Metrics.ADVERSARIAL] < whole.metrics[Metrics.CLEAN] < 1  # a case with something in it
    assert not whole.untrained and not one.untrained
    assert Metrics.AUROC_CLEAN not in one.metrics  # not to be pooled from the slices' records
    assert [(c.letter, c.state) for c in checklist(one)] == [(c.letter, c.state) for c in checklist(whole)]


def test_a_slice_is_a_cell_of_its_own_and_the_whole_split_keys_as_before():
    from covid_robustness.job.attack import job_name
    from covid_robustness.job.keys import cell_key, job_settings, training_key

    from .conftest import make_cfg

    whole, first = make_cfg("attack=pgd"), make_cfg("attack=pgd", "eval.first_image=0")
    sliced = make_cfg("attack=pgd", "eval.first_image=80")
    assert "first_image" not in job_settings(first)["eval"]  # off: keyed and logged as before it existed
    assert cell_key(first) == cell_key(whole) != cell_key(sliced)
    assert training_key(sliced) == training_key(whole)  # the same trained model, attacked in slices
    assert job_name(sliced) == job_name(whole) + " images 80+"
    from covid_robustness.console import cells_table

    m = {Metrics.CLEAN: 1.0, Metrics.ADVERSARIAL: 0.5}
    slices = [
        Job(f"r{f}", 0, "m", "pgd", "", "fast", EPS, "t", {"eval.first_image": f"{f}"} if f else {}, m)
        for f in (160, 0, 80)
    ]
    rows = cells_table(slices).splitlines()[2:]  # the sweep's closing table tells the slices apart, in order
    assert [r.split()[2:4] for r in rows] == [["pgd", "8/255"], ["pgd", "images"], ["pgd", "images"]]
    assert "images 80+" in rows[1] and "images 160+" in rows[2]


def test_escalation_is_off_unless_asked_and_needs_a_budget():
    m = evaluate(Normalized(MeanThreshold(True), 0.0, 1.0), near(), EvaluationOptions(PGD, 2, 1, progress=False))
    assert Metrics.ESCALATED not in m.metrics
    st = {"name": "st", "impl": "fast", "max_rotation": 5.0, "max_translation": 0.0}
    options = EvaluationOptions(st, 2, 1, progress=False, escalate=True)
    assert Metrics.ESCALATED not in evaluate(Normalized(MeanThreshold(True), 0.0, 1.0), near(), options).metrics


def test_a_job_escalates_with_transfers_from_the_studys_other_models(tmp_path):
    from covid_robustness.errors import ConfigError
    from covid_robustness.job.keys import cell_key
    from covid_robustness.job.plan import validate
    from covid_robustness.job.run import run as run_job

    from .conftest import make_cfg, store_runs

    on = ["attack=pgd", "eval.max_images=8", "eval.escalate=true", "eval.escalate_max_iter=5"]
    on += ["eval.escalate_restarts=1", "eval.escalate_square_queries=20"]
    cfg = make_cfg(*on, "eval.escalate_sources=[resnet18,resnet50]", tmp_path=tmp_path)
    assert cell_key(cfg) != cell_key(make_cfg("attack=pgd", "eval.max_images=8", tmp_path=tmp_path))
    metrics = run_job(cfg)
    assert metrics[Metrics.ESCALATED] <= metrics[Metrics.ADVERSARIAL] <= metrics[Metrics.CLEAN]
    assert metrics[Metrics.ESCALATION_IMAGES] == 8
    trained = {r.data.tags["model"] for r in store_runs(tmp_path / "mlruns", role="training")}
    assert trained == {"resnet18", "resnet50"}  # the other model of the study, trained for the transfer stage
    [job] = store_runs(tmp_path / "mlruns", role="attack")
    assert job.data.params["eval.escalate_sources"] == "['resnet18', 'resnet50']"
    said = job.data.tags["verdict"]  # written when the job ended, with its evidence
    assert said.startswith(("stands after escalation", "under-attacked (", "masked (", "not established (")), said
    assert "(e) escalation: escalated" in job.data.tags["verdict_evidence"]
    # The report reads both numbers side by side, and the verdict with its evidence.
    from mlflow.tracking import MlflowClient

    from covid_robustness.report.collect import collect
    from covid_robustness.report.pages import build

    build(collect(MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"), "default"), tmp_path / "report")
    page = (tmp_path / "report" / "report.md").read_text()
    table2 = page.split("## Table II: accuracy under attack")[1].split("\n## ")[0]
    assert "| RN-18 escalated |" in table2 and "Escalated: what stands" in table2
    clean = next(line for line in table2.splitlines() if line.startswith("| Clean"))
    assert clean.split(" | ")[2] == "–"  # no escalated value on a clean row
    assert f"| verdicts after escalation | 1 {said.split(' (')[0]} (table of verdicts) |" in page
    verdicts = page.split("## Verdicts: does the number stand?")[1].split("\n## ")[0]
    assert f"| {said} |" in verdicts
    runs = (tmp_path / "report" / "runs.csv").read_text().splitlines()
    header = runs[0].split(",")
    assert {"escalated_accuracy", "escalated_ci95_low", "verdict", "check_noise_accuracy"} <= set(header)
    # The same 8 images in two slices (eval.first_image): the report reads them as one job, its confusion.json
    # the slices' summed, which counts what the job of all 8 counted.
    sliced = [o for o in on if not o.startswith("eval.max_images")] + ["eval.escalate_sources=[resnet18,resnet50]"]
    for first in (0, 4):
        run_job(make_cfg(*sliced, "eval.max_images=4", f"eval.first_image={first}", tmp_path=tmp_path))
    study = collect(MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"), "default")
    [one], [alone] = [j for j in study.jobs if j.slices], [j for j in study.jobs if not j.slices]
    assert len(one.slices) == 2 and one.params["eval.max_images"] == "8" and one.metrics[Metrics.IMAGES] == 8
    assert one.metrics[Metrics.CLEAN] == alone.metrics[Metrics.CLEAN]
    assert study.artifacts.confusion(one)["clean"] == study.artifacts.confusion(alone)["clean"]
    with pytest.raises(ConfigError, match="eval.escalate_sources='resnet99' is not a model config"):
        validate(make_cfg(*on, "eval.escalate_sources=[resnet99]"))
    with pytest.raises(ConfigError, match="eval.escalate_restarts=0"):
        validate(make_cfg("attack=pgd", "eval.escalate=true", "eval.escalate_restarts=0"))


def test_the_sweeps_closing_table_gives_the_escalated_accuracy_and_the_verdict_within_100_columns():
    from dataclasses import replace

    from covid_robustness.console import cells_table

    m = run(MeanThreshold(hidden=True), near(), escalate_restarts=1, escalate_square_queries=300)
    hidden = replace(job(m), masking=True, masking_reasons="; ".join(flags(job(m))))
    robust = replace(job({**m, Metrics.ESCALATED: 1.0}), run_id="s", model="resnet18")
    plain = Job("p", 0, "vgg19", "pgd", "", "fast", EPS, "t", {}, {Metrics.CLEAN: 1.0, Metrics.ADVERSARIAL: 0.5})
    table = cells_table([hidden, robust, plain]).splitlines()
    assert max(map(len, table)) <= 100, table
    assert table[0].split() == ["model", "defense", "attack", "eps", "clean", "%", "adv", "%", "escalated", "%", "flag"]
    rows = {line.split()[0]: line for line in table[2:5]}
    assert rows["m"].endswith("⚠ masked (b, c, e)") and f"{100 * m[Metrics.ESCALATED]:.1f}" in rows["m"]
    assert rows["vgg19"].endswith("–")  # not escalated, not flagged
    assert table[-1].endswith("docs/flags.md")
