"""Smoke test of demos/gradients.py: it runs, prints every method and writes a complete,
finite JSON and the plots.

No timing or learning speed is asserted: the script runs with ``--quick`` (one learning
rate, a few hundred examples) at a tiny shape on two seeds, and the test checks the exit
status, that each prior's tables have a row for every method, and that the JSON is
complete, finite and consistent (every run starts from its seed's basis, atoms stay unit
norm, the seed-averaged curves are the means of the runs). The recovery measure itself is
checked on bases whose answer is known.
"""

import importlib.util
import json
import math
import re
import sys

import numpy as np
import pytest

from conftest import ROOT, run_script
from conftest import test_exit_status  # noqa: F401 (pytest collects it here)

SCRIPT = ROOT / "demos" / "gradients.py"
M, K, ROWS, EVERY, SEEDS = 12, 16, 200, 50, 2
METHODS = ["alternating", "unrolled T=5", "unrolled T=10", "unrolled T=20", "implicit"]
PRIORS = ["l1", "kl"]


def _module():
    spec = importlib.util.spec_from_file_location("demo_gradients", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # puts benchmarks/ (its _common) on sys.path
    return module


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    proc = run_script(SCRIPT, "--quick", "--shapes", f"{M}x{K}", "--rows", ROWS,
                      "--every", EVERY, "--seeds", SEEDS, "--json", out / "g.json",
                      "--plot-dir", out)
    return proc, out


def _block(stdout, prior):
    head = f"=== {prior}:"
    assert head in stdout
    return stdout.split(head, 1)[1].split("\n===", 1)[0].splitlines()


@pytest.mark.parametrize("prior", PRIORS)
def test_every_method_row_printed(quick_run, prior):
    proc, _ = quick_run
    lines = _block(proc.stdout, prior)
    assert lines[0].endswith(f"({M}, {K}), 2 planted atoms per example, {ROWS} examples, "
                             f"mean of {SEEDS} seeds ===")
    for method in METHODS:
        # summary: method, lr, final error, recovered; grid: the lr column; per seed: one
        # cell per seed
        summary = re.compile(rf"^{re.escape(method)}\s+30\s+\d\.\d{{4}}\s+\d+%\s")
        cell = r"\d\.\d{4} \(\d+%\)"
        grid = re.compile(rf"^{re.escape(method)}\s+{cell} \*$")
        seeds = re.compile(rf"^{re.escape(method)}" + rf"\s+{cell}" * SEEDS + "$")
        for pattern in (summary, grid, seeds):
            assert sum(bool(pattern.match(line)) for line in lines) == 1, (method, pattern)
    assert not any(line.startswith("failed:") for line in lines)


def test_json_output(quick_run):
    proc, out = quick_run
    assert proc.returncode == 0
    data = json.loads((out / "g.json").read_text())
    # the shared envelope of benchmarks/_common.write_json
    assert data["command"][0] == "demos/gradients.py" and "--quick" in data["command"]
    assert data["streamsc_version"] and data["machine"]["usable_cpus"] >= 1
    assert "git_commit" in data
    assert data["settings"]["seeds"] == [0, 1]
    assert data["settings"]["learning_rates"] == [30.0]
    n_points = ROWS // EVERY + 1
    for prior in PRIORS:
        res = data["results"][prior]
        assert [row["method"] for row in res["summary"]] == METHODS
        for row in res["summary"]:
            assert not row["failed"]
            for key in ("final_error", "final_fraction", "us_per_example",
                        "cpu_us_per_example"):
                assert math.isfinite(row[key]), (prior, row["method"], key)
            assert 0.0 <= row["final_error"] <= 1.0 and 0.0 <= row["final_fraction"] <= 1.0
            assert row["us_per_example"] > 0 and row["cpu_us_per_example"] > 0
        base = res["summary"][0]
        assert base["cpu_us_per_example_vs_alternating"] == 1.0
        assert base["final_error_vs_alternating"] == 1.0

        runs = res["runs"]
        assert len(runs) == len(METHODS) * SEEDS
        start = {}
        for r in runs:
            assert not r["failed"] and r["examples"] == ROWS
            assert r["measurements"] == n_points
            assert r["max_atom_norm_error"] < 1e-9  # unit-norm atoms after every step
            assert 0.0 <= r["final_error"] <= 1.0 and 0.0 <= r["final_fraction"] <= 1.0
            # every method of a seed starts from the same basis, hence the same error
            start.setdefault(r["seed"], r["start_error"])
            assert r["start_error"] == pytest.approx(start[r["seed"]], abs=1e-12)

        assert len(res["aggregates"]) == len(METHODS)
        for agg in res["aggregates"]:
            mine = [r for r in runs if r["method"] == agg["method"]]
            assert sorted(agg["seeds"]) == [r["seed"] for r in mine] == list(range(SEEDS))
            curve = agg["curve"]
            assert curve["examples"] == [EVERY * i for i in range(n_points)]
            for key in ("error", "fraction"):
                assert all(0.0 <= v <= 1.0 for v in curve[key])
            cpu = curve["cpu_s"]
            assert cpu[0] == 0.0 and all(b >= a for a, b in zip(cpu, cpu[1:]))
            # the averaged curve is the mean of the runs (6 significant digits in the file)
            assert curve["error"][0] == pytest.approx(np.mean(list(start.values())), rel=1e-5)
            assert curve["error"][-1] == pytest.approx(
                np.mean([r["final_error"] for r in mine]), rel=1e-5)
            assert agg["final_error"] == pytest.approx(np.mean(agg["final_errors"]))


@pytest.mark.parametrize("prior", PRIORS)
def test_plots_written(quick_run, prior):
    proc, out = quick_run
    assert proc.returncode == 0
    png = (out / f"gradients_{prior}.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_recovery_measure():
    """The measure on known answers: the planted basis with its atoms permuted and
    sign-flipped is recovered exactly; rotating one atom by angle a in the plane of a unit
    vector orthogonal to it costs (1 - cos a) / k, and unmatches it once cos a < 0.95."""
    g = _module()
    rng = np.random.default_rng(0)
    B = rng.standard_normal((20, 8))
    B /= np.linalg.norm(B, axis=0)
    perm = rng.permutation(8)
    signs = rng.choice([-1.0, 1.0], size=8)
    assert g.recovery(B, B[:, perm] * signs) == pytest.approx((0.0, 1.0), abs=1e-12)
    # a direction orthogonal to every atom: the rotated atom's best match is itself
    Q, _ = np.linalg.qr(np.column_stack([B, rng.standard_normal(20)]))
    u = Q[:, -1]
    for angle, matched in ((0.2, 1.0), (0.5, 7 / 8)):
        R = B.copy()
        R[:, 3] = math.cos(angle) * B[:, 3] + math.sin(angle) * u
        err, frac = g.recovery(B, R)
        others = np.abs(B.T @ B[:, 3])
        others[3] = 0.0
        assert others.max() < math.cos(angle)  # the rotated atom stays atom 3's best match
        assert err == pytest.approx((1 - math.cos(angle)) / 8, rel=1e-9)
        assert frac == matched
    curve = [dict(examples=i * 10, error=e, fraction=f)
             for i, (e, f) in enumerate([(0.5, 0.0), (0.04, 0.5), (0.06, 0.95)])]
    assert g.first_reach(curve, "error", 0.05, below=True) == 10
    assert g.first_reach(curve, "fraction", 0.9, below=False) == 20
    assert g.first_reach(curve, "fraction", 0.99, below=False) is None
