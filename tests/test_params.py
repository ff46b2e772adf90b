"""The one schema of parameters (streamsc._params): every estimator's constructor arguments
are in it, each estimator validates through it, and the scikit-learn constraints built from
it accept what its checkers accept."""

import inspect

import numpy as np
import pytest

from streamsc import SparseCoder, SparseCodingClassifier, SparseCodingRegressor, _params
from streamsc._supervised import HEAD_PARAMS
from streamsc.sklearn import SparseCodingTransformer


def test_every_constructor_argument_is_in_the_schema():
    for cls in (SparseCoder, SparseCodingClassifier, SparseCodingRegressor,
                SparseCodingTransformer):
        names = set(inspect.signature(cls).parameters) - {"coder"}  # a model, not a value
        assert names <= set(_params.SCHEMA), (cls.__name__, names - set(_params.SCHEMA))
    assert set(HEAD_PARAMS) <= set(_params.SCHEMA)
    assert set(_params.LEARNER_PARAMS) == set(_params.PARAMETER_CONSTRAINTS)


def test_validate_names_the_parameter_and_refuses_unknown_ones():
    assert _params.validate({"l2": 0, "raw_features": True}) == {"l2": 0.0,
                                                                 "raw_features": True}
    with pytest.raises(ValueError, match="l2 must be >= 0"):
        _params.validate({"l2": -1.0})
    with pytest.raises(TypeError, match="unknown parameter"):
        _params.validate({"n_atoms": 3})
    with pytest.raises(TypeError, match="unknown parameter"):
        _params.check_params({"n_components": 3, "l2": 0.0})


@pytest.mark.parametrize(
    "name, good, bad",
    [
        ("n_components", [1, 7, np.int64(3)], [0, -2]),
        ("lam", [None, 0.5, 1], [0.0, -1.0]),
        ("p", [None, 0.1, [0.2, 0.3]], [0.0, -0.5]),
        ("learning_rate", [1e-12, 2.0], [0.0, -1.0]),
        ("tol", [None, 1e-6], [0.0]),
        ("solver", [None, "newton", "egd", "egd_diag"], ["lbfgs"]),
        ("max_iter", [None, 1, 50], [0]),
        ("loss", ["squared", "kl"], ["hinge"]),
        ("gradient", ["alternating", "implicit", "unrolled"], ["exact"]),
        ("basis_update", ["auto", "sgd", "surrogate"], ["adam"]),
        ("n_epochs", [1, 3], [0]),
        ("shuffle", [True, False], ["no"]),
        ("signed", [True, False], [1.5]),
        ("random_state", [None, 0, 2**32 - 1, np.random.RandomState(0)], [-3, 2**32, "s"]),
    ],
)
def test_sklearn_constraints_agree_with_the_checkers(name, good, bad):
    """What the schema's checker accepts, scikit-learn's constraints from the schema accept,
    and both refuse the bad values (the checker with TypeError or ValueError)."""
    from sklearn.utils._param_validation import InvalidParameterError, validate_parameter_constraints

    constraints = _params.sklearn_constraints([name])
    for value in good:
        _params.validate({name: value})
        validate_parameter_constraints(constraints, {name: value}, caller_name="test")
    for value in bad:
        with pytest.raises((TypeError, ValueError), match=name.split("_")[0]):
            _params.validate({name: value})
        with pytest.raises(InvalidParameterError, match=name):
            validate_parameter_constraints(constraints, {name: value}, caller_name="test")


def test_the_sklearn_wrapper_declares_the_schemas_constraints():
    names = set(inspect.signature(SparseCodingTransformer).parameters)
    assert set(SparseCodingTransformer._parameter_constraints) == names
    assert set(SparseCoder._parameter_constraints) == set(inspect.signature(SparseCoder).parameters)


def test_check_params_resolves_the_defaults():
    cfg = _params.check_params(dict(n_components=4, prior="l1", lam=None, p=None,
                                    signed=False, learning_rate=1.0, tol=None, solver=None,
                                    max_iter=None, seed=0, n_threads=2))
    assert cfg.lam == _params.DEFAULT_LAM["l1"] and cfg.lam_per_norm == cfg.lam
    np.testing.assert_array_equal(cfg.p, np.full(4, _params.DEFAULT_P / 4))
    assert cfg.solver == "egd" and cfg.basis_update == "surrogate" and cfg.n_threads == 2
    assert cfg.tol_from_lam
