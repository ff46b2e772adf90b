"""The supervised models with their defaults (only ``seed`` given) against river's linear
baselines on river's own streams, in the same process, behind a StandardScaler (issue 18;
``demos/river_streams.py`` prints the same comparison as a table). Plus the API: coder
parameters taken directly, ``basis=`` surviving ``clone()``, the mini-batch methods."""

import collections

import numpy as np
import pandas as pd
import pytest
from river import datasets, linear_model, metrics, multiclass, preprocessing

from streamsc import SparseCoder, SparseCodingClassifier, SparseCodingRegressor


def progressive(model, data, metric):
    for x, y in data:
        y_pred = model.predict_one(x)
        if y_pred is not None:
            metric.update(y, y_pred)
        model.learn_one(x, y)
    return metric.get()


STREAMS = {"Phishing": (datasets.Phishing, False), "Bananas": (datasets.Bananas, False),
           "ImageSegments": (datasets.ImageSegments, True)}


@pytest.mark.parametrize("name", list(STREAMS))
def test_default_classifier_beats_river_logistic_regression(name):
    make, multi = STREAMS[name]
    data = list(make())
    ours = preprocessing.StandardScaler() | SparseCodingClassifier(seed=0)
    base = linear_model.LogisticRegression()
    theirs = preprocessing.StandardScaler() | (
        multiclass.OneVsRestClassifier(base) if multi else base)
    acc_ours = progressive(ours, data, metrics.Accuracy())
    acc_theirs = progressive(theirs, data, metrics.Accuracy())
    assert acc_ours >= acc_theirs, (acc_ours, acc_theirs)


def test_default_regressor_beats_river_linear_regression():
    data = list(datasets.TrumpApproval())
    ours = preprocessing.StandardScaler() | SparseCodingRegressor(seed=0)
    theirs = preprocessing.StandardScaler() | linear_model.LinearRegression()
    mae_ours = progressive(ours, data, metrics.MAE())
    mae_theirs = progressive(theirs, data, metrics.MAE())
    assert mae_ours < mae_theirs, (mae_ours, mae_theirs)


def test_bananas_above_the_majority_class():
    """Bananas is not linearly separable: river's logistic regression stays below always
    predicting the majority class (55.2 %); a signed 6-atom KL coder (the settings of the
    classifier's former docstring, once 44.8 %: it predicted the minority class for 4,904
    of 5,300 examples) no longer collapses onto one class and is about as good as a linear
    model (within a point of river's: its head, at learning_rate=0.5, is the more accurate
    but the less calibrated of its two experts, and the mixture follows the linear
    expert's lower log-loss), and the defaults are far above the majority."""
    data = list(datasets.Bananas())
    counts = collections.Counter(y for _, y in data)
    majority = max(counts.values()) / len(data)
    small = SparseCodingClassifier(coder=SparseCoder(n_components=6, signed=True, lam=0.05,
                                                     seed=0), learning_rate=0.5)
    model = preprocessing.StandardScaler() | small
    preds = collections.Counter()
    acc = metrics.Accuracy()
    for x, y in data:
        y_pred = model.predict_one(x)
        preds[y_pred] += 1
        if y_pred is not None:
            acc.update(y, y_pred)
        model.learn_one(x, y)
    lr = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    assert acc.get() >= progressive(lr, data, metrics.Accuracy()) - 0.01
    assert max(preds[True], preds[False]) < 0.7 * len(data)  # no collapse onto one class
    default = preprocessing.StandardScaler() | SparseCodingClassifier(seed=0)
    assert progressive(default, data, metrics.Accuracy()) > majority + 0.15


def test_stream_with_l1_implicit_backprop_never_stops():
    """The stream of issue 22 (item 1): an L1 coder with implicit back-propagation over
    Bananas raised FloatingPointError 9-21 times; an example whose implicit gradient is not
    finite now takes the reconstruction step alone (counted), and the stream runs through."""
    clf = SparseCodingClassifier(coder=SparseCoder(prior="l1", seed=0), gradient="implicit")
    model = preprocessing.StandardScaler() | clf
    acc = progressive(model, list(datasets.Bananas()), metrics.Accuracy())
    assert acc > 0.6
    assert isinstance(clf.n_backprop_skipped_, int) and clf.n_backprop_skipped_ >= 0
    assert np.isfinite(clf.coder_._learner.B).all()


def test_coder_parameters_taken_directly():
    model = SparseCodingClassifier(n_components=5, prior="l1", signed=True, seed=3)
    coder = model.coder_
    assert (coder.n_components, coder.prior, coder.signed, coder.seed) == (5, "l1", True, 3)
    assert "n_components=5" in repr(model) and "prior=\"l1\"" in repr(model).replace("'", '"')
    with pytest.raises(ValueError, match="either a coder or its parameters"):
        SparseCodingClassifier(coder=SparseCoder(), n_components=5)
    with pytest.raises(ValueError, match="either a coder or its parameters"):
        SparseCodingRegressor(coder=SparseCoder(), seed=1)


@pytest.mark.parametrize("cls", [SparseCodingClassifier, SparseCodingRegressor])
def test_pretrained_basis_survives_clone(cls):
    rng = np.random.default_rng(0)
    coder = SparseCoder(n_components=4, seed=0)
    for _ in range(50):
        coder.learn_one(dict(zip("abcde", rng.normal(size=5))))
    model = cls(basis=coder.basis_, seed=0)
    fresh = model.clone()
    pd.testing.assert_frame_equal(fresh.coder_.basis_, coder.basis_)
    pd.testing.assert_frame_equal(model.coder_.basis_, coder.basis_)


def _frame(n, seed):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 4)), columns=list("abcd"))
    y = pd.Series(X["a"] - X["b"] > 0, name="y")
    return X, y


def test_classifier_mini_batch_methods_equal_the_one_example_methods():
    X, y = _frame(60, 0)
    batch = SparseCodingClassifier(n_components=5, seed=0)
    loop = SparseCodingClassifier(n_components=5, seed=0)
    batch.learn_many(X[:40], y[:40])
    for x, label in zip(X[:40].to_dict(orient="records"), y[:40]):
        loop.learn_one(x, label)
    rows = X[40:].to_dict(orient="records")
    assert batch.predict_many(X[40:]).tolist() == [loop.predict_one(x) for x in rows]
    proba = batch.predict_proba_many(X[40:])
    assert list(proba.index) == list(X.index[40:])
    expected = pd.DataFrame([loop.predict_proba_one(x) for x in rows], index=X.index[40:])
    pd.testing.assert_frame_equal(proba, expected.reindex(columns=proba.columns), check_exact=True)


def test_regressor_learn_many_is_all_or_nothing():
    X, _ = _frame(30, 1)
    y = X["a"] * 2.0
    model = SparseCodingRegressor(n_components=4, seed=0)
    model.learn_many(X[:10], y[:10])
    before = model.predict_many(X[10:]).tolist()
    B = model.coder_._learner.B.copy()
    bad = X[10:20].copy()
    bad.iloc[5, 2] = np.nan
    with pytest.raises(ValueError, match="finite"):
        model.learn_many(bad, y[10:20])
    assert np.array_equal(model.coder_._learner.B, B)
    assert model.predict_many(X[10:]).tolist() == before
    labels = list(y[10:20])
    labels[7] = float("inf")
    with pytest.raises(ValueError, match="finite"):
        model.learn_many(X[10:20], labels)
    assert np.array_equal(model.coder_._learner.B, B)
    assert model.predict_many(X[10:]).tolist() == before


def _river_streams_demo():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "demos" / "river_streams.py"
    spec = importlib.util.spec_from_file_location("demos_river_streams", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_digits_transfer_pretrained_basis_beats_a_fresh_one():
    """The digits transfer with the defaults (only ``seed`` and ``basis`` given): a basis
    learned without labels on the digits 0-4 beats a fresh one on the labelled stream of
    5-9 on average over seeds 0-7, and the model beats river's softmax regression at every
    seed. The stream is about 900 digits, so one seed's gain is a handful of digits either
    way; the mean over eight is the property (with one shared step for the head's code and
    raw blocks it was +0.00 points)."""
    _, rows = _river_streams_demo().transfer_table(range(8))
    gains = [pre - fresh for _, pre, fresh, _ in rows]
    assert np.mean(gains) > 0.1, rows
    assert sum(g > 0 for g in gains) > sum(g < 0 for g in gains), rows
    assert all(pre > river for _, pre, _, river in rows), rows
