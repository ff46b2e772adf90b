"""What the supervised sparse-coding learners share: the owned coder, the semi-supervised
step and the back-propagation of the head's loss into the basis (the paper's section 5).

A labelled example ``(x, y)`` is coded under the current basis; the head (softmax or linear)
gives the gradient ``g = dloss/dw`` of its loss with respect to the code; with
``gradient="implicit"`` that gradient is pushed through the code by implicit differentiation,
``v = H^{-1} g``, and the basis takes one SGD step along

    reconstruction_weight * (B w - x) w^T  +  backprop_weight * [(x - B w) v^T - (B v) w^T]

where the coder's own update takes the reconstruction part (the online surrogate, or its
per-atom AdaGrad SGD step) and the AdaGrad step the backprop part, with unit-norm atoms;
then the head takes one SGD step. For a coder with ``loss="kl"`` (documents, softmax
transfer) x is the document's word distribution, ``B w`` becomes ``q = softmax(B w)`` and ``B v`` in the
last term becomes ``S B v`` with ``S = diag(q) - q q^T`` (the paper's eq. 21; ``H`` is then
``B^T S B + lam diag(R'')``). An unlabelled example is ``learn_unlabelled_one(x)``: the
reconstruction step alone, through the same coder and the same schedule.

``gradient="unrolled"`` replaces the implicit term by back-propagation of ``g`` through the
coder's ``unrolled_steps`` iterations of ISTA (L1, L2) or fixed-step EGD (KL) from a cold
start (PUDLE; squared loss only); ``gradient="alternating"`` drops it (the head learns on
codes of a basis trained by reconstruction alone: the paper's "KL" rows).
"""

import math
import numbers

import numpy as np

from . import _validation as v
from .sparse_coder import SparseCoder

#: a code coefficient's scale is at least this fraction of the largest coefficient's
CODE_SD_FLOOR = 1e-2


def check_supervised_params(learning_rate, l2, gradient, backprop_weight, reconstruction_weight,
                            coder):
    v.check_real("learning_rate", learning_rate, low=0.0)
    v.check_real("l2", l2, low=0.0, low_inclusive=True)
    v.check_choice("gradient", gradient, v.GRADIENTS)
    v.check_real("backprop_weight", backprop_weight, low=0.0, low_inclusive=True)
    v.check_real("reconstruction_weight", reconstruction_weight, low=0.0, low_inclusive=True)
    if coder is not None and not isinstance(coder, SparseCoder):
        raise TypeError(f"coder must be a streamsc.SparseCoder or None, got {type(coder).__name__}")
    if gradient == "unrolled" and coder is not None and coder.loss == "kl":
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


class SupervisedCoding:
    """Mixin holding the coder and the basis step; subclasses define the head through
    ``_head_forward(w) -> (prediction state)``, ``_head_grad(state, y) -> (g_w, apply)``."""

    def _init_supervised(self):
        """Check the shared constructor arguments and take the coder (or make one)."""
        check_supervised_params(self.learning_rate, self.l2, self.gradient,
                                self.backprop_weight, self.reconstruction_weight, self.coder)
        self._coder = self.coder if self.coder is not None else SparseCoder()

    @property
    def coder_(self):
        """The coder this model owns and trains (the one given as ``coder``, or its own)."""
        return self._coder

    def save(self, path):
        """Save the model to ``path``; :func:`streamsc.load` reads it back
        (:func:`streamsc.persistence.save`)."""
        from .persistence import save

        save(self, path)

    def learn_unlabelled_one(self, x):
        """Learn from an unlabelled example: the reconstruction step of the owned coder alone
        (exactly ``coder_.learn_one(x)``), on the same basis and step schedule as the
        labelled steps."""
        self._coder.learn_one(x)

    def _code(self, x):
        """The code of x (cached by the coder) for prediction; nothing is learned."""
        coder = self._coder
        keys, values = coder._check_x(x)
        rows, xv = coder._gather(keys, values)
        return coder._learner.code(rows, xv)

    def _learn(self, x, y):
        """One semi-supervised step; ``y`` already checked. The head's update is returned by
        ``_head_grad`` as a closure and applied last, once nothing can fail any more."""
        coder = self._coder
        keys, values = coder._check_x(x, learning=True)  # KL loss: counts, not empty
        cache = coder._learner.cache  # coding x below caches its code: restored on failure
        checkpoint = coder._grow(keys)
        try:
            rows, xv = coder._gather(keys, values)
            lr = coder._learner
            w = lr.code(rows, xv)
            g_w, apply_head = self._head_grad(w, y)
            if lr.m and (rows is None or rows.size) and not _sets_atom(lr, rows, xv):
                backprop = (self.gradient != "alternating" and self.backprop_weight > 0.0
                            and np.any(g_w != 0.0))
                if backprop and self.gradient == "unrolled":
                    lr.unrolled_step(rows, xv, w, g_w, self.backprop_weight,
                                     self.reconstruction_weight)
                else:
                    vdir = Bv = None
                    if backprop:  # Bv: S B v for the KL loss (softmax transfer)
                        Bo = lr.B if rows is None else np.ascontiguousarray(lr.B[rows])
                        vdir, Bv = lr.direction(Bo, w, g_w)
                    if vdir is not None or self.reconstruction_weight > 0.0:
                        lr.supervised_step(rows, xv, w, vdir, Bv, self.backprop_weight,
                                           self.reconstruction_weight)
                lr.count_scale(lr.as_learned(xv))
        except BaseException:
            coder._rollback(checkpoint)
            coder._learner.cache = cache
            raise
        apply_head()

    def _head_eta(self):
        return self.learning_rate / math.sqrt(self._n_labelled + 1)

    # --- the heads' standardised codes: z = (w - mu) / sigma, running mean and sample
    # standard deviation of the codes of the labelled examples (Welford)

    def _init_code_stats(self):
        k = self._coder.n_components
        self._w_mean = np.zeros(k)
        self._w_m2 = np.zeros(k)

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
            raise ValueError(
                "the code of x is too large for the running scale of the codes (their variance "
                "would overflow): scale the features. The model is unchanged"
            )
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
    try:
        same = bool(y == y)
    except Exception:  # pd.NA: its comparisons are NA, which has no truth value
        same = False
    if not same:
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
