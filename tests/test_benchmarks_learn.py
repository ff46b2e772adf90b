"""Smoke test of benchmarks/learn.py: it runs, checks itself and prints every row.

No timing is asserted: the script runs with ``--quick`` at a tiny shape, and the test only
checks the exit status, that the table has a row for every contender and call mode, that the
script's own self-checks passed (streamsc's L1 codes equal scikit-learn's ``sparse_encode``
codes of the same problem; every streamsc call path learns the same basis), and that the JSON
output is complete, finite and consistent.
"""

import json
import math
import re

import pytest

from conftest import ROOT, quick_json_fixture
from conftest import test_exit_status  # noqa: F401 (pytest collects it here)

SCRIPT = ROOT / "benchmarks" / "learn.py"
M, K, BATCH = 12, 24, 16

ONE = "1 row/call"
BATCHED = f"batch {BATCH}"
#: (label printed in the table, call modes)
CONTENDERS = [
    ("SparseCoder.learn_one (dict) [L1 signed]", [ONE]),
    ("Learner.learn (array) [L1 signed]", [ONE]),
    ("SparseCodingTransformer.partial_fit [L1 signed]", [ONE, BATCHED]),
    ("SparseCoder.learn_one (dict) [KL]", [ONE]),
    ("SparseCoder.learn_one (dict) [signed KL]", [ONE]),
    ("MiniBatchDictionaryLearning.partial_fit (lars)", [ONE, BATCHED]),
    ("MiniBatchDictionaryLearning.partial_fit (cd)", [ONE, BATCHED]),
]
N_RESULTS = sum(len(calls) for _, calls in CONTENDERS)


quick_run = quick_json_fixture(SCRIPT, "--shapes", f"{M}x{K}")


def _block(stdout):
    head = f"=== (m, k) = ({M}, {K}), lam = 0.1:"
    assert head in stdout
    return stdout.split(head, 1)[1].split("\n", 1)[1].split("\n===", 1)[0].splitlines()


def test_table_has_every_row(quick_run):
    """The printed tables are the point here: the timing table and the quality table each
    have one row per contender and call (the JSON records are checked below)."""
    proc, _ = quick_run
    lines = _block(proc.stdout)
    for label, calls in CONTENDERS:
        for call in calls:
            # KL rows name their solver: "[KL, egd]"
            head = (re.escape(label[:-1]) + r"(, (newton|egd))?\]" if label.endswith("KL]")
                    else re.escape(label))
            pattern = re.compile(rf"^{head}\s+{re.escape(call)}\s+[\d,]+\s")
            assert sum(bool(pattern.match(line)) for line in lines) == 2, (label, call)


def test_summary_sections(quick_run):
    proc, _ = quick_run
    out = proc.stdout
    for section in ("=== ratios", "=== Python overhead", "quality of each learned basis",
                    "BLAS is pinned to 1 thread"):
        assert section in out, section
    assert "L1 learn_one / sklearn lars 1 row/call" in out
    assert "L1 learn_one / sklearn cd 1 row/call" in out


def test_json_output(quick_run):
    proc, out_json = quick_run
    assert proc.returncode == 0
    data = json.loads(out_json.read_text())
    assert data["command"][:2] == ["benchmarks/learn.py", "--quick"]
    assert data["streamsc_version"] and "git_commit" in data
    assert data["settings"]["batch_size"] == BATCH
    results = data["results"]
    assert len(results) == N_RESULTS
    # one record per contender and call mode (labels as printed: method [problem])
    assert sorted((f"{r['method']} [{r['problem']}]" if r["family"] == "streamsc"
                   else r["method"], r["call"]) for r in results) == sorted(
        (label, call) for label, calls in CONTENDERS for call in calls)
    for r in results:
        assert (r["m"], r["k"]) == (M, K)
        for key in ("samples_per_s", "median_samples_per_s", "samples_per_cpu_s"):
            assert math.isfinite(r[key]) and r[key] > 0, (r["method"], key)
        assert r["passes"] == len(r["pass_seconds"]) >= 1
        # every timed sample was learned, plus the first call and the probe
        assert r["samples_seen"] >= r["passes"] * r["samples_per_pass"]
        # the L1 objective at the optimum is at most its value at w = 0, 1/2 ||x||^2 = 1/2
        assert 0.0 < r["l1_objective_mean"] <= 0.5 + 1e-9
        assert 0.0 <= r["l1_nnz_mean"] <= K
        assert 0.0 <= r["recovered"] <= 1.0
        # unit-norm atoms (streamsc) or atoms projected to norm <= 1 (scikit-learn)
        assert r["max_atom_norm"] <= 1.0 + 1e-9
    sk = [r for r in results if r["family"] == "sklearn"]
    assert sorted((r["algorithm"], r["call"]) for r in sk) == sorted(
        (a, c) for a in ("lars", "cd") for c in (ONE, BATCHED)
    )
    assert all(c["ok"] for c in data["checks"]), data["checks"]
    assert len(data["checks"]) == 5
    ratios = data["issue_ratios"]
    assert len(ratios) == 8
    targeted = [r for r in ratios if r["target"] is not None]
    assert len(targeted) == 2 and {r["target"] for r in targeted} == {20.0}
    assert all(math.isfinite(r["ratio"]) and r["ratio"] > 0 for r in ratios)
    # overhead rows: the array path itself, dict learn_one and the scikit-learn wrapper (one
    # row per call and batched), all on the same samples
    over = data["overheads"]
    assert [o["path"] for o in over] == [
        f"Learner.learn (array) {ONE}", f"SparseCoder.learn_one (dict) {ONE}",
        f"SparseCodingTransformer.partial_fit {ONE}",
        f"SparseCodingTransformer.partial_fit {BATCHED}",
    ]
    assert over[0]["overhead_us"] == 0.0 and over[0]["ratio"] == 1.0
    for o in over:
        assert o["samples"] == BATCH and o["passes"] >= 1
        assert math.isfinite(o["us"]) and o["us"] > 0
        assert math.isclose(o["us"] - o["array_us"], o["overhead_us"], rel_tol=1e-9,
                            abs_tol=1e-9)
