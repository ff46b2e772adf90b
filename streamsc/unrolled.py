r"""Unrolled differentiation of sparse codes (PUDLE, Tolooshams & Ba 2022).

Instead of the exact code :math:`\hat w(x, B)` and its implicit derivative
(:func:`streamsc.encode_vjp`), run a fixed number T of solver iterations from a fixed start
as a network :math:`w_T(B, x)` and differentiate through them in reverse mode: ISTA (or FISTA)
for the L1 and L2 priors, the paper's exponentiated gradient descent for the KL prior, each
with a fixed step that is held constant (not differentiated). As T grows, :math:`w_T` tends to
:math:`\hat w` and the unrolled gradient to the implicit one (tested); for small T it is the
exact gradient of a different, cheaper model: the T-layer network.

The kernels are in :mod:`streamsc._kernels.unrolled`; this module checks arguments, picks the
step and dispatches. :func:`unrolled_gradient` is the unchecked per-example entry point for
estimators (``gradient="unrolled"``).
"""

import numba
import numpy as np

from . import _models
from . import _validation as v
from ._kernels import unrolled as K
from .coding import _threads

__all__ = ["unrolled_vjp"]

#: with an automatic KL step, how many times the step may be halved after the coding
#: objective rose before giving up
MAX_HALVINGS = 40

#: with an automatic KL step, the step used is the first step (start, halved) whose
#: iterates decrease the coding objective at every iteration, times this factor. The
#: monotone-decrease test accepts steps up to about 2 / L of the local curvature, where the
#: iterates oscillate and the unrolled Jacobian converges slowly: with the accepted step
#: itself, KL dictionary learning with T = 10 and 20 failed on the planted stream of
#: ``demos/gradients.py`` (26% and 51% of the atoms recovered); one more halving
#: keeps the step at or below about 1 / L (``docs/gradients.md``).
ACCEPTED_STEP_FACTOR = 0.5


def initial_step(B, *, prior, lam, p, signed, lipschitz=None):
    r"""The default fixed step of the unrolled solver (no argument checking).

    * L1 / L2 (ISTA, FISTA): ``1 / L`` with ``L = ||B||_2^2`` (``lipschitz`` if given, e.g.
      from :func:`~streamsc._kernels.unrolled.spectral_norm_sq`; computed exactly otherwise).
      ISTA is monotone for steps up to 1/L and stable up to 2/L, so an estimate of L a few
      percent low is harmless.
    * KL (EGD): ``1 / (lam + sum_j s_j p_j ||b_j||^2)``, ``s_j`` = 2 when signed (both
      halves start at p) and 1 otherwise: the exact bound on the curvature of the log-space
      step at the start ``w_0 = p`` (see :mod:`streamsc._kernels.unrolled`). The code grows
      along the trajectory, so callers run the forward pass with ``check=True`` and halve the
      step while the objective rises (:func:`unrolled_gradient` with ``adapt=True``): for
      unit-norm inputs and the default ``p = 1/k`` the accepted step is usually this one or
      its half (measured, ``max_t ||B diag(w_t) B^T||_2`` between 0.06 and 2.3).
    """
    return _models.PRIORS[prior].unrolled_step(B, lam=lam, p=p, signed=signed,
                                               lipschitz=lipschitz)


def unrolled_vjp(
    x,
    B,
    grad_w=None,
    *,
    loss="squared",
    prior="kl",
    lam=0.1,
    p=None,
    signed=False,
    n_steps=10,
    step=None,
    accelerated=False,
    reconstruction_weight=0.0,
    return_step=False,
    n_threads=None,
):
    r"""Codes of T unrolled solver iterations and their vector-Jacobian product (PUDLE).

    Runs ``n_steps`` = T iterations of a sparse-coding solver with a fixed step ``alpha``
    from a fixed start, for the squared loss :math:`\tfrac12\|x - Bw\|^2 + \lambda R(w)`:

    * ``"l1"``, ``"l2"``: ISTA from :math:`w_0 = 0`, :math:`w_{t+1} = \mathrm{prox}_{\alpha
      \lambda R}(y_t - \alpha B^T(B y_t - x))` with :math:`y_t = w_t`, or FISTA
      (``accelerated=True``) with :math:`y_t = w_t + \tfrac{t}{t+3}(w_t - w_{t-1})`. The
      prox is the (non-negative, unless ``signed``) soft threshold for L1 and
      :math:`z/(1 + \alpha\lambda)` (clipped at 0 unless ``signed``) for L2.
    * ``"kl"``: the paper's exponentiated gradient descent from the prior's minimiser
      :math:`w_0 = p`, :math:`\log w_{t+1} = \log w_t - \alpha \nabla L(w_t)`, on the state
      :math:`(w^+, w^-)` of :math:`[B, -B]` when ``signed`` (code :math:`w^+ - w^-`).

    and returns the final code :math:`w_T(B, x)` with the gradients, with respect to B and x,
    of

    .. math::

        \ell = g \cdot w_T + \frac{\rho}{2} \|x - B w_T\|^2

    (``g = grad_w``, :math:`\rho` = ``reconstruction_weight``) by reverse-mode
    differentiation through the T iterations, the step held fixed. With ``g = 0`` and
    :math:`\rho = 1` this is the dictionary-learning gradient of PUDLE: the reconstruction
    loss of the unrolled code, without the prior term. The thresholds of the L1 and
    non-negative L2 prox are differentiated on their active branch (derivative 0 where the
    output is 0). As T grows, :math:`w_T` tends to :func:`streamsc.encode`'s code and the
    gradients to those of :func:`streamsc.encode_vjp` (tested), at the solver's linear rate.

    Parameters
    ----------
    x : array-like of shape (m,) or (n, m)
        The example(s).
    B : array-like of shape (m, k)
        The basis.
    grad_w : array-like of shape (k,) or (n, k), optional
        The cotangent :math:`g = \partial\ell/\partial w_T`; default zero.
    loss : {"squared"}
        Only the squared loss is unrolled; ``"kl"`` raises ``ValueError``.
    prior : {"kl", "l1", "l2"}
    lam : float
    p : float or array-like of shape (k,), optional
        KL prior mean and start of EGD (default ``1/k``).
    signed : bool
    n_steps : int
        T >= 1, the number of unrolled iterations.
    step : float, optional
        The fixed step :math:`\alpha` for every row. Default: ``1/||B||_2^2`` for L1 and L2;
        for KL, :math:`1/(\lambda + \sum_j p_j \|b_j\|^2)` (twice the sum when signed) per
        row, halved until the coding objective decreases at every iteration (a rise means the
        step exceeds the inverse curvature of the log-space step somewhere on the trajectory),
        then halved once more (:data:`ACCEPTED_STEP_FACTOR`). An explicit step is used as given; iterates that overflow raise ``FloatingPointError``.
    accelerated : bool
        FISTA instead of ISTA (L1 and L2 only).
    reconstruction_weight : float
        :math:`\rho \ge 0`.
    return_step : bool
        Also return the step(s) used, to reproduce the result with ``step`` fixed.
    n_threads : int, optional
        Threads for a batch (rows split into one chunk per thread).

    Returns
    -------
    w : ndarray of shape (k,) or (n, k)
        The unrolled code(s) :math:`w_T`.
    grad_B : ndarray of shape (m, k)
        For a batch, the sum over rows.
    grad_x : ndarray shaped like ``x``
    step : float or ndarray of shape (n,), if ``return_step``

    Notes
    -----
    Cost per row: about 4 T m k multiply-adds forward and 6 T m k backward, with
    O(T k) memory for the trajectory. The implicit gradient of :func:`streamsc.encode_vjp`
    needs the exact code (many more iterations) but a single linear solve afterwards.

    Examples
    --------
    >>> import numpy as np
    >>> import streamsc
    >>> rng = np.random.default_rng(0)
    >>> B = rng.standard_normal((8, 20))
    >>> B /= np.linalg.norm(B, axis=0)
    >>> x = rng.standard_normal(8)
    >>> g = np.ones(20)                       # loss = sum of the coefficients of w_T
    >>> w, grad_B, grad_x, step = streamsc.unrolled_vjp(
    ...     x, B, g, prior="l1", lam=0.1, n_steps=20, return_step=True)
    >>> w.shape, grad_B.shape, grad_x.shape
    ((20,), (8, 20), (8,))

    A central finite difference of the loss along ``x``, the step held fixed, agrees:

    >>> eps = 1e-6
    >>> f = lambda z: streamsc.unrolled_vjp(z, B, g, prior="l1", n_steps=20, step=step)[0].sum()
    >>> bool(np.isclose(grad_x @ x, (f((1 + eps) * x) - f((1 - eps) * x)) / (2 * eps)))
    True

    With many iterations the gradient is the implicit one of the exact code:

    >>> w_exact = streamsc.encode(x, B, prior="l1", lam=0.1, tol=1e-12)
    >>> gB_exact, _ = streamsc.encode_vjp(x, B, w_exact, g, prior="l1", lam=0.1)
    >>> w, gB, _ = streamsc.unrolled_vjp(x, B, g, prior="l1", lam=0.1, n_steps=3000)
    >>> bool(np.allclose(w, w_exact, atol=1e-8)), bool(np.allclose(gB, gB_exact, atol=1e-6))
    (True, True)
    """
    loss = v.check_choice("loss", loss, v.LOSSES)
    if not _models.LOSSES[loss].unrolled:
        raise ValueError(
            f"loss={loss!r} is not supported by unrolled_vjp (the unrolled solvers are for "
            "the squared loss); use encode_vjp for the KL loss"
        )
    prior = v.check_choice("prior", prior, v.PRIORS)
    B = v.check_basis(B)
    m, k = B.shape
    x = v.as_float_array("x", x)
    v.check_x_matches("x", x, m)
    shape = x.shape[:-1] + (k,)
    if grad_w is not None:
        grad_w = v.as_float_array("grad_w", grad_w)
        if grad_w.shape != shape:
            raise ValueError(
                f"grad_w must have shape {shape} (one entry per atom of B for each row of x), "
                f"got {grad_w.shape}"
            )
    lam = v.check_real("lam", lam, low=0.0)
    p = v.resolve_p(p, k)
    signed = v.check_bool("signed", signed)
    n_steps = v.check_int("n_steps", n_steps, low=1)
    step = v.check_real("step", step, low=0.0, allow_none=True)
    accelerated = v.check_bool("accelerated", accelerated)
    if accelerated and _models.PRIORS[prior].unrolled_egd:
        ista = " or ".join(repr(name) for name, model in _models.PRIORS.items()
                           if not model.unrolled_egd)
        raise ValueError(f"accelerated=True (FISTA) applies to prior={ista}, not {prior!r}")
    reconstruction_weight = v.check_real(
        "reconstruction_weight", reconstruction_weight, low=0.0, low_inclusive=True
    )
    return_step = v.check_bool("return_step", return_step)
    n_threads = v.check_int("n_threads", n_threads, low=1, allow_none=True)

    single = x.ndim == 1
    X2 = x[None, :] if single else x
    n = X2.shape[0]
    if grad_w is None:
        G2 = np.zeros((n, k))
    else:
        G2 = grad_w[None, :] if single else grad_w
    W, grad_B, grad_X, steps = unrolled(
        X2, B, G2, prior=prior, lam=lam, p=p, signed=signed, n_steps=n_steps, step=step,
        accelerated=accelerated, reconstruction_weight=reconstruction_weight,
        n_threads=n_threads,
    )
    if single:
        result = (W[0], grad_B, grad_X[0], float(steps[0]))
    else:
        result = (W, grad_B, grad_X, steps)
    return result if return_step else result[:3]


def unrolled(X, B, G, *, prior, lam, p, signed, n_steps, step=None, accelerated=False,
             reconstruction_weight=0.0, n_threads=None):
    """:func:`unrolled_vjp` for the rows of X with no argument checking.

    X (n, m), B (m, k), G (n, k) C-contiguous float64, p a length-k array. ``step`` None
    (the default per row, adapted for KL, then times :data:`ACCEPTED_STEP_FACTOR`), a float
    or one float per row. Returns ``(W, grad_B, grad_X,
    steps)``: the codes (n, k), grad_B (m, k) summed over rows, grad_X (n, m) and the step
    of each row. Raises ``FloatingPointError`` if the iterates overflow.
    """
    n, m = X.shape
    k = B.shape[1]
    model = _models.PRIORS[prior]
    prior_id = model.kernel_id
    adapt = step is None and model.unrolled_egd
    if step is None:
        step = initial_step(B, prior=prior, lam=lam, p=p, signed=signed)
    steps = np.broadcast_to(np.asarray(step, dtype=np.float64), (n,)).copy()
    n_state = model.state_size(k, signed)
    W = np.empty((n, k))
    grad_X = np.zeros((n, m))
    grad_B = np.zeros((m, k))
    if n == 1:
        traj = np.empty((n_steps + 1, n_state))
        for _ in range(MAX_HALVINGS + 1):
            st = K.unrolled_forward(X[0], B, prior_id, signed, lam, p, steps[0], accelerated,
                                    adapt, traj)
            if st == K.OK or not adapt:
                break
            steps[0] *= 0.5
        _raise_on_status(np.array([st]), steps, adapt)
        if adapt:
            return unrolled(X, B, G, prior=prior, lam=lam, p=p, signed=signed,
                            n_steps=n_steps, step=steps * ACCEPTED_STEP_FACTOR,
                            accelerated=accelerated,
                            reconstruction_weight=reconstruction_weight, n_threads=n_threads)
        K.unrolled_backward(X[0], B, prior_id, signed, lam, p, steps[0], accelerated, traj,
                            G[0], reconstruction_weight, grad_B, grad_X[0])
        _unpack_code(traj[n_steps], k, model.halved(signed), W[0])
        return W, grad_B, grad_X, steps
    status = np.empty(n, dtype=np.int64)
    todo = np.arange(n)
    with _threads(n_threads, n):
        for _ in range(MAX_HALVINGS + 1):
            n_chunks = max(1, min(todo.size, numba.get_num_threads()))
            traj = np.empty((n_chunks, n_steps + 1, n_state))
            grad_Bs = np.zeros((n_chunks, m, k))
            sub = todo if todo.size < n else slice(None)
            Xs, Gs, Ws, GXs = X[sub], G[sub], np.empty((todo.size, k)), np.zeros((todo.size, m))
            sts = np.empty(todo.size, dtype=np.int64)
            ls = np.empty(todo.size)
            K.unrolled_batch(Xs, B, prior_id, signed, lam, p, np.ascontiguousarray(steps[todo]),
                             accelerated, adapt, np.ascontiguousarray(Gs), reconstruction_weight,
                             traj, Ws, grad_Bs, GXs, sts, ls)
            grad_B += grad_Bs.sum(axis=0)
            W[todo] = Ws
            grad_X[todo] = GXs
            status[todo] = sts
            if not adapt:
                break
            todo = todo[sts != K.OK]
            if todo.size == 0:
                break
            steps[todo] *= 0.5
    _raise_on_status(status, steps, adapt)
    if adapt:
        return unrolled(X, B, G, prior=prior, lam=lam, p=p, signed=signed, n_steps=n_steps,
                        step=steps * ACCEPTED_STEP_FACTOR, accelerated=accelerated,
                        reconstruction_weight=reconstruction_weight, n_threads=n_threads)
    return W, grad_B, grad_X, steps


def _unpack_code(state, k, two_halves, out):
    if two_halves:
        out[:] = _models.Prior.merge(state, k)
    else:
        out[:] = state


def _raise_on_status(status, steps, adapt):
    bad = status != K.OK
    if np.any(bad):
        i = int(np.argmax(bad))
        if adapt:
            raise FloatingPointError(
                f"the unrolled EGD of row {i} did not decrease its objective even with the "
                f"step halved {MAX_HALVINGS} times (to {steps[i]:.3g}); is x finite and of "
                "moderate scale?"
            )
        raise FloatingPointError(
            f"the unrolled iterates of row {i} overflowed with step={steps[i]:.6g}: the step "
            "is too large (use the default step=None)"
        )


def unrolled_gradient(B, x, grad_B, traj, *, prior, lam, p, signed, step, adapt=False,
                      accelerated=False, grad_w=None, reconstruction_weight=1.0, grad_x=None):
    r"""The unrolled gradient of one example, for estimators (no argument checking).

    Runs the T = ``traj.shape[0] - 1`` unrolled iterations on x (m,) and **overwrites**
    ``grad_B`` (m, k) with the gradient with respect to B of

    .. math:: \rho\,\tfrac12 \|x - B w_T(B)\|^2 + g \cdot w_T(B)

    (:math:`\rho` = ``reconstruction_weight``, the PUDLE dictionary-learning loss: the
    direct term :math:`(B w_T - x) w_T^T` plus back-propagation of
    :math:`B^T(B w_T - x)` through the iterations; g = ``grad_w``).

    Parameters
    ----------
    B : float64 (m, k), C-contiguous
    x : float64 (m,)
    grad_B : float64 (m, k)
        Output buffer (the estimator allocates it once).
    traj : float64 (T + 1, k), or (T + 1, 2k) for signed KL
        Trajectory buffer; its first dimension sets T.
    prior : {"kl", "l1", "l2"}
    lam : float
    p : float64 (k,)
    signed : bool
    step : float
        The fixed step (:func:`initial_step`, or the step this function returned for the
        previous example).
    adapt : bool
        KL only: halve ``step`` until the coding objective decreases at every iteration,
        then once more (:data:`ACCEPTED_STEP_FACTOR`; the returned step is the one used). Otherwise the step is used as given.
    accelerated : bool
        FISTA (L1 / L2).
    grad_w : None, float64 (k,) or callable
        The cotangent g of a supervised loss; a callable is called with the (read-only)
        unrolled code :math:`w_T` after the forward pass and returns g (a head's gradient).
        None: no supervised term.
    reconstruction_weight : float
    grad_x : float64 (m,), optional
        If given, overwritten with the gradient with respect to x.

    Returns
    -------
    code : ndarray (k,)
        :math:`w_T` (a new array).
    step : float
        The step used.
    loss : float
        :math:`\tfrac12\|x - B w_T\|^2`.

    Raises ``FloatingPointError`` (nothing written) if the iterates overflow, or (``adapt``)
    if no step decreased the objective.
    """
    k = B.shape[1]
    model = _models.PRIORS[prior]
    prior_id = model.kernel_id
    adapt = adapt and model.unrolled_egd
    for _ in range(MAX_HALVINGS + 1):
        st = K.unrolled_forward(x, B, prior_id, signed, lam, p, step, accelerated, adapt, traj)
        if st == K.OK or not adapt:
            break
        step *= 0.5
    if st != K.OK:
        _raise_on_status(np.array([st]), np.array([step]), adapt)
    if adapt:  # the safety margin below the accepted step (ACCEPTED_STEP_FACTOR)
        step *= ACCEPTED_STEP_FACTOR
        st = K.unrolled_forward(x, B, prior_id, signed, lam, p, step, accelerated, False, traj)
        if st != K.OK:
            _raise_on_status(np.array([st]), np.array([step]), False)
    T = traj.shape[0] - 1
    code = np.empty(k)
    _unpack_code(traj[T], k, model.halved(signed), code)
    if callable(grad_w):
        view = code.view()
        view.flags.writeable = False
        g = np.ascontiguousarray(grad_w(view), dtype=np.float64)
    elif grad_w is None:
        g = np.zeros(k)
    else:
        g = grad_w
    gx = np.zeros(B.shape[0]) if grad_x is None else grad_x
    gx.fill(0.0)
    grad_B.fill(0.0)
    loss = K.unrolled_backward(x, B, prior_id, signed, lam, p, step, accelerated, traj, g,
                               reconstruction_weight, grad_B, gx)
    return code, float(step), float(loss)
