"""Reliability across the estimators: random adversarial streams (hypothesis) never corrupt a
model, and a seed fixes every bit of a model's state across processes.

The hand-written inventories of bad inputs (one error message each, state compared by pickle)
are next to each estimator's tests: ``test_coding.py`` (``encode``), ``test_vjp.py``,
``test_sparse_coder.py``, ``test_supervised.py``, ``test_text.py``, ``test_sklearn.py`` and
``test_persistence.py``. Here hypothesis draws streams that mix valid examples with every kind
of bad value, and checks the invariant that matters to a user: each call either succeeds and
leaves a finite, unit-norm basis, or raises ``ValueError``/``TypeError`` and leaves the pickled
model byte-identical.
"""

import hashlib
import math
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamsc import SparseCoder, SparseCodingClassifier, SparseCodingRegressor

NORM_TOL = 1e-9
KEYS = ["a", "b", "c", "d", 0, 1]

finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False)
bad_number = st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e200, -1e300])
not_a_number = st.sampled_from(["1.0", None, 1 + 2j, [1.0], b"x"])
value = st.one_of(finite, finite, finite, finite, bad_number, not_a_number, st.just(0.0))
example = st.dictionaries(st.sampled_from(KEYS), value, max_size=5)
count = st.one_of(st.integers(0, 20), st.integers(0, 20), st.floats(0.0, 5.0),
                  st.sampled_from([-1.0, float("nan"), float("inf"), "2", None]))
document = st.dictionaries(st.sampled_from(KEYS), count, max_size=5)
label = st.one_of(st.integers(0, 2), st.integers(0, 2), st.sampled_from(
    [None, float("nan"), "yes", [1], (0, 1)]))
target = st.one_of(finite, finite, st.sampled_from([float("nan"), float("inf"), "1", None, 1e300]))

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


def check_basis(B):
    assert np.isfinite(B).all()
    if B.shape[0]:
        norms = np.sqrt(np.einsum("ij,ij->j", B, B))
        assert np.abs(norms - 1.0).max() <= NORM_TOL


def call_safely(model, method, *args):
    """Call, and if it raises, it must be a ValueError/TypeError that left no trace."""
    before = pickle.dumps(model)
    try:
        return getattr(model, method)(*args)
    except (ValueError, TypeError):
        assert pickle.dumps(model) == before, f"a refused {method}{args!r} changed the model"
        return None


CODERS = {
    "kl-signed": dict(n_components=4, signed=True, seed=0),
    "kl-newton": dict(n_components=4, solver="newton", seed=0),
    "l1": dict(n_components=4, prior="l1", seed=0),
}


def feed_coder(model, stream):
    for x in stream:
        call_safely(model, "learn_one", x)
        check_basis(model._learner.B)
        w = call_safely(model, "transform_one", x)
        if w is not None:
            assert np.isfinite(list(w.values())).all()


@pytest.mark.parametrize("name", list(CODERS))
@SETTINGS
@given(stream=st.lists(example, min_size=1, max_size=12))
def test_coder_survives_any_stream(name, stream):
    feed_coder(SparseCoder(**CODERS[name]), stream)


@SETTINGS
@given(stream=st.lists(document, min_size=1, max_size=10))
def test_text_coder_survives_any_stream(stream):
    feed_coder(SparseCoder(n_components=3, loss="kl", seed=0), stream)


@SETTINGS
@given(stream=st.lists(st.tuples(example, label), min_size=1, max_size=10))
def test_classifier_survives_any_stream(stream):
    model = SparseCodingClassifier(coder=SparseCoder(n_components=3, signed=True, seed=0))
    for x, y in stream:
        call_safely(model, "learn_one", x, y)
        check_basis(model.coder_._learner.B)
        assert np.isfinite(model._V).all() and np.isfinite(model._b).all()
        proba = call_safely(model, "predict_proba_one", x)
        if proba:
            assert math.isclose(sum(proba.values()), 1.0, rel_tol=1e-9)


@SETTINGS
@given(stream=st.lists(st.tuples(example, target), min_size=1, max_size=10))
def test_regressor_survives_any_stream(stream):
    model = SparseCodingRegressor(coder=SparseCoder(n_components=3, seed=0))
    for x, y in stream:
        call_safely(model, "learn_one", x, y)
        check_basis(model.coder_._learner.B)
        y_hat = call_safely(model, "predict_one", x)
        if y_hat is not None:
            assert math.isfinite(y_hat)


# determinism: the same seed gives bit-identical state in separate processes

RUN = textwrap.dedent(
    """
    import hashlib, pickle, sys
    import numpy as np
    from streamsc import SparseCoder, SparseCodingClassifier, SparseCodingRegressor

    rng = np.random.default_rng(7)
    X = [dict(zip("abcdef", rng.standard_normal(6))) for _ in range(60)]
    models = {
        "kl": SparseCoder(n_components=5, signed=True, seed=3),
        "l1": SparseCoder(n_components=5, prior="l1", seed=3),
        "text": SparseCoder(n_components=4, loss="kl", seed=3),
        "clf": SparseCodingClassifier(coder=SparseCoder(n_components=5, seed=3)),
        "reg": SparseCodingRegressor(coder=SparseCoder(n_components=5, signed=True, seed=3)),
    }
    out = []
    for name, model in models.items():
        codes = []
        for i, x in enumerate(X):
            if name == "text":
                x = {key: float(abs(round(3 * v))) for key, v in x.items()}
                x["a"] += 1.0
            if name == "clf":
                model.learn_one(x, i % 3)
                proba = model.predict_proba_one(x)
                codes.append([proba.get(c, -1.0) for c in range(3)])
            elif name == "reg":
                model.learn_one(x, x["a"] - x["b"])
                codes.append([model.predict_one(x)])
            else:
                model.learn_one(x)
                codes.append(list(model.transform_one(x).values()))
        coder = model if isinstance(model, SparseCoder) else model.coder_
        digest = hashlib.sha256(np.asarray(codes).tobytes())
        digest.update(coder._learner.B.tobytes())
        out.append(f"{name}={digest.hexdigest()}")
    print(" ".join(out))
    """
)


def run_in_fresh_process(hash_seed):
    env = dict(os.environ, PYTHONHASHSEED=str(hash_seed))
    done = subprocess.run([sys.executable, "-c", RUN], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_same_seed_same_bits_across_processes():
    """Two processes with different hash seeds (so different set/dict iteration orders of
    strings) end with bit-identical bases, codes and predictions for every estimator."""
    first = run_in_fresh_process(1)
    second = run_in_fresh_process(2)
    assert len(first) == 5
    assert first == second


def test_learn_many_exact_equals_learn_one_loop_bit_for_bit():
    """``learn_many`` (exact: one step per row, in order) and a ``learn_one`` loop give
    bit-identical bases and later codes, with features emerging mid-stream."""
    import pandas as pd

    rng = np.random.default_rng(11)
    frames = [pd.DataFrame(rng.standard_normal((7, 3)), columns=cols)
              for cols in (["a", "b", "c"], ["b", "c", "d"], ["e", "a", "d"])]
    for params in CODERS.values():
        batch, loop = SparseCoder(**params), SparseCoder(**params)
        for frame in frames:
            batch.learn_many(frame)
            for x in frame.to_dict(orient="records"):
                loop.learn_one(x)
        assert hashlib.sha256(batch._learner.B.tobytes()).digest() == \
            hashlib.sha256(loop._learner.B.tobytes()).digest()
        probe = frames[-1]
        assert batch.transform_many(probe).equals(loop.transform_many(probe))


# issue 22, items 2-6 and 8 (fixed in 46bfbfc): one test each

from decimal import Decimal  # noqa: E402
from fractions import Fraction  # noqa: E402
import threading  # noqa: E402

import pandas as pd  # noqa: E402


def _coder_of(model):
    return model if isinstance(model, SparseCoder) else model.coder_


def _arrays(obj, prefix=""):
    """Every numpy array reachable through the attribute dicts of obj (bytes, by path)."""
    out = {}
    items = obj.items() if isinstance(obj, dict) else vars(obj).items() \
        if hasattr(obj, "__dict__") else ()
    for name, val in items:
        path = f"{prefix}.{name}"
        if isinstance(val, np.ndarray):
            out[path] = (val.dtype.str, val.shape, val.tobytes())
        elif isinstance(val, (dict,)) or (hasattr(val, "__dict__") and
                                           type(val).__module__.startswith("streamsc")):
            out.update(_arrays(val, path))
    return out


def _state(model):
    """What a refusal must leave byte-equal: the pickle, the basis, the feature names, the
    step count and version, and every array of the state."""
    coder = _coder_of(model)
    learner = coder._learner
    return (pickle.dumps(model), learner.B.tobytes(), learner.B.shape,
            list(coder._features.names), learner.t, learner.version, _arrays(model))


def _refused(model, call, exc, *words):
    before = _state(model)
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    assert _state(model) == before, "a refused call changed the model"
    return message


def _invariants(coder):
    B = coder._learner.B
    check_basis(B)
    names = list(coder._features.names)
    assert len(set(map(repr, names))) == len(names)
    assert B.shape == (len(names), coder.n_components)
    basis = coder.basis_
    assert basis.shape == B.shape


def _fitted_coder(**params):
    coder = SparseCoder(**{"n_components": 3, "seed": 0, **params})
    for i in range(5):
        coder.learn_one({"a": 1.0 + i, "b": 0.5, "c": float(i % 2)})
    return coder


@pytest.mark.parametrize("blank", [{}, {"a": 0.0, "b": 0}, {"a": 0}])
def test_item2_blank_document_learns_nothing(blank):
    for coder in (SparseCoder(n_components=3, loss="kl", seed=0),
                  _fitted_coder(loss="kl")):
        before = _state(coder)
        assert coder.learn_one(blank) is None
        assert _state(coder) == before


@pytest.mark.parametrize("text", ["", "!!!"])
def test_item2_blank_text_through_bag_of_words_learns_nothing(text):
    from river.feature_extraction import BagOfWords

    pipe = BagOfWords() | SparseCoder(n_components=3, loss="kl", seed=0)
    coder = pipe.steps["SparseCoder"] if "SparseCoder" in pipe.steps else \
        list(pipe.steps.values())[-1]
    before = _state(coder)
    pipe.learn_one(text)
    assert _state(coder) == before
    pipe.learn_one("the cat sat")
    assert all(v == 0.0 for v in pipe.transform_one(text).values())
    after = _state(coder)
    pipe.learn_one(text)
    assert _state(coder) == after
    _invariants(coder)


@pytest.mark.parametrize("missing", [pd.NA, pd.NaT, Decimal("NaN")],
                         ids=["NA", "NaT", "Decimal-NaN"])
def test_item3_missing_value_as_first_label_refused(missing):
    model = SparseCodingClassifier(coder=SparseCoder(n_components=3, seed=0))
    x = {"a": 1.0, "b": -0.5}
    _refused(model, lambda: model.learn_one(x, missing), ValueError, "missing value")
    assert model.classes_ == []
    model.learn_one(x, 1)
    model.learn_one({"a": -1.0, "b": 0.5}, 0)
    assert sorted(model.classes_) == [0, 1]
    _invariants(model.coder_)


def test_item3_timedelta_value_refused():
    coder = _fitted_coder()
    _refused(coder, lambda: coder.learn_one({"a": np.timedelta64(1, "s"), "b": 1.0}),
             TypeError, "'a'", "real number")
    fresh = SparseCoder(n_components=3, seed=0)
    _refused(fresh, lambda: fresh.learn_one({"t": np.timedelta64(1, "s")}), TypeError, "'t'")


def test_item3_nan_feature_key_refused_no_new_row():
    coder = _fitted_coder()
    for _ in range(3):
        _refused(coder, lambda: coder.learn_one({float("nan"): 1.0, "a": 1.0}), ValueError,
                 "nan", "does not equal itself")
    assert coder._learner.B.shape[0] == 3
    _invariants(coder)


@pytest.mark.parametrize("huge", [10**400, Fraction(10**400, 3)], ids=["int", "Fraction"])
def test_item4_value_too_large_for_a_float_is_valueerror_naming_the_feature(huge):
    coder = _fitted_coder()
    _refused(coder, lambda: coder.learn_one({"a": 1.0, "big": huge}), ValueError,
             "'big'", "too large")
    _refused(coder, lambda: coder.transform_one({"a": 1.0, "big": huge}), ValueError, "'big'")


def test_item4_duplicate_dataframe_columns_learn_many():
    coder = _fitted_coder()
    X = pd.DataFrame([[1.0, 2.0, 3.0]], columns=["a", "b", "a"])
    _refused(coder, lambda: coder.learn_many(X), ValueError, "duplicate column", "'a'")


def test_item4_duplicate_dataframe_columns_sklearn():
    from streamsc.sklearn import SparseCodingTransformer

    X = pd.DataFrame(np.abs(np.random.default_rng(0).normal(size=(6, 3))) + 0.1,
                     columns=["a", "b", "a"])
    model = SparseCodingTransformer(n_components=2, random_state=0)
    before = dict(vars(model))
    with pytest.raises(ValueError, match="duplicate column 'a'"):
        model.fit(X)
    assert vars(model).keys() == before.keys()
    with pytest.raises(ValueError, match="duplicate column 'a'"):
        model.partial_fit(X)
    assert not hasattr(model, "components_")
    good = X.iloc[:, :2].set_axis(["a", "b"], axis=1)
    model.fit(good)
    comps = model.components_.copy()
    with pytest.raises(ValueError, match="duplicate column"):
        model.partial_fit(X)
    np.testing.assert_array_equal(model.components_, comps)
    with pytest.raises(ValueError, match="duplicate column"):
        model.transform(X)


def test_item5_lone_surrogate_name_refused_and_model_still_works():
    coder = _fitted_coder()
    _refused(coder, lambda: coder.learn_one({"\ud800": 1.0, "a": 1.0}), ValueError,
             "not valid Unicode")
    _refused(coder, lambda: coder.learn_one({"x\udfff": 1.0}), ValueError, "UTF-8")
    coder.learn_one({"new": 1.0, "a": 2.0})
    coder.learn_one({"newer": -1.0, "é": 0.5})
    _invariants(coder)
    assert list(coder.basis_.index) == list(coder._features.names)
    assert {"new", "newer", "é"} <= set(coder.basis_.index)


def test_item5_regressor_huge_first_target_refused_then_usable():
    model = SparseCodingRegressor(coder=SparseCoder(n_components=3, seed=0))
    x = {"a": 1.0, "b": -0.5}
    _refused(model, lambda: model.learn_one(x, 1e200), ValueError, "too large")
    _refused(model, lambda: model.learn_one(x, 10**400), ValueError, "too large")
    model.learn_one(x, 0.5)
    model.learn_one({"a": -1.0, "b": 0.5}, -0.5)
    assert math.isfinite(model.predict_one(x))
    assert model.coder_._learner.t == 2
    _invariants(model.coder_)


def test_item5_p_array_is_copied():
    p = np.array([0.5, 1.0, 2.0])
    coder = SparseCoder(n_components=3, p=p, seed=0)
    coder.learn_one({"a": 1.0, "b": 0.5})
    # the learner's copy is what the model computes with (``coder.p``, the constructor
    # argument river's clone reads, stays the caller's object)
    before = pickle.dumps(coder._learner)
    kept = np.array(coder._learner.config.p, copy=True)
    p[:] = 100.0
    assert pickle.dumps(coder._learner) == before
    np.testing.assert_array_equal(coder._learner.config.p, kept)
    twin = SparseCoder(n_components=3, p=np.array([0.5, 1.0, 2.0]), seed=0)
    twin.learn_one({"a": 1.0, "b": 0.5})
    for c in (coder, twin):
        c.learn_one({"a": 0.2, "b": 1.5})
    assert coder._learner.B.tobytes() == twin._learner.B.tobytes()


def _sk_state(model):
    return pickle.dumps(model), _arrays(model), model.components_.tobytes()


def test_item6_sklearn_partial_fit_bad_row_changes_nothing():
    from streamsc.sklearn import SparseCodingTransformer

    rng = np.random.default_rng(0)
    X = rng.normal(size=(8, 4))
    model = SparseCodingTransformer(n_components=3, random_state=0).partial_fit(X)
    before = _sk_state(model)
    n_steps = model.n_steps_
    bad = rng.normal(size=(5, 4))
    bad[3, 1] = np.nan
    with pytest.raises(ValueError):
        model.partial_fit(bad)
    assert _sk_state(model) == before
    assert model.n_steps_ == n_steps
    model.partial_fit(bad[:3])
    assert model.n_steps_ == n_steps + 3
    check_basis(model._learner.B)


def test_item6_sklearn_refused_first_fit_leaves_unfitted():
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    from streamsc.sklearn import SparseCodingTransformer

    X = np.random.default_rng(0).normal(size=(6, 3))
    X[4, 0] = np.inf
    model = SparseCodingTransformer(n_components=2, random_state=0)
    keys = set(vars(model))
    with pytest.raises(ValueError):
        model.fit(X)
    assert set(vars(model)) == keys
    with pytest.raises(NotFittedError):
        check_is_fitted(model)
    # a fitted model refusing a re-fit keeps components_ and n_features_in_ in agreement
    good = np.random.default_rng(1).normal(size=(6, 3))
    model.fit(good)
    before = _sk_state(model)
    wide = np.random.default_rng(2).normal(size=(6, 5))
    wide[2, 2] = np.nan
    with pytest.raises(ValueError):
        model.fit(wide)
    assert _sk_state(model) == before
    assert model.n_features_in_ == model.components_.shape[1] == 3


def test_item6_unrolled_refusal_keeps_power_vector():
    coder = SparseCoder(n_components=3, prior="l1", gradient="unrolled", seed=0)
    for i in range(4):
        coder.learn_one({"a": 1.0 + i, "b": -0.5, "c": 0.25 * i})
    vec = coder._learner.power_vector
    assert vec is not None
    vec = vec.copy()
    before = _state(coder)
    for bad in ({"a": float("nan")}, {"a": 1e200, "b": 1.0}, {"a": "1"}):
        with pytest.raises((ValueError, TypeError)):
            coder.learn_one(bad)
        assert _state(coder) == before
        np.testing.assert_array_equal(coder._learner.power_vector, vec)


def test_item8_two_threads_learning_leave_a_consistent_model():
    coder = SparseCoder(n_components=4, seed=0)
    errors = []

    def work(tag, seed):
        rng = np.random.default_rng(seed)
        try:
            for i in range(2000):
                x = {f"{tag}{int(j)}": float(v) for j, v in
                     zip(rng.integers(0, 30, 3), rng.normal(size=3))}
                x["shared"] = 1.0
                coder.learn_one(x)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(tag, s)) for s, tag in enumerate("pq")]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    names = list(coder._features.names)
    assert len(set(names)) == len(names)
    basis = coder.basis_
    assert basis.shape == (len(names), 4)
    assert set(basis.index) == set(names)
    _invariants(coder)
    assert np.isfinite(basis.to_numpy()).all()
    assert coder._learner.t == 4000


# item 10: a step refused as too large names the feature; a labelled step whose
# backpropagated part is too large takes the reconstruction step alone


@pytest.mark.parametrize("prior", ["kl", "l1"])
def test_item10_too_large_names_the_largest_feature(prior):
    coder = _fitted_coder(prior=prior)
    message = _refused(coder, lambda: coder.learn_one({"a": 1.0, "b": 1e200}), ValueError,
                       "too large to learn from", "'b'", "1e+200")
    assert "'a'" not in message


@pytest.mark.parametrize("mini_batch", [False, True])
def test_item10_too_large_in_a_frame_names_the_row_and_feature(mini_batch):
    coder = _fitted_coder(prior="l1", mini_batch=mini_batch)
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [0.5, 1e200, 0.5], "c": [0.0] * 3})
    message = _refused(coder, lambda: coder.learn_many(frame), ValueError,
                       "too large to learn from", "'b'")
    assert ("row 1 of this frame" in message) != mini_batch


@pytest.mark.parametrize("cls", [SparseCodingClassifier, SparseCodingRegressor])
def test_item10_a_backprop_step_too_large_takes_the_reconstruction_step(cls, monkeypatch):
    """A labelled example whose backpropagated gradient overflows (forced: the unrolled
    backward pass raises as it does when its iterates overflow) is learned from all the
    same -- the reconstruction step alone -- and counted in n_backprop_skipped_: the
    stream goes on."""
    from streamsc import _basis_steps

    model = cls(n_components=3, seed=0, gradient="unrolled")
    rng = np.random.default_rng(0)
    labels = [0, 1] if cls is SparseCodingClassifier else [0.5, -1.5]
    for i in range(12):
        model.learn_one({"a": rng.normal(), "b": rng.normal(), "c": 1.0}, labels[i % 2])
    real = _basis_steps.unrolled_gradient

    def overflowing(*args, grad_w=None, **kwargs):
        if grad_w is not None:
            raise FloatingPointError("the unrolled iterates overflow")
        return real(*args, grad_w=grad_w, **kwargs)

    monkeypatch.setattr(_basis_steps, "unrolled_gradient", overflowing)
    B_before = model.coder_._learner.B.copy()
    skipped = model.n_backprop_skipped_
    model.learn_one({"a": 0.3, "b": -0.2, "c": 1.0}, labels[0])
    assert model.n_backprop_skipped_ == skipped + 1
    B = model.coder_._learner.B
    check_basis(B)
    assert not np.array_equal(B, B_before)  # the reconstruction step was taken


@pytest.mark.parametrize("learning_rate", [30.0, 1e200])
@pytest.mark.parametrize("cls", [SparseCodingClassifier, SparseCodingRegressor])
def test_item10_a_huge_learning_rate_neither_diverges_nor_refuses(cls, learning_rate):
    """The heads' normalised step is capped at the step that fits the example, and the
    basis step is AdaGrad's: a huge learning_rate refuses nothing and leaves every
    prediction finite and of the targets' scale."""
    model = cls(n_components=4, seed=0, gradient="implicit", learning_rate=learning_rate)
    rng = np.random.default_rng(0)
    for _ in range(300):
        x = {f"f{j}": rng.standard_normal() for j in range(6)}
        y = 3.0 * x["f0"] + 0.1 * rng.standard_normal()
        model.learn_one(x, y > 0 if cls is SparseCodingClassifier else y)
        check_basis(model.coder_._learner.B)
    for _ in range(20):
        x = {f"f{j}": rng.standard_normal() for j in range(6)}
        y_hat = model.predict_one(x)
        if cls is SparseCodingRegressor:
            assert math.isfinite(y_hat) and abs(y_hat) < 100.0
        else:
            proba = model.predict_proba_one(x)
            assert all(math.isfinite(q) for q in proba.values())
