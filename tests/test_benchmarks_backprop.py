"""Smoke test of benchmarks/backprop.py: it runs, checks itself and prints every row.

No timing is asserted: the script runs with ``--quick`` at a tiny shape, and the test only
checks the exit status, that its JSON has a record of every contender per configuration,
that the script's own self-checks passed, that the JSON output is complete and finite, and
that the summary tables are printed.
"""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "backprop.py"

FAMILIES = ["KL", "signed KL"]
#: at m = 12 <= 100, direction's "auto" method is the direct solve; CG is the other row
CONTENDERS = [
    "encode", "direction direct", "direction cg", "encode_vjp", "SparseCoder.learn_one",
    "Classifier.learn_one gradient='alternating'", "Classifier.learn_one gradient='implicit'",
]
PER_EXAMPLE = CONTENDERS[:4]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out_json = tmp_path_factory.mktemp("bench") / "backprop.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--shapes", "12x24", "--json", str(out_json)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=dict(os.environ),
    )
    return proc, out_json


def test_exit_status(quick_run):
    proc, _ = quick_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _data(quick_run):
    proc, out_json = quick_run
    assert proc.returncode == 0
    return json.loads(out_json.read_text())


@pytest.mark.parametrize("family", FAMILIES)
def test_every_contender(quick_run, family):
    data = _data(quick_run)
    records = [r for r in data["results"] if r["family"] == family]
    for name in CONTENDERS:
        unit = "per example" if name in PER_EXAMPLE else "per sample"
        mine = [r for r in records if r["contender"] == name]
        assert len(mine) == 1 and mine[0]["kind"] == unit, name
        assert mine[0]["rows"] >= 1
    checks = [c for c in data["checks"] if c["family"] == family]
    assert len(checks) == 4 and all(c["ok"] for c in checks), checks


def test_summary_sections(quick_run):
    proc, _ = quick_run
    out = proc.stdout
    for section in ("issue 5: backward / encode", "first call of each contender"):
        assert section in out, section
    assert "BLAS is pinned to 1 thread" in out
    summary = out.split("issue 5: backward / encode", 1)[1].split("===", 2)[1]
    for family in FAMILIES:
        assert re.search(rf"^\(12, 24\)\s+0\.1\s+{family}\s", summary, re.M), family


def test_json_output(quick_run):
    data = _data(quick_run)
    assert data["command"][:2] == ["benchmarks/backprop.py", "--quick"]
    assert data["streamsc_version"] and "git_commit" in data
    assert data["settings"]["shapes"] == [[12, 24]] and data["settings"]["quick"] is True
    results = data["results"]
    assert len(results) == len(FAMILIES) * len(CONTENDERS)
    assert {(r["family"], r["contender"]) for r in results} == {
        (f, c) for f in FAMILIES for c in CONTENDERS
    }
    for r in results:
        assert (r["m"], r["k"]) == (12, 24)
        assert math.isfinite(r["per_s"]) and r["per_s"] > 0
        assert math.isfinite(r["per_cpu_s"]) and r["per_cpu_s"] > 0
        if r["contender"] in PER_EXAMPLE:
            assert math.isfinite(r["vs_encode"]) and r["vs_encode"] > 0
    assert {c["ok"] for c in data["checks"]} == {True}
    assert len(data["summary"]) == len(FAMILIES)
