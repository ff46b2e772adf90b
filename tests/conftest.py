"""Shared fixtures and problem generators for the test suite.

Problems are small (m = 6..20, k = 8..40) and always include one overcomplete (k > m) and
one undercomplete (k < m) shape. Every array handed to a kernel is C-contiguous float64
and every scalar a Python bool/float/int, so the whole suite compiles each kernel for a
single signature.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# tests import the NumPy twins as ``import naive``
sys.path.insert(0, os.path.dirname(__file__))

settings.register_profile(
    "streamsc",
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
settings.load_profile("streamsc")

#: the repository root (the benchmark and demo scripts run from there)
ROOT = Path(__file__).resolve().parents[1]

#: (m, k) shapes used throughout: overcomplete, undercomplete, and a wider overcomplete one
SHAPES = [(6, 8), (20, 10), (12, 40)]
SHAPE_IDS = [f"m{m}k{k}" for m, k in SHAPES]

#: the tiny shape the NUMBA_DISABLE_JIT run uses (tests whose id contains "tiny")
TINY = (4, 6)


def make_basis(m, k, rng):
    """A random basis with unit-norm columns."""
    B = rng.standard_normal((m, k))
    B /= np.linalg.norm(B, axis=0)
    return np.ascontiguousarray(B)


def make_x(B, rng, n_active=3, noise=0.05):
    """A unit-norm example: a few atoms with random positive weights plus noise."""
    m, k = B.shape
    w = np.zeros(k)
    idx = rng.choice(k, size=min(n_active, k), replace=False)
    w[idx] = rng.uniform(0.3, 1.5, size=idx.size)
    x = B @ w + noise * rng.standard_normal(m)
    return x / np.linalg.norm(x)


def make_X(B, rng, n, **kw):
    """n examples from :func:`make_x`, one per row."""
    return np.ascontiguousarray(np.array([make_x(B, rng, **kw) for _ in range(n)]))


def make_problem(m, k, seed):
    """(B, x, p) with unit-norm B and x and the default prior mean 1/k."""
    rng = np.random.default_rng(seed)
    B = make_basis(m, k, rng)
    x = make_x(B, rng)
    p = np.full(k, 1.0 / k)
    return B, x, p


def rel_err(a, b):
    """max |a - b| relative to max |b| (the accuracy measure used throughout)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), np.finfo(float).tiny))


@pytest.fixture(params=SHAPES, ids=SHAPE_IDS)
def problem(request):
    """(B, x, p) for every shape in SHAPES."""
    m, k = request.param
    return make_problem(m, k, seed=1000 * m + k)


@pytest.fixture
def tiny_problem():
    """(B, x, p) at the TINY shape."""
    return make_problem(*TINY, seed=7)


# --- the benchmark and demo scripts' smoke tests


def run_script(script, *args, timeout=600):
    """``python <script> *args`` in a fresh interpreter from the repository root (output
    captured as text)."""
    return subprocess.run([sys.executable, str(script), *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, env=dict(os.environ))


def quick_json_run(tmp_path_factory, script, *args):
    """``(process, JSON path)`` of ``<script> --quick *args --json <a fresh folder>/<name>.json``
    (``name`` the script's), for a module-scoped ``quick_run`` fixture."""
    out_json = tmp_path_factory.mktemp("bench") / f"{Path(script).stem}.json"
    return run_script(script, "--quick", *args, "--json", out_json), out_json


def quick_json_fixture(script, *args):
    """A module-scoped ``quick_run`` fixture: :func:`quick_json_run` of ``script`` with
    ``args``."""

    @pytest.fixture(scope="module")
    def quick_run(tmp_path_factory):
        return quick_json_run(tmp_path_factory, script, *args)

    return quick_run


def assert_ran(proc):
    """The script exited with status 0 (else its last output is the message)."""
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_exit_status(quick_run):
    """The script of a module's ``quick_run`` fixture exited with status 0 (a smoke-test
    module imports this test: pytest collects it there, not here)."""
    assert_ran(quick_run[0])


def quick_run_data(quick_run):
    """The JSON a ``quick_json_run`` wrote, once the script ran."""
    proc, out_json = quick_run
    assert proc.returncode == 0
    return json.loads(out_json.read_text())


def central_differences(f, X, eps=1e-6):
    """The gradient of the scalar function ``f`` at the array ``X`` by central differences,
    one entry at a time."""
    X = np.asarray(X, dtype=float)
    G = np.zeros_like(X)
    for idx in np.ndindex(X.shape):
        E = np.zeros_like(X)
        E[idx] = eps
        G[idx] = (f(X + E) - f(X - E)) / (2 * eps)
    return G
