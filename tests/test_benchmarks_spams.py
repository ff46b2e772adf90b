"""Smoke test of benchmarks/spams_peer.py: it runs with and without SPAMS.

No timing is asserted. With SPAMS importable (the optional ``bench`` extra) the script's
own check that streamsc's and SPAMS' L1 codes agree must pass and every row must be
printed; with SPAMS hidden (``sys.modules["spams"] = None``) the script must say SPAMS is
not installed, skip its rows, still time streamsc's, and exit 0.
"""

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "spams_peer.py"
ARGS = ["--quick", "--shapes", "16x32"]
HAVE_SPAMS = importlib.util.find_spec("spams") is not None

STREAMSC_CODES = ["streamsc encode L1, n_threads=1", "streamsc encode L1, n_threads=2",
                  "streamsc encode KL (batched EGD), n_threads=1",
                  "streamsc encode KL (batched EGD), n_threads=2"]
SPAMS_CODES = ["spams.lasso, numThreads=1", "spams.lasso, numThreads=2"]


def _run(tmp_path, hide_spams):
    out_json = tmp_path / "spams.json"
    prelude = "import sys, runpy\n"
    if hide_spams:
        prelude += "sys.modules['spams'] = None\n"
    prelude += (f"sys.argv = {[str(SCRIPT)] + ARGS + ['--json', str(out_json)]!r}\n"
                f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n")
    proc = subprocess.run([sys.executable, "-c", prelude], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env=dict(os.environ))
    return proc, out_json


def _check_common(proc, data):
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "BLAS is pinned to 1 thread" in out
    assert "=== batched L1 codes, (m, k) = (16, 32), lam = 0.1, >= 0" in out
    assert "=== batched L1 codes, (m, k) = (16, 32), lam = 0.1, signed" in out
    assert "=== basis learning, (m, k) = (16, 32)" in out
    assert data["command"][0] == "benchmarks/spams_peer.py" and "--quick" in data["command"]
    assert data["streamsc_version"] and "git_commit" in data
    assert data["settings"]["batch_size"] == 16 and data["settings"]["batches"] == 2
    methods = {r["method"] for r in data["results"]["codes"]}
    assert set(STREAMSC_CODES) <= methods
    for r in data["results"]["codes"] + data["results"]["learning"]:
        rate = r.get("codes_per_s", r.get("samples_per_s"))
        assert math.isfinite(rate) and rate > 0


@pytest.mark.skipif(not HAVE_SPAMS, reason="SPAMS (spams-bin, the 'bench' extra) not installed")
def test_with_spams(tmp_path):
    proc, out_json = _run(tmp_path, hide_spams=False)
    data = json.loads(out_json.read_text())
    _check_common(proc, data)
    assert {r["method"] for r in data["results"]["codes"]} >= set(SPAMS_CODES)
    assert any(r["method"].startswith("spams.trainDL") for r in data["results"]["learning"])
    assert len(data["l1_checks"]) == 2
    assert all(c["ok"] and c["max_abs_diff"] <= 1e-4 for c in data["l1_checks"])
    # the same problem: neither solution is better by more than rounding
    assert all(abs(c["max_objective_gap"]) < 1e-8 for c in data["l1_checks"])
    assert "ratios asked for by issue 8" in proc.stdout
    assert "TODO mini-batch basis learning" in proc.stdout or any(
        r["minibatch"] for r in data["results"]["learning"])
    measures = [r["measure"] for r in data["issue_ratios"]]
    assert sum("spams.lasso" in m for m in measures) == 8
    # issue 21: batched KL codes against SPAMS' L1 codes, both signs, 1 and 2 threads
    kl_rows = [r for r in data["issue_ratios"] if r["measure"].startswith("batched KL")]
    assert len(kl_rows) == 4 and all(r["target"] == ">= 1x (issue 21)" for r in kl_rows)
    assert all(math.isfinite(r["ratio"]) and r["ratio"] > 0 for r in kl_rows)


def test_without_spams(tmp_path):
    proc, out_json = _run(tmp_path, hide_spams=True)
    data = json.loads(out_json.read_text())
    _check_common(proc, data)
    assert "SPAMS not installed (pip install -e '.[bench]')" in proc.stdout
    assert not any("spams" in r["method"] for r in data["results"]["codes"] + data["results"]["learning"])
    assert data["l1_checks"] == [] and data["issue_ratios"] == []
