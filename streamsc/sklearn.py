"""scikit-learn interface: :class:`SparseCodingTransformer`, online sparse coding on arrays.

The same learner as :class:`streamsc.SparseCoder` (``streamsc._learner``): the features are
the columns of X, one example per row, every value observed.
"""

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _base
from . import _params
from . import _validation as validation
from ._learner import Learner
from ._kernels import kl as kl_kernels
from ._models import LOSSES

__all__ = ["SparseCodingTransformer"]


def _check_columns(X):
    """A DataFrame's column names must be unique (checked here so the message is ours)."""
    columns = getattr(X, "columns", None)
    if columns is None or not hasattr(X, "iloc"):
        return
    names = list(columns)
    seen = set()
    for name in names:
        if name in seen:
            raise ValueError(
                f"X has duplicate column {name!r}: feature names must be unique. The model "
                "is unchanged"
            )
        seen.add(name)


class SparseCodingTransformer(_base.StreamscEstimator, ClassNamePrefixFeaturesOutMixin,
                              TransformerMixin, BaseEstimator):
    r"""Online sparse coding (Bradley & Bagnell, 2008) with scikit-learn's API.

    ``fit`` streams the rows of X through the same online learner (the first distinct rows
    become the atoms, then each row is coded and the basis takes one step: the online
    surrogate's, or per-atom AdaGrad SGD; atoms kept at unit norm) for ``n_epochs`` passes; ``partial_fit`` continues the stream with more rows, in
    order; ``transform`` returns the sparse codes. See :class:`streamsc.SparseCoder` (the
    river transformer over dicts, same algorithm and parameters) for the model.

    The basis is initialised exactly as :class:`~streamsc.SparseCoder` initialises it for
    features named ``0, 1, ..., n_features - 1``, so with ``random_state=s`` both learners
    fed the same rows in the same order learn the same basis.

    Parameters
    ----------
    n_components : int
        Number of atoms k.
    prior : {"kl", "l1", "l2"}
    loss : {"squared", "kl"}
        ``"kl"``: rows are counts (e.g. of words), coded with the KL loss and softmax
        transfer (needs ``prior="kl"``; see :class:`~streamsc.SparseCoder`). Counts must be
        non-negative; ``fit``/``partial_fit`` reject an all-zero row, ``transform`` codes it
        to zeros.
    lam : float or None
        Regularisation weight; ``None`` calibrates it to the data (see
        :class:`~streamsc.SparseCoder`).
    p : float or array-like of shape (n_components,), optional
        KL prior mean; default ``0.1/n_components``.
    signed : bool
        Allow negative coefficients.
    learning_rate : float
        The per-atom AdaGrad step of SGD basis steps (``basis_update="sgd"``; see
        :class:`~streamsc.SparseCoder`).
    tol : float, optional
        Solver stopping threshold (see :class:`~streamsc.SparseCoder`); default ``1e-6*lam``.
    solver : {"egd", "egd_diag", "newton"} or None
        KL solver (``None``: EGD for the squared loss, Newton for the KL loss).
    max_iter : int, optional
        Iteration cap of the code solver.
    gradient : {"alternating", "implicit", "unrolled"}
        The gradient of each basis step (see :class:`~streamsc.SparseCoder`).
    unrolled_steps : int
        Unrolled iterations for ``gradient="unrolled"``.
    encoder : {"exact", "amortized", "warm_start"}
        Exact codes, or an amortised encoder's (see :class:`~streamsc.SparseCoder`).
    n_epochs : int
        Passes over X made by ``fit``.
    shuffle : bool
        Whether ``fit`` visits the rows in a random order (drawn from ``random_state``) in
        each pass; ``partial_fit`` always keeps the given order.
    random_state : int, RandomState instance or None
        Seeds the initial basis and the shuffling. An int ``s`` gives the same basis as
        ``SparseCoder(seed=s)``.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        The atoms, one per row (the transpose of the paper's B), unit L2 norm.
    n_features_in_ : int
    n_steps_ : int
        SGD steps taken (rows learned from) since the last ``fit``.
    n_iter_ : int
        Passes over the data made by the last ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> from streamsc.sklearn import SparseCodingTransformer
    >>> rng = np.random.default_rng(0)
    >>> atoms = np.array([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]) / np.sqrt(2)
    >>> X = rng.uniform(0.5, 1.5, (1000, 1)) * atoms[rng.integers(2, size=1000)]
    >>> coder = SparseCodingTransformer(n_components=2, prior="l1", signed=True,
    ...                                 shuffle=False, random_state=0)
    >>> codes = coder.fit_transform(X)
    >>> codes.shape, coder.components_.shape
    ((1000, 2), (2, 4))
    >>> np.abs(coder.components_).round(2)
    array([[0.  , 0.  , 0.71, 0.71],
           [0.71, 0.71, 0.  , 0.  ]])
    """

    #: the classes of the objects the wrapper holds, for model files (``streamsc._base``)
    _state_classes = (Learner, _params.Config)

    #: scikit-learn's constraints, built from the schema every estimator shares
    #: (``streamsc._params.SCHEMA``; ``random_state`` replaces ``seed``)
    _parameter_constraints = _params.sklearn_constraints(
        [name for name in _params.LEARNER_PARAMS if name != "seed"]
        + ["n_epochs", "shuffle", "random_state"])

    def __init__(
        self,
        n_components=32,
        *,
        prior="kl",
        loss="squared",
        lam=None,
        p=None,
        signed=False,
        learning_rate=1.0,
        tol=None,
        solver=None,
        max_iter=None,
        gradient="alternating",
        unrolled_steps=_params.DEFAULT_UNROLLED_STEPS,
        encoder="exact",
        basis_update="auto",
        n_epochs=1,
        shuffle=True,
        random_state=None,
    ):
        self._store_params(locals())

    def _check_params(self):
        """Checked fit settings and a new learner: scikit-learn's ``_validate_params``
        (the constraints above), then the schema's own checks and defaults, the same as
        SparseCoder's (``streamsc._params``)."""
        self._validate_params()
        own = _params.validate(
            {name: getattr(self, name) for name in ("n_epochs", "shuffle", "random_state")})
        rs = own["random_state"]
        if rs is None or isinstance(rs, np.random.RandomState):
            rng = check_random_state(rs)
            seed = int(rng.randint(np.iinfo(np.int32).max))
        else:
            seed = rs
            rng = np.random.RandomState(seed)
        params = {name: getattr(self, name) for name in _params.LEARNER_PARAMS
                  if name != "seed"}
        params["seed"] = seed
        return Learner(_params.check_params(params)), own["n_epochs"], rng

    def fit(self, X, y=None):
        """Learn a basis from the rows of X (``n_epochs`` passes), starting afresh.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : None
            Ignored: the basis is learned from X alone.

        Returns
        -------
        self : SparseCodingTransformer
            The transformer, fitted.
        """
        # a refused fit leaves the model as it was (fit builds a new learner: the state is
        # recorded by reference)
        with validation.model_lock(self), self._transaction():
            learner, n_epochs, rng = self._check_params()
            X = self._check_X(X, learner, reset=True, learning=True)
            self._start(learner, X.shape[1])
            n = X.shape[0]
            for _ in range(n_epochs):
                order = rng.permutation(n) if self.shuffle else range(n)
                for i in order:
                    learner.learn(None, X[i])
            self._finish(n_epochs)
        return self

    def partial_fit(self, X, y=None):
        """Continue the stream with the rows of X, in order (starts a basis on the first
        call; parameters are checked on that call only).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        self
        """
        # a refused batch changes nothing, not even its rows before the refused one
        with validation.model_lock(self), self._transaction(deep=True):
            first = not hasattr(self, "_learner")
            learner = self._check_params()[0] if first else self._learner
            X = self._check_X(X, learner, reset=first, learning=True)
            if first:
                self._start(learner, X.shape[1])
                self.n_iter_ = 0
            for i in range(X.shape[0]):
                self._learner.learn(None, X[i])
            self._finish(self.n_iter_)
        return self

    def _check_X(self, X, learner, *, reset, learning):
        """X as a float64 C array of checked rows: unique column names, scikit-learn's
        checks (``reset``: record the features), and counts for the KL loss."""
        _check_columns(X)
        X = validate_data(self, X, reset=reset, dtype=np.float64, order="C")
        self._check_counts(learner, X, learning=learning)
        return X

    def _start(self, learner, m):
        """Make ``learner``, with one basis row per column ``0, ..., m - 1``, the model's."""
        learner.grow(np.empty(0, dtype=np.int64), np.arange(m), list(range(m)))
        self._learner = learner

    def _finish(self, n_iter):
        self.n_steps_ = self._learner.t
        self.n_iter_ = n_iter
        self._n_features_out = self._learner.config.n_components

    def transform(self, X):
        """Sparse codes of the rows of X under the learned basis.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_components)
        """
        check_is_fitted(self)
        X = self._check_X(X, self._learner, reset=False, learning=False)
        return self._learner.code_batch(None, X)

    def score(self, X, y=None):
        """Negative mean reconstruction loss of the rows of X by their codes: the squared
        loss ``1/2 ||x - B w||^2``, or for ``loss="kl"`` the KL divergence of each row's
        distribution from ``softmax(B w)`` (an empty row scores 0). Higher is better, so
        ``dask_ml.wrappers.Incremental`` and model selection can use it as is.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The rows to code and reconstruct.
        y : ignored

        Returns
        -------
        float
        """
        check_is_fitted(self)
        X = self._check_X(X, self._learner, reset=False, learning=False)
        learner = self._learner
        W = learner.code_batch(None, X)
        losses = np.zeros(X.shape[0])  # an empty document (KL) scores 0
        rows = np.arange(X.shape[0])
        if learner.config.distribution:
            totals = X.sum(axis=1)
            rows = np.flatnonzero(totals > 0.0)
            X = X[rows] / totals[rows, None]
        out = np.empty(rows.size)
        kl_kernels.reconstruction_losses(X, learner.B, np.ascontiguousarray(W[rows]),
                                         LOSSES[learner.config.loss].code, out)
        losses[rows] = out
        return -float(np.mean(losses))

    @staticmethod
    def _check_counts(learner, X, learning):
        """``loss="kl"``: non-negative counts, and no all-zero row to learn from."""
        if not learner.config.distribution:
            return
        if np.any(X < 0):
            i, j = np.argwhere(X < 0)[0]
            raise ValueError(f"X[{i}, {j}] is {X[i, j]!r}: loss='kl' needs non-negative counts")
        if learning:
            empty = ~(X > 0).any(axis=1)
            if empty.any():
                raise ValueError(
                    f"X has an all-zero row ({int(np.argmax(empty))}): loss='kl' cannot learn "
                    "from an empty document"
                )

    @property
    def components_(self):
        check_is_fitted(self)
        return np.ascontiguousarray(self._learner.B.T)

    def __sklearn_is_fitted__(self):
        return hasattr(self, "_learner")
