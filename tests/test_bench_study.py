"""bench/study.py --tiny: the study's cost bench runs end to end on the CPU and writes sane numbers."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("resnet18", "resnet50", "wrn16_8", "vgg19", "inception_v3")
ATTACKS = ("fgsm_art_fast", "fgsm_art_fast_std", "pgd_art_fast", "pgd_art_fast_std", "cw_art_fast", "st", "st_art_rule")


def test_study_tiny(tmp_path):
    out = tmp_path / "study.json"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, "bench/study.py", "--tiny", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result["tiny"] is True
    assert set(result["models"]) == set(MODELS)
    assert result["attack_names"] == list(ATTACKS)
    for name, r in result["models"].items():
        assert r["lightning_images_per_second"] > 0, name
        assert r["plain_images_per_second"] > 0, name
        assert math.isfinite(r["lightning_overhead"]) and r["lightning_overhead"] > 0, name
        assert r["forward_seconds_per_image"] > 0 and r["forward_backward_seconds_per_image"] > 0, name
        assert set(r["attacks"]) == set(ATTACKS), name
        for attack, a in r["attacks"].items():
            assert a["seconds_per_image"] > 0, (name, attack)
            assert a["worst_seconds_per_image"] >= a["seconds_per_image"], (name, attack)
            assert a["forward_passes_per_image"] + a["forward_backward_passes_per_image"] > 0, (name, attack)
            assert a["images"] == 4, (name, attack)
        assert r["projected_train_minutes"] > 0 and r["projected_attack_minutes"] > 0, name
        assert r["projected_total_worst_minutes"] >= r["projected_total_minutes"], name
    assert result["total_minutes"] > 0
    assert math.isclose(result["total_minutes"], sum(r["projected_total_minutes"] for r in result["models"].values()))
    table = proc.stdout
    assert "TINY" in table
    for name in MODELS:
        assert f"| {name} |" in table, name
    assert "total over 5 model(s)" in table
    # one progress line per model and per attack, on stderr
    assert sum(" s/img, " in line for line in proc.stderr.splitlines()) == len(MODELS) * len(ATTACKS)
