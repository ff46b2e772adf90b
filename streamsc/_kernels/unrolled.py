r"""Unrolled sparse coding: T iterations of a solver as a differentiable network (PUDLE).

Tolooshams & Ba (2022) learn the basis by back-propagating through T unrolled iterations of
a sparse-coding solver instead of differentiating the exact code implicitly. Here the network
is, for one example x (m,) and basis B (m, k), with a fixed step ``alpha`` (a constant: it is
never differentiated):

* L1 / L2 priors, ISTA from w_0 = 0 (FISTA with ``accelerated``: momentum ``beta_t =
  t / (t + 3)`` and ``y_t = w_t + beta_t (w_t - w_{t-1})``; ISTA is ``y_t = w_t``)::

      u_t     = y_t - alpha B^T (B y_t - x)
      w_{t+1} = prox(u_t)

  with ``prox(u) = max(u - alpha lam, 0)`` (L1, non-negative), the soft threshold (L1,
  signed), ``u / (1 + alpha lam)`` (L2, signed) or ``max(u, 0) / (1 + alpha lam)`` (L2,
  non-negative). Its derivative is taken on the active branch: ``d prox / du`` is
  ``1 / (1 + alpha lam)`` (L2) or 1 (L1) where the output is non-zero, 0 elsewhere.
* KL prior, the paper's exponentiated gradient descent in log space from the prior's
  minimiser w_0 = p, with the fixed step (no backtracking, so the map is smooth)::

      v_{t+1} = v_t - alpha (sigma B^T (B c_t - x) + lam (v_t - log p)),   w = exp(v)

  The state is w (length k) or, signed, (w+, w-) on [B, -B] (length 2k, never formed), with
  the code ``c = w+ - w-`` and ``sigma = +1`` on the first half, -1 on the second.

The backward pass (reverse mode) takes the cotangent g of the final code and returns the
gradient of ``g . c_T + recon_weight / 2 ||x - B c_T||^2`` with respect to B and x. Both
iterations share the step ``u = y - alpha B^T (B y - x)``, whose transpose for an adjoint h of
u (``h = d prox * a`` for ISTA; ``h = sigma^T a``, the adjoint of v folded onto the code, for
EGD) is::

      grad_B -= alpha ((B y - x) h^T + (B h) y^T),   grad_x += alpha B h,
      adjoint of y = h - alpha B^T B h

(``y = c_t`` for EGD, where the adjoint of ``v_t`` is then ``(1 - alpha lam) a - alpha
sigma w_t (B^T B h)``). One backward step reads B twice (``B y - x`` and ``B h`` together,
then the rank-2 update of grad_B together with ``B^T (B h)``); the forward step reads it twice.

Stability of EGD with a fixed step: in log space the Jacobian of the step is ``I - alpha
(lam I + sigma^T B^T B sigma diag(w))``, whose largest eigenvalue is ``lam + ||B diag(w+ +
w-) B^T||_2``, at most ``lam + sum_j (w+_j + w-_j) ||b_j||^2``; the iteration is stable (and
monotone) while ``alpha`` is below the inverse of it along the trajectory (measured: the
largest stable step was 1.7-2.0 / (lam + max_t ||B diag(w_t) B^T||)). The step is chosen by
the caller; with ``check`` the forward pass reports a rise of the coding objective (the step
was too large) so that the caller can retry with a smaller one.

No kernel allocates more than O(m + k) scratch; the trajectory (T + 1, k) or (T + 1, 2k) is
the caller's buffer, and so are grad_B and grad_x, which the backward pass adds to.
"""

import numpy as np
from numba import njit, prange

from .._config import NJIT, NJIT_PARALLEL, NJIT_REDUCE
from .kl import _unpack
from .linalg import matvec, rmatvec
from .vjp import KL, L1, L2  # prior ids, shared with the implicit VJP

#: status of the forward pass
OK = 0
#: the coding objective rose between two iterations (only with ``check``): step too large
ROSE = 1
#: the final state is not finite: step far too large
NONFINITE = 2

#: relative rise of the objective tolerated as rounding by ``check``
_RISE_RTOL = 1e-12


@njit(**NJIT)
def _momentum(t, accelerated):
    """FISTA's momentum at iteration t (0 for ISTA): t / (t + 3), the closed form of
    Chambolle and Dossal's sequence, 0 at t = 0."""
    return t / (t + 3.0) if accelerated else 0.0


@njit(**NJIT)
def _prox(u, thr, shrink, signed):
    """Threshold ``thr`` (alpha lam for L1, 0 for L2), then scale by ``shrink`` (1 for L1,
    1 / (1 + alpha lam) for L2); non-negative unless ``signed``."""
    if u > thr:
        return (u - thr) * shrink
    if signed and u < -thr:
        return (u + thr) * shrink
    return 0.0


@njit(**NJIT)
def _kl_prior_value(w, v, logp, p, k):
    """sum_j w_j (v_j - log p_j) - w_j + p_j with v = log w."""
    s = 0.0
    for j in range(w.shape[0]):
        jj = j % k
        s += w[j] * (v[j] - logp[jj]) - w[j] + p[jj]
    return s


@njit(**NJIT_REDUCE)
def _residual(x, B, c, r):
    """r = B c - x; returns 1/2 ||r||^2."""
    matvec(B, c, r)
    f = 0.0
    for i in range(r.shape[0]):
        r[i] -= x[i]
        f += r[i] * r[i]
    return 0.5 * f


@njit(**NJIT)
def unrolled_forward(x, B, prior, signed, lam, p, alpha, accelerated, check, traj):
    """T = ``traj.shape[0] - 1`` unrolled iterations from the fixed start, storing every state.

    Parameters
    ----------
    x: float64[m]
    B: float64[m, k]
    prior: int  KL, L1 or L2
    signed: bool
    lam: float
    p: float64[k]  KL prior mean (the start of EGD; unused by L1/L2)
    alpha: float  the fixed step
    accelerated: bool  FISTA momentum (L1/L2 only; ignored for KL)
    check: bool  KL only: stop with ROSE as soon as the coding objective rises
    traj: float64[T + 1, n]  output: the states w_0 .. w_T (n = 2k for signed KL, else k)

    Returns
    -------
    status: int  OK, ROSE (``check`` only; traj is then incomplete) or NONFINITE
    """
    m, k = B.shape
    T = traj.shape[0] - 1
    n = traj.shape[1]
    r = np.empty(m)
    c = np.empty(k)
    s = np.empty(k)
    if prior == KL:
        v = np.empty(n)
        logp = np.empty(k)
        for j in range(k):
            logp[j] = np.log(p[j])
        for j in range(n):
            traj[0, j] = p[j % k]
            v[j] = logp[j % k]
        f_prev = np.inf
        for t in range(T + 1):
            if t == T and not check:
                break
            z = traj[t]
            _unpack(z, k, signed, c)
            f = _residual(x, B, c, r)
            if check:
                f += lam * _kl_prior_value(z, v, logp, p, k)
                if not np.isfinite(f):
                    return NONFINITE
                if f > f_prev + _RISE_RTOL * abs(f_prev):
                    return ROSE
                f_prev = f
            if t == T:
                break
            rmatvec(B, r, s)
            for j in range(n):
                jj = j % k
                sg = s[jj] if j < k else -s[jj]
                v[j] -= alpha * (sg + lam * (v[j] - logp[jj]))
                traj[t + 1, j] = np.exp(v[j])
    else:
        thr = alpha * lam if prior == L1 else 0.0
        shrink = 1.0 / (1.0 + alpha * lam) if prior == L2 else 1.0
        y = np.empty(k)
        for j in range(k):
            traj[0, j] = 0.0
        for t in range(T):
            beta = _momentum(t, accelerated)
            for j in range(k):
                wt = traj[t, j]
                y[j] = wt + beta * (wt - traj[t - 1, j]) if t > 0 else wt
            _residual(x, B, y, r)
            rmatvec(B, r, s)
            for j in range(k):
                traj[t + 1, j] = _prox(y[j] - alpha * s[j], thr, shrink, signed)
    for j in range(n):
        if not np.isfinite(traj[T, j]):
            return NONFINITE
    return OK


@njit(**NJIT_REDUCE)
def _step_transpose(x, B, alpha, y, h, r, q, s, grad_B, grad_x):
    """The transpose of ``u = y - alpha B^T (B y - x)`` for the adjoint h of u, in two passes
    over B: r = B y - x and q = B h; then ``grad_B -= alpha (r h^T + q y^T)`` together with
    s = B^T q; ``grad_x += alpha q``. The adjoint of y is then ``h - alpha s``."""
    m, k = B.shape
    for i in range(m):
        a = 0.0
        b = 0.0
        for j in range(k):
            a += B[i, j] * y[j]
            b += B[i, j] * h[j]
        r[i] = a - x[i]
        q[i] = b
    for j in range(k):
        s[j] = 0.0
    for i in range(m):
        ri = alpha * r[i]
        qi = alpha * q[i]
        for j in range(k):
            grad_B[i, j] -= ri * h[j] + qi * y[j]
            s[j] += q[i] * B[i, j]
        grad_x[i] += qi


@njit(**NJIT)
def unrolled_backward(x, B, prior, signed, lam, p, alpha, accelerated, traj, g, recon_weight,
                      grad_B, grad_x):
    """Reverse mode through the iterations stored by :func:`unrolled_forward`.

    Adds to ``grad_B`` and ``grad_x`` the gradients of ``g . c_T + recon_weight / 2
    ||x - B c_T||^2`` (c_T the final code) with respect to B and x, through all T iterations
    (the step alpha held fixed). Arguments as in :func:`unrolled_forward`, plus:

    Parameters
    ----------
    traj: float64[T + 1, n]  the trajectory filled by ``unrolled_forward`` (status OK)
    g: float64[k]  cotangent of the final code
    recon_weight: float  weight of the reconstruction loss (0 for a pure VJP)
    grad_B: float64[m, k]  added to
    grad_x: float64[m]  added to

    Returns
    -------
    loss: float  1/2 ||x - B c_T||^2 (unweighted)
    """
    m, k = B.shape
    T = traj.shape[0] - 1
    n = traj.shape[1]
    kl = prior == KL
    c = np.empty(k)
    r = np.empty(m)
    q = np.empty(m)
    s = np.empty(k)
    h = np.empty(k)
    gT = np.empty(k)
    # the reconstruction loss's direct term, and its cotangent B^T (B c_T - x)
    _unpack(traj[T], k, kl and signed, c)
    loss = _residual(x, B, c, r)
    for j in range(k):
        gT[j] = g[j]
    if recon_weight != 0.0:
        rmatvec(B, r, s)
        for i in range(m):
            wr = recon_weight * r[i]
            for j in range(k):
                grad_B[i, j] += wr * c[j]
            grad_x[i] -= wr
        for j in range(k):
            gT[j] += recon_weight * s[j]
    a = np.empty(n)  # the adjoint of the state (of v = log w for KL)
    if kl:
        z = traj[T]
        for j in range(n):
            a[j] = z[j] * gT[j] if j < k else -z[j] * gT[j - k]
        decay = 1.0 - alpha * lam
        for t in range(T - 1, -1, -1):
            z = traj[t]
            _unpack(z, k, signed, c)
            for j in range(k):
                h[j] = a[j] - a[k + j] if signed else a[j]
            _step_transpose(x, B, alpha, c, h, r, q, s, grad_B, grad_x)
            if t > 0:
                for j in range(n):
                    sg = s[j] if j < k else -s[j - k]
                    a[j] = decay * a[j] - alpha * z[j] * sg
    else:
        shrink = 1.0 / (1.0 + alpha * lam) if prior == L2 else 1.0
        a0 = np.zeros(k)  # partial adjoint of w_t from the momentum of step t + 1
        y = np.empty(k)
        for j in range(k):
            a[j] = gT[j]
        for t in range(T - 1, -1, -1):
            beta = _momentum(t, accelerated)
            for j in range(k):
                h[j] = shrink * a[j] if traj[t + 1, j] != 0.0 else 0.0
                wt = traj[t, j]
                y[j] = wt + beta * (wt - traj[t - 1, j]) if t > 0 else wt
            _step_transpose(x, B, alpha, y, h, r, q, s, grad_B, grad_x)
            if t > 0:
                for j in range(k):
                    gy = h[j] - alpha * s[j]
                    a[j] = a0[j] + (1.0 + beta) * gy
                    a0[j] = -beta * gy
    return loss


@njit(**NJIT_PARALLEL)
def unrolled_batch(X, B, prior, signed, lam, p, alphas, accelerated, check, G, recon_weight,
                   traj, W, grad_Bs, grad_X, status, loss):
    """Forward and backward for every row of X, the rows split into ``traj.shape[0]``
    chunks (one per thread; row i goes to chunk i mod n_chunks).

    Parameters
    ----------
    X: float64[n, m]
    alphas: float64[n]  the step of each row
    G: float64[n, k]  cotangents of the final codes
    traj: float64[n_chunks, T + 1, n_state]  scratch, one trajectory per chunk
    W: float64[n, k]  output: the final codes
    grad_Bs: float64[n_chunks, m, k]  added to: each chunk's sum of grad_B (the caller sums)
    grad_X: float64[n, m]  added to
    status: int64[n]  output: the forward status of each row; rows not OK add nothing
    loss: float64[n]  output: 1/2 ||x - B c_T||^2 (NaN for rows not OK)
    """
    n_chunks = traj.shape[0]
    n = X.shape[0]
    k = B.shape[1]
    T = traj.shape[1] - 1
    kl_signed = prior == KL and signed
    for ch in prange(n_chunks):
        tr = traj[ch]
        for i in range(ch, n, n_chunks):
            st = unrolled_forward(X[i], B, prior, signed, lam, p, alphas[i], accelerated,
                                  check, tr)
            status[i] = st
            if st != OK:
                loss[i] = np.nan
                continue
            loss[i] = unrolled_backward(X[i], B, prior, signed, lam, p, alphas[i],
                                        accelerated, tr, G[i], recon_weight, grad_Bs[ch],
                                        grad_X[i])
            _unpack(tr[T], k, kl_signed, W[i])


@njit(**NJIT_REDUCE)
def spectral_norm_sq(B, v, max_iter, rtol):
    """``||B||_2^2``, the largest eigenvalue of B^T B, by power iteration warm-started from v.

    Parameters
    ----------
    B: float64[m, k]
    v: float64[k]  the start (any non-zero vector; all ones if zero or not finite); on
        return the last unit-norm iterate, to warm-start the next call
    max_iter: int
    rtol: float  stop when the estimate changes by at most rtol relative

    Returns
    -------
    L: float  ``||B^T B v||`` for the unit v before the last normalisation, a lower bound on
        ``||B||_2^2`` that converges to it (relative error ~ (lambda_2 / lambda_1)^(2 it))
    """
    m, k = B.shape
    nv = 0.0
    for j in range(k):
        nv += v[j] * v[j]
    if not (nv > 0.0 and np.isfinite(nv)):
        for j in range(k):
            v[j] = 1.0
        nv = float(k)
    nv = np.sqrt(nv)
    for j in range(k):
        v[j] /= nv
    u = np.empty(m)
    w = np.empty(k)
    est = 0.0
    for _ in range(max_iter):
        matvec(B, v, u)
        rmatvec(B, u, w)
        nw = 0.0
        for j in range(k):
            nw += w[j] * w[j]
        nw = np.sqrt(nw)
        if nw == 0.0:
            return 0.0
        for j in range(k):
            v[j] = w[j] / nw
        done = abs(nw - est) <= rtol * nw
        est = nw
        if done:
            break
    return est
