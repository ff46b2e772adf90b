"""Batched EGD (``streamsc._kernels.kl_batch``): every row's codes equal the one-row
kernel's, for both losses, both EGD variants, signed and unsigned, warm starts, float32
data and several threads; the batch path is what ``streamsc.encode`` of a 2-D array runs."""

import numpy as np
import pytest

import streamsc
from conftest import make_basis, make_X
from streamsc import coding
from streamsc._kernels import kl, kl_batch
from streamsc._models import get_loss

signs = pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
solvers = pytest.mark.parametrize("solver", ["egd", "egd_diag"])


def _data(m, k, n, seed, loss="squared"):
    rng = np.random.default_rng(seed)
    B = make_basis(m, k, rng)
    X = make_X(B, rng, n)
    if loss == "kl":
        X = np.abs(X) + 0.01
    return B, X


def _rel(A, Bref):
    return float((np.abs(A - Bref).max(axis=1) / np.abs(Bref).max(axis=1)).max())


@signs
@solvers
@pytest.mark.parametrize("loss", ["squared", "kl"])
@pytest.mark.parametrize("block", [1, 3, 64])
def test_block_equals_one_row_kernel(signed, solver, loss, block):
    """Every row of the block kernel against kl.egd on the same row, tol, cap and start:
    both stop on max |dL/dw| <= tol, and the codes agree to well within tol / lam."""
    m, k, n = 12, 40, 23
    B, X = _data(m, k, n, seed=7, loss=loss)
    if loss == "kl":
        X = X / X.sum(axis=1, keepdims=True)
    lam = 0.05
    tol = 1e-6 * lam
    p = np.full(k, 1.0 / k)
    code = get_loss(loss).code
    diag = solver == "egd_diag"
    nn = 2 * k if signed else k
    U0 = np.tile(np.log(np.tile(p, 2 if signed else 1)), (n, 1))
    U = U0.copy()
    it = np.zeros(n, dtype=np.int64)
    g = np.zeros(n)
    kl_batch.egd_block_batch(X, B, np.ascontiguousarray(B.T), p, lam, signed, tol, 5000, U,
                             1.0, it, g, code, diag, 2, block)
    assert np.all(g <= tol)
    ref = np.empty((n, nn))
    for i in range(n):
        u = U0[i].copy()
        it1, _, g1 = kl.egd(X[i], B, p, lam, signed, tol, 5000, u, 1.0, np.empty(0), code,
                            diag)
        assert g1 <= tol
        ref[i] = u
        # same stopping rule per row: the iterations match up to rounding-level drift
        assert abs(int(it[i]) - it1) <= max(2, it1 // 10)
    assert _rel(np.exp(U), np.exp(ref)) < 1e-5
    # the returned violation is the gradient at the returned point
    for i in range(n):
        gg = np.empty(nn)
        w = np.exp(U[i])
        if loss == "squared":
            v = kl.kl_gradient(X[i], B, p, lam, signed, w, gg)
            assert v <= tol * (1 + 1e-6) + 1e-12


def test_block_honours_max_iter_and_reports_violation():
    m, k, n = 12, 40, 10
    B, X = _data(m, k, n, seed=3)
    lam = 0.01
    p = np.full(k, 1.0 / k)
    U = np.tile(np.log(p), (n, 1))
    it = np.zeros(n, dtype=np.int64)
    g = np.zeros(n)
    kl_batch.egd_block_batch(X, B, np.ascontiguousarray(B.T), p, lam, False, 1e-14, 3, U,
                             1.0, it, g, 0, False, 1, 4)
    assert np.all(it == 3)
    for i in range(n):
        u = np.log(p).copy()
        it1, _, g1 = kl.egd(X[i], B, p, lam, False, 1e-14, 3, u, 1.0, np.empty(0), 0, False)
        assert it1 == 3
        np.testing.assert_allclose(g[i], g1, rtol=1e-6)
        np.testing.assert_allclose(U[i], u, rtol=1e-9, atol=1e-9)


def test_block_overflowing_start_falls_back_to_prior_mean():
    m, k, n = 6, 8, 9
    B, X = _data(m, k, n, seed=5)
    lam = 0.1
    p = np.full(k, 1.0 / k)
    U = np.tile(np.log(p), (n, 1))
    U[::2] = 800.0  # exp overflows: the one-row kernel restarts from log p
    U_ref = U.copy()
    it = np.zeros(n, dtype=np.int64)
    g = np.zeros(n)
    kl_batch.egd_block_batch(X, B, np.ascontiguousarray(B.T), p, lam, False, 1e-6 * lam,
                             5000, U, 1.0, it, g, 0, False, 1, 4)
    assert np.all(np.isfinite(U)) and np.all(g <= 1e-6 * lam)
    for i in range(n):
        u = U_ref[i].copy()
        kl.egd(X[i], B, p, lam, False, 1e-6 * lam, 5000, u, 1.0, np.empty(0), 0, False)
        assert _rel(np.exp(U[i:i + 1]), np.exp(u[None])) < 1e-5


@signs
@solvers
@pytest.mark.parametrize("n_threads", [1, 2])
def test_encode_batch_equals_one_row_calls(signed, solver, n_threads):
    """streamsc.encode of a 2-D array (the path of transform_many and the scikit-learn
    transform) against one encode call per row."""
    m, k = 20, 10
    n = max(coding.EGD_BLOCK_MIN_ROWS, 40)
    B, X = _data(m, k, n, seed=11)
    kw = dict(prior="kl", lam=0.05, signed=signed, solver=solver)
    W, n_iter = streamsc.encode(X, B, n_threads=n_threads, return_n_iter=True, **kw)
    W1 = np.array([streamsc.encode(x, B, **kw) for x in X])
    assert _rel(W, W1) < 1e-5
    assert n_iter.shape == (n,) and np.all(n_iter >= 1)


@signs
def test_encode_batch_warm_start_float32_and_kl_loss(signed):
    m, k, n = 12, 40, 30
    B, X = _data(m, k, n, seed=13)
    kw = dict(prior="kl", lam=0.05, signed=signed, solver="egd")
    init = streamsc.encode(X, B, tol=1e-2 * 0.05, **kw)
    W = streamsc.encode(X, B, init=init, **kw)
    W1 = np.array([streamsc.encode(x, B, init=i0, **kw) for x, i0 in zip(X, init)])
    assert _rel(W, W1) < 1e-5
    W32 = streamsc.encode(X, B, dtype=np.float32, **kw)
    W132 = np.array([streamsc.encode(x, B, dtype=np.float32, **kw) for x in X])
    assert W32.dtype == np.float32
    assert _rel(W32.astype(float), W132.astype(float)) < 1e-5
    if not signed:
        Xc = np.abs(X) + 0.01
        kwk = dict(kw, loss="kl")
        Wk = streamsc.encode(Xc, B, **kwk)
        Wk1 = np.array([streamsc.encode(x, B, **kwk) for x in Xc])
        assert _rel(Wk, Wk1) < 1e-5


def test_encode_batch_halves():
    m, k, n = 12, 40, 20
    B, X = _data(m, k, n, seed=17)
    W, (Wp, Wm) = streamsc.encode(X, B, prior="kl", lam=0.05, signed=True, solver="egd",
                                  return_halves=True)
    for i in range(0, n, 7):
        w, (wp, wm) = streamsc.encode(X[i], B, prior="kl", lam=0.05, signed=True,
                                      solver="egd", return_halves=True)
        assert _rel(Wp[i:i + 1], wp[None]) < 1e-5 and _rel(Wm[i:i + 1], wm[None]) < 1e-5
