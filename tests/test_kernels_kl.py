"""The dense linear-algebra and KL-prior kernels against their NumPy twins (``naive.py``),
scipy, and the invariants of the paper's EGD.

Tests whose name contains ``naive`` and whose id contains ``tiny`` also run with
``NUMBA_DISABLE_JIT=1`` (``test_nojit.py``), so keep those cheap.
"""

import numpy as np
import numpy.testing as npt
import pytest

import naive
from conftest import SHAPE_IDS, SHAPES, TINY, make_basis, make_problem, make_X, rel_err
from streamsc._kernels import kl, linalg

EPS = np.finfo(np.float64).eps

#: the test shapes plus the tiny one used by the no-jit run
ALL_SHAPES = SHAPES + [TINY]
ALL_IDS = SHAPE_IDS + ["tiny"]

shapes = pytest.mark.parametrize("shape", ALL_SHAPES, ids=ALL_IDS)
signs = pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])


def _problem(shape):
    m, k = shape
    return make_problem(m, k, seed=1000 * m + k)


def _state(k, signed, rng, low=0.05, high=2.0):
    """A random positive state vector (length k, or 2k when signed)."""
    return rng.uniform(low, high, size=2 * k if signed else k)


# ---------------------------------------------------------------------------------------
# linalg
# ---------------------------------------------------------------------------------------


@shapes
def test_linalg_naive(shape):
    m, k = shape
    rng = np.random.default_rng(m * k)
    B = rng.standard_normal((m, k))
    v = rng.standard_normal(k)
    r = rng.standard_normal(m)

    out = np.empty(m)
    linalg.matvec(B, v, out)
    npt.assert_allclose(out, naive.matvec(B, v), rtol=1e-12, atol=1e-13)
    npt.assert_allclose(out, B @ v, rtol=1e-12, atol=1e-13)

    out = np.full(k, np.nan)  # rmatvec must overwrite, not accumulate
    linalg.rmatvec(B, r, out)
    npt.assert_allclose(out, naive.rmatvec(B, r), rtol=1e-12, atol=1e-13)
    npt.assert_allclose(out, B.T @ r, rtol=1e-12, atol=1e-13)

    npt.assert_allclose(linalg.dot(v, v), float(v @ v), rtol=1e-13)

    out = np.full(k, np.nan)
    linalg.col_sq_norms(B, out)
    npt.assert_allclose(out, naive.col_sq_norms(B), rtol=1e-13)

    A = B @ B.T + 0.5 * np.eye(m)  # symmetric positive definite
    y = linalg.solve_spd(A, r)
    npt.assert_allclose(y, naive.solve_spd(A, r), rtol=1e-10, atol=1e-12)
    npt.assert_allclose(A @ y, r, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------
# objective and gradient
# ---------------------------------------------------------------------------------------


@shapes
@signs
def test_kl_objective_naive(shape, signed):
    B, x, p = _problem(shape)
    k = B.shape[1]
    rng = np.random.default_rng(1)
    for lam in (0.01, 0.3):
        w = _state(k, signed, rng)
        npt.assert_allclose(
            kl.kl_objective(x, B, p, lam, signed, w),
            naive.kl_objective(x, B, p, lam, signed, w), rtol=1e-13,
        )
        # the prior term vanishes at w = p (the objective is then the plain reconstruction error)
        wp = naive.expanded_prior(p, signed).copy()
        res = x - B @ naive.kl_code(wp, k, signed)
        npt.assert_allclose(kl.kl_objective(x, B, p, lam, signed, wp), 0.5 * res @ res, rtol=1e-13)
        # w_j = 0 is allowed (0 log 0 = 0): the term is p_j
        w[0] = 0.0
        npt.assert_allclose(
            kl.kl_objective(x, B, p, lam, signed, w),
            naive.kl_objective(x, B, p, lam, signed, w), rtol=1e-13,
        )


@shapes
@signs
def test_kl_gradient_naive(shape, signed):
    B, x, p = _problem(shape)
    k = B.shape[1]
    rng = np.random.default_rng(2)
    lam = 0.1
    w = _state(k, signed, rng)
    g = np.full(w.shape[0], np.nan)
    gmax = kl.kl_gradient(x, B, p, lam, signed, w, g)
    g_ref = naive.kl_gradient(x, B, p, lam, signed, w)
    npt.assert_allclose(g, g_ref, rtol=1e-11, atol=1e-13)
    assert gmax == pytest.approx(np.max(np.abs(g_ref)), rel=1e-11)
    # the twin itself against central finite differences of the twin objective
    h = 1e-6
    fd = np.empty_like(w)
    for j in range(w.shape[0]):
        e = np.zeros_like(w)
        e[j] = h
        fd[j] = (
            naive.kl_objective(x, B, p, lam, signed, w + e)
            - naive.kl_objective(x, B, p, lam, signed, w - e)
        ) / (2 * h)
    npt.assert_allclose(g_ref, fd, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------------------
# EGD
# ---------------------------------------------------------------------------------------


@shapes
@signs
def test_kl_egd_naive_iterates(shape, signed):
    """The kernel's first steps are the twin's: same points, same adapted step, same trace."""
    B, x, p = _problem(shape)
    k = B.shape[1]
    lam = 0.1
    noise = np.random.default_rng(3).normal(0.0, 1.0, 2 * k if signed else k)
    w0 = naive.expanded_prior(p, signed) * np.exp(noise)
    n_steps = 12
    _, n_ref, alpha_ref, _, trace_ref, iterates = naive.kl_egd(
        x, B, p, lam, signed, 0.0, n_steps, w0, 1.0
    )
    assert n_ref == n_steps
    for t in range(1, n_steps + 1):
        u = np.log(w0)
        trace = np.full(t, np.nan)
        n_iter, alpha, gmax = kl.kl_egd(x, B, p, lam, signed, 0.0, t, u, 1.0, trace)
        assert n_iter == t
        npt.assert_allclose(np.exp(u), iterates[t - 1], rtol=1e-10)
        npt.assert_allclose(trace, trace_ref[:t], rtol=1e-12)
    assert alpha == pytest.approx(alpha_ref, rel=1e-12)
    g = naive.kl_gradient(x, B, p, lam, signed, np.exp(u))
    assert gmax == pytest.approx(np.max(np.abs(g)), rel=1e-8)


@shapes
@signs
def test_kl_egd_naive_converged(shape, signed):
    """Run to the default tolerance, kernel and twin stop at the same point."""
    B, x, p = _problem(shape)
    lam = 0.1
    tol = 1e-6 * lam
    w0 = naive.expanded_prior(p, signed)
    w_ref, n_ref, alpha_ref, g_ref, _, _ = naive.kl_egd(x, B, p, lam, signed, tol, 20000, w0, 1.0)
    assert g_ref <= tol
    u = np.log(w0)
    n_iter, alpha, gmax = kl.kl_egd(x, B, p, lam, signed, tol, 20000, u, 1.0, np.empty(0))
    assert gmax <= tol
    assert abs(n_iter - n_ref) <= 2
    assert rel_err(np.exp(u), w_ref) < 1e-6


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@signs
@pytest.mark.parametrize("start", ["prior", "far"])
def test_kl_egd_invariants(shape, signed, start):
    """Every iterate is positive, the objective never rises by more than rounding
    (8 eps |f|, the slack of the Armijo test), the adapted step stays positive, and the
    reported gradient is the gradient at the returned point."""
    B, x, p = _problem(shape)
    k = B.shape[1]
    n = 2 * k if signed else k
    lam = 0.05
    if start == "prior":
        u0 = np.log(naive.expanded_prior(p, signed))
        alpha0 = 1.0
    else:  # far from the optimum and with a step far too large: forces backtracking
        u0 = np.random.default_rng(4).normal(0.0, 3.0, n)
        alpha0 = 50.0
    f0 = kl.kl_objective(x, B, p, lam, signed, np.exp(u0))
    cap = 3000
    u = u0.copy()
    trace = np.full(cap, np.nan)
    n_iter, alpha, gmax = kl.kl_egd(x, B, p, lam, signed, 1e-6 * lam, cap, u, alpha0, trace)
    assert 0 < n_iter < cap
    assert np.isfinite(alpha) and alpha > 0
    assert gmax <= 1e-6 * lam
    tr = np.concatenate([[f0], trace[:n_iter]])
    assert np.all(np.isnan(trace[n_iter:]))  # only accepted steps are recorded
    rise = np.diff(tr)
    # the kernel's acceptance threshold f + 8 eps |f| is itself rounded: one more ulp
    assert np.all(rise <= 8 * EPS * np.abs(tr[:-1]) + np.spacing(np.abs(tr[:-1]))), rise.max()
    assert tr[-1] < f0
    # positivity of every iterate: EGD is deterministic, so iterate t is a run capped at t
    for t in range(1, n_iter + 1):
        ut = u0.copy()
        kl.kl_egd(x, B, p, lam, signed, 0.0, t, ut, alpha0, np.empty(0))
        wt = np.exp(ut)
        assert np.all(np.isfinite(wt)) and np.all(wt > 0)
        npt.assert_allclose(kl.kl_objective(x, B, p, lam, signed, wt), tr[t], rtol=1e-12)
    g = naive.kl_gradient(x, B, p, lam, signed, np.exp(u))
    assert gmax == pytest.approx(np.max(np.abs(g)), rel=1e-6, abs=1e-14)


def test_kl_egd_batch_naive_tiny():
    """The parallel driver gives every row exactly what the per-example kernel gives."""
    B, _, p = make_problem(*TINY, seed=11)
    X = make_X(B, np.random.default_rng(11), 5)
    for signed in (False, True):
        n = 2 * B.shape[1] if signed else B.shape[1]
        U = np.tile(np.log(naive.expanded_prior(p, signed)), (5, 1))
        U_rows = U.copy()
        n_iter = np.zeros(5, dtype=np.int64)
        gmax = np.zeros(5)
        kl.egd_batch(X, B, p, 0.1, signed, 1e-7, 5000, U, 1.0, n_iter, gmax, 0, False)
        for i in range(5):
            it, _, gm = kl.kl_egd(X[i], B, p, 0.1, signed, 1e-7, 5000, U_rows[i], 1.0, np.empty(0))
            assert it == n_iter[i] and gm == gmax[i]
            npt.assert_array_equal(U[i], U_rows[i])
            assert U[i].shape == (n,)


# ---------------------------------------------------------------------------------------
# Newton on the dual
# ---------------------------------------------------------------------------------------


@shapes
@signs
def test_kl_dual_naive(shape, signed):
    """The dual value and the primal point paired with a dual point, and weak duality."""
    B, x, p = _problem(shape)
    m, k = B.shape
    lam = 0.2
    rng = np.random.default_rng(5)
    const = lam * np.sum(p) * (2 if signed else 1)  # the kernel drops this constant
    for _ in range(3):
        nu = 0.3 * rng.standard_normal(m)
        z = B.T @ nu / lam
        ez, bits = np.empty(k), np.empty(k, dtype=np.int64)  # scratch
        npt.assert_allclose(
            kl._dual_value(x, nu, p, lam, signed, z, ez, bits) + const,
            naive.kl_dual(x, B, p, lam, signed, nu), rtol=1e-12, atol=1e-14,
        )
        n = 2 * k if signed else k
        w, code, d, r = np.empty(n), np.empty(k), np.empty(k), np.empty(m)
        kl._dual_primal(x, B, nu, p, lam, signed, z, w, code, d, r, ez, bits)
        w_ref = naive.kl_dual_primal(B, p, lam, signed, nu)
        npt.assert_allclose(w, w_ref, rtol=1e-13)
        npt.assert_allclose(code, naive.kl_code(w_ref, k, signed), rtol=1e-12, atol=1e-15)
        npt.assert_allclose(d, w_ref[:k] + w_ref[k:] if signed else w_ref, rtol=1e-13)
        npt.assert_allclose(r, x - nu - B @ code, rtol=1e-12, atol=1e-14)
        # weak duality: D(nu) <= L(w) for any pair
        assert naive.kl_dual(x, B, p, lam, signed, nu) <= naive.kl_objective(
            x, B, p, lam, signed, _state(k, signed, rng)
        )


@shapes
@pytest.mark.parametrize("case", ["exact", "dropped", "capped", "none"])
def test_newton_direction_naive(shape, case):
    B, _, _ = _problem(shape)
    m, k = B.shape
    rng = np.random.default_rng(6)
    lam = 0.1
    d = rng.uniform(0.001, 1.0, k)
    r = rng.standard_normal(m)
    cn2 = naive.col_sq_norms(B)
    a = d / lam * cn2
    hess_drop, max_kept = {
        "exact": (0.0, k),
        "dropped": (float(np.median(a)), k),
        "capped": (0.0, max(1, k // 3)),
        "none": (float(a.max()) + 1.0, k),
    }[case]
    delta = np.full(m, np.nan)
    s = kl._newton_direction(B, cn2, lam, d, r, hess_drop, max_kept, delta)
    delta_ref, s_ref = naive.newton_direction(B, lam, d, r, hess_drop, max_kept)
    assert s == s_ref
    npt.assert_allclose(delta, delta_ref, rtol=1e-9, atol=1e-12)
    if case == "exact":
        M = np.eye(m) + B @ np.diag(d / lam) @ B.T
        npt.assert_allclose(M @ delta, r, rtol=1e-9, atol=1e-11)


@shapes
@signs
def test_kl_newton_naive(shape, signed):
    """Newton's solution is the twin EGD's (run to the same tolerance), the stationary
    point of the twin gradient, and has a zero duality gap."""
    B, x, p = _problem(shape)
    m, k = B.shape
    lam = 0.1
    n = 2 * k if signed else k
    nu = np.zeros(m)
    w = np.full(n, np.nan)
    n_iter, gmax = kl.kl_newton(x, B, p, lam, signed, 1e-10 * lam, 100, nu, 0.1, 64, w)
    assert 0 < n_iter < 100 and gmax <= 1e-10 * lam
    assert np.all(w > 0)
    g = naive.kl_gradient(x, B, p, lam, signed, w)
    assert np.max(np.abs(g)) <= 1e-10 * lam + 1e-14
    assert gmax == pytest.approx(np.max(np.abs(g)), rel=1e-3, abs=1e-14)
    # the returned dual point is the residual, and the duality gap closes
    code = naive.kl_code(w, k, signed)
    npt.assert_allclose(nu, x - B @ code, rtol=0, atol=1e-10)
    gap = naive.kl_objective(x, B, p, lam, signed, w) - naive.kl_dual(x, B, p, lam, signed, nu)
    assert abs(gap) <= 1e-12
    # the twin EGD at 1e-7 * lam agrees to what that tolerance allows
    w_egd, _, _, g_egd, _, _ = naive.kl_egd(
        x, B, p, lam, signed, 1e-7 * lam, 20000, naive.expanded_prior(p, signed), 1.0
    )
    assert g_egd <= 1e-7 * lam
    assert rel_err(naive.kl_code(w_egd, k, signed), code) < 1e-6


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@signs
@pytest.mark.parametrize("lam", [0.05, 0.5])
def test_kl_newton_scipy(shape, signed, lam):
    """Newton at a tight tolerance matches the scipy reference to 1e-7 relative."""
    B, x, p = _problem(shape)
    m, k = B.shape
    w_ref, g_ref = naive.kl_reference(x, B, p, lam, signed)
    assert g_ref <= 1e-13
    nu = np.zeros(m)
    w = np.empty(2 * k if signed else k)
    _, gmax = kl.kl_newton(x, B, p, lam, signed, 1e-12 * lam, 100, nu, 0.1, 64, w)
    assert gmax <= 1e-12 * lam
    assert rel_err(naive.kl_code(w, k, signed), naive.kl_code(w_ref, k, signed)) < 1e-7
    # and the exact-Hessian variant (no atom dropped) lands on the same point
    nu = np.zeros(m)
    w_exact = np.empty_like(w)
    kl.kl_newton(x, B, p, lam, signed, 1e-12 * lam, 100, nu, 0.0, k, w_exact)
    assert rel_err(w_exact, w_ref) < 1e-7


@signs
def test_kl_newton_warm_start_naive_tiny(signed):
    """Started from the dual point of the solution, Newton takes no step."""
    B, x, p = make_problem(*TINY, seed=12)
    m, k = B.shape
    n = 2 * k if signed else k
    nu = np.zeros(m)
    w = np.empty(n)
    it_cold, _ = kl.kl_newton(x, B, p, 0.1, signed, 1e-9, 100, nu, 0.1, 64, w)
    nu_warm = x - B @ naive.kl_code(w, k, signed)
    w_warm = np.empty(n)
    it_warm, gmax = kl.kl_newton(x, B, p, 0.1, signed, 1e-9, 100, nu_warm, 0.1, 64, w_warm)
    assert it_cold > 0 and it_warm <= 1 and gmax <= 1e-9
    npt.assert_allclose(w_warm, w, rtol=1e-8)
    # an overflowing start (exp(z) > huge) falls back to nu = 0 and still converges
    nu_bad = 1e6 * np.ones(m)
    it_bad, gmax = kl.kl_newton(x, B, p, 0.1, signed, 1e-9, 100, nu_bad, 0.1, 64, w_warm)
    assert gmax <= 1e-9
    npt.assert_allclose(w_warm, w, rtol=1e-6)


def test_kl_newton_batch_naive_tiny():
    B, _, p = make_problem(*TINY, seed=13)
    m, k = B.shape
    X = make_X(B, np.random.default_rng(13), 5)
    for signed in (False, True):
        n = 2 * k if signed else k
        Nu = np.zeros((5, m))
        W = np.empty((5, n))
        n_iter = np.zeros(5, dtype=np.int64)
        gmax = np.zeros(5)
        kl.kl_newton_batch(X, B, p, 0.1, signed, 1e-8, 100, Nu, 0.1, 64, W, n_iter, gmax)
        for i in range(5):
            nu = np.zeros(m)
            w = np.empty(n)
            it, gm = kl.kl_newton(X[i], B, p, 0.1, signed, 1e-8, 100, nu, 0.1, 64, w)
            assert it == n_iter[i] and gm == gmax[i]
            npt.assert_array_equal(w, W[i])
            npt.assert_array_equal(nu, Nu[i])


# ---------------------------------------------------------------------------------------
# regressions: cases where the solvers once stalled (rounding in the line searches, too
# few atoms kept in the Newton Hessian)
# ---------------------------------------------------------------------------------------


def test_kl_egd_reaches_tight_tol():
    B, x, p = make_problem(6, 8, seed=6008)
    lam = 0.05
    u = np.log(p.copy())
    _, _, gmax = kl.kl_egd(x, B, p, lam, False, 1e-10 * lam, 100_000, u, 1.0, np.empty(0))
    assert gmax <= 1e-10 * lam


def test_kl_newton_reaches_tight_tol():
    B, x, p, lam = _stall_case()
    m, k = B.shape
    nu = np.zeros(m)
    w = np.empty(2 * k)
    _, gmax = kl.kl_newton(x, B, p, lam, True, 1e-10 * lam, 100, nu, 0.1, 64, w)
    # the solution is easy: one dense NumPy Newton step from the stalled point reaches 1e-15
    assert gmax <= 1e-10 * lam


def _stall_case():
    """A signed problem (m=20, k=10, lam=0.05) on which kl_newton stalls: the 4th basis
    and 3rd example drawn in the accuracy survey's order from seed 123."""
    rng = np.random.default_rng(123)
    for m, k in [(6, 8), (6, 8), (20, 10), (20, 10)]:
        B = make_basis(m, k, rng)
        X = make_X(B, rng, 9)
    return B, X[2], np.full(10, 0.1), 0.05


def test_kl_newton_converges_when_many_atoms_are_heavy():
    rng = np.random.default_rng(5)
    B = make_basis(64, 256, rng)
    X = rng.standard_normal((12, 64))
    X /= np.linalg.norm(X, axis=1)[:, None]
    p = np.full(256, 1.0 / 256)
    lam = 0.01
    worst = 0.0
    for x in X:
        nu = np.zeros(64)
        w = np.empty(512)
        _, gmax = kl.kl_newton(x, B, p, lam, True, 1e-6 * lam, 100, nu, 0.1, 64, w)
        worst = max(worst, gmax)
    assert worst <= 1e-6 * lam
