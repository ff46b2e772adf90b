"""The scikit-learn wrapper: scikit-learn's estimator checks, and that it is the same learner
as the river estimator."""

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from streamsc import SparseCoder
from streamsc.sklearn import SparseCodingTransformer


@parametrize_with_checks(
    [
        SparseCodingTransformer(n_components=3, random_state=0),
        SparseCodingTransformer(n_components=3, prior="l1", signed=True, random_state=0),
    ]
)
def test_sklearn_check(estimator, check):
    check(estimator)


def planted_rows(n=300, m=6, k=8, seed=0):
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((m, k))
    B /= np.linalg.norm(B, axis=0)
    W = np.where(rng.random((n, k)) < 0.25, rng.uniform(0.5, 1.5, (n, k)), 0.0)
    return W @ B.T + 0.05 * rng.standard_normal((n, m))


@pytest.mark.parametrize("prior", ["kl", "l1"])
def test_fit_equals_partial_fit(prior):
    """fit without shuffling for 3 epochs == 3 passes of row-wise partial_fit (and of
    partial_fit on the whole array): the same learner, the same steps, bit for bit
    (scikit-learn's test_dict_learning_online_partial_fit habit)."""
    X = planted_rows()
    params = dict(n_components=5, prior=prior, lam=0.05, learning_rate=0.5, random_state=4)
    fitted = SparseCodingTransformer(n_epochs=3, shuffle=False, **params).fit(X)
    by_row = SparseCodingTransformer(**params)
    by_block = SparseCodingTransformer(**params)
    for _ in range(3):
        for row in X:
            by_row.partial_fit(row[None, :])
        by_block.partial_fit(X)
    np.testing.assert_array_equal(fitted.components_, by_row.components_)
    np.testing.assert_array_equal(fitted.components_, by_block.components_)
    assert fitted.n_steps_ == by_row.n_steps_ == 3 * X.shape[0]
    assert fitted.n_iter_ == 3
    np.testing.assert_array_equal(fitted.transform(X), by_row.transform(X))


def test_same_learner_as_the_river_estimator():
    """random_state=s and seed=s, rows as dicts {0: x_0, 1: x_1, ...}: identical bases and
    codes."""
    X = planted_rows(200)
    skl = SparseCodingTransformer(n_components=5, learning_rate=0.5, random_state=7)
    skl.partial_fit(X)
    river = SparseCoder(n_components=5, learning_rate=0.5, seed=7)
    for row in X.tolist():
        river.learn_one(dict(enumerate(row)))
    np.testing.assert_array_equal(skl.components_, river.basis_.to_numpy().T)
    codes = river.transform_many(pd.DataFrame(X[:20]))
    np.testing.assert_array_equal(skl.transform(X[:20]), codes.to_numpy())


def test_shuffle_and_epochs():
    X = planted_rows(100)
    a = SparseCodingTransformer(n_components=4, random_state=1, n_epochs=2).fit(X)
    b = SparseCodingTransformer(n_components=4, random_state=1, n_epochs=2).fit(X)
    c = SparseCodingTransformer(n_components=4, random_state=1, n_epochs=2, shuffle=False).fit(X)
    np.testing.assert_array_equal(a.components_, b.components_)
    assert not np.array_equal(a.components_, c.components_)
    np.testing.assert_allclose(np.linalg.norm(a.components_, axis=1), 1.0, atol=1e-12)
    assert a.get_feature_names_out().tolist() == [f"sparsecodingtransformer{j}" for j in range(4)]


@pytest.mark.parametrize(
    "params, error, fragment",
    [
        ({"n_components": 0}, ValueError, "n_components"),
        ({"lam": -1.0}, ValueError, "lam"),
        ({"prior": "l3"}, ValueError, "prior"),
        ({"learning_rate": "fast"}, TypeError, "learning_rate"),
        ({"n_epochs": 0}, ValueError, "n_epochs"),
        ({"shuffle": "no"}, TypeError, "shuffle"),
        ({"random_state": "seed"}, TypeError, "random_state"),
        ({"random_state": -3}, ValueError, "random_state"),
    ],
)
def test_bad_parameters_raise_on_fit_and_first_partial_fit(params, error, fragment):
    X = planted_rows(10)
    for method in ("fit", "partial_fit"):
        est = SparseCodingTransformer(**params)
        with pytest.raises(error, match=fragment):
            getattr(est, method)(X)
        assert not hasattr(est, "n_features_in_")


def test_transform_before_fit_and_wrong_width():
    X = planted_rows(10)
    with pytest.raises(NotFittedError):
        SparseCodingTransformer().transform(X)
    est = SparseCodingTransformer(n_components=3, random_state=0).fit(X)
    with pytest.raises(ValueError, match="features"):
        est.transform(X[:, :4])
    with pytest.raises(ValueError, match="features"):
        est.partial_fit(X[:, :4])


def test_parameters_are_shared_with_the_river_estimator():
    """Every SparseCoder parameter but ``seed`` is a SparseCodingTransformer parameter with
    the same default, checked by the same checker; ``random_state`` replaces ``seed``."""
    import inspect

    from streamsc._params import PARAMETER_CONSTRAINTS

    skl = inspect.signature(SparseCodingTransformer).parameters
    riv = inspect.signature(SparseCoder).parameters
    assert set(skl) == (set(PARAMETER_CONSTRAINTS) - {"seed"}) | {
        "n_epochs", "shuffle", "random_state"}
    for name in set(PARAMETER_CONSTRAINTS) - {"seed"}:
        assert skl[name].default == riv[name].default, name


@pytest.mark.parametrize("loss", ["squared", "kl"])
def test_score_is_the_negative_mean_reconstruction_loss(loss):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 4, (40, 6)).astype(float) + (loss == "kl") * np.eye(6)[rng.integers(6, size=40)]
    model = SparseCodingTransformer(n_components=3, loss=loss, random_state=0).fit(X)
    W = model.transform(X)
    Z = W @ model.components_
    if loss == "kl":
        P = X / X.sum(axis=1, keepdims=True)
        Q = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            want = -np.mean(np.sum(np.where(P > 0, P * np.log(P / Q), 0.0), axis=1))
    else:
        want = -np.mean(0.5 * np.sum((X - Z) ** 2, axis=1))
    assert model.score(X) == pytest.approx(want, rel=1e-12)
    assert model.score(X) < 0.0
