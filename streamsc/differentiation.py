r"""Implicit differentiation of sparse codes: the vector-Jacobian product of ``encode``.

A code :math:`\hat w(x, B, \lambda)` has no closed form, but it satisfies the optimality
conditions :math:`F = B^T(B\hat w - x) + \lambda \nabla R(\hat w) = 0`, and differentiating
them (the paper's eq. 9 and Appendix C) gives its derivatives. For a cotangent
:math:`g = \partial \ell / \partial \hat w` and :math:`v = H^{-1} g` with the Hessian
:math:`H = \partial F/\partial w`,

.. math::

    \frac{\partial \ell}{\partial B} = (x - B\hat w)\, v^T - (B v)\, \hat w^T, \qquad
    \frac{\partial \ell}{\partial x} = B v, \qquad
    \frac{\partial \ell}{\partial \lambda} = -v \cdot \nabla R(\hat w).

With the KL loss and softmax transfer (``loss="kl"``, the paper's eq. 21 with the
normalised-exponential row of its Appendix C), :math:`H = B^T S B + \lambda\,\mathrm{diag}
(R'')` with :math:`S = \mathrm{diag}(q) - qq^T`, :math:`q = \mathrm{softmax}(B\hat w)`, and
:math:`\partial\ell/\partial B = (\bar x - q)\, v^T - (S B v)\, \hat w^T`.

The kernels are in :mod:`streamsc._kernels.vjp`; this module checks arguments and
dispatches.
"""

import numpy as np

from . import _models
from . import _validation as v
from ._kernels import vjp as vjp_kernels
from ._solvers import split_signed
from .coding import _threads

__all__ = ["encode_vjp"]

METHODS = ("auto", "direct", "cg")

#: ``method="auto"`` uses conjugate gradients when B has more rows than this, the direct
#: m x m factorisation otherwise. The direct solve costs about m^2 k / 2 multiply-adds, a CG
#: iteration 2 m k, and CG takes ~10 (lam = 0.1) to ~30 (lam = 0.01) iterations, so the
#: crossover sits near m = 100. Measured per example (KL, k = 4m, lam 0.1 / 0.01): direct
#: 0.13-0.19 ms vs CG 0.16-0.47 ms at m = 64; 0.32-0.41 vs 0.23-0.67 at m = 96; 0.69-0.85
#: vs 0.34-1.1 at m = 128; 4.6-4.9 vs 1.3-4.2 at m = 180.
AUTO_CG_ABOVE_M = 100
#: CG stops when the residual of the m x m system is below this fraction of its right-hand
#: side; the VJP then agrees with the exact one to ~1e-10 relative (measured up to 3e-11).
CG_RTOL = 1e-12
#: CG iteration cap; past it the direct solve takes over
CG_MAX_ITER = 500
#: which atoms the CG preconditioner keeps exactly (as in the dual Newton solver)
CG_HESS_DROP = 0.1
CG_MAX_KEPT = 64


def encode_vjp(
    x,
    B,
    w,
    grad_w,
    *,
    loss="squared",
    prior="kl",
    lam=0.1,
    p=None,
    signed=False,
    halves=None,
    return_grad_lam=False,
    method="auto",
    n_threads=None,
):
    r"""Vector-Jacobian product of the sparse code :math:`\hat w = \mathrm{encode}(x, B)`.

    Given the code ``w`` of ``x`` under ``B`` (from :func:`streamsc.encode` with the same
    ``prior``, ``lam``, ``p`` and ``signed``, squared loss) and the gradient ``grad_w`` of a
    downstream loss :math:`\ell` with respect to it, returns :math:`\partial\ell/\partial B`
    and :math:`\partial\ell/\partial x` by implicit differentiation of the optimality
    conditions (the paper's eq. 9 and Appendix C). With :math:`v = H^{-1} g`:

    .. math::

        \frac{\partial \ell}{\partial B} = (x - B\hat w)\, v^T - (B v)\, \hat w^T, \qquad
        \frac{\partial \ell}{\partial x} = B v, \qquad
        \frac{\partial \ell}{\partial \lambda} = -v \cdot \nabla R(\hat w)

    where :math:`H` is the Hessian of the coding objective at :math:`\hat w`:

    * ``"kl"``: :math:`H = B^T B + \lambda\,\mathrm{diag}(1/\hat w)`. With ``k > m`` it is
      never formed: :math:`v = D(g - B^T M^{-1} B D g)` with :math:`D = \mathrm{diag}(\hat w)
      /\lambda` and the m x m matrix :math:`M = I + B D B^T`. Signed codes live on
      :math:`[B, -B]` with state :math:`(w^+, w^-)`; their system folds back onto B exactly,
      with :math:`D = \mathrm{diag}(w^+ + w^-)/\lambda` and the two halves' B-gradients
      summed onto B.
    * ``"l1"``: on the active set :math:`A = \{j: \hat w_j \ne 0\}`,
      :math:`\hat w_A = (B_A^T B_A)^{-1}(B_A^T x - \lambda\,\mathrm{sign}(\hat w_A))`, so
      :math:`H_A = B_A^T B_A` and the gradient is zero off A. Exact away from the kinks
      (no inactive atom at the threshold, no active coefficient at zero).
    * ``"l2"``: :math:`H = B^T B + \lambda I` (signed), or its restriction to the active set
      :math:`\hat w_j > 0` (non-negative codes).

    With ``loss="kl"`` (softmax transfer, KL prior; ``x`` counts that :func:`~streamsc.encode`
    normalises to :math:`\bar x = x/\sum_i x_i`), the paper's eq. 21 with the
    normalised-exponential row of its Appendix C table gives, with
    :math:`q = \mathrm{softmax}(B\hat w)` and :math:`S = \mathrm{diag}(q) - qq^T`,

    .. math::

        H = B^T S B + \lambda\,\mathrm{diag}(R''(\hat w)), \qquad
        \frac{\partial \ell}{\partial B} = (\bar x - q)\, v^T - (S B v)\, \hat w^T, \qquad
        \frac{\partial \ell}{\partial x} = \frac{B v - (\bar x \cdot B v)\,\mathbf 1}
        {\sum_i x_i}

    (:math:`R'' = 1/\hat w`, or :math:`1/(w^+ + w^-)` signed). ``grad_x`` is the gradient
    of ``encode(x, loss="kl")`` as a function of the counts as given, renormalisation
    included: it is orthogonal to ``x`` (scaling a document changes nothing). :math:`H` is
    formed and factored densely, k x k (``method`` is ignored): text bases are small
    (k of 64-256); the cost is :math:`m k^2/2` per example.

    Parameters
    ----------
    x : array-like of shape (m,) or (n, m)
        The example(s) that were encoded (counts, for ``loss="kl"``).
    B : array-like of shape (m, k)
        The basis.
    w : array-like of shape (k,) or (n, k)
        The code(s) of ``x``. Must be > 0 for unsigned KL, >= 0 for unsigned L1/L2.
    grad_w : array-like, shaped like ``w``
        The cotangent :math:`\partial\ell/\partial\hat w`.
    loss : {"squared", "kl"}
        As in :func:`streamsc.encode`; ``"kl"`` needs ``prior="kl"``.
    prior : {"kl", "l1", "l2"}
    lam : float
    p : float or array-like of shape (k,), optional
        KL prior mean, as in :func:`streamsc.encode` (default ``1/k``).
    signed : bool
    halves : tuple of two arrays shaped like ``w``, optional
        Signed KL only: the state :math:`(w^+, w^-)` (``encode(..., return_halves=True)``).
        Default: the split of ``w`` with :math:`w^+ w^- = p^2`, which every exact optimum
        satisfies.
    return_grad_lam : bool
        Also return :math:`\partial\ell/\partial\lambda`.
    method : {"auto", "direct", "cg"}
        How the m x m system is solved when more than m atoms are active (k > m for KL):
        ``"direct"`` forms and factors M (about :math:`m^2 k/2` multiply-adds);
        ``"cg"`` runs conjugate gradients, two products with B per iteration,
        preconditioned by the dual Newton solver's Hessian approximation and stopped at a
        relative residual of 1e-12 (the result agrees with the direct one to ~1e-10).
        ``"auto"``: CG when m > 100, direct otherwise. With at most m active atoms (k <= m,
        L1) an s x s system over the s active atoms is factored instead.
    n_threads : int, optional
        Threads for a batch (one example per thread).

    Returns
    -------
    grad_B : ndarray of shape (m, k)
        For a batch, the sum over rows (B is shared by all examples).
    grad_x : ndarray shaped like ``x``
        One row per example.
    grad_lam : float, if ``return_grad_lam``
        For a batch, the sum over rows (``lam`` is shared).

    Notes
    -----
    The derivative is that of the exact solution, evaluated at the given ``w``; solve the
    code to a tolerance well below the accuracy wanted (``tol`` in :func:`streamsc.encode`).
    To weight the rows of a batch, scale the rows of ``grad_w``: the result is linear in it.

    Examples
    --------
    >>> import numpy as np
    >>> import streamsc
    >>> rng = np.random.default_rng(0)
    >>> B = rng.standard_normal((8, 20))
    >>> B /= np.linalg.norm(B, axis=0)
    >>> x = rng.standard_normal(8)
    >>> w = streamsc.encode(x, B, lam=0.1, tol=1e-12)
    >>> g = np.ones(20)                       # loss = sum of the coefficients
    >>> grad_B, grad_x = streamsc.encode_vjp(x, B, w, g, lam=0.1)
    >>> grad_B.shape, grad_x.shape
    ((8, 20), (8,))

    A central finite difference of the loss along ``x`` agrees:

    >>> eps = 1e-6
    >>> up = streamsc.encode((1 + eps) * x, B, lam=0.1, tol=1e-12).sum()
    >>> down = streamsc.encode((1 - eps) * x, B, lam=0.1, tol=1e-12).sum()
    >>> bool(np.isclose(grad_x @ x, (up - down) / (2 * eps), rtol=1e-6))
    True
    """
    loss = v.check_choice("loss", loss, v.LOSSES)
    prior = v.check_choice("prior", prior, v.PRIORS)
    v.resolve_solver(None, loss, prior)  # loss="kl" needs prior="kl"
    B = v.check_basis(B)
    m, k = B.shape
    x = v.as_float_array("x", x)
    v.check_x_matches("x", x, m)
    model, transfer = _models.PRIORS[prior], _models.LOSSES[loss]
    if transfer.distribution:
        totals = x.sum(axis=-1, keepdims=True)
        x = v.as_distribution("x", x)
    shape = x.shape[:-1] + (k,)
    w = v.as_float_array("w", w)
    if w.shape != shape:
        raise ValueError(
            f"w must have shape {shape} (one coefficient per atom of B for each row of x), "
            f"got {w.shape}"
        )
    grad_w = v.as_float_array("grad_w", grad_w)
    if grad_w.shape != shape:
        raise ValueError(f"grad_w must have the shape of w {shape}, got {grad_w.shape}")
    lam = v.check_real("lam", lam, low=0.0)
    signed = v.check_bool("signed", signed)
    p = v.resolve_p(p, k)
    return_grad_lam = v.check_bool("return_grad_lam", return_grad_lam)
    method = v.check_choice("method", method, METHODS)
    n_threads = v.check_int("n_threads", n_threads, low=1, allow_none=True)

    if halves is not None:
        if not model.halved(signed):
            raise ValueError("halves is only used with prior='kl' and signed=True")
        if not isinstance(halves, (tuple, list)) or len(halves) != 2:
            raise TypeError("halves must be a pair (w_plus, w_minus)")
        wp = v.as_float_array("halves[0]", halves[0])
        wm = v.as_float_array("halves[1]", halves[1])
        for name, h in (("halves[0]", wp), ("halves[1]", wm)):
            if h.shape != shape:
                raise ValueError(f"{name} must have the shape of w {shape}, got {h.shape}")
            if np.any(h <= 0):
                raise ValueError(f"{name} must be > 0 (a signed KL state is positive)")
        if np.any(np.abs(wp - wm - w) > 1e-9 * (wp + wm)):
            raise ValueError("halves do not match w: w_plus - w_minus must equal w")
    if model.positive and not signed and np.any(w <= 0):
        raise ValueError("w must be > 0 for unsigned KL codes (the KL prior's domain)")
    if not model.positive and not signed and np.any(w < 0):
        raise ValueError(f"w must be >= 0 for unsigned {prior} codes")

    single = x.ndim == 1
    X2 = x[None, :] if single else x
    W2 = w[None, :] if single else w
    G2 = grad_w[None, :] if single else grad_w
    if model.active_set:
        n_active = np.count_nonzero(W2, axis=1)
        if np.any(n_active > m):
            i = int(np.argmax(n_active > m))
            raise ValueError(
                f"w has {int(n_active[i])} non-zero coefficients (row {i}) but B has only "
                f"{m} rows: an L1 code with more active atoms than m is not unique, and "
                "not differentiable"
            )
    if halves is not None:
        halves2 = (wp[None, :], wm[None, :]) if single else (wp, wm)
    else:
        halves2 = None

    grad_B, grad_X, grad_lam = vjp(
        X2, B, W2, G2, loss=loss, prior=prior, lam=lam, p=p, signed=signed, halves=halves2,
        method=method, n_threads=n_threads,
    )
    if transfer.distribution:
        # through the renormalisation x -> x / sum(x): project, then scale
        grad_X = (grad_X - np.sum(grad_X * X2, axis=1, keepdims=True)) / (
            totals if not single else totals[None, :])
    bad = ~np.isfinite(grad_lam)
    if np.any(bad):
        i = int(np.argmax(bad))
        if model.active_set:
            raise ValueError(
                f"the active atoms of row {i} of w are linearly dependent: the L1 code is "
                "not unique there, and not differentiable"
            )
        raise ValueError(f"the Hessian at row {i} of w is not positive definite (w out of range?)")
    result = (grad_B, grad_X[0] if single else grad_X)
    if return_grad_lam:
        result += (float(np.sum(grad_lam)),)
    return result


def vjp(X, B, W, G, *, prior, lam, p, signed, halves=None, method="auto", n_threads=None,
        loss="squared"):
    """The VJP of the codes of the rows of X with no argument checking: the entry point to
    the kernels shared by :func:`encode_vjp` and the estimators.

    X (n, m), B (m, k), W and G (n, k) are C-contiguous float64; p a length-k array;
    ``halves`` None or ``(W+, W-)`` for signed KL (default: split W with ``w+ w- = p^2``).
    A single row runs the per-example kernel in the calling thread, several rows one per
    thread. Returns ``(grad_B, grad_X, grad_lam)``: grad_B (m, k) summed over rows,
    grad_X (n, m) and grad_lam (n,) per row (NaN where a solve failed). With ``loss="kl"``
    the rows of X are distributions and grad_X is the gradient with respect to them.
    """
    n, m = X.shape
    k = B.shape[1]
    if _models.LOSSES[loss].distribution:
        return _vjp_kl_loss(X, B, W, G, lam=lam, p=p, signed=signed, halves=halves,
                            n_threads=n_threads)
    model = _models.PRIORS[prior]
    prior_id = model.kernel_id
    if method == "auto":
        method_id = vjp_kernels.CG if m > AUTO_CG_ABOVE_M else vjp_kernels.DIRECT
    else:
        method_id = vjp_kernels.CG if method == "cg" else vjp_kernels.DIRECT
    if model.halved(signed):
        if halves is None:
            Wp, Wm = model.split_halves(W, p)
        else:
            Wp, Wm = halves
        Wp = np.ascontiguousarray(Wp)
        Wm = np.ascontiguousarray(Wm)
        C = Wp - Wm
    else:
        Wp = W
        Wm = np.empty((n, 0))
        C = W
    V = np.empty((n, k))
    grad_X = np.empty((n, m))
    grad_lam = np.empty(n)
    if n == 1:
        grad_B = np.empty((m, k))
        grad_lam[0], _ = vjp_kernels.encode_vjp_one(
            X[0], B, prior_id, signed, lam, p, Wp[0], Wm[0], G[0], method_id, CG_RTOL,
            CG_MAX_ITER, CG_HESS_DROP, CG_MAX_KEPT, V[0], grad_B, grad_X[0],
        )
        return grad_B, grad_X, grad_lam
    n_cg = np.empty(n, dtype=np.int64)
    with _threads(n_threads, n):
        vjp_kernels.vjp_direction_batch(
            B, prior_id, signed, lam, p, Wp, Wm, G, method_id, CG_RTOL, CG_MAX_ITER,
            CG_HESS_DROP, CG_MAX_KEPT, V, grad_X, grad_lam, n_cg,
        )
    # sum_i (x_i - B c_i) v_i^T - (B v_i) c_i^T = R^T V - grad_X^T C
    R = X - C @ B.T
    grad_B = R.T @ V - grad_X.T @ C
    return grad_B, grad_X, grad_lam


def _vjp_kl_loss(X, B, W, G, *, lam, p, signed, halves, n_threads):
    """:func:`vjp` for the KL loss with softmax transfer (KL prior); X rows distributions."""
    n, m = X.shape
    k = B.shape[1]
    if signed:
        Wp, Wm = split_signed(W, p) if halves is None else halves
        Wp = np.ascontiguousarray(Wp)
        Wm = np.ascontiguousarray(Wm)
        C = Wp - Wm
    else:
        Wp, Wm, C = W, np.empty((n, 0)), W
    Q = np.empty((n, m))
    V = np.empty((n, k))
    BV = np.empty((n, m))
    SBV = np.empty((n, m))
    grad_lam = np.empty(n)
    if n == 1:
        grad_lam[0] = vjp_kernels.kl_loss_direction(
            B, signed, lam, p, Wp[0], Wm[0], G[0], Q[0], V[0], BV[0], SBV[0]
        )
    else:
        with _threads(n_threads, n):
            vjp_kernels.kl_loss_direction_batch(
                B, signed, lam, p, Wp, Wm, G, Q, V, BV, SBV, grad_lam
            )
    # sum_i (x_i - q_i) v_i^T - (S B v)_i c_i^T
    grad_B = (X - Q).T @ V - SBV.T @ C
    return grad_B, BV, grad_lam


def direction(B, w, g, *, prior, lam, p, signed, method="auto", loss="squared"):
    """``v = H^{-1} g`` and ``u`` for the code ``w`` of one example (no argument checking).

    The implicit gradient of a loss on the code is then ``grad_B = (x - f(B w)) v^T - u w^T``
    with ``u = B v`` (squared loss; also ``grad_x``) or ``u = S B v`` (``loss="kl"``: S the
    softmax Jacobian at ``B w``, x the document's distribution): estimators that apply
    ``grad_B`` as a step use this to update the basis in place without forming the m x k
    matrix. Returns ``(v, u, grad_lam)``.
    """
    m, k = B.shape
    if _models.LOSSES[loss].distribution:
        if signed:
            wp, wm = split_signed(w, p)
        else:
            wp, wm = w, np.empty(0)
        v_ = np.empty(k)
        q, Bv, SBv = np.empty(m), np.empty(m), np.empty(m)
        grad_lam = vjp_kernels.kl_loss_direction(
            B, signed, lam, p, np.ascontiguousarray(wp), np.ascontiguousarray(wm),
            np.ascontiguousarray(g, dtype=np.float64), q, v_, Bv, SBv,
        )
        return v_, SBv, grad_lam
    if method == "auto":
        method_id = vjp_kernels.CG if m > AUTO_CG_ABOVE_M else vjp_kernels.DIRECT
    else:
        method_id = vjp_kernels.CG if method == "cg" else vjp_kernels.DIRECT
    model = _models.PRIORS[prior]
    if model.halved(signed):
        wp, wm = model.split_halves(w, p)
    else:
        wp, wm = w, np.empty(0)
    v_ = np.empty(k)
    Bv = np.empty(m)
    grad_lam, _ = vjp_kernels.vjp_direction(
        B, model.kernel_id, signed, lam, p, np.ascontiguousarray(wp), np.ascontiguousarray(wm),
        np.ascontiguousarray(g, dtype=np.float64), method_id, CG_RTOL, CG_MAX_ITER,
        CG_HESS_DROP, CG_MAX_KEPT, v_, Bv,
    )
    return v_, Bv, grad_lam
