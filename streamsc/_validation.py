"""Argument checking shared by the functional API and every estimator.

Every check raises ``TypeError`` (wrong kind of value) or ``ValueError`` (right kind, bad
value) with a message naming the argument, before any state is touched.
"""

import numbers
import threading

import numpy as np

from . import _models

#: the choices of ``prior`` and ``loss``: the names of their records (:mod:`streamsc._models`)
PRIORS = tuple(_models.PRIORS)
LOSSES = tuple(_models.LOSSES)
SOLVERS = ("newton", "egd", "egd_diag")
GRADIENTS = ("alternating", "implicit", "unrolled")
ENCODERS = ("exact", "amortized", "warm_start")
BASIS_UPDATES = ("auto", "surrogate", "sgd")


def check_choice(name, value, choices):
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {choices}, got {value!r} ({type(value).__name__})")
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r} ({type(value).__name__})")
    return bool(value)


def check_real(name, value, *, low=None, high=None, low_inclusive=False, allow_none=False):
    """A finite real number, optionally bounded: ``low < value`` (or ``<=``) and ``value <= high``."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None:
        if low_inclusive and value < low:
            raise ValueError(f"{name} must be >= {low}, got {value!r}")
        if not low_inclusive and value <= low:
            raise ValueError(f"{name} must be > {low}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value!r}")
    return value


def check_int(name, value, *, low=None, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    return value


def as_float_array(name, X, *, ndims=(1, 2), dtype=np.float64):
    """A finite numeric array of one of the given numbers of dimensions, as a C-contiguous
    array of ``dtype`` (copied only when needed)."""
    try:
        arr = np.asarray(X)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be array-like of numbers: {exc}") from None
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise TypeError(f"{name} must contain real numbers, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must contain real numbers, got dtype {arr.dtype}")
    if arr.ndim not in ndims:
        want = " or ".join(f"{d}-D" for d in ndims)
        raise ValueError(f"{name} must be {want}, got an array of shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"{name} contains NaN or infinity (first at index {tuple(int(i) for i in bad)})"
        )
    return arr


#: the working precisions of :func:`streamsc.encode` (``dtype``)
FLOAT_DTYPES = (np.float64, np.float32)


def check_float_dtype(name, value):
    """``numpy.float64`` or ``numpy.float32`` (or a spelling ``np.dtype`` maps to one of them,
    like ``"float32"``), returned as the scalar type; anything else is a TypeError."""
    try:
        dt = None if value is None or isinstance(value, (bool, np.bool_)) else np.dtype(value)
    except TypeError:
        dt = None
    if dt is None or dt.type not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be numpy.float64 or numpy.float32, got {value!r}")
    return dt.type


def check_basis(B, *, dtype=np.float64, name="B", n_components=None):
    """The basis (called ``name``): a finite (m, k) array with no zero column, and
    ``n_components`` columns when that is given."""
    B = as_float_array(name, B, ndims=(2,), dtype=dtype)
    m, k = B.shape
    if n_components is not None and k != n_components:
        raise ValueError(
            f"{name} has {k} atoms (columns) but n_components is {n_components}"
        )
    if m < 1 or k < 1:
        raise ValueError(f"{name} must have at least one row and one column, got shape {B.shape}")
    norms = np.sqrt(np.einsum("ij,ij->j", B, B, dtype=np.float64))
    zero = np.flatnonzero(norms == 0.0)
    if zero.size:
        raise ValueError(
            f"{name} has a zero column (column {int(zero[0])}): every atom needs a direction")
    return B


def resolve_p(p, k, *, dtype=np.float64):
    """The KL prior mean as a length-k array. ``None`` means 1/k for every atom (the paper's
    uniform vector whose L1 mass is 1, the expected mass of a code of a unit-norm input)."""
    if p is None:
        return np.full(k, 1.0 / k, dtype=dtype)
    if np.ndim(p) == 0:
        value = check_real("p", p, low=0.0)
        return np.full(k, value, dtype=dtype)
    # a copy: the caller changing its array later must not change the model
    arr = np.array(as_float_array("p", p, ndims=(1,), dtype=dtype), copy=True)
    if arr.shape[0] != k:
        raise ValueError(f"p must be a scalar or have one entry per atom ({k}), got {arr.shape[0]}")
    if np.any(arr <= 0):
        raise ValueError("p must be > 0 for every atom")
    return arr


def check_x_matches(name, X, m):
    if X.shape[-1] != m:
        raise ValueError(
            f"{name} has {X.shape[-1]} features but the basis B has {m} rows (m): they must match"
        )


def resolve_solver(solver, loss, prior):
    """The KL-prior solver. ``None``: the paper's EGD for the squared loss (as fast as the dual
    Newton method or faster in most shapes and lam measured by ``benchmarks/encode.py``, and
    never far slower), Newton for the KL loss (where EGD needs thousands of steps). The KL
    loss needs the KL prior."""
    record = _models.get_loss(loss)
    if prior not in record.priors:
        needs = " or ".join(map(repr, record.priors))
        raise ValueError(f"loss={loss!r} needs prior={needs}, got prior={prior!r}")
    if solver is None:
        return record.default_solver
    return check_choice("solver", solver, SOLVERS)


def as_distribution(name, X):
    """Rows of non-negative counts (or weights) normalised to sum to one; a row that is
    negative somewhere or sums to zero is an error (the KL loss compares distributions)."""
    if np.any(X < 0):
        raise ValueError(f"{name} has negative entries: the KL loss needs non-negative counts")
    sums = X.sum(axis=-1, keepdims=True)
    if np.any(sums <= 0):
        raise ValueError(f"{name} has an all-zero row: the KL loss needs at least one count")
    return np.ascontiguousarray(X / sums)


#: locks shared out by :func:`model_lock`: a fixed pool, so models hold no lock of their own
#: (they pickle, deep-copy and clone as plain data) and two models rarely share one
_LOCKS = tuple(threading.RLock() for _ in range(64))


def equals_itself(value):
    """Whether ``value == value`` holds: not for NaN, ``pd.NA`` (its comparisons are NA, which
    has no truth value), ``NaT``, ``Decimal("NaN")`` and the like -- missing values, not
    labels or feature names."""
    try:
        return bool(value == value)
    except Exception:
        return False


def model_lock(model):
    """The lock that serialises the learning calls of ``model`` across threads: one of a
    fixed pool of re-entrant locks, chosen by the object's identity (stable for its
    lifetime). Nothing is stored on the model, so a refused call still changes nothing and a
    copy gets a lock of its own."""
    return _LOCKS[(id(model) >> 4) % len(_LOCKS)]
