"""``unrolled_vjp``: gradients through T unrolled solver iterations (PUDLE).

Checked against central finite differences of their own objective (the step held fixed),
against a NumPy twin of the forward pass, and, as T grows, against the exact code of
``encode`` and the implicit gradient of ``encode_vjp``; plus the batch path, the automatic KL
step, the estimators' per-example entry point, the power iteration and argument checks.
"""

import warnings

import numpy as np
import pytest

import streamsc
from conftest import make_basis, make_x, rel_err
from streamsc._kernels import unrolled as K
from streamsc.unrolled import initial_step, unrolled_gradient, unrolled_vjp

LAM = 0.1
#: finite-difference step (directions have unit norm)
EPS = 1e-6
#: relative error allowed between the unrolled gradient and central differences of its own
#: objective (measured: at most 9.3e-10 over every case below)
FD_RTOL = 1e-7
#: unrolled vs implicit gradient, and w_T vs encode, at the largest T (measured: at most
#: 4.5e-14 and 1.1e-14); errors below FLOOR count as converged when checking that the
#: error falls with T
IMPLICIT_RTOL = 1e-10
FLOOR = 1e-12
T_GRID = (10, 100, 1000, 3000)
SHAPES = [(6, 9), (12, 20)]
SHAPE_IDS = ["m6k9", "m12k20"]

shapes = pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
priors = pytest.mark.parametrize("prior", ["kl", "l1", "l2"])
signs = pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])


def _problem(shape, seed=0):
    m, k = shape
    rng = np.random.default_rng(1000 * m + k + seed)
    B = make_basis(m, k, rng)
    x = make_x(B, rng)
    g = rng.standard_normal(k)
    return B, x, g, rng


def _encode(x, B, prior, signed):
    with warnings.catch_warnings():
        warnings.simplefilter("error", streamsc.ConvergenceWarning)
        return streamsc.encode(x, B, prior=prior, lam=LAM, signed=signed, tol=1e-13 * LAM)


def _kink_margin(x, B, w, prior, signed):
    """Distance of an L1 code from a change of its support (smallest active |w_j| and
    smallest slack of an inactive atom's optimality condition)."""
    c = B.T @ (x - B @ w)
    active = w != 0
    slack = LAM - (np.abs(c) if signed else c)
    return min(np.abs(w[active]).min(initial=np.inf), slack[~active].min(initial=np.inf))


# ---------------------------------------------------------------------------------------
# finite differences of the unrolled objective
# ---------------------------------------------------------------------------------------


@shapes
@priors
@signs
@pytest.mark.parametrize("objective", ["vjp", "reconstruction"])
def test_matches_finite_differences(shape, prior, signed, objective):
    """<grad_B, dB> and <grad_x, dx> against central differences of
    phi = g . w_T + rho/2 ||x - B w_T||^2 (T = 15, the step held at the value used) along
    random unit directions: relative error <= FD_RTOL. ``vjp``: g random, rho = 0;
    ``reconstruction``: the PUDLE loss, g = 0, rho = 1."""
    B, x, g, rng = _problem(shape)
    m, k = B.shape
    gw, rho = (g, 0.0) if objective == "vjp" else (None, 1.0)
    kw = dict(prior=prior, lam=LAM, signed=signed, n_steps=15, reconstruction_weight=rho)
    w, grad_B, grad_x, step = unrolled_vjp(x, B, gw, return_step=True, **kw)
    assert grad_B.shape == (m, k) and grad_x.shape == (m,)

    def phi(xx, BB):
        wT = unrolled_vjp(xx, BB, gw, step=step, **kw)[0]
        return (0.0 if gw is None else gw @ wT) + rho * 0.5 * np.sum((xx - BB @ wT) ** 2)

    analytic, numeric = [], []
    for _ in range(3):
        dB = rng.standard_normal((m, k))
        dB /= np.linalg.norm(dB)
        analytic.append(np.sum(grad_B * dB))
        numeric.append((phi(x, B + EPS * dB) - phi(x, B - EPS * dB)) / (2 * EPS))
    for _ in range(2):
        dx = rng.standard_normal(m)
        dx /= np.linalg.norm(dx)
        analytic.append(grad_x @ dx)
        numeric.append((phi(x + EPS * dx, B) - phi(x - EPS * dx, B)) / (2 * EPS))
    assert rel_err(analytic, numeric) <= FD_RTOL


@pytest.mark.parametrize("prior", ["l1", "l2"])
@signs
def test_fista_matches_finite_differences(prior, signed):
    """The accelerated (FISTA) network: the same check, with both objectives at once."""
    B, x, g, rng = _problem((12, 20))
    m, k = B.shape
    kw = dict(prior=prior, lam=LAM, signed=signed, n_steps=25, accelerated=True,
              reconstruction_weight=0.5)
    _, grad_B, grad_x = unrolled_vjp(x, B, g, **kw)
    step = initial_step(B, prior=prior, lam=LAM, p=None, signed=signed)

    def phi(xx, BB):
        wT = unrolled_vjp(xx, BB, g, step=step, **kw)[0]
        return g @ wT + 0.25 * np.sum((xx - BB @ wT) ** 2)

    dB = rng.standard_normal((m, k))
    dB /= np.linalg.norm(dB)
    dx = rng.standard_normal(m)
    dx /= np.linalg.norm(dx)
    analytic = [np.sum(grad_B * dB), grad_x @ dx]
    numeric = [(phi(x, B + EPS * dB) - phi(x, B - EPS * dB)) / (2 * EPS),
               (phi(x + EPS * dx, B) - phi(x - EPS * dx, B)) / (2 * EPS)]
    assert rel_err(analytic, numeric) <= FD_RTOL


# ---------------------------------------------------------------------------------------
# the forward pass
# ---------------------------------------------------------------------------------------


def _naive_forward(x, B, prior, signed, lam, p, alpha, T, accelerated=False):
    """NumPy twin of ``unrolled_forward``: the final code."""
    k = B.shape[1]
    if prior == "kl":
        z = np.tile(p, 2 if signed else 1)
        for _ in range(T):
            c = z[:k] - z[k:] if signed else z
            s = B.T @ (B @ c - x)
            grad = np.concatenate([s, -s]) if signed else s
            z = z * np.exp(-alpha * (grad + lam * np.log(z / np.tile(p, z.size // k))))
        return z[:k] - z[k:] if signed else z
    w_prev = w = np.zeros(k)
    for t in range(T):
        beta = t / (t + 3.0) if accelerated else 0.0
        y = w + beta * (w - w_prev)
        u = y - alpha * B.T @ (B @ y - x)
        thr = alpha * lam if prior == "l1" else 0.0
        z = np.maximum(np.abs(u) - thr, 0.0) * np.sign(u) if signed else np.maximum(u - thr, 0.0)
        w_prev, w = w, z / (1.0 + alpha * lam) if prior == "l2" else z
    return w


@priors
@signs
def test_forward_matches_naive(prior, signed):
    """The kernel's w_T equals the NumPy loop's (1e-12 relative), ISTA and FISTA."""
    B, x, _, _ = _problem((6, 9))
    p = np.full(9, 1.0 / 9)
    for accelerated in ([False] if prior == "kl" else [False, True]):
        step = initial_step(B, prior=prior, lam=LAM, p=p, signed=signed)
        w = unrolled_vjp(x, B, prior=prior, lam=LAM, signed=signed, n_steps=40, step=step,
                         accelerated=accelerated)[0]
        want = _naive_forward(x, B, prior, signed, LAM, p, step, 40, accelerated)
        assert rel_err(w, want) <= 1e-12


@shapes
@priors
@signs
def test_forward_converges_to_encode(shape, prior, signed):
    """w_T -> encode's code: the error falls with T and is <= 1e-10 relative at T = 3000."""
    B, x, _, _ = _problem(shape)
    w_exact = _encode(x, B, prior, signed)
    errs = [rel_err(unrolled_vjp(x, B, prior=prior, lam=LAM, signed=signed, n_steps=T)[0],
                    w_exact) for T in T_GRID]
    assert all(b <= max(a, FLOOR) for a, b in zip(errs, errs[1:])), errs
    assert errs[0] > 1e-3  # T = 10 is far from converged: the check has teeth
    assert errs[-1] <= IMPLICIT_RTOL, errs


# ---------------------------------------------------------------------------------------
# convergence to the implicit gradient
# ---------------------------------------------------------------------------------------


def _implicit(x, B, w, g, prior, signed, objective):
    """encode_vjp's gradients of g . w (``vjp``) or of the reconstruction loss 1/2 ||x - B w||^2
    at the exact code (direct term plus encode_vjp with G = B^T (B w - x))."""
    if objective == "vjp":
        return streamsc.encode_vjp(x, B, w, g, prior=prior, lam=LAM, signed=signed)
    r = B @ w - x
    gB, gx = streamsc.encode_vjp(x, B, w, B.T @ r, prior=prior, lam=LAM, signed=signed)
    return gB + np.outer(r, w), gx - r


@shapes
@pytest.mark.parametrize("prior", ["kl", "l1"])
@signs
@pytest.mark.parametrize("objective", ["vjp", "reconstruction"])
def test_converges_to_implicit_gradient(shape, prior, signed, objective):
    """The unrolled grad_B and grad_x tend to encode_vjp's at the exact code as T grows
    (T = 10, 100, 1000, 3000): the error never grows (until it is below 1e-12) and is
    <= IMPLICIT_RTOL at T = 3000. L1 on data whose support is stable (kink margin >= 1e-3),
    the condition for the implicit gradient to exist and for ISTA's support to settle."""
    B, x, g, _ = _problem(shape)
    w_exact = _encode(x, B, prior, signed)
    if prior == "l1":
        assert _kink_margin(x, B, w_exact, prior, signed) >= 1e-3
    want_B, want_x = _implicit(x, B, w_exact, g, prior, signed, objective)
    gw, rho = (g, 0.0) if objective == "vjp" else (None, 1.0)
    errs = []
    for T in T_GRID:
        _, gB, gx = unrolled_vjp(x, B, gw, prior=prior, lam=LAM, signed=signed, n_steps=T,
                                 reconstruction_weight=rho)
        errs.append(max(rel_err(gB, want_B), rel_err(gx, want_x)))
    assert all(b <= max(a, FLOOR) for a, b in zip(errs, errs[1:])), errs
    assert errs[0] > 1e-2, errs
    assert errs[-1] <= IMPLICIT_RTOL, errs


@signs
def test_fista_converges_to_implicit_gradient(signed):
    """FISTA, L1: the same limit (T = 3000, <= IMPLICIT_RTOL). Its derivative converges
    no faster than ISTA's here (measured: 2e-6 vs 3e-8 at T = 300 unsigned, 8e-7 vs 2e-8 at
    T = 1000 signed): momentum speeds up the code more than its Jacobian."""
    B, x, g, _ = _problem((12, 20))
    w_exact = _encode(x, B, "l1", signed)
    want_B, _ = _implicit(x, B, w_exact, g, "l1", signed, "vjp")
    _, gB, _ = unrolled_vjp(x, B, g, prior="l1", lam=LAM, signed=signed, n_steps=3000,
                            accelerated=True)
    assert rel_err(gB, want_B) <= IMPLICIT_RTOL


# ---------------------------------------------------------------------------------------
# batches, steps, the estimators' entry point
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("prior", ["kl", "l1"])
@signs
def test_batch_is_the_sum_of_rows(prior, signed):
    """A batch of 7 rows (x scaled by 10, so that KL steps are halved differently per row):
    codes and grad_X equal the single-row results with the row's step, grad_B their sum;
    one thread and the default agree."""
    rng = np.random.default_rng(5)
    B = make_basis(12, 20, rng)
    X = 10.0 * np.array([make_x(B, rng) for _ in range(7)])
    G = rng.standard_normal((7, 20))
    kw = dict(prior=prior, lam=LAM, signed=signed, n_steps=30, reconstruction_weight=0.5)
    W, gB, gX, steps = unrolled_vjp(X, B, G, return_step=True, **kw)
    total = np.zeros_like(gB)
    for i in range(7):
        w, gb, gx = unrolled_vjp(X[i], B, G[i], step=float(steps[i]), **kw)
        assert rel_err(w, W[i]) <= 1e-13 and rel_err(gx, gX[i]) <= 1e-13
        total += gb
    assert rel_err(gB, total) <= 1e-13
    W1, gB1, gX1 = unrolled_vjp(X, B, G, n_threads=1, **kw)
    assert rel_err(gB1, gB) <= 1e-13 and rel_err(W1, W) <= 1e-13


def test_kl_step_is_halved_until_the_objective_falls():
    """For a large x the default KL step makes EGD's objective rise; it is halved until the
    objective falls at every iteration. The result is that of the returned step held fixed,
    and the first step tried is rejected by the kernel's check."""
    B, x, _, _ = _problem((12, 20))
    x = 30.0 * x
    p = np.full(20, 1.0 / 20)
    first = initial_step(B, prior="kl", lam=LAM, p=p, signed=False)
    w, gB, _, step = unrolled_vjp(x, B, prior="kl", lam=LAM, n_steps=50,
                                  reconstruction_weight=1.0, return_step=True)
    assert step < first and np.log2(first / step) == round(np.log2(first / step))
    traj = np.empty((51, 20))
    assert K.unrolled_forward(x, B, K.KL, False, LAM, p, first, False, True, traj) == K.ROSE
    assert K.unrolled_forward(x, B, K.KL, False, LAM, p, step, False, True, traj) == K.OK
    w2, gB2, _ = unrolled_vjp(x, B, prior="kl", lam=LAM, n_steps=50, reconstruction_weight=1.0,
                              step=step)
    assert np.array_equal(w, w2) and np.array_equal(gB, gB2)


def test_explicit_step_that_overflows_raises():
    B, x, _, _ = _problem((6, 9))
    with pytest.raises(FloatingPointError, match="step"):
        unrolled_vjp(x, B, prior="kl", n_steps=50, step=1e3)


@pytest.mark.parametrize("prior", ["kl", "l2"])
@signs
def test_per_example_gradient_matches_unrolled_vjp(prior, signed):
    """``unrolled_gradient`` (the estimators' entry point) overwrites grad_B with
    rho * (reconstruction gradient) + (VJP of the head's cotangent), calling a head on w_T."""
    B, x, g, _ = _problem((12, 20))
    k = 20
    p = np.full(k, 1.0 / k)
    step0 = initial_step(B, prior=prior, lam=LAM, p=p, signed=signed)
    traj = np.empty((13, 2 * k if prior == "kl" and signed else k))
    grad_B = np.full((12, k), 7.0)  # garbage: must be overwritten
    grad_x = np.full(12, 7.0)
    seen = []

    def head(w):
        seen.append(w.copy())
        return 0.3 * g

    code, step, loss = unrolled_gradient(
        B, x, grad_B, traj, prior=prior, lam=LAM, p=p, signed=signed, step=step0, adapt=True,
        grad_w=head, reconstruction_weight=0.7, grad_x=grad_x,
    )
    w, gB, gx = unrolled_vjp(x, B, 0.3 * g, prior=prior, lam=LAM, signed=signed, n_steps=12,
                             step=step, reconstruction_weight=0.7)
    assert np.array_equal(seen[0], code) and rel_err(code, w) <= 1e-14
    assert rel_err(grad_B, gB) <= 1e-13 and rel_err(grad_x, gx) <= 1e-13
    assert np.isclose(loss, 0.5 * np.sum((x - B @ w) ** 2), rtol=1e-12)


def test_spectral_norm_by_power_iteration():
    """``spectral_norm_sq`` from a cold start and warm-started from its own vector:
    ||B||_2^2 to 1e-8 relative, the warm start taking fewer iterations' worth of change."""
    rng = np.random.default_rng(2)
    B = make_basis(12, 20, rng)
    want = np.linalg.norm(B, 2) ** 2
    v = np.zeros(20)  # zero: replaced by ones
    L = K.spectral_norm_sq(B, v, 1000, 1e-12)
    assert abs(L - want) <= 1e-8 * want and L <= want * (1 + 1e-12)
    assert np.isclose(np.linalg.norm(v), 1.0)
    B2 = B + 1e-3 * rng.standard_normal(B.shape)  # a basis after a small step
    L2 = K.spectral_norm_sq(np.ascontiguousarray(B2), v, 20, 1e-12)
    assert abs(L2 - np.linalg.norm(B2, 2) ** 2) <= 1e-6 * L2


# ---------------------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(n_steps=0), ValueError, "n_steps"),
        (dict(n_steps=2.5), TypeError, "n_steps"),
        (dict(step=-0.1), ValueError, "step"),
        (dict(step=float("nan")), ValueError, "step"),
        (dict(lam=0.0), ValueError, "lam"),
        (dict(prior="l0"), ValueError, "prior"),
        (dict(loss="kl"), ValueError, "loss='kl'"),
        (dict(accelerated=True), ValueError, "accelerated"),
        (dict(reconstruction_weight=-1.0), ValueError, "reconstruction_weight"),
        (dict(signed=1), TypeError, "signed"),
        (dict(n_threads=0), ValueError, "n_threads"),
        (dict(p=-1.0), ValueError, "p"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    B, x, g, _ = _problem((6, 9))
    with pytest.raises(exc, match=match):
        unrolled_vjp(x, B, g, **kwargs)


def test_bad_arrays():
    B, x, g, _ = _problem((6, 9))
    with pytest.raises(ValueError, match="x has 5 features"):
        unrolled_vjp(x[:5], B, g)
    with pytest.raises(ValueError, match="grad_w must have shape"):
        unrolled_vjp(x, B, g[:5])
    with pytest.raises(ValueError, match="grad_w must have shape"):
        unrolled_vjp(np.tile(x, (3, 1)), B, g)
    bad = x.copy()
    bad[2] = np.nan
    with pytest.raises(ValueError, match="x contains NaN"):
        unrolled_vjp(bad, B, g)
    with pytest.raises(ValueError, match="grad_w contains NaN"):
        unrolled_vjp(x, B, np.full(9, np.inf))
    Bz = B.copy()
    Bz[:, 3] = 0.0
    with pytest.raises(ValueError, match="B has a zero column"):
        unrolled_vjp(x, Bz, g)
    with pytest.raises(ValueError, match="B must be 2-D"):
        unrolled_vjp(x, B[:, 0], g)


def test_inputs_are_not_modified():
    B, x, g, _ = _problem((6, 9))
    copies = [a.copy() for a in (B, x, g)]
    unrolled_vjp(x, B, g, reconstruction_weight=1.0)
    for a, c in zip((B, x, g), copies):
        assert np.array_equal(a, c)
