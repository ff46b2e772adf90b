"""Feature names and the examples given by name: how a feature name becomes a row of the
basis (:class:`Features`, :func:`init_rows`), a starting basis given by name
(:func:`check_basis`), and the checks of an example given as a dict (:func:`check_features`,
:func:`check_feature_name`, :func:`check_counts`) or as a DataFrame (:func:`check_frame`,
:func:`check_frame_counts`). Plain Python and NumPy, so the estimators holding these objects
pickle, deep-copy and clone.
"""

import math
import numbers
import operator
import zlib

import numpy as np

from . import _validation as validation

__all__ = [
    "Features",
    "check_basis",
    "check_counts",
    "check_feature_name",
    "check_features",
    "check_frame",
    "check_frame_counts",
    "init_rows",
]


def check_basis(basis, n_components):
    """A starting basis given as a DataFrame (index: feature names, one column per atom) or
    a 2-D array (features named 0, 1, ...): returns ``(names, array)``, the array checked by
    :func:`streamsc._validation.check_basis`."""
    import pandas as pd  # only an estimator given a frame needs pandas

    if isinstance(basis, pd.DataFrame):
        names = list(basis.index)
        if len(set(names)) != len(names):
            raise ValueError("basis has duplicate feature names in its index")
        values = basis.to_numpy()
    else:
        values = basis
        names = None
    arr = validation.check_basis(values, name="basis", n_components=n_components)
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
    >>> from streamsc._features import init_rows
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

    def remember(self, keys):
        """Note the key order of an example just checked and gathered (a list from
        :func:`check_features`), for :meth:`recall`: a cheap note, turned into a plan if an
        example with the same keys (the same objects, in the same order) comes next."""
        _PLANS[id(self)] = (self.index, keys, None, None)
        if len(_PLANS) > MAX_PLANS:  # models come and go: keep a few
            _PLANS.clear()
            _PLANS[id(self)] = (self.index, keys, None, None)

    def recall(self, x):
        """``gather(*check_features(x))`` for a plain dict whose keys are the known
        features of the example last remembered, in any order, and whose values are plain
        finite numbers: the same ``(rows, x)``, by one look-up per key, in row order (no
        key checks, no scatter). None otherwise: the caller then checks and gathers x in
        full, which raises what it must (a missing, unknown or bad key, a bad value).

        The plan (the rows and a getter of the keys in row order) is built the second time
        the same keys come in the same order; it is kept outside the object (in a small
        table by ``id``, with the name index it was made for), so that copies, pickles and
        model files never hold it, and a plan of a replaced index is never used."""
        plan = _PLANS.get(id(self))
        if plan is None or type(x) is not dict:  # a subclass may look keys up its own way
            return None
        index, keys, getter, rows = plan
        if index is not self.index or len(x) != len(keys):
            return None
        if getter is None:  # a note: the same key objects in the same order make a plan
            if not all(map(operator.is_, x, keys)):
                return None
            getter, rows = self._plan(keys)
            if getter is None:
                return None
            _PLANS[id(self)] = (index, keys, getter, rows)
        try:
            raw = getter(x)  # same size and every key found: the same set of keys
        except Exception:  # a missing key, or one comparing oddly: the full checks say
            return None
        if not _FAST_TYPES.issuperset(map(type, raw)):
            return None
        try:
            values = np.array(raw, dtype=np.float64)
        except OverflowError:
            return None
        if not all_finite(values):
            return None
        return rows, values

    def _plan(self, keys):
        """(getter, rows) of :meth:`recall` for checked keys: a getter of the keys in row
        order (a tuple of their values) and their rows (None: every known feature), or
        (None, None) if a key is unknown."""
        index = self.index
        if not keys or not all(map(index.__contains__, keys)):
            return None, None
        by_row = sorted(keys, key=index.__getitem__)
        getter = (operator.itemgetter(*by_row) if len(by_row) > 1
                  else lambda x, key=by_row[0]: (x[key],))
        rows = None if len(keys) == len(self.names) else np.fromiter(
            map(index.__getitem__, by_row), dtype=np.int64, count=len(by_row))
        return getter, rows


#: Features.recall's plans: id(Features) -> (index, keys, getter, rows), getter None for a
#: note not yet made a plan; cleared beyond MAX_PLANS entries (models come and go)
_PLANS = {}
MAX_PLANS = 32


# ---------------------------------------------------------------------------------------
# an example given as a dict
# ---------------------------------------------------------------------------------------

#: value types that need no check (real numbers)
_FAST_TYPES = frozenset([float, int, np.float64, np.float32, np.int64, np.int32])
#: examples of at most this many features are checked in Python floats, not NumPy's
#: (cheaper than a ufunc call and a reduction on a few values)
SHORT_EXAMPLE = 64
#: feature names that need no check (they always equal themselves)
_FAST_KEY_TYPES = frozenset([str, int])
#: numpy's time types are integers to ``numbers`` but are not quantities
_TIME_TYPES = (np.timedelta64, np.datetime64)


#: a value's repr in a message: in full up to SHORT_REPR characters, else its first
#: SHORT_REPR_KEPT
SHORT_REPR = 40
SHORT_REPR_KEPT = 30


def _short(value):
    """repr of a value, cut short (an int of 10**400 has 401 digits)."""
    text = repr(value)
    if len(text) <= SHORT_REPR:
        return text
    return text[:SHORT_REPR_KEPT] + "..." + f" ({len(text)} characters)"


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
    if not validation.equals_itself(key):
        raise ValueError(
            f"{name} has the feature name {key!r}, which does not equal itself (NaN, NA or "
            "NaT): a feature name must be a usable dict key. The model is unchanged"
        )


def all_finite(values):
    """Whether every entry of a float64 array is finite. Short arrays in Python floats
    (cheaper than a ufunc call and a reduction on a few values): a finite sum proves it
    (a non-finite entry makes the sum inf or NaN), and only a sum that is not finite needs
    a look at each entry (finite entries whose sum overflows)."""
    if values.size <= SHORT_EXAMPLE:
        entries = values.ravel().tolist()
        return math.isfinite(sum(entries)) or all(map(math.isfinite, entries))
    return bool(np.isfinite(values).all())


def check_features(x, name="x"):
    """Check one example given as a dict of numbers; returns ``(keys, values)`` with values a
    float64 array. Raises ``TypeError`` for a non-dict or a non-numeric value and
    ``ValueError`` for NaN or infinity, naming the feature.

    Examples
    --------
    >>> from streamsc._features import check_features
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
    if not all_finite(values):
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
    >>> from streamsc._features import check_counts
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


def check_frame(X):
    """(columns, values) of a DataFrame of finite numbers with unique column names."""
    import pandas as pd

    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"X must be a pandas DataFrame, got {type(X).__name__}")
    columns = list(X.columns)
    for name in columns:
        if type(name) is not int:
            check_feature_name(name, "X")
    if len(set(columns)) != len(columns):
        dup = X.columns[X.columns.duplicated()][0]
        raise ValueError(f"X has duplicate column {dup!r}: feature names must be unique")
    dtypes = X.dtypes
    for dtype in set(dtypes):  # each distinct dtype once (wide frames share a few)
        if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)) \
                or pd.api.types.is_complex_dtype(dtype):
            name = dtypes.index[list(dtypes).index(dtype)]
            raise TypeError(f"X[{name!r}] must hold real numbers, got dtype {dtype}")
    values = X.to_numpy(dtype=np.float64, na_value=np.nan)
    if not np.all(np.isfinite(values)):
        i, j = np.argwhere(~np.isfinite(values))[0]
        raise ValueError(
            f"X[{columns[j]!r}] is {values[i, j]!r} in row {X.index[i]!r}: every value "
            "must be finite (NaN does not mean missing here; use learn_one without the key)"
        )
    return columns, values


def check_frame_counts(X, columns, values):
    """``loss="kl"``: the values of a frame (from :func:`check_frame`) must be non-negative
    counts; raises ``ValueError`` naming the first negative one."""
    bad = values < 0
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(
            f"X[{columns[j]!r}] is {values[i, j]!r} in row {X.index[i]!r}: loss='kl' "
            "needs non-negative counts"
        )


def too_large(exc, keys, values):
    """The ``ValueError`` for a basis step refused as too large (``exc``, a
    :class:`streamsc._basis_steps.StepTooLarge`), naming the example's largest feature."""
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        i = int(np.argmax(np.abs(values))) if values.size else -1
    largest = (f"its largest value, {_short(keys[i])} = {values[i]:.3g}, "
               if i >= 0 else "")
    return ValueError(
        f"x is too large to learn from: {largest}{exc.reason}; "
        "scale the features. The model is unchanged"
    )
