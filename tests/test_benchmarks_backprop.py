"""Smoke test of benchmarks/backprop.py: it runs, checks itself and prints every row.

No timing is asserted: the script runs with ``--quick`` at a tiny shape, and the test only
checks the exit status, that its JSON has a record of every contender per configuration,
that the script's own self-checks passed, that the JSON output is complete and finite, and
that the summary tables are printed.
"""

import math
import re

import pytest

from conftest import ROOT, quick_json_fixture, quick_run_data
from conftest import test_exit_status  # noqa: F401 (pytest collects it here)

SCRIPT = ROOT / "benchmarks" / "backprop.py"

FAMILIES = ["KL", "signed KL"]
#: at m = 12 <= 100, direction's "auto" method is the direct solve; CG is the other row
CONTENDERS = [
    "encode", "direction direct", "direction cg", "encode_vjp", "SparseCoder.learn_one",
    "Classifier.learn_one gradient='alternating'", "Classifier.learn_one gradient='implicit'",
]
PER_EXAMPLE = CONTENDERS[:4]


quick_run = quick_json_fixture(SCRIPT, "--shapes", "12x24")



@pytest.mark.parametrize("family", FAMILIES)
def test_every_contender(quick_run, family):
    data = quick_run_data(quick_run)
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
    data = quick_run_data(quick_run)
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
