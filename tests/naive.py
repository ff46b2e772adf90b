"""Slow, obviously-correct NumPy twins of the numba kernels (stumpy's ``tests/naive.py``).

Every function here is written for readability, not speed: plain loops over the paper's
update rules, explicit matrices (the signed KL twins materialise ``[B, -B]``, which the
kernels never do), and ``np.linalg`` for anything linear-algebraic. Tests compare the
kernels in ``streamsc._kernels`` against these.

Conventions (as in the kernels): ``B`` is ``(m, k)`` with one atom per column; a signed KL
state has length ``2k`` with ``w[:k] = w+`` and ``w[k:] = w-``, and the code is
``w+ - w-``.
"""

import numpy as np

EPS = np.finfo(np.float64).eps


# ---------------------------------------------------------------------------------------
# linear algebra
# ---------------------------------------------------------------------------------------


def matvec(B, v):
    """B @ v as a double loop."""
    m, k = B.shape
    out = np.zeros(m)
    for i in range(m):
        for j in range(k):
            out[i] += B[i, j] * v[j]
    return out


def rmatvec(B, r):
    """B.T @ r as a double loop."""
    m, k = B.shape
    out = np.zeros(k)
    for j in range(k):
        for i in range(m):
            out[j] += B[i, j] * r[i]
    return out


def col_sq_norms(B):
    """Squared Euclidean norm of every column."""
    return np.array([float(np.sum(B[:, j] ** 2)) for j in range(B.shape[1])])


def solve_spd(A, b):
    """Solve A y = b (A symmetric positive definite)."""
    return np.linalg.solve(A, b)


# ---------------------------------------------------------------------------------------
# KL prior
# ---------------------------------------------------------------------------------------


def expanded_basis(B, signed):
    """The basis the KL code lives on: B, or the explicit [B, -B] when signed."""
    return np.hstack([B, -B]) if signed else B


def expanded_prior(p, signed):
    """The prior mean on the expanded basis: p, or [p, p] when signed."""
    return np.concatenate([p, p]) if signed else p


def kl_code(w, k, signed):
    """The code c(w): w itself, or w+ - w- when signed."""
    return w[:k] - w[k:] if signed else w.copy()


def kl_objective(x, B, p, lam, signed, w):
    """1/2 ||x - Bexp w||^2 + lam * sum_j [w_j log(w_j/p_j) - w_j + p_j] (0 log 0 = 0)."""
    Be = expanded_basis(B, signed)
    pe = expanded_prior(p, signed)
    res = x - Be @ w
    kl = 0.0
    for j in range(w.shape[0]):
        if w[j] > 0:
            kl += w[j] * np.log(w[j] / pe[j]) - w[j] + pe[j]
        else:
            kl += pe[j]
    return 0.5 * float(res @ res) + lam * kl


def kl_gradient(x, B, p, lam, signed, w):
    """dL/dw = Bexp^T (Bexp w - x) + lam * log(w / p)   (paper eq. 6, linear transfer)."""
    Be = expanded_basis(B, signed)
    pe = expanded_prior(p, signed)
    return Be.T @ (Be @ w - x) + lam * np.log(w / pe)


def kl_hessian(x, B, p, lam, signed, w):
    """d2L/dw2 = Bexp^T Bexp + lam * diag(1/w)."""
    Be = expanded_basis(B, signed)
    return Be.T @ Be + lam * np.diag(1.0 / w)


def kl_egd(x, B, p, lam, signed, tol, max_iter, w0, alpha, armijo=1e-4):
    """The paper's EGD (section 4, eq. 5) as a plain loop on the explicit expanded basis.

    Update ``w_j <- w_j * exp(-a * dL/dw_j)``; backtracking halves ``a`` until the Armijo
    condition ``L(w_new) <= L(w) + armijo * g.(w_new - w)`` holds (with a rounding slack
    of ``8 eps |L(w)|``); after each accepted step, ``alpha`` shrinks by 10% if more than
    60% of all trials so far were backtracks, grows by 10% if fewer than 30% were
    (footnote 4). Stops when ``max |dL/dw| <= tol`` or after ``max_iter`` accepted steps.

    Returns
    -------
    w, n_iter, alpha, gmax, trace (objective after each accepted step), iterates (list of w)
    """
    w = np.array(w0, dtype=float)
    f = kl_objective(x, B, p, lam, signed, w)
    g = kl_gradient(x, B, p, lam, signed, w)
    n_trials = n_back = 0
    trace, iterates = [], []
    it = 0
    while np.max(np.abs(g)) > tol and it < max_iter:
        a = alpha
        accepted = False
        while a > 1e-300:
            n_trials += 1
            with np.errstate(over="ignore"):
                w_new = w * np.exp(-a * g)
            if np.all(np.isfinite(w_new)):
                f_new = kl_objective(x, B, p, lam, signed, w_new)
                if f_new <= f + armijo * float(g @ (w_new - w)) + 8 * EPS * abs(f):
                    accepted = True
                    break
            a *= 0.5
            n_back += 1
        if not accepted:
            break
        alpha = a
        w, f = w_new, f_new
        trace.append(f)
        iterates.append(w.copy())
        it += 1
        g = kl_gradient(x, B, p, lam, signed, w)
        ratio = n_back / n_trials
        if ratio > 0.6:
            alpha *= 0.9
        elif ratio < 0.3:
            alpha *= 1.1
    return w, it, alpha, float(np.max(np.abs(g))), np.array(trace), iterates


def kl_dual(x, B, p, lam, signed, nu):
    """The Fenchel dual D(nu) (full value, including the constant):

        D(nu) = nu.x - 1/2 ||nu||^2 - lam * sum_j p_j (exp(z_j) - 1)
                                     [- lam * sum_j p_j (exp(-z_j) - 1)]

    with z = B^T nu / lam; the bracket is the signed case. D(nu) <= L(w) for all w, nu, with
    equality at the optimum, where nu = x - B c and w = p exp(+-z).
    """
    z = B.T @ nu / lam
    val = float(nu @ x) - 0.5 * float(nu @ nu) - lam * float(np.sum(p * (np.exp(z) - 1.0)))
    if signed:
        val -= lam * float(np.sum(p * (np.exp(-z) - 1.0)))
    return val


def kl_dual_primal(B, p, lam, signed, nu):
    """The primal point w(nu) = p exp(Bexp^T nu / lam) paired with a dual point."""
    Be = expanded_basis(B, signed)
    pe = expanded_prior(p, signed)
    return pe * np.exp(Be.T @ nu / lam)


# ---------------------------------------------------------------------------------------
# L1 / L2 priors
# ---------------------------------------------------------------------------------------


def soft_threshold(c, t):
    """sign(c) * max(|c| - t, 0)."""
    return np.sign(c) * max(abs(c) - t, 0.0)


def enet_objective(x, B, l1, l2, w):
    """1/2 ||x - B w||^2 + l1 ||w||_1 + l2/2 ||w||^2."""
    r = x - B @ w
    return 0.5 * float(r @ r) + l1 * float(np.sum(np.abs(w))) + 0.5 * l2 * float(w @ w)


def enet_violation(x, B, l1, l2, positive, w):
    """Max over j of the distance from 0 to the subdifferential of the objective in w_j
    (restricted to w_j >= 0 when ``positive``)."""
    g = B.T @ (B @ w - x) + l2 * w  # gradient of the smooth part
    v = 0.0
    for j in range(w.shape[0]):
        if w[j] > 0:
            a = abs(g[j] + l1)
        elif w[j] < 0:
            a = abs(g[j] - l1)
        elif positive:
            a = max(-g[j] - l1, 0.0)
        else:
            a = max(abs(g[j]) - l1, 0.0)
        v = max(v, a)
    return v


def enet_cd(x, B, l1, l2, positive, tol, max_iter, w0=None):
    """Plain cyclic coordinate descent with soft-thresholding (full sweeps, no active set).

    Each coordinate is set to its exact minimiser with the others fixed:
    ``w_j = S(b_j.(x - B w + b_j w_j), l1) / (||b_j||^2 + l2)`` (clipped at 0 when
    ``positive``). Stops when ``enet_violation <= tol`` or after ``max_iter`` sweeps.

    Returns
    -------
    w, n_sweeps
    """
    m, k = B.shape
    w = np.zeros(k) if w0 is None else np.array(w0, dtype=float)
    cn2 = col_sq_norms(B)
    sweeps = 0
    while enet_violation(x, B, l1, l2, positive, w) > tol and sweeps < max_iter:
        for j in range(k):
            rj = x - B @ w + B[:, j] * w[j]
            c = float(B[:, j] @ rj)
            new = soft_threshold(c, l1) / (cn2[j] + l2)
            if positive:
                new = max(new, 0.0)
            w[j] = new
        sweeps += 1
    return w, sweeps


def ridge(X, B, lam):
    """Closed-form L2 codes: W[i] = (B^T B + lam I)^{-1} B^T X[i]."""
    k = B.shape[1]
    A = B.T @ B + lam * np.eye(k)
    return np.linalg.solve(A, B.T @ np.atleast_2d(X).T).T


# ---------------------------------------------------------------------------------------
# independent high-precision KL reference (scipy, no streamsc code)
# ---------------------------------------------------------------------------------------


def kl_reference(x, B, p, lam, signed, w0=None):
    """The KL-prior code to near machine precision by scipy alone.

    L-BFGS-B on ``v = log w`` (``ftol=0``, tiny ``gtol``, ``maxcor=50``) from ``w0`` (default:
    the prior mean), then a polish by MINPACK's hybrid Newton root finder
    (``scipy.optimize.root(method="hybr")``) on the stationarity condition
    ``dL/dw (exp v) = Bexp^T (Bexp w - x) + lam (v - log p) = 0`` with its exact Jacobian
    ``Bexp^T Bexp diag(w) + lam I``. No line search on the objective is involved in the
    polish, so the result is accurate to rounding of the gradient, not of the objective.

    Returns
    -------
    w : the state on the expanded basis (length k, or 2k when signed)
    gmax : max |dL/dw| at w
    """
    from scipy.optimize import minimize, root

    Be = expanded_basis(B, signed)
    pe = expanded_prior(p, signed)
    logp = np.log(pe)
    G = Be.T @ Be
    bx = Be.T @ x

    def f(v):
        w = np.exp(v)
        r = Be @ w - x
        return 0.5 * float(r @ r) + lam * float(np.sum(w * (v - logp) - w + pe))

    def grad_w(v):
        return G @ np.exp(v) - bx + lam * (v - logp)

    def grad_v(v):
        return np.exp(v) * grad_w(v)

    v = logp.copy() if w0 is None else np.log(np.asarray(w0, dtype=float))
    if w0 is None:
        opts = dict(ftol=0.0, gtol=1e-14, maxcor=50, maxiter=20000, maxfun=40000)
        v = minimize(f, v, jac=grad_v, method="L-BFGS-B", options=opts).x
    sol = root(
        grad_w, v, jac=lambda v: G * np.exp(v)[None, :] + lam * np.eye(v.shape[0]),
        method="hybr", options=dict(xtol=1e-15),
    )
    # MINPACK reports "no progress" once it is at rounding level; keep the better point
    if np.max(np.abs(grad_w(sol.x))) < np.max(np.abs(grad_w(v))):
        v = sol.x
    return np.exp(v), float(np.max(np.abs(grad_w(v))))


def newton_direction(B, lam, d, r, hess_drop, max_kept):
    """The dual Newton direction with the kernel's Hessian approximation, by dense algebra.

    The dual Hessian is ``M = I + B diag(d / lam) B^T``. Atoms whose weight
    ``a_j = d_j / lam * ||b_j||^2`` exceeds ``hess_drop`` are kept (only the ``max_kept``
    heaviest if there are more); the rest are replaced by the isotropic matrix with the
    same trace, ``M~ = g I + B_S diag(d_S / lam) B_S^T`` with ``g = 1 + sum_dropped a_j / m``.

    Returns
    -------
    delta = M~^{-1} r, s = the number of kept atoms
    """
    m, k = B.shape
    a = d / lam * col_sq_norms(B)
    keep = np.flatnonzero(a > hess_drop)
    if keep.size > max_kept:
        keep = np.sort(np.argsort(-a)[:max_kept])
    dropped = np.ones(k, dtype=bool)
    dropped[keep] = False
    gam = 1.0 + float(np.sum(a[dropped])) / m
    Bs = B[:, keep]
    M = gam * np.eye(m) + Bs @ np.diag(d[keep] / lam) @ Bs.T
    return np.linalg.solve(M, r), int(keep.size)


# ---------------------------------------------------------------------------------------
# implicit differentiation of the codes (vector-Jacobian products)
# ---------------------------------------------------------------------------------------


def naive_kl_vjp(x, B, w, grad_w, lam, p, signed, halves=None):
    """VJP of a KL code through the dense k x k (2k x 2k signed) Hessian of the paper's
    eq. 9: ``H = Bexp^T Bexp + lam diag(1/u)`` on the explicit expanded basis, state
    ``u = w`` or ``(w+, w-)``, state cotangent ``(g, -g)`` when signed, ``v = H^{-1} g``,
    ``dL/dBexp = (x - Bexp u) v^T - (Bexp v) u^T`` folded onto B (``[B, -B]``: first half
    minus second), ``dL/dx = Bexp v``, ``dL/dlam = -v . log(u / p)``.

    Signed codes without ``halves`` are split with ``w+ w- = p^2``.

    Returns
    -------
    grad_B (m, k), grad_x (m,), grad_lam (float)
    """
    k = B.shape[1]
    if signed:
        if halves is None:
            wp = 0.5 * (w + np.sqrt(w * w + 4.0 * p * p))
            halves = (wp, wp - w)
        u = np.concatenate(halves)
        g = np.concatenate([grad_w, -grad_w])
    else:
        u = np.asarray(w, dtype=float)
        g = np.asarray(grad_w, dtype=float)
    Be = expanded_basis(B, signed)
    pe = expanded_prior(p, signed)
    H = Be.T @ Be + lam * np.diag(1.0 / u)
    v = np.linalg.solve(H, g)
    grad_Be = np.outer(x - Be @ u, v) - np.outer(Be @ v, u)
    grad_B = grad_Be[:, :k] - grad_Be[:, k:] if signed else grad_Be
    return grad_B, Be @ v, float(-v @ np.log(u / pe))


def naive_enet_vjp(x, B, w, grad_w, prior, lam, signed):
    """VJP of an L1 or L2 code on its active set A: every atom for signed L2, otherwise
    ``{j: w_j != 0}``. There ``w_A = (B_A^T B_A + l2 I)^{-1} (B_A^T x - l1 sign(w_A))``, so
    ``v_A = (B_A^T B_A + l2 I)^{-1} g_A`` and ``v = 0`` off A; then the gradients as in
    :func:`naive_kl_vjp`, with ``dL/dlam = -v . sign(w)`` (L1) or ``-v . w`` (L2).

    Returns
    -------
    grad_B (m, k), grad_x (m,), grad_lam (float)
    """
    k = B.shape[1]
    l1, l2 = (lam, 0.0) if prior == "l1" else (0.0, lam)
    A = np.arange(k) if (prior == "l2" and signed) else np.flatnonzero(w != 0)
    BA = B[:, A]
    v = np.zeros(k)
    v[A] = np.linalg.solve(BA.T @ BA + l2 * np.eye(A.size), grad_w[A])
    grad_B = np.outer(x - B @ w, v) - np.outer(B @ v, w)
    dF_dlam = np.sign(w) if l1 else w
    return grad_B, B @ v, float(-v @ dF_dlam)


def surrogate_step(B, A, S, atoms):
    """Block-coordinate descent on Mairal et al.'s surrogate ``sum_t c_t ||x_t - B w_t||^2``
    (statistics ``A = sum c w w^T``, ``S = sum c x w^T``) over ``atoms`` in turn: atom j
    becomes ``u / ||u||``, ``u = b_j + (S_j - B A_j) / A_jj`` (the twin of
    ``_kernels.dictionary.surrogate_atoms``, from S instead of the running E = S - B A)."""
    B = B.copy()
    for j in atoms:
        if A[j, j] > 0:
            u = B[:, j] + (S[:, j] - B @ A[:, j]) / A[j, j]
            B[:, j] = u / np.linalg.norm(u)
    return B


def adagrad_step(B, g, w, G, lr):
    """The per-atom AdaGrad step of eq. 7's gradient ``g w^T``: ``G += ||g||^2 w^2``, atom j
    moves by ``-lr g w_j / sqrt(max(G_j, 1e-4 max G))``, then unit-norm atoms. Returns
    ``(B, G)``."""
    G = G + (g @ g) * w * w
    scale = lr / np.sqrt(np.maximum(G, 1e-4 * G.max()))
    B = B - np.outer(g, w * scale)
    return B / np.linalg.norm(B, axis=0), G
