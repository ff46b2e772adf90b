"""The functional API: sparse codes of examples under a fixed basis.

The solvers of each prior are its record's ``solve`` (:mod:`streamsc._models`,
:mod:`streamsc._solvers`, where the solvers' defaults ``MAX_ITER``, ``HESS_DROP``,
``MAX_KEPT``, the batch thresholds and :func:`use_gram` live; they are re-exported here).
"""

import functools
import warnings

import numba
import numpy as np

from . import _models
from . import _validation as v
from ._solvers import (  # noqa: F401  (re-exported)
    EGD_BLOCK_MIN_ROWS, GRAM_K_PER_ROW, GRAM_MAX_K, GRAM_MIN_ROWS, HESS_DROP, MAX_ITER,
    MAX_KEPT, use_gram,
)

__all__ = ["encode", "calibrate_tol", "default_tol", "ConvergenceWarning"]


class ConvergenceWarning(UserWarning):
    """A solver stopped at ``max_iter`` before reaching ``tol``."""


def default_tol(lam):
    """The default stopping threshold: ``1e-6 * lam`` on the largest violation of the
    optimality conditions. Near the optimum a KL code's log-coordinates move by about
    ``violation / lam``, so this keeps every coordinate to about 1e-6 relative accuracy."""
    return 1e-6 * lam


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
    model = _models.PRIORS[prior]
    if _models.LOSSES[loss].distribution:
        X = v.as_distribution("X", X)
    p = v.resolve_p(p, k)
    max_iter = v.check_int("max_iter", max_iter, low=1, allow_none=True)
    n_threads = v.check_int("n_threads", n_threads, low=1, allow_none=True)
    return_halves = v.check_bool("return_halves", return_halves)
    if return_halves and not model.halved(signed):
        raise ValueError("return_halves=True needs prior='kl' and signed=True")
    single = X.ndim == 1
    X2 = X[None, :] if single else X
    n = X2.shape[0]
    if init is not None:
        init = v.as_float_array("init", init, ndims=(X.ndim,))
        if init.shape != X.shape[:-1] + (k,):
            raise ValueError(f"init must have shape {X.shape[:-1] + (k,)}, got {init.shape}")
        if model.positive and not signed and np.any(init < 0):
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

    X (n, m) and B (m, k) are C-contiguous, both float64 or both float32 (rows of X
    already normalised to sum 1 for ``loss="kl"``), p a length-k array, tol a float, init
    None or (n, k) codes. A single row runs the per-example kernel in the calling thread;
    several rows run one per thread. Returns ``(W, halves, n_iter, violation)`` where
    ``halves`` is ``(W+, W-)`` for signed KL codes (the prior record's ``split``) and None
    otherwise. The prior's record solves (``Prior.solve``).
    """
    solver_of = _models.get_prior(prior).solve
    if X.shape[0] == 1:  # the per-example kernel, in this thread: no thread settings
        return solver_of(X, B, loss=_models.get_loss(loss), lam=lam, p=p, signed=signed,
                         tol=tol, solver=solver, max_iter=max_iter, init=init)
    with _threads(n_threads, X.shape[0]):
        return solver_of(
            X, B, loss=_models.get_loss(loss), lam=lam, p=p, signed=signed, tol=tol,
            solver=solver, max_iter=max_iter, init=init,
        )


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
        cap = 10 * _models.get_prior(prior).max_iter(solver)
        exact = encode(S, B, tol=1e-14 * lam, max_iter=cap, **kw)
        scale = np.maximum(np.abs(exact).max(axis=1), np.finfo(float).tiny)
        for e in range(1, 13):
            tol = lam * 10.0 ** (-e)
            approx = encode(S, B, tol=tol, **kw)
            if np.all(np.abs(approx - exact).max(axis=1) / scale <= eps):
                return tol
    return 1e-12 * lam

