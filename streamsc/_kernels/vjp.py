"""Vector-Jacobian products of sparse codes by implicit differentiation.

At a code ``w`` of one example x (m,) under the basis B (m, k) the optimality conditions

    F(w; B, x, lam) = B^T (B w - x) + lam * grad R(w) = 0

hold (on the active set for L1 / non-negative L2). Differentiating them (the paper's eq. 9
and Appendix C) gives, for a cotangent g = dLoss/dw and ``v = H^{-1} g`` with the Hessian
``H = dF/dw = B^T B + lam * hess R(w)``::

    dLoss/dB   = (x - B w) v^T - (B v) w^T
    dLoss/dx   = B v
    dLoss/dlam = -v . phi,        phi = dF/dlam = grad R(w)

Every prior is written with a per-atom weight ``d_j`` (the inverse of the prior's curvature,
``H = B^T B + diag(1/d)``, ``d_j = 0`` for atoms off the active set, whose v_j is 0):

* KL, unsigned: ``d = w / lam``, ``phi = log(w / p)``.
* KL, signed: the state is (w+, w-) on [B, -B] and the cotangent of the state is (g, -g).
  Its 2k x 2k system folds back onto k atoms exactly: with ``d = (w+ + w-) / lam`` the
  code-space direction ``v = v+ - v-`` solves ``(B^T B + diag(1/d)) v = g`` and
  ``phi = (w+ log(w+/p) - w- log(w-/p)) / (w+ + w-)``; grad_B and grad_x take the unsigned
  formulas with the code ``c = w+ - w-`` (the two halves' B-gradients, of [B, -B], folded).
* L2: ``d = 1 / lam`` on the active set (every atom when signed, ``w_j > 0`` otherwise),
  ``phi = w``.
* L1: ``H_A = B_A^T B_A`` on the active set ``A = {w_j != 0}`` (no prior curvature),
  ``phi = sign(w)``.

``H`` is never formed at size k x k when more than m atoms are active: with D = diag(d),
``v = D (g - B^T y)`` where ``M y = B D g`` for ``M = I + B D B^T`` (m x m, eigenvalues
>= 1), solved either exactly (M formed, Cholesky) or by conjugate gradients preconditioned
with the dual Newton solver's Hessian approximation (heavy atoms exact, the rest as a
multiple of the identity). Then ``B v = B D g - (M - I) y = y + (B D g - M y)``: grad_x
costs no extra product with B. With at most m active atoms the s x s system ``I + S^T S``
(``S = B_A D_A^{1/2}``) is factored instead.

For the KL loss with softmax transfer (:func:`kl_loss_direction`) the loss curvature is
``B^T S B`` with the softmax Jacobian ``S = diag(q) - q q^T`` instead of ``B^T B``: the k x k
system is solved by conjugate gradients, or formed and factored if they stall, and the
B-gradient gains the transfer's own derivative, ``dLoss/dB = (x - q) v^T - (S B v) c^T``.

No kernel here calls BLAS: OpenBLAS threads products of these sizes, and inside a
per-example kernel (or one thread of a batch) those threads only contend for the cores
(measured: a 64 x 180 Gram product took 25 ms instead of 0.07 ms on a loaded machine).
"""

import numpy as np
from numba import njit, prange

from .._config import NJIT, NJIT_PARALLEL, NJIT_REDUCE
from .linalg import chol_solve, cholesky_inplace, dot, matvec, rmatvec

#: prior ids
KL = 0
L1 = 1
L2 = 2

#: how ``M = I + B D B^T`` is solved when more than m atoms are active
DIRECT = 0  # form M, Cholesky
CG = 1  # preconditioned conjugate gradients; falls back to DIRECT if it stalls


# ---------------------------------------------------------------------------------------
# dense helpers
# ---------------------------------------------------------------------------------------


@njit(**NJIT_REDUCE)
def _gram(C, shift, K):
    """K = C C^T + shift * I for C of shape (s, n). Rows are taken two by two (four dot
    products per pass over the columns), which halves the loads of a row-by-row loop."""
    s, n = C.shape
    for a in range(0, s, 2):
        a1 = min(a + 1, s - 1)
        for b in range(0, a1 + 1, 2):
            b1 = min(b + 1, s - 1)
            s00 = 0.0
            s01 = 0.0
            s10 = 0.0
            s11 = 0.0
            for q in range(n):
                x0 = C[a, q]
                x1 = C[a1, q]
                y0 = C[b, q]
                y1 = C[b1, q]
                s00 += x0 * y0
                s01 += x0 * y1
                s10 += x1 * y0
                s11 += x1 * y1
            K[a, b] = s00
            K[b, a] = s00
            K[a, b1] = s01
            K[b1, a] = s01
            K[a1, b] = s10
            K[b, a1] = s10
            K[a1, b1] = s11
            K[b1, a1] = s11
    for t in range(s):
        K[t, t] += shift


@njit(**NJIT_REDUCE)
def _matvec_col_norms(B, u, out, cn2):
    """out = B @ u and cn2[j] = ||b_j||^2 in one pass over B."""
    m, k = B.shape
    for j in range(k):
        cn2[j] = 0.0
    for i in range(m):
        s = 0.0
        for j in range(k):
            bij = B[i, j]
            cn2[j] += bij * bij
            s += bij * u[j]
        out[i] = s


# ---------------------------------------------------------------------------------------
# v = H^{-1} g
# ---------------------------------------------------------------------------------------


@njit(**NJIT)
def _solve_active(B, idx, s, d, unregularised, g, v, Bv):
    """v = H_A^{-1} g_A on the s atoms idx[:s] (zero elsewhere) through an s x s system,
    and Bv = B v. Returns False (v and Bv NaN) if the system is singular.

    ``unregularised`` (L1): ``H_A = B_A^T B_A``. Otherwise ``H_A = B_A^T B_A + diag(1/d_A)``,
    solved in the scaled form ``v_A = sqrt(d_A) (I + S^T S)^{-1} sqrt(d_A) g_A`` with
    ``S = B_A diag(sqrt(d_A))``, whose eigenvalues are >= 1 however small d gets.
    """
    m, k = B.shape
    for j in range(k):
        v[j] = 0.0
    for i in range(m):
        Bv[i] = 0.0
    if s == 0:
        return True
    C = np.empty((s, m))
    f = np.empty(s)
    rhs = np.empty(s)
    for t in range(s):
        j = idx[t]
        f[t] = 1.0 if unregularised else np.sqrt(d[j])
        rhs[t] = f[t] * g[j]
        for i in range(m):
            C[t, i] = f[t] * B[i, j]
    L = np.empty((s, s))
    _gram(C, 0.0 if unregularised else 1.0, L)
    if not cholesky_inplace(L):
        v[:] = np.nan
        Bv[:] = np.nan
        return False
    y = np.empty(s)
    chol_solve(L, rhs, y)
    for t in range(s):
        v[idx[t]] = f[t] * y[t]
        for i in range(m):  # b_j v_j = (f_t b_j) y_t
            Bv[i] += C[t, i] * y[t]
    return True


@njit(**NJIT)
def _solve_m_direct(B, d, g, v, Bv):
    """v = D (g - B^T y), M y = B D g, with M = I + B D B^T formed (m^2 k / 2
    multiply-adds) and factored; Bv = B v = y. Returns False (NaN) if M is not positive
    definite (only possible for non-finite input)."""
    m, k = B.shape
    sq = np.sqrt(d)
    S = np.empty((m, k))
    for i in range(m):
        for j in range(k):
            S[i, j] = B[i, j] * sq[j]
    L = np.empty((m, m))
    _gram(S, 1.0, L)
    if not cholesky_inplace(L):
        v[:] = np.nan
        Bv[:] = np.nan
        return False
    dg = np.empty(k)
    for j in range(k):
        dg[j] = d[j] * g[j]
    b = np.empty(m)
    matvec(B, dg, b)
    chol_solve(L, b, Bv)
    t = np.empty(k)
    rmatvec(B, Bv, t)
    for j in range(k):
        v[j] = dg[j] - d[j] * t[j]
    return True


@njit(**NJIT)
def _apply_precond(C, L, gam, r, h, hy, z):
    """z = P^{-1} r for P = gam I + C^T C (rows of C: the kept atoms scaled by sqrt(d)),
    by Woodbury: z = (r - C^T (gam I + C C^T)^{-1} C r) / gam, with L the Cholesky factor
    of gam I + C C^T."""
    s, m = C.shape
    for i in range(m):
        z[i] = r[i]
    if s > 0:
        matvec(C, r, h)
        chol_solve(L, h, hy)
        for t in range(s):
            yt = hy[t]
            for i in range(m):
                z[i] -= C[t, i] * yt
    for i in range(m):
        z[i] /= gam


@njit(**NJIT)
def _solve_m_cg(B, d, g, rtol, max_iter, hess_drop, max_kept, v, Bv):
    """v = D (g - B^T y) with ``M y = B D g`` solved by preconditioned conjugate gradients,
    and Bv = B v = y + (B D g - M y).

    Each iteration costs one product with B^T and one with B (``M q = q + B (d * B^T q)``);
    B^T y is accumulated alongside y, so the whole solve reads B 2 * iterations + 1 times.
    The preconditioner is the dual Newton solver's Hessian approximation (see
    ``kl._newton_direction``), factored once: atoms whose weight ``d_j ||b_j||^2`` exceeds
    ``hess_drop`` (the ``max_kept`` heaviest) kept exactly, the others replaced by the
    isotropic matrix with the same trace. Stops when ``||M y - B D g|| <= rtol ||B D g||``
    (the recursively updated residual). Returns (iterations, converged).
    """
    m, k = B.shape
    # --- right-hand side b = B D g, and the column norms, in one pass over B
    dg = np.empty(k)
    for j in range(k):
        dg[j] = d[j] * g[j]
    b = np.empty(m)
    cn2 = np.empty(k)
    _matvec_col_norms(B, dg, b, cn2)
    # --- preconditioner P = gam I + sum_{kept} d_j b_j b_j^T
    a = np.empty(k)
    s = 0
    for j in range(k):
        a[j] = d[j] * cn2[j]
        if a[j] > hess_drop:
            s += 1
    if s > max_kept:
        order = np.argsort(-a)
        s = max_kept
        keep = np.sort(order[:s])
    else:
        keep = np.empty(s, dtype=np.int64)
        t = 0
        for j in range(k):
            if a[j] > hess_drop:
                keep[t] = j
                t += 1
    dropped = 0.0
    for j in range(k):
        dropped += a[j]
    C = np.empty((s, m))
    for t in range(s):
        j = keep[t]
        dropped -= a[j]
        f = np.sqrt(d[j])
        for i in range(m):
            C[t, i] = f * B[i, j]
    gam = 1.0 + max(dropped, 0.0) / m
    L = np.empty((s, s))
    _gram(C, gam, L)
    cholesky_inplace(L)  # gam I + C C^T: positive definite
    h = np.empty(s)
    hy = np.empty(s)
    # --- CG on M y = b, from y = 0; ty = B^T y
    y = np.zeros(m)
    ty = np.zeros(k)
    r = b.copy()
    bnorm = np.sqrt(dot(b, b))
    it = 0
    converged = bnorm == 0.0
    if not converged:
        z = np.empty(m)
        _apply_precond(C, L, gam, r, h, hy, z)
        pdir = z.copy()
        rz = dot(r, z)
        q = np.empty(m)
        tp = np.empty(k)
        dtp = np.empty(k)
        stop = rtol * bnorm
        while it < max_iter:
            rmatvec(B, pdir, tp)
            for j in range(k):
                dtp[j] = d[j] * tp[j]
            matvec(B, dtp, q)
            for i in range(m):
                q[i] += pdir[i]
            alpha = rz / dot(pdir, q)
            for i in range(m):
                y[i] += alpha * pdir[i]
                r[i] -= alpha * q[i]
            for j in range(k):
                ty[j] += alpha * tp[j]
            it += 1
            if np.sqrt(dot(r, r)) <= stop:
                converged = True
                break
            _apply_precond(C, L, gam, r, h, hy, z)
            rz_new = dot(r, z)
            beta = rz_new / rz
            rz = rz_new
            for i in range(m):
                pdir[i] = z[i] + beta * pdir[i]
    for j in range(k):
        v[j] = dg[j] - d[j] * ty[j]
    for i in range(m):
        Bv[i] = y[i] + r[i]
    return it, converged


@njit(**NJIT)
def _kl_weights(signed, lam, p, w, wm, d, phi):
    """The KL prior's per-atom weights (module docstring), for every atom: ``d = w / lam``
    and ``phi = log(w / p)``, or for a signed state (w+ = w, w- = wm)
    ``d = (w+ + w-) / lam`` and ``phi = (w+ log(w+/p) - w- log(w-/p)) / (w+ + w-)``."""
    for j in range(d.shape[0]):
        if signed:
            wp = w[j]
            wn = wm[j]
            sj = wp + wn
            d[j] = sj / lam
            phi[j] = (wp * np.log(wp / p[j]) - wn * np.log(wn / p[j])) / sj
        else:
            d[j] = w[j] / lam
            phi[j] = np.log(w[j] / p[j])


@njit(**NJIT)
def vjp_direction(B, prior, signed, lam, p, w, wm, g, method, rtol, max_iter,
                  hess_drop, max_kept, v, Bv):
    """v = H^{-1} g for the code of one example, B v, and dLoss/dlam.

    Parameters
    ----------
    B: float64[m, k]
    prior: int  KL, L1 or L2
    signed: bool
    lam: float
    p: float64[k]  KL prior mean (unused by L1/L2)
    w: float64[k]  the code; w+ for signed KL
    wm: float64[k]  w- for signed KL (any array otherwise)
    g: float64[k]  cotangent dLoss/dcode
    method: int  DIRECT or CG, for more than m active atoms
    rtol, max_iter: float, int  CG stopping rule (relative residual of the m x m system)
    hess_drop, max_kept: float, int  CG preconditioner (see ``_solve_m_cg``)
    v: float64[k]  output: H^{-1} g (zero off the active set)
    Bv: float64[m]  output: B v (= dLoss/dx)

    Returns
    -------
    grad_lam: float (NaN if the system was singular), n_cg: int (CG iterations; 0 for a
    factored solve, -1 if CG stalled and the direct solve took over)
    """
    m, k = B.shape
    d = np.empty(k)
    phi = np.empty(k)
    idx = np.empty(k, dtype=np.int64)
    s = 0
    if prior == KL:
        _kl_weights(signed, lam, p, w, wm, d, phi)
        for j in range(k):
            idx[j] = j
        s = k
    else:
        for j in range(k):
            active = w[j] != 0.0 if (prior == L1 or signed) else w[j] > 0.0
            if active:
                idx[s] = j
                s += 1
                d[j] = 1.0 / lam
            else:
                d[j] = 0.0
            if prior == L1:
                phi[j] = 1.0 if w[j] > 0.0 else (-1.0 if w[j] < 0.0 else 0.0)
            else:
                phi[j] = w[j]
    n_cg = 0
    if prior == L1 or s <= m:
        _solve_active(B, idx, s, d, prior == L1, g, v, Bv)
    elif method == CG:
        n_cg, ok = _solve_m_cg(B, d, g, rtol, max_iter, hess_drop, max_kept, v, Bv)
        if not ok:
            _solve_m_direct(B, d, g, v, Bv)
            n_cg = -1
    else:
        _solve_m_direct(B, d, g, v, Bv)
    grad_lam = 0.0
    for t in range(s):
        j = idx[t]
        grad_lam -= v[j] * phi[j]
    return grad_lam, n_cg


# ---------------------------------------------------------------------------------------
# drivers
# ---------------------------------------------------------------------------------------


@njit(**NJIT)
def encode_vjp_one(x, B, prior, signed, lam, p, w, wm, g, method, rtol, max_iter,
                   hess_drop, max_kept, v, grad_B, grad_x):
    """The whole VJP of one example's code: fills v = H^{-1} g, grad_B (m, k) and
    grad_x = B v (m,); returns (grad_lam, n_cg). Arguments as in ``vjp_direction``."""
    m, k = B.shape
    grad_lam, n_cg = vjp_direction(B, prior, signed, lam, p, w, wm, g, method, rtol,
                                   max_iter, hess_drop, max_kept, v, grad_x)
    code = np.empty(k)
    if prior == KL and signed:
        for j in range(k):
            code[j] = w[j] - wm[j]
    else:
        for j in range(k):
            code[j] = w[j]
    r = np.empty(m)
    matvec(B, code, r)
    for i in range(m):
        ri = x[i] - r[i]
        gi = grad_x[i]
        for j in range(k):
            grad_B[i, j] = ri * v[j] - gi * code[j]
    return grad_lam, n_cg


@njit(**NJIT_PARALLEL)
def vjp_direction_batch(B, prior, signed, lam, p, W, Wm, G, method, rtol, max_iter,
                        hess_drop, max_kept, V, grad_X, grad_lam, n_cg):
    """``vjp_direction`` for every row (one per thread), with grad_X[i] = B V[i]. The
    caller sums grad_B = R^T V - grad_X^T C (R: residuals, C: codes) with BLAS. ``Wm`` is
    (n, k) for signed KL and may be (n, 0) otherwise."""
    for i in prange(W.shape[0]):
        gl, it = vjp_direction(B, prior, signed, lam, p, W[i], Wm[i], G[i], method, rtol,
                               max_iter, hess_drop, max_kept, V[i], grad_X[i])
        grad_lam[i] = gl
        n_cg[i] = it


# ---------------------------------------------------------------------------------------
# KL loss, softmax transfer
# ---------------------------------------------------------------------------------------


#: relative residual at which :func:`_kl_cg` stops (K's eigenvalues are >= 1, so the error
#: of y is at most the residual)
KL_CG_RTOL = 1e-12


@njit(**NJIT)
def _kl_cg(B, f, q, rhs, max_iter, rtol, y):
    """Conjugate gradients on ``K y = rhs``, ``K = I + F B^T S B F`` (``F = diag(f)``, ``S =
    diag(q) - q q^T``), from y = 0, each product with K one product with B and one with
    B^T (2 m k flops against the m k^2 / 2 of forming K). K's eigenvalues are >= 1 and, for
    documents over many words, near 1 (the softmax spreads q thin, so ``B^T S B`` is small
    next to the prior's curvature): a few iterations reach ``rtol``. Returns whether
    ``||K y - rhs|| <= rtol ||rhs||`` within ``max_iter`` iterations."""
    m, k = B.shape
    r = rhs.copy()
    pdir = rhs.copy()
    Kp = np.empty(k)
    t = np.empty(k)
    z = np.empty(m)
    y[:] = 0.0
    rr = dot(r, r)
    stop = rtol * rtol * rr
    if rr == 0.0:
        return True
    for _ in range(max_iter):
        for j in range(k):
            t[j] = f[j] * pdir[j]
        matvec(B, t, z)
        qz = dot(q, z)
        for i in range(m):
            z[i] = q[i] * (z[i] - qz)
        rmatvec(B, z, Kp)
        for j in range(k):
            Kp[j] = pdir[j] + f[j] * Kp[j]
        pkp = dot(pdir, Kp)
        if not pkp > 0.0:
            return False
        alpha = rr / pkp
        for j in range(k):
            y[j] += alpha * pdir[j]
            r[j] -= alpha * Kp[j]
        rr_new = dot(r, r)
        if rr_new <= stop:
            return True
        beta = rr_new / rr
        rr = rr_new
        for j in range(k):
            pdir[j] = r[j] + beta * pdir[j]
    return False


@njit(**NJIT)
def kl_loss_direction(B, signed, lam, p, w, wm, g, q, v, Bv, SBv):
    """v = H^{-1} g for the code of one document under the KL loss with softmax transfer
    (KL prior), plus q = softmax(B c), B v, S B v and dLoss/dlam.

    The optimality conditions are ``F = B^T (q - x) + lam R'(c) = 0`` with q = softmax(B c),
    so ``H = dF/dc = B^T S B + diag(1/d)`` with the softmax Jacobian ``S = diag(q) - q q^T``
    and the prior weights d of :func:`vjp_direction` (``d = w / lam``; signed:
    ``(w+ + w-) / lam``). Differentiating F in B (the paper's eq. 21 with the
    normalised-exponential row of its Appendix C table, ``dq/dB_ij = S e_i c_j``) gives::

        dLoss/dB = (x - q) v^T - (S B v) c^T,    dLoss/dx = B v,    dLoss/dlam = -v . phi

    H is solved in the scaled form ``v = D^{1/2} K^{-1} D^{1/2} g``, ``K = I + D^{1/2} B^T S
    B D^{1/2}`` (eigenvalues >= 1 however small d gets): first by conjugate gradients
    (:func:`_kl_cg`, at most k/8 iterations of O(m k) each, to ``KL_CG_RTOL``), which a
    document over many words needs only a few of (K is then near the identity); if they do
    not converge, densely, with ``B^T S B`` accumulated as ``sum_i q_i (b_i - u)(b_i -
    u)^T``, ``u = B^T q``, ``b_i`` the i-th row of B: exactly positive semi-definite,
    O(m k^2 / 2) work, O(k^2) memory.

    Parameters
    ----------
    B: float64[m, k]
    signed: bool
    lam: float
    p: float64[k]
    w: float64[k]  the code; w+ for signed
    wm: float64[k]  w- for signed (any array otherwise)
    g: float64[k]  cotangent dLoss/dcode
    q: float64[m]  output: softmax(B c)
    v: float64[k]  output: H^{-1} g
    Bv: float64[m]  output: B v (= dLoss/dx for x the document's distribution)
    SBv: float64[m]  output: S B v

    Returns
    -------
    grad_lam: float (NaN, with NaN outputs, if the system is not positive definite)
    """
    m, k = B.shape
    d = np.empty(k)
    f = np.empty(k)
    phi = np.empty(k)
    c = np.empty(k)
    _kl_weights(signed, lam, p, w, wm, d, phi)
    for j in range(k):
        c[j] = w[j] - wm[j] if signed else w[j]
        f[j] = np.sqrt(d[j])
    # q = softmax(B c)
    matvec(B, c, q)
    zmax = q[0]
    for i in range(1, m):
        zmax = max(zmax, q[i])
    total = 0.0
    for i in range(m):
        q[i] = np.exp(q[i] - zmax)
        total += q[i]
    for i in range(m):
        q[i] /= total
    rhs = np.empty(k)
    for j in range(k):
        rhs[j] = f[j] * g[j]
    y = np.empty(k)
    if not _kl_cg(B, f, q, rhs, max(k // 8, 1), KL_CG_RTOL, y):
        u = np.empty(k)
        rmatvec(B, q, u)
        # K = I + F (sum_i q_i (b_i - u)(b_i - u)^T) F, lower triangle
        K = np.zeros((k, k))
        t = np.empty(k)
        for i in range(m):
            qi = q[i]
            for j in range(k):
                t[j] = f[j] * (B[i, j] - u[j])
            for a in range(k):
                ta = qi * t[a]
                for b in range(a + 1):
                    K[a, b] += ta * t[b]
        for a in range(k):
            for b in range(a):
                K[b, a] = K[a, b]
            K[a, a] += 1.0
        if not cholesky_inplace(K):
            v[:] = np.nan
            Bv[:] = np.nan
            SBv[:] = np.nan
            return np.nan
        chol_solve(K, rhs, y)
    grad_lam = 0.0
    for j in range(k):
        v[j] = f[j] * y[j]
        grad_lam -= v[j] * phi[j]
    matvec(B, v, Bv)
    qbv = dot(q, Bv)
    for i in range(m):
        SBv[i] = q[i] * (Bv[i] - qbv)
    return grad_lam


@njit(**NJIT_PARALLEL)
def kl_loss_direction_batch(B, signed, lam, p, W, Wm, G, Q, V, BV, SBV, grad_lam):
    """``kl_loss_direction`` for every row (one per thread). ``Wm`` is (n, k) when signed
    and may be (n, 0) otherwise."""
    for i in prange(W.shape[0]):
        grad_lam[i] = kl_loss_direction(B, signed, lam, p, W[i], Wm[i], G[i], Q[i], V[i],
                                        BV[i], SBV[i])
