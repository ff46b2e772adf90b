"""KL-prior MAP inference.

Objective, for one example x (m,) and basis B (m, k)::

    L(w) = D(x || f(B c(w))) + lam * sum_j [w_j log(w_j / p_j) - w_j + p_j],   w > 0

with squared loss and linear transfer, D = 1/2 ||x - B c||^2, or KL loss and softmax
transfer, D = KL(x || softmax(B c)) for a distribution x (``loss_residual``). c(w) = w for
unsigned codes; for signed codes w = (w+, w-) has length 2k on the expanded basis [B, -B] and
c(w) = w+ - w- (the paper's Appendix B).

Every solver stops on the same criterion, ``max_j |dL/dw_j| <= tol``:

* ``egd`` (either loss): the paper's exponentiated gradient descent (section 4), run in
  log-space (u = log w, so the multiplicative update is u <- u - alpha * grad), with
  backtracking and the step size adapted by +-10% from the fraction of backtracked trials
  (footnote 4); with ``diag=True`` the step is scaled per coordinate by a diagonal Newton
  metric (``_egd_metric``).
* ``kl_newton`` (squared loss): damped Newton on the m-dimensional Fenchel dual

      max_nu  nu.x - 1/2 ||nu||^2 - lam * sum_j p_j exp(b_j.nu / lam)   (+ exp(-b_j.nu/lam) signed)

  whose maximiser gives w = p exp(B^T nu / lam) and nu = x - B c (the residual). The primal
  gradient at w(nu) is exactly -B^T (x - nu - B c), so the stopping test is the primal one.
  The Hessian I + B diag(d / lam) B^T keeps exactly only the (at most ``max_kept``, more if
  Newton stalls) atoms whose weight d_j/lam * ||b_j||^2 exceeds ``hess_drop``; the rest is
  replaced by the isotropic matrix of the same trace, and the system is solved by Woodbury in
  s x s for the s kept atoms (m x m once s >= m). Exactness stays in the gradient; the
  approximation only slows convergence from quadratic to fast-linear.
* ``newton_primal`` (either loss; the KL loss's default): damped Newton in code space, with
  the arcsinh form of the signed prior.
"""

import numpy as np
from numba import njit, prange

from .._config import NJIT, NJIT_INLINE, NJIT_PARALLEL
from .linalg import col_sq_norms, dot, matvec, max_abs, rmatvec, solve_spd
from .vecmath import exp as vexp

# exp() overflows past ~709; exponents are clipped here and the line searches reject them.
_EXP_CLIP = 700.0
_EPS = 2.220446049250313e-16
#: the largest change of a log-weight b_j.nu/lam in one dual Newton step (kl_newton)
_Z_STEP = 30.0


@njit(**NJIT_INLINE)
def _unpack(w, k, signed, code):
    """code = w (unsigned) or w[:k] - w[k:] (signed)."""
    if signed:
        for j in range(k):
            code[j] = w[j] - w[k + j]
    else:
        for j in range(k):
            code[j] = w[j]


@njit(**NJIT)
def kl_objective(x, B, p, lam, signed, w):
    """The primal objective L(w) (w of length k, or 2k when signed)."""
    m, k = B.shape
    code = np.empty(k)
    _unpack(w, k, signed, code)
    r = np.empty(m)
    matvec(B, code, r)
    f = 0.0
    for i in range(m):
        d = r[i] - x[i]
        f += 0.5 * d * d
    kl = 0.0
    for j in range(w.shape[0]):
        pj = p[j % k]
        if w[j] > 0.0:
            kl += w[j] * np.log(w[j] / pj) - w[j] + pj
        else:
            kl += pj
    return f + lam * kl


@njit(**NJIT)
def kl_gradient(x, B, p, lam, signed, w, g):
    """g = dL/dw at w (length k, or 2k when signed). Returns max |g|."""
    m, k = B.shape
    code = np.empty(k)
    _unpack(w, k, signed, code)
    r = np.empty(m)
    matvec(B, code, r)
    for i in range(m):
        r[i] -= x[i]
    c = np.empty(k)
    rmatvec(B, r, c)
    gmax = 0.0
    for j in range(w.shape[0]):
        jj = j % k
        s = c[jj] if j < k else -c[jj]
        g[j] = s + lam * (np.log(w[j]) - np.log(p[jj]))
        a = abs(g[j])
        if a > gmax:
            gmax = a
    return gmax


# ---------------------------------------------------------------------------------------
# EGD (paper section 4)
# ---------------------------------------------------------------------------------------


@njit(**NJIT)
def loss_residual(x, B, code, r, loss):
    """Fill r = f(B code) - x (the loss gradient with respect to B code) and return the
    loss D(x || f(B code)). ``loss`` 0: squared loss, linear transfer. ``loss`` 1: KL loss,
    softmax transfer (x must be a distribution: non-negative, summing to one)."""
    matvec(B, code, r)
    return residual_from_z(x, r, loss)


@njit(**NJIT)
def residual_from_z(x, r, loss):
    """:func:`loss_residual` given z = B code already in ``r``: overwrites r with
    f(z) - x and returns the loss (the batched solvers form z for a block of rows by one
    matrix product). ``loss`` None is the squared loss, known when compiling (the KL
    loss's branch is not compiled)."""
    m = r.shape[0]
    if loss is None or loss == 0:
        f = 0.0
        for i in range(m):
            r[i] -= x[i]
            f += 0.5 * r[i] * r[i]
        return f
    zmax = r[0]
    for i in range(1, m):
        if r[i] > zmax:
            zmax = r[i]
    s = 0.0
    xz = 0.0
    xlx = 0.0
    for i in range(m):
        s += np.exp(r[i] - zmax)
        if x[i] > 0.0:
            xz += x[i] * r[i]
            xlx += x[i] * np.log(x[i])
    lse = zmax + np.log(s)
    for i in range(m):
        r[i] = np.exp(r[i] - lse) - x[i]
    return xlx - xz + lse


@njit(**NJIT)
def reconstruction_losses(X, B, W, loss, out):
    """out[i] = the loss of :func:`loss_residual` for row X[i] and code W[i] (rows of X
    distributions for ``loss`` 1)."""
    r = np.empty(B.shape[0])
    for i in range(X.shape[0]):
        out[i] = loss_residual(X[i], B, W[i], r, loss)


@njit(**NJIT_INLINE)
def armijo(f_new, f, g, v_new, v, loss):
    """The line searches' test of a trial point v_new of objective ``f_new`` from v of
    objective ``f`` and gradient ``g``, of predicted change dec = g . (v_new - v) (negative
    downhill): 1 to accept it
    (Armijo's condition), 0 to reject it (also when f_new is not finite), -1 when the
    predicted decrease is below how much f may rise by rounding alone, so that f can no
    longer judge the step and the caller judges it by the gradient instead. The KL loss
    (``loss`` 1) is a difference of terms of order log(m), so its rounding error does not
    shrink with f."""
    dec = 0.0
    for j in range(g.shape[0]):
        dec += g[j] * (v_new[j] - v[j])
    if not np.isfinite(f_new):
        return 0
    if f_new <= f + 1e-4 * dec:
        return 1
    if loss is not None and loss == 1:
        slack = 64.0 * _EPS * (1.0 + abs(f))
    else:
        slack = 8.0 * _EPS * abs(f)
    return -1 if -dec <= slack else 0


@njit(**NJIT_INLINE)
def log_prior(p, logp):
    """logp[j] = log p over the n = len(logp) coordinates of EGD's state (p twice when
    signed: n = 2 len(p)); returns their sum of p, the constant of the KL term."""
    k = p.shape[0]
    psum = 0.0
    for j in range(logp.shape[0]):
        jj = j - k if j >= k else j
        logp[j] = np.log(p[jj])
        psum += p[jj]
    return psum


@njit(**NJIT)
def _egd_eval(x, B, logp, psum, lam, signed, u, w, code, r, loss, bits):
    """From u = log w: fill w, code, r = f(B code) - x; return the objective (``logp`` the
    log prior means over the n coordinates, ``psum`` their sum, the constant of the KL
    term; ``bits`` int64 scratch of length n)."""
    k = B.shape[1]
    n = u.shape[0]
    vexp(u, w, bits)
    kl = 0.0
    for j in range(n):
        uj = u[j]
        if uj > _EXP_CLIP:
            return np.inf
        kl += w[j] * (uj - logp[j] - 1.0)
    _unpack(w, k, signed, code)
    matvec(B, code, r)  # loss_residual's two steps (one dispatcher less to compile)
    return residual_from_z(x, r, loss) + lam * (kl + psum)


@njit(**NJIT)
def _egd_grad(B, logp, lam, signed, u, r, c, g):
    """g = dL/dw (logp over the n coordinates, like u); returns max |g|."""
    rmatvec(B, r, c)
    return egd_grad_from_c(logp, lam, signed, u, c, g)


@njit(**NJIT)
def egd_grad_from_c(logp, lam, signed, u, c, g):
    """:func:`_egd_grad` given c = B^T r; returns max |g|."""
    k = c.shape[0]
    for j in range(k):  # no j % k in these loops: an integer division per coordinate
        g[j] = c[j] + lam * (u[j] - logp[j])
    if signed:
        for j in range(k):
            g[k + j] = -c[j] + lam * (u[k + j] - logp[k + j])
    return max_abs(g, u.shape[0])


@njit(**NJIT)
def kl_egd(x, B, p, lam, signed, tol, max_iter, u, alpha, trace):
    """Exponentiated gradient descent with backtracking and an adaptive step, squared loss.
    See :func:`egd` (``loss=None, diag=None``: the squared loss's plain EGD)."""
    return egd(x, B, p, lam, signed, tol, max_iter, u, alpha, trace, None, None)


@njit(**NJIT)
def _egd_metric(x, B, lam, signed, w, r, loss, cn2, s):
    """Diagonal metric s_j = 1 / (lam + w_j h_j) with h_j the curvature of the loss along
    atom j (||b_j||^2 for the squared loss, sum_i B_ij^2 softmax_i for the KL loss): the step
    of u_j = log w_j is then a diagonal Newton step (tiny coordinates jump to their fixed
    point log p_j - c_j / lam at alpha = 1)."""
    m, k = B.shape
    if loss is not None and loss == 1:
        for j in range(k):
            cn2[j] = 0.0
        for i in range(m):
            qi = r[i] + x[i]
            for j in range(k):
                cn2[j] += B[i, j] * B[i, j] * qi
    for j in range(k):
        s[j] = 1.0 / (lam + w[j] * cn2[j])
    if signed:
        for j in range(k):
            s[k + j] = 1.0 / (lam + w[k + j] * cn2[j])


@njit(**NJIT)
def egd(x, B, p, lam, signed, tol, max_iter, u, alpha, trace, loss, diag):
    """Exponentiated gradient descent with backtracking and an adaptive step.

    Parameters
    ----------
    x: float64[m]
    B: float64[m, k]
    p: float64[k]  prior mean (positive)
    lam: float  regularisation weight (positive)
    signed: bool  solve on the expanded basis [B, -B]
    tol: float  stop when max |dL/dw| <= tol
    max_iter: int  maximum accepted steps
    u: float64[n]  log of the starting point (n = k, or 2k when signed); overwritten with
        log of the solution
    alpha: float  initial step size
    trace: float64[:]  objective after each accepted step (length 0 to skip recording)
    loss: int  0 = squared loss / linear transfer; 1 = KL loss / softmax transfer; None =
        the squared loss, known when compiling: the KL loss's branches are not compiled
    diag: bool  scale the step by the diagonal metric of ``_egd_metric`` (False: the
        paper's plain EGD); None = plain EGD, known when compiling (the metric's code is
        not compiled)

    Returns
    -------
    n_iter: int, alpha: float (the adapted step, to carry to the next example), gmax: float
    """
    m, k = B.shape
    n = u.shape[0]
    logp = np.empty(n)  # log p over the n coordinates (p twice when signed)
    psum = log_prior(p, logp)
    w = np.empty(n)
    w_new = np.empty(n)
    u_new = np.empty(n)
    bits = np.empty(n, dtype=np.int64)
    g = np.empty(n)
    g_new = np.empty(n)
    code = np.empty(k)
    c = np.empty(k)
    r = np.empty(m)
    r_new = np.empty(m)
    s = np.empty(n)  # the metric (ones: plain EGD)
    for j in range(n):
        s[j] = 1.0
    cn2 = np.empty(k)
    if diag is not None and diag:  # (as written: so that None prunes the branch)
        col_sq_norms(B, cn2)
    f = _egd_eval(x, B, logp, psum, lam, signed, u, w, code, r, loss, bits)
    if not np.isfinite(f):
        # the starting point overflows: start from the prior mean instead
        for j in range(n):
            u[j] = logp[j]
        f = _egd_eval(x, B, logp, psum, lam, signed, u, w, code, r, loss, bits)
    rmatvec(B, r, c)  # (_egd_grad's two steps, here and below: one dispatcher less)
    gmax = egd_grad_from_c(logp, lam, signed, u, c, g)
    n_trials = 0
    n_back = 0
    it = 0
    while gmax > tol and it < max_iter:
        if diag is not None and diag:
            _egd_metric(x, B, lam, signed, w, r, loss, cn2, s)
        a = alpha
        accepted = False
        while a > 1e-300:
            n_trials += 1
            for j in range(n):
                u_new[j] = u[j] - a * s[j] * g[j]
            f_new = _egd_eval(x, B, logp, psum, lam, signed, u_new, w_new, code, r_new, loss,
                               bits)
            # Armijo condition in the mirror geometry
            test = armijo(f_new, f, g, w_new, w, loss)
            if test > 0:
                accepted = True
                break
            elif test < 0:
                # the predicted decrease is below the rounding of f, which can no longer
                # judge the step: accept it only if it shrinks the gradient in the mirror
                # metric, sum_j s_j w_j g_j^2 (which falls along any small enough EGD step)
                rmatvec(B, r_new, c)
                egd_grad_from_c(logp, lam, signed, u_new, c, g_new)
                q_old = 0.0
                q_new = 0.0
                for j in range(n):
                    q_old += s[j] * w[j] * g[j] * g[j]
                    q_new += s[j] * w_new[j] * g_new[j] * g_new[j]
                if q_new < q_old:
                    accepted = True
                    break
            a *= 0.5
            n_back += 1
        if not accepted:
            break
        alpha = a
        for j in range(n):
            u[j] = u_new[j]
            w[j] = w_new[j]
        for i in range(m):
            r[i] = r_new[i]
        f = f_new
        if trace.shape[0] > it:
            trace[it] = f
        it += 1
        rmatvec(B, r, c)
        gmax = egd_grad_from_c(logp, lam, signed, u, c, g)
        ratio = n_back / n_trials
        if ratio > 0.6:
            alpha *= 0.9
        elif ratio < 0.3:
            alpha *= 1.1
    return it, alpha, gmax


# ---------------------------------------------------------------------------------------
# Newton in the primal (any loss): the KL loss's solver
# ---------------------------------------------------------------------------------------


@njit(**NJIT)
def _code_prior(c, p, signed, R1, R2):
    """Prior term of the code c (length k) and its first/second derivatives.

    Unsigned: the KL divergence, R = c log(c/p) - c + p. Signed: the expanded-basis KL at
    its optimal split w+ w- = p^2, which is the paper's arcsinh prior (Appendix B):
    R = c a - sqrt(c^2 + 4p^2) + 2p with a = arcsinh(c / 2p), R' = a, R'' = 1/sqrt(c^2+4p^2).
    """
    total = 0.0
    for j in range(c.shape[0]):
        cj = c[j]
        pj = p[j]
        if signed:
            sq = np.sqrt(cj * cj + 4.0 * pj * pj)
            a = np.arcsinh(cj / (2.0 * pj))
            total += cj * a - sq + 2.0 * pj
            R1[j] = a
            R2[j] = 1.0 / sq
        else:
            lw = np.log(cj / pj)
            total += cj * lw - cj + pj
            R1[j] = lw
            R2[j] = 1.0 / cj
    return total


@njit(**NJIT)
def newton_primal(x, B, p, lam, signed, tol, max_iter, c, loss, hess_drop, max_kept):
    """Damped Newton on the primal, in code space, for either loss.

    Signed codes are solved directly in the k-dimensional code space with the arcsinh prior
    (equivalent to the expanded basis, see ``_code_prior``): unconstrained. Unsigned codes
    keep c > 0 through the update c + t delta where delta_j >= 0 and c exp(t delta / c) where
    delta_j < 0 (first order equal to the Newton step).

    The Hessian is ``B^T S B + lam diag(R'')`` with S = I (squared loss) or
    S = diag(q) - q q^T, q = softmax(B c) (KL loss). Atoms whose loss curvature h_j =
    b_j^T S b_j exceeds ``hess_drop * lam R''_j`` (at most ``max_kept``, the largest) get the
    exact s x s Newton system, built in O(m s^2); the others keep only their diagonal. The
    gradient is always exact; stops on max |dL/dc| <= tol (for signed codes this equals the
    expanded-basis gradient's max at the optimal split).

    Parameters
    ----------
    x, B, p, lam, signed, tol, max_iter, loss
        As in :func:`egd`.
    c: float64[k]  starting code (positive when unsigned); overwritten with the solution
    hess_drop: float, max_kept: int  which atoms get the exact Newton system

    Returns
    -------
    n_iter: int, gmax: float
    """
    m, k = B.shape
    R1 = np.empty(k)
    R2 = np.empty(k)
    R1n = np.empty(k)
    R2n = np.empty(k)
    g = np.empty(k)
    g_new = np.empty(k)
    h = np.empty(k)
    delta = np.empty(k)
    c_new = np.empty(k)
    Bx = np.empty(k)
    r = np.empty(m)
    r_new = np.empty(m)
    q = np.empty(m)
    keep = np.empty(k, dtype=np.int64)
    score = np.empty(k)
    if loss == 1:
        rmatvec(B, x, Bx)
    f = loss_residual(x, B, c, r, loss) + lam * _code_prior(c, p, signed, R1, R2)
    rmatvec(B, r, g)
    gmax = 0.0
    for j in range(k):
        g[j] += lam * R1[j]
        gmax = max(gmax, abs(g[j]))
    it = 0
    while gmax > tol and it < max_iter:
        # loss curvature along each atom, h_j = b_j^T S b_j
        if loss == 1:
            for i in range(m):
                q[i] = r[i] + x[i]
            for j in range(k):
                h[j] = 0.0
            for i in range(m):
                qi = q[i]
                for j in range(k):
                    h[j] += B[i, j] * B[i, j] * qi
            for j in range(k):
                bq = g[j] - lam * R1[j] + Bx[j]  # b_j . q = (B^T (q - x))_j + b_j . x
                h[j] = max(h[j] - bq * bq, 0.0)
        else:
            col_sq_norms(B, h)
        s = 0
        for j in range(k):
            delta[j] = -g[j] / (lam * R2[j] + h[j])
            score[j] = h[j] / (lam * R2[j])
            if score[j] > hess_drop:
                keep[s] = j
                s += 1
        if s > max_kept:
            order = np.argsort(-score)
            for t in range(max_kept):
                keep[t] = order[t]
            s = max_kept
        if s > 0:
            K = np.empty((s, s))
            rhs = np.empty(s)
            bqs = np.zeros(s)
            if loss == 1:
                for t in range(s):
                    bqs[t] = g[keep[t]] - lam * R1[keep[t]] + Bx[keep[t]]
            for t in range(s):
                jt = keep[t]
                for v in range(t + 1):
                    jv = keep[v]
                    acc = 0.0
                    if loss == 1:
                        for i in range(m):
                            acc += B[i, jt] * B[i, jv] * q[i]
                        acc -= bqs[t] * bqs[v]
                    else:
                        for i in range(m):
                            acc += B[i, jt] * B[i, jv]
                    K[t, v] = acc
                    K[v, t] = acc
                K[t, t] += lam * R2[jt]
                rhs[t] = -g[jt]
            y = solve_spd(K, rhs)
            for t in range(s):
                delta[keep[t]] = y[t]
        step = 1.0
        accepted = False
        while step > 1e-12:
            for j in range(k):
                if signed or delta[j] >= 0.0:
                    c_new[j] = c[j] + step * delta[j]
                else:
                    c_new[j] = c[j] * np.exp(step * delta[j] / c[j])
            f_new = loss_residual(x, B, c_new, r_new, loss)
            f_new += lam * _code_prior(c_new, p, signed, R1n, R2n)
            test = armijo(f_new, f, g, c_new, c, loss)
            if test > 0:
                accepted = True
                break
            elif test < 0:
                # f can no longer judge a step this small: accept it if it shrinks the
                # gradient (a Newton step near the optimum does)
                rmatvec(B, r_new, g_new)
                gmax_new = 0.0
                for j in range(k):
                    gmax_new = max(gmax_new, abs(g_new[j] + lam * R1n[j]))
                if gmax_new < gmax:
                    accepted = True
                    break
            step *= 0.5
        if not accepted:
            break
        for j in range(k):
            c[j] = c_new[j]
            R1[j] = R1n[j]
            R2[j] = R2n[j]
        for i in range(m):
            r[i] = r_new[i]
        f = f_new
        it += 1
        rmatvec(B, r, g)
        gmax = 0.0
        for j in range(k):
            g[j] += lam * R1[j]
            gmax = max(gmax, abs(g[j]))
    return it, gmax


# ---------------------------------------------------------------------------------------
# Newton on the Fenchel dual
# ---------------------------------------------------------------------------------------


@njit(**NJIT)
def _dual_value(x, nu, p, lam, signed, z, ez, bits):
    """Dual objective (up to the constant lam * sum p) at nu, with z = B^T nu / lam
    (``ez`` float64 and ``bits`` int64 scratch of length k)."""
    m = x.shape[0]
    k = z.shape[0]
    for j in range(k):
        zj = z[j]
        if zj > _EXP_CLIP or (signed and zj < -_EXP_CLIP):
            return -np.inf
    v = 0.0
    for i in range(m):
        v += nu[i] * x[i] - 0.5 * nu[i] * nu[i]
    vexp(z, ez, bits)
    s = 0.0
    for j in range(k):
        e = ez[j]
        s += p[j] * e
        if signed:
            s += p[j] / e
    return v - lam * s


@njit(**NJIT)
def _dual_mag(x, nu, lam, d):
    """Size of the terms _dual_value sums: its rounding error is a few eps times this
    (|phi| itself can be far smaller, by cancellation). ``d`` = w+ + w- at the same nu (from
    ``_dual_primal``): the sum of the prior's terms p exp(z) (+ p exp(-z))."""
    m = x.shape[0]
    v = 0.0
    for i in range(m):
        v += abs(nu[i] * x[i]) + 0.5 * nu[i] * nu[i]
    s = 0.0
    for j in range(d.shape[0]):
        s += d[j]
    return v + lam * s


@njit(**NJIT)
def _dual_primal(x, B, nu, p, lam, signed, z, w, code, d, r, ezs, bits):
    """From nu and z = B^T nu/lam: fill w, code, d = w+ + w- and the dual gradient
    r = x - nu - B code (B^T r is minus the primal gradient at w); ``ezs`` float64 and
    ``bits`` int64 scratch of length k."""
    m, k = B.shape
    vexp(z, ezs, bits)
    for j in range(k):
        ez = ezs[j]
        e = p[j] * ez
        w[j] = e
        if signed:
            f = p[j] / ez
            w[k + j] = f
            code[j] = e - f
            d[j] = e + f
        else:
            code[j] = e
            d[j] = e
    matvec(B, code, r)
    for i in range(m):
        r[i] = x[i] - nu[i] - r[i]


@njit(**NJIT)
def _newton_direction(B, cn2, lam, d, r, hess_drop, max_kept, delta):
    """delta ~= M^{-1} r for the dual Hessian M = I + sum_j (d_j/lam) b_j b_j^T.

    Atoms whose weight a_j = (d_j/lam) ||b_j||^2 exceeds ``hess_drop`` (at most
    ``max_kept`` of them, the heaviest) are kept exactly; the others are replaced by the
    isotropic matrix with the same trace, so M~ = g I + B_S diag(d_S/lam) B_S^T with
    g = 1 + sum_dropped a_j / m, solved by Woodbury in an s x s system. Returns s.
    """
    m, k = B.shape
    a = np.empty(k)
    s = 0
    for j in range(k):
        a[j] = d[j] / lam * cn2[j]
        if a[j] > hess_drop:
            s += 1
    keep = np.empty(s, dtype=np.int64)
    if s > max_kept:
        order = np.argsort(-a)
        s = max_kept
        keep = np.sort(order[:s])
    else:
        t = 0
        for j in range(k):
            if a[j] > hess_drop:
                keep[t] = j
                t += 1
    is_kept = np.zeros(k, dtype=np.bool_)
    for t in range(s):
        is_kept[keep[t]] = True
    dropped = 0.0
    for j in range(k):
        if not is_kept[j]:
            dropped += a[j]
    gam = 1.0 + dropped / m
    if s == 0:
        for i in range(m):
            delta[i] = r[i] / gam
        return 0
    Bs = np.empty((s, m))
    for t in range(s):
        for i in range(m):
            Bs[t, i] = B[i, keep[t]]
    if s >= m:
        # as many kept atoms as dimensions: the m x m system is the smaller one (one BLAS
        # product; batch drivers run with BLAS pinned to one thread)
        Bw = np.empty((s, m))
        for t in range(s):
            om = d[keep[t]] / lam
            for i in range(m):
                Bw[t, i] = om * Bs[t, i]
        M = np.dot(Bs.T, Bw)
        for i in range(m):
            M[i, i] += gam
        y = solve_spd(M, r.copy())
        for i in range(m):
            delta[i] = y[i]
        return s
    K = np.empty((s, s))
    rhs = np.empty(s)
    for t in range(s):
        rt = Bs[t]
        rhs[t] = dot(rt, r)
        for q in range(t + 1):
            v = dot(rt, Bs[q])
            K[t, q] = v
            K[q, t] = v
        K[t, t] += gam * lam / d[keep[t]]
    y = solve_spd(K, rhs)
    for i in range(m):
        delta[i] = r[i]
    for t in range(s):
        yt = y[t]
        for i in range(m):
            delta[i] -= Bs[t, i] * yt
    for i in range(m):
        delta[i] /= gam
    return s


@njit(**NJIT)
def kl_newton(x, B, p, lam, signed, tol, max_iter, nu, hess_drop, max_kept, w):
    """Damped (inexact) Newton on the dual of the KL-prior problem.

    Parameters
    ----------
    x: float64[m]
    B: float64[m, k]
    p: float64[k]
    lam: float
    signed: bool
    tol: float  stop when the primal max |dL/dw| <= tol
    max_iter: int  maximum Newton steps
    nu: float64[m]  starting dual point (zeros, or x - B c for a warm start from code c);
        overwritten with the final dual point (the residual x - B c)
    hess_drop, max_kept: float, int  which atoms the Hessian keeps exactly (see
        ``_newton_direction``); the gradient always keeps all of them
    w: float64[n]  output: the primal solution (n = k, or 2k when signed)

    Returns
    -------
    n_iter: int, gmax: float (max |dL/dw| at the returned w)
    """
    m, k = B.shape
    cn2 = np.empty(k)
    col_sq_norms(B, cn2)
    cmax = 0.0
    for j in range(k):
        if cn2[j] > cmax:
            cmax = cn2[j]
    cmax = np.sqrt(cmax)
    z = np.empty(k)
    rmatvec(B, nu, z)
    for j in range(k):
        z[j] /= lam
    code = np.empty(k)
    d = np.empty(k)
    r = np.empty(m)
    delta = np.empty(m)
    u = np.empty(k)
    z_new = np.empty(k)
    nu_new = np.empty(m)
    ez = np.empty(k)
    bits = np.empty(k, dtype=np.int64)
    phi = _dual_value(x, nu, p, lam, signed, z, ez, bits)
    if not np.isfinite(phi):
        # the starting point overflows: fall back to nu = 0 (w = p)
        for i in range(m):
            nu[i] = 0.0
        for j in range(k):
            z[j] = 0.0
        phi = _dual_value(x, nu, p, lam, signed, z, ez, bits)
    _dual_primal(x, B, nu, p, lam, signed, z, w, code, d, r, ez, bits)
    it = 0
    kept_cap = max_kept
    last = np.inf
    full_step = False
    while it < max_iter:
        # max_j |b_j . r| <= max_j ||b_j|| ||r||: the exact test runs only once the bound passes
        bound = cmax * np.sqrt(dot(r, r))
        if bound <= tol:
            break
        if bound <= 100.0 * tol and _max_abs_rmatvec(B, r, u) <= tol:
            break
        if it >= 8 and full_step and bound > 0.25 * last and kept_cap < k:
            # still here after 8 steps, and a full Newton step gained little: the dropped
            # atoms matter, keep twice as many
            kept_cap = min(2 * kept_cap, k)
        last = bound
        _newton_direction(B, cn2, lam, d, r, hess_drop, kept_cap, delta)
        rmatvec(B, delta, u)
        slope = dot(r, delta)
        for j in range(k):
            u[j] /= lam
        mag = _dual_mag(x, nu, lam, d)
        # a step moves the log-weights z by t u: cap the moves that could overflow (rises,
        # and falls too when signed) at _Z_STEP, so that a Newton step from far away (an
        # example of norm 1e13, whose full step overflows every exp) is scaled down to a
        # bounded step in log-space instead of being halved below the line search's floor;
        # the cap is scale-free
        umax = 0.0
        for j in range(k):
            a = abs(u[j]) if signed else u[j]  # unsigned: only a rise can overflow
            if a > umax:
                umax = a
        t = 1.0
        if umax > _Z_STEP:
            t = _Z_STEP / umax
        t0 = t
        accepted = False
        while t > 1e-12 * t0:
            for i in range(m):
                nu_new[i] = nu[i] + t * delta[i]
            for j in range(k):
                z_new[j] = z[j] + t * u[j]
            phi_new = _dual_value(x, nu_new, p, lam, signed, z_new, ez, bits)
            if phi_new >= phi + 1e-4 * t * slope - 8.0 * _EPS * mag:
                accepted = True
                break
            t *= 0.5
        if not accepted:
            break
        full_step = t == t0
        for i in range(m):
            nu[i] = nu_new[i]
        for j in range(k):
            z[j] = z_new[j]
        phi = phi_new
        it += 1
        _dual_primal(x, B, nu, p, lam, signed, z, w, code, d, r, ez, bits)
    gmax = _max_abs_rmatvec(B, r, u)
    return it, gmax


@njit(**NJIT)
def _max_abs_rmatvec(B, r, out):
    rmatvec(B, r, out)
    return max_abs(out, out.shape[0])


# ---------------------------------------------------------------------------------------
# Batch drivers: one example per thread
# ---------------------------------------------------------------------------------------


@njit(**NJIT_PARALLEL)
def kl_newton_batch(X, B, p, lam, signed, tol, max_iter, Nu, hess_drop, max_kept, W, n_iter, gmax):
    for i in prange(X.shape[0]):
        it, gm = kl_newton(
            X[i], B, p, lam, signed, tol, max_iter, Nu[i], hess_drop, max_kept, W[i]
        )
        n_iter[i] = it
        gmax[i] = gm


@njit(**NJIT_PARALLEL)
def newton_primal_batch(X, B, p, lam, signed, tol, max_iter, C, loss, hess_drop, max_kept,
                        n_iter, gmax):
    for i in prange(X.shape[0]):
        it, gm = newton_primal(X[i], B, p, lam, signed, tol, max_iter, C[i], loss, hess_drop,
                               max_kept)
        n_iter[i] = it
        gmax[i] = gm


@njit(**NJIT_PARALLEL)
def egd_batch(X, B, p, lam, signed, tol, max_iter, U, alpha, n_iter, gmax, loss, diag):
    empty = np.empty(0)
    for i in prange(X.shape[0]):
        it, a, gm = egd(X[i], B, p, lam, signed, tol, max_iter, U[i], alpha, empty, loss, diag)
        n_iter[i] = it
        gmax[i] = gm
