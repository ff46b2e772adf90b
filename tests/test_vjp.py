"""``encode_vjp``: the implicit gradients of the codes against central finite differences of
``encode``, against the dense k x k twins in ``naive.py``, between its own solvers and its
batch and single-example paths; and its argument checks.

Tests whose name contains ``naive`` and whose id contains ``tiny`` are cheap enough for a
``NUMBA_DISABLE_JIT=1`` run.
"""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import naive
import streamsc
from conftest import SHAPE_IDS, SHAPES, TINY, make_basis, make_problem, make_x, rel_err
from streamsc._kernels import vjp as K

ALL_SHAPES = SHAPES + [TINY]
ALL_IDS = SHAPE_IDS + ["tiny"]
LAM = 0.1
#: codes for finite differences are solved to this tolerance (relative to lam)
TIGHT = 1e-13
#: finite-difference step (directions have unit Frobenius norm)
EPS = 1e-6

shapes = pytest.mark.parametrize("shape", ALL_SHAPES, ids=ALL_IDS)
priors = pytest.mark.parametrize("prior", ["kl", "l1", "l2"])
signs = pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])


def _encode(x, B, prior, signed, lam=LAM, **kw):
    """A code solved to TIGHT * lam; a solver that stops short would make the finite
    differences meaningless, so its warning is an error here."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", streamsc.ConvergenceWarning)
        return streamsc.encode(x, B, prior=prior, lam=lam, signed=signed, tol=TIGHT * lam, **kw)


def _kink_margin(x, B, w, prior, lam, signed):
    """How far an L1 / non-negative L2 code is from a change of its active set: the smallest
    active |w_j| and the smallest slack of an inactive atom's optimality condition. Infinite
    for KL and signed L2, which have no kinks."""
    if prior == "kl" or (prior == "l2" and signed):
        return np.inf
    c = B.T @ (x - B @ w)  # at the optimum: lam * sign(w_j) (L1) or lam * w_j (L2) on A
    active = w != 0
    if prior == "l1":
        slack = lam - (np.abs(c) if signed else c)
    else:
        slack = -c
    margins = [np.abs(w[active]).min() if active.any() else np.inf]
    if (~active).any():
        margins.append(slack[~active].min())
    return float(min(margins))


def _smooth_problem(shape, prior, signed, margin=1e-3):
    """(B, x, p, w): a problem whose code is at least ``margin`` away from every kink, so
    that the finite differences below never cross one (L1 / non-negative L2)."""
    m, k = shape
    for seed in range(50):
        B, x, p = make_problem(m, k, seed=1000 * m + k + seed)
        w = _encode(x, B, prior, signed)
        if _kink_margin(x, B, w, prior, LAM, signed) > margin:
            return B, x, p, w
    raise AssertionError("no problem away from the kinks in 50 seeds")


def _state_halves(x, B, signed):
    """Signed KL: the solver's own (w+, w-)."""
    if not signed:
        return None
    _, halves = _encode(x, B, "kl", True, return_halves=True)
    return halves


# ---------------------------------------------------------------------------------------
# finite differences of encode
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@priors
@signs
def test_vjp_matches_finite_differences(shape, prior, signed):
    """<grad_B, dB>, <grad_x, dx> and grad_lam against central differences of
    L = grad_w . encode(x, B, lam) along random unit directions (relative error <= 1e-5)."""
    B, x, p, w = _smooth_problem(shape, prior, signed)
    m, k = B.shape
    rng = np.random.default_rng(m * k)
    g = rng.standard_normal(k)
    grad_B, grad_x, grad_lam = streamsc.encode_vjp(
        x, B, w, g, prior=prior, lam=LAM, signed=signed, return_grad_lam=True,
        halves=_state_halves(x, B, signed) if prior == "kl" else None,
    )
    assert grad_B.shape == (m, k) and grad_x.shape == (m,)

    def loss(xx, BB, lam=LAM):
        return float(g @ _encode(xx, BB, prior, signed, lam=lam))

    analytic, numeric = [], []
    for _ in range(3):
        dB = rng.standard_normal((m, k))
        dB /= np.linalg.norm(dB)
        analytic.append(float(np.sum(grad_B * dB)))
        numeric.append((loss(x, B + EPS * dB) - loss(x, B - EPS * dB)) / (2 * EPS))
    assert rel_err(analytic, numeric) <= 1e-5

    analytic, numeric = [], []
    for _ in range(2):
        dx = rng.standard_normal(m)
        dx /= np.linalg.norm(dx)
        analytic.append(float(grad_x @ dx))
        numeric.append((loss(x + EPS * dx, B) - loss(x - EPS * dx, B)) / (2 * EPS))
    assert rel_err(analytic, numeric) <= 1e-5

    h = EPS * LAM
    numeric_lam = (loss(x, B, LAM + h) - loss(x, B, LAM - h)) / (2 * h)
    assert abs(grad_lam - numeric_lam) <= 1e-5 * max(abs(numeric_lam), 1e-3 * np.abs(g).max())


@st.composite
def vjp_problems(draw):
    """Random well-posed KL problems (KL codes have no kinks, so finite differences hold
    everywhere): m in 2..6, k in 2..8, atoms of norm >= 0.1, lam in [0.05, 1]."""
    m = draw(st.integers(2, 6))
    k = draw(st.integers(2, 8))
    B = draw(arrays(np.float64, (m, k), elements=st.floats(-1, 1, allow_nan=False, width=64)))
    B = np.where(np.linalg.norm(B, axis=0) < 0.1, np.eye(m, k) + 0.1, B)
    x = draw(arrays(np.float64, (m,), elements=st.floats(-2, 2, allow_nan=False, width=64)))
    g = draw(arrays(np.float64, (k,), elements=st.floats(-1, 1, allow_nan=False, width=64)))
    lam = draw(st.floats(0.05, 1.0))
    return np.ascontiguousarray(B), x, g, lam, draw(st.booleans()), draw(st.integers(0, 2**31))


@settings(max_examples=40, deadline=None, derandomize=True)
@given(vjp_problems())
def test_vjp_matches_finite_differences_on_random_problems(problem):
    """Property: for any such problem, <grad_B, dB> and <grad_x, dx> match central
    differences of g . encode(x, B) along a random direction, to 3e-5 relative to the
    scale of the directional derivatives. (Central differences of codes solved to a
    gradient tolerance of 1e-12 with a step of 1e-6 carry errors near 1e-5 of that scale
    on degenerate draws -- identical atoms, a code at the prior mean -- so 1e-5 failed on
    such a draw; derandomized so CI checks the same draws every run.)"""
    B, x, g, lam, signed, seed = problem
    m, k = B.shape

    def code(xx, BB, **kw):  # Newton reaches 1e-12 on every drawn problem (EGD can stall)
        with warnings.catch_warnings():
            warnings.simplefilter("error", streamsc.ConvergenceWarning)
            return streamsc.encode(xx, BB, prior="kl", lam=lam, signed=signed, tol=1e-12,
                                   solver="newton", **kw)

    w, halves = code(x, B, return_halves=True) if signed else (code(x, B), None)
    grad_B, grad_x = streamsc.encode_vjp(x, B, w, g, prior="kl", lam=lam, signed=signed,
                                         halves=halves)
    rng = np.random.default_rng(seed)
    dB = rng.standard_normal((m, k))
    dB /= np.linalg.norm(dB)
    dx = rng.standard_normal(m)
    dx /= np.linalg.norm(dx)

    def loss(xx, BB):
        return float(g @ code(xx, BB))

    num_B = (loss(x, B + EPS * dB) - loss(x, B - EPS * dB)) / (2 * EPS)
    num_x = (loss(x + EPS * dx, B) - loss(x - EPS * dx, B)) / (2 * EPS)
    scale = max(np.abs(grad_B).max(), np.abs(grad_x).max(), 1e-3)
    assert abs(float(np.sum(grad_B * dB)) - num_B) <= 3e-5 * scale
    assert abs(float(grad_x @ dx) - num_x) <= 3e-5 * scale


# ---------------------------------------------------------------------------------------
# dense twins
# ---------------------------------------------------------------------------------------


@shapes
@signs
@pytest.mark.parametrize("method", ["direct", "cg"])
def test_kl_vjp_naive(shape, signed, method):
    """KL: against the dense k x k (2k x 2k on [B, -B] when signed) Hessian solve."""
    m, k = shape
    B, x, p = make_problem(m, k, seed=1000 * m + k)
    w = _encode(x, B, "kl", signed)
    halves = _state_halves(x, B, signed)
    g = np.random.default_rng(k).standard_normal(k)
    got = streamsc.encode_vjp(x, B, w, g, lam=LAM, signed=signed, halves=halves,
                              return_grad_lam=True, method=method)
    want = naive.naive_kl_vjp(x, B, w, g, LAM, p, signed, halves)
    for a, b in zip(got, want):
        assert rel_err(a, b) <= 1e-9


@shapes
@pytest.mark.parametrize("prior", ["l1", "l2"])
@signs
def test_enet_vjp_naive(shape, prior, signed):
    """L1 / L2: against the dense active-set solve."""
    B, x, p, w = _smooth_problem(shape, prior, signed)
    g = np.random.default_rng(B.shape[1]).standard_normal(B.shape[1])
    got = streamsc.encode_vjp(x, B, w, g, prior=prior, lam=LAM, signed=signed,
                              return_grad_lam=True)
    want = naive.naive_enet_vjp(x, B, w, g, prior, LAM, signed)
    for a, b in zip(got, want):
        assert rel_err(a, b) <= 1e-9


def test_vjp_naive_far_from_optimum_tiny():
    """The kernel differentiates the optimality conditions at whatever state it is given:
    for an arbitrary positive w (not a code) it still equals the dense formula."""
    m, k = TINY
    rng = np.random.default_rng(3)
    B = make_basis(m, k, rng)
    x = rng.standard_normal(m)
    p = np.full(k, 1.0 / k)
    for signed in (False, True):
        w = rng.uniform(0.05, 2.0, size=k)
        halves = (w + 0.3, np.full(k, 0.3)) if signed else None
        g = rng.standard_normal(k)
        got = streamsc.encode_vjp(x, B, w, g, lam=LAM, signed=signed, halves=halves,
                                  return_grad_lam=True)
        want = naive.naive_kl_vjp(x, B, w, g, LAM, p, signed, halves)
        for a, b in zip(got, want):
            assert rel_err(a, b) <= 1e-10


# ---------------------------------------------------------------------------------------
# solvers, batch, halves
# ---------------------------------------------------------------------------------------


@signs
def test_cg_runs_and_matches_direct(signed):
    """k > m: the CG kernel converges (no fallback) and agrees with the direct m x m solve,
    also at a small lam where the preconditioner keeps the most atoms."""
    m, k = 30, 120
    rng = np.random.default_rng(5)
    B = make_basis(m, k, rng)
    p = np.full(k, 1.0 / k)
    for lam in (0.1, 0.01):
        x = make_x(B, rng)
        if signed:
            _, (wp, wm) = streamsc.encode(x, B, lam=lam, signed=True, return_halves=True)
        else:
            wp, wm = streamsc.encode(x, B, lam=lam), np.empty(0)
        g = rng.standard_normal(k)
        out = {}
        for method in (K.DIRECT, K.CG):
            v, Bv = np.empty(k), np.empty(m)
            gl, n_cg = K.vjp_direction(B, K.KL, signed, lam, p, wp, wm, g, method, 1e-12,
                                       500, 0.1, 64, v, Bv)
            assert rel_err(Bv, B @ v) <= 1e-10
            out[method] = (v, gl, n_cg)
        assert out[K.DIRECT][2] == 0
        assert out[K.CG][2] > 0  # CG ran and converged (-1 would mean the fallback)
        assert rel_err(out[K.CG][0], out[K.DIRECT][0]) <= 1e-9
        assert abs(out[K.CG][1] - out[K.DIRECT][1]) <= 1e-9 * abs(out[K.DIRECT][1])


@priors
@signs
def test_batch_is_the_sum_of_rows(prior, signed):
    """2-D input: grad_B and grad_lam summed over rows, grad_x one row per example,
    equal to the single-example results; with 1 and 2 threads."""
    m, k = 12, 40
    rng = np.random.default_rng(11)
    B = make_basis(m, k, rng)
    X = np.array([make_x(B, rng) for _ in range(5)])
    W = streamsc.encode(X, B, prior=prior, lam=LAM, signed=signed)
    G = rng.standard_normal(W.shape)
    rows = [streamsc.encode_vjp(X[i], B, W[i], G[i], prior=prior, lam=LAM, signed=signed,
                                return_grad_lam=True) for i in range(len(X))]
    for n_threads in (1, 2):
        gB, gX, gl = streamsc.encode_vjp(X, B, W, G, prior=prior, lam=LAM, signed=signed,
                                         return_grad_lam=True, n_threads=n_threads)
        assert gB.shape == (m, k) and gX.shape == X.shape
        assert rel_err(gB, sum(r[0] for r in rows)) <= 1e-12
        assert rel_err(gX, np.array([r[1] for r in rows])) <= 1e-12
        assert abs(gl - sum(r[2] for r in rows)) <= 1e-12 * sum(abs(r[2]) for r in rows)


def test_signed_halves_default_to_the_optimal_split():
    """Without halves, a signed KL code is split with w+ w- = p^2, which the solver's own
    state satisfies: both give the same gradients."""
    B, x, p = make_problem(12, 40, seed=2)
    w, halves = _encode(x, B, "kl", True, return_halves=True)
    g = np.random.default_rng(0).standard_normal(40)
    a = streamsc.encode_vjp(x, B, w, g, signed=True, halves=halves, return_grad_lam=True)
    b = streamsc.encode_vjp(x, B, w, g, signed=True, return_grad_lam=True)
    for u, t in zip(a, b):
        assert rel_err(u, t) <= 1e-9


def test_gradient_lowers_the_loss():
    """A small step against grad_B lowers a supervised loss on the code (the use case)."""
    B, x, p = make_problem(12, 40, seed=4)
    target = np.zeros(40)
    target[:5] = 0.2

    def loss(BB):
        w = _encode(x, BB, "kl", False)
        return 0.5 * float(np.sum((w - target) ** 2)), w

    f0, w = loss(B)
    grad_B, _ = streamsc.encode_vjp(x, B, w, w - target, lam=LAM)
    f1, _ = loss(B - 1e-2 * grad_B / np.linalg.norm(grad_B))
    assert f1 < f0


# ---------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------


@pytest.fixture
def small():
    B, x, p = make_problem(6, 8, seed=1)
    w = streamsc.encode(x, B, lam=LAM)
    return x, B, w, np.ones(8)


def test_bad_shapes(small):
    x, B, w, g = small
    with pytest.raises(ValueError, match=r"^w must have shape \(8,\)"):
        streamsc.encode_vjp(x, B, np.append(w, 1.0), g)
    with pytest.raises(ValueError, match="^grad_w must have the shape of w"):
        streamsc.encode_vjp(x, B, w, g[:-1])
    with pytest.raises(ValueError, match="^x has 5 features but the basis B has 6 rows"):
        streamsc.encode_vjp(x[:-1], B, w, g)
    with pytest.raises(ValueError, match=r"^w must have shape \(3, 8\)"):
        streamsc.encode_vjp(np.tile(x, (3, 1)), B, w, g)
    with pytest.raises(ValueError, match="^halves\\[1\\] must have the shape of w"):
        streamsc.encode_vjp(x, B, w, g, signed=True, halves=(w + 1.0, np.ones(3)))


def test_bad_values(small):
    x, B, w, g = small
    bad = g.copy()
    bad[2] = np.nan
    with pytest.raises(ValueError, match="^grad_w contains NaN"):
        streamsc.encode_vjp(x, B, w, bad)
    for value in (0.0, -1e-3):
        w0 = w.copy()
        w0[1] = value
        with pytest.raises(ValueError, match="^w must be > 0 for unsigned KL"):
            streamsc.encode_vjp(x, B, w0, g)
    with pytest.raises(ValueError, match="^w must be >= 0 for unsigned l1"):
        streamsc.encode_vjp(x, B, -w, g, prior="l1")
    with pytest.raises(ValueError, match="^halves is only used with prior='kl' and signed=True"):
        streamsc.encode_vjp(x, B, w, g, halves=(w, w))
    with pytest.raises(ValueError, match="^halves do not match w"):
        streamsc.encode_vjp(x, B, w, g, signed=True, halves=(w + 2.0, np.ones(8)))
    with pytest.raises(ValueError, match="^halves\\[0\\] must be > 0"):
        streamsc.encode_vjp(x, B, w, g, signed=True, halves=(w - 1.0, -np.ones(8)))
    with pytest.raises(ValueError, match="^method must be one of"):
        streamsc.encode_vjp(x, B, w, g, method="lu")
    with pytest.raises(ValueError, match="^lam must be > 0"):
        streamsc.encode_vjp(x, B, w, g, lam=0.0)
    with pytest.raises(TypeError, match="^return_grad_lam must be a bool"):
        streamsc.encode_vjp(x, B, w, g, return_grad_lam=1)


def test_l1_code_that_is_not_differentiable(small):
    x, B, w, g = small
    with pytest.raises(ValueError, match="^w has 8 non-zero coefficients .* only 6 rows"):
        streamsc.encode_vjp(x, B, w, g, prior="l1")
    B2 = B.copy()
    B2[:, 1] = B2[:, 0]  # two identical active atoms
    w2 = np.zeros(8)
    w2[:2] = 0.5
    with pytest.raises(ValueError, match="^the active atoms of row 0 of w are linearly dependent"):
        streamsc.encode_vjp(x, B2, w2, g, prior="l1")


def test_inputs_are_not_modified(small):
    x, B, w, g = small
    copies = [a.copy() for a in (x, B, w, g)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        streamsc.encode_vjp(x, B, w, g, return_grad_lam=True)
    for a, c in zip((x, B, w, g), copies):
        np.testing.assert_array_equal(a, c)
