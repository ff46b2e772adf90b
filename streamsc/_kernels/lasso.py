"""L1 and L2 priors (the paper's baselines) with squared loss and linear transfer.

Objective, for one example x (m,) and basis B (m, k)::

    L(w) = 1/2 ||x - B w||^2 + l1 ||w||_1 + l2/2 ||w||^2,     optionally w >= 0

L1 is ``l2 = 0``; L2 is ``l1 = 0``. Solved by cyclic coordinate descent on the residual
with an active set: sweeps over the non-zero coordinates until they settle, then one full
sweep and an exact optimality test. ``tol`` bounds the largest violation of the optimality
conditions (the minimum-norm subgradient), as for the KL prior.
"""

import numpy as np
from numba import njit, prange

from .._config import NJIT, NJIT_PARALLEL
from .linalg import col_sq_norms, matvec, rmatvec


@njit(**NJIT)
def enet_violation(x, B, l1, l2, positive, w, r, c):
    """Largest violation of the optimality conditions at w; r = x - B w and c = B^T r are
    given (c is overwritten with B^T r)."""
    k = w.shape[0]
    rmatvec(B, r, c)
    v = 0.0
    for j in range(k):
        gj = -c[j] + l2 * w[j]  # gradient of the smooth part
        if w[j] > 0.0:
            a = abs(gj + l1)
        elif w[j] < 0.0:
            a = abs(gj - l1)
        elif positive:
            a = max(-gj - l1, 0.0)
        else:
            a = max(abs(gj) - l1, 0.0)
        if a > v:
            v = a
    return v


@njit(**NJIT)
def _sweep(B, cn2, l1, l2, positive, w, r, idx, n_idx):
    """One cyclic pass over coordinates idx[:n_idx]. Returns max_j cn2_j |dw_j|."""
    m = B.shape[0]
    biggest = 0.0
    for t in range(n_idx):
        j = idx[t]
        if cn2[j] == 0.0:
            continue
        wj = w[j]
        c = 0.0
        for i in range(m):
            c += B[i, j] * r[i]
        c += cn2[j] * wj
        if positive:
            new = max(c - l1, 0.0) / (cn2[j] + l2)
        elif c > l1:
            new = (c - l1) / (cn2[j] + l2)
        elif c < -l1:
            new = (c + l1) / (cn2[j] + l2)
        else:
            new = 0.0
        dw = new - wj
        if dw != 0.0:
            for i in range(m):
                r[i] -= dw * B[i, j]
            w[j] = new
            ch = cn2[j] * abs(dw)
            if ch > biggest:
                biggest = ch
    return biggest


@njit(**NJIT)
def enet_cd(x, B, l1, l2, positive, tol, max_iter, w):
    """Coordinate descent for the L1/L2 objective.

    Parameters
    ----------
    x: float64[m]
    B: float64[m, k]
    l1, l2: float  penalty weights (>= 0)
    positive: bool  constrain w >= 0
    tol: float  stop when the optimality violation is <= tol
    max_iter: int  maximum number of sweeps (full and active-set ones together)
    w: float64[k]  starting point (warm start), overwritten with the solution

    Returns
    -------
    n_sweeps: int (full and active-set sweeps), violation: float
    """
    m, k = B.shape
    cn2 = np.empty(k)
    col_sq_norms(B, cn2)
    r = np.empty(m)
    c = np.empty(k)
    matvec(B, w, r)
    for i in range(m):
        r[i] = x[i] - r[i]
    all_idx = np.arange(k)
    active = np.empty(k, dtype=np.int64)
    sweeps = 0
    viol = enet_violation(x, B, l1, l2, positive, w, r, c)
    while viol > tol and sweeps < max_iter:
        _sweep(B, cn2, l1, l2, positive, w, r, all_idx, k)
        sweeps += 1
        n_act = 0
        for j in range(k):
            if w[j] != 0.0:
                active[n_act] = j
                n_act += 1
        # sweeps over the active set until no coordinate moves its gradient by more than
        # tol / 10 (settling the active set well keeps the full sweeps few)
        while sweeps < max_iter:
            ch = _sweep(B, cn2, l1, l2, positive, w, r, active, n_act)
            sweeps += 1
            if ch <= 0.1 * tol:
                break
        viol = enet_violation(x, B, l1, l2, positive, w, r, c)
    return sweeps, viol


@njit(**NJIT_PARALLEL)
def enet_cd_batch(X, B, l1, l2, positive, tol, max_iter, W, n_iter, viol):
    for i in prange(X.shape[0]):
        it, v = enet_cd(X[i], B, l1, l2, positive, tol, max_iter, W[i])
        n_iter[i] = it
        viol[i] = v


@njit(**NJIT)
def ridge(X, B, lam, W):
    """Closed-form signed L2 codes W[i] = argmin 1/2 ||X[i] - B w||^2 + lam/2 ||w||^2 for
    every row, through the smaller of the k x k and m x m systems (factored once)."""
    m, k = B.shape
    if k <= m:
        A = np.dot(B.T, B)
        for j in range(k):
            A[j, j] += lam
        L = np.linalg.cholesky(A)
        R = np.dot(X, B)  # (n, k) = rows of B^T x
        Y = _chol_solve_rows(L, R)
        for i in range(X.shape[0]):
            for j in range(k):
                W[i, j] = Y[i, j]
    else:
        A = np.dot(B, B.T)
        for i in range(m):
            A[i, i] += lam
        L = np.linalg.cholesky(A)
        Y = _chol_solve_rows(L, np.ascontiguousarray(X))
        W[:, :] = np.dot(Y, B)  # w = B^T (B B^T + lam I)^{-1} x


@njit(**NJIT)
def _chol_solve_rows(L, R):
    """Solve (L L^T) y = r for every row r of R."""
    n = L.shape[0]
    Y = np.empty_like(R)
    for q in range(R.shape[0]):
        for i in range(n):
            s = R[q, i]
            for j in range(i):
                s -= L[i, j] * Y[q, j]
            Y[q, i] = s / L[i, i]
        for i in range(n - 1, -1, -1):
            s = Y[q, i]
            for j in range(i + 1, n):
                s -= L[j, i] * Y[q, j]
            Y[q, i] = s / L[i, i]
    return Y
