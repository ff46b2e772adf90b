"""Amortised encoder: a learned map from an example to (an approximation of) its sparse code.

The shape of the map is that of Fallah & Rozell (2022, variational sparse coding with
learned thresholding): a linear map of x followed by a shifted soft-threshold with a
learned per-atom threshold. For one example x (m,)::

    z = F^T x + c                          (F: m x k "filters", one column per atom; A = F^T)
    w = shrink(z, theta)                   (theta > 0 per atom)

with ``shrink`` chosen by the prior (``mode``):

* ``RELU`` (non-negative L1/L2 codes): ``w = max(z - theta, 0)``;
* ``SOFT`` (signed L1/L2 codes): ``w = sign(z) max(|z| - theta, 0)``;
* ``KL`` (non-negative KL codes): ``w = t W(exp((z - theta) / t))`` with ``W`` Lambert's W
  function and temperature ``t`` (the coder's lam). This is the proximal map of the KL
  prior, ``argmin_w 1/2 (w - z')^2 + t (w log(w/p) - w)`` at ``z' = z - theta + t log(t/p)``,
  so it is the KL analogue of the soft threshold: ``~ z - theta - t log((z - theta)/t)``
  above the threshold and ``~ t exp((z - theta)/t) > 0`` below it, where the exact KL code
  is pseudo-sparse (tiny but positive). With ``F = B``, ``c = 0`` and
  ``theta = t log(t/p)`` it is the exact KL code whenever B has orthonormal columns. Values
  are floored at the smallest normal float, so a prediction is always > 0 (the exact
  solvers' warm starts work in log space).
* ``KL_SIGNED`` (signed KL codes): the proximal map of the signed (arcsinh) KL prior with
  the same shift: the solution c of ``c + t asinh(kappa c) = z`` with
  ``kappa = exp(theta / t) / (2 t)`` (:func:`asinh_prox`). At ``theta = t log(t/p)``,
  ``kappa = 1 / (2p)`` and this is ``argmin_c 1/2 (c - z)^2 + t R(c)`` for the prior of
  signed KL codes (``R' = asinh(c / 2p)``, the expanded basis at its optimal split), so
  ``F = B``, ``c = 0`` is again exact for an orthonormal basis; it is odd in z, ``~ z/(1 +
  t kappa)`` near 0 and ``~ z - sign(z) (theta + t log(|z|/t))`` far from it.

Training is by regression on the exact codes: one normalised gradient step on
``1/2 ||w - w_exact||^2`` over ``(F, c, rho)`` with ``theta = softplus(rho)`` (:func:`update`).
The derivative of the hard thresholds is taken as 0 where the threshold is active (an
inactive atom gets no gradient). The step is normalised NLMS-style by ``||x||^2 + 2``, the
squared norm of the augmented input ``(x, 1, -1)`` that ``(F, c, theta)`` multiply, so one
step moves every pre-activation ``z_j - theta_j`` by at most ``learning_rate`` times that
atom's error, whatever the scale of the data.

Only ``theta`` is stored: the step on ``rho = softplus^{-1}(theta)`` is applied as
``theta <- softplus(rho - eta g_rho)`` (computed from theta directly), and atoms whose
threshold gradient is exactly 0 keep their theta bit for bit.

Examples observing a subset of the features (``full=False``) use the rows ``rows`` of F
only, and the step touches only those rows, as the online learner does with B.
"""

import numpy as np
from numba import njit, prange

from .._config import NJIT, NJIT_PARALLEL

#: shrink modes (the ``mode`` argument of every kernel here)
RELU = 0
SOFT = 1
KL = 2
KL_SIGNED = 3

#: smallest normal float64: unsigned KL predictions are floored here (always > 0)
FLOOR = 2.2250738585072014e-308


@njit(**NJIT)
def softplus(r):
    """log(1 + exp(r)), without overflow."""
    if r > 36.0:
        return r + np.exp(-r)
    if r < -36.0:
        return np.exp(r)
    return np.log1p(np.exp(r))


#: a Halley step below this (relative) leaves an error of order its cube: the iterations stop
_STEP_DONE = 1e-6


@njit(**NJIT)
def _halley_step(f, fp, fpp, scale):
    """Halley's step ``f / (f' - f f'' / (2 f'))`` for f' > 0 (written so it cannot
    overflow), or Newton's ``f / f'`` when Halley's correction would more than halve the
    denominator (far from the root, where it can point the wrong way). Returns the step
    and whether the iteration is done: a Halley step below ``_STEP_DONE * scale`` (cubic
    convergence leaves an error of order ``1e-18 * scale`` after it)."""
    den = fp - 0.5 * f * (fpp / fp)
    halley = den >= 0.5 * fp
    if not halley:
        den = fp
    du = f / den
    return du, halley and abs(du) <= _STEP_DONE * scale


@njit(**NJIT)
def lambert_exp(a):
    """W(exp(a)): the solution W > 0 of ``W + log W = a`` (Lambert's W of exp(a)), for any
    finite a without overflow. Halley's method on ``u = log W`` (``u + e^u = a``), from
    ``u = a - log1p(e^a)`` for a <= 1 and ``log(a - log a)`` above, until a Halley step is
    below 1e-6 (about 2 steps, :func:`_halley_step`; the result is then accurate to
    rounding, ~4e-15 relative).
    Below a = -36, W = exp(a) to rounding."""
    if a < -36.0:
        return np.exp(a)
    if a <= 1.0:
        u = a - np.log1p(np.exp(a))
    else:
        u = np.log(a - np.log(a))
    for _ in range(50):
        eu = np.exp(u)
        du, done = _halley_step(u + eu - a, 1.0 + eu, eu, max(1.0, abs(u)))
        u -= du
        if done:
            break
    return np.exp(u)


@njit(**NJIT)
def _sinh_cosh_over(u, lk, eik):
    """(sinh(u), cosh(u)) / exp(lk) for u >= 0, with ``eik = exp(-lk)``: from one expm1
    (accurate for small u) below u = 20, in log space above (no overflow)."""
    if u < 20.0:
        q = np.expm1(u)
        sh = q * (q + 2.0) / (2.0 * (q + 1.0))
        return sh * eik, (sh + 1.0 / (q + 1.0)) * eik
    ep = np.exp(u - lk)
    return 0.5 * ep, 0.5 * ep  # e^(-u - lk) is below ep's rounding


@njit(**NJIT)
def asinh_prox(z, theta, t):
    """The signed KL shrink: c solving ``c + t asinh(kappa c) = z``,
    ``kappa = exp(theta / t) / (2 t)``, with ``dc/dz`` and ``dc/dtheta``.

    Solved for ``u = asinh(kappa |c|)`` (``sinh(u) / kappa + t u = |z|``, convex and
    increasing in u >= 0) by Halley's method from the smaller of ``asinh(kappa |z|)`` and
    ``|z| / (1/kappa + t)``, both at or above the root, until a Halley step is below 1e-6
    relative (about 2 steps; :func:`_halley_step`). :func:`_sinh_cosh_over` keeps every
    term finite for any finite z; log kappa is capped at 700.

    Returns
    -------
    c: float, dc/dz: float, dc/dtheta: float
    """
    lk = min(theta / t - np.log(2.0 * t), 700.0)
    eik = np.exp(-lk)
    za = abs(z)
    if za == 0.0:
        return 0.0, eik / (eik + t), 0.0
    a = lk + np.log(za)
    # two upper bounds on the root (sinh u >= u, and sinh u >= 0): start from the smaller
    u = np.arcsinh(np.exp(a)) if a < 18.0 else a + np.log(2.0)
    u = min(u, za / (eik + t))
    for _ in range(50):
        sh, ch = _sinh_cosh_over(u, lk, eik)
        # relative to u: c ~ u / kappa when u is small
        du, done = _halley_step(sh + t * u - za, ch + t, sh, u)
        u -= du
        if done:
            break
    sh, ch = _sinh_cosh_over(u, lk, eik)
    s = 1.0 if z > 0.0 else -1.0
    return s * sh, ch / (ch + t), -s * sh / (ch + t)


@njit(**NJIT)
def shrink(z, theta, mode, temp, w, dz, dtheta):
    """w = shrink(z, theta) per atom (see the module docstring), with its derivatives
    ``dz = dw/dz`` and ``dtheta = dw/dtheta`` (0 where a hard threshold is active).

    Parameters
    ----------
    z: float64[k]  pre-activations
    theta: float64[k]  thresholds (> 0)
    mode: int  RELU, SOFT, KL or KL_SIGNED
    temp: float  temperature of the KL modes (> 0; unused otherwise)
    w, dz, dtheta: float64[k]  outputs (``w`` may be ``z`` itself; ``dz``/``dtheta`` of
        length 0 to skip the derivatives)
    """
    k = z.shape[0]
    grad = dz.shape[0] > 0
    for j in range(k):
        zj = z[j]
        th = theta[j]
        if mode == RELU:
            v = zj - th
            if v > 0.0:
                w[j] = v
                d = 1.0
            else:
                w[j] = 0.0
                d = 0.0
            if grad:
                dz[j] = d
                dtheta[j] = -d
        elif mode == SOFT:
            a = abs(zj) - th
            if a > 0.0:
                s = 1.0 if zj > 0.0 else -1.0
                w[j] = s * a
                if grad:
                    dz[j] = 1.0
                    dtheta[j] = -s
            else:
                w[j] = 0.0
                if grad:
                    dz[j] = 0.0
                    dtheta[j] = 0.0
        elif mode == KL:
            lw = lambert_exp((zj - th) / temp)
            w[j] = max(temp * lw, FLOOR)
            if grad:
                d = lw / (1.0 + lw)
                dz[j] = d
                dtheta[j] = -d
        else:
            v, dv, dt = asinh_prox(zj, th, temp)
            w[j] = v
            if grad:
                dz[j] = dv
                dtheta[j] = dt


@njit(**NJIT)
def _preactivation(F, c, x, rows, full, z):
    """z = F[rows]^T x + c (all rows when ``full``). Returns ||x||^2."""
    k = F.shape[1]
    for j in range(k):
        z[j] = c[j]
    sq = 0.0
    n = x.shape[0]
    for t in range(n):
        xt = x[t]
        sq += xt * xt
        if xt == 0.0:
            continue
        i = t if full else rows[t]
        for j in range(k):
            z[j] += xt * F[i, j]
    return sq


@njit(**NJIT)
def predict(F, c, theta, x, rows, full, mode, temp, w):
    """The predicted code of one example.

    Parameters
    ----------
    F: float64[m, k]  filters (the transpose of the encoder's linear map A)
    c: float64[k]  biases
    theta: float64[k]  thresholds (> 0)
    x: float64[n]  the example's values: every feature (n = m) when ``full``, else the
        values on ``rows``
    rows: int64[n]  the rows of F the example observes (ignored when ``full``)
    full: bool  x covers every row of F
    mode: int, temp: float  see :func:`shrink`
    w: float64[k]  output
    """
    _preactivation(F, c, x, rows, full, w)
    empty = np.empty(0)
    shrink(w, theta, mode, temp, w, empty, empty)


@njit(**NJIT_PARALLEL)
def shrink_batch(Z, theta, mode, temp):
    """Apply :func:`shrink` to every row of the pre-activations Z (n, k), in place (one row
    per thread)."""
    empty = np.empty(0)
    for i in prange(Z.shape[0]):
        shrink(Z[i], theta, mode, temp, Z[i], empty, empty)


@njit(**NJIT)
def update(F, c, theta, x, rows, full, target, mode, temp, eta, w):
    """One normalised gradient step of ``1/2 ||w(x) - target||^2`` on (F, c, rho), in place,
    with ``theta = softplus(rho)``.

    With ``e = w - target``, ``g_j = e_j dw_j/dz_j`` and ``h_j = e_j dw_j/dtheta_j``::

        F[i, j] -= eta g_j x_i / (||x||^2 + 2)     (observed rows i only)
        c_j     -= eta g_j / (||x||^2 + 2)
        rho_j   -= eta h_j sigmoid(rho_j) / (||x||^2 + 2)

    Nothing is changed if any step is not finite (an example too large to learn from).

    Parameters
    ----------
    F, c, theta, x, rows, full, mode, temp
        As in :func:`predict`; F, c and theta are updated in place.
    target: float64[k]  the exact code
    eta: float  learning rate (NLMS is stable for 0 < eta < 2)
    w: float64[k]  output: the prediction before the step

    Returns
    -------
    loss: float  ``1/2 ||w - target||^2`` before the step, or -1.0 if the step was not
        finite and nothing changed
    """
    k = F.shape[1]
    dz = np.empty(k)
    dth = np.empty(k)
    sq = _preactivation(F, c, x, rows, full, w)
    shrink(w, theta, mode, temp, w, dz, dth)
    step = eta / (sq + 2.0)
    loss = 0.0
    g = np.empty(k)
    new_theta = np.empty(k)
    ok = np.isfinite(step)
    for j in range(k):
        e = w[j] - target[j]
        loss += 0.5 * e * e
        g[j] = step * e * dz[j]
        h = e * dth[j]
        th = theta[j]
        if h == 0.0:
            new_theta[j] = th
        else:
            # rho = softplus^{-1}(theta) = theta + log(1 - exp(-theta)); sigmoid(rho) =
            # 1 - exp(-theta)
            em = -np.expm1(-th)
            new_theta[j] = softplus(th + np.log(em) - step * h * em)
        ok = ok and np.isfinite(g[j]) and np.isfinite(new_theta[j])
    if not (ok and np.isfinite(loss)):
        return -1.0
    n = x.shape[0]
    for t in range(n):
        xt = x[t]
        if xt == 0.0:
            continue
        i = t if full else rows[t]
        for j in range(k):
            F[i, j] -= g[j] * xt
    for j in range(k):
        c[j] -= g[j]
        theta[j] = new_theta[j]
    return loss
