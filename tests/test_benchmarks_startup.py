"""Smoke test of benchmarks/startup.py: one warm pair and no cold run; it prints both
processes' times and the summary. No timing is asserted."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "startup.py"


def test_quick_run(tmp_path):
    out_json = tmp_path / "startup.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--runs", "1", "--cold", "0", "--json", str(out_json)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=dict(os.environ),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "warm: streamsc import + first call median" in proc.stdout
    data = json.loads(out_json.read_text())
    assert data["command"] == ["benchmarks/startup.py", "--runs", "1", "--cold", "0", "--json",
                               str(out_json)]
    assert data["streamsc_version"] and data["settings"] == {"runs": 1, "cold": 0}
    runs = data["results"]
    assert sorted(r["kind"] for r in runs) == ["floor", "streamsc"]
    for r in runs:
        assert all(math.isfinite(r[key]) and r[key] > 0
                   for key in ("import_s", "first_call_s", "total_s"))
        assert r["total_s"] >= r["import_s"]
