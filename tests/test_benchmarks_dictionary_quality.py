"""Smoke test of benchmarks/dictionary_quality.py: the planted section at a tiny size and the
MNIST section in its --quick form print their tables and write every figure to JSON. No
quality or timing is asserted (tests/test_defaults.py asserts the learning)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "dictionary_quality.py"
DATA = ROOT.parent / "shared" / "data"


def test_quick_run(tmp_path):
    if not (DATA / "mnist").is_dir():
        pytest.skip(f"no MNIST under {DATA}")
    out_json = tmp_path / "quality.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--examples", "300", "--data-dir", str(DATA),
         "--json", str(out_json)],
        cwd=ROOT, capture_output=True, text=True, timeout=900, env=dict(os.environ),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Planted dictionaries: atoms recovered" in proc.stdout
    assert "MNIST, PCA-180" in proc.stdout
    data = json.loads(out_json.read_text())
    assert data["command"][:2] == ["benchmarks/dictionary_quality.py", "--quick"]
    assert data["streamsc_version"] and data["settings"]["examples"] == 300
    learners = {r["learner"] for r in data["results"]["planted"]}
    assert {"streamsc defaults (KL)", "streamsc prior='l1'", "MBDL defaults"} <= learners
    for r in data["results"]["planted"]:
        assert len(r["recovery"]) == 3 and all(0.0 <= v <= 1.0 for v in r["recovery"])
    bases = {r["basis"] for r in data["results"]["mnist"]}
    assert {"streamsc learn_one", "streamsc mini_batch=True", "MBDL", "random digits"} <= bases
    for r in data["results"]["mnist"]:
        assert len(r["errors"]) == 3 and all(0.0 <= e <= 1.0 for e in r["errors"])
        if r["codes"] == "l1" and r["basis"] != "random digits":
            assert math.isfinite(r["samples_per_s"]) and r["samples_per_s"] > 0
