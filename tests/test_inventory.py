"""An inventory of bad input thrown at every estimator (issue 22).

Each kind of bad input or fault below is fed to every estimator it applies to, fresh and
after a few good examples. The call must either

* be refused with a ``ValueError`` or ``TypeError`` whose message names the problem (one of
  the kind's words: the feature, ``x``, ``y``, ``X``, the offending value...) and leave the
  model byte-identical (its pickle and every array of its state), or
* be accepted with the invariants intact: a finite basis of unit-norm atoms, one row per
  feature name (no duplicates), shapes that agree, finite codes and predictions.

Any other exception (``OverflowError``, ``KeyError``, ``AttributeError``, a numba error...)
fails. ``test_the_inventory_is_large`` counts the kinds.
"""

import math
import pickle
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from streamsc import SparseCoder, SparseCodingClassifier, SparseCodingRegressor
from streamsc.sklearn import SparseCodingTransformer

NORM_TOL = 1e-9
GOOD = [{"a": 1.0 + 0.1 * i, "b": -0.5 + 0.2 * (i % 3), "c": float(i % 2)} for i in range(6)]
LABELS = [0, 1, 0, 1, 1, 0]
TARGETS = [0.5, -1.0, 0.25, 1.5, -0.5, 0.0]

CODERS = {
    "kl": dict(n_components=3, seed=0),
    "kl-signed-newton": dict(n_components=3, signed=True, solver="newton", seed=0),
    "l1-signed": dict(n_components=3, prior="l1", signed=True, seed=0),
    "l2": dict(n_components=3, prior="l2", seed=0),
    "unrolled": dict(n_components=3, prior="l1", gradient="unrolled", seed=0),
    "amortized": dict(n_components=3, encoder="amortized", seed=0),
    "mini-batch": dict(n_components=3, mini_batch=True, seed=0),
}


def _coder(name, trained):
    model = SparseCoder(**CODERS[name])
    if trained:
        for x in GOOD:
            model.learn_one(x)
    return model


def _supervised(cls, labels, trained, **params):
    model = cls(n_components=3, seed=0, **params)
    if trained:
        for x, y in zip(GOOD, labels):
            model.learn_one(x, y)
    return model


def _classifier(trained, **params):
    return _supervised(SparseCodingClassifier, LABELS, trained, **params)


def _regressor(trained, **params):
    return _supervised(SparseCodingRegressor, TARGETS, trained, **params)


def _text(trained):
    model = SparseCoder(n_components=3, loss="kl", seed=0)
    if trained:
        for i in range(6):
            model.learn_one({"w1": 1 + i % 2, "w2": 2, "w3": i % 3})
    return model


def _coder_of(model):
    return model if isinstance(model, SparseCoder) else model.coder_


def _arrays(obj, prefix="", seen=None):
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return {}
    seen.add(id(obj))
    out = {}
    items = obj.items() if isinstance(obj, dict) else (
        vars(obj).items() if hasattr(obj, "__dict__") else ())
    for name, val in items:
        path = f"{prefix}.{name}"
        if isinstance(val, np.ndarray):
            out[path] = (val.dtype.str, val.shape, val.tobytes())
        elif isinstance(val, dict) or (hasattr(val, "__dict__")
                                       and type(val).__module__.startswith("streamsc")):
            out.update(_arrays(val, path, seen))
    return out


def _state(model):
    return pickle.dumps(model), _arrays(model)


def _invariants(model):
    if isinstance(model, SparseCodingTransformer):
        if hasattr(model, "components_"):
            C = model.components_
            assert np.isfinite(C).all()
            assert np.abs(np.linalg.norm(C, axis=1) - 1.0).max() <= NORM_TOL
            assert C.shape[1] == model.n_features_in_
        return
    coder = _coder_of(model)
    B = coder._learner.B
    assert np.isfinite(B).all()
    if B.shape[0]:
        assert np.abs(np.sqrt(np.einsum("ij,ij->j", B, B)) - 1.0).max() <= NORM_TOL
    names = list(coder._features.names)
    assert len({(type(n), repr(n)) for n in names}) == len(names), "duplicate feature rows"
    assert B.shape == (len(names), coder.n_components)
    assert coder.basis_.shape == B.shape


def _finite_output(out):
    if out is None or hasattr(out, "get_params"):  # fit returns the estimator
        return
    if isinstance(out, dict):
        vals = list(out.values())
    elif isinstance(out, (pd.DataFrame, pd.Series, np.ndarray, list)):
        vals = np.asarray(out, dtype=float).ravel().tolist()
    else:
        vals = [out]
    for val in vals:
        if isinstance(val, (bool, np.bool_, str)):
            continue
        assert math.isfinite(float(val)), f"non-finite output {out!r}"


def throw(model, call, words):
    """Run ``call(model)``: refused cleanly, naming the problem, model unchanged; or
    accepted with the invariants intact."""
    before = _state(model)
    try:
        out = call(model)
    except (ValueError, TypeError) as exc:
        message = str(exc)
        assert message, "an empty error message"
        assert any(w in message for w in words), f"none of {words!r} in {message!r}"
        assert _state(model) == before, f"a refused call changed the model: {message}"
        return "refused"
    _invariants(model)
    _finite_output(out)
    return "accepted"


# ---------------------------------------------------------------------------------------
# the inventory
# ---------------------------------------------------------------------------------------

#: bad feature values, put under the feature "zz" next to good ones
VALUES = {
    "nan": float("nan"), "inf": float("inf"), "-inf": -float("inf"),
    "1e308": 1e308, "-1e308": -1e308, "1e200": 1e200, "tiny": 5e-324,
    "int-10**400": 10**400, "int--10**400": -(10**400), "fraction-huge": Fraction(10**400, 3),
    "fraction": Fraction(1, 3), "decimal-nan": Decimal("NaN"), "decimal-snan": Decimal("sNaN"),
    "decimal-inf": Decimal("Infinity"), "decimal-huge": Decimal("1e400"),
    "decimal": Decimal("0.5"), "complex": 1 + 2j, "complex-real": complex(1, 0),
    "str": "1.0", "bytes": b"1", "none": None, "bool": True, "np-bool": np.bool_(True),
    "timedelta": np.timedelta64(1, "s"), "datetime": np.datetime64("2020-01-01"),
    "list": [1.0], "tuple": (1.0,), "dict": {"v": 1.0}, "set": {1.0}, "array-1": np.array([1.0]),
    "array-0d": np.array(1.0), "float32-inf": np.float32("inf"), "float16": np.float16(0.5),
    "int8": np.int8(3), "uint64-max": np.uint64(2**64 - 1), "pd-na": pd.NA, "pd-nat": pd.NaT,
    "object": object(), "float-subclass": type("F", (float,), {})(2.0),
    "nan-in-object-array": np.array([np.nan], dtype=object)[0],
    "float32-nan": np.float32("nan"), "longdouble": np.longdouble(1.5),
    "longdouble-huge": np.longdouble("1e4000") if np.finfo(np.longdouble).max > 1e4000
    else np.longdouble(np.inf), "int64-max": np.int64(2**63 - 1), "int-10**300": 10**300,
    "fraction-negative": Fraction(-7, 2), "decimal-neg-inf": Decimal("-Infinity"),
    "np-str": np.str_("1"), "np-bytes": np.bytes_(b"1"), "bytearray": bytearray(b"1"),
    "memoryview": memoryview(b"1"), "range": range(2), "ellipsis": ...,
    "complex-nan": complex(np.nan, 0), "pd-timestamp": pd.Timestamp("2020-01-01"),
    "pd-timedelta": pd.Timedelta(1, "s"), "function": len, "type": float,
    "negative-zero": -0.0, "subnormal": 1e-310,
}

#: bad feature names, with a good value
KEYS = {
    "nan-key": float("nan"), "none-key": None, "tuple-key": ("a", 1), "nan-tuple-key": (np.nan,),
    "frozenset-key": frozenset({"a"}), "bytes-key": b"a", "surrogate-key": "\ud800",
    "empty-key": "", "long-key": "k" * 10_000, "bool-key": True, "np-int-key": np.int64(7),
    "float-key": 1.5, "object-key": object(), "inf-key": float("inf"), "decimal-nan-key":
    Decimal("NaN"), "np-nan-key": np.float64("nan"), "pd-na-key": pd.NA, "nat-key": pd.NaT,
    "decimal-key": Decimal("1.5"), "fraction-key": Fraction(1, 2), "np-str-key": np.str_("a"),
    "complex-key": 1j, "type-key": float, "nul-key": "a\x00b",
    "list-key": None,  # list keys cannot be dict keys: replaced below
}

#: bad containers in place of the feature dict
CONTAINERS = {
    "none-x": None, "list-x": [1.0, 2.0], "tuple-x": (1.0,), "str-x": "a=1",
    "int-x": 3, "float-x": 1.5, "array-x": np.array([1.0, 2.0]), "set-x": {"a"},
    "series-x": pd.Series({"a": 1.0}), "frame-x": pd.DataFrame({"a": [1.0]}),
    "empty-dict": {}, "all-zero": {"a": 0.0, "b": 0.0, "c": 0.0},
    "one-new-feature": {"new": 1.0}, "many-new-features": {f"n{i}": 1.0 for i in range(40)},
}

#: bad labels for the classifier / targets for the regressor
LABELS_BAD = {
    "label-none": None, "label-nan": float("nan"), "label-pd-na": pd.NA, "label-nat": pd.NaT,
    "label-decimal-nan": Decimal("NaN"), "label-list": [1], "label-dict": {"y": 1},
    "label-set": {1}, "label-array": np.array([1]), "label-object": object(),
    "label-complex": 1j, "label-inf": float("inf"), "label-new-class": "new",
    "label-bytes": b"1", "label-tuple": (0, 1),
}
TARGETS_BAD = {
    "target-none": None, "target-nan": float("nan"), "target-inf": float("inf"),
    "target-1e200": 1e200, "target-1e300": 1e300, "target-str": "1.0", "target-list": [1.0],
    "target-complex": 1 + 1j, "target-int-10**400": 10**400, "target-decimal-nan":
    Decimal("NaN"), "target-pd-na": pd.NA, "target-bool": True, "target-array":
    np.array([1.0, 2.0]), "target-object": object(), "target-fraction-huge": Fraction(10**400, 3),
}

#: bad frames for learn_many / transform_many
FRAMES = {
    "frame-nan": pd.DataFrame({"a": [1.0, np.nan], "b": [0.5, 0.5]}),
    "frame-inf": pd.DataFrame({"a": [1.0, np.inf], "b": [0.5, 0.5]}),
    "frame-huge": pd.DataFrame({"a": [1.0, 1e200], "b": [0.5, 0.5]}),
    "frame-object": pd.DataFrame({"a": [1.0, "x"], "b": [0.5, 0.5]}),
    "frame-str-col": pd.DataFrame({"a": ["1", "2"]}),
    "frame-duplicate-cols": pd.DataFrame([[1.0, 2.0, 3.0]], columns=["a", "b", "a"]),
    "frame-nan-col-name": pd.DataFrame({float("nan"): [1.0], "a": [2.0]}),
    "frame-empty": pd.DataFrame(),
    "frame-no-rows": pd.DataFrame({"a": pd.Series([], dtype=float)}),
    "frame-bool": pd.DataFrame({"a": [True, False]}),
    "frame-datetime": pd.DataFrame({"a": pd.to_datetime(["2020-01-01", "2020-01-02"])}),
    "frame-complex": pd.DataFrame({"a": [1 + 1j, 2.0]}),
    "frame-pd-na": pd.DataFrame({"a": pd.array([1.0, pd.NA], dtype="Float64")}),
    "not-a-frame-dict": {"a": [1.0, 2.0]},
    "not-a-frame-array": np.ones((2, 2)),
    "not-a-frame-list": [{"a": 1.0}],
}

#: bad arrays for the scikit-learn wrapper's fit / partial_fit / transform
ARRAYS = {
    "X-nan": np.array([[1.0, np.nan], [0.5, 0.5]]),
    "X-inf": np.array([[1.0, np.inf], [0.5, 0.5]]),
    "X-huge": np.array([[1.0, 1e200], [0.5, 0.5]]),
    "X-1d": np.array([1.0, 2.0]),
    "X-3d": np.ones((2, 2, 2)),
    "X-empty": np.empty((0, 2)),
    "X-no-features": np.empty((3, 0)),
    "X-str": np.array([["a", "b"]]),
    "X-object": np.array([[1.0, None]], dtype=object),
    "X-complex": np.array([[1 + 1j, 2.0]]),
    "X-wrong-width": np.ones((2, 5)),
    "X-list-ragged": [[1.0, 2.0], [1.0]],
    "X-none": None,
    "X-scalar": 3.0,
}

KEYS_FIXED = {k: v for k, v in KEYS.items() if k != "list-key"}
VALUE_WORDS = ("'zz'", "zz")
KEY_WORDS = ("name", "key", "feature", "x")
CONTAINER_WORDS = ("x", "dict")
FRAME_WORDS = ("X", "frame", "column", "'a'", "row")
ARRAY_WORDS = ("X", "array", "feature", "sample", "Input", "dimension", "finite", "NaN",
               "infinity", "float", "complex", "Complex", "string", "shape", "Expected",
               "could not")


def _x_with(value):
    return {"a": 1.0, "b": -0.5, "zz": value}


def _coder_calls():
    """(kind, builder, call, words) for the coders' one-example and batch methods."""
    cases = []
    for vname, value in VALUES.items():
        for method in ("learn_one", "transform_one"):
            cases.append((f"value:{vname}:{method}", method,
                          lambda m, method=method, value=value: getattr(m, method)(
                              _x_with(value)), VALUE_WORDS))
    for kname, key in KEYS_FIXED.items():
        for method in ("learn_one", "transform_one"):
            cases.append((f"key:{kname}:{method}", method,
                          lambda m, method=method, key=key: getattr(m, method)(
                              {key: 1.0, "a": 0.5}), KEY_WORDS))
    for cname, x in CONTAINERS.items():
        for method in ("learn_one", "transform_one"):
            cases.append((f"container:{cname}:{method}", method,
                          lambda m, method=method, x=x: getattr(m, method)(x),
                          CONTAINER_WORDS))
    for fname, X in FRAMES.items():
        for method in ("learn_many", "transform_many"):
            cases.append((f"frame:{fname}:{method}", method,
                          lambda m, method=method, X=X: getattr(m, method)(X), FRAME_WORDS))
    return cases


CODER_CASES = _coder_calls()


@pytest.mark.parametrize("trained", [False, True], ids=["fresh", "trained"])
@pytest.mark.parametrize("coder", list(CODERS))
def test_coders_take_the_inventory(coder, trained):
    outcomes = {}
    for kind, _, call, words in CODER_CASES:
        model = _coder(coder, trained)
        try:
            outcomes[kind] = throw(model, call, words)
        except AssertionError as exc:
            raise AssertionError(f"{kind}: {exc}") from None
        except Exception as exc:
            raise AssertionError(f"{kind}: unclear error {type(exc).__name__}: {exc}") from None
    # the obviously bad ones are refused, not accepted
    for name in ("nan", "inf", "str", "none", "complex", "timedelta", "pd-na"):
        assert outcomes[f"value:{name}:learn_one"] == "refused", name
    assert outcomes["key:nan-key:learn_one"] == "refused"
    assert outcomes["container:none-x:learn_one"] == "refused"


@pytest.mark.parametrize("trained", [False, True], ids=["fresh", "trained"])
def test_text_coder_takes_the_inventory(trained):
    words = VALUE_WORDS + ("count", "negative")
    for vname, value in list(VALUES.items()) + [("negative", -1.0), ("neg-int", -3)]:
        for method in ("learn_one", "transform_one"):
            model = _text(trained)
            kind = f"count:{vname}:{method}"
            try:
                throw(model, lambda m: getattr(m, method)({"w1": 1, "zz": value}), words)
            except AssertionError as exc:
                raise AssertionError(f"{kind}: {exc}") from None
            except Exception as exc:
                raise AssertionError(f"{kind}: unclear error {type(exc).__name__}: {exc}") \
                    from None


SUPERVISED = {
    "classifier": (_classifier, LABELS, LABELS_BAD),
    "classifier-unrolled": (lambda t: _classifier(t, gradient="unrolled"), LABELS, LABELS_BAD),
    "regressor": (_regressor, TARGETS, TARGETS_BAD),
    "regressor-l1-signed": (lambda t: _regressor(t, prior="l1", signed=True), TARGETS,
                            TARGETS_BAD),
}


@pytest.mark.parametrize("trained", [False, True], ids=["fresh", "trained"])
@pytest.mark.parametrize("name", list(SUPERVISED))
def test_supervised_models_take_the_inventory(name, trained):
    build, good_labels, bad_labels = SUPERVISED[name]
    cases = []
    for vname, value in VALUES.items():
        cases.append((f"value:{vname}:learn_one",
                      lambda m, value=value: m.learn_one(_x_with(value), good_labels[0]),
                      VALUE_WORDS))
        cases.append((f"value:{vname}:predict_one",
                      lambda m, value=value: m.predict_one(_x_with(value)), VALUE_WORDS))
    for kname, key in KEYS_FIXED.items():
        cases.append((f"key:{kname}:learn_one",
                      lambda m, key=key: m.learn_one({key: 1.0, "a": 0.5}, good_labels[1]),
                      KEY_WORDS))
    for cname, x in CONTAINERS.items():
        cases.append((f"container:{cname}:learn_one",
                      lambda m, x=x: m.learn_one(x, good_labels[0]), CONTAINER_WORDS))
        cases.append((f"container:{cname}:predict_one",
                      lambda m, x=x: m.predict_one(x), CONTAINER_WORDS))
    for lname, y in bad_labels.items():
        cases.append((f"label:{lname}:learn_one", lambda m, y=y: m.learn_one(GOOD[0], y),
                      ("y", "label", "target", "class")))
    frame = pd.DataFrame(GOOD[:3])
    for fname, X in FRAMES.items():
        cases.append((f"frame:{fname}:learn_many",
                      lambda m, X=X: m.learn_many(X, good_labels[:len(X)] if hasattr(
                          X, "__len__") else good_labels[:1]), FRAME_WORDS + ("y",)))
    for lname, y in bad_labels.items():
        cases.append((f"label-in-batch:{lname}:learn_many",
                      lambda m, y=y: m.learn_many(frame, [good_labels[0], y, good_labels[1]]),
                      ("y", "label", "target", "class", "row")))
    cases.append(("batch:y-too-short:learn_many",
                  lambda m: m.learn_many(frame, good_labels[:2]), ("y", "rows")))
    for kind, call, words in cases:
        model = build(trained)
        try:
            throw(model, call, words)
        except AssertionError as exc:
            raise AssertionError(f"{kind}: {exc}") from None
        except Exception as exc:
            raise AssertionError(f"{kind}: unclear error {type(exc).__name__}: {exc}") from None


@pytest.mark.parametrize("trained", [False, True], ids=["fresh", "trained"])
def test_sklearn_wrapper_takes_the_inventory(trained):
    rng = np.random.default_rng(0)
    X_good = rng.normal(size=(8, 2))
    for aname, X in ARRAYS.items():
        for method in ("fit", "partial_fit", "transform"):
            model = SparseCodingTransformer(n_components=2, random_state=0)
            if trained:
                model.fit(X_good)
            elif method == "transform":
                continue  # not fitted: sklearn's NotFittedError, checked elsewhere
            kind = f"array:{aname}:{method}"
            try:
                throw(model, lambda m: getattr(m, method)(X), ARRAY_WORDS)
            except AssertionError as exc:
                raise AssertionError(f"{kind}: {exc}") from None
            except Exception as exc:
                raise AssertionError(f"{kind}: unclear error {type(exc).__name__}: {exc}") \
                    from None


def test_the_inventory_is_large():
    """At least 150 kinds of bad input (issue 22), counted as the distinct things thrown."""
    kinds = (len(VALUES) + len(KEYS_FIXED) + len(CONTAINERS) + len(FRAMES) + len(ARRAYS)
             + len(LABELS_BAD) + len(TARGETS_BAD) + 2)  # + the text coder's negative counts
    assert kinds >= 150, kinds
