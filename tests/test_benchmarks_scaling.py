"""Smoke test of benchmarks/scaling.py: it runs at a tiny shape, prints every section and
writes both plots. No timing is asserted."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "scaling.py"


def test_quick_run(tmp_path):
    out_json = tmp_path / "scaling.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--m", "16", "--ks", "16,32", "--shapes",
         "16x32", "--plot-dir", str(tmp_path), "--json", str(out_json)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=dict(os.environ),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for section in ("1. batched encode against k", "2. batch throughput against threads",
                    "3. fraction of the matvec bound", "trivially parallel numba loop",
                    "2t/1t paired [control]", "the matvec loop alone"):
        assert section in proc.stdout, section
    for name in ("throughput_k.png", "throughput_threads.png"):
        assert (tmp_path / name).stat().st_size > 1000
    data = json.loads(out_json.read_text())
    assert data["command"][:2] == ["benchmarks/scaling.py", "--quick"]
    assert data["streamsc_version"] and "git_commit" in data
    assert data["settings"]["m"] == [16] and data["settings"]["ks"] == [16, 32]
    # 2 k x 2 priors x (1 thread, 2 threads, float32)
    assert len(data["results"]["k_sweep"]) == 2 * 2 * 3
    assert {r["dtype"] for r in data["results"]["k_sweep"]} == {"float64", "float32"}
    # 2 priors x (encode, transform_many, mini-batch learn_many) x (1, 2 threads); the river
    # path codes the same
    assert len(data["results"]["threads"]) == 12
    assert {r["call"] for r in data["results"]["threads"]} == {"encode", "transform_many", "learn_many"}
    assert all(r["max_diff_vs_encode"] < 1e-10 for r in data["results"]["threads"]
               if r["call"] != "learn_many")
    # --quick: 2 back-to-back pairs per configuration, each bracketed by the control loop
    for r in data["results"]["threads"]:
        assert (len(r["paired_ratios"]) == len(r["paired_control_ratios"])
                == len(r["paired_vector_control_ratios"]) == 2)
        assert all(math.isfinite(v) and v > 0 for v in r["paired_ratios"])
        assert r["minor_faults_per_call"] >= 0
    # the matvec loop alone against the size of B, in pairs bracketed by the control
    assert [(r["m"], r["k"]) for r in data["results"]["matvec_sizes"]] == [
        (16, 64), (32, 128), (64, 256), (180, 1024)]
    for r in data["results"]["matvec_sizes"]:
        assert len(r["paired_ratios"]) == len(r["paired_control_ratios"]) == 2
        assert all(math.isfinite(v) and v > 0 for v in r["paired_ratios"])
    assert len(data["results"]["matvec_bound"]) == 3
    for r in data["results"]["k_sweep"] + data["results"]["threads"] + data["results"]["matvec_bound"]:
        assert math.isfinite(r["codes_per_s"]) and r["codes_per_s"] > 0
    for r in data["results"]["matvec_bound"]:
        assert r["matvecs_per_code"] >= 2 and 0 < r["fraction_dgemv"]
