"""The functional API: sparse codes of examples under a fixed basis."""

import functools
import warnings

import numba
import numpy as np

from . import _validation as v
from ._kernels import first_call as _call
from ._kernels import kl as kl_kernels
from ._kernels import lasso as lasso_kernels

__all__ = ["encode", "calibrate_tol", "default_tol", "ConvergenceWarning"]

#: defaults of the dual Newton solver's Hessian approximation (see ``_kernels.kl``)
HESS_DROP = 0.1
MAX_KEPT = 64
MAX_ITER = {"newton": 100, "egd": 5000, "egd_diag": 5000, "cd": 10000}
#: the ``loss`` argument of the kernels
LOSS_CODES = {"squared": 0, "kl": 1}
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


class ConvergenceWarning(UserWarning):
    """A solver stopped at ``max_iter`` before reaching ``tol``."""


def default_tol(lam):
    """The default stopping threshold: ``1e-6 * lam`` on the largest violation of the
    optimality conditions. Near the optimum a KL code's log-coordinates move by about
    ``violation / lam``, so this keeps every coordinate to about 1e-6 relative accuracy."""
    return 1e-6 * lam


def _split_signed(code, p):
    """Halves (w+, w-) of the expanded-basis code with w+ - w- = code and w+ w- = p^2, the
    relation every KL optimum satisfies (w+- = p exp(+-z)). Used for warm starts."""
    half = np.sqrt(code * code + 4.0 * p * p)
    wp = 0.5 * (code + half)
    return wp, wp - code


def encode(
    X,
    B,
    *,
    loss="squared",
    prior="kl",
    lam=0.1,
    p=None,
    signed=False,
    tol=None,
    solver=None,
    max_iter=None,
    init=None,
    return_halves=False,
    return_n_iter=False,
    n_threads=None,
    dtype=np.float64,
):
    r"""Sparse code(s) of ``X`` under the basis ``B``: the MAP estimate of the paper's eq. (3).

    For each example :math:`x \in \mathbb{R}^m` and basis :math:`B \in \mathbb{R}^{m\times k}`
    (one atom per column)

    .. math::

        \hat w = \arg\min_w D(x \,\|\, f(Bw)) + \lambda\, R(w)

    with a matched loss/transfer pair chosen by ``loss`` (which keeps the problem convex in w):

    * ``"squared"`` — :math:`D = \tfrac12\|x - Bw\|^2`, linear transfer :math:`f(z) = z`;
    * ``"kl"`` — for count data (word counts): :math:`x` is normalised to a distribution
      :math:`\bar x = x / \sum_i x_i` and :math:`D = \mathrm{KL}(\bar x \,\|\, \mathrm{softmax}(Bw))`,
      the normalised-exponential transfer of the paper's Appendix D (equivalent to the
      "constrained Poisson" document model; the document length only rescales ``lam``).
      Needs ``prior="kl"``; x must be non-negative with a positive sum.

    and the prior term :math:`R` chosen by ``prior``:

    * ``"kl"`` — the unnormalised KL divergence to the prior mean ``p``,
      :math:`R(w) = \sum_j w_j \log(w_j/p_j) - w_j + p_j` over :math:`w > 0`. With
      ``signed=True`` it is taken on the expanded basis :math:`[B, -B]` (never formed) and the
      code is :math:`w^+ - w^-` (the paper's Appendix B).
    * ``"l1"`` — :math:`R(w) = \|w\|_1`, over :math:`w \ge 0` unless ``signed``.
    * ``"l2"`` — :math:`R(w) = \tfrac12\|w\|^2`; closed form when ``signed``, coordinate descent
      over :math:`w \ge 0` otherwise.

    Parameters
    ----------
    X : array-like of shape (m,) or (n, m)
        One example, or one per row.
    B : array-like of shape (m, k)
        The basis, one atom per column; no column may be zero.
    loss : {"squared", "kl"}
    prior : {"kl", "l1", "l2"}
    lam : float
        Regularisation weight :math:`\lambda > 0`.
    p : float or array-like of shape (k,), optional
        KL prior mean (> 0). Default ``1/k`` for every atom: the paper's uniform vector whose
        L1 mass matches that of a code of a unit-norm input. Ignored by ``"l1"``/``"l2"``.
    signed : bool
        Allow negative coefficients (see ``prior``).
    tol : float, "auto" or None
        Stop when the largest violation of the optimality conditions
        (:math:`\max_j |\partial L/\partial w_j|` for KL, the minimum-norm subgradient for L1)
        is at most ``tol``. ``None`` means ``1e-6 * lam``; at that default KL and L1 codes
        agree with the exact solution to about 1e-6 relative (tested: ``tests/test_coding.py``).
        ``"auto"`` is the paper's calibration: :func:`calibrate_tol` on up to 32 rows of ``X``.
    solver : {"egd", "egd_diag", "newton"}, optional
        KL-prior solver. ``"egd"`` is the paper's exponentiated gradient descent with
        backtracking and a step adapted by ±10%; ``"egd_diag"`` scales that step per
        coordinate by a diagonal Newton metric; ``"newton"`` is damped Newton on the
        m-dimensional Fenchel dual for the squared loss, and in code space (with the arcsinh
        form of the signed prior) for the KL loss. All stop on the same primal criterion.
        Default: ``"egd"`` for the squared loss — measured by ``benchmarks/encode.py``
        (its "KL solver choice" table) it is as fast as Newton or faster in most shapes and
        values of ``lam``, at equal accuracy, and never far slower — and ``"newton"`` for the
        KL loss, where EGD needs thousands of steps.
    max_iter : int, optional
        Iteration cap (Newton steps, EGD steps or coordinate-descent sweeps).
    init : array-like, optional
        Warm start, shaped like the result (codes, not halves).
    return_halves : bool
        With ``prior="kl", signed=True``: also return ``(w_plus, w_minus)``.
    return_n_iter : bool
        Also return the iterations used per example.
    n_threads : int, optional
        Threads for a 2-D batch (one example per thread); default: numba's setting.
    dtype : {numpy.float64, numpy.float32}
        Precision in which ``X`` and ``B`` are stored and read by the kernels, and of the
        result. With ``numpy.float32`` the kernels run on float32 copies of ``X`` and ``B``
        (numba compiles that specialisation on first use) while their accumulators, scratch
        vectors and iterates stay float64, so the solver still reaches any ``tol`` (no floor
        beyond float64's) and the codes are those of the float32-rounded problem, returned
        as float32. They differ from the float64 codes by the rounding of the data (about
        6e-8 relative) amplified by the problem's conditioning. At the default ``tol``,
        ``tests/test_float32.py`` asserts a difference of at most 1e-6 of the largest
        coefficient for KL codes (EGD and Newton, unsigned and signed) and 2e-5 for L1 and
        L2 codes (measured on its random problems: up to 1.7e-7 and 7.9e-7). The closed-form
        signed L2 codes are computed in float32 arithmetic. float32 is faster only once B
        no longer fits in the core's cache (measured by ``benchmarks/scaling.py``, see
        ``docs/performance.md``). Batches of L1/L2 codes large enough for the Gram path
        (:func:`use_gram`) are solved on float64 copies of the float32-rounded ``X`` and
        ``B`` (the same problem; float32 then saves no time).

    Returns
    -------
    codes : ndarray of shape (k,) or (n, k)
    (w_plus, w_minus) : ndarrays, if ``return_halves``
    n_iter : int or ndarray of shape (n,), if ``return_n_iter``

    Examples
    --------
    >>> import numpy as np
    >>> import streamsc
    >>> rng = np.random.default_rng(0)
    >>> B = rng.standard_normal((8, 12))
    >>> B /= np.linalg.norm(B, axis=0)
    >>> x = 2.0 * B[:, 3] + 0.5 * B[:, 7]
    >>> w = streamsc.encode(x, B, prior="kl", lam=0.05)
    >>> w.shape, bool(np.all(w > 0))
    ((12,), True)
    >>> [int(j) for j in np.argsort(w)[::-1][:2]]   # the two atoms that made x
    [3, 7]
    >>> w1 = streamsc.encode(x, B, prior="l1", lam=0.05)
    >>> [int(j) for j in np.flatnonzero(w1 > 0.1)], w1[[3, 7]].round(2)
    ([3, 7], array([1.94, 0.43]))
    """
    loss = v.check_choice("loss", loss, v.LOSSES)
    prior = v.check_choice("prior", prior, v.PRIORS)
    dtype = v.check_float_dtype("dtype", dtype)
    B = v.check_basis(B, dtype=dtype)
    m, k = B.shape
    X = v.as_float_array("X", X, dtype=dtype)
    v.check_x_matches("X", X, m)
    lam = v.check_real("lam", lam, low=0.0)
    signed = v.check_bool("signed", signed)
    solver = v.resolve_solver(solver, loss, prior)
    if loss == "kl":
        X = v.as_distribution("X", X)
    p = v.resolve_p(p, k)
    max_iter = v.check_int("max_iter", max_iter, low=1, allow_none=True)
    n_threads = v.check_int("n_threads", n_threads, low=1, allow_none=True)
    return_halves = v.check_bool("return_halves", return_halves)
    if return_halves and not (prior == "kl" and signed):
        raise ValueError("return_halves=True needs prior='kl' and signed=True")
    single = X.ndim == 1
    X2 = X[None, :] if single else X
    n = X2.shape[0]
    if init is not None:
        init = v.as_float_array("init", init, ndims=(X.ndim,))
        if init.shape != X.shape[:-1] + (k,):
            raise ValueError(f"init must have shape {X.shape[:-1] + (k,)}, got {init.shape}")
        if prior == "kl" and not signed and np.any(init < 0):
            raise ValueError("init must be >= 0 for unsigned KL codes")
        init = init[None, :] if single else init
    if isinstance(tol, str):
        if tol != "auto":
            raise ValueError(f"tol must be a positive number, 'auto' or None, got {tol!r}")
        tol = calibrate_tol(
            X2, B, loss=loss, prior=prior, lam=lam, p=p, signed=signed, solver=solver
        )
    elif tol is None:
        tol = default_tol(lam)
    else:
        tol = v.check_real("tol", tol, low=0.0)

    W, halves, n_iter, viol = solve(
        X2, B, loss=loss, prior=prior, lam=lam, p=p, signed=signed, tol=tol, solver=solver,
        max_iter=max_iter, init=init, n_threads=n_threads,
    )
    bad = int(np.sum(viol > tol))
    if bad:
        warnings.warn(
            f"{bad} of {n} codes stopped before reaching tol={tol:.3g} "
            f"(largest optimality violation {viol.max():.3g}); raise max_iter or tol",
            ConvergenceWarning,
            stacklevel=2,
        )
    if dtype is not np.float64:
        W = W.astype(dtype)
        if halves is not None:
            halves = (halves[0].astype(dtype), halves[1].astype(dtype))
    out = W[0] if single else W
    result = (out,)
    if return_halves:
        result += ((halves[0][0], halves[1][0]) if single else halves,)
    if return_n_iter:
        result += (int(n_iter[0]) if single else n_iter,)
    return result[0] if len(result) == 1 else result


def solve(X, B, *, prior, lam, p, signed, tol, loss="squared", solver="egd", max_iter=None,
          init=None, n_threads=None):
    """Codes of the rows of X with no argument checking: the one entry point to the kernels
    shared by :func:`encode` and every estimator.

    X (n, m) and B (m, k) are C-contiguous, both float64 or both float32 (rows of X already normalised to sum 1
    for ``loss="kl"``), p a length-k array, tol a float, init None or (n, k) codes. A single row runs the per-example kernel in the calling thread;
    several rows run one per thread. Returns ``(W, halves, n_iter, violation)`` where
    ``halves`` is ``(W+, W-)`` for signed KL codes and None otherwise.
    """
    n, m = X.shape
    k = B.shape[1]
    one = n == 1
    n_iter = np.zeros(n, dtype=np.int64)
    viol = np.zeros(n)
    halves = None
    with _threads(n_threads, n):
        if prior == "kl":
            H = np.empty((n, 2 * k if signed else k))
            if solver == "newton" and loss == "kl":
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
                    H[:, :k], H[:, k:] = _split_signed(C, p)
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
                _redo_stalled_newton(X, B, p, lam, signed, tol, H, n_iter, viol)
            else:
                cap = max_iter or MAX_ITER["egd"]  # both EGD variants
                if init is None:
                    H[:] = np.tile(p, 2 if signed else 1)
                elif signed:
                    H[:] = np.hstack(_split_signed(init, p))
                else:
                    H[:] = init
                U = np.log(np.maximum(H, 1e-300))
                code = LOSS_CODES[loss]
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
        elif prior == "l2" and signed:
            W = np.empty((n, k))
            _call(lasso_kernels.ridge, X, B, lam, W)
        else:
            l1, l2 = (lam, 0.0) if prior == "l1" else (0.0, lam)
            W = np.zeros((n, k)) if init is None else init.copy()
            cap = max_iter or MAX_ITER["cd"]
            if one:
                n_iter[0], viol[0] = _call(
                    lasso_kernels.enet_cd,
                    X[0], B, l1, l2, not signed, tol, cap, W[0]
                )
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
    return W, halves, n_iter, viol


def _redo_stalled_newton(X, B, p, lam, signed, tol, H, n_iter, viol):
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
    W, halves, it, vi = solve(
        np.ascontiguousarray(X[redo]), B, prior="kl", lam=lam, p=p, signed=signed, tol=tol,
        solver="egd_diag",
    )
    H[redo] = np.hstack(halves) if signed else W
    n_iter[redo] = it
    viol[redo] = vi


@functools.lru_cache(maxsize=1)
def _blas_controller():
    """One ThreadpoolController per process: building one inspects every loaded library
    (milliseconds); limiting through a cached one costs microseconds. threadpoolctl is
    imported here, on the first batch, not with the package."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


class _threads:
    """Pin BLAS to one thread (the kernels parallelise over examples) and set numba's
    thread count for the duration of a batch call. Single examples skip the (~20 us) BLAS
    pinning: their kernels call no BLAS except for small Cholesky factors."""

    def __init__(self, n_threads, n_rows):
        self.n_threads = n_threads
        self.batch = n_rows > 1

    def __enter__(self):
        self._limits = _blas_controller().limit(limits=1, user_api="blas") if self.batch else None
        if self.n_threads is not None:
            self._old = numba.get_num_threads()
            numba.set_num_threads(min(self.n_threads, numba.config.NUMBA_NUM_THREADS))
        return self

    def __exit__(self, *exc):
        if self.n_threads is not None:
            numba.set_num_threads(self._old)
        if self._limits is not None:
            self._limits.unregister()
        return False


def calibrate_tol(
    X, B, *, loss="squared", prior="kl", lam=0.1, p=None, signed=False, solver=None,
    eps=1e-4, n_samples=32, seed=0,
):
    """The paper's automatic tolerance calibration (section 4).

    Solves a random subset of the examples "to the limits of machine precision", then returns
    the largest stopping threshold from a grid (``lam * 10**-1 ... lam * 10**-12``) whose codes
    are all within ``eps`` of the exact ones (``max_j |w_j - w*_j| / max_j |w*_j|``).

    Parameters
    ----------
    X : array-like of shape (n, m)
    B : array-like of shape (m, k)
    loss, prior, lam, p, signed, solver
        As in :func:`encode`.
    eps : float
        Accuracy wanted, relative to the largest coefficient.
    n_samples : int
        Examples used (at most ``n``).
    seed : int
        Which examples are used.

    Returns
    -------
    tol : float

    Examples
    --------
    >>> import numpy as np
    >>> import streamsc
    >>> rng = np.random.default_rng(0)
    >>> B = rng.standard_normal((16, 32))
    >>> X = rng.standard_normal((50, 16))
    >>> tol = streamsc.calibrate_tol(X, B, lam=0.1, eps=1e-3)
    >>> bool(0 < tol <= 0.1 * 0.1)
    True
    """
    X = v.as_float_array("X", X, ndims=(2,))
    eps = v.check_real("eps", eps, low=0.0)
    rng = np.random.default_rng(seed)
    idx = rng.choice(X.shape[0], size=min(n_samples, X.shape[0]), replace=False)
    S = X[np.sort(idx)]
    solver = v.resolve_solver(solver, loss, prior)
    kw = dict(loss=loss, prior=prior, lam=lam, p=p, signed=signed, solver=solver)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cap = 10 * MAX_ITER[solver if prior == "kl" else "cd"]
        exact = encode(S, B, tol=1e-14 * lam, max_iter=cap, **kw)
        scale = np.maximum(np.abs(exact).max(axis=1), np.finfo(float).tiny)
        for e in range(1, 13):
            tol = lam * 10.0 ** (-e)
            approx = encode(S, B, tol=tol, **kw)
            if np.all(np.abs(approx - exact).max(axis=1) / scale <= eps):
                return tol
    return 1e-12 * lam

