"""Batched EGD: the paper's exponentiated gradient descent (``kl.egd``) for many rows at
once, its two products per trial done for a block of rows as matrix-matrix products.

Every row runs exactly the one-row algorithm of :func:`streamsc._kernels.kl.egd`: its own
step size (adapted by +-10% from its own fraction of backtracked trials), its own Armijo
backtracking, its own stopping test ``max_j |dL/dw_j| <= tol`` and iteration cap. Only the
order of the work changes. A thread keeps a pool of up to ``EGD_BLOCK`` rows in flight; one
round of the pool

1. evaluates a trial point of every row in the pool (rows just pulled in evaluate their
   starting point): the codes of those rows, stacked, times ``B^T`` in one BLAS product
   (``(rows, k) x (k, m)``), then the loss and prior per row;
2. decides per row (accept, or halve that row's step and retry next round);
3. for the rows that accepted, the gradient products ``R B`` in one BLAS product
   (``(rows, m) x (m, k)``), then the per-row gradient, step adaptation and stopping test.

A row that stops (converged, capped, or no acceptable step) leaves the pool and its slot
takes the next row of the thread's share, so the products stay matrix-matrix until the
share runs out. The per-row scalar logic runs in plain loops here; the products round
differently from the one-row path's matrix-vector loops (a few units in the last place),
so a row's iterates can differ from the one-row path's by rounding, and both stop at the
same criterion: the codes agree to about ``tol / lam`` relative (tested:
``tests/test_kernels_kl_batch.py``). Rows that need the rare rounding-limited acceptance
test (the gradient at the trial point) compute it alone, as the one-row path does.

Only float64 (the caller converts float32 data: one compiled signature); the products call
BLAS, which callers pin to one thread.
"""

import numpy as np
from numba import njit, prange

from .._config import NJIT, NJIT_PARALLEL
from .kl import (_EXP_CLIP, _egd_grad, _egd_metric, armijo, egd_grad_from_c, log_prior,
                 residual_from_z)
from .linalg import col_sq_norms
from .vecmath import exp as vexp

#: rows in flight per thread (the rows of each matrix product, while the share lasts)
EGD_BLOCK = 64

# slot states
_EMPTY = 0
_START = 1  # evaluate the starting point (accepted unless not finite)
_RESTART = 2  # the start overflowed: evaluate the prior mean (always accepted)
_TRIAL = 3  # evaluate a trial step


@njit(**NJIT)
def _prior_term(u, logp, w, bits):
    """w = exp(u) and the KL prior's sum w (u - log p - 1), or inf if u passes the exp
    clip (as ``kl._egd_eval``)."""
    vexp(u, w, bits)
    kl = 0.0
    for j in range(u.shape[0]):
        uj = u[j]
        if uj > _EXP_CLIP:
            return np.inf
        kl += w[j] * (uj - logp[j] - 1.0)
    return kl


@njit(**NJIT)
def egd_rows(X, B, Bt, p, lam, signed, tol, max_iter, U, alpha0, n_iter, gmax_out, loss,
             diag, r0, r1, block):
    """Batched EGD for rows ``r0:r1`` of X (see the module docstring); ``Bt`` = B.T,
    C-contiguous; U, n_iter, gmax_out as in ``kl.egd_batch``; ``block`` the pool size."""
    m, k = B.shape
    nn = U.shape[1]
    P = max(1, min(block, r1 - r0))
    logp = np.empty(nn)
    psum = log_prior(p, logp)
    cn2 = np.empty(k)
    col_sq_norms(B, cn2)
    bits = np.empty(nn, dtype=np.int64)
    c = np.empty(k)
    g_new = np.empty(nn)
    # per-slot state
    Us = np.empty((P, nn))
    Ws = np.empty((P, nn))
    Gs = np.empty((P, nn))
    Rs = np.empty((P, m))
    Un = np.empty((P, nn))
    Wn = np.empty((P, nn))
    Rn = np.empty((P, m))
    S = np.ones((P if diag else 1, nn))
    f = np.zeros(P)
    fnew = np.zeros(P)
    gm = np.zeros(P)
    alpha = np.zeros(P)
    a = np.zeros(P)
    n_trials = np.zeros(P, dtype=np.int64)
    n_back = np.zeros(P, dtype=np.int64)
    it = np.zeros(P, dtype=np.int64)
    row = np.full(P, -1, dtype=np.int64)
    state = np.zeros(P, dtype=np.int64)
    # product blocks
    Cb = np.empty((P, k))
    Zb = np.empty((P, m))
    ev = np.empty(P, dtype=np.int64)
    acc = np.empty(P, dtype=np.int64)
    nxt = r0
    while True:
        # pull rows into empty slots
        for sl in range(P):
            if state[sl] == _EMPTY and nxt < r1:
                row[sl] = nxt
                for j in range(nn):
                    Un[sl, j] = U[nxt, j]
                state[sl] = _START
                alpha[sl] = alpha0
                n_trials[sl] = 0
                n_back[sl] = 0
                it[sl] = 0
                nxt += 1
        # 1. evaluate every slot in flight
        ne = 0
        busy = 0
        for sl in range(P):
            st = state[sl]
            if st == _EMPTY:
                continue
            busy += 1
            if st == _TRIAL:
                n_trials[sl] += 1
                aa = a[sl]
                srow = S[sl] if diag else S[0]
                for j in range(nn):
                    Un[sl, j] = Us[sl, j] - aa * srow[j] * Gs[sl, j]
            elif st == _RESTART:
                for j in range(nn):
                    Un[sl, j] = logp[j]
            pk = _prior_term(Un[sl], logp, Wn[sl], bits)
            if not np.isfinite(pk):
                fnew[sl] = np.inf
                continue
            fnew[sl] = lam * (pk + psum)
            if signed:
                for j in range(k):
                    Cb[ne, j] = Wn[sl, j] - Wn[sl, k + j]
            else:
                for j in range(k):
                    Cb[ne, j] = Wn[sl, j]
            ev[ne] = sl
            ne += 1
        if busy == 0:
            break
        if ne > 0:
            np.dot(Cb[:ne], Bt, Zb[:ne])
        for t in range(ne):
            sl = ev[t]
            rr = Rn[sl]
            for i in range(m):
                rr[i] = Zb[t, i]
            fnew[sl] += residual_from_z(X[row[sl]], rr, loss)
        # 2. decide per slot
        na = 0
        for sl in range(P):
            st = state[sl]
            if st == _EMPTY:
                continue
            ok = False
            if st == _START:
                if np.isfinite(fnew[sl]):
                    ok = True
                else:
                    state[sl] = _RESTART  # as kl.egd: start from the prior mean instead
            elif st == _RESTART:
                ok = True
            else:
                test = armijo(fnew[sl], f[sl], Gs[sl], Wn[sl], Ws[sl], loss)
                if test > 0:
                    ok = True
                elif test < 0:
                    # as kl.egd: accept if the step shrinks the gradient in the mirror metric
                    _egd_grad(B, logp, lam, signed, Un[sl], Rn[sl], c, g_new)
                    srow = S[sl] if diag else S[0]
                    q_old = 0.0
                    q_new = 0.0
                    for j in range(nn):
                        q_old += srow[j] * Ws[sl, j] * Gs[sl, j] * Gs[sl, j]
                        q_new += srow[j] * Wn[sl, j] * g_new[j] * g_new[j]
                    ok = q_new < q_old
                if not ok:
                    a[sl] *= 0.5
                    n_back[sl] += 1
                    if not a[sl] > 1e-300:  # no acceptable step: stop where it is
                        _finish(sl, row, state, Us, U, it, gm, n_iter, gmax_out)
            if ok:
                for j in range(nn):
                    Us[sl, j] = Un[sl, j]
                    Ws[sl, j] = Wn[sl, j]
                for i in range(m):
                    Rs[sl, i] = Rn[sl, i]
                f[sl] = fnew[sl]
                if st == _TRIAL:
                    alpha[sl] = a[sl]
                    it[sl] += 1
                for i in range(m):
                    Zb[na, i] = Rn[sl, i]
                acc[na] = sl
                na += 1
        # 3. gradients of the rows that moved
        if na > 0:
            np.dot(Zb[:na], B, Cb[:na])
        for t in range(na):
            sl = acc[t]
            for j in range(k):
                c[j] = Cb[t, j]
            gm[sl] = egd_grad_from_c(logp, lam, signed, Us[sl], c, Gs[sl])
            if state[sl] == _TRIAL:
                ratio = n_back[sl] / n_trials[sl]
                if ratio > 0.6:
                    alpha[sl] *= 0.9
                elif ratio < 0.3:
                    alpha[sl] *= 1.1
            if not (gm[sl] > tol and it[sl] < max_iter) or not alpha[sl] > 1e-300:
                _finish(sl, row, state, Us, U, it, gm, n_iter, gmax_out)
                continue
            if diag:
                _egd_metric(X[row[sl]], B, lam, signed, Ws[sl], Rs[sl], loss, cn2, S[sl])
            state[sl] = _TRIAL
            a[sl] = alpha[sl]


@njit(**NJIT)
def _finish(sl, row, state, Us, U, it, gm, n_iter, gmax_out):
    i = row[sl]
    for j in range(U.shape[1]):
        U[i, j] = Us[sl, j]
    n_iter[i] = it[sl]
    gmax_out[i] = gm[sl]
    state[sl] = _EMPTY
    row[sl] = -1


@njit(**NJIT_PARALLEL)
def egd_block_batch(X, B, Bt, p, lam, signed, tol, max_iter, U, alpha, n_iter, gmax, loss,
                    diag, threads, block):
    """:func:`egd_rows` over all rows of X, cut into ``threads`` runs of consecutive rows
    (as many in each, to one row), one run per thread (``threads``: numba's thread count in
    the caller, read there so the function stays in numba's cache)."""
    n = X.shape[0]
    threads = max(1, threads)
    for t in prange(threads):
        r0 = t * n // threads
        r1 = (t + 1) * n // threads
        if r1 > r0:
            egd_rows(X, B, Bt, p, lam, signed, tol, max_iter, U, alpha, n_iter, gmax, loss,
                     diag, r0, r1, block)
