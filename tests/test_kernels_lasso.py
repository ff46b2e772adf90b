"""The L1 / L2 kernels (coordinate descent, closed-form ridge) against their NumPy twins
(``naive.py``), scikit-learn and scipy.

Objective: 1/2 ||x - B w||^2 + l1 ||w||_1 + l2/2 ||w||^2, optionally w >= 0. scikit-learn's
``Lasso``/``ElasticNet`` divide the squared loss by the number of samples (here the m rows
of B), so ``alpha = (l1 + l2) / m`` and ``l1_ratio = l1 / (l1 + l2)``.

Tests whose name contains ``naive`` and whose id contains ``tiny`` also run with
``NUMBA_DISABLE_JIT=1`` (``test_nojit.py``).
"""

import warnings

import numba
import numpy as np
import numpy.testing as npt
import pytest
from scipy.optimize import nnls
from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning
from sklearn.linear_model import ElasticNet, Lasso

import naive
from conftest import SHAPE_IDS, SHAPES, TINY, make_problem, make_X, rel_err
from streamsc._kernels import lasso

ALL_SHAPES = SHAPES + [TINY]
ALL_IDS = SHAPE_IDS + ["tiny"]

shapes = pytest.mark.parametrize("shape", ALL_SHAPES, ids=ALL_IDS)
positives = pytest.mark.parametrize("positive", [True, False], ids=["positive", "signed"])
#: (l1, l2): lasso, ridge-like, elastic net
PENALTIES = [(0.05, 0.0), (0.0, 0.3), (0.02, 0.1)]
penalties = pytest.mark.parametrize("l1,l2", PENALTIES, ids=["l1", "l2", "enet"])


def _problem(shape):
    m, k = shape
    return make_problem(m, k, seed=1000 * m + k)[:2]


def _sparse_w(k, positive, rng):
    """A random point with zeros (and negative entries unless positive)."""
    w = rng.uniform(0.1, 1.0, k) * rng.choice([0.0, 1.0], size=k)
    if not positive:
        w *= rng.choice([-1.0, 1.0], size=k)
    return w


def _cd(x, B, l1, l2, positive, tol, max_iter=10_000, w0=None):
    w = np.zeros(B.shape[1]) if w0 is None else w0.copy()
    n, viol = lasso.enet_cd(x, B, l1, l2, positive, tol, max_iter, w)
    return w, n, viol


@shapes
@positives
@penalties
def test_enet_violation_naive(shape, positive, l1, l2):
    B, x = _problem(shape)
    m, k = B.shape
    rng = np.random.default_rng(1)
    for _ in range(3):
        w = _sparse_w(k, positive, rng)
        r = x - B @ w
        c = np.full(k, np.nan)
        v = lasso.enet_violation(x, B, l1, l2, positive, w, r, c)
        npt.assert_allclose(c, B.T @ r, rtol=1e-12, atol=1e-14)
        v_ref = naive.enet_violation(x, B, l1, l2, positive, w)
        assert v == pytest.approx(v_ref, rel=1e-10, abs=1e-14)


@shapes
@positives
@penalties
def test_enet_sweep_naive(shape, positive, l1, l2):
    """One cyclic pass of the kernel is one pass of the twin (exact coordinate minimisers)."""
    B, x = _problem(shape)
    m, k = B.shape
    w0 = _sparse_w(k, positive, np.random.default_rng(2))
    w_ref, sweeps = naive.enet_cd(x, B, l1, l2, positive, 0.0, 1, w0)
    assert sweeps == 1
    w = w0.copy()
    r = x - B @ w
    cn2 = naive.col_sq_norms(B)
    biggest = lasso._sweep(B, cn2, l1, l2, positive, w, r, np.arange(k), k)
    npt.assert_allclose(w, w_ref, rtol=1e-10, atol=1e-13)
    npt.assert_allclose(r, x - B @ w, rtol=1e-10, atol=1e-13)  # residual kept in sync
    assert biggest == pytest.approx(np.max(cn2 * np.abs(w - w0)), rel=1e-10)
    # each pass never raises the objective
    assert naive.enet_objective(x, B, l1, l2, w) <= naive.enet_objective(x, B, l1, l2, w0) + 1e-15


@shapes
@positives
@penalties
def test_enet_cd_naive(shape, positive, l1, l2):
    """Kernel (active set) and twin (plain full sweeps) reach the same point, which meets
    the subgradient conditions to tol."""
    B, x = _problem(shape)
    tol = 1e-12
    w, n_sweeps, viol = _cd(x, B, l1, l2, positive, tol)
    assert viol <= tol and n_sweeps > 0
    w_ref, _ = naive.enet_cd(x, B, l1, l2, positive, tol, 100_000)
    npt.assert_allclose(w, w_ref, rtol=1e-9, atol=1e-10)
    assert naive.enet_violation(x, B, l1, l2, positive, w) <= tol + 1e-14
    if positive:
        assert np.all(w >= 0)
    # the twin's zeros are exact zeros of the kernel too, not tiny numbers
    npt.assert_array_equal(w[w_ref == 0.0], 0.0)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@positives
@pytest.mark.parametrize("lam", [0.01, 0.1])
def test_enet_cd_lasso_sklearn(shape, positive, lam):
    B, x = _problem(shape)
    m = B.shape[0]
    w, _, viol = _cd(x, B, lam, 0.0, positive, 1e-12 * lam)
    assert viol <= 1e-12 * lam
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkConvergenceWarning)
        ref = Lasso(alpha=lam / m, fit_intercept=False, positive=positive, tol=1e-12,
                    max_iter=1_000_000).fit(B, x).coef_
    assert np.max(np.abs(w - ref)) <= 1e-6 * max(1.0, np.max(np.abs(ref)))


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@positives
def test_enet_cd_elastic_net_sklearn(shape, positive):
    B, x = _problem(shape)
    m = B.shape[0]
    l1, l2 = 0.02, 0.1
    w, _, viol = _cd(x, B, l1, l2, positive, 1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkConvergenceWarning)
        ref = ElasticNet(alpha=(l1 + l2) / m, l1_ratio=l1 / (l1 + l2), fit_intercept=False,
                         positive=positive, tol=1e-12, max_iter=1_000_000).fit(B, x).coef_
    assert np.max(np.abs(w - ref)) <= 1e-6 * max(1.0, np.max(np.abs(ref)))


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_enet_cd_positive_l2_nnls(shape):
    """Non-negative L2 codes are non-negative least squares on [B; sqrt(l2) I], [x; 0]."""
    B, x = _problem(shape)
    m, k = B.shape
    l2 = 0.3
    w, _, _ = _cd(x, B, 0.0, l2, True, 1e-13)
    ref, _ = nnls(np.vstack([B, np.sqrt(l2) * np.eye(k)]), np.concatenate([x, np.zeros(k)]))
    npt.assert_allclose(w, ref, rtol=0, atol=1e-9)


@positives
def test_enet_cd_warm_start_naive_tiny(positive):
    """From its own solution the kernel does no sweep; from a nearby point it does fewer."""
    B, x = make_problem(*TINY, seed=21)[:2]
    w, n_cold, _ = _cd(x, B, 0.05, 0.0, positive, 1e-10)
    w2, n_warm, viol = _cd(x, B, 0.05, 0.0, positive, 1e-10, w0=w)
    assert n_warm == 0 and viol <= 1e-10
    npt.assert_array_equal(w2, w)
    w3, n_near, _ = _cd(x, B, 0.05, 0.0, positive, 1e-10, w0=w * 1.01)
    assert n_near < n_cold
    npt.assert_allclose(w3, w, atol=1e-9)
    # max_iter caps the outer sweeps and the violation is reported honestly
    w4, n_capped, viol4 = _cd(x, B, 1e-4, 0.0, positive, 1e-15, max_iter=1)
    v_ref = naive.enet_violation(x, B, 1e-4, 0.0, positive, w4)
    assert viol4 == pytest.approx(v_ref, rel=1e-8, abs=1e-15)


def test_enet_cd_zero_column_naive_tiny():
    """A zero atom is skipped (stays at 0) instead of dividing by zero."""
    B, x = make_problem(*TINY, seed=22)[:2]
    B = B.copy()
    B[:, 2] = 0.0
    for positive in (True, False):
        w, _, viol = _cd(x, B, 0.05, 0.0, positive, 1e-10)
        assert np.all(np.isfinite(w)) and w[2] == 0.0 and viol <= 1e-10


def test_enet_cd_batch_naive_tiny():
    B, _ = make_problem(*TINY, seed=23)[:2]
    X = make_X(B, np.random.default_rng(23), 6)
    for positive in (True, False):
        W = np.zeros((6, B.shape[1]))
        n_iter = np.zeros(6, dtype=np.int64)
        viol = np.zeros(6)
        lasso.enet_cd_batch(X, B, 0.05, 0.0, positive, 1e-10, 1000, W, n_iter, viol)
        for i in range(6):
            w, n, v = _cd(X[i], B, 0.05, 0.0, positive, 1e-10, max_iter=1000)
            npt.assert_array_equal(W[i], w)
            assert n == n_iter[i] and v == viol[i]


@pytest.mark.parametrize(
    "shape", ALL_SHAPES + [TINY[::-1]], ids=ALL_IDS + ["tiny-under"]
)
@pytest.mark.parametrize("lam", [1e-3, 0.1, 3.0])
def test_ridge_naive(shape, lam):
    """Closed form through the k x k (k <= m) or m x m (k > m) system, to 1e-10."""
    B, _ = _problem(shape)
    m, k = B.shape
    X = np.random.default_rng(3).standard_normal((5, m))
    W = np.full((5, k), np.nan)
    lasso.ridge(X, B, lam, W)
    ref = naive.ridge(X, B, lam)
    assert rel_err(W, ref) <= 1e-10
    # stationarity of 1/2 ||x - B w||^2 + lam/2 ||w||^2
    G = (W @ B.T - X) @ B + lam * W
    assert np.max(np.abs(G)) <= 1e-10 * max(1.0, np.max(np.abs(X)))


# ---------------------------------------------------------------------------------------
# the working-set solver's special paths: Newton steps along dependent atoms, the working
# set's capacity (compaction, fallback to plain coordinate descent), rounding-level tol
# ---------------------------------------------------------------------------------------


def _sk_lasso(x, B, lam, positive):
    m = B.shape[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkConvergenceWarning)
        return Lasso(alpha=lam / m, fit_intercept=False, positive=positive, tol=1e-14,
                     max_iter=1_000_000).fit(B, x).coef_


@positives
def test_enet_cd_duplicate_atoms(positive):
    """With every atom present twice the code is not unique, but the objective, the fit
    B w and each pair's sum are those of the lasso on the distinct atoms (a pair acts as
    one atom: |a| + |b| >= |a + b|, equal when the signs agree)."""
    rng = np.random.default_rng(41)
    B0 = make_problem(8, 6, seed=41)[0]
    B = np.ascontiguousarray(np.hstack([B0, B0]))
    for x in make_X(B, rng, 3):
        w, _, viol = _cd(x, B, 0.05, 0.0, positive, 1e-10)
        assert viol <= 1e-10
        ref = _sk_lasso(x, B0, 0.05, positive)
        npt.assert_allclose(w[:6] + w[6:], ref, atol=1e-8)
        npt.assert_allclose(B @ w, B0 @ ref, atol=1e-8)
        assert naive.enet_objective(x, B, 0.05, 0.0, w) == pytest.approx(
            naive.enet_objective(x, B0, 0.05, 0.0, ref), abs=1e-12)
        assert np.all(w[:6] * w[6:] >= 0)  # a pair never pulls against itself


@positives
def test_enet_cd_dense_start(positive):
    """From a start with every one of k > m coordinates non-zero (the Newton system is
    singular until the code is sparse) the kernel reaches the lasso solution, which has at
    most m non-zeros, as from zero."""
    B, x = make_problem(6, 20, seed=42)[:2]
    rng = np.random.default_rng(42)
    w0 = rng.uniform(0.1, 1.0, 20) * (1.0 if positive else rng.choice([-1.0, 1.0], 20))
    w, n_sweeps, viol = _cd(x, B, 0.05, 0.0, positive, 1e-12, w0=w0)
    assert viol <= 1e-12 and n_sweeps > 0
    w_cold, _, _ = _cd(x, B, 0.05, 0.0, positive, 1e-12)
    npt.assert_allclose(w, w_cold, atol=1e-10)
    npt.assert_allclose(w, _sk_lasso(x, B, 0.05, positive), atol=1e-7)
    assert np.sum(w != 0) <= 6


@pytest.mark.parametrize("m,k", [(30, 120), (10, 200)], ids=["m30k120", "m10k200"])
@positives
@pytest.mark.parametrize("lam", [0.01, 0.03])
def test_enet_cd_working_set_sklearn(m, k, positive, lam):
    """k >> m and small lam: the working set grows over several outer iterations (and at
    (10, 200) from a dense start fills up and drops its zeros); codes agree with
    scikit-learn from zero and from the dense start."""
    B = make_problem(m, k, seed=43)[0]
    rng = np.random.default_rng(43)
    for x in make_X(B, rng, 2):
        ref = _sk_lasso(x, B, lam, positive)
        w0 = rng.standard_normal(k) * (rng.random(k) < 0.5)
        if positive:
            w0 = np.abs(w0)
        for start in (None, w0):
            w, _, viol = _cd(x, B, lam, 0.0, positive, 1e-12 * lam, max_iter=100_000, w0=start)
            assert viol <= 1e-12 * lam
            assert np.max(np.abs(w - ref)) <= 1e-6 * max(1.0, np.max(np.abs(ref)))


def test_enet_cd_beyond_working_set_capacity():
    """Codes with more non-zeros than the working set holds (min(k, max(2m, 128)) atoms)
    fall back to plain coordinate descent on B and still meet tol: a non-negative L2 code
    with k >> m (about half the atoms non-zero), and an L1 code from a dense start."""
    m, k = 4, 300
    B, x = make_problem(m, k, seed=44)[:2]
    w, _, viol = _cd(x, B, 0.0, 0.1, True, 1e-10, max_iter=100_000)
    assert viol <= 1e-10 and np.sum(w > 0) > 128
    ref, _ = nnls(np.vstack([B, np.sqrt(0.1) * np.eye(k)]), np.concatenate([x, np.zeros(k)]))
    npt.assert_allclose(w, ref, rtol=0, atol=1e-8)
    w0 = np.abs(np.random.default_rng(44).standard_normal(k))
    w, _, viol = _cd(x, B, 0.05, 0.0, True, 1e-10, max_iter=100_000, w0=w0)
    assert viol <= 1e-10
    npt.assert_allclose(w, _sk_lasso(x, B, 0.05, True), atol=1e-7)


@positives
@penalties
def test_enet_cd_tol_near_rounding(positive, l1, l2):
    """A tol a hundred times float64's resolution of the gradient is reached well within
    max_iter: the restricted problem, once solved exactly by a Newton step, hands back to
    the exact optimality test instead of sweeping on rounding noise."""
    rng = np.random.default_rng(45)
    for _ in range(10):
        B = make_problem(6, 8, seed=int(rng.integers(1 << 30)))[0]
        x = make_X(B, rng, 1)[0]
        w, n_sweeps, viol = _cd(x, B, l1, l2, positive, 1e-14, max_iter=5000)
        assert viol <= 1e-14 and n_sweeps < 5000


# ---------------------------------------------------------------------------------------
# the Gram batch path (enet_gram_batch): B^T B and X B computed once per batch, the same
# working-set solver reading its Gram rows and gradients from them
# ---------------------------------------------------------------------------------------


def _batch(kernel, X, B, l1, l2, positive, tol, max_iter=10_000, W0=None, threads=None):
    """Codes of the rows of X by enet_cd_batch ("rows") or enet_gram_batch ("gram"; its
    rows shared as among ``threads`` threads, default numba's count)."""
    n, k = X.shape[0], B.shape[1]
    W = np.zeros((n, k)) if W0 is None else W0.copy()
    n_iter = np.zeros(n, dtype=np.int64)
    viol = np.zeros(n)
    if kernel == "gram":
        G = np.empty((k, k))
        lasso.gram(B, G)
        npt.assert_allclose(G, B.T @ B, rtol=0, atol=1e-13)
        lasso.enet_gram_batch(X, B, G, l1, l2, positive, tol, max_iter, W, n_iter, viol,
                              numba.get_num_threads() if threads is None else threads)
    else:
        lasso.enet_cd_batch(X, B, l1, l2, positive, tol, max_iter, W, n_iter, viol)
    return W, n_iter, viol


def _with_zero_row(B, seed, n=4):
    X = make_X(B, np.random.default_rng(seed), n)
    X[1] = 0.0
    return X


def test_enet_gram_batch_naive_tiny():
    """The Gram path reaches the twin's point (to tol 1e-10) for L1, L2 and elastic-net
    codes, w >= 0 and signed, with a zero atom, a zero row and a warm start."""
    B, _ = make_problem(*TINY, seed=24)[:2]
    B = B.copy()
    B[:, 4] = 0.0
    X = _with_zero_row(B, 24)
    for l1, l2 in PENALTIES:
        for positive in (True, False):
            tol = 1e-10
            W, n_iter, viol = _batch("gram", X, B, l1, l2, positive, tol)
            assert np.all(viol <= tol) and n_iter[1] == 0
            npt.assert_array_equal(W[1], 0.0)
            assert np.all(W[:, 4] == 0.0)
            for x, w in zip(X, W):
                # the zero atom's code is 0: the twin solves on the others
                ref, _ = naive.enet_cd(x, np.delete(B, 4, axis=1), l1, l2, positive, 1e-13,
                                       100_000)
                npt.assert_allclose(np.delete(w, 4), ref, atol=1e-8)
                assert naive.enet_violation(x, B, l1, l2, positive, w) <= tol + 1e-14
            W2, n2, viol2 = _batch("gram", X, B, l1, l2, positive, tol, W0=W)  # warm start
            assert np.all(n2 == 0) and np.all(viol2 <= tol)
            npt.assert_array_equal(W2, W)


@shapes
@positives
@penalties
def test_enet_gram_batch_matches_rows(shape, positive, l1, l2):
    """Gram path and per-row path (k > m and k < m; a row of zeros) stop on the same
    violation measure: both meet tol, the Gram path's reported violation is the exact one
    of its codes up to rounding, and the codes agree."""
    B, _ = _problem(shape)
    X = _with_zero_row(B, 5)
    tol = 1e-12
    Wg, ng, vg = _batch("gram", X, B, l1, l2, positive, tol)
    Wr, nr, vr = _batch("rows", X, B, l1, l2, positive, tol)
    assert np.all(vg <= tol) and np.all(vr <= tol)
    assert ng[1] == nr[1] == 0
    npt.assert_array_equal(Wg[1], 0.0)
    for x, w, v in zip(X, Wg, vg):
        exact = naive.enet_violation(x, B, l1, l2, positive, w)
        assert exact <= tol + 1e-14 and abs(exact - v) <= 1e-14
    npt.assert_allclose(Wg, Wr, rtol=0, atol=1e-10)
    if positive:
        assert np.all(Wg >= 0)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@positives
@penalties
def test_enet_gram_batch_references(shape, positive, l1, l2):
    """Against scikit-learn's Lasso (L1) and ElasticNet, scipy's nnls (w >= 0 L2) and the
    closed form (signed L2), at the default tol 1e-6 * lam and near exact (1e-12 * lam):
    the default tol leaves about 1e-6 relative, as for the per-row path."""
    B, _ = _problem(shape)
    m, k = B.shape
    X = make_X(B, np.random.default_rng(6), 3)
    lam = l1 + l2
    if l2 == 0.0:
        refs = [_sk_lasso(x, B, l1, positive) for x in X]
    elif l1 == 0.0 and positive:
        A = np.vstack([B, np.sqrt(l2) * np.eye(k)])
        refs = [nnls(A, np.concatenate([x, np.zeros(k)]))[0] for x in X]
    elif l1 == 0.0:
        refs = list(naive.ridge(X, B, l2))
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SkConvergenceWarning)
            refs = [ElasticNet(alpha=lam / m, l1_ratio=l1 / lam, fit_intercept=False,
                               positive=positive, tol=1e-14, max_iter=1_000_000)
                    .fit(B, x).coef_ for x in X]
    for tol, bound in ((1e-12 * lam, 1e-8), (1e-6 * lam, 2e-5)):
        W, _, viol = _batch("gram", X, B, l1, l2, positive, tol)
        assert np.all(viol <= tol)
        for w, ref in zip(W, refs):
            assert np.max(np.abs(w - ref)) <= bound * max(1.0, np.max(np.abs(ref)))


def test_enet_gram_batch_blocks():
    """Several blocks of rows of X and of the Gram matrix (n > CORR_BLOCK, k > GRAM_BLOCK,
    neither a multiple of it), on 1 and 2 threads and with the rows cut for 1 to 7 threads
    (runs of unequal lengths, some of several blocks) or for more threads than rows (empty
    runs): the blocked B^T B is the BLAS product to rounding, and every row's code is the
    per-row path's."""
    m, k, n = 10, 2 * lasso.GRAM_BLOCK + 7, 2 * lasso.CORR_BLOCK + 5
    B = make_problem(m, k, seed=47)[0]
    X = make_X(B, np.random.default_rng(47), n)
    Wr, _, _ = _batch("rows", X, B, 0.05, 0.0, True, 1e-12)
    old = numba.get_num_threads()
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            for cut_for in (None, 1, 3, 7):
                Wg, ng, vg = _batch("gram", X, B, 0.05, 0.0, True, 1e-12, threads=cut_for)
                assert np.all(vg <= 1e-12) and np.all(ng > 0)
                npt.assert_allclose(Wg, Wr, rtol=0, atol=1e-10)
            Wg, ng, vg = _batch("gram", X[:3], B, 0.05, 0.0, True, 1e-12, threads=5)
            assert np.all(vg <= 1e-12) and np.all(ng > 0)
            npt.assert_allclose(Wg, Wr[:3], rtol=0, atol=1e-10)
    finally:
        numba.set_num_threads(old)


@positives
def test_enet_gram_batch_duplicate_atoms(positive):
    """Every atom twice (a singular Gram matrix): the Gram path's codes have the objective,
    fit and pair sums of the lasso on the distinct atoms, as the per-row path's do."""
    B0 = make_problem(8, 6, seed=41)[0]
    B = np.ascontiguousarray(np.hstack([B0, B0]))
    X = make_X(B, np.random.default_rng(41), 3)
    W, _, viol = _batch("gram", X, B, 0.05, 0.0, positive, 1e-10)
    assert np.all(viol <= 1e-10)
    for x, w in zip(X, W):
        ref = _sk_lasso(x, B0, 0.05, positive)
        npt.assert_allclose(w[:6] + w[6:], ref, atol=1e-8)
        npt.assert_allclose(B @ w, B0 @ ref, atol=1e-8)
        assert naive.enet_objective(x, B, 0.05, 0.0, w) == pytest.approx(
            naive.enet_objective(x, B0, 0.05, 0.0, ref), abs=1e-12)
        assert np.all(w[:6] * w[6:] >= 0)


def test_enet_gram_batch_beyond_working_set_capacity():
    """Codes with more non-zeros than the working set holds fall back to plain coordinate
    descent on B (from the residual the Gram path never kept): a w >= 0 L2 code with k >> m
    and L1 codes from a dense warm start reach their references."""
    m, k = 4, 300
    B, _ = make_problem(m, k, seed=44)[:2]
    X = make_X(B, np.random.default_rng(44), 2)
    W, _, viol = _batch("gram", X, B, 0.0, 0.1, True, 1e-10, max_iter=100_000)
    assert np.all(viol <= 1e-10) and np.all(np.sum(W > 0, axis=1) > 128)
    A = np.vstack([B, np.sqrt(0.1) * np.eye(k)])
    for x, w in zip(X, W):
        npt.assert_allclose(w, nnls(A, np.concatenate([x, np.zeros(k)]))[0], rtol=0, atol=1e-8)
    W0 = np.abs(np.random.default_rng(45).standard_normal((2, k)))
    W, _, viol = _batch("gram", X, B, 0.05, 0.0, True, 1e-10, max_iter=100_000, W0=W0)
    assert np.all(viol <= 1e-10)
    for x, w in zip(X, W):
        npt.assert_allclose(w, _sk_lasso(x, B, 0.05, True), atol=1e-7)


def test_encode_dispatches_to_gram_batch(monkeypatch):
    """``encode`` runs a batch of L1/L2 codes through the Gram path when ``use_gram(n, k)``
    (k <= GRAM_MAX_K and n >= max(GRAM_MIN_ROWS, k / GRAM_K_PER_ROW)), else row by row
    (a single row runs ``enet_cd`` in the calling thread); both paths give the same codes,
    also in float32. The spies wrap the batch drivers only: numba resolves ``enet_cd``
    inside them at compile time."""
    import streamsc
    from streamsc import _solvers as coding  # the solvers' thresholds live there

    assert coding.use_gram(64, 40) and coding.use_gram(64, 1024)
    assert not coding.use_gram(63, 40) and not coding.use_gram(64, 1025)
    assert coding.use_gram(256, 4096) and not coding.use_gram(10**6, 4097)
    calls = []
    for name in ("enet_gram_batch", "enet_cd_batch"):
        def spy(*args, _name=name, _fn=getattr(lasso, name)):
            calls.append(_name)
            return _fn(*args)
        monkeypatch.setattr(lasso, name, spy)
    B = make_problem(12, 40, seed=46)[0]
    X = make_X(B, np.random.default_rng(46), 64)
    for signed in (False, True):
        for prior in ("l1", "l2"):
            if prior == "l2" and signed:
                continue  # closed form
            kw = dict(prior=prior, lam=0.05, signed=signed, tol=1e-12 * 0.05)
            calls.clear()
            W = streamsc.encode(X, B, **kw)
            W_rows = streamsc.encode(X[:63], B, **kw)
            w_one = streamsc.encode(X[5], B, **kw)
            assert calls == ["enet_gram_batch", "enet_cd_batch"]
            npt.assert_allclose(W[:63], W_rows, rtol=0, atol=1e-10)
            npt.assert_allclose(W[5], w_one, rtol=0, atol=1e-10)
            calls.clear()
            W32 = streamsc.encode(X, B, dtype=np.float32, **kw)
            W32_rows = np.vstack([streamsc.encode(X[:32], B, dtype=np.float32, **kw),
                                  streamsc.encode(X[32:], B, dtype=np.float32, **kw)])
            assert calls == ["enet_gram_batch", "enet_cd_batch", "enet_cd_batch"]
            assert W32.dtype == np.float32
            npt.assert_allclose(W32, W32_rows, rtol=0, atol=1e-6 * np.abs(W).max())
            assert np.abs(W32 - W).max() <= 2e-5 * np.abs(W).max()
    monkeypatch.setattr(coding, "GRAM_MAX_K", 39)
    calls.clear()
    streamsc.encode(X, B, prior="l1", lam=0.05)
    assert calls == ["enet_cd_batch"]
