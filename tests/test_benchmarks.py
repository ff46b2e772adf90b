"""Smoke test of benchmarks/encode.py: it runs, checks itself and reports every row.

No timing is asserted: the script runs with ``--quick`` at a tiny shape, and the test only
checks the exit status, that its JSON has a record for every contender and call mode, that
the script's own L1 agreement check with scikit-learn passed, that the JSON output is
complete and finite, and that the summary tables are printed.
"""

import math
import re

import pytest

from conftest import ROOT, quick_json_fixture, quick_run_data
from conftest import test_exit_status  # noqa: F401 (pytest collects it here)

SCRIPT = ROOT / "benchmarks" / "encode.py"

STREAMSC_METHODS = [
    "KL newton", "KL egd", "signed KL newton", "signed KL egd", "L1 >=0", "L1 signed",
]
#: SparseCoder.transform_one, one dict per call only
TRANSFORM_ONE_METHODS = ["L1 >=0 transform_one", "L1 signed transform_one"]
SKLEARN_METHODS = ["sklearn lasso_cd >=0", "sklearn lasso_cd signed"]
LAMS = ["0.1", "0.03"]


quick_run = quick_json_fixture(SCRIPT, "--shapes", "16x32", "--lam", ",".join(LAMS))



@pytest.mark.parametrize("lam", LAMS)
def test_every_contender_and_mode(quick_run, lam):
    data = quick_run_data(quick_run)
    records = [r for r in data["results"] if f"{r['lam']:g}" == lam]

    def has(method, call, threads):
        return sum(r["method"] == method and r["call"] == call and r["threads"] == threads
                   for r in records)

    for method in STREAMSC_METHODS:
        assert has(method, "1 row/call", None) == 1, method
        assert has(method, "batch", 1) == 1, method
        assert has(method, "batch", "default") == 1, method  # numba's default thread count
    for method in TRANSFORM_ONE_METHODS:
        assert has(method, "1 row/call", None) == 1, method
        assert not any(r["method"] == method and r["call"] == "batch" for r in records)
    for method in SKLEARN_METHODS:
        assert has(method, "1 row/call", None) == 1, method
        assert has(method, "batch", None) == 1, method
    # the L1 agreement with scikit-learn (encode and transform_one codes) was checked by the
    # script and passed
    checks = [c for c in data["l1_checks"] if f"{c['lam']:g}" == lam]
    assert len(checks) == 4 and all(c["ok"] for c in checks), checks
    assert sum(c["streamsc"].endswith("transform_one") for c in checks) == 2, checks


def test_summary_sections(quick_run):
    proc, _ = quick_run
    out = proc.stdout
    for section in ("ratios asked for by issue 8", "KL solver choice", "first call of each"):
        assert section in out, section
    ratios = out.split("ratios asked for by issue 8", 1)[1].split("===", 2)[1]
    for method, peer in zip(TRANSFORM_ONE_METHODS, SKLEARN_METHODS):
        # one row per (shape, lam), with the wall-clock and the CPU-time ratio beside it
        rows = [line for line in ratios.splitlines() if f"{method} / {peer}" in line]
        assert len(rows) == len(LAMS), (method, ratios)
        assert all(len(re.findall(r"\d+\.\d\dx", line)) == 2 for line in rows), rows
    assert "BLAS is pinned to 1 thread" in out


def test_json_output(quick_run):
    data = quick_run_data(quick_run)
    # the envelope every benchmark writes (benchmarks/_common.write_json)
    assert data["command"][:2] == ["benchmarks/encode.py", "--quick"]
    assert data["streamsc_version"] and "git_commit" in data
    assert data["machine"]["usable_cpus"] >= 1
    assert data["settings"]["shapes"] == [[16, 32]] and data["settings"]["quick"] is True
    results = data["results"]
    # per lam: 6 streamsc methods x 3 call modes + 2 transform_one methods x 1 call mode
    # + 2 sklearn methods x 2 call modes
    assert len(results) == len(LAMS) * (6 * 3 + 2 * 1 + 2 * 2)
    assert {r["method"] for r in results if r["call"] == "1 row/call"} >= set(
        TRANSFORM_ONE_METHODS
    )
    for r in results:
        assert (r["m"], r["k"]) == (16, 32)
        assert math.isfinite(r["codes_per_s"]) and r["codes_per_s"] > 0
        assert r["mean_iter"] >= 1
    assert {c["ok"] for c in data["l1_checks"]} == {True}
    assert all(c["max_abs_diff"] <= 1e-4 for c in data["l1_checks"])
    # Newton and EGD agree at the default tolerance (both stop at 1e-6 * lam)
    for c in data["solver_choice"]:
        assert c["max_rel_diff"] < 1e-4, c
    assert len(data["issue_ratios"]) == len(LAMS) * 8
    for r in data["issue_ratios"]:
        assert math.isfinite(r["ratio"]) and r["ratio"] > 0, r
        assert math.isfinite(r["ratio_cpu"]) and r["ratio_cpu"] > 0, r
