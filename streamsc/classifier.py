"""SparseCodingClassifier: a maxent head on sparse codes, back-propagated into the basis."""

import numpy as np
import pandas as pd
from river import base

from ._supervised import SupervisedCoding, check_class_label

__all__ = ["SparseCodingClassifier"]


class SparseCodingClassifier(SupervisedCoding, base.Classifier):
    r"""Multiclass maxent (softmax) classification on sparse codes, with the paper's online
    "KL + backprop": the head's log-loss is back-propagated through the code into the basis
    by implicit differentiation, one labelled example at a time.

    The head works on standardised codes, exactly as
    :class:`~streamsc.SparseCodingRegressor`'s does: each coefficient is centred and scaled by
    its running mean :math:`\mu_j` and sample standard deviation :math:`\sigma_j` over the
    labelled examples learned so far (floored at ``1e-2`` times the largest),
    :math:`\hat z_j = (\hat w_j - \mu_j)/\sigma_j`, and the class probabilities are
    :math:`\pi = \mathrm{softmax}(V\hat z + b)`. ``learn_one(x, y)`` codes ``x`` with the owned
    coder (warm-started, cached), takes the gradient
    :math:`g_j = [V^\top(\pi - e_y)]_j / \sigma_j` of the log-loss with respect to the code,
    and with ``gradient="implicit"`` steps the basis along

    .. math::

        \rho\,(B\hat w - x)\hat w^\top + \beta\,[(x - B\hat w) v^\top - (Bv)\hat w^\top],
        \qquad v = H^{-1} g

    (:math:`\rho` = ``reconstruction_weight``, :math:`\beta` = ``backprop_weight``, the
    coder's step :math:`\eta_0/\sqrt t`, atoms rescaled to unit norm); then the head takes a
    normalised SGD step, ``learning_rate / sqrt(n) / (1 + |z|^2)`` after ``n`` labelled
    examples, and only then are the running means and variances updated with this example's
    code. Before two labelled examples the codes have no scale yet (:math:`\hat z = 0`: the
    head learns its intercepts only). Standardising is what lets one ``learning_rate`` suit
    every prior: KL codes sit near the prior mean ``p`` with a spread far smaller than that of
    L1 codes, and a head on raw KL codes learns (and back-propagates) almost nothing. New
    classes may appear at any time (their weights start at zero).

    The stream may be semi-supervised: send unlabelled examples to
    ``learn_unlabelled_one(x)`` (the reconstruction step alone, on the same basis and
    schedule). Labels that arrive late (river's ``progressive_val_score(..., delay=...)``)
    are fine: the example is coded under the basis of the moment its label arrives.

    Parameters
    ----------
    coder
        A :class:`~streamsc.SparseCoder`, possibly already trained (the digits -> letters
        transfer: a basis learned without labels keeps adapting as labels arrive). The model
        owns it and trains it in place. ``None``: a fresh ``SparseCoder()``.
    gradient
        How the head's loss reaches the basis: ``"implicit"`` (default, the paper's "KL +
        backprop": implicit differentiation of the code), ``"unrolled"`` (back-propagation
        through the coder's ``unrolled_steps`` solver iterations, PUDLE; squared loss only)
        or ``"alternating"`` (no back-propagation: the basis learns by reconstruction alone).
    learning_rate
        Step size of the head's first SGD step.
    l2
        L2 penalty on the head's weights.
    backprop_weight
        :math:`\beta`, the weight of the supervised gradient in the basis step.
    reconstruction_weight
        :math:`\rho`, the weight of the reconstruction gradient in a labelled example's basis
        step (0: labelled examples move the basis only through the supervised loss).

    Attributes
    ----------
    coder_ : SparseCoder
        The coder owned and trained by the model.
    classes_ : list
        Classes seen so far, in order of appearance.

    Examples
    --------
    Two classes that differ in the sign of one feature; a pretrained coder keeps adapting
    while the head learns:

    >>> import numpy as np
    >>> from streamsc import SparseCoder, SparseCodingClassifier
    >>> rng = np.random.default_rng(0)
    >>> def sample():
    ...     y = bool(rng.integers(2))
    ...     x = rng.normal(size=3) * 0.3
    ...     x[0] += 1.0 if y else -1.0
    ...     return dict(zip("abc", x)), y
    >>> model = SparseCodingClassifier(
    ...     coder=SparseCoder(n_components=6, signed=True, lam=0.05, seed=0),
    ...     learning_rate=0.5,
    ... )
    >>> correct = 0
    >>> for i in range(600):
    ...     x, y = sample()
    ...     correct += i >= 300 and model.predict_one(x) == y
    ...     model.learn_one(x, y)
    >>> print(f"accuracy on the last 300: {correct / 300:.0%}")
    accuracy on the last 300: ...%
    >>> correct > 270
    True
    """

    def _init_head(self):
        self.classes_ = []
        self._class_index = {}
        self._label_kind = None
        self._V = np.zeros((0, self._coder.n_components))  # weights of the standardised code
        self._U = np.zeros((0, 0))  # weights of the raw features, on the coder's rows
        self._b = np.zeros(0)

    @classmethod
    def _unit_test_params(cls):
        yield {"n_components": 4, "seed": 0, "learning_rate": 0.5}
        yield {"n_components": 3, "signed": True, "seed": 1, "raw_features": False}
        yield {"n_components": 3, "prior": "l1", "lam": 0.05, "seed": 2, "gradient": "unrolled"}

    @property
    def _multiclass(self):
        return True

    def _logits(self, w, raw, V, U, b):
        z, sigma = self._standardise(w)
        logits = V @ z + b
        if raw is not None:
            rows, values = raw
            logits += (U if rows is None else U[:, rows]) @ values
        return logits, z, sigma

    def _head_grad(self, w, y, raw):
        kind = check_class_label(y, self._label_kind)
        new = y not in self._class_index
        n = len(self.classes_) + (1 if new else 0)
        k = self._V.shape[1]
        V, b = self._V, self._b
        U = self._spread(self._U, self._raw_positions())
        if new:
            V = np.vstack([V, np.zeros((1, k))])
            U = np.vstack([U, np.zeros((1, U.shape[1]))])
            b = np.append(b, 0.0)
        logits, z, sigma = self._logits(w, raw, V, U, b)
        pi = _softmax(logits)
        c = self._class_index.get(y, n - 1)
        gz = pi
        gz[c] -= 1.0
        g_w = (V.T @ gz) / sigma
        w_mean, w_m2 = self._code_stats_after(w)
        eta = self._step_size(z, raw)

        def apply():
            V_new = V - eta * (np.outer(gz, z) + self.l2 * V)
            U_new = U
            if raw is not None:
                rows, values = raw
                U_new = U.copy()
                if rows is None:
                    U_new -= eta * (np.outer(gz, values) + self.l2 * U)
                else:
                    U_new[:, rows] -= eta * (np.outer(gz, values) + self.l2 * U[:, rows])
            if new:
                self._class_index[y] = len(self.classes_)
                self.classes_.append(y)
            self._label_kind = kind
            self._V, self._U, self._b = V_new, U_new, b - eta * gz
            self._w_mean, self._w_m2 = w_mean, w_m2
            self._n_labelled += 1

        return g_w, apply

    def learn_one(self, x, y):
        """Learn from one labelled example (see the class docstring).

        Parameters
        ----------
        x : dict
            Feature name -> real number.
        y
            Class label (hashable; the same kind -- text or number -- as earlier labels).
        """
        check_class_label(y, self._label_kind)
        self._learn(x, y)

    def predict_proba_one(self, x):
        """Class probabilities of the softmax head on the code of ``x`` (``{}`` before any
        label)."""
        w, raw = self._inputs(x)
        if not self.classes_:
            return {}
        U = self._spread(self._U, self._raw_positions())
        pi = _softmax(self._logits(w, raw, self._V, U, self._b)[0])
        return dict(zip(self.classes_, pi.tolist()))

    def predict_proba_many(self, X):
        """``predict_proba_one`` of every row of ``X`` (a DataFrame), as a DataFrame with one
        column per class seen so far, on X's index."""
        probs = [self.predict_proba_one(x) for x in self._rows(X)]
        return pd.DataFrame(probs, index=X.index, columns=list(self.classes_), dtype=float)


def _softmax(z):
    z = z - z.max()
    pi = np.exp(z)
    return pi / pi.sum()
