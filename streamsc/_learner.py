"""The online basis learner: the one implementation of the paper's learning step.

Every estimator that learns a basis (the river :class:`~streamsc.SparseCoder`, the
scikit-learn :class:`~streamsc.sklearn.SparseCodingTransformer` and the supervised learners
built on them) keeps a :class:`Learner` and calls :meth:`Learner.learn` once per example:

1. the code of the example under the current basis, from :func:`streamsc.coding.solve`
   (warm-started from this example's previous code when the last call saw the same example);
2. one basis step (:mod:`streamsc._basis_steps`): the online surrogate's, or SGD along eq. 7,
   ``(f(B w) - x) w^T``, with a per-atom AdaGrad step ``learning_rate / sqrt(G_j)``; then
   every column is rescaled to unit norm (``streamsc._kernels.dictionary``). For
   ``loss="squared"`` (``f`` the identity) the step touches the rows the example observes;
   for ``loss="kl"`` (``f`` the softmax, ``x`` the document's word distribution) it touches
   every row: softmax couples them all, and a word missing from a document is a zero count.

The learner owns the state (the basis, the step counter, the cached code, the running
statistics); the steps (:mod:`streamsc._basis_steps`) and the atoms taken from data
(:mod:`streamsc._atoms`) are functions of it. Its parameters come checked from
:func:`streamsc._params.check_params`, and feature names become rows in
:mod:`streamsc._features`. Everything is plain Python and NumPy, so estimators holding a
learner pickle, deep-copy and clone.
"""

import copy
import dataclasses
import math

import numpy as np

from . import _atoms
from . import _models
from . import _basis_steps as steps
from ._features import all_finite, init_rows
from ._kernels import dictionary as dict_kernels
from .amortized import AmortizedEncoder
from .coding import default_tol, solve

__all__ = ["Learner", "tol_for"]


def _row_norms(X):
    """L2 norm of every row of a batch (an overflowing norm is inf, which tol_for treats
    like a small one: such examples are rejected or coded at the base tolerance)."""
    with np.errstate(over="ignore"):
        return np.sqrt(np.einsum("ij,ij->i", X, X))


def tol_for(tol, norms):
    """The stopping threshold for examples of the given L2 norms: ``tol`` up to norm 2,
    then ``tol * 2**floor(log2(norm))``. The optimality violation is in the units of x,
    so this keeps the relative accuracy of a code, and the solver's work, independent of
    the scale of the data; powers of two make the threshold of an example the same
    whether it is coded alone or in a batch (unless its norm rounds differently across
    an exact power of two)."""
    exponent = np.maximum(np.frexp(np.asarray(norms, dtype=np.float64))[1] - 1, 0)
    return tol * np.ldexp(1.0, exponent)


def _new_encoder(cfg):
    if cfg.encoder == "exact":
        return None
    return AmortizedEncoder._for_learner(cfg)  # checked by the schema: no second check


def _distribution(x):
    """``loss="kl"``: the document x as a distribution (a new array), None if empty."""
    total = float(x.sum())
    if not total > 0.0:
        return None
    return x / total


def _cached(cache, rows, x):
    """(code, version) of the cache if it holds this example, else None."""
    if cache is None:
        return None
    c_rows, c_x, code, version = cache
    if (c_rows is None) != (rows is None):
        return None
    if rows is not None and not _equal(rows, c_rows):
        return None
    if not _equal(x, c_x):
        return None
    return code, version


#: vectors of at most this many entries are compared as Python lists (cheaper than a ufunc
#: and a reduction on a few values; the same answer: ``==`` on each pair)
_SHORT = 64


def _equal(a, b):
    """``np.array_equal(a, b)`` of two 1-D arrays (float values, or int row numbers)."""
    if a.shape != b.shape:
        return False
    if a.size <= _SHORT:
        return a.tolist() == b.tolist()
    return bool((a == b).all())


def _solve(lr, rows, X, tol, init=None):
    """Codes of the rows of X under the learner's basis (all solved to the same ``tol``). A
    warm start is only a hint: if the solver fails from it (a far-off dual point after the
    basis moved a lot can stall the dual Newton method or make its system singular) it
    restarts cold."""
    cfg = lr.config
    Bo = lr.observed(rows)
    kw = dict(loss=cfg.loss, prior=cfg.prior, lam=cfg.lam, p=cfg.p, signed=cfg.signed,
              tol=float(tol), solver=cfg.solver, max_iter=cfg.max_iter)
    if init is not None:
        try:
            W, _, _, viol = solve(X, Bo, init=init, n_threads=cfg.n_threads, **kw)
            if (viol <= tol).all() and all_finite(W):
                return W
        except np.linalg.LinAlgError:
            pass
    W = solve(X, Bo, init=None, n_threads=cfg.n_threads, **kw)[0]
    if not all_finite(W):  # never store a non-finite code or step on one
        raise CodeNotFinite(
            f"the sparse code is not finite (largest |x| is {np.abs(X).max():.3g}): "
            "scale the features. The model is unchanged"
        )
    return W


class CodeNotFinite(ValueError):
    """An example whose code is not finite (raised before anything changed). A learning
    step turns it into a :class:`~streamsc._basis_steps.StepTooLarge`, which the
    estimators reword to name the example's largest feature."""


#: StepTooLarge's reason for an example whose code is not finite
CODE_NOT_FINITE = "gives a sparse code that is not finite"


class Learner:
    """The basis and the step counter of an online sparse coder, plus its last code.

    ``B`` (m, k) grows a row per feature (:meth:`grow`); :meth:`learn` codes one example and
    takes one basis step; :meth:`code` and :meth:`code_batch` only code. An example is given
    as ``(rows, x)``: the sorted rows of B it observes (``None``: all of them) and its values
    on those rows; rows it does not observe take no part in its code or its basis step.

    With ``loss="kl"`` an example is a document: ``rows`` must be None and ``x`` its
    non-negative counts over every row (:meth:`Features.dense`); it is normalised here to
    the distribution the KL loss compares with ``softmax(B w)``. A document with no positive
    count codes to zeros (it carries no information) and cannot be learned from.

    The last code is cached with the example and the version of B it was computed under:
    coding the same example again under the same B returns it without solving, and after B
    moved it is the warm start of the next solve of that example.
    """

    def __init__(self, config):
        self.config = config
        k = config.n_components
        self.B = np.zeros((0, k))
        self.t = 0
        self.version = 0
        self.cache = None  # (rows, x, code, version)
        self.power_vector = None  # gradient="unrolled", L1/L2: warm start of ||B||_2
        self.encoder = _new_encoder(config)
        self.norm_sum = 0.0  # lam_per_norm: norms of the examples learned so far (the first k)
        self.n_norms = 0
        self.n_data_atoms = 0  # atoms set from the first distinct examples (then k: done)
        self.seen = 0  # examples that went into the running statistics below
        self.usage = np.zeros(k)  # sum of c_t w_j^2: which atoms the codes use
        self.G = np.zeros(k)  # basis_update="sgd": per-atom sums of squared gradients
        if config.basis_update == "surrogate":
            self.A = np.zeros((k, k))  # sum of c_t w w^T
            self.S = np.zeros((0, k))  # sum of c_t x w^T
            # a given basis: the statistics get a prior that holds it (at the next step)
            self.prior_pending = False
        else:
            self.A = self.S = None
        self.candidate = None  # (score, rows, residual): worst-reconstructed recent example
        self.n_replaced = 0

    @property
    def m(self):
        return self.B.shape[0]

    def observed(self, rows):
        """The rows of B an example on ``rows`` observes (None: B itself), C-contiguous."""
        return self.B if rows is None else np.ascontiguousarray(self.B[rows])

    # -- state ---------------------------------------------------------------------------

    def snapshot(self):
        """A copy of the learner's whole mutable state, for :meth:`restore`."""
        return copy.deepcopy(self.__dict__)

    def restore(self, state):
        """Put back a state taken by :meth:`snapshot` (which stays usable)."""
        self.__dict__.update(copy.deepcopy(state))

    def start_from(self, positions, rows):
        """Use ``rows`` (placed at ``positions``) as the basis, columns rescaled to unit norm.
        A given basis is not replaced by data: its atoms count as set, and the surrogate's
        statistics start from a prior that holds it
        (:func:`streamsc._basis_steps.seed_prior`)."""
        B = np.empty_like(rows)
        B[positions] = rows
        dict_kernels.normalise_columns(B, np.empty(B.shape[1]))
        self.B = B
        if self.S is not None:  # the surrogate's prior for it is set at the next step
            self.A = np.zeros_like(self.A)
            self.S = np.zeros_like(B)
            self.prior_pending = True
        self.n_data_atoms = self.config.n_components
        self.version += 1
        self.cache = None
        if self.encoder is not None:
            self.encoder.init_from_basis(B)

    def grow(self, old_pos, new_pos, names):
        """Insert rows for new features: existing row i moves to ``old_pos[i]``, the rows of
        ``names`` (:func:`init_rows` at scale ``1/sqrt(m)`` for the new m, the typical size
        of an entry of a unit-norm column) go to ``new_pos``; then every column is rescaled
        to unit norm, so codes are always computed on a unit-norm basis. The surrogate's ``S``
        gets the rows ``B A`` for them: a feature never observed is imputed by its
        reconstruction, so its past pulls its row nowhere."""
        cfg = self.config
        m = self.m + len(names)
        B = np.empty((m, cfg.n_components))
        B[old_pos] = self.B
        B[new_pos] = init_rows(names, cfg.n_components, cfg.seed, scale=1.0 / math.sqrt(m))
        dict_kernels.normalise_columns(B, np.empty(cfg.n_components))
        self.B = B
        if self.S is not None:
            S = np.empty((m, cfg.n_components))
            S[old_pos] = self.S
            S[new_pos] = B[new_pos] @ self.A
            self.S = S
        if self.candidate is not None:  # its rows, renumbered
            score, c_rows, resid = self.candidate
            self.candidate = (score, old_pos if c_rows is None else old_pos[c_rows], resid)
        self.version += 1
        self.cache = None
        if self.encoder is not None:
            self.encoder.grow(old_pos, new_pos, new_rows=B[new_pos])

    def count_scale(self, x):
        """After an example's step (a refused example counts not): its norm joins the
        calibration of ``lam=None``, while that is under way: at the k-th example ``lam``
        (and a default ``tol``) becomes ``lam_per_norm`` times the mean norm of the first k;
        an amortised encoder restarts from the basis with that lam."""
        cfg = self.config
        if cfg.lam_per_norm is None:
            return
        norm = _atoms.safe_norm(x)
        if not math.isfinite(norm):
            return
        self.norm_sum += norm
        self.n_norms += 1
        if self.n_norms < cfg.n_components:
            return
        scale = self.norm_sum / self.n_norms
        if not (scale > 0.0 and math.isfinite(scale)):
            scale = 1.0
        lam = cfg.lam_per_norm * scale
        self.config = dataclasses.replace(
            cfg, lam=lam, lam_per_norm=None,
            tol=default_tol(lam) if cfg.tol_from_lam else cfg.tol)
        self.cache = None
        self.version += 1
        if self.encoder is not None:
            self.encoder = _new_encoder(self.config)
            self.encoder.init_from_basis(self.B)

    # -- coding --------------------------------------------------------------------------

    def _code_one(self, rows, x):
        """(code, fresh): the code of one example under the current B; fresh=False when it
        came from the cache."""
        hit = _cached(self.cache, rows, x)
        if hit is not None and hit[1] == self.version:
            return hit[0], False
        if hit is not None:
            init = hit[0][None, :]
        elif self.encoder is not None:  # the amortised code as the warm start
            init = self.encoder.predict(x, rows)[None, :]
        else:
            init = None
        # an overflowing norm (inf) just means tol; np.vdot is np.dot's BLAS product
        # without its floating-point error check: no warning to silence
        norm = math.sqrt(float(np.vdot(x, x)))
        tol = self.config.tol * 2.0 ** max(math.frexp(norm)[1] - 1, 0)  # tol_for, one row
        return _solve(self, rows, x[None, :], tol, init)[0], True

    def _code_rows(self, rows, X):
        """:meth:`code_batch` of rows that are ready to code (C-contiguous float64; for the
        KL loss, distributions); the caller has handled the empty cases."""
        n = X.shape[0]
        k = self.config.n_components
        init = None
        if self.encoder is not None:
            init = self.encoder.predict_batch(X, rows)
            if self.config.encoder == "amortized":
                return init
        tols = tol_for(self.config.tol, _row_norms(X))
        groups = np.unique(tols)
        if groups.size == 1:
            return _solve(self, rows, X, groups[0], init)
        W = np.empty((n, k))
        for tol in groups:
            sel = np.flatnonzero(tols == tol)
            W[sel] = _solve(self, rows, np.ascontiguousarray(X[sel]), tol,
                            None if init is None else init[sel])
        return W

    def as_learned(self, x):
        """An example as the basis steps see it: x, or its distribution (KL loss; raises on
        an empty document)."""
        if not _models.LOSSES[self.config.loss].distribution:
            return x
        x = _distribution(x)
        if x is None:
            raise ValueError("x is an empty document (no positive count): nothing to learn")
        return x

    def code(self, rows, x):
        """The code of one example (a new array). An example with no known feature codes to
        zeros: it carries no information (so does a document with no count, for KL)."""
        k = self.config.n_components
        if self.m == 0 or (rows is not None and rows.size == 0):
            return np.zeros(k)
        if _models.LOSSES[self.config.loss].distribution:
            x = _distribution(x)
            if x is None:
                return np.zeros(k)
        if self.config.encoder == "amortized":
            return self.encoder.predict(x, rows)
        code, fresh = self._code_one(rows, x)
        if fresh:
            self.cache = (rows, x.copy(), code, self.version)
        return code.copy()

    def code_batch(self, rows, X):
        """Codes of the rows of X (n, len(rows)) under the current B, solved in parallel;
        the cache is neither used nor changed."""
        n = X.shape[0]
        k = self.config.n_components
        if self.m == 0 or n == 0 or (rows is not None and rows.size == 0):
            return np.zeros((n, k))
        X = np.ascontiguousarray(X, dtype=np.float64)
        if _models.LOSSES[self.config.loss].distribution:
            totals = X.sum(axis=1)
            full = np.flatnonzero(totals > 0.0)
            if full.size < n:  # documents with no count code to zeros
                W = np.zeros((n, k))
                if full.size:
                    W[full] = self.code_batch(rows, X[full])
                return W
            X = X / totals[:, None]
        return self._code_rows(rows, X)

    # -- learning ------------------------------------------------------------------------

    def learn(self, rows, x):
        """Learn from one example: while atoms are still unset, the example becomes the next
        one (:func:`streamsc._atoms.init_atom`); after that, code it and take one basis step
        along the gradient chosen by ``config.gradient`` (below), by the online surrogate or
        SGD (``config.basis_update``, :mod:`streamsc._basis_steps`). Returns the code the
        step used (under the basis before the step; zeros for an example that set an atom)
        and the example's loss under that basis and code (squared loss, or KL divergence of
        the document's distribution from its reconstruction). An empty document (KL) raises
        ``ValueError`` before anything changes.

        * ``"alternating"``: eq. 7, ``(f(B w) - x) w^T`` at the exact code (the paper's
          step: the code is held fixed, as in alternating minimisation);
        * ``"implicit"``: the total derivative of the reconstruction loss through the exact
          code ``w(B)``: eq. 7 plus the implicit term of the rank-2 step with
          ``g = dloss/dw = B^T (f(B w) - x)``;
        * ``"unrolled"``: the derivative of ``1/2 ||x - B w_T(B)||^2`` through
          ``unrolled_steps`` iterations of ISTA (L1, L2) or fixed-step EGD (KL) from a cold
          start (PUDLE; :func:`streamsc.unrolled.unrolled_gradient`); the exact code is not
          computed, the step uses and returns ``w_T``.
        """
        k = self.config.n_components
        if self.m == 0 or (rows is not None and rows.size == 0):
            return np.zeros(k), 0.0
        if _models.LOSSES[self.config.loss].distribution:
            x = _distribution(x)
            if x is None:
                raise ValueError("x is an empty document (no positive count): nothing to learn")
        loss = self.initial_atom(rows, x)
        try:
            out = (np.zeros(k), loss) if loss is not None else steps.learn_one(self, rows, x)
        except CodeNotFinite:
            raise steps.StepTooLarge(np.inf, reason=CODE_NOT_FINITE) from None
        self.count_scale(x)
        return out

    def learn_batch(self, rows, X):
        """Mini-batch step: code every row of X (n, len(rows)) under the current B (in
        parallel), then one basis step for the batch: the surrogate (its statistics take the
        batch's average ``W^T W`` and ``R^T W`` with weight c_t, then one block-coordinate
        pass over every atom) or AdaGrad SGD along the average eq. 7 gradient
        ``(1/n) sum_i (f(B w_i) - x_i) w_i^T``. While atoms are unset, the frame's first
        distinct rows set them. Alternating gradient only. Raises before changing anything
        if a document is empty (KL) or the step is not finite."""
        cfg = self.config
        n = X.shape[0]
        if self.m == 0 or n == 0 or (rows is not None and rows.size == 0):
            return
        X = np.ascontiguousarray(X, dtype=np.float64)
        if _models.LOSSES[cfg.loss].distribution:
            totals = X.sum(axis=1)
            if not (totals > 0.0).all():
                raise ValueError("X has an empty document (no positive count): nothing to learn")
            X = X / totals[:, None]
        try:
            steps.learn_batch(self, rows, X)
        except CodeNotFinite:
            raise steps.StepTooLarge(np.inf, reason=CODE_NOT_FINITE) from None
        for x in X:  # after the step: a refused frame counts not
            if self.config.lam_per_norm is None:
                break
            self.count_scale(x)

    def initial_atom(self, rows, x):
        """While atoms are unset (the first examples, labelled or not), x (a distribution for
        the KL loss) becomes the next one (:func:`streamsc._atoms.init_atom`); returns its
        loss, or None if it did not (the example then takes a basis step)."""
        if self.n_data_atoms < self.config.n_components:
            return _atoms.init_atom(self, rows, x)
        return None

    def direction(self, Bo, code, g_w):
        """``(v, u)`` of :func:`streamsc.differentiation.direction` for a loss gradient
        ``g_w`` on the code (rows ``Bo`` of B observed); raises if they are not finite."""
        return steps.direction(self, Bo, code, g_w)

    def supervised_step(self, rows, x, code, v, Bv, backprop_weight, reconstruction_weight):
        """A labelled step for a document given as counts (``loss="kl"``: normalised here as
        in :meth:`code`; raises on an empty document) or values (squared loss): the coder's
        own reconstruction step, weighted by ``reconstruction_weight`` (the surrogate's, or
        the rank-2 step's), plus the per-atom AdaGrad step along ``backprop_weight`` times
        the implicit gradient (``v``, ``Bv`` from :meth:`direction`; None: none). The
        surrogate moves the atoms gradually, after every example: the model's head learns
        from the codes as the basis moves."""
        return steps.step(self, rows, self.as_learned(x), code, v, Bv, backprop_weight,
                          reconstruction_weight, gradual=True)

    def unrolled_step(self, rows, x, code, g_w, backprop_weight, reconstruction_weight):
        """One basis step along the unrolled gradient: :func:`streamsc._basis_steps.unrolled_step`."""
        return steps.unrolled_step(self, rows, x, code, g_w, backprop_weight,
                                   reconstruction_weight)
