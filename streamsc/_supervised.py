"""What the supervised sparse-coding learners share: their parameters, the owned coder, the
head's inputs, the semi-supervised step and the back-propagation of the head's loss into the
basis (the paper's section 5).

A labelled example ``(x, y)`` is coded under the current basis. The head (softmax or linear)
reads the standardised code ``z = (w - mu) / sigma`` (running mean and standard deviation of
the labelled codes) and, with ``raw_features=True`` (the default), the example's own values
too, so the model contains the linear model on its inputs and is never worse than one by
construction of its features. The head gives the gradient ``g = dloss/dw`` of its loss with
respect to the code; with ``gradient="implicit"`` that gradient is pushed through the code by
implicit differentiation, ``v = H^{-1} g``, and the basis takes one step along

    reconstruction_weight * (B w - x) w^T  +  backprop_weight * [(x - B w) v^T - (B v) w^T]

where the coder's own update takes the reconstruction part (the online surrogate, or its
per-atom AdaGrad SGD step) and the AdaGrad step the backprop part, with unit-norm atoms;
then the head takes one normalised SGD step,
``learning_rate * d / (d + |f|^2)`` along its gradient, ``f`` the head's d inputs. For a
coder with ``loss="kl"`` (documents, softmax transfer) x is the document's word
distribution, ``B w`` becomes ``q = softmax(B w)`` and ``B v`` in the last term becomes
``S B v`` with ``S = diag(q) - q q^T`` (the paper's eq. 21). An unlabelled example is
``learn_unlabelled_one(x)``: the reconstruction step alone, through the same coder.

If the implicit gradient of one example is not finite (an ill-conditioned active set), that
example takes the reconstruction step alone and ``n_backprop_skipped_`` counts it: one
example's numerical trouble never stops a stream.

``gradient="unrolled"`` replaces the implicit term by back-propagation of ``g`` through the
coder's ``unrolled_steps`` iterations of ISTA (L1, L2) or fixed-step EGD (KL) from a cold
start (PUDLE; squared loss only); ``gradient="alternating"`` drops it (the head learns on
codes of a basis trained by reconstruction alone: the paper's "KL" rows).
"""

import math
import numbers

import numpy as np
import pandas as pd

from . import _base
from . import _features, _params
from . import _validation as validation
from ._basis_steps import StepTooLarge
from ._models import LOSSES
from .sparse_coder import SparseCoder

#: a code coefficient's scale is at least this fraction of the largest coefficient's
CODE_SD_FLOOR = 1e-2
#: why a code is refused whose running variance would overflow
CODE_TOO_LARGE = ("gives a code too large for the running scale of the codes (their variance "
                  "would overflow)")

#: the coder's parameters a supervised model takes directly, with SparseCoder's defaults
CODER_DEFAULTS = {"n_components": 32, "prior": "kl", "loss": "squared", "lam": None,
                  "p": None, "signed": False, "seed": None, "basis": None}


#: the head's default ``learning_rate``, and always the linear expert's (the safety net of
#: ``raw_features=True``: a linear model with a fixed, conservative step, whatever step the
#: head is given)
DEFAULT_LEARNING_RATE = 0.05

#: the head's parameters, checked by the schema every estimator shares (streamsc._params);
#: the coder's are checked by the SparseCoder built from them
HEAD_PARAMS = ("learning_rate", "l2", "gradient", "backprop_weight", "reconstruction_weight",
               "raw_features")


def check_supervised_params(model):
    """Check the shared constructor arguments of a supervised model: the head's through
    the schema (:func:`streamsc._params.validate`), the coder's or the coder given."""
    _params.validate({name: getattr(model, name) for name in HEAD_PARAMS})
    coder = model.coder
    if coder is not None:
        if not isinstance(coder, SparseCoder):
            raise TypeError(
                f"coder must be a streamsc.SparseCoder or None, got {type(coder).__name__}")
        given = [name for name, default in CODER_DEFAULTS.items()
                 if (getattr(model, name) is not None if default is None
                     else getattr(model, name) != default)]
        if given:
            raise ValueError(
                f"coder= was given along with the coder parameter(s) {', '.join(given)}: "
                "give either a coder or its parameters"
            )
    loss = coder.loss if coder is not None else model.loss
    if model.gradient == "unrolled" and loss in LOSSES and not LOSSES[loss].unrolled:
        raise ValueError(
            "gradient='unrolled' needs a coder with loss='squared' (the unrolled solvers are "
            "ISTA/FISTA and EGD on the squared loss); use gradient='implicit'"
        )


def _sets_atom(learner, rows, xv):
    """While the coder's atoms are unset, a labelled example sets the next one, as an
    unlabelled one would (then it takes no basis step; the head still learns)."""
    if learner.n_data_atoms >= learner.config.n_components:
        return False
    x = learner.as_learned(xv)
    if learner.initial_atom(rows, x) is None:
        return False
    learner.count_scale(x)
    return True


class SupervisedCoding(_base.StreamscEstimator):
    """The shared constructor and steps of the supervised models; a subclass defines its
    head: ``_init_head()``, ``_head_grad(w, y, raw) -> (g_w, apply)`` (``raw``: the head's
    raw inputs ``(rows, values)`` or None) and ``_reindex_raw(positions, m)``."""

    def __init__(
        self,
        # the coder's parameters (SparseCoder's defaults), or the coder itself
        n_components: int = 32, prior: str = "kl", loss: str = "squared",
        lam: float | None = None, p: float | None = None, signed: bool = False,
        seed: int | None = None, basis=None, coder=None,
        # the head's
        gradient: str = "alternating",
        learning_rate: float = DEFAULT_LEARNING_RATE,
        l2: float = 0.0,
        backprop_weight: float = 1.0,
        reconstruction_weight: float = 1.0,
        raw_features: bool = True,
    ):
        self._store_params(locals())
        check_supervised_params(self)
        if coder is None:
            params = {name: getattr(self, name) for name in CODER_DEFAULTS}
            if basis is not None and n_components == CODER_DEFAULTS["n_components"]:
                params["n_components"] = np.shape(basis)[1]  # as many atoms as the basis
            coder = SparseCoder(**params)
        self._coder = coder
        self._raw_names = []  # the coder's feature names the head's raw weights follow
        self._n_labelled = 0
        self.n_backprop_skipped_ = 0
        k = coder.n_components
        self._w_mean = np.zeros(k)  # running mean and sum of squared deviations of the codes
        self._w_m2 = np.zeros(k)
        self._init_head()

    @property
    def coder_(self):
        """The coder this model owns and trains (the one given as ``coder``, or its own)."""
        return self._coder

    def learn_unlabelled_one(self, x):
        """Learn from an unlabelled example: the reconstruction step of the owned coder alone
        (exactly ``coder_.learn_one(x)``), on the same basis and step schedule as the
        labelled steps."""
        self._coder.learn_one(x)

    # --- the head's inputs

    def _inputs(self, x):
        """(code, raw) of x for prediction; nothing is learned."""
        rows, xv = self._coder._example(x)
        w = self._coder._learner.code(rows, xv)
        return w, self._raw(rows, xv)

    def _raw(self, rows, xv):
        """The head's raw inputs: ``(rows, values)`` of the example on the coder's rows (for
        the KL loss, the document's distribution over every row), or None."""
        if not self.raw_features or xv.size == 0:
            return None
        if self._coder._learner.config.distribution:
            total = float(xv.sum())
            xv = xv / total if total > 0.0 else np.zeros_like(xv)
        return rows, xv

    def _raw_positions(self):
        """Where the head's raw weights go among the coder's rows now (None: unchanged). The
        coder's rows are in canonical order, so a new feature name shifts the rows after it."""
        names = self._coder._features.names
        if not self.raw_features or len(names) == len(self._raw_names):
            return None
        index = self._coder._features.index
        return np.array([index[name] for name in self._raw_names], dtype=np.int64), len(names)

    @staticmethod
    def _spread(W, moved):
        """The columns of W (one per old row) at their new positions among m rows (zeros
        elsewhere); W itself if nothing moved."""
        if moved is None:
            return W
        positions, m = moved
        out = np.zeros(W.shape[:-1] + (m,))
        out[..., positions] = W
        return out

    def _step_size(self, z, raw, rate=None):
        """The head's normalised step for its d inputs f: ``rate * d / (d + |f|^2)`` (about
        ``rate / 2`` for standardised inputs; ``rate`` default ``learning_rate``), at most
        ``1 / |f|^2``, the step that fits the example exactly (a larger one overshoots:
        normalised LMS diverges at twice it). No inputs (the linear expert's bias alone):
        ``rate``."""
        rate = self.learning_rate if rate is None else rate
        d = z.size + (0 if raw is None else raw[1].size)
        if d == 0:
            return rate
        with np.errstate(over="ignore", invalid="ignore"):  # a huge raw feature: no step
            ff = float(z @ z) + (0.0 if raw is None else float(raw[1] @ raw[1]))
        if not math.isfinite(ff):
            return 0.0
        eta = rate * d / (d + ff)
        return min(eta, 1.0 / ff) if ff > 0.0 else eta

    # --- one labelled step

    def _learn(self, x, y):
        """One semi-supervised step; ``y`` already checked. The head's update is returned by
        ``_head_grad`` as a closure and applied last, once nothing can fail any more."""
        coder = self._coder
        example = coder._recall(x)  # (rows, x) of known keys, or None: check x in full
        if example is None:
            keys, values = coder._check_x(x)
            if coder._learner.config.distribution and not (values > 0).any():
                return  # a blank document: nothing to learn from
        with validation.model_lock(coder):  # one learning call at a time, across threads
            # all or nothing up to the head's update (the steps replace what they change, so
            # the state -- the cache of x's code included -- is recorded by reference)
            with self._transaction():
                if example is None:
                    coder._grow(keys)
                    example = coder._gather(keys, values)
                lr = coder._learner
                rows, xv = example
                w = lr.code(rows, xv)
                try:
                    g_w, apply_head = self._head_grad(w, y, self._raw(rows, xv))
                    if lr.m and (rows is None or rows.size) and not _sets_atom(lr, rows, xv):
                        skipped = self._basis_step(lr, rows, xv, w, g_w)
                        self.n_backprop_skipped_ += skipped
                        lr.count_scale(lr.as_learned(xv))
                except StepTooLarge as exc:
                    raise _features.too_large(exc, *coder._check_x(x)) from None
            apply_head()
            if self.raw_features:
                self._raw_names = list(coder._features.names)

    def _basis_step(self, lr, rows, xv, w, g_w):
        """The labelled example's basis step; returns 1 if its implicit gradient was not
        finite (it then took the reconstruction step alone), else 0."""
        skipped = 0
        backprop = (self.gradient != "alternating" and self.backprop_weight > 0.0
                    and np.any(g_w != 0.0))
        try:
            if backprop and self.gradient == "unrolled":
                lr.unrolled_step(rows, xv, w, g_w, self.backprop_weight,
                                 self.reconstruction_weight)
                return 0
            vdir = Bv = None
            if backprop:  # Bv: S B v for the KL loss (softmax transfer)
                Bo = lr.observed(rows)
                try:
                    vdir, Bv = lr.direction(Bo, w, g_w)
                except FloatingPointError:  # the reconstruction step alone, below
                    skipped = 1
            if vdir is not None or self.reconstruction_weight > 0.0:
                lr.supervised_step(rows, xv, w, vdir, Bv, self.backprop_weight,
                                   self.reconstruction_weight)
            return skipped
        except StepTooLarge as exc:
            if not exc.supervised:
                raise
        # the backpropagated part would not be finite (a huge target or learning_rate for
        # these features): this example takes the reconstruction step alone (nothing has
        # changed yet), so one label's numerical trouble does not stop the stream
        if self.reconstruction_weight > 0.0:
            lr.supervised_step(rows, xv, w, None, None, 0.0, self.reconstruction_weight)
        return 1

    # --- mini-batches: the one-example methods in order, all or nothing

    def _rows(self, X):
        """The rows of a DataFrame as feature dicts (checked as ``learn_many`` checks)."""
        columns, values = self._coder._check_frame(X)
        return [dict(zip(columns, row)) for row in values.tolist()]

    def learn_many(self, X, y):
        """``learn_one`` on every row of ``X`` (a DataFrame) with its label in ``y`` (a
        Series or sequence of the same length), in order; if one row is refused, the model
        is left exactly as it was before the call."""
        rows = self._rows(X)
        labels = list(y)
        if len(labels) != len(rows):
            raise ValueError(f"X has {len(rows)} rows but y has {len(labels)} labels")
        with self._transaction(deep=True):  # several steps: the state is copied
            for x, label in zip(rows, labels):
                self.learn_one(x, label)

    def predict_many(self, X):
        """``predict_one`` of every row of ``X``, as a Series on X's index."""
        return pd.Series([self.predict_one(x) for x in self._rows(X)], index=X.index)

    # --- the heads' standardised codes: z = (w - mu) / sigma, running mean and sample
    # standard deviation of the codes of the labelled examples (Welford)

    def _code_scale(self):
        """The per-coefficient scales sigma of the codes: the sample standard deviations of
        the codes learned so far, floored at CODE_SD_FLOOR times the largest; None (no scale
        yet) before two labelled examples or while every coefficient has been constant."""
        n = self._n_labelled
        if n < 2:
            return None
        sd = np.sqrt(self._w_m2 / (n - 1))
        top = float(sd.max())
        if not top > 0.0:
            return None
        return np.maximum(sd, CODE_SD_FLOOR * top)

    def _standardise(self, w):
        """The head's input z = (w - mu) / sigma and sigma (the gradient with respect to the
        code is the one with respect to z divided by sigma); z = 0 while the codes have no
        scale yet."""
        sigma = self._code_scale()
        if sigma is None:
            return np.zeros_like(w), np.ones_like(w)
        with np.errstate(over="ignore", invalid="ignore"):
            return (w - self._w_mean) / sigma, sigma

    def _code_stats_after(self, w):
        """The running mean and sum of squared deviations once ``w`` is added (not stored);
        raises if they overflow."""
        n = self._n_labelled + 1
        with np.errstate(over="ignore", invalid="ignore"):
            dw = w - self._w_mean
            w_mean = self._w_mean + dw / n
            w_m2 = self._w_m2 + dw * (w - w_mean)
        if not np.isfinite(w_m2).all():
            raise StepTooLarge(np.inf, reason=CODE_TOO_LARGE)
        return w_mean, w_m2


def check_class_label(y, kind):
    """A class label: hashable, not None, equal to itself (not NaN, ``pd.NA``, ``NaT`` or
    ``Decimal("NaN")``: missing values, not labels), of the same kind (text, number, other)
    as the labels seen before. Returns its kind."""
    if y is None:
        raise ValueError("y is None: a labelled example needs a class label")
    try:
        hash(y)
    except TypeError:
        raise TypeError(f"y must be hashable (a class label), got {type(y).__name__}") from None
    if isinstance(y, (float, np.floating)) and math.isnan(y):
        raise ValueError("y is NaN: a class label must be a real value")
    if not validation.equals_itself(y):
        raise ValueError(
            f"y is {y!r}, a missing value (it does not equal itself): a labelled example "
            "needs a class label. The model is unchanged"
        )
    new_kind = "text" if isinstance(y, str) else "number" if isinstance(
        y, (numbers.Number, np.bool_)) else "other"
    if kind is not None and new_kind != kind:
        raise TypeError(
            f"y={y!r} is a {new_kind} label but the labels seen so far are {kind} labels"
        )
    return new_kind


def check_target(y):
    """A regression target: a finite real number whose square is finite too (the running
    variance of the targets squares them: a first target of 1e200 would make every later
    one unusable)."""
    if isinstance(y, (bool, np.bool_, np.timedelta64, np.datetime64)) \
            or not isinstance(y, numbers.Real):
        raise TypeError(f"y must be a real number, got {y!r} ({type(y).__name__})")
    try:
        y = float(y)
    except OverflowError:  # an int or Fraction beyond the largest float
        raise ValueError(
            "y is too large to be a float: scale the target. The model is unchanged"
        ) from None
    if not math.isfinite(y):
        raise ValueError(f"y must be finite, got {y!r}")
    if abs(y) > MAX_TARGET:
        raise ValueError(
            f"y is {y!r}, too large for the running scale of the targets (its square would "
            f"overflow; |y| must be <= {MAX_TARGET:g}): scale the target. The model is "
            "unchanged"
        )
    return y


#: the largest |y| a regressor takes: its square, and the square of the difference of two
#: such targets (the running variance), stay far from overflow
MAX_TARGET = 1e150
