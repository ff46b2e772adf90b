"""An amortised encoder: fast approximate sparse codes from a learned map with learned
per-atom thresholds (the form of Fallah & Rozell 2022), trained online by regression on the
exact codes.

The encoder predicts ``w = shrink(F^T x + c, theta)`` (see :mod:`streamsc._kernels.amortized`
for the shrink of each prior). It is meant to live next to a basis learner: the learner
solves for the exact code of every training example anyway (it needs it for its basis
step), so the encoder takes one normalised gradient step of ``1/2 ||w - w_exact||^2`` per
example (:meth:`AmortizedEncoder.update`). That target is free and deterministic, which
gives a lower-variance gradient than the variational objective's reparameterised samples,
and it is exactly what a prediction must approximate when it is used as the warm start of
the exact solver. Predictions are then either used alone (fast approximate codes) or as
that warm start (``streamsc.coding.solve(..., init=...)``).

The object is plain Python holding NumPy arrays only, so it pickles and deep-copies.
"""

import numpy as np

from . import _base
from . import _models
from . import _params
from . import _validation as v
from ._kernels import amortized as kernels

__all__ = ["AmortizedEncoder"]

_NO_ROWS = np.empty(0, dtype=np.int64)
#: the encoder's normalised step (< 2), also the one of the estimators' encoders
DEFAULT_LEARNING_RATE = 0.5


def _vector(name, x):
    """A finite 1-D float64 C-contiguous array: the common case (already one) costs a sum;
    anything else goes through the full check, which raises naming ``name``."""
    if (type(x) is np.ndarray and x.dtype == np.float64 and x.ndim == 1
            and x.flags.c_contiguous and np.isfinite(x.sum())):
        return x
    return v.as_float_array(name, x, ndims=(1,))


@_base.register_state_class
class AmortizedEncoder:
    r"""A learned map from an example to its sparse code, with a learned threshold per atom.

    For an example :math:`x \in \mathbb{R}^m` the prediction is

    .. math::

        z = F^\top x + c, \qquad w = \mathrm{shrink}(z, \theta)

    with one filter per atom (the columns of ``filters``, shape (m, k), i.e. the linear map
    :math:`A = F^\top`), a bias ``bias`` and a threshold ``theta > 0`` per atom, and the
    shrink of the prior:

    * ``"l1"``/``"l2"``: :math:`\max(z - \theta, 0)`, or :math:`\mathrm{sign}(z)
      \max(|z| - \theta, 0)` when ``signed``;
    * ``"kl"``: :math:`t\,W(e^{(z - \theta)/t})` with :math:`W` Lambert's W function and
      :math:`t` = ``lam``: the proximal map of the KL prior, a smooth shifted soft-threshold
      that stays strictly positive (the exact KL codes are pseudo-sparse: most entries tiny
      but > 0, and the exact solvers need a positive warm start). When ``signed``, the
      proximal map of the signed (arcsinh) KL prior with the same learned shift: the
      solution :math:`w` of :math:`w + t\,\mathrm{asinh}(w e^{\theta/t} / 2t) = z`.

    :meth:`init_from_basis` sets the map that is exact for a basis with orthonormal columns
    (``F = B``, thresholds from ``lam``), so the encoder is useful from the first example;
    :meth:`update` takes one normalised gradient step on the squared error to an exact code.

    Parameters
    ----------
    n_components : int
        Number of atoms k.
    prior : {"kl", "l1", "l2"}
        The prior of the codes the encoder approximates (as in :func:`streamsc.encode`).
    signed : bool
        Signed codes.
    lam : float
        The coder's regularisation weight (> 0): the initial L1 thresholds and the
        temperature of the KL shrink.
    p : float or array-like of shape (k,), optional
        KL prior mean (default 1/k per atom); sets the initial KL thresholds
        ``lam * log(lam / p)``.
    learning_rate : float
        Step of the normalised (NLMS) update, in (0, 2): one step moves each atom's
        pre-activation ``z_j - theta_j`` by at most ``learning_rate`` times its error.

    Attributes
    ----------
    filters : ndarray of shape (m, k)
        F, one row per feature (m = 0 until :meth:`init_from_basis` or :meth:`grow`).
    bias : ndarray of shape (k,)
    theta : ndarray of shape (k,)
        Per-atom thresholds (> 0), trained through ``theta = softplus(rho)``.
    n_updates : int
        Gradient steps taken.

    Examples
    --------
    >>> import numpy as np
    >>> import streamsc
    >>> from streamsc.amortized import AmortizedEncoder
    >>> rng = np.random.default_rng(0)
    >>> B = rng.standard_normal((16, 32))
    >>> B /= np.linalg.norm(B, axis=0)
    >>> W_true = np.where(rng.random((600, 32)) < 0.06, rng.uniform(0.5, 1.5, (600, 32)), 0.0)
    >>> X = W_true @ B.T + 0.02 * rng.standard_normal((600, 16))
    >>> W = streamsc.encode(X, B, prior="l1", lam=0.1)          # exact codes
    >>> enc = AmortizedEncoder(32, prior="l1", lam=0.1)
    >>> enc.init_from_basis(B)
    >>> def error(E):
    ...     return float(np.linalg.norm(E - W[500:]) / np.linalg.norm(W[500:]))
    >>> before = error(enc.predict_batch(X[500:]))
    >>> for x, w in zip(X[:500], W[:500]):
    ...     _ = enc.update(x, w)
    >>> after = error(enc.predict_batch(X[500:]))
    >>> bool(after < 0.8 * before), enc.n_updates
    (True, 500)
    >>> w0 = enc.predict(X[500])       # a warm start for the exact solver
    >>> w0.shape, bool(np.all(w0 >= 0))
    ((32,), True)
    """

    def __init__(self, n_components, *, prior="kl", signed=False, lam=0.1, p=None,
                 learning_rate=DEFAULT_LEARNING_RATE):
        checked = _params.validate(  # the schema the estimators share
            {"n_components": n_components, "prior": prior, "signed": signed, "lam": lam})
        k, prior, signed, lam = checked.values()
        if lam is None:  # the estimators' lam=None is calibrated by the learner, not here
            raise TypeError("lam must be a real number, got None (NoneType)")
        p_arr = v.resolve_p(p, k)
        learning_rate = v.check_real("learning_rate", learning_rate, low=0.0, high=2.0)
        if learning_rate == 2.0:
            raise ValueError("learning_rate must be < 2 (the normalised step diverges at 2)")
        self._setup(k, prior, signed, lam, p, p_arr, learning_rate)

    @classmethod
    def _for_learner(cls, config):
        """The encoder of a learner, from its parameters already checked and resolved by
        the schema (a :class:`streamsc._params.Config`): no second check. Its own copies of
        ``p``: no array shared with the learner."""
        enc = cls.__new__(cls)
        enc._setup(config.n_components, config.prior, config.signed, config.lam,
                   config.p.copy(), config.p.copy(), DEFAULT_LEARNING_RATE)
        return enc

    def _setup(self, k, prior, signed, lam, p, p_arr, learning_rate):
        self.n_components = k
        self.prior = prior
        self.signed = signed
        self.lam = lam
        self.p = p
        self.learning_rate = learning_rate
        self._p = p_arr
        self._mode = _models.PRIORS[prior].amortized_mode(signed)
        self._temp = lam
        self.filters = np.zeros((0, k))
        self.bias, self.theta = self._initial_bias_theta(np.ones(k))
        self.n_updates = 0

    # ----------------------------------------------------------------------------------
    # state
    # ----------------------------------------------------------------------------------

    @property
    def m(self):
        """Number of features (rows of ``filters``)."""
        return self.filters.shape[0]

    def _initial_bias_theta(self, cn2):
        """Bias and thresholds of the orthonormal-basis map for atoms of squared norms cn2
        (``filters = B / cn2``): L1 ``theta = lam / cn2``; L2 no threshold (1% of lam, the
        parametrisation needs theta > 0); KL ``theta = lam log(lam / p)``, where a
        threshold below ``lam / 100`` (p near or above lam) is raised there: the bias
        compensates for unsigned codes (only ``z - theta`` matters), signed ones start
        from that slightly larger threshold."""
        bias, theta = _models.PRIORS[self.prior].amortized_start(
            self.lam, cn2, self._p, self.signed)
        return bias, np.ascontiguousarray(theta, dtype=np.float64)

    def init_from_basis(self, B):
        """Start from the map that is exact for a basis with orthonormal columns.

        ``filters = B / ||b_j||^2`` (``B`` itself for the unit-norm bases streamsc keeps),
        ``bias = 0`` and thresholds ``lam / ||b_j||^2`` (L1) or ``lam log(lam / p)`` (KL):
        for orthonormal atoms the exact code is then the shrink of :math:`B^\\top x`, and
        for a general basis it is a thresholded matched filter, a one-step approximation
        that training refines. (LISTA's ``B^T / L``, ``L = ||B||_2^2``, with threshold
        ``lam / L`` starts a little closer for an overcomplete basis but learns slower:
        on the 64 x 256 planted stream of ``benchmarks/amortized.py`` with L1 codes,
        lam = 0.1, held-out error 0.88 vs 0.99 at the start but 0.68 vs 0.51 after 2000
        updates.) Discards previous training; ``n_updates`` is reset.

        Parameters
        ----------
        B : array-like of shape (m, k)
            The basis, one atom per column, no zero column.

        Examples
        --------
        >>> import numpy as np
        >>> from streamsc.amortized import AmortizedEncoder
        >>> enc = AmortizedEncoder(2, prior="l1", lam=0.1)
        >>> enc.init_from_basis(np.eye(3)[:, :2])
        >>> enc.predict(np.array([0.5, -0.3, 7.0]))   # soft(B^T x, 0.1), exact here
        array([0.4, 0. ])
        """
        B = v.check_basis(B, n_components=self.n_components)
        cn2 = np.einsum("ij,ij->j", B, B)
        self.filters = np.ascontiguousarray(B / cn2)
        self.bias, self.theta = self._initial_bias_theta(cn2)
        self.n_updates = 0

    def grow(self, old_pos, new_pos, new_rows=None):
        """Insert filter rows for new features, as the online learner inserts basis rows:
        existing row i moves to ``old_pos[i]`` and the new rows go to ``new_pos``
        (positions in the grown matrix of ``len(old_pos) + len(new_pos)`` rows).

        Predictions for examples that do not use the new features are unchanged (bit for
        bit: a zero value contributes nothing).

        Parameters
        ----------
        old_pos : array-like of int, shape (m,)
            New position of every existing row.
        new_pos : array-like of int
            Positions of the new rows; with ``old_pos``, a permutation of
            ``range(len(old_pos) + len(new_pos))``.
        new_rows : array-like of shape (len(new_pos), k), optional
            Filters of the new features, e.g. the new rows of the grown basis divided by
            its column norms squared (what :meth:`init_from_basis` would set). Default zeros.

        Examples
        --------
        >>> import numpy as np
        >>> from streamsc.amortized import AmortizedEncoder
        >>> enc = AmortizedEncoder(2, prior="l1", lam=0.1)
        >>> enc.init_from_basis(np.eye(2))
        >>> enc.grow([0, 2], [1], new_rows=[[1.0, 1.0]])   # a new feature between the two
        >>> enc.filters
        array([[1., 0.],
               [1., 1.],
               [0., 1.]])
        """
        m = self.m
        k = self.n_components
        old_pos = np.asarray(old_pos)
        new_pos = np.asarray(new_pos)
        for name, arr in (("old_pos", old_pos), ("new_pos", new_pos)):
            if arr.ndim != 1 or not (arr.size == 0 or np.issubdtype(arr.dtype, np.integer)):
                raise TypeError(f"{name} must be a 1-D array of integers, got {arr!r}")
        if old_pos.size != m:
            raise ValueError(
                f"old_pos must have one entry per existing row ({m}), got {old_pos.size}"
            )
        old_pos = old_pos.astype(np.int64)
        new_pos = new_pos.astype(np.int64)
        m_new = m + new_pos.size
        both = np.concatenate([old_pos, new_pos])
        if not np.array_equal(np.sort(both), np.arange(m_new)):
            raise ValueError(
                f"old_pos and new_pos together must be a permutation of range({m_new})"
            )
        if new_rows is None:
            rows = np.zeros((new_pos.size, k))
        else:
            rows = v.as_float_array("new_rows", new_rows, ndims=(2,))
            if rows.shape != (new_pos.size, k):
                raise ValueError(
                    f"new_rows must have shape {(new_pos.size, k)}, got {rows.shape}"
                )
        F = np.empty((m_new, k))
        F[old_pos] = self.filters
        F[new_pos] = rows
        self.filters = F

    # ----------------------------------------------------------------------------------
    # prediction and training
    # ----------------------------------------------------------------------------------

    def _example(self, x, rows, name="x"):
        """(x, rows, full) checked for the kernels."""
        x = _vector(name, x)
        if rows is None:
            if x.shape[0] != self.m:
                raise ValueError(
                    f"{name} has {x.shape[0]} features but the encoder has {self.m} (m)"
                )
            return x, _NO_ROWS, True
        rows = self._rows(rows)
        if rows.shape[0] != x.shape[0]:
            raise ValueError(
                f"{name} has {x.shape[0]} values but rows has {rows.shape[0]}: one per row"
            )
        return x, rows, False

    def _rows(self, rows):
        rows = np.asarray(rows)
        if rows.ndim != 1 or not (rows.size == 0 or np.issubdtype(rows.dtype, np.integer)):
            raise TypeError(f"rows must be a 1-D array of integers, got {rows!r}")
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= self.m):
            raise ValueError(f"rows must be in range({self.m})")
        return rows

    def predict(self, x, rows=None):
        """The predicted code of one example.

        Parameters
        ----------
        x : array-like of shape (m,), or (len(rows),) with ``rows``
        rows : array-like of int, optional
            The features x observes (rows of ``filters``); the others count as zero.

        Returns
        -------
        code : ndarray of shape (k,)
            > 0 for unsigned KL codes, >= 0 for other unsigned codes.

        Examples
        --------
        >>> import numpy as np
        >>> from streamsc.amortized import AmortizedEncoder
        >>> enc = AmortizedEncoder(2, prior="kl", lam=0.1, p=0.5)
        >>> enc.init_from_basis(np.eye(2))
        >>> w = enc.predict(np.array([1.0, 0.0]))
        >>> bool(w[0] > 0.5 > w[1] > 0)
        True
        """
        x, rows, full = self._example(x, rows)
        w = np.empty(self.n_components)
        kernels.predict(self.filters, self.bias, self.theta, x, rows, full, self._mode,
                        self._temp, w)
        return w

    def predict_batch(self, X, rows=None):
        """Predicted codes of the rows of X (a BLAS product, then the shrink in parallel).

        Parameters
        ----------
        X : array-like of shape (n, m), or (n, len(rows)) with ``rows``
        rows : array-like of int, optional
            The features every row of X observes.

        Returns
        -------
        codes : ndarray of shape (n, k)

        Examples
        --------
        >>> import numpy as np
        >>> from streamsc.amortized import AmortizedEncoder
        >>> enc = AmortizedEncoder(2, prior="l1", signed=True, lam=0.1)
        >>> enc.init_from_basis(np.eye(2))
        >>> enc.predict_batch([[1.0, -0.5], [0.05, 0.0]])
        array([[ 0.9, -0.4],
               [ 0. ,  0. ]])
        """
        X = v.as_float_array("X", X, ndims=(2,))
        F = self.filters
        if rows is not None:
            rows = self._rows(rows)
            F = F[rows]
        if X.shape[1] != F.shape[0]:
            raise ValueError(
                f"X has {X.shape[1]} features but the encoder uses {F.shape[0]} "
                f"({'len(rows)' if rows is not None else 'm'})"
            )
        Z = np.ascontiguousarray(X @ F + self.bias)
        kernels.shrink_batch(Z, self.theta, self._mode, self._temp)
        return Z

    def update(self, x, code, rows=None):
        """One normalised gradient step of ``1/2 ||predict(x) - code||^2`` towards an exact
        code, on the filters of the observed features, the biases and the thresholds.

        Parameters
        ----------
        x : array-like of shape (m,), or (len(rows),) with ``rows``
        code : array-like of shape (k,)
            The exact code of x (e.g. from :func:`streamsc.encode`).
        rows : array-like of int, optional
            As in :meth:`predict`.

        Returns
        -------
        loss : float
            The squared error ``1/2 ||predict(x) - code||^2`` before the step.

        Raises
        ------
        ValueError
            If x or code is not finite or has the wrong shape, or the step would not be
            finite; the encoder is then unchanged.

        Examples
        --------
        >>> import numpy as np
        >>> from streamsc.amortized import AmortizedEncoder
        >>> enc = AmortizedEncoder(2, prior="l1", lam=0.1, learning_rate=1.0)
        >>> enc.init_from_basis(np.eye(2))
        >>> x, w = np.array([1.0, 0.0]), np.array([0.5, 0.0])
        >>> [round(enc.update(x, w), 5) for _ in range(3)]   # the error on x falls
        [0.08, 0.00873, 0.00095]
        """
        x, rows, full = self._example(x, rows)
        code = _vector("code", code)
        if code.shape[0] != self.n_components:
            raise ValueError(
                f"code has {code.shape[0]} entries but the encoder has {self.n_components} atoms"
            )
        w = np.empty(self.n_components)
        loss = kernels.update(self.filters, self.bias, self.theta, x, rows, full, code,
                              self._mode, self._temp, self.learning_rate, w)
        if loss < 0.0:
            raise ValueError(
                "x is too large to learn from (the encoder's step is not finite); "
                "scale the features. The encoder is unchanged"
            )
        self.n_updates += 1
        return loss

    def __repr__(self):
        return (
            f"AmortizedEncoder(n_components={self.n_components}, prior={self.prior!r}, "
            f"signed={self.signed}, lam={self.lam}, p={self.p!r}, "
            f"learning_rate={self.learning_rate}, m={self.m}, n_updates={self.n_updates})"
        )

