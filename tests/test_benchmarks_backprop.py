"""Smoke test of benchmarks/backprop.py: it runs, checks itself and prints every row.

No timing is asserted: the script runs with ``--quick`` at a tiny shape, and the test only
checks the exit status, that each configuration's table has a row for every contender,
that the script's own self-checks passed, and that the JSON output is complete and finite.
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


def _table(stdout, family):
    head = f"=== (m, k) = (12, 24), lam = 0.1, {family}:"
    assert head in stdout
    return stdout.split(head, 1)[1].split("\n", 1)[1].split("===", 1)[0].splitlines()


@pytest.mark.parametrize("family", FAMILIES)
def test_table_has_every_row(quick_run, family):
    proc, _ = quick_run
    lines = _table(proc.stdout, family)
    for name in CONTENDERS:
        unit = "per example" if name in PER_EXAMPLE else "per sample"
        pattern = re.compile(rf"^{re.escape(name)}\s+{unit}\s+[\d,]+\s")
        assert sum(bool(pattern.match(line)) for line in lines) == 1, name
    checks = [line for line in lines if line.startswith("check:")]
    assert len(checks) == 4 and all(line.endswith(" ok") for line in checks), checks


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
    proc, out_json = quick_run
    assert proc.returncode == 0
    data = json.loads(out_json.read_text())
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
