"""SparseCodingRegressor: a linear head on sparse codes, back-propagated into the basis."""

import math

import numpy as np
from river import base

from ._basis_steps import StepTooLarge
from ._supervised import CODE_TOO_LARGE, SupervisedCoding, check_target

__all__ = ["SparseCodingRegressor"]

class SparseCodingRegressor(SupervisedCoding, base.Regressor):
    r"""Linear regression on sparse codes, with the squared error back-propagated through the
    code into the basis (the paper's movie-review "KL + backprop", online).

    The head works on standardised codes and a standardised target. Each code coefficient is
    centred and scaled by its running mean :math:`\mu_j` and standard deviation
    :math:`\sigma_j` over the labelled examples learned so far,
    :math:`\hat z_j = (\hat w_j - \mu_j)/\sigma_j`, and the target by its own running mean
    :math:`m_y` and standard deviation :math:`s_y`; the head predicts
    :math:`\hat y = m_y + s_y (v^\top \hat z + b)`. ``learn_one(x, y)`` codes ``x`` with the
    owned coder, takes the gradient of :math:`\tfrac12(v^\top \hat z + b - t)^2`
    (:math:`t = (y - m_y)/s_y`) with respect to the code,
    :math:`g_j = (v^\top \hat z + b - t)\,v_j / \sigma_j`, and, with ``gradient="implicit"``,
    steps the basis along it exactly as :class:`~streamsc.SparseCodingClassifier` does; then
    the head takes its normalised LMS step (below), and only then are the running means and variances (Welford)
    updated with this example's code and target. The scales are the *sample* standard
    deviations (ddof=1); a coefficient's :math:`\sigma_j` is floored at ``1e-2`` times the
    largest one, so that a coefficient that has barely moved so far is not blown up. Before
    two labelled examples (or while every coefficient has been constant) the codes have no
    scale yet: :math:`\hat z = 0`, and the head learns only its intercept. The head's
    predictions are thus invariant to an affine change ``s * w + d`` (``s > 0``) of the
    codes.

    Standardising the codes is always on, not an option: the scale of a code depends on the
    prior, ``lam``, ``p`` and the loss (the 128-D KL-loss codes of the movie reviews sit at
    about the prior mean ``p = 1/128`` with a standard deviation of about 1e-4 per
    coefficient; L1 codes scale with the data), so no single ``learning_rate`` of a head on
    raw codes suits them all -- on the movie reviews the raw-code head did not learn at all.
    A linear model on standardised codes is the same family of models (an affine
    reparametrisation); only the geometry of the SGD steps changes, as it does for the
    target, which the head standardises for the same reason. Unlabelled examples go to
    ``learn_unlabelled_one(x)``; they do not enter the running statistics.

    With ``raw_features=True`` (the default) the head also reads the example's values,
    :math:`\hat y = m_y + s_y (v^\top \hat z + u^\top x + b)`, so the model contains the
    linear regression on its inputs; the head's step is the normalised
    ``learning_rate * d / (d + |f|^2)`` of :class:`~streamsc.SparseCodingClassifier` (at most
    ``1/|f|^2``, the step that fits the example exactly), constant along the stream.

    Parameters
    ----------
    n_components, prior, loss, lam, p, signed, seed, basis, coder, gradient, learning_rate, l2, backprop_weight, reconstruction_weight, raw_features
        As for :class:`~streamsc.SparseCodingClassifier` (the same defaults; the loss is
        the squared error of the standardised target).

    Attributes
    ----------
    coder_ : SparseCoder
        The coder owned and trained by the model.
    n_backprop_skipped_ : int
        Labelled examples whose implicit gradient was not finite (reconstruction step only).

    Examples
    --------
    >>> import numpy as np
    >>> from streamsc import SparseCoder, SparseCodingRegressor
    >>> rng = np.random.default_rng(0)
    >>> model = SparseCodingRegressor(n_components=4, signed=True, seed=0)
    >>> errors = []
    >>> for i in range(800):
    ...     x = rng.normal(size=3)
    ...     y = 2.0 * x[0] - x[1]
    ...     errors.append(abs(model.predict_one(dict(zip("abc", x))) - y))
    ...     model.learn_one(dict(zip("abc", x)), y)
    >>> bool(np.mean(errors[-200:]) < 0.5 * np.mean(errors[:200]))
    True
    """

    def _init_head(self):
        self._v = np.zeros(self._coder.n_components)  # weights of the standardised code
        self._u = np.zeros(0)  # weights of the raw features, on the coder's rows
        self._b = 0.0
        self._y_mean = 0.0
        self._y_m2 = 0.0  # running sum of squared deviations of the targets (Welford)

    @classmethod
    def _unit_test_params(cls):

        yield {"n_components": 4, "seed": 0}
        yield {"n_components": 3, "signed": True, "seed": 2, "gradient": "unrolled"}
        yield {"n_components": 3, "prior": "l1", "lam": 0.05, "seed": 1, "gradient": "implicit"}

    def _scale(self):
        n = self._n_labelled
        if n < 2:
            return 1.0
        sd = (self._y_m2 / (n - 1)) ** 0.5
        return sd if sd > 0.0 else 1.0

    def _output(self, w, raw, u):
        """(standardised prediction, z, sigma)."""
        z, sigma = self._standardise(w)
        out = float(self._v @ z) + self._b
        if raw is not None:
            rows, values = raw
            out += float((u if rows is None else u[rows]) @ values)
        return out, z, sigma

    def _head_grad(self, w, y, raw):
        y = check_target(y)
        mean = self._y_mean if self._n_labelled else y
        t = (y - mean) / self._scale()
        n = self._n_labelled + 1
        u = self._spread(self._u, self._raw_positions())
        with np.errstate(over="ignore", invalid="ignore"):
            out, z, sigma = self._output(w, raw, u)
            err = out - t
            g_w = (err * self._v) / sigma
            delta = y - self._y_mean
            y_mean = self._y_mean + delta / n
            y_m2 = self._y_m2 + delta * (y - y_mean)
        if not (math.isfinite(y_mean) and math.isfinite(y_m2) and math.isfinite(t)):
            raise ValueError(
                f"y = {y!r} is too large for the running scale of the target (its variance "
                "would overflow): scale the target. The model is unchanged"
            )
        w_mean, w_m2 = self._code_stats_after(w)
        if not (math.isfinite(err) and np.isfinite(g_w).all()):
            raise StepTooLarge(np.inf, reason=CODE_TOO_LARGE)
        eta = self._step_size(z, raw)

        def apply():
            self._v = self._v - eta * (err * z + self.l2 * self._v)
            u_new = u  # updated in place: nothing can fail any more
            if raw is not None:
                rows, values = raw
                if rows is None:
                    u_new -= eta * (err * values + self.l2 * u)
                else:
                    u_new[rows] -= eta * (err * values + self.l2 * u[rows])
            self._u = u_new
            self._b = self._b - eta * err
            self._y_mean = y_mean
            self._y_m2 = y_m2
            self._w_mean = w_mean
            self._w_m2 = w_m2
            self._n_labelled = n

        return g_w, apply

    def learn_one(self, x, y):
        """Learn from one labelled example (see the class docstring).

        Parameters
        ----------
        x : dict
            Feature name -> real number.
        y : float
            The target, a finite real number.
        """
        check_target(y)
        self._learn(x, y)

    def predict_one(self, x):
        """The prediction of the linear head on the code of ``x`` (0 before any label)."""
        w, raw = self._inputs(x)
        if not self._n_labelled:
            return 0.0
        out = self._output(w, raw, self._spread(self._u, self._raw_positions()))[0]
        return float(self._y_mean + self._scale() * out)
