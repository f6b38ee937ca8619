"""Defenses and transfer attacks in a real sweep: what is trained once, what each run records, the report."""

from .conftest import TINY, run_cli, store_runs


def test_a_sweep_over_defenses_and_sources(tmp_path):
    store = tmp_path / "mlruns"
    common = [*TINY, "attack=fgsm", "attack.eps=0.03", "eval.max_images=16", "study=defended", f"tracking.dir={store}"]
    first = run_cli(
        "-m",
        "model=resnet18,wrn16_8",
        "defense=none,jpeg",
        "attack.source_model=resnet18,wrn16_8",
        *common,
        f"hydra.sweep.dir={tmp_path / 'm1'}",
    )
    assert first.returncode == 0, first.stderr[-3000:]
    second = run_cli(
        "-m",
        "model=resnet18",
        "defense=adv_train_fgsm_rs,gaussian_noise",
        "defense.eot_samples=2",
        *common,
        f"hydra.sweep.dir={tmp_path / 'm2'}",
    )
    assert second.returncode == 0, second.stderr[-3000:]

    runs = store_runs(store, "defended")
    training = {r.info.run_id: r for r in runs if r.data.tags.get("role") == "training"}
    jobs = [r for r in runs if r.data.tags.get("role") == "attack"]
    assert len(jobs) == 10 and all(r.info.status == "FINISHED" for r in runs)
    # resnet18 and wrn16_8 plainly, resnet18 adversarially: JPEG and noise act at test time, on the plain models.
    assert sorted((r.data.tags["model"], r.data.tags["training"]) for r in training.values()) == [
        ("resnet18", "adversarial (fgsm_rs)"),
        ("resnet18", "plain"),
        ("wrn16_8", "plain"),
    ]
    assert all(r.data.metrics["training_seconds"] > 0 for r in training.values())
    parents = {
        (j.data.params["model.name"], j.data.params["defense.name"], j.data.params["attack.source_model"]): j.data.tags[
            "mlflow.parentRunId"
        ]
        for j in jobs
    }
    assert parents[("resnet18", "jpeg", "resnet18")] == parents[("resnet18", "none", "resnet18")]
    assert parents[("resnet18", "gaussian_noise", "None")] == parents[("resnet18", "none", "resnet18")]
    adversarial = training[parents[("resnet18", "adv_train_fgsm_rs", "None")]]
    assert adversarial.data.params["defense.training.method"] == "fgsm_rs"
    # the training's cost per image, counted in its steps: FGSM-RS makes one gradient step before the update
    assert adversarial.data.metrics["training_passes_per_image"] == 2.0
    plain = training[parents[("resnet18", "none", "resnet18")]]
    assert plain.data.metrics["training_passes_per_image"] == 1.0

    by_cell = {
        (j.data.params["model.name"], j.data.params["defense.name"], j.data.params["attack.source_model"]): j
        for j in jobs
    }
    jpeg = by_cell[("resnet18", "jpeg", "resnet18")].data
    assert jpeg.tags["evaluation"] == "oblivious + bpda" and jpeg.tags["strongest_evaluation"] in ("oblivious", "bpda")
    assert jpeg.metrics["adversarial_accuracy"] <= min(
        jpeg.metrics["adversarial_accuracy_oblivious"], jpeg.metrics["adversarial_accuracy_bpda"]
    )
    assert "defended_test_accuracy" in jpeg.metrics
    noise = by_cell[("resnet18", "gaussian_noise", "None")].data
    assert noise.tags["evaluation"] == "oblivious + bpda_eot" and "adversarial_accuracy_bpda_eot" in noise.metrics
    transfer = by_cell[("resnet18", "none", "wrn16_8")].data
    assert transfer.tags["evaluation"] == "transfer"
    assert transfer.tags["source_training_run"] == parents[("wrn16_8", "none", "wrn16_8")]
    assert transfer.metrics["linf_max"] <= 0.03 + 1e-5
    assert by_cell[("resnet18", "none", "resnet18")].data.tags["evaluation"] == "whitebox"

    out = tmp_path / "report"
    report = run_cli(
        "report", "--study", "defended", "--tracking-uri", f"sqlite:///{store / 'mlflow.db'}", "--out", str(out)
    )
    assert report.returncode == 0, report.stderr[-2000:]
    text = (out / "report.md").read_text()
    for heading in (
        "## Defenses: what each bought and what it cost",
        "## Defenses: accuracy per model",
        "## Transfer: FGSM eps=7.65/255",
    ):
        assert heading in text, heading
    assert (out / "defenses.png").read_bytes()[:4] == b"\x89PNG" and (out / "transfer.png").read_bytes()[
        :4
    ] == b"\x89PNG"
    matrix = text.split("## Transfer: FGSM eps=7.65/255")[1].split("\n\n")[1].splitlines()
    assert matrix[0] == "| source \\ target | RN-18 | WRN-16-8 |" and len(matrix) == 4  # header, rule, 2 sources
    # results.json: the defended cells per model and defense (white-box: crafted on the model itself)
    import json

    results = json.loads((out / "results.json").read_text())
    defended = {(e["model"], e["defense"]): e for e in results["defended"]}
    assert list(defended) == [
        ("resnet18", "adv_train_fgsm_rs"),
        ("resnet18", "gaussian_noise"),
        ("resnet18", "jpeg"),
        ("wrn16_8", "jpeg"),
    ]
    for (model, defense), e in defended.items():
        job = by_cell[(model, defense, model if defense == "jpeg" else "None")]
        assert e["adversarial"]["accuracy"] == job.data.metrics["adversarial_accuracy"] and e["attack"] == "fgsm"
        assert e["adversarial"]["images"] == 16 and e["run_ids"] == [job.info.run_id]
    per_model = next(t for t in results["tables"] if t["title"] == "Defenses: accuracy per model")
    assert [r[:2] for r in per_model["rows"]][:2] == [["RN-18", "none"], ["RN-18", "adv_train_fgsm_rs"]]
