"""The online basis learner: the one implementation of the paper's learning step.

Every estimator that learns a basis (the river :class:`~streamsc.SparseCoder`, the
scikit-learn :class:`~streamsc.sklearn.SparseCodingTransformer` and the supervised learners
built on them) keeps a :class:`Learner` and calls :meth:`Learner.learn` once per example:

1. the code of the example under the current basis, from :func:`streamsc.coding.solve`
   (warm-started from this example's previous code when the last call saw the same example);
2. one SGD step of eq. 7, ``B <- B - eta_t (f(B w) - x) w^T``, with
   ``eta_t = learning_rate / sqrt(t)``, then every column rescaled to unit norm
   (``streamsc._kernels.dictionary``). For ``loss="squared"`` (``f`` the identity) the step
   touches the rows the example observes; for ``loss="kl"`` (``f`` the softmax, ``x`` the
   document's word distribution) it touches every row: softmax couples them all, and a word
   missing from a document is a zero count.

The rest of this module is the shared policy around that step: parameter checking
(:data:`PARAMETER_CONSTRAINTS`, :func:`check_params`), how a feature name becomes a row of the
basis (:class:`Features`, :func:`init_rows`) and how a dict of features is checked
(:func:`check_features`). Everything here is plain Python and NumPy, so estimators holding
these objects pickle, deep-copy and clone.
"""

import copy
import dataclasses
import math
import numbers
import zlib

import numpy as np

from . import _validation as v
from ._kernels import dictionary as dict_kernels
from ._kernels import unrolled as unrolled_kernels
from .amortized import AmortizedEncoder
from .coding import _threads, default_tol, solve
from .differentiation import direction
from .unrolled import initial_step, unrolled_gradient

__all__ = [
    "PARAMETER_CONSTRAINTS",
    "Config",
    "Features",
    "Learner",
    "check_counts",
    "check_features",
    "check_params",
    "init_rows",
]


# ---------------------------------------------------------------------------------------
# parameters
# ---------------------------------------------------------------------------------------


def _check_p(value):
    if value is None:
        return None
    if np.ndim(value) == 0:
        return v.check_real("p", value, low=0.0)
    arr = v.as_float_array("p", value, ndims=(1,))
    if np.any(arr <= 0):
        raise ValueError("p must be > 0 for every atom")
    return arr


def _check_tol(value):
    if isinstance(value, str):
        raise ValueError(
            f"tol must be a positive number or None, got {value!r} "
            "('auto' needs a batch of data; use streamsc.calibrate_tol and pass its result)"
        )
    return v.check_real("tol", value, low=0.0, allow_none=True)


def _check_seed(value):
    return v.check_int("seed", value, low=0, allow_none=True)


#: One checker per hyper-parameter, shared by every estimator built on :class:`Learner`.
#: Each takes the raw value and returns the checked one or raises ``TypeError``/``ValueError``
#: naming the parameter.
PARAMETER_CONSTRAINTS = {
    "n_components": lambda value: v.check_int("n_components", value, low=1),
    "loss": lambda value: v.check_choice("loss", value, v.LOSSES),
    "prior": lambda value: v.check_choice("prior", value, v.PRIORS),
    "lam": lambda value: v.check_real("lam", value, low=0.0, allow_none=True),
    "p": _check_p,
    "signed": lambda value: v.check_bool("signed", value),
    "learning_rate": lambda value: v.check_real("learning_rate", value, low=0.0),
    "tol": _check_tol,
    "solver": lambda value: None if value is None else v.check_choice("solver", value, v.SOLVERS),
    "max_iter": lambda value: v.check_int("max_iter", value, low=1, allow_none=True),
    "seed": _check_seed,
    "gradient": lambda value: v.check_choice("gradient", value, v.GRADIENTS),
    "encoder": lambda value: v.check_choice("encoder", value, v.ENCODERS),
    "unrolled_steps": lambda value: v.check_int("unrolled_steps", value, low=1),
    "basis_update": lambda value: v.check_choice("basis_update", value, v.BASIS_UPDATES),
}


@dataclasses.dataclass(frozen=True, eq=False)
class Config:
    """Resolved hyper-parameters of a :class:`Learner` (``p`` an array of length k, ``tol``
    a float, ``seed`` an int)."""

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
    unrolled_steps: int = 10
    encoder: str = "exact"
    n_threads: int | None = None
    basis_update: str = "sgd"
    #: ``lam=None`` with the squared loss: lam is this times the mean norm of the first
    #: ``n_components`` examples learned (until then, this times 1); None: lam as given
    lam_per_norm: float | None = None
    #: ``tol=None``: tol follows lam (``default_tol``)
    tol_from_lam: bool = False


def check_params(params):
    """Check a dict of hyper-parameters (keys as in :data:`PARAMETER_CONSTRAINTS`) and
    resolve the defaults: ``lam=None`` -> :data:`DEFAULT_LAM` (KL loss: as it is; squared
    loss: of the prior, per unit of the data's norm, calibrated by the learner), ``p=None`` ->
    ``DEFAULT_P / k`` per atom, ``tol=None`` -> ``1e-6 * lam``,
    ``seed=None`` -> fresh entropy from the operating system (so an unseeded model is not
    reproducible, river's convention), ``loss`` absent -> ``"squared"``. ``loss="kl"`` needs
    ``prior="kl"``.

    Examples
    --------
    >>> from streamsc._online import check_params
    >>> cfg = check_params(dict(n_components=4, prior="kl", lam=0.1, p=None, signed=False,
    ...     learning_rate=0.1, tol=None, solver="newton", max_iter=None, seed=3))
    >>> cfg.p, cfg.tol
    (array([0.025, 0.025, 0.025, 0.025]), 1e-07)
    >>> check_params(dict(n_components=0))
    Traceback (most recent call last):
    ...
    ValueError: n_components must be >= 1, got 0
    """
    unknown = set(params) - set(PARAMETER_CONSTRAINTS)
    if unknown:
        raise TypeError(f"unknown parameter(s): {sorted(unknown)}")
    checked = {name: PARAMETER_CONSTRAINTS[name](value) for name, value in params.items()}
    k = checked["n_components"]
    loss = checked.get("loss", "squared")
    lam_per_norm = None
    if checked["lam"] is not None:
        lam = checked["lam"]
    elif loss == "kl":  # documents are distributions: no scale to calibrate
        lam = DEFAULT_LAM_KL_LOSS
    else:
        lam = lam_per_norm = DEFAULT_LAM[checked["prior"]]
    v.resolve_solver(None, loss, checked["prior"])  # loss="kl" needs prior="kl"
    gradient = checked.get("gradient", "alternating")
    if gradient == "unrolled" and loss == "kl":
        raise ValueError(
            "gradient='unrolled' needs loss='squared' (the unrolled solvers are ISTA/FISTA "
            "and EGD on the squared loss); use gradient='implicit' or 'alternating'"
        )
    encoder = checked.get("encoder", "exact")
    if encoder != "exact" and gradient == "unrolled":
        raise ValueError(
            f"encoder={encoder!r} learns from the exact codes, which gradient='unrolled' "
            "does not compute; use encoder='exact' or another gradient"
        )
    basis_update = checked.get("basis_update", "auto")
    surrogate_ok = loss == "squared" and gradient != "unrolled"
    if basis_update == "auto":
        basis_update = "surrogate" if surrogate_ok else "sgd"
    elif basis_update == "surrogate" and not surrogate_ok:
        raise ValueError(
            "basis_update='surrogate' (Mairal et al.'s online surrogate of the squared "
            "reconstruction loss) needs loss='squared' and a gradient other than 'unrolled', got "
            f"loss={loss!r}, gradient={gradient!r}; use basis_update='sgd' or 'auto'"
        )
    seed = checked["seed"]
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1, np.uint64)[0])
    return Config(
        n_components=k,
        prior=checked["prior"],
        lam=lam,
        p=v.resolve_p(DEFAULT_P / k if checked["p"] is None else checked["p"], k),
        signed=checked["signed"],
        learning_rate=checked["learning_rate"],
        tol=default_tol(lam) if checked["tol"] is None else checked["tol"],
        solver=v.resolve_solver(checked["solver"], loss, checked["prior"]),
        max_iter=checked["max_iter"],
        seed=seed,
        loss=loss,
        gradient=gradient,
        unrolled_steps=checked.get("unrolled_steps", 10),
        encoder=encoder,
        basis_update=basis_update,
        lam_per_norm=lam_per_norm,
        tol_from_lam=checked["tol"] is None,
    )


def check_basis(basis, n_components):
    """A starting basis given as a DataFrame (index: feature names, one column per atom) or
    a 2-D array (features named 0, 1, ...): returns ``(names, array)``."""
    import pandas as pd

    if isinstance(basis, pd.DataFrame):
        names = list(basis.index)
        if len(set(names)) != len(names):
            raise ValueError("basis has duplicate feature names in its index")
        values = basis.to_numpy()
    else:
        values = basis
        names = None
    arr = v.as_float_array("basis", values, ndims=(2,))
    if arr.shape[1] != n_components:
        raise ValueError(
            f"basis has {arr.shape[1]} atoms (columns) but n_components is {n_components}"
        )
    if arr.shape[0] == 0 or np.any(np.einsum("ij,ij->j", arr, arr) == 0.0):
        raise ValueError("basis must have at least one row and no all-zero atom")
    if names is None:
        names = list(range(arr.shape[0]))
    return names, arr


# ---------------------------------------------------------------------------------------
# feature names -> rows of the basis
# ---------------------------------------------------------------------------------------


def _token(name):
    """A string that identifies a feature name across runs and processes (``hash`` is
    salted): equal dict keys (``3``, ``3.0``, ``np.int64(3)``, ``True == 1``) share a token,
    ``3`` and ``"3"`` do not."""
    if isinstance(name, str):
        return "s:" + name
    if isinstance(name, (numbers.Integral, np.bool_)):
        return "n:" + repr(int(name))
    if isinstance(name, numbers.Real) and float(name).is_integer():
        return "n:" + repr(int(name))
    if isinstance(name, numbers.Real):
        return "n:" + repr(float(name))
    return "o:" + repr(name)


def _sort_key(name):
    """Canonical row order: numbers by value, then strings, then anything else by repr."""
    if isinstance(name, (numbers.Real, np.bool_)) and not math.isnan(float(name)):
        return (0, float(name), "")
    if isinstance(name, str):
        return (1, 0.0, name)
    return (2, 0.0, _token(name))


def init_rows(names, k, seed, scale=1.0):
    """Initial basis rows for the given feature names: row i is
    ``scale * standard_normal(k)`` drawn from a generator seeded with
    ``(seed, crc32(name))``, so a feature's row depends on the seed and its name only, not on
    when or in which order it arrived.

    Examples
    --------
    >>> from streamsc._online import init_rows
    >>> a = init_rows(["x", "y"], 3, seed=0)
    >>> b = init_rows(["y", "x"], 3, seed=0)
    >>> bool((a[0] == b[1]).all()), a.shape
    (True, (2, 3))
    """
    out = np.empty((len(names), k))
    for i, name in enumerate(names):
        crc = zlib.crc32(_token(name).encode("utf-8"))
        out[i] = np.random.default_rng([seed, crc]).standard_normal(k)
    out *= scale
    return out


class Features:
    """Feature names known to a model, kept in a canonical order (:func:`_sort_key`) so that
    the rows of the basis, hence every floating-point sum, do not depend on the order in
    which names arrived or the order of keys in a dict."""

    def __init__(self):
        self.names = []
        self.index = {}

    def __len__(self):
        return len(self.names)

    def new_names(self, keys):
        """The keys not yet known, in canonical order."""
        index = self.index
        new = [key for key in keys if key not in index]
        new.sort(key=_sort_key)
        return new

    def add(self, new):
        """Add names (not yet known); returns ``(old_pos, new_pos)``: the new row index of
        every existing row and of every added name."""
        old = self.names
        merged = sorted(old + list(new), key=_sort_key)  # stable: ties keep arrival order
        index = {name: i for i, name in enumerate(merged)}
        old_pos = np.array([index[name] for name in old], dtype=np.int64)
        new_pos = np.array([index[name] for name in new], dtype=np.int64)
        self.names = merged
        self.index = index
        return old_pos, new_pos

    def dense(self, keys, values):
        """The example as a vector over every known feature (unknown keys dropped, missing
        ones zero): the KL loss's view of a document, where a missing word is a zero count.
        Allocates one length-m vector."""
        index = self.index
        x = np.zeros(len(self.names))
        for key, value in zip(keys, values.tolist()):
            i = index.get(key)
            if i is not None:
                x[i] = value
        return x

    def gather(self, keys, values):
        """Rows of the known keys among ``keys`` (with their ``values``), sorted by row.
        Returns ``(rows, x)`` with ``rows=None`` when every known feature is present (the whole
        basis is used as is). Unknown keys are dropped."""
        index = self.index
        m = len(self.names)
        if len(keys) == m:  # the common case: every known feature, maybe in another order
            try:
                rows = np.fromiter(map(index.__getitem__, keys), dtype=np.int64, count=m)
            except KeyError:
                pass
            else:
                x = np.empty(m)
                x[rows] = values
                return None, x
        rows = []
        vals = []
        for key, value in zip(keys, values):
            i = index.get(key)
            if i is not None:
                rows.append(i)
                vals.append(value)
        rows = np.array(rows, dtype=np.int64)
        vals = np.array(vals, dtype=np.float64)
        if rows.size == m:
            x = np.empty(m)
            x[rows] = vals
            return None, x
        order = np.argsort(rows, kind="stable")
        return np.ascontiguousarray(rows[order]), np.ascontiguousarray(vals[order])


#: largest entry change of one SGD step allowed before an example is rejected as too large
#: (the basis has unit-norm columns; beyond this the column sums of squares could overflow)
_MAX_STEP = 1e150

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

#: basis_update="sgd": an atom's sum of squared gradients counts as at least this fraction
#: of the largest atom's in its AdaGrad step
ADAGRAD_FLOOR = 1e-4

#: an example joins the atoms taken from data unless within this |cosine| of one of them
DISTINCT_COS = 0.99
#: weight of example t in the surrogate's statistics: t + SURROGATE_T0 * k
SURROGATE_T0 = 1.0
#: atoms one surrogate step updates: |w_j| >= ACTIVE_FRACTION * max|w| (at most
#: MAX_ACTIVE of them) plus ROUND_ROBIN more in turn
ACTIVE_FRACTION = 0.05
MAX_ACTIVE = 32
ROUND_ROBIN = 2
#: every REPLACE_EVERY examples (after REPLACE_AFTER * k), the least used atom is replaced
#: if its usage is below DEAD_FRACTION of the mean
REPLACE_EVERY = 16
REPLACE_AFTER = 2
DEAD_FRACTION = 1e-2
#: every k examples, the less used of the two most similar atoms is replaced if their
#: |cosine| is above DUPLICATE_COS
DUPLICATE_COS = 0.9

_FAST_TYPES = frozenset([float, int, np.float64, np.float32, np.int64, np.int32])
#: feature names that need no check (they always equal themselves)
_FAST_KEY_TYPES = frozenset([str, int])
#: numpy's time types are integers to ``numbers`` but are not quantities
_TIME_TYPES = (np.timedelta64, np.datetime64)


def _short(value):
    """repr of a value, cut short (an int of 10**400 has 401 digits)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:30] + "..." + f" ({len(text)} characters)"


def _check_encodable(keys, name):
    """Feature names that are strings must be valid Unicode text: a lone surrogate
    (``"\ud800"``) cannot be written as UTF-8, so neither a DataFrame index (``basis_``) nor
    a model file could hold it."""
    for key in keys:
        if isinstance(key, str):
            try:
                key.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ValueError(
                    f"{name} has the feature name {key!r}, which is not valid Unicode text "
                    f"({exc.reason} at position {exc.start}): a feature name must encode as "
                    "UTF-8. The model is unchanged"
                ) from None


def check_feature_name(key, name="x"):
    """A feature name must equal itself: NaN (a new ``float("nan")`` is a new dict key every
    time, so each would add a basis row), ``pd.NA``, ``NaT`` and the like are refused with a
    ``ValueError``."""
    if isinstance(key, str):
        _check_encodable([key], name)
        return
    try:
        same = bool(key == key)
    except Exception:  # pd.NA: its comparisons are NA, which has no truth value
        same = False
    if not same:
        raise ValueError(
            f"{name} has the feature name {key!r}, which does not equal itself (NaN, NA or "
            "NaT): a feature name must be a usable dict key. The model is unchanged"
        )


def check_features(x, name="x"):
    """Check one example given as a dict of numbers; returns ``(keys, values)`` with values a
    float64 array. Raises ``TypeError`` for a non-dict or a non-numeric value and
    ``ValueError`` for NaN or infinity, naming the feature.

    Examples
    --------
    >>> from streamsc._online import check_features
    >>> check_features({"a": 1, "b": 2.5})
    (['a', 'b'], array([1. , 2.5]))
    >>> check_features({"a": float("nan")})
    Traceback (most recent call last):
    ...
    ValueError: x['a'] is nan: every feature value must be finite
    """
    if not isinstance(x, dict):
        raise TypeError(
            f"{name} must be a dict mapping feature names to numbers, got {type(x).__name__}"
        )
    keys = list(x)
    raw = list(x.values())
    key_types = set(map(type, keys))
    if not _FAST_KEY_TYPES.issuperset(key_types):
        for key in keys:
            check_feature_name(key, name)
    elif str in key_types:
        text = "".join(keys) if int not in key_types else "".join(
            key for key in keys if type(key) is str)
        if not text.isascii():
            _check_encodable(keys, name)
    if not _FAST_TYPES.issuperset(map(type, raw)):
        for key, value in zip(keys, raw):
            if isinstance(value, (bool, np.bool_)):
                continue
            if not isinstance(value, numbers.Real) or isinstance(value, _TIME_TYPES):
                raise TypeError(
                    f"{name}[{key!r}] must be a real number, got {value!r} "
                    f"({type(value).__name__})"
                )
    try:
        values = np.array(raw, dtype=np.float64) if raw else np.empty(0)
    except OverflowError:  # an int or Fraction beyond the largest float
        for key, value in zip(keys, raw):
            try:
                float(value)
            except OverflowError:
                raise ValueError(
                    f"{name}[{key!r}] is too large to be a float ({_short(value)}): every "
                    "feature value must be a finite float. The model is unchanged"
                ) from None
        raise
    if not np.isfinite(values).all():
        bad = int(np.flatnonzero(~np.isfinite(values))[0])
        raise ValueError(
            f"{name}[{keys[bad]!r}] is {raw[bad]!r}: every feature value must be finite"
        )
    return keys, values


def check_counts(keys, values, name="x", learning=False):
    """For ``loss="kl"``: the values of a document (``keys``/``values`` from
    :func:`check_features`) must be non-negative counts or weights, and a document learned
    from needs at least one positive count. Raises ``ValueError`` naming the problem.

    Examples
    --------
    >>> import numpy as np
    >>> from streamsc._online import check_counts
    >>> check_counts(["a", "b"], np.array([2.0, -1.0]))
    Traceback (most recent call last):
    ...
    ValueError: x['b'] is -1.0: loss='kl' needs non-negative counts
    >>> check_counts(["a"], np.array([0.0]), learning=True)
    Traceback (most recent call last):
    ...
    ValueError: x is an empty document (no positive count): loss='kl' learns from the document's word distribution, which needs at least one count
    """
    neg = values < 0
    if neg.any():
        i = int(np.flatnonzero(neg)[0])
        raise ValueError(
            f"{name}[{keys[i]!r}] is {float(values[i])!r}: loss='kl' needs non-negative counts"
        )
    if learning and not (values > 0).any():
        raise ValueError(
            f"{name} is an empty document (no positive count): loss='kl' learns from the "
            "document's word distribution, which needs at least one count"
        )


# ---------------------------------------------------------------------------------------
# the learner
# ---------------------------------------------------------------------------------------


def _norm(x):
    """The L2 norm of a vector without overflow for entries up to the largest float."""
    top = float(np.abs(x).max(initial=0.0))
    if not (top > 0.0 and math.isfinite(top)):
        return top
    y = x / top
    return top * math.sqrt(float(np.dot(y, y)))


def _row_norms(X):
    """L2 norm of every row of a batch (an overflowing norm is inf, which tol_for treats
    like a small one: such examples are rejected or coded at the base tolerance)."""
    with np.errstate(over="ignore"):
        return np.sqrt(np.einsum("ij,ij->i", X, X))


class Learner:
    """The basis and the step counter of an online sparse coder, plus its last code.

    ``B`` (m, k) grows a row per feature (:meth:`grow`); :meth:`learn` codes one example and
    takes one SGD step; :meth:`code` and :meth:`code_batch` only code. An example is given as
    ``(rows, x)``: the sorted rows of B it observes (``None``: all of them) and its values on
    those rows; rows it does not observe take no part in its code or its gradient step.

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
        self.encoder = self._new_encoder()
        self.norm_sum = 0.0  # lam_per_norm: norms of the examples learned so far (the first k)
        self.n_norms = 0
        self.n_data_atoms = 0  # atoms set from the first distinct examples (then k: done)
        self.seen = 0  # examples that went into the running statistics below
        self.usage = np.zeros(k)  # sum of c_t w_j^2: which atoms the codes use
        self.G = np.zeros(k)  # basis_update="sgd": per-atom sums of squared gradients
        if config.basis_update == "surrogate":
            self.A = np.zeros((k, k))  # sum of c_t w w^T
            self.S = np.zeros((0, k))  # sum of c_t x w^T
        else:
            self.A = self.S = None
        self.cursor = 0  # round robin over the atoms the surrogate updates unasked
        self.candidate = None  # (score, rows, residual): worst-reconstructed recent example
        self.n_replaced = 0

    @property
    def m(self):
        return self.B.shape[0]

    def _new_encoder(self):
        cfg = self.config
        if cfg.encoder == "exact":
            return None
        return AmortizedEncoder(cfg.n_components, prior=cfg.prior, signed=cfg.signed,
                                lam=cfg.lam, p=cfg.p.copy())  # own state: no shared arrays

    def _calibrate(self, x):
        """``lam=None`` (squared loss): add the norm of x to the first k examples' and, at
        the k-th, set ``lam`` (and a default ``tol``) to ``lam_per_norm`` times their mean
        norm; an amortised encoder restarts from the basis with that lam."""
        cfg = self.config
        norm = _norm(x)
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
            self.encoder = self._new_encoder()
            self.encoder.init_from_basis(self.B)

    def snapshot(self):
        """A copy of the learner's whole mutable state, for :meth:`restore`."""
        return copy.deepcopy(self.__dict__)

    def restore(self, state):
        """Put back a state taken by :meth:`snapshot` (which stays usable)."""
        self.__dict__.update(copy.deepcopy(state))

    def start_from(self, positions, rows):
        """Use ``rows`` (placed at ``positions``) as the basis, columns rescaled to unit norm.
        A given basis is not replaced by data: its atoms count as set."""
        B = np.empty_like(rows)
        B[positions] = rows
        dict_kernels.normalise_columns(B, np.empty(B.shape[1]))
        self.B = B
        if self.S is not None:
            self.S = np.zeros_like(B)
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

    def _lookup(self, rows, x):
        c = self.cache
        if c is None:
            return None
        c_rows, c_x, code, version = c
        if (c_rows is None) != (rows is None):
            return None
        if rows is not None and not np.array_equal(rows, c_rows):
            return None
        if not np.array_equal(x, c_x):
            return None
        return code, version

    def tol_for(self, norms):
        """The stopping threshold for examples of the given L2 norms: ``tol`` up to norm 2,
        then ``tol * 2**floor(log2(norm))``. The optimality violation is in the units of x,
        so this keeps the relative accuracy of a code, and the solver's work, independent of
        the scale of the data; powers of two make the threshold of an example the same
        whether it is coded alone or in a batch (unless its norm rounds differently across
        an exact power of two)."""
        exponent = np.maximum(np.frexp(np.asarray(norms, dtype=np.float64))[1] - 1, 0)
        return self.config.tol * np.ldexp(1.0, exponent)

    def _solve(self, rows, X, tol, init=None):
        """Codes of the rows of X (all solved to the same ``tol``). A warm start is only a
        hint: if the solver fails from it (a far-off dual point after the basis moved a lot
        can stall the dual Newton method or make its system singular) it restarts cold."""
        cfg = self.config
        Bo = self.B if rows is None else np.ascontiguousarray(self.B[rows])
        kw = dict(loss=cfg.loss, prior=cfg.prior, lam=cfg.lam, p=cfg.p, signed=cfg.signed,
                  tol=float(tol), solver=cfg.solver, max_iter=cfg.max_iter)
        W = None
        if init is not None:
            try:
                W, _, _, viol = solve(X, Bo, init=init, n_threads=cfg.n_threads, **kw)
                if not ((viol <= tol).all() and np.isfinite(W).all()):
                    W = None
            except np.linalg.LinAlgError:
                W = None
        if W is None:
            W = solve(X, Bo, init=None, n_threads=cfg.n_threads, **kw)[0]
        if not np.isfinite(W).all():  # never store a non-finite code or step on one
            raise ValueError(
                f"the sparse code is not finite (largest |x| is {np.abs(X).max():.3g}): "
                "scale the features. The model is unchanged"
            )
        return W

    def _code_one(self, rows, x):
        """(code, fresh): the code of one example under the current B; fresh=False when it
        came from the cache."""
        hit = self._lookup(rows, x)
        if hit is not None and hit[1] == self.version:
            return hit[0], False
        if hit is not None:
            init = hit[0][None, :]
        elif self.encoder is not None:  # the amortised code as the warm start
            init = self.encoder.predict(x, rows)[None, :]
        else:
            init = None
        with np.errstate(over="ignore"):  # an overflowing norm (inf) just means tol
            norm = math.sqrt(float(np.dot(x, x)))
        tol = self.config.tol * 2.0 ** max(math.frexp(norm)[1] - 1, 0)  # tol_for, one row
        return self._solve(rows, x[None, :], tol, init)[0], True

    def as_learned(self, x):
        """An example as the basis steps see it: x, or its distribution (KL loss; raises on
        an empty document)."""
        if self.config.loss != "kl":
            return x
        x = self._distribution(x)
        if x is None:
            raise ValueError("x is an empty document (no positive count): nothing to learn")
        return x

    def _distribution(self, x):
        """``loss="kl"``: the document x as a distribution (a new array), None if empty."""
        total = float(x.sum())
        if not total > 0.0:
            return None
        return x / total

    def code(self, rows, x):
        """The code of one example (a new array). An example with no known feature codes to
        zeros: it carries no information (so does a document with no count, for KL)."""
        k = self.config.n_components
        if self.m == 0 or (rows is not None and rows.size == 0):
            return np.zeros(k)
        if self.config.loss == "kl":
            x = self._distribution(x)
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
        if self.config.loss == "kl":
            totals = X.sum(axis=1)
            full = np.flatnonzero(totals > 0.0)
            if full.size < n:  # documents with no count code to zeros
                W = np.zeros((n, k))
                if full.size:
                    W[full] = self.code_batch(rows, X[full])
                return W
            X = X / totals[:, None]
        return self._code_rows(rows, X)

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
        tols = self.tol_for(_row_norms(X))
        groups = np.unique(tols)
        if groups.size == 1:
            return self._solve(rows, X, groups[0], init)
        W = np.empty((n, k))
        for tol in groups:
            sel = np.flatnonzero(tols == tol)
            W[sel] = self._solve(rows, np.ascontiguousarray(X[sel]), tol,
                                 None if init is None else init[sel])
        return W

    def learn(self, rows, x):
        """Learn from one example: while atoms are still unset, the example becomes the next
        one (:meth:`_init_atom`); after that, code it and take one basis step along the
        gradient chosen by ``config.gradient`` (below), by the online surrogate or SGD
        (``config.basis_update``, :meth:`_surrogate_step`, :meth:`rank2_step`). Returns the
        code the step used (under the basis before the step; zeros for an example that set an
        atom) and the example's loss under that basis and code (squared loss, or KL
        divergence of the document's distribution from its reconstruction). An empty
        document (KL) raises ``ValueError`` before anything changes.

        * ``"alternating"``: eq. 7, ``(f(B w) - x) w^T`` at the exact code (the paper's
          step: the code is held fixed, as in alternating minimisation);
        * ``"implicit"``: the total derivative of the reconstruction loss through the exact
          code ``w(B)``: eq. 7 plus the implicit term of :meth:`rank2_step` with
          ``g = dloss/dw = B^T (f(B w) - x)``;
        * ``"unrolled"``: the derivative of ``1/2 ||x - B w_T(B)||^2`` through
          ``unrolled_steps`` iterations of ISTA (L1, L2) or fixed-step EGD (KL) from a cold
          start (PUDLE; :func:`streamsc.unrolled.unrolled_gradient`); the exact code is not
          computed, the step uses and returns ``w_T``.
        """
        k = self.config.n_components
        if self.m == 0 or (rows is not None and rows.size == 0):
            return np.zeros(k), 0.0
        if self.config.loss == "kl":
            x = self._distribution(x)
            if x is None:
                raise ValueError("x is an empty document (no positive count): nothing to learn")
        loss = self.initial_atom(rows, x)
        out = (np.zeros(k), loss) if loss is not None else self._learn(rows, x)
        self.count_scale(x)
        return out

    def initial_atom(self, rows, x):
        """While atoms are unset (the first examples, labelled or not), x (a distribution for
        the KL loss) becomes the next one (:meth:`_init_atom`); returns its loss, or None if
        it did not (the example then takes a basis step)."""
        if self.n_data_atoms < self.config.n_components:
            return self._init_atom(rows, x)
        return None

    def count_scale(self, x):
        """After an example's step (a refused example counts not): its norm joins the
        calibration of ``lam=None`` (:meth:`_calibrate`), while that is under way."""
        if self.config.lam_per_norm is not None:
            self._calibrate(x)

    def _learn(self, rows, x):
        """The basis step of :meth:`learn`, once the atoms are set."""
        if self.config.gradient == "unrolled":
            return self.unrolled_step(rows, x, None, None, 0.0, 1.0)
        code, _ = self._code_one(rows, x)
        vdir = Bv = None
        if self.config.gradient == "implicit":  # the reconstruction loss through the code
            _, g, _ = self._residual(rows, x, code)
            Bo = self.B if rows is None else np.ascontiguousarray(self.B[rows])
            vdir, Bv = self.direction(Bo, code, Bo.T @ g)
        return code.copy(), self._step(rows, x, code, vdir, Bv, 1.0, 1.0)

    # -- atoms from data, and replacing atoms no code uses -----------------------------

    def _atom_from(self, rows, x):
        """The unit vector an example would make as an atom, over the rows it observes:
        x itself (squared loss) or the centred log of its smoothed distribution (KL loss:
        an atom lives in logit space). None for an example with no direction."""
        if self.config.loss == "kl":
            a = np.log(x + 1.0 / x.size)
            a -= a.mean()
        else:
            a = np.array(x, dtype=np.float64)
        norm = _norm(a)
        if not (norm > 0.0 and math.isfinite(norm)):
            return None
        return a / norm

    def _set_atom(self, j, rows, a):
        """Atom j becomes ``a`` on ``rows`` (None: all); its other rows keep their direction
        and their share of the norm; the atom is then rescaled to unit norm."""
        col = self.B[:, j].copy()
        if rows is None:
            col[:] = a
        else:
            share = float(np.sqrt(np.dot(col[rows], col[rows])))
            col[rows] = a * (share if share > 0.0 else 1.0)
        norm = float(np.sqrt(np.dot(col, col)))
        self.B[:, j] = col / norm

    def _init_atom(self, rows, x):
        """While atoms are unset (the first examples), the example x becomes the next atom
        unless it has no direction or is within ``DISTINCT_COS`` of an atom already taken
        from the data. Returns the example's loss under the zero code (nothing was coded),
        or None if x was not taken (it is then learned from as usual)."""
        a = self._atom_from(rows, x)
        if a is None:
            return None
        j = self.n_data_atoms
        if j:
            Bo = self.B[:, :j] if rows is None else self.B[rows, :j]
            with np.errstate(divide="ignore", invalid="ignore"):
                cos = np.abs(a @ Bo) / np.sqrt(np.einsum("ij,ij->j", Bo, Bo))
            if np.nanmax(cos) > DISTINCT_COS:
                return None
        self._set_atom(j, rows, a)
        self.n_data_atoms = j + 1
        self.t += 1
        self.version += 1
        if self.encoder is not None:
            self.encoder.init_from_basis(self.B)
        if self.config.loss != "squared":
            return 0.0
        with np.errstate(over="ignore"):  # the loss of a huge example is inf
            return 0.5 * float(np.dot(x, x))

    def _track(self, rows, x, resid, usage, n=1):
        """After a step on ``n`` examples: add their ``usage`` (``c_t w_j^2`` summed) to the
        atoms', keep x (with its residual ``resid`` on ``rows``) if it is the worst
        reconstructed since the last check, and every ``REPLACE_EVERY`` examples replace the
        least used atom, if the codes have all but stopped using it (usage below
        ``DEAD_FRACTION`` of the mean), by that example's residual direction."""
        self.usage += usage
        before = self.seen
        self.seen += n
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            score = float(np.dot(resid, resid) / np.dot(x, x))
        if math.isfinite(score) and (self.candidate is None or score > self.candidate[0]):
            self.candidate = (score, None if rows is None else rows.copy(), resid.copy())
        k = self.config.n_components
        dead_check = before // REPLACE_EVERY != self.seen // REPLACE_EVERY
        duplicate_check = before // k != self.seen // k
        if not (dead_check or duplicate_check) or self.seen < REPLACE_AFTER * k \
                or self.candidate is None:
            return
        j = int(np.argmin(self.usage))
        if not self.usage[j] < DEAD_FRACTION * self.usage.mean():
            j = None
            if duplicate_check:  # every k examples: atoms that duplicate others
                C = np.abs(self.B.T @ self.B)
                np.fill_diagonal(C, 0.0)
                a, b = np.unravel_index(int(np.argmax(C)), C.shape)
                if C[a, b] > DUPLICATE_COS:
                    j = int(a if self.usage[a] < self.usage[b] else b)
        if j is None:
            self.candidate = None
            return
        _, c_rows, resid = self.candidate
        self.candidate = None
        a = resid  # x - f(B w): towards what the codes miss (in logit space for KL)
        norm = float(np.sqrt(np.dot(a, a)))
        if not norm > 0.0:
            return
        if self.A is not None:  # the surrogate forgets atom j
            self.S[:, j] = 0.0
            self.A[j, :] = 0.0
            self.A[:, j] = 0.0
        col = np.zeros(self.m)
        col[slice(None) if c_rows is None else c_rows] = a / norm
        self.B[:, j] = col
        self.usage[j] = self.usage.mean()  # a grace period before it can be replaced again
        self.G[j] = 0.0
        self.n_replaced += 1

    # -- the two basis updates ----------------------------------------------------------

    def _weight(self):
        """c_t, the weight of the next example in the running statistics: ``t + t0``, t the
        examples so far, ``t0 = SURROGATE_T0`` times k. Weights growing linearly with t
        forget the early examples, coded under an early basis (Mairal et al. 2010, sec. 3.4;
        scikit-learn's MiniBatchDictionaryLearning weighs samples the same way)."""
        return float(self.seen + SURROGATE_T0 * self.config.n_components)

    def _surrogate_atoms(self, code):
        """The atoms one surrogate step updates: those the code uses (|w_j| at least
        ``ACTIVE_FRACTION`` of the largest, at most ``MAX_ACTIVE``, largest first) and
        ``ROUND_ROBIN`` more in turn, so every atom's statistics are used in time."""
        k = code.shape[0]
        mag = np.abs(code)
        top = float(mag.max(initial=0.0))
        active = np.flatnonzero(mag >= ACTIVE_FRACTION * top) if top > 0 else np.empty(0, int)
        if active.size > MAX_ACTIVE:
            active = active[np.argsort(-mag[active], kind="stable")[:MAX_ACTIVE]]
        extra = (self.cursor + np.arange(min(ROUND_ROBIN, k))) % k
        self.cursor = int((self.cursor + ROUND_ROBIN) % k)
        atoms = np.concatenate([active, np.setdiff1d(extra, active)])
        return np.ascontiguousarray(atoms, dtype=np.int64)

    def _surrogate_step(self, rows, x, code, weight=1.0, then=None):
        """``basis_update="surrogate"``: add the example to the running statistics ``A`` and
        ``S`` with weight ``weight * c_t``, then block-coordinate descent on the surrogate
        over the atoms :meth:`_surrogate_atoms` picks (``_kernels.dictionary``). No step
        size: the minimiser of each atom's quadratic is scale-free. ``then``: a step to apply
        after it (a supervised step's backprop part, checked by the caller). Raises before
        changing anything if the statistics would not be finite. Returns the example's
        loss."""
        r, g, loss = self._residual(rows, x, code)
        c = weight * self._weight()
        with np.errstate(over="ignore", invalid="ignore"):
            self._check_step(loss, np.abs(g).max(initial=0.0) * np.abs(code).max(initial=0.0))
        if self.encoder is not None:
            self.encoder.update(x, code, rows)
        if c > 0.0:
            dict_kernels.surrogate_accumulate(self.A, self.S, self.B, r, x, code, c,
                                              np.empty(self.m))
            dict_kernels.surrogate_atoms(self.B, self.S, self.A, self._surrogate_atoms(code),
                                         0.0, np.empty(self.m))
        if then is not None:
            then()
        self._track(rows, x, -g, c * code * code)
        self._stepped(rows, x, code)
        return float(loss)

    def _sgd_scale(self, colsq):
        """``basis_update="sgd"``: the per-atom step ``learning_rate / sqrt(G_j)`` after adding
        this step's squared column norms ``colsq`` of the gradient to ``G`` (AdaGrad over
        atoms: the step has the units of an atom whatever the scale of the data and the
        codes, and decays as one over the square root of the atom's use). ``G_j`` is floored
        at ``ADAGRAD_FLOOR`` times the largest, so an atom's first, tiny gradient is not
        blown up to a full step. Returns the new ``G`` (not stored) and the scales (zero
        while no atom has a gradient)."""
        G = self.G + colsq
        floor = ADAGRAD_FLOOR * float(G.max(initial=0.0))
        if not floor > 0.0:
            return G, np.zeros_like(G)
        return G, self.config.learning_rate / np.sqrt(np.maximum(G, floor))

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
        if cfg.loss == "kl":
            totals = X.sum(axis=1)
            if not (totals > 0.0).all():
                raise ValueError("X has an empty document (no positive count): nothing to learn")
            X = X / totals[:, None]
        self._learn_batch(rows, X)
        for x in X:  # after the step: a refused frame counts not
            if self.config.lam_per_norm is None:
                break
            self.count_scale(x)

    def _learn_batch(self, rows, X):
        """:meth:`learn_batch` of checked rows (distributions, for the KL loss)."""
        cfg = self.config
        k = cfg.n_components
        n = X.shape[0]
        if self.n_data_atoms < k:
            used = 0
            while used < n and self.n_data_atoms < k:
                self._init_atom(rows, X[used])
                used += 1
            X = np.ascontiguousarray(X[used:])
            n = X.shape[0]
            if n == 0:
                return
        # the whole step with BLAS on one thread, not only the codes: a multi-threaded BLAS
        # product between two of numba's parallel regions has its threads contend with
        # numba's for the cores (2 numba threads were slower than 1)
        with _threads(cfg.n_threads, n):
            W = self._code_rows(rows, X)
            Bo = self.B if rows is None else self.B[rows]
            Z = W @ Bo.T
            if cfg.loss == "kl":
                Z = np.exp(Z - Z.max(axis=1, keepdims=True))
                Z /= Z.sum(axis=1, keepdims=True)
            c = self._weight()
            with np.errstate(over="ignore", invalid="ignore"):  # checked just below
                R = Z - X
                G = np.ascontiguousarray(R.T @ W) / n
                loss = float(np.sum(R * R))
                if cfg.basis_update == "surrogate":
                    size = np.abs(G).max()
                else:
                    Gsum, scale = self._sgd_scale(np.einsum("ij,ij->j", G, G))
                    size = float((np.abs(G) * scale).max())
            self._check_step(loss, size)
            if self.encoder is not None:  # trained on the exact codes, row by row
                for i in range(n):
                    self.encoder.update(X[i], W[i], rows)
            r = np.arange(self.m) if rows is None else rows
            if cfg.basis_update == "surrogate":
                AW = (c / n) * (W.T @ W)
                self.A += AW
                self.S[r] += (c / n) * (X.T @ W)
                if rows is not None:  # unobserved rows: imputed by their reconstruction
                    others = np.setdiff1d(np.arange(self.m), rows)
                    self.S[others] += self.B[others] @ AW
                dict_kernels.surrogate_atoms(self.B, self.S, self.A, np.arange(k), 0.0,
                                             np.empty(self.m))
            else:
                self.G = Gsum
                dict_kernels.dense_update(self.B, r, np.ascontiguousarray(G * scale),
                                          np.zeros(r.size), np.zeros(k), 1.0, np.empty(k))
            worst = int(np.argmax(np.einsum("ij,ij->i", R, R)))
            self._track(rows, X[worst], -R[worst], (c / n) * np.einsum("ij,ij->j", W, W), n)
        self.t += 1
        self.version += 1

    def direction(self, Bo, code, g_w):
        """``(v, u)`` of :func:`streamsc.differentiation.direction` for a loss gradient
        ``g_w`` on the code (rows ``Bo`` of B observed); raises if they are not finite."""
        cfg = self.config
        vdir, Bv, _ = direction(Bo, code, g_w, prior=cfg.prior, lam=cfg.lam, p=cfg.p,
                                signed=cfg.signed, loss=cfg.loss)
        if not (np.all(np.isfinite(vdir)) and np.all(np.isfinite(Bv))):
            raise FloatingPointError("the implicit gradient is not finite; the model is unchanged")
        return vdir, Bv

    def _residual(self, rows, x, code):
        """(rows touched, g = f(B w) - x on them, loss): the loss gradient with respect to the
        reconstruction. The KL loss's residual covers every row (O(m) memory)."""
        r = np.arange(self.m) if rows is None else rows
        g = np.empty(r.size)
        if self.config.loss == "kl":
            loss = dict_kernels.softmax_residual(self.B, code, x, g)
        else:
            loss = dict_kernels.squared_residual(self.B, r, code, x, g)
        return r, g, loss

    def _check_step(self, loss, step):
        if not (np.isfinite(loss) and np.isfinite(step) and step < _MAX_STEP):
            raise ValueError(
                f"x is too large to learn from (the basis step would be {step:.3g}); "
                "scale the features. The model is unchanged"
            )

    def _stepped(self, rows, x, code):
        """Bookkeeping after a basis step: count it, cache the code of x (the warm start of
        its next solve) under the old version of B, and move to the new version."""
        self.t += 1
        if code is not None:
            self.cache = (rows, x.copy(), code, self.version)
        self.version += 1

    def supervised_step(self, rows, x, code, v, Bv, backprop_weight, reconstruction_weight):
        """A labelled step for a document given as counts (``loss="kl"``: normalised here as
        in :meth:`code`; raises on an empty document) or values (squared loss): the coder's
        own reconstruction step, weighted by ``reconstruction_weight`` (the surrogate's, or
        :meth:`rank2_step`), plus the per-atom AdaGrad step along ``backprop_weight`` times
        the implicit gradient (``v``, ``Bv`` from :meth:`direction`; None: none)."""
        return self._step(rows, self.as_learned(x), code, v, Bv, backprop_weight,
                          reconstruction_weight)

    def _step(self, rows, x, code, v, Bv, backprop_weight, reconstruction_weight):
        """The basis step along ``reconstruction_weight`` times the reconstruction gradient
        plus ``backprop_weight`` times an implicit gradient (``v``, ``Bv``; None: none): the
        reconstruction part by the surrogate and the implicit part by AdaGrad, or both by
        :meth:`rank2_step` (``basis_update="sgd"``). ``x`` as learned (a distribution for
        the KL loss). Returns the example's loss."""
        if self.config.basis_update != "surrogate":
            return self.rank2_step(rows, x, code, v, Bv, backprop_weight, reconstruction_weight)
        then = None
        if v is not None and backprop_weight > 0.0:  # AdaGrad on the implicit gradient,
            # its step times backprop_weight (AdaGrad alone would cancel any weight)
            then = self._rank2(rows, x, code, v, Bv, 1.0, 0.0, backprop_weight)[1]
        return self._surrogate_step(rows, x, code, reconstruction_weight, then)

    def _rank2(self, rows, x, code, v, Bv, backprop_weight, reconstruction_weight,
               step_weight=1.0):
        """The checks and the update of :meth:`rank2_step`: returns ``(loss, apply)``, with
        ``apply()`` the step (nothing changes until it is called). Raises if the step is not
        finite."""
        k = self.config.n_components
        r, g, loss = self._residual(rows, x, code)
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
            G, scale = self._sgd_scale(np.maximum(colsq, 0.0))
            scale = scale * step_weight
            ws, vs = code * scale, v * scale
            step = (np.abs(a).max(initial=0.0) * np.abs(ws).max(initial=0.0)
                    + np.abs(b).max(initial=0.0) * np.abs(vs).max(initial=0.0))
        self._check_step(loss, step)

        def apply():
            self.G = G
            if backprop_weight == 0.0:
                dict_kernels.sgd_update(self.B, r, a, ws, 1.0, np.empty(k))
            else:
                dict_kernels.rank2_update(self.B, r, a, ws, b, vs, 1.0, np.empty(k))
            self._track(rows, x, -g, reconstruction_weight * self._weight() * code * code)

        return float(loss), apply

    def rank2_step(self, rows, x, code, v, Bv, backprop_weight, reconstruction_weight):
        """One SGD step on B along ``reconstruction_weight`` times the reconstruction gradient
        ``(f(B w) - x) w^T`` plus ``backprop_weight`` times the implicit gradient of a loss on
        the code, ``(x - f(B w)) v^T - u w^T`` with ``v = H^{-1} dloss/dw`` and ``u = B v``
        (squared loss) or ``S B v`` (KL loss, S the softmax Jacobian) -- ``v`` and ``u``
        (passed as ``Bv``) from :meth:`direction`, None for no implicit part -- with the
        per-atom AdaGrad step of :meth:`_sgd_scale` and unit-norm columns. ``code`` is the
        code of ``x`` under the current B (x a distribution for the KL loss). Raises before
        changing anything if the step is not finite. Returns the example's loss."""
        loss, apply = self._rank2(rows, x, code, v, Bv, backprop_weight, reconstruction_weight)
        if self.encoder is not None:  # trained on the exact code (raises before any change)
            self.encoder.update(x, code, rows)
        apply()
        self._stepped(rows, x, code)
        return loss

    def _unrolled_start(self, Bo):
        """The step of the unrolled solver for the observed rows ``Bo``: ``1/||B||_2^2``
        (power iteration warm-started from the last call's vector) for L1 / L2, and the
        curvature bound at the start point for KL (then halved while the objective rises,
        see :func:`streamsc.unrolled.initial_step`). Returns ``(step, vector)``: the power
        iteration's new vector (None for KL) is stored by the caller once the step is taken,
        so a refused example leaves the old one."""
        cfg = self.config
        if cfg.prior == "kl":
            return initial_step(Bo, prior="kl", lam=cfg.lam, p=cfg.p, signed=cfg.signed), None
        vec = self.power_vector
        if vec is None or vec.shape[0] != cfg.n_components:
            vec = np.ones(cfg.n_components)
        vec = vec.copy()  # updated in place by the power iteration
        L = unrolled_kernels.spectral_norm_sq(Bo, vec, 50, 1e-6)
        return (1.0 / L if L > 0.0 else 1.0), vec

    def unrolled_step(self, rows, x, code, g_w, backprop_weight, reconstruction_weight):
        """One SGD step on B along the unrolled gradient (``config.gradient="unrolled"``).

        Unsupervised (``code`` None): the gradient of ``1/2 ||x - B w_T(B)||^2`` through
        ``unrolled_steps`` solver iterations (PUDLE); returns ``(w_T, loss)``. Supervised:
        ``backprop_weight`` times the unrolled approximation of ``(dw/dB)^T g_w`` plus
        ``reconstruction_weight`` times eq. 7 at the exact ``code``; returns the loss.
        Squared loss only. Raises ``ValueError`` before changing anything if the unrolled
        iterates or the step overflow."""
        cfg = self.config
        k = cfg.n_components
        Bo = self.B if rows is None else np.ascontiguousarray(self.B[rows])
        r = np.arange(self.m) if rows is None else rows
        halves = 2 * k if (cfg.prior == "kl" and cfg.signed) else k
        grad_B = np.empty(Bo.shape)
        traj = np.empty((cfg.unrolled_steps + 1, halves))
        start, power = self._unrolled_start(Bo)
        supervised = code is not None
        try:
            w_T, _, loss = unrolled_gradient(
                Bo, np.ascontiguousarray(x), grad_B, traj, prior=cfg.prior, lam=cfg.lam,
                p=cfg.p, signed=cfg.signed, step=start, adapt=cfg.prior == "kl",
                grad_w=backprop_weight * g_w if supervised else None,
                reconstruction_weight=0.0 if supervised else 1.0,
            )
        except FloatingPointError:
            raise ValueError(
                "x is too large to learn from (the unrolled iterates overflow); scale the "
                "features. The model is unchanged"
            ) from None
        surrogate = supervised and cfg.basis_update == "surrogate"
        if supervised:  # the reconstruction part: eq. 7 here, or the surrogate's own step
            _, a, loss = self._residual(rows, x, code)
            a *= 0.0 if surrogate else reconstruction_weight
            w = code
        else:
            a, w = np.zeros(r.size), w_T
        with np.errstate(over="ignore", invalid="ignore"):
            grad = grad_B + np.outer(a, w)
            G, scale = self._sgd_scale(np.einsum("ij,ij->j", grad, grad))
            grad *= scale
            step = np.abs(grad).max(initial=0.0)
        self._check_step(loss, step)
        if not supervised:  # the residual of w_T under the basis before the step
            resid = -self._residual(rows, x, w_T)[1]

        def apply():
            self.G = G
            if power is not None:  # only a step taken moves the power iteration's vector
                self.power_vector = power
            dict_kernels.dense_update(self.B, r, grad, np.zeros(r.size), np.zeros(k), 1.0,
                                      np.empty(k))

        if surrogate:
            return self._surrogate_step(rows, x, code, reconstruction_weight, apply)
        apply()
        if not supervised:
            self._track(rows, x, resid, self._weight() * w_T * w_T)
        self._stepped(rows, x, code if supervised else None)
        return float(loss) if supervised else (w_T, float(loss))
