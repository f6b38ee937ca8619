"""The report command on a real tiny study: its tables hold exactly what MLflow holds."""

import base64
import csv
import re

import pytest
from mlflow.tracking import MlflowClient

from covid_robustness.report.cli import main

from .conftest import TINY, run_cli

STUDY = "reported"
FIGURES = ("figure3_accuracy.png", "robustness_curves.png", "paper_equivalent_eps.png", "figure2_kernels.png")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Two models x FGSM, PGD x 2 budgets; then on one model FGSM again (a forced rerun), FGSM at ART's defaults on
    pixels and in std units, ST per image and at ART's rule."""
    tmp = tmp_path_factory.mktemp("report")
    common = [*TINY, "eval.max_images=16", f"study={STUDY}", f"tracking.dir={tmp / 'mlruns'}"]
    for i, grid in enumerate(
        [
            ["model=resnet18,wrn16_8", "attack=fgsm,pgd", "attack.eps=0.01,${px:8}"],
            ["model=resnet18", "attack=fgsm,fgsm_art,fgsm_art_std,st,st_art_rule", "resume=false"],
        ]
    ):
        result = run_cli("-m", *grid, *common, f"hydra.sweep.dir={tmp / f'multirun{i}'}")
        assert result.returncode == 0, result.stderr[-3000:]
    uri = f"sqlite:///{tmp / 'mlruns' / 'mlflow.db'}"
    result = run_cli("report", "--study", STUDY, "--tracking-uri", uri, "--out", str(tmp / "report"))
    assert result.returncode == 0, result.stderr[-3000:]
    experiment = MlflowClient(uri).get_experiment_by_name(STUDY).experiment_id  # its last line: the saved view
    assert (
        f"its runs in the MLflow UI: http://127.0.0.1:5000/#/experiments/{experiment}/runs?viewStateShareKey="
        in (result.stdout.splitlines()[-1])
    )
    return tmp, uri, MlflowClient(uri)


def _csv(path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _jobs(client) -> list:
    exp = client.get_experiment_by_name(STUDY)
    return client.search_runs([exp.experiment_id], "tags.role = 'attack'", order_by=["attributes.start_time DESC"])


def test_writes_every_table_and_figure(store):
    tmp, _, _ = store
    out = tmp / "report"
    for name in (*FIGURES, "report.md", "report.html", "table2.csv", "runs.csv", "manifest.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for name in FIGURES:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "report.md").read_text()
    for title in (
        "Table II: accuracy under attack",
        "Table II: average over the five models",
        "Table I: parameters",
        "Figure 3",
        "Figure 2",
        "Robustness curves",
        "Paper-equivalent budgets",
        "Clean test metrics",
        "Jobs",
        "Reruns left out",
    ):
        assert f"## {title}" in md, title
    for name in FIGURES:
        assert f"]({name})" in md


def _cell(p: dict) -> tuple:
    return p["model.name"], p["attack.name"], p["attack.setting"], p["attack.eps"], p.get("attack.eps_unit", "pixel")


def test_table2_holds_the_mlflow_metrics_of_the_newest_run_per_cell(store):
    tmp, _, client = store
    newest = {}
    for run in _jobs(client):  # newest first
        newest.setdefault(run.data.tags["cell_key"], run)
    assert len(newest) == 12  # 8 + FGSM at ART's defaults (pixels, std) + ST (per image, ART's rule); one rerun
    assert len({_cell(run.data.params) for run in newest.values()}) == 12

    records = _csv(tmp / "report" / "table2.csv")
    attacked = [r for r in records if r["attack"] != "clean"]
    assert len(attacked) == len(newest)
    by_cell = {_cell(run.data.params): run for run in newest.values()}
    for r in attacked:
        eps = str(float(r["eps_configured"])) if r["eps_configured"] else "None"
        run = by_cell[(r["model"], r["attack"], r["setting"], eps, r["eps_unit"])]
        assert r["run_id"] == run.info.run_id and r["n_seeds"] == "1"
        assert float(r["eps"] or "nan") == pytest.approx(run.data.metrics.get("eps_pixel", float("nan")), nan_ok=True)
        assert float(r["accuracy"]) == run.data.metrics["adversarial_accuracy"]
        assert float(r["covid_sensitivity"]) == run.data.metrics["covid_sensitivity_adversarial"]
        assert r["gradient_masking"] == str(run.data.tags["gradient_masking"] == "true")
    for r in records:
        if r["attack"] == "clean":
            run = next(run for run in newest.values() if run.data.params["model.name"] == r["model"])
            assert float(r["accuracy"]) == run.data.metrics["test/acc"]
            assert int(r["images"]) == run.data.metrics["test_images"]

    # The Markdown table shows the same numbers, with the paper's beside the rows it compares with.
    md = (tmp / "report" / "report.md").read_text()
    lines = {
        line.split(" | ")[0].lstrip("| "): line.strip(" |").split(" | ")
        for line in md.splitlines()
        if line.startswith("| ") and "RN-18 paper" not in line
    }
    fgsm = next(
        r
        for r in attacked
        if (r["model"], r["attack"], r["setting"]) == ("resnet18", "fgsm", "budget")
        and abs(float(r["eps"]) - 8 / 255) < 1e-9
    )
    assert lines["FGSM eps=8/255 [fast]"][1].split()[0] == f"{100 * float(fgsm['accuracy']):.2f}"
    # The paper's FGSM compares with ART's defaults in std units; the pixel-unit row stays beside it.
    std = next(v for k, v in lines.items() if re.fullmatch(r"FGSM eps=0\.3 std = [\d.]+/255 \(ART default\)", k))
    assert std[2] == "51.90" and std[-1] == "FGSM"
    assert lines["FGSM eps=76.5/255 (ART default)"][2] == "–" and lines["FGSM eps=76.5/255 (ART default)"][-1] == "–"
    assert lines["Clean (whole test split)"][2:5:2] == ["93.52", "99.56"]
    # The paper's ST compares with ART's rule; our per-image worst case has no paper value.
    assert lines["ST rot ±30°, shift ±10% (ART's rule) [fast]"][2] == "56.31"
    assert lines["ST rot ±30°, shift ±10% (paper setting) [fast]"][2] == "–"
    assert lines["PGD eps=0.3 std (ART default): not in this study"][1:3] == ["–", "18.48"]
    for row in attacked:
        assert f"{100 * float(row['accuracy']):.2f}" in md


def test_the_rerun_is_named_and_left_out(store):
    tmp, _, client = store
    fgsm = [
        run
        for run in _jobs(client)
        if run.data.params["model.name"] == "resnet18"
        and run.data.params["attack.name"] == "fgsm"
        and run.data.params["attack.setting"] == "budget"
        and float(run.data.params["attack.eps"]) > 0.02
    ]
    assert len(fgsm) == 2
    section = (tmp / "report" / "report.md").read_text().split("## Reruns left out")[1]
    newer, older = (run.info.run_id[:8] for run in fgsm)
    line = next(line for line in section.splitlines() if older in line)
    assert line.index(older) < line.index(newer)  # left out, then the one used instead


def test_runs_csv_and_parameter_counts(store):
    tmp, _, client = store
    runs = {r["run_id"]: r for r in _csv(tmp / "report" / "runs.csv")}
    assert len(runs) == 12
    for run in _jobs(client):
        if run.info.run_id in runs:
            for name in ("clean_accuracy", "attack_success_rate", "linf_max", "test/auroc"):
                assert float(runs[run.info.run_id][name]) == run.data.metrics[name]
    md = (tmp / "report" / "report.md").read_text()
    assert "| RN-18 | 11,171,266 | 11,180,866 | 11,185,218 |" in md
    assert "| WRN-16-8 | 10,957,650 | 10,964,882 | 11,033,186 |" in md


def test_the_manifest_holds_the_runs_provenance_and_no_absolute_path(store):
    import json
    import os

    import torch

    tmp, _, client = store
    out = tmp / "report"
    m = json.loads((out / "manifest.json").read_text())
    jobs = [r for r in _jobs(client) if r.info.run_id in {x["run_id"] for x in _csv(out / "runs.csv")}]
    assert m["commits"] == sorted({r.data.tags["mlflow.source.git.commit"].removesuffix("-dirty") for r in jobs})
    assert m["jobs"] == 12 and m["trainings"] == 2 and len(m["commands"]) == 12
    (data,) = m["data"]  # one dataset, read by the trainings and the jobs
    assert data["contexts"] == ["test", "training"] and data["source"].startswith("covid_robustness.data.synthetic(")
    assert data["digest"] == jobs[0].inputs.dataset_inputs[0].dataset.digest and data["split_sizes"]["test"] > 0
    assert m["recipe"]["varies"]["model.name"] == ["resnet18", "wrn16_8"] and "tracking.dir" not in m["recipe"]["fixed"]
    assert m["machine"] and f"{os.cpu_count()} cores" in m["machine"][0]
    assert f"torch {torch.__version__.split('+')[0]}" in m["library_versions"][0]
    time = m["wall_time_seconds"]
    assert 0 < time["training"] and 0 < time["jobs"] <= time["first_start_to_last_end"]
    assert time["jobs"] <= time["under_way"] <= time["first_start_to_last_end"]  # the jobs ran one at a time
    assert str(tmp) not in (out / "manifest.json").read_text() and str(tmp) not in (out / "report.md").read_text()
    opening = (out / "report.md").read_text().split("## Study")[0]  # the report opens with it, and the setup
    assert "## Provenance" in opening and "| image size | 32 x 32 grayscale | 255 x 255 grayscale |" in opening


def test_the_manifest_counts_the_runs_that_did_not_finish_apart(store):
    from covid_robustness.record import Tags
    from covid_robustness.report import manifest
    from covid_robustness.report.collect import collect

    _, _, client = store
    before = manifest.manifest(collect(client, STUDY))
    experiment = client.get_experiment_by_name(STUDY).experiment_id
    failed = client.create_run(experiment, start_time=1_000_000, tags={Tags.ROLE: "attack"})  # an interrupted job
    client.set_terminated(failed.info.run_id, "FAILED", end_time=1_090_000)
    killed = client.create_run(experiment, start_time=2_000_000, tags={Tags.ROLE: "training"})  # never ended
    try:
        after = manifest.manifest(collect(client, STUDY))
        time = after["wall_time_seconds"]
        assert (time["unfinished_runs"], time["unfinished_seconds"]) == (2, 90.0)
        assert after["jobs"] == before["jobs"] and time["jobs"] == before["wall_time_seconds"]["jobs"]
        assert before["wall_time_seconds"]["unfinished_runs"] == 0
        row = dict(manifest.table(after).rows)["wall time"]
        assert row.endswith(
            "; 2 runs did not finish (interrupted or failed, run again), 0 h 01 min before they "
            "stopped, counted in none of these"
        )
        one = manifest.wall_time_text({**time, "unfinished_runs": 1})
        assert "; 1 run did not finish (interrupted or failed, run again), 0 h 01 min before it stopped" in one
    finally:
        for run in (failed, killed):
            client.delete_run(run.info.run_id)


def test_results_json_holds_each_jobs_numbers_as_runs_csv(store):
    import json

    tmp, _, _ = store
    out = tmp / "report"
    results = json.loads((out / "results.json").read_text())
    runs = {r["run_id"]: r for r in _csv(out / "runs.csv")}
    assert results["commit"] == json.loads((out / "manifest.json").read_text())["commit"]
    assert len(results["evaluations"]) == len(runs)  # one seed each: an entry per job
    for e in results["evaluations"]:
        (run_id,) = e["run_ids"]
        row = runs[run_id]
        assert e["model"] == row["model"] and e["adversarial"]["images"] == float(row["attack_images"])
        assert e["adversarial"]["accuracy"] == pytest.approx(float(row["adversarial_accuracy"]))
        assert e["adversarial"]["ci95"] == pytest.approx(
            [float(row["adversarial_accuracy_ci95_low"]), float(row["adversarial_accuracy_ci95_high"])]
        )
        assert e["clean"]["accuracy"] == pytest.approx(float(row["clean_accuracy"]))


def test_readme_regions_render_the_reports_files_and_catch_drift(store, tmp_path):
    import json
    import shutil

    from covid_robustness.report import readme

    tmp, _, _ = store
    shutil.copytree(tmp / "report", tmp_path / "study")
    page = tmp_path / "README.md"
    page.write_text(
        "Hand-written words.\n"
        + "".join(f"<!-- generated: study {kind} -->\nold\n<!-- /generated -->\n" for kind in readme.KINDS)
        + "<!-- generated: study table: Table II: average over the five models -->\nold\n<!-- /generated -->\n"
    )
    with pytest.raises(SystemExit) as done:
        readme.main([str(page)])
    assert done.value.code == 0
    text = page.read_text()
    results = json.loads((tmp_path / "study" / "results.json").read_text())
    first = results["evaluations"][0]
    assert text.startswith("Hand-written words.\n") and "old" not in text
    assert f"{100 * first['adversarial']['accuracy']:.2f} [" in text.split(first["evaluation_set"])[1].split("\n")[0]
    assert json.loads((tmp_path / "study" / "manifest.json").read_text())["commits"][0][:10] in text
    quoted = text.split("table: Table II: average over the five models -->\n")[1].split("<!-- /generated -->")[0]
    printed = (tmp_path / "study" / "report.md").read_text().split("## Table II: average over the five models\n\n")
    assert printed[1].startswith(quoted) and quoted.count("\n| ") >= 3  # the table as the report prints it
    with pytest.raises(SystemExit) as done:
        readme.main(["--check", str(page)])
    assert done.value.code == 0  # up to date
    first["adversarial"]["accuracy"] += 0.01  # the numbers move: the region no longer says what they say
    (tmp_path / "study" / "results.json").write_text(json.dumps(results))
    with pytest.raises(SystemExit) as done:
        readme.main(["--check", str(page)])
    assert done.value.code == 1 and page.read_text() == text


def test_a_readme_region_that_names_no_table_of_the_report_is_an_error(store, tmp_path, capsys):
    import shutil

    from covid_robustness.report import readme

    tmp, _, _ = store
    shutil.copytree(tmp / "report", tmp_path / "study")
    for region in ("study table: Table III", "study table", "study tables: Table II: accuracy under attack"):
        page = tmp_path / "README.md"
        page.write_text(f"<!-- generated: {region} -->\n<!-- /generated -->\n")
        with pytest.raises(SystemExit) as done:
            readme.main(["--check", str(page)])
        assert done.value.code == 2
    err = capsys.readouterr().err
    assert "the report has no table 'Table III'; it has [" in err and "'Table II: accuracy under attack'" in err


def test_the_report_refills_a_readme_in_its_folder(store, tmp_path, capsys):
    _, uri, _ = store
    out = tmp_path / "study"
    out.mkdir()
    (out / "README.md").write_text("Words.\n<!-- generated: . table2 -->\nold\n<!-- /generated -->\nMore words.\n")
    main(["--study", STUDY, "--tracking-uri", uri, "--out", str(out)])
    assert f"{out / 'README.md'}: generated regions rewritten" in capsys.readouterr().out
    text = (out / "README.md").read_text()
    assert text.startswith("Words.\n<!-- generated: . table2 -->\n| evaluation set | RN-18 | WRN-16-8 |")
    assert text.endswith("<!-- /generated -->\nMore words.\n") and "old" not in text


def test_html_is_one_page_with_the_figures_embedded(store):
    tmp, _, _ = store
    page = (tmp / "report" / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert sorted(base64.b64decode(i) for i in images) == sorted((tmp / "report" / f).read_bytes() for f in FIGURES)
    assert page.count("<table>") == 11 and "<th>RN-18 paper</th>" in page
    assert 'src="http' not in page and "<link" not in page  # nothing to fetch


def test_a_summary_run_holds_the_files_and_supersedes_the_last(store, tmp_path, capsys):
    _, uri, client = store
    exp = client.get_experiment_by_name(STUDY)
    main(["--study", STUDY, "--tracking-uri", uri, "--out", str(tmp_path / "again")])
    assert "report.html" in capsys.readouterr().out
    reports = client.search_runs([exp.experiment_id], "tags.role = 'report'", order_by=["attributes.start_time DESC"])
    assert len(reports) >= 2 and all(r.info.status == "FINISHED" for r in reports)
    new, *older = reports
    assert new.data.tags["current"] == "true"
    for later, earlier in zip(reports, older):  # each report superseded by the next one made
        assert earlier.data.tags["current"] == "false" and earlier.data.tags["superseded_by"] == later.info.run_id
    artifacts = {a.path for a in client.list_artifacts(new.info.run_id)}
    # every job logs both directions of harm and its reliability diagram: the clinical page comes too
    clinical = {"clinical.md", "clinical.html", "clinical_harm.png", "clinical_reliability.png"}
    files = {"report.md", "report.html", "table2.csv", "runs.csv", "manifest.json", "results.json"}
    assert {*files, *FIGURES, *clinical} == artifacts


def _error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    return err


def test_unknown_study_lists_the_ones_there(store, capsys):
    _, uri, _ = store
    err = _error(["--study", "nosuch", "--tracking-uri", uri], capsys)
    assert "study 'nosuch' is not in the MLflow store" in err and f"available studies: {STUDY}" in err


def test_a_study_without_finished_jobs_is_refused(store, capsys):
    _, uri, client = store
    exp_id = client.create_experiment("unfinished")
    run = client.create_run(exp_id, tags={"role": "attack"})
    client.set_terminated(run.info.run_id, "FAILED")
    err = _error(["--study", "unfinished", "--tracking-uri", uri], capsys)
    assert "study 'unfinished' has no finished job runs" in err


def test_a_missing_store_is_refused_before_mlflow_makes_one(tmp_path, capsys):
    err = _error(["--study", STUDY, "--tracking-uri", f"sqlite:///{tmp_path / 'none.db'}"], capsys)
    assert "there is no MLflow store at" in err and not (tmp_path / "none.db").exists()


def test_gradient_masking_flags_are_shown_with_their_reasons(store, tmp_path):
    _, uri, client = store
    run = next(
        r
        for r in _jobs(client)
        if r.data.params["model.name"] == "wrn16_8"
        and r.data.params["attack.name"] == "pgd"
        and r.data.params["attack.eps"] == "0.01"
    )
    other = next(
        r
        for r in _jobs(client)
        if r.data.params["model.name"] == "resnet18"
        and r.data.params["attack.name"] == "pgd"
        and r.data.params["attack.eps"] == "0.01"
    )
    fgsm = next(
        r
        for r in _jobs(client)
        if r.data.params["model.name"] == "wrn16_8"
        and r.data.params["attack.name"] == "fgsm"
        and r.data.params["attack.eps"] == "0.01"
    )
    # The report computes the flags from the runs, as the sweep's end does: make PGD look weaker than FGSM.
    original = run.data.metrics["adversarial_accuracy"]
    assert fgsm.data.metrics["adversarial_accuracy"] + 1 / run.data.metrics["attack_images"] < 1.0
    client.log_metric(run.info.run_id, "adversarial_accuracy", 1.0)
    try:
        main(["--study", STUDY, "--tracking-uri", uri, "--out", str(tmp_path)])
    finally:
        client.log_metric(run.info.run_id, "adversarial_accuracy", original)
    md = (tmp_path / "report.md").read_text()
    pgd = next(line for line in md.splitlines() if line.startswith("| PGD eps=2.55/255 [fast] |")).split(" | ")
    # WRN-16-8 flagged after its interval; RN-18 as the sweep flagged it: the two compute the flags alike.
    assert re.fullmatch(r"100.00 \[[\d.]+, [\d.]+\] ⚠( ∅)?", pgd[3])
    assert ("⚠" in pgd[1]) == (other.data.tags["gradient_masking"] == "true")
    line = next(line for line in md.splitlines() if f"| {run.info.run_id[:8]} |" in line)
    fgsm_accuracy = fgsm.data.metrics["adversarial_accuracy"]
    assert f"| ⚠ PGD-10 accuracy 1.000 above FGSM's {fgsm_accuracy:.3f} at eps 0.0100" in line
    assert {r["run_id"]: r["gradient_masking"] for r in _csv(tmp_path / "table2.csv")}[run.info.run_id] == "True"
