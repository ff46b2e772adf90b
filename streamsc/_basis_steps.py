"""The basis updates of a :class:`~streamsc._learner.Learner`, as functions of it: the SGD
step of eq. 7 with its per-atom AdaGrad step size (:func:`sgd_scale`, the one step-size
schedule), the implicit rank-2 and unrolled supervised steps, the online surrogate's step
(Mairal et al. 2010) and the mini-batch step. Each checks everything before it changes
anything: a refused example leaves the learner as it was.
"""

import math

import numpy as np

from . import _models
from ._atoms import init_atom, track
from ._kernels import dictionary as dict_kernels
from ._kernels import unrolled as unrolled_kernels
from .coding import _threads
from .differentiation import direction as _direction
from .unrolled import initial_step, unrolled_gradient

__all__ = ["direction", "learn_batch", "learn_one", "rank2_step", "step", "unrolled_step"]

#: largest entry change of one SGD step allowed before an example is rejected as too large
#: (the basis has unit-norm columns; beyond this the column sums of squares could overflow)
_MAX_STEP = 1e150

#: basis_update="sgd": an atom's sum of squared gradients counts as at least this fraction
#: of the largest atom's in its AdaGrad step
ADAGRAD_FLOOR = 1e-4

#: weight of example t in the surrogate's statistics: t + SURROGATE_T0 * k
SURROGATE_T0 = 1.0
#: a given basis (``basis=``, a pretrained one): the surrogate's statistics start as if
#: every atom had carried the whole code of this many examples like the first one, so the
#: first examples refine the basis instead of refitting each atom to them (from zero
#: statistics, one example's block-coordinate step moves an atom all the way to that
#: example's residual). ``docs/learning.md``; ``tests/test_sparse_coder.py``.
PRIOR_EXAMPLES = 10.0
#: the surrogate's schedules. In blocks (a SparseCoder's learn_one): every atom moves, by one
#: block-coordinate pass, after every k-th example learned (k the number of atoms), one
#: matrix-vector product per example on average; between passes an example only adds to
#: the statistics. Gradually (a supervised model's labelled step, whose head learns from
#: the codes as the basis moves, and any step with an SGD part): after every example, the
#: atoms its code uses (|w_j| >= ACTIVE_FRACTION * max|w|, at most MAX_ACTIVE) and
#: ROUND_ROBIN more in turn move.
ACTIVE_FRACTION = 0.05
MAX_ACTIVE = 32
ROUND_ROBIN = 2


# ---------------------------------------------------------------------------------------
# what every step shares
# ---------------------------------------------------------------------------------------


def _touched(lr, rows):
    """The row numbers a step on ``rows`` (None: every row) touches."""
    return np.arange(lr.m) if rows is None else rows


def weight(lr):
    """c_t, the weight of the next example in the running statistics: ``t + t0``, t the
    examples so far, ``t0 = SURROGATE_T0`` times k. Weights growing linearly with t
    forget the early examples, coded under an early basis (Mairal et al. 2010, sec. 3.4;
    scikit-learn's MiniBatchDictionaryLearning weighs samples the same way)."""
    return float(lr.seen + SURROGATE_T0 * lr.config.n_components)


def sgd_scale(lr, colsq):
    """``basis_update="sgd"``: the per-atom step ``learning_rate / sqrt(G_j)`` after adding
    this step's squared column norms ``colsq`` of the gradient to ``G`` (AdaGrad over
    atoms: the step has the units of an atom whatever the scale of the data and the
    codes, and decays as one over the square root of the atom's use). ``G_j`` is floored
    at ``ADAGRAD_FLOOR`` times the largest, so an atom's first, tiny gradient is not
    blown up to a full step. Returns the new ``G`` (not stored) and the scales (zero
    while no atom has a gradient)."""
    G = lr.G + colsq
    floor = ADAGRAD_FLOOR * float(G.max(initial=0.0))
    if not floor > 0.0:
        return G, np.zeros_like(G)
    return G, lr.config.learning_rate / np.sqrt(np.maximum(G, floor))


class StepTooLarge(ValueError):
    """A basis step that would not be finite (or would move an entry by over
    :data:`_MAX_STEP`): nothing has changed. ``supervised`` says whether the step held a
    backpropagated (label) part; the estimators, which know the feature names and the
    label, reword it (:func:`streamsc._features.too_large`) or, for a labelled step, take
    the reconstruction step alone."""

    def __init__(self, step, supervised=False, reason=None):
        self.step = float(step)
        self.supervised = supervised
        #: what x would do, for the message
        self.reason = reason or f"would move the basis by {self.step:.3g}"
        super().__init__(
            f"x is too large to learn from (it {self.reason}); scale the features. The "
            "model is unchanged"
        )


def check_step(loss, step, supervised=False):
    if not (math.isfinite(loss) and math.isfinite(step) and step < _MAX_STEP):
        raise StepTooLarge(step, supervised)


def residual(lr, rows, x, code):
    """(rows touched, g = f(B w) - x on them, loss): the loss gradient with respect to the
    reconstruction. The KL loss's residual covers every row (O(m) memory)."""
    r = _touched(lr, rows)
    g = np.empty(r.size)
    if _models.LOSSES[lr.config.loss].distribution:
        loss = dict_kernels.softmax_residual(lr.B, code, x, g)
    else:
        loss = dict_kernels.squared_residual(lr.B, r, code, x, g)
    return r, g, loss


def _stepped(lr, rows, x, code, moved=True):
    """Bookkeeping after a basis step: count it, cache the code of x (the warm start of
    its next solve) under the old version of B, and, if B ``moved``, move to the new
    version (a step that did not move B leaves the cached code exact)."""
    lr.t += 1
    if code is not None:
        lr.cache = (rows, x.copy(), code, lr.version)
    if moved:
        lr.version += 1


def direction(lr, Bo, code, g_w):
    """``(v, u)`` of :func:`streamsc.differentiation.direction` for a loss gradient
    ``g_w`` on the code (rows ``Bo`` of B observed); raises if they are not finite."""
    cfg = lr.config
    vdir, Bv, _ = _direction(Bo, code, g_w, prior=cfg.prior, lam=cfg.lam, p=cfg.p,
                             signed=cfg.signed, loss=cfg.loss)
    if not (np.all(np.isfinite(vdir)) and np.all(np.isfinite(Bv))):
        raise FloatingPointError("the implicit gradient is not finite; the model is unchanged")
    return vdir, Bv


# ---------------------------------------------------------------------------------------
# one example
# ---------------------------------------------------------------------------------------


def learn_one(lr, rows, x):
    """The basis step of :meth:`Learner.learn`, once the atoms are set."""
    if lr.config.gradient == "unrolled":
        return unrolled_step(lr, rows, x, None, None, 0.0, 1.0)
    code, _ = lr._code_one(rows, x)
    vdir = Bv = None
    if lr.config.gradient == "implicit":  # the reconstruction loss through the code
        _, g, _ = residual(lr, rows, x, code)
        Bo = lr.observed(rows)
        vdir, Bv = direction(lr, Bo, code, Bo.T @ g)
    return code.copy(), step(lr, rows, x, code, vdir, Bv, 1.0, 1.0)


def step(lr, rows, x, code, v, Bv, backprop_weight, reconstruction_weight, gradual=False):
    """The basis step along ``reconstruction_weight`` times the reconstruction gradient
    plus ``backprop_weight`` times an implicit gradient (``v``, ``Bv``; None: none): the
    reconstruction part by the surrogate (``gradual``: its schedule for a supervised
    model) and the implicit part by AdaGrad, or both by :func:`rank2_step`
    (``basis_update="sgd"``). ``x`` as learned (a distribution for the KL loss). Returns
    the example's loss."""
    if lr.config.basis_update != "surrogate":
        return rank2_step(lr, rows, x, code, v, Bv, backprop_weight, reconstruction_weight)
    then = None
    if v is not None and backprop_weight > 0.0:  # AdaGrad on the implicit gradient,
        # its step times backprop_weight (AdaGrad alone would cancel any weight)
        then = _rank2(lr, rows, x, code, v, Bv, 1.0, 0.0, backprop_weight)[1]
    return surrogate_step(lr, rows, x, code, reconstruction_weight, then, gradual)


def _rank2(lr, rows, x, code, v, Bv, backprop_weight, reconstruction_weight, step_weight=1.0):
    """The checks and the update of :func:`rank2_step`: returns ``(loss, apply)``, with
    ``apply()`` the step (nothing changes until it is called). Raises if the step is not
    finite."""
    k = lr.config.n_components
    r, g, loss = residual(lr, rows, x, code)
    if v is None:
        v = np.zeros(k)
        Bv = np.zeros(r.size)
        backprop_weight = 0.0
    a = reconstruction_weight * g - backprop_weight * Bv
    b = -backprop_weight * g
    with np.errstate(over="ignore", invalid="ignore"):
        # squared norms of the gradient's columns a w_j + b v_j
        colsq = (np.dot(a, a) * code * code + 2.0 * np.dot(a, b) * code * v
                 + np.dot(b, b) * v * v)
        G, scale = sgd_scale(lr, np.maximum(colsq, 0.0))
        scale = scale * step_weight
        ws, vs = code * scale, v * scale
        size = (np.abs(a).max(initial=0.0) * np.abs(ws).max(initial=0.0)
                + np.abs(b).max(initial=0.0) * np.abs(vs).max(initial=0.0))
    check_step(loss, size, supervised=backprop_weight != 0.0)

    def apply():
        lr.G = G
        if backprop_weight == 0.0:
            dict_kernels.sgd_update(lr.B, r, a, ws, 1.0, np.empty(k))
        else:
            dict_kernels.rank2_update(lr.B, r, a, ws, b, vs, 1.0, np.empty(k))
        track(lr, rows, x, -g, reconstruction_weight * weight(lr) * code * code)

    return float(loss), apply


def rank2_step(lr, rows, x, code, v, Bv, backprop_weight, reconstruction_weight):
    """One SGD step on B along ``reconstruction_weight`` times the reconstruction gradient
    ``(f(B w) - x) w^T`` plus ``backprop_weight`` times the implicit gradient of a loss on
    the code, ``(x - f(B w)) v^T - u w^T`` with ``v = H^{-1} dloss/dw`` and ``u = B v``
    (squared loss) or ``S B v`` (KL loss, S the softmax Jacobian) -- ``v`` and ``u``
    (passed as ``Bv``) from :func:`direction`, None for no implicit part -- with the
    per-atom AdaGrad step of :func:`sgd_scale` and unit-norm columns. ``code`` is the
    code of ``x`` under the current B (x a distribution for the KL loss). Raises before
    changing anything if the step is not finite. Returns the example's loss."""
    loss, apply = _rank2(lr, rows, x, code, v, Bv, backprop_weight, reconstruction_weight)
    if lr.encoder is not None:  # trained on the exact code (raises before any change)
        lr.encoder.update(x, code, rows)
    apply()
    _stepped(lr, rows, x, code)
    return loss


def _unrolled_start(lr, Bo):
    """The step of the unrolled solver for the observed rows ``Bo``: ``1/||B||_2^2``
    (power iteration warm-started from the last call's vector) for L1 / L2, and the
    curvature bound at the start point for KL (then halved while the objective rises,
    see :func:`streamsc.unrolled.initial_step`). Returns ``(step, vector)``: the power
    iteration's new vector (None for KL) is stored by the caller once the step is taken,
    so a refused example leaves the old one."""
    cfg = lr.config
    if _models.PRIORS[cfg.prior].unrolled_egd:
        return initial_step(Bo, prior=cfg.prior, lam=cfg.lam, p=cfg.p, signed=cfg.signed), None
    vec = lr.power_vector
    if vec is None or vec.shape[0] != cfg.n_components:
        vec = np.ones(cfg.n_components)
    vec = vec.copy()  # updated in place by the power iteration
    L = unrolled_kernels.spectral_norm_sq(Bo, vec, 50, 1e-6)
    return (1.0 / L if L > 0.0 else 1.0), vec


def unrolled_step(lr, rows, x, code, g_w, backprop_weight, reconstruction_weight):
    """One SGD step on B along the unrolled gradient (``config.gradient="unrolled"``).

    Unsupervised (``code`` None): the gradient of ``1/2 ||x - B w_T(B)||^2`` through
    ``unrolled_steps`` solver iterations (PUDLE); returns ``(w_T, loss)``. Supervised:
    ``backprop_weight`` times the unrolled approximation of ``(dw/dB)^T g_w`` plus
    ``reconstruction_weight`` times eq. 7 at the exact ``code``; returns the loss.
    Squared loss only. Raises ``ValueError`` before changing anything if the unrolled
    iterates or the step overflow."""
    cfg = lr.config
    k = cfg.n_components
    Bo = lr.observed(rows)
    r = _touched(lr, rows)
    model = _models.PRIORS[cfg.prior]
    halves = model.state_size(k, cfg.signed)
    grad_B = np.empty(Bo.shape)
    traj = np.empty((cfg.unrolled_steps + 1, halves))
    start, power = _unrolled_start(lr, Bo)
    supervised = code is not None
    try:
        w_T, _, loss = unrolled_gradient(
            Bo, np.ascontiguousarray(x), grad_B, traj, prior=cfg.prior, lam=cfg.lam,
            p=cfg.p, signed=cfg.signed, step=start, adapt=model.unrolled_egd,
            grad_w=backprop_weight * g_w if supervised else None,
            reconstruction_weight=0.0 if supervised else 1.0,
        )
    except FloatingPointError:
        raise StepTooLarge(np.inf, supervised) from None
    surrogate = supervised and cfg.basis_update == "surrogate"
    if supervised:  # the reconstruction part: eq. 7 here, or the surrogate's own step
        _, a, loss = residual(lr, rows, x, code)
        a *= 0.0 if surrogate else reconstruction_weight
        w = code
    else:
        a, w = np.zeros(r.size), w_T
    with np.errstate(over="ignore", invalid="ignore"):
        grad = grad_B + np.outer(a, w)
        G, scale = sgd_scale(lr, np.einsum("ij,ij->j", grad, grad))
        grad *= scale
        size = np.abs(grad).max(initial=0.0)
    check_step(loss, size, supervised)
    if not supervised:  # the residual of w_T under the basis before the step
        resid = -residual(lr, rows, x, w_T)[1]

    def apply():
        lr.G = G
        if power is not None:  # only a step taken moves the power iteration's vector
            lr.power_vector = power
        dict_kernels.dense_update(lr.B, r, grad, np.zeros(r.size), np.zeros(k), 1.0,
                                  np.empty(k))

    if surrogate:
        return surrogate_step(lr, rows, x, code, reconstruction_weight, apply)
    apply()
    if not supervised:
        track(lr, rows, x, resid, weight(lr) * w_T * w_T)
    _stepped(lr, rows, x, code if supervised else None)
    return float(loss) if supervised else (w_T, float(loss))


# ---------------------------------------------------------------------------------------
# the online surrogate
# ---------------------------------------------------------------------------------------


def _surrogate_atoms(lr, code, gradual):
    """The atoms one surrogate step moves (None: none). In blocks, every atom if the
    example ends a block of k examples, else none; ``gradual``, the atoms its code uses
    (largest first if capped) and ``ROUND_ROBIN`` more in turn. ``docs/learning.md``
    measures both: for a SparseCoder, blocks learned better MNIST features in less time;
    for a supervised model's head, blocks moved the codes too much at once (Phishing)."""
    k = code.shape[0]
    if not gradual:
        return np.arange(k, dtype=np.int64) if (lr.seen + 1) % k == 0 else None
    mag = np.abs(code)
    top = float(mag.max(initial=0.0))
    active = (mag >= ACTIVE_FRACTION * top).nonzero()[0] if top > 0 else np.empty(0, int)
    if active.size > MAX_ACTIVE:
        active = active[np.argsort(-mag[active], kind="stable")[:MAX_ACTIVE]]
    # the round-robin atoms the code does not use, in increasing order (sets of Python
    # ints: a few atoms, where np.isin's setup costs more)
    chosen = active.tolist()
    turn = ROUND_ROBIN * lr.seen
    extra = sorted({(turn + i) % k for i in range(min(ROUND_ROBIN, k))}.difference(chosen))
    return np.array(chosen + extra, dtype=np.int64)


def seed_prior(lr, power, c):
    """If the learner started from a given basis and its statistics have no prior yet,
    add ``a0 I`` to ``A`` and ``a0 B`` to ``S`` (the basis is then the surrogate's
    minimiser), ``a0 = PRIOR_EXAMPLES * c * power`` with ``power`` the squared norm of the
    first code learned (the mean over a mini-batch's codes) and ``c`` its weight; a zero
    code leaves the prior for a later example."""
    if not getattr(lr, "prior_pending", False):  # (absent: a model file from before it)
        return
    a0 = PRIOR_EXAMPLES * c * power
    if a0 > 0.0 and math.isfinite(a0):
        lr.A += a0 * np.eye(lr.A.shape[0])
        lr.S += a0 * lr.B
        lr.prior_pending = False


def surrogate_step(lr, rows, x, code, weight_=1.0, then=None, gradual=False):
    """``basis_update="surrogate"``: add the example to the running statistics ``A`` and
    ``S`` with weight ``weight_ * c_t``, then block-coordinate descent on the
    surrogate (``_kernels.dictionary``) over the atoms :func:`_surrogate_atoms` picks
    (``gradual``, or a step with ``then``: after every example; else in blocks of k).
    No step size: the minimiser of each atom's quadratic is scale-free. ``then``: a step
    to apply after it (a supervised step's backprop part, checked by the caller). Raises
    before changing anything if the statistics would not be finite. Returns the
    example's loss."""
    r, g, loss = residual(lr, rows, x, code)
    c = weight_ * weight(lr)
    # Python floats: an overflowing product is inf (0 * inf nan), with no warning to silence
    check_step(loss, float(np.abs(g).max(initial=0.0)) * float(np.abs(code).max(initial=0.0)))
    if lr.encoder is not None:
        lr.encoder.update(x, code, rows)
    atoms = _surrogate_atoms(lr, code, gradual or then is not None) if c > 0.0 else None
    if c > 0.0:
        seed_prior(lr, float(code @ code), c)
        dict_kernels.surrogate_accumulate(lr.A, lr.S, lr.B, r, x, code, c, np.empty(lr.m))
        if atoms is not None:
            dict_kernels.surrogate_atoms(lr.B, lr.S, lr.A, atoms, 0.0, np.empty(lr.m))
    if then is not None:
        then()
    replaced = lr.n_replaced
    track(lr, rows, x, -g, c * code * code)
    moved = (atoms is not None or then is not None or lr.encoder is not None
             or lr.n_replaced != replaced)
    _stepped(lr, rows, x, code, moved)
    return float(loss)


# ---------------------------------------------------------------------------------------
# a mini-batch
# ---------------------------------------------------------------------------------------


def learn_batch(lr, rows, X):
    """:meth:`Learner.learn_batch` of checked rows (distributions, for the KL loss)."""
    cfg = lr.config
    k = cfg.n_components
    n = X.shape[0]
    if lr.n_data_atoms < k:
        used = 0
        while used < n and lr.n_data_atoms < k:
            init_atom(lr, rows, X[used])
            used += 1
        X = np.ascontiguousarray(X[used:])
        n = X.shape[0]
        if n == 0:
            return
    # the whole step with BLAS on one thread, not only the codes: a multi-threaded BLAS
    # product between two of numba's parallel regions has its threads contend with
    # numba's for the cores (2 numba threads were slower than 1)
    with _threads(cfg.n_threads, n):
        W = lr._code_rows(rows, X)
        Z = W @ lr.observed(rows).T
        if _models.LOSSES[cfg.loss].distribution:  # the softmax transfer
            Z = np.exp(Z - Z.max(axis=1, keepdims=True))
            Z /= Z.sum(axis=1, keepdims=True)
        c = weight(lr)
        with np.errstate(over="ignore", invalid="ignore"):  # checked just below
            R = Z - X
            G = np.ascontiguousarray(R.T @ W) / n
            loss = float(np.sum(R * R))
            if cfg.basis_update == "surrogate":
                size = np.abs(G).max()
            else:
                Gsum, scale = sgd_scale(lr, np.einsum("ij,ij->j", G, G))
                size = float((np.abs(G) * scale).max())
        check_step(loss, size)
        if lr.encoder is not None:  # trained on the exact codes, row by row
            for i in range(n):
                lr.encoder.update(X[i], W[i], rows)
        r = _touched(lr, rows)
        if cfg.basis_update == "surrogate":
            seed_prior(lr, float(np.einsum("ij,ij->", W, W)) / n, c)
            AW = (c / n) * (W.T @ W)
            lr.A += AW
            lr.S[r] += (c / n) * (X.T @ W)
            if rows is not None:  # unobserved rows: imputed by their reconstruction
                others = np.setdiff1d(np.arange(lr.m), rows)
                lr.S[others] += lr.B[others] @ AW
            dict_kernels.surrogate_atoms(lr.B, lr.S, lr.A, np.arange(k), 0.0, np.empty(lr.m))
        else:
            lr.G = Gsum
            dict_kernels.dense_update(lr.B, r, np.ascontiguousarray(G * scale),
                                      np.zeros(r.size), np.zeros(k), 1.0, np.empty(k))
        worst = int(np.argmax(np.einsum("ij,ij->i", R, R)))
        track(lr, rows, X[worst], -R[worst], (c / n) * np.einsum("ij,ij->j", W, W), n)
    lr.t += 1
    lr.version += 1
