"""The one schema of the estimators' hyper-parameters: what each may be, its check, its
defaults, and the scikit-learn constraints built from it.

Every estimator validates its constructor arguments here, once: :class:`~streamsc.SparseCoder`
(:func:`check_params` for the learner's parameters, :func:`validate` for the rest), the
supervised models (their coder's parameters and the head's: ``learning_rate``, ``l2``,
``backprop_weight``...), and the scikit-learn wrapper, whose ``_parameter_constraints``
(:func:`sklearn_constraints`) are scikit-learn's own types built from the same entries.
A parameter has one meaning wherever it appears, so one entry serves every estimator.
Every check raises ``TypeError`` (wrong kind of value) or ``ValueError`` (right kind, bad
value) with a message naming the parameter.
"""

import dataclasses
from numbers import Integral, Real

import numpy as np

from . import _validation as validation
from ._models import LOSSES
from .coding import default_tol

__all__ = [
    "DEFAULT_LAM",
    "DEFAULT_LAM_KL_LOSS",
    "DEFAULT_P",
    "LEARNER_PARAMS",
    "PARAMETER_CONSTRAINTS",
    "SCHEMA",
    "Config",
    "Param",
    "check_params",
    "sklearn_constraints",
    "validate",
]

#: ``lam=None``: the default weight of the prior. The squared loss's, per prior, are per unit
#: of the data's norm: lam is this times the mean norm of the first ``n_components``
#: examples learned, since scaling x by s scales the codes by s and the right lam with them.
#: The KL loss codes distributions, which have no scale. (``tests/test_defaults.py``)
DEFAULT_LAM = {"kl": 0.05, "l1": 0.1, "l2": 0.1}
DEFAULT_LAM_KL_LOSS = 0.01

#: ``p=None`` in an estimator: the KL prior mean of every atom is DEFAULT_P / k, a tenth of
#: the functional API's 1/k, so unused atoms' coefficients sit nearer zero (planted
#: dictionaries are found far more often; ``tests/test_defaults.py``)
DEFAULT_P = 0.1

#: ``unrolled_steps``: the unrolled iterations of ``gradient="unrolled"``. 20, not 10: with 10
#: ISTA steps a signed L1 coder recovered as little as 48 % of a planted dictionary, with 20 at
#: least 91 % (8 seeds; more steps were worse again: 25 -> 81 %, 40 -> 77 %;
#: ``docs/learning.md``, ``tests/test_defaults.py``)
DEFAULT_UNROLLED_STEPS = 20


# ---------------------------------------------------------------------------------------
# the schema
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Param:
    """What one hyper-parameter may be. ``kind``: ``"int"`` (``value >= low``), ``"real"``
    (finite, ``low < value`` or ``<=`` with ``low_inclusive``, ``value <= high``),
    ``"bool"``, ``"choice"`` (one of ``choices``) or ``"any"`` (checked by its estimator);
    ``allow_none``: None is a value too. ``check``: a checker replacing the kind's (one
    needing more than a range), and ``extra``: scikit-learn constraints it accepts beyond
    the kind's (``"array-like"`` for ``p``)."""

    kind: str
    low: float | None = None
    low_inclusive: bool = False
    high: float | None = None
    choices: tuple = ()
    allow_none: bool = False
    check: object = None
    extra: tuple = ()

    def __call__(self, name, value):
        """The checked value of parameter ``name``, or ``TypeError``/``ValueError``."""
        if self.check is not None:
            return self.check(value)
        if value is None and self.allow_none:
            return None
        if self.kind == "int":
            return validation.check_int(name, value, low=self.low)
        if self.kind == "real":
            return validation.check_real(name, value, low=self.low, high=self.high,
                                low_inclusive=self.low_inclusive)
        if self.kind == "bool":
            return validation.check_bool(name, value)
        if self.kind == "choice":
            return validation.check_choice(name, value, self.choices)
        return value

    def sklearn(self):
        """The same constraint in scikit-learn's types (``sklearn.utils._param_validation``)."""
        from sklearn.utils._param_validation import Interval, StrOptions

        if self.kind == "int":
            out = [Interval(Integral, self.low, None, closed="left")]
        elif self.kind == "real":
            closed = ("both" if self.low_inclusive else "right") if self.high is not None \
                else ("left" if self.low_inclusive else "neither")
            out = [Interval(Real, self.low, self.high, closed=closed)]
        elif self.kind == "bool":
            out = ["boolean"]
        elif self.kind == "choice":
            out = [StrOptions(set(self.choices))]
        else:
            out = [object]
        return out + list(self.extra) + ([None] if self.allow_none else [])


def _check_p(value):
    if value is None:
        return None
    if np.ndim(value) == 0:
        return validation.check_real("p", value, low=0.0)
    arr = validation.as_float_array("p", value, ndims=(1,))
    if np.any(arr <= 0):
        raise ValueError("p must be > 0 for every atom")
    return arr


def _check_tol(value):
    if isinstance(value, str):
        raise ValueError(
            f"tol must be a positive number or None, got {value!r} "
            "('auto' needs a batch of data; use streamsc.calibrate_tol and pass its result)"
        )
    return validation.check_real("tol", value, low=0.0, allow_none=True)


def _check_random_state(value):
    """None, a numpy RandomState or an int in ``[0, 2**32)`` (what seeds a RandomState)."""
    if value is None or isinstance(value, np.random.RandomState):
        return value
    if isinstance(value, Integral) and not isinstance(value, (bool, np.bool_)):
        seed = validation.check_int("random_state", value, low=0)
        if seed >= 2**32:
            raise ValueError(f"random_state must be < 2**32, got {seed}")
        return seed
    raise TypeError(
        "random_state must be None, an int or a numpy RandomState, "
        f"got {value!r} ({type(value).__name__})"
    )


_POSITIVE = Param("real", low=0.0)
_WEIGHT = Param("real", low=0.0, low_inclusive=True)

#: Every estimator's hyper-parameters, by name (a name means the same wherever it appears).
SCHEMA = {
    # the learner's (SparseCoder, the scikit-learn wrapper, a supervised model's coder)
    "n_components": Param("int", low=1),
    "loss": Param("choice", choices=validation.LOSSES),
    "prior": Param("choice", choices=validation.PRIORS),
    "lam": Param("real", low=0.0, allow_none=True),
    "p": Param("real", low=0.0, allow_none=True, check=_check_p, extra=("array-like",)),
    "signed": Param("bool"),
    "learning_rate": _POSITIVE,  # a supervised model's: its head's step, as positive
    "tol": Param("real", low=0.0, allow_none=True, check=_check_tol),
    "solver": Param("choice", choices=validation.SOLVERS, allow_none=True),
    "max_iter": Param("int", low=1, allow_none=True),
    "seed": Param("int", low=0, allow_none=True),
    "gradient": Param("choice", choices=validation.GRADIENTS),
    "encoder": Param("choice", choices=validation.ENCODERS),
    "unrolled_steps": Param("int", low=1),
    "basis_update": Param("choice", choices=validation.BASIS_UPDATES),
    # SparseCoder's own
    "mini_batch": Param("bool"),
    "n_threads": Param("int", low=1, allow_none=True),
    "basis": Param("any", allow_none=True),  # checked against n_components (_features)
    # the scikit-learn wrapper's own
    "n_epochs": Param("int", low=1),
    "shuffle": Param("bool"),
    "random_state": Param("any", check=_check_random_state),
    # a supervised model's head
    "l2": _WEIGHT,
    "backprop_weight": _WEIGHT,
    "reconstruction_weight": _WEIGHT,
    "raw_features": Param("bool"),
}

#: the parameters of the learner (:func:`check_params` -> :class:`Config`)
LEARNER_PARAMS = ("n_components", "loss", "prior", "lam", "p", "signed", "learning_rate",
                  "tol", "solver", "max_iter", "seed", "gradient", "encoder",
                  "unrolled_steps", "basis_update")


def _checker(name):
    param = SCHEMA[name]
    return lambda value: param(name, value)


#: One checker per learner hyper-parameter (from :data:`SCHEMA`): each takes the raw value
#: and returns the checked one or raises ``TypeError``/``ValueError`` naming the parameter.
PARAMETER_CONSTRAINTS = {name: _checker(name) for name in LEARNER_PARAMS}


def checkers(names):
    """``{name: checker}`` for the given parameters (an estimator's ``_parameter_constraints``)."""
    return {name: _checker(name) for name in names}


def validate(params):
    """The checked values of a dict of hyper-parameters (any names of :data:`SCHEMA`), in
    the dict's order; raises on the first bad one, or ``TypeError`` for an unknown name."""
    unknown = set(params) - set(SCHEMA)
    if unknown:
        raise TypeError(f"unknown parameter(s): {sorted(unknown)}")
    return {name: SCHEMA[name](name, value) for name, value in params.items()}


def sklearn_constraints(names):
    """``_parameter_constraints`` for scikit-learn's ``_validate_params``: the entries of
    :data:`SCHEMA` in scikit-learn's types (``Interval``, ``StrOptions``, ``"boolean"``,
    ``None``, ``"random_state"``...).

    Examples
    --------
    >>> from streamsc._params import sklearn_constraints
    >>> [str(c) for c in sklearn_constraints(["lam"])["lam"]]
    ['a float in the range (0.0, inf)', 'None']
    """
    out = {}
    for name in names:
        out[name] = ["random_state"] if name == "random_state" else SCHEMA[name].sklearn()
    return out


# ---------------------------------------------------------------------------------------
# the learner's resolved parameters
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class Config:
    """Resolved hyper-parameters of a :class:`~streamsc._learner.Learner` (``p`` an array
    of length k, ``tol`` a float, ``seed`` an int)."""

    n_components: int
    prior: str
    lam: float
    p: np.ndarray
    signed: bool
    learning_rate: float
    tol: float
    solver: str
    max_iter: int | None
    seed: int
    loss: str = "squared"
    gradient: str = "alternating"
    unrolled_steps: int = DEFAULT_UNROLLED_STEPS
    encoder: str = "exact"
    n_threads: int | None = None
    basis_update: str = "sgd"
    #: ``lam=None`` with the squared loss: lam is this times the mean norm of the first
    #: ``n_components`` examples learned (until then, this times 1); None: lam as given
    lam_per_norm: float | None = None
    #: ``tol=None``: tol follows lam (``default_tol``)
    tol_from_lam: bool = False

    @property
    def distribution(self):
        """Whether examples are coded as distributions (the loss record's softmax transfer:
        documents of counts), else as values (linear transfer)."""
        return LOSSES[self.loss].distribution


def _check_combination(loss, gradient, encoder, basis_update):
    """The parameters that exclude each other; returns the resolved ``basis_update``."""
    if gradient == "unrolled" and not LOSSES[loss].unrolled:
        raise ValueError(
            "gradient='unrolled' needs loss='squared' (the unrolled solvers are ISTA/FISTA "
            "and EGD on the squared loss); use gradient='implicit' or 'alternating'"
        )
    if encoder != "exact" and gradient == "unrolled":
        raise ValueError(
            f"encoder={encoder!r} learns from the exact codes, which gradient='unrolled' "
            "does not compute; use encoder='exact' or another gradient"
        )
    # the surrogate's closed-form atom update needs the linear transfer
    surrogate_ok = not LOSSES[loss].distribution and gradient != "unrolled"
    if basis_update == "auto":
        return "surrogate" if surrogate_ok else "sgd"
    if basis_update == "surrogate" and not surrogate_ok:
        raise ValueError(
            "basis_update='surrogate' (Mairal et al.'s online surrogate of the squared "
            "reconstruction loss) needs loss='squared' and a gradient other than 'unrolled', got "
            f"loss={loss!r}, gradient={gradient!r}; use basis_update='sgd' or 'auto'"
        )
    return basis_update


def check_params(params):
    """Check a dict of the learner's hyper-parameters (keys of :data:`LEARNER_PARAMS`, plus
    ``n_threads``) and resolve the defaults: ``lam=None`` -> :data:`DEFAULT_LAM` (KL loss: as
    it is; squared loss: of the prior, per unit of the data's norm, calibrated by the
    learner), ``p=None`` -> ``DEFAULT_P / k`` per atom, ``tol=None`` -> ``1e-6 * lam``,
    ``seed=None`` -> fresh entropy from the operating system (so an unseeded model is not
    reproducible, river's convention), ``loss`` absent -> ``"squared"``. ``loss="kl"`` needs
    ``prior="kl"``.

    Examples
    --------
    >>> from streamsc._params import check_params
    >>> cfg = check_params(dict(n_components=4, prior="kl", lam=0.1, p=None, signed=False,
    ...     learning_rate=0.1, tol=None, solver="newton", max_iter=None, seed=3))
    >>> cfg.p, cfg.tol
    (array([0.025, 0.025, 0.025, 0.025]), 1e-07)
    >>> check_params(dict(n_components=0))
    Traceback (most recent call last):
    ...
    ValueError: n_components must be >= 1, got 0
    """
    unknown = set(params) - set(LEARNER_PARAMS) - {"n_threads"}
    if unknown:
        raise TypeError(f"unknown parameter(s): {sorted(unknown)}")
    checked = validate(params)
    k = checked["n_components"]
    loss = checked.get("loss", "squared")
    lam_per_norm = None
    if checked["lam"] is not None:
        lam = checked["lam"]
    elif LOSSES[loss].distribution:  # documents are distributions: no scale to calibrate
        lam = DEFAULT_LAM_KL_LOSS
    else:
        lam = lam_per_norm = DEFAULT_LAM[checked["prior"]]
    validation.resolve_solver(None, loss, checked["prior"])  # loss="kl" needs prior="kl"
    gradient = checked.get("gradient", "alternating")
    encoder = checked.get("encoder", "exact")
    basis_update = _check_combination(loss, gradient, encoder,
                                      checked.get("basis_update", "auto"))
    seed = checked["seed"]
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1, np.uint64)[0])
    return Config(
        n_components=k,
        prior=checked["prior"],
        lam=lam,
        p=validation.resolve_p(DEFAULT_P / k if checked["p"] is None else checked["p"], k),
        signed=checked["signed"],
        learning_rate=checked["learning_rate"],
        tol=default_tol(lam) if checked["tol"] is None else checked["tol"],
        solver=validation.resolve_solver(checked["solver"], loss, checked["prior"]),
        max_iter=checked["max_iter"],
        seed=seed,
        loss=loss,
        gradient=gradient,
        unrolled_steps=checked.get("unrolled_steps", DEFAULT_UNROLLED_STEPS),
        encoder=encoder,
        n_threads=checked.get("n_threads"),
        basis_update=basis_update,
        lam_per_norm=lam_per_norm,
        tol_from_lam=checked["tol"] is None,
    )
