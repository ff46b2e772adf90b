"""The functional API ``streamsc.encode`` / ``calibrate_tol`` (squared loss): codes against
independent references (scipy for KL, scikit-learn for L1, closed forms for L2),
optimality conditions, the accuracy reached at the default tolerance, the API contract and
input validation.
"""

import warnings

import numpy as np
import numpy.testing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import nnls
from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning
from sklearn.linear_model import Lasso

import naive
import streamsc
from conftest import SHAPE_IDS, SHAPES, make_basis, make_problem, make_X, rel_err
from streamsc import ConvergenceWarning

EPS = np.finfo(np.float64).eps

shapes = pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
signs = pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
kl_solvers = pytest.mark.parametrize("solver", ["newton", "egd"])


def _problem(shape):
    m, k = shape
    return make_problem(m, k, seed=1000 * m + k)


def _batch(shape, n=6, seed=0):
    m, k = shape
    rng = np.random.default_rng(seed + 1000 * m + k)
    B = make_basis(m, k, rng)
    return B, make_X(B, rng, n)


def _kl_grad(x, B, lam, signed, code=None, halves=None):
    """max |dL/dw| at a KL code, in NumPy (on the expanded basis when signed)."""
    k = B.shape[1]
    p = np.full(k, 1.0 / k)
    w = np.concatenate(halves) if signed else code
    return float(np.max(np.abs(naive.kl_gradient(x, B, p, lam, signed, w))))


def _round_slack(x, B, w):
    """Rounding in a NumPy gradient B^T (B w - x): a few eps times the sizes involved."""
    return 64 * EPS * (1.0 + np.abs(B).sum(axis=0).max() * (np.abs(x).max() + np.abs(B @ w).max()))


# ---------------------------------------------------------------------------------------
# KL codes against scipy (L-BFGS-B on log w, polished by MINPACK)
# ---------------------------------------------------------------------------------------


@shapes
@signs
@pytest.mark.parametrize("lam", [0.05, 0.5])
def test_kl_codes_scipy(shape, signed, lam):
    B, x, p = _problem(shape)
    k = B.shape[1]
    w_ref, g_ref = naive.kl_reference(x, B, p, lam, signed)
    assert g_ref <= 1e-13  # the reference is stationary to rounding
    code_ref = naive.kl_code(w_ref, k, signed)
    code = streamsc.encode(x, B, lam=lam, signed=signed, tol=1e-12 * lam)
    assert rel_err(code, code_ref) < 1e-7
    # EGD cannot reach 1e-12 * lam (see test_kernels_kl::test_kl_egd_reaches_tight_tol); at
    # the default tolerance it is as accurate as test_default_tol_accuracy states
    code_egd = streamsc.encode(x, B, lam=lam, signed=signed, solver="egd")
    assert rel_err(code_egd, code_ref) < 5e-6


# ---------------------------------------------------------------------------------------
# optimality conditions (KKT) at the returned codes, checked in NumPy
# ---------------------------------------------------------------------------------------


@shapes
@signs
@kl_solvers
def test_kl_stationarity(shape, signed, solver):
    B, X = _batch(shape)
    lam = 0.1
    tol = 1e-8 * lam if solver == "newton" else 1e-6 * lam
    out = streamsc.encode(X, B, lam=lam, signed=signed, solver=solver, tol=tol,
                          return_halves=signed)
    W, halves = (out[0], out[1]) if signed else (out, None)
    for i, x in enumerate(X):
        if signed:
            h = (halves[0][i], halves[1][i])
            assert np.all(h[0] > 0) and np.all(h[1] > 0)
            g = _kl_grad(x, B, lam, True, halves=h)
        else:
            assert np.all(W[i] > 0)
            g = _kl_grad(x, B, lam, False, code=W[i])
        assert g <= tol + _round_slack(x, B, W[i])


@shapes
@signs
def test_l1_kkt(shape, signed):
    """Subgradient conditions: |b_j.r| <= lam at zeros (b_j.r <= lam if non-negative),
    b_j.r = lam sign(w_j) elsewhere, to tol."""
    B, X = _batch(shape)
    lam = 0.05
    tol = 1e-9 * lam
    W = streamsc.encode(X, B, prior="l1", lam=lam, signed=signed, tol=tol)
    for x, w in zip(X, W):
        v = naive.enet_violation(x, B, lam, 0.0, not signed, w)
        assert v <= tol + _round_slack(x, B, w)
        if not signed:
            assert np.all(w >= 0)
        c = B.T @ (x - B @ w)
        nz = w != 0
        npt.assert_allclose(c[nz], lam * np.sign(w[nz]), atol=tol + 1e-13)
        corr = c[~nz] if not signed else np.abs(c[~nz])
        assert np.all(corr <= lam + tol + 1e-13)


@shapes
@signs
def test_l1_sklearn(shape, signed):
    B, X = _batch(shape, n=3)
    m = B.shape[0]
    lam = 0.05
    W = streamsc.encode(X, B, prior="l1", lam=lam, signed=signed, tol=1e-12 * lam)
    for x, w in zip(X, W):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SkConvergenceWarning)
            ref = Lasso(alpha=lam / m, fit_intercept=False, positive=not signed, tol=1e-12,
                        max_iter=1_000_000).fit(B, x).coef_
        assert np.max(np.abs(w - ref)) <= 1e-6 * max(1.0, np.max(np.abs(ref)))


@shapes
def test_l2_closed_form_and_nnls(shape):
    B, X = _batch(shape, n=4)
    m, k = B.shape
    lam = 0.3
    W = streamsc.encode(X, B, prior="l2", lam=lam, signed=True)
    npt.assert_allclose(W, naive.ridge(X, B, lam), rtol=1e-10, atol=1e-12)
    W = streamsc.encode(X, B, prior="l2", lam=lam, tol=1e-12 * lam)  # w >= 0
    A = np.vstack([B, np.sqrt(lam) * np.eye(k)])
    for x, w in zip(X, W):
        ref, _ = nnls(A, np.concatenate([x, np.zeros(k)]))
        npt.assert_allclose(w, ref, atol=1e-9)


# ---------------------------------------------------------------------------------------
# accuracy at the default tolerance (tol=None -> 1e-6 * lam)
# ---------------------------------------------------------------------------------------

#: measured worst max|w - w*| / max|w*| over 50 problems (10 bases cycling through SHAPES,
#: 5 unit-norm examples each) at each of lam = 0.05 and 0.5, plus seeds 3..8 at lam = 0.05,
#: 0.1, 0.5 while writing this test:
#:   KL newton: 6.8e-7 (signed, lam 0.5)     KL egd: 1.0e-6 (signed, lam 0.1)
#:   L1 (cd):   1.8e-6 (signed, lam 0.05)
#: so "about 1e-6 relative" holds for KL; L1 reaches ~2e-6. Bounds are ~4-5x the worst seen.
DEFAULT_TOL_BOUND = {("kl", "newton"): 3e-6, ("kl", "egd"): 5e-6, ("l1", "cd"): 1e-5}


def _survey(seed, n_bases=10, rows=5):
    rng = np.random.default_rng(seed)
    for b in range(n_bases):
        m, k = SHAPES[b % len(SHAPES)]
        B = make_basis(m, k, rng)
        yield B, make_X(B, rng, rows)


def _kl_exact(X, B, lam, signed):
    """Codes to rounding: Newton at 1e-12 * lam (which may stall a little above it, see
    test_kernels_kl::test_kl_newton_reaches_tight_tol), polished by scipy's root finder."""
    k = B.shape[1]
    p = np.full(k, 1.0 / k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if signed:
            _, (Wp, Wm) = streamsc.encode(X, B, lam=lam, signed=True, tol=1e-12 * lam,
                                          return_halves=True)
            starts = np.hstack([Wp, Wm])
        else:
            starts = streamsc.encode(X, B, lam=lam, tol=1e-12 * lam)
    out = []
    for x, w0 in zip(X, starts):
        w, g = naive.kl_reference(x, B, p, lam, signed, w0=w0)
        assert g <= 1e-13
        out.append(naive.kl_code(w, k, signed))
    return np.array(out)


@pytest.mark.parametrize("lam,seed", [(0.05, 1), (0.5, 2)], ids=["lam0.05", "lam0.5"])
def test_default_tol_accuracy(lam, seed):
    worst = {}
    for B, X in _survey(seed):
        for signed in (False, True):
            exact = _kl_exact(X, B, lam, signed)
            for solver in ("newton", "egd"):
                with warnings.catch_warnings():
                    warnings.simplefilter("error", ConvergenceWarning)  # default tol is reached
                    W = streamsc.encode(X, B, lam=lam, signed=signed, solver=solver)
                e = max(rel_err(w, r) for w, r in zip(W, exact))
                worst["kl", solver] = max(worst.get(("kl", solver), 0.0), e)
            exact = streamsc.encode(X, B, prior="l1", lam=lam, signed=signed, tol=1e-13 * lam)
            with warnings.catch_warnings():
                warnings.simplefilter("error", ConvergenceWarning)
                W = streamsc.encode(X, B, prior="l1", lam=lam, signed=signed)
            e = max(rel_err(w, r) for w, r in zip(W, exact) if np.any(r != 0))
            worst["l1", "cd"] = max(worst.get(("l1", "cd"), 0.0), e)
    for key, bound in DEFAULT_TOL_BOUND.items():
        assert worst[key] < bound, (key, worst[key])


# ---------------------------------------------------------------------------------------
# calibrate_tol (the paper's automatic tolerance)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("prior,signed", [("kl", False), ("kl", True), ("l1", True)])
@pytest.mark.parametrize("eps", [1e-3, 1e-5])
def test_calibrate_tol_held_out(prior, signed, eps):
    """The calibrated tol gives codes within eps on held-out rows of the same distribution
    (loosely: a factor 10, since the calibration sees only 32 rows)."""
    rng = np.random.default_rng(31)
    B = make_basis(12, 40, rng)
    X_train, X_test = make_X(B, rng, 40), make_X(B, rng, 20)
    lam = 0.1
    tol = streamsc.calibrate_tol(X_train, B, prior=prior, lam=lam, signed=signed, eps=eps)
    assert 1e-12 * lam <= tol <= 0.1 * lam
    # a grid value lam * 10^-e
    e = -np.log10(tol / lam)
    assert abs(e - round(e)) < 1e-9
    W = streamsc.encode(X_test, B, prior=prior, lam=lam, signed=signed, tol=tol)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        R = streamsc.encode(X_test, B, prior=prior, lam=lam, signed=signed, tol=1e-12 * lam)
    err = max(rel_err(w, r) for w, r in zip(W, R))
    assert err <= 10 * eps
    # and it is not absurdly tight: the next looser grid value is already too loose somewhere
    # on the training rows, or tol is the loosest grid value
    if tol < 0.1 * lam:
        W2 = streamsc.encode(X_train, B, prior=prior, lam=lam, signed=signed, tol=10 * tol)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            R2 = streamsc.encode(X_train, B, prior=prior, lam=lam, signed=signed, tol=1e-12 * lam)
        assert max(rel_err(w, r) for w, r in zip(W2, R2)) > eps / 10


def test_calibrate_tol_is_deterministic_and_validates():
    B, X = _batch((12, 40), n=40)
    a = streamsc.calibrate_tol(X, B, lam=0.1, eps=1e-4, seed=3)
    b = streamsc.calibrate_tol(X, B, lam=0.1, eps=1e-4, seed=3)
    assert a == b
    with pytest.raises(ValueError, match="eps"):
        streamsc.calibrate_tol(X, B, lam=0.1, eps=0.0)
    with pytest.raises(ValueError, match="X"):
        streamsc.calibrate_tol(X[0], B, lam=0.1)


@pytest.mark.parametrize("prior", ["kl", "l1"])
def test_encode_tol_auto(prior):
    B, X = _batch((12, 40), n=40, seed=5)
    lam = 0.1
    W = streamsc.encode(X, B, prior=prior, lam=lam, tol="auto")
    assert W.shape == X.shape[:1] + (B.shape[1],)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        R = streamsc.encode(X, B, prior=prior, lam=lam, tol=1e-12 * lam)
    # calibrate_tol's default eps is 1e-4; loosely
    assert max(rel_err(w, r) for w, r in zip(W, R)) <= 1e-3
    # a single example works too (the calibration then sees that one row)
    w = streamsc.encode(X[0], B, prior=prior, lam=lam, tol="auto")
    assert w.shape == (B.shape[1],)
    assert rel_err(w, R[0]) <= 1e-3


# ---------------------------------------------------------------------------------------
# the API contract
# ---------------------------------------------------------------------------------------

CASES = [
    dict(prior="kl", solver="newton", signed=False),
    dict(prior="kl", solver="newton", signed=True),
    dict(prior="kl", solver="egd", signed=False),
    dict(prior="kl", solver="egd", signed=True),
    dict(prior="l1", signed=False),
    dict(prior="l1", signed=True),
    dict(prior="l2", signed=False),
    dict(prior="l2", signed=True),
]
CASE_IDS = [
    "-".join([c["prior"], c.get("solver", "cd"), "signed" if c["signed"] else "unsigned"])
    for c in CASES
]
cases = pytest.mark.parametrize("kw", CASES, ids=CASE_IDS)


@cases
def test_shapes_and_rows(kw):
    """1-D in -> 1-D out, 2-D in -> 2-D out; a batch equals its rows one call at a time;
    inputs are not modified; array-likes work."""
    B, X = _batch((12, 40), n=5)
    X0, B0 = X.copy(), B.copy()
    W = streamsc.encode(X, B, lam=0.1, **kw)
    assert W.shape == (5, 40) and W.dtype == np.float64
    for i in range(5):
        w = streamsc.encode(X[i], B, lam=0.1, **kw)
        assert w.shape == (40,)
        npt.assert_allclose(w, W[i], rtol=1e-12, atol=1e-15)
    npt.assert_array_equal(X, X0)
    npt.assert_array_equal(B, B0)
    w_list = streamsc.encode(X[0].tolist(), B.tolist(), lam=0.1, **kw)
    npt.assert_allclose(w_list, W[0], rtol=1e-12, atol=1e-15)
    # a one-row batch stays 2-D
    assert streamsc.encode(X[:1], B, lam=0.1, **kw).shape == (1, 40)


@cases
def test_threads_give_the_same_codes(kw):
    B, X = _batch((12, 40), n=8)
    W1 = streamsc.encode(X, B, lam=0.1, n_threads=1, **kw)
    W2 = streamsc.encode(X, B, lam=0.1, n_threads=2, **kw)
    if kw.get("solver") in ("egd", "egd_diag"):
        # batched EGD: a thread's BLAS products span its own rows, whose rounding depends
        # on how many rows share a product; both stop on the same tol
        npt.assert_allclose(W1, W2, rtol=0, atol=1e-6 * np.abs(W1).max())
    else:
        npt.assert_array_equal(W1, W2)


@pytest.mark.parametrize("kw", CASES[:6], ids=CASE_IDS[:6])
def test_warm_start(kw):
    """Started from the answer, every solver returns the same answer with fewer
    iterations; return_n_iter gives an int for one example and an array for a batch."""
    B, X = _batch((12, 40), n=5)
    lam = 0.1
    W, n_cold = streamsc.encode(X, B, lam=lam, return_n_iter=True, **kw)
    assert isinstance(n_cold, np.ndarray) and n_cold.shape == (5,) and np.all(n_cold > 0)
    W2, n_warm = streamsc.encode(X, B, lam=lam, init=W, return_n_iter=True, **kw)
    assert np.all(n_warm < n_cold)
    for w2, w in zip(W2, W):
        assert rel_err(w2, w) < 1e-5  # both are within the default tolerance of the optimum
    w1, n1 = streamsc.encode(X[0], B, lam=lam, init=W[0], return_n_iter=True, **kw)
    assert isinstance(n1, int) and n1 < n_cold[0]
    # a nearby (perturbed) start also converges, to the same point
    near = W * 1.2 if kw["signed"] else np.abs(W) * 1.2 + 1e-3
    W3 = streamsc.encode(X, B, lam=lam, init=near, **kw)
    for w3, w in zip(W3, W):
        assert rel_err(w3, w) < 1e-5


@kl_solvers
def test_return_halves(solver):
    B, X = _batch((12, 40), n=5)
    k = B.shape[1]
    p = np.full(k, 1.0 / k)
    lam = 0.1
    # Newton's halves are p e^(+-z) by construction, so w+ w- = p^2 at any tol
    tol = 1e-8 * lam if solver == "newton" else None
    W, (Wp, Wm) = streamsc.encode(X, B, lam=lam, signed=True, solver=solver, tol=tol,
                                  return_halves=True)
    assert Wp.shape == Wm.shape == W.shape
    assert np.all(Wp > 0) and np.all(Wm > 0)
    npt.assert_array_equal(Wp - Wm, W)
    # at the optimum w+ = p e^z and w- = p e^-z, so w+ w- = p^2; at a point within tol,
    # |log(w+ w- / p^2)| = |g+ + g-| / lam <= 2 tol / lam
    bound = 1e-8 if solver == "newton" else 2 * 1e-6 * 1.01
    npt.assert_allclose(Wp * Wm / p**2, 1.0, rtol=bound)
    w, (wp, wm) = streamsc.encode(X[0], B, lam=lam, signed=True, solver=solver, tol=tol,
                                  return_halves=True)
    assert wp.shape == wm.shape == (k,)
    npt.assert_array_equal(wp - wm, w)
    # all three outputs together
    w, (wp, wm), n = streamsc.encode(X[0], B, lam=lam, signed=True, solver=solver,
                                     return_halves=True, return_n_iter=True)
    assert isinstance(n, int)


def test_p_scalar_equals_array_and_changes_codes():
    B, x, _ = _problem((12, 40))
    a = streamsc.encode(x, B, lam=0.1, p=0.05)
    b = streamsc.encode(x, B, lam=0.1, p=np.full(40, 0.05))
    npt.assert_array_equal(a, b)
    c = streamsc.encode(x, B, lam=0.1)  # default p = 1/k
    npt.assert_allclose(c, streamsc.encode(x, B, lam=0.1, p=1 / 40), rtol=1e-14)
    assert not np.allclose(a, c)


def test_convergence_warning():
    B, X = _batch((12, 40), n=3)
    with pytest.warns(ConvergenceWarning, match="3 of 3 codes"):
        streamsc.encode(X, B, lam=0.1, solver="egd", max_iter=1)
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        streamsc.encode(X[0], B, prior="l1", lam=0.01, max_iter=1, tol=1e-15)


def test_default_tol():
    assert streamsc.default_tol(0.3) == pytest.approx(3e-7)


# ---------------------------------------------------------------------------------------
# a property: the KL code is optimal (hypothesis)
# ---------------------------------------------------------------------------------------


@st.composite
def kl_problems(draw):
    m = draw(st.integers(2, 6))
    k = draw(st.integers(2, 8))
    B = draw(arrays(np.float64, (m, k), elements=st.floats(-1, 1, allow_nan=False, width=64)))
    norms = np.linalg.norm(B, axis=0)
    # well-posed atoms only (encode rejects exact zeros; near-zero ones just make it slow)
    B = np.where(norms < 0.1, np.eye(m, k) + 0.1, B)
    x = draw(arrays(np.float64, (m,), elements=st.floats(-2, 2, allow_nan=False, width=64)))
    # lam >= 0.05: below that Newton can stall above the default tol, see
    # test_kernels_kl::test_kl_newton_reaches_tight_tol
    lam = draw(st.floats(0.05, 1.0))
    signed = draw(st.booleans())
    return np.ascontiguousarray(B), x, lam, signed


@given(kl_problems(), st.integers(0, 2**32 - 1))
def test_kl_code_is_optimal(problem, seed):
    B, x, lam, signed = problem
    m, k = B.shape
    p = np.full(k, 1.0 / k)
    tol = 1e-6 * lam
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        out = streamsc.encode(x, B, lam=lam, signed=signed, return_halves=signed)
    w = np.concatenate(out[1]) if signed else out
    assert np.all(w > 0) and np.all(np.isfinite(w))
    g = naive.kl_gradient(x, B, p, lam, signed, w)
    assert np.max(np.abs(g)) <= tol + _round_slack(x, B, naive.kl_code(w, k, signed))
    # convexity: L(w') >= L(w) + g.(w' - w) >= L(w) - max|g| ||w' - w||_1
    f = naive.kl_objective(x, B, p, lam, signed, w)
    rng = np.random.default_rng(seed)
    for scale in (1e-4, 1e-2, 0.3):
        for _ in range(8):
            w2 = w * np.exp(scale * rng.standard_normal(w.shape[0]))  # stays feasible
            f2 = naive.kl_objective(x, B, p, lam, signed, w2)
            assert f2 >= f - tol * np.sum(np.abs(w2 - w)) - 16 * EPS * abs(f)


@given(kl_problems(), st.sampled_from(["l1", "l2"]), st.integers(0, 2**32 - 1))
def test_l1_l2_code_is_optimal(problem, prior, seed):
    """The L1 / L2 code (coordinate descent, or ridge's closed form when signed) is feasible
    (non-negative unless signed), meets the subgradient conditions to tol, and no random
    feasible perturbation lowers the objective by more than the convexity bound allows."""
    B, x, lam, signed = problem
    l1, l2 = (lam, 0.0) if prior == "l1" else (0.0, lam)
    tol = 1e-6 * lam
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        w = streamsc.encode(x, B, prior=prior, lam=lam, signed=signed)
    assert np.all(np.isfinite(w))
    if not signed:
        assert np.all(w >= 0)
    v = naive.enet_violation(x, B, l1, l2, not signed, w)
    assert v <= tol + _round_slack(x, B, w)
    f = naive.enet_objective(x, B, l1, l2, w)
    rng = np.random.default_rng(seed)
    for scale in (1e-4, 1e-2, 0.3):
        for _ in range(8):
            w2 = w + scale * rng.standard_normal(w.shape[0])
            if not signed:
                w2 = np.maximum(w2, 0.0)
            f2 = naive.enet_objective(x, B, l1, l2, w2)
            assert f2 >= f - v * np.sum(np.abs(w2 - w)) - 16 * EPS * max(abs(f), 1.0)


# ---------------------------------------------------------------------------------------
# bad input: the error names the argument
# ---------------------------------------------------------------------------------------

_B, _X = _batch((6, 8), n=3)
_x = _X[0]
_Bz = _B.copy()
_Bz[:, 3] = 0.0
_Bnan = _B.copy()
_Bnan[2, 2] = np.nan
_Xnan = _X.copy()
_Xnan[1, 2] = np.nan
_Xinf = _X.copy()
_Xinf[0, 0] = np.inf

BAD = [
    # (kwargs for encode, exception, message pattern)
    (dict(X=_Xnan), ValueError, "X contains NaN"),
    (dict(X=_Xinf), ValueError, "X contains NaN or infinity"),
    (dict(B=_Bnan), ValueError, "B contains NaN"),
    (dict(B=np.where(np.isfinite(_Bnan), _B, np.inf)), ValueError, "B contains NaN or infinity"),
    (dict(B=_Bz), ValueError, "B has a zero column"),
    (dict(B=_B[:, 0]), ValueError, "B must be 2-D"),
    (dict(X=_x[:5]), ValueError, "X has 5 features"),
    (dict(X=_X[None]), ValueError, "X must be 1-D or 2-D"),
    (dict(X="abc"), TypeError, "X must contain real numbers"),
    (dict(X=np.array([1.0, "a", None, 2.0, 3.0, 4.0], dtype=object)), TypeError,
     "X must contain real numbers"),
    (dict(X=[[1.0, 2.0], [3.0]]), TypeError, "X must be array-like"),
    (dict(X=_x + 1j), TypeError, "X must contain real numbers"),
    (dict(B=_B.astype(object)), TypeError, "B must contain real numbers"),
    (dict(lam=0.0), ValueError, "lam must be > 0"),
    (dict(lam=-1.0), ValueError, "lam must be > 0"),
    (dict(lam=float("nan")), ValueError, "lam must be finite"),
    (dict(lam="0.1"), TypeError, "lam must be a real number"),
    (dict(lam=None), TypeError, "lam must be a real number"),
    (dict(p=0.0), ValueError, "p must be > 0"),
    (dict(p=-0.1), ValueError, "p must be > 0"),
    (dict(p=np.r_[np.ones(7), 0.0]), ValueError, "p must be > 0"),
    (dict(p=np.ones(7)), ValueError, "p must be a scalar or have one entry per atom"),
    (dict(p=np.full(8, np.nan)), ValueError, "p contains NaN"),
    (dict(prior="laplace"), ValueError, "prior must be one of"),
    (dict(prior=1), TypeError, "prior must be one of"),
    (dict(solver="lbfgs"), ValueError, "solver must be one of"),
    (dict(signed=1), TypeError, "signed must be a bool"),
    (dict(signed="yes"), TypeError, "signed must be a bool"),
    (dict(max_iter=0), ValueError, "max_iter must be >= 1"),
    (dict(max_iter=2.5), TypeError, "max_iter must be an integer"),
    (dict(tol=-1e-6), ValueError, "tol must be > 0"),
    (dict(tol=0.0), ValueError, "tol must be > 0"),
    (dict(tol="bogus"), ValueError, "tol must be"),
    (dict(tol=float("inf")), ValueError, "tol must be finite"),
    (dict(init=np.ones(7)), ValueError, "init must have shape"),
    (dict(X=_X, init=np.ones(8)), ValueError, "init must be 2-D"),
    (dict(init=-np.ones(8)), ValueError, "init must be >= 0"),
    (dict(init=np.full(8, np.nan)), ValueError, "init contains NaN"),
    (dict(prior="l1", return_halves=True, signed=True), ValueError, "return_halves"),
    (dict(return_halves=True), ValueError, "return_halves"),
    (dict(return_halves=1, signed=True), TypeError, "return_halves must be a bool"),
    (dict(n_threads=0), ValueError, "n_threads must be >= 1"),
]


@pytest.mark.parametrize("kw,exc,match", BAD, ids=[f"{i}-{m}" for i, (_, _, m) in enumerate(BAD)])
def test_bad_input(kw, exc, match):
    args = dict(X=_x, B=_B)
    args.update(kw)
    X, B = args.pop("X"), args.pop("B")
    with pytest.raises(exc, match=match):
        streamsc.encode(X, B, **args)


# ---------------------------------------------------------------------------------------
# Issue 22 item 9: the dual Newton at every scale
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1.0, 1e6, 1e13])
def test_newton_signed_codes_at_every_scale(scale):
    """Signed KL codes by the dual Newton agree with EGD (a different algorithm, run to the
    same relative tolerance) for examples of norm 1, 1e6 and 1e13: a full Newton step from
    far away no longer overflows every exp and stops at the prior mean."""
    rng = np.random.default_rng(0)
    m, k, lam = 16, 32, 0.1
    B = rng.standard_normal((m, k))
    B /= np.linalg.norm(B, axis=0)
    x = rng.standard_normal(m)
    x *= scale / np.linalg.norm(x)
    tol = 1e-9 * scale
    w_newton, n_iter = streamsc.encode(
        x, B, lam=lam, signed=True, solver="newton", tol=tol, return_n_iter=True
    )
    w_ref = streamsc.encode(x, B, lam=lam, signed=True, solver="egd", tol=tol, max_iter=200_000)
    assert n_iter > 0
    assert np.abs(w_newton - w_ref).max() <= 1e-6 * np.abs(w_ref).max()
    p = np.full(k, 1.0 / k)
    assert np.linalg.norm(x - B @ w_newton) < 0.5 * np.linalg.norm(x - B @ p)


@pytest.mark.parametrize("scale", [1.0, 1e6, 1e13])
def test_newton_unsigned_codes_at_least_as_good_as_egd(scale):
    """Unsigned KL codes by solver='newton' are as good as EGD's (a different algorithm; at
    the objective, since EGD itself stalls at 1e6) at every scale: where the dual Newton
    stalls (very large norms) its rows are recoded by EGD, never refused and never the
    prior mean returned as if it were a code."""
    from streamsc._kernels import kl as kl_kernels

    rng = np.random.default_rng(0)
    m, k, lam = 16, 32, 0.1
    B = rng.standard_normal((m, k))
    B /= np.linalg.norm(B, axis=0)
    x = rng.standard_normal(m)
    x *= scale / np.linalg.norm(x)
    p = np.full(k, 1.0 / k)
    tol = 1e-9 * scale
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        w_ref = streamsc.encode(x, B, lam=lam, solver="egd", tol=tol, max_iter=100_000)
        w = streamsc.encode(x, B, lam=lam, solver="newton", tol=tol)
    f = kl_kernels.kl_objective(x, B, p, lam, False, w)
    f_ref = kl_kernels.kl_objective(x, B, p, lam, False, w_ref)
    assert f <= f_ref * (1 + 1e-9)
    assert f < 0.9 * kl_kernels.kl_objective(x, B, p, lam, False, p)
    if scale == 1.0:
        assert np.abs(w - w_ref).max() <= 1e-6 * np.abs(w_ref).max()


def test_stalled_newton_rows_are_recoded_by_egd(monkeypatch):
    """A row on which the dual Newton stops above the prior mean's objective (forced here by
    a kernel that returns the prior mean unconverged) gets EGD's code, in a batch and
    alone: the stream goes on (issue 22: a soak stream's bursts once stopped it)."""
    import streamsc._kernels as kernels
    from streamsc._kernels import kl as kl_kernels

    rng = np.random.default_rng(1)
    m, k, lam = 12, 20, 0.1
    B = rng.standard_normal((m, k))
    B /= np.linalg.norm(B, axis=0)
    X = rng.standard_normal((3, m))
    p = np.full(k, 1.0 / k)
    expected = streamsc.encode(X, B, lam=lam, solver="egd_diag")

    def stalled(X, B, p, lam, signed, tol, cap, Nu, drop, kept, H, n_iter, viol):
        H[:] = p
        viol[:] = 1e9
        n_iter[:] = cap

    def stalled_one(x, B, p, lam, signed, tol, cap, nu, drop, kept, h):
        h[:] = p
        return cap, 1e9

    monkeypatch.setattr(kernels, "_noticed", True)  # plain functions: no compile notice
    monkeypatch.setattr(kl_kernels, "kl_newton_batch", stalled)
    monkeypatch.setattr(kl_kernels, "kl_newton", stalled_one)
    W = streamsc.encode(X, B, lam=lam, solver="newton")
    np.testing.assert_allclose(W, expected, rtol=1e-12, atol=1e-15)
    w = streamsc.encode(X[0], B, lam=lam, solver="newton")
    np.testing.assert_allclose(w, expected[0], rtol=1e-12, atol=1e-15)
    for x, row in zip(X, W):
        assert kl_kernels.kl_objective(x, B, p, lam, False, row) < kl_kernels.kl_objective(
            x, B, p, lam, False, p)


# ---------------------------------------------------------------------------------------
# Issue 21 item 3: the first compile says so, once
# ---------------------------------------------------------------------------------------


def test_first_compile_is_logged_once(caplog, monkeypatch):
    """With the threshold forced to 0, the first call of a kernel with nothing compiled in
    this process logs one WARNING on the "streamsc" logger naming the kernel; a second such
    call logs nothing more (no timing asserted)."""
    import logging

    import numba

    import streamsc._kernels as kernels

    @numba.njit
    def fresh(x):  # nothing compiled: its first call compiles
        return x + 1.0

    @numba.njit
    def fresh2(x):
        return x + 2.0

    monkeypatch.setattr(kernels, "COMPILE_NOTICE_AFTER", 0.0)
    monkeypatch.setattr(kernels, "_noticed", False)
    with caplog.at_level(logging.INFO, logger="streamsc"):
        assert kernels.first_call(fresh, 1.0) == 2.0
        assert kernels.first_call(fresh2, 1.0) == 3.0
        assert kernels.first_call(fresh, 1.0) == 2.0
    notes = [r for r in caplog.records if r.name == "streamsc"]
    assert len(notes) == 1
    assert notes[0].levelno == logging.WARNING
    assert "fresh" in notes[0].getMessage() and "compiling" in notes[0].getMessage()


def test_first_call_logs_nothing_below_threshold(caplog, monkeypatch):
    """A call under the threshold (a kernel already compiled) says nothing."""
    import logging

    import streamsc._kernels as kernels

    monkeypatch.setattr(kernels, "COMPILE_NOTICE_AFTER", 1e9)
    monkeypatch.setattr(kernels, "_noticed", False)
    rng = np.random.default_rng(0)
    B = rng.standard_normal((8, 12))
    with caplog.at_level(logging.INFO, logger="streamsc"):
        streamsc.encode(rng.standard_normal(8), B, lam=0.1)
    assert not [r for r in caplog.records if r.name == "streamsc"]
