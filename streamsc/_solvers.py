"""The coding kernels' entry point for each prior: the ``solve`` of the records in
:mod:`streamsc._models` (:func:`solve_kl`, :func:`solve_l1`, :func:`solve_l2`), with the
solvers' defaults. They check no argument and run inside :func:`streamsc.coding.solve`'s
thread settings; each has the signature

``solve(X, B, *, loss, lam, p, signed, tol, solver, max_iter, init)``

(X (n, m) and B (m, k) C-contiguous, both float64 or both float32, ``loss`` the
:class:`~streamsc._models.Loss` record, p a length-k array, init None or (n, k) codes) and
returns ``(W, halves, n_iter, violation)``, ``halves`` the pair ``(W+, W-)`` of a prior
whose signed codes live on the expanded basis [B, -B] and None otherwise. One row runs the
per-example kernel in the calling thread, several rows one per thread.
"""

import numba
import numpy as np

from ._kernels import first_call as _call
from ._kernels import kl as kl_kernels
from ._kernels import lasso as lasso_kernels

#: defaults of the dual Newton solver's Hessian approximation (see ``_kernels.kl``)
HESS_DROP = 0.1
MAX_KEPT = 64
MAX_ITER = {"newton": 100, "egd": 5000, "egd_diag": 5000, "cd": 10000}
#: batched L1/L2 codes use the batch's Gram matrix B^T B (k x k floats) when k is at most
#: GRAM_MAX_K and the batch has at least max(GRAM_MIN_ROWS, k / GRAM_K_PER_ROW) rows: its
#: k^2 m flops (and the fixed cost of two matrix products) then cost less than they save
#: the per-row solvers (measured crossover, signed L1 codes at lam 0.1: about 64 rows at
#: (m, k) = (16, 32), 50 at (64, 256) and (180, 1024), 8 at (200, 64))
GRAM_MAX_K = 4096
GRAM_MIN_ROWS = 64
GRAM_K_PER_ROW = 16
#: batched EGD (both variants) runs every row's own EGD with the products of a block of
#: rows as matrix-matrix products (:mod:`streamsc._kernels.kl_batch`) for batches of at
#: least this many rows; smaller batches run the one-row kernel, one row per thread
EGD_BLOCK_MIN_ROWS = 8


def use_gram(n, k):
    """Whether a batch of n rows of L1/L2 codes on k atoms is solved with the batch's Gram
    matrix (:func:`streamsc._kernels.lasso.enet_gram_batch`) rather than row by row from B
    (:func:`~streamsc._kernels.lasso.enet_cd_batch`); both solve to the same ``tol``.

    Examples
    --------
    >>> from streamsc.coding import use_gram
    >>> use_gram(2000, 256), use_gram(32, 1024), use_gram(100_000, 8192)
    (True, False, False)
    """
    return k <= GRAM_MAX_K and n >= GRAM_MIN_ROWS and n * GRAM_K_PER_ROW >= k



def split_signed(code, p):
    """Halves (w+, w-) of the expanded-basis code with w+ - w- = code and w+ w- = p^2, the
    relation every KL optimum satisfies (w+- = p exp(+-z)). Used for warm starts."""
    half = np.sqrt(code * code + 4.0 * p * p)
    wp = 0.5 * (code + half)
    return wp, wp - code


_NO_TRACE = np.empty(0)  # EGD's trace argument: length 0, nothing recorded (never written)


def _egd_one(X, B, k, *, lam, p, signed, tol, code, diag, max_iter, init):
    """:func:`solve_kl` of one row by EGD (either variant): the same kernel call on the
    same state as the batch path, kept as a vector (no (1, k) scratch arrays)."""
    if init is None:
        h = np.concatenate((p, p)) if signed else p
    elif signed:
        h = np.concatenate(split_signed(init[0], p))
    else:
        h = init[0]
    u = np.log(np.maximum(h.astype(np.float64, copy=False), 1e-300))
    # the squared loss and plain EGD as None: known when compiling, so the first call
    # compiles only the code of the loss and variant in use
    it, _, viol = _call(
        kl_kernels.egd,
        X[0], B, p, lam, signed, tol, max_iter or MAX_ITER["egd"], u, 1.0, _NO_TRACE,
        code or None, diag or None
    )
    H = np.exp(u)[None, :]
    if signed:
        return H[:, :k] - H[:, k:], (H[:, :k], H[:, k:]), np.array([it]), np.array([viol])
    return H, None, np.array([it]), np.array([viol])


def solve_kl(X, B, *, loss, lam, p, signed, tol, solver, max_iter, init):
    """Codes under the KL prior: EGD (``solver`` "egd" or "egd_diag"), the dual Newton
    method (squared loss) or primal Newton (KL loss)."""
    n, m = X.shape
    k = B.shape[1]
    one = n == 1
    if one and solver != "newton":
        return _egd_one(X, B, k, lam=lam, p=p, signed=signed, tol=tol, code=loss.code,
                        diag=solver == "egd_diag", max_iter=max_iter, init=init)
    n_iter = np.zeros(n, dtype=np.int64)
    viol = np.zeros(n)
    halves = None
    H = np.empty((n, 2 * k if signed else k))
    if solver == "newton" and loss.distribution:
        # primal Newton in code space (the dual of the KL loss lives on the simplex)
        cap = max_iter or MAX_ITER["newton"]
        if init is None:
            C = np.zeros((n, k)) if signed else np.tile(p, (n, 1))
        else:
            C = np.maximum(init, 1e-300) if not signed else init.copy()
        if one:
            n_iter[0], viol[0] = _call(
                kl_kernels.newton_primal,
                X[0], B, p, lam, signed, tol, cap, C[0], 1, HESS_DROP, MAX_KEPT
            )
        else:
            _call(
                kl_kernels.newton_primal_batch,
                X, B, p, lam, signed, tol, cap, C, 1, HESS_DROP, MAX_KEPT, n_iter, viol
            )
        if signed:
            H[:, :k], H[:, k:] = split_signed(C, p)
        else:
            H[:] = C
    elif solver == "newton":
        cap = max_iter or MAX_ITER["newton"]
        Nu = np.zeros((n, m)) if init is None else X - init @ B.T
        if one:
            n_iter[0], viol[0] = _call(
                kl_kernels.kl_newton,
                X[0], B, p, lam, signed, tol, cap, Nu[0], HESS_DROP, MAX_KEPT, H[0]
            )
        else:
            _call(
                kl_kernels.kl_newton_batch,
                X, B, p, lam, signed, tol, cap, Nu, HESS_DROP, MAX_KEPT, H, n_iter, viol
            )
        _redo_stalled_newton(X, B, p, lam, signed, tol, H, n_iter, viol, loss)
    else:
        cap = max_iter or MAX_ITER["egd"]  # both EGD variants
        if init is None:
            H[:] = np.tile(p, 2 if signed else 1)
        elif signed:
            H[:] = np.hstack(split_signed(init, p))
        else:
            H[:] = init
        U = np.log(np.maximum(H, 1e-300))
        code = loss.code
        diag = solver == "egd_diag"
        if one:
            n_iter[0], _, viol[0] = _call(
                kl_kernels.egd,
                X[0], B, p, lam, signed, tol, cap, U[0], 1.0, np.empty(0), code, diag
            )
        elif n >= EGD_BLOCK_MIN_ROWS:
            # every row's own EGD, its products for a block of rows in one BLAS
            # product (pinned to one thread here); float64 copies of float32
            # data (one compiled signature)
            from ._kernels import kl_batch

            X64 = np.ascontiguousarray(X, dtype=np.float64)
            B64 = np.ascontiguousarray(B, dtype=np.float64)
            _call(
                kl_batch.egd_block_batch,
                X64, B64, np.ascontiguousarray(B64.T), p, lam, signed, tol, cap, U,
                1.0, n_iter, viol, code, diag, numba.get_num_threads(),
                kl_batch.EGD_BLOCK,
            )
        else:
            _call(
                kl_kernels.egd_batch,
                X, B, p, lam, signed, tol, cap, U, 1.0, n_iter, viol, code, diag
            )
        H = np.exp(U)
    if signed:
        W = H[:, :k] - H[:, k:]
        halves = (H[:, :k], H[:, k:])
    else:
        W = H
    return W, halves, n_iter, viol


def _solve_enet(X, B, l1, l2, *, signed, tol, max_iter, init):
    """Codes under the elastic-net penalty ``l1 |w|_1 + l2 |w|^2 / 2`` by coordinate
    descent (non-negative unless signed), row by row or from the batch's Gram matrix."""
    n, m = X.shape
    k = B.shape[1]
    one = n == 1
    n_iter = np.zeros(n, dtype=np.int64)
    viol = np.zeros(n)
    W = np.zeros((n, k)) if init is None else init.copy()
    cap = max_iter or MAX_ITER["cd"]
    if one:
        # enet_cd's two phases as two kernels: the first call compiles the fallback
        # (plain coordinate descent) only when a code needs it
        x, w, r = X[0], W[0], np.empty(m)
        it, v, done = _call(
            lasso_kernels.enet_ws, x, B, None, None, l1, l2, not signed, tol, cap, w, r,
            lasso_kernels.ws_fills(m, k),
        )
        if not done:
            it, v = _call(lasso_kernels.active_set_cd, x, B, l1, l2, not signed, tol, cap,
                          w, r, it, v)
        n_iter[0], viol[0] = it, v
    elif use_gram(n, k):
        # B^T B and X B once for the batch, in blocks, one per thread (BLAS pinned
        # to one thread here), in float64 also for float32 data (one signature)
        X64 = np.ascontiguousarray(X, dtype=np.float64)
        B64 = np.ascontiguousarray(B, dtype=np.float64)
        G = np.empty((k, k))
        _call(lasso_kernels.gram, B64, G)
        _call(
            lasso_kernels.enet_gram_batch,
            X64, B64, G, l1, l2, not signed, tol, cap, W, n_iter, viol,
            numba.get_num_threads(),
        )
    else:
        _call(
            lasso_kernels.enet_cd_batch, X, B, l1, l2, not signed, tol, cap, W, n_iter,
            viol,
        )
    return W, None, n_iter, viol


def solve_l1(X, B, *, loss, lam, p, signed, tol, solver, max_iter, init):
    """Codes under the L1 prior (coordinate descent)."""
    return _solve_enet(X, B, lam, 0.0, signed=signed, tol=tol, max_iter=max_iter, init=init)


def solve_l2(X, B, *, loss, lam, p, signed, tol, solver, max_iter, init):
    """Codes under the L2 prior: closed form when signed, coordinate descent otherwise."""
    if signed:
        n, k = X.shape[0], B.shape[1]
        W = np.empty((n, k))
        _call(lasso_kernels.ridge, X, B, lam, W)
        return W, None, np.zeros(n, dtype=np.int64), np.zeros(n)
    return _solve_enet(X, B, 0.0, lam, signed=signed, tol=tol, max_iter=max_iter, init=init)


def _redo_stalled_newton(X, B, p, lam, signed, tol, H, n_iter, viol, loss):
    """Recode by EGD (``solver='egd_diag'``, a descent method: never above the prior mean's
    objective) the rows where the dual Newton stopped short of ``tol`` with a primal
    objective above the prior mean's (w = p, the code of doing nothing), in place. Unsigned
    codes of examples of very large norm relative to ``lam`` (about 1e9 / lam and beyond)
    leave the dual so ill-conditioned that Newton stalls there; a stream must not stop on
    them, so they get EGD's code instead of an error. Signed codes converge at every scale
    (``tests/test_coding.py``)."""
    bad = np.flatnonzero(viol > tol)
    if bad.size == 0:
        return
    prior = np.tile(p, 2 if signed else 1)
    redo = [i for i in bad
            if not kl_kernels.kl_objective(X[i], B, p, lam, signed, H[i])
            < kl_kernels.kl_objective(X[i], B, p, lam, signed, prior)]
    if not redo:
        return
    redo = np.asarray(redo)
    W, halves, it, vi = solve_kl(
        np.ascontiguousarray(X[redo]), B, loss=loss, lam=lam, p=p, signed=signed,
        tol=tol, solver="egd_diag", max_iter=None, init=None,
    )
    H[redo] = np.hstack(halves) if signed else W
    n_iter[redo] = it
    viol[redo] = vi
