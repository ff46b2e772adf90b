"""river's own estimator checks on every estimator streamsc exports (as river's
test_estimators.py does): each estimator is built from each of its ``_unit_test_params`` and
run through every check of ``river.checks.yield_checks`` not named in ``_unit_test_skips``.
New estimators exported in ``streamsc.__all__`` are picked up automatically."""

import inspect

import pytest
from river import base
from river.checks import yield_checks

import streamsc


def _estimators():
    for name in streamsc.__all__:
        obj = getattr(streamsc, name)
        if inspect.isclass(obj) and issubclass(obj, base.Estimator):
            yield obj


def _cases():
    for cls in _estimators():
        for i, params in enumerate(cls._unit_test_params()):
            model = cls(**params)
            skips = set(model._unit_test_skips())
            for check in yield_checks(model):
                if check.__name__ in skips:
                    continue
                dataset = getattr(check, "keywords", {}).get("dataset")
                suffix = f"-{type(dataset).__name__}" if dataset is not None else ""
                yield pytest.param(
                    model, check, id=f"{cls.__name__}[{i}]-{check.__name__}{suffix}"
                )


def test_some_estimators_found():
    assert streamsc.SparseCoder in set(_estimators())


@pytest.mark.parametrize("model, check", list(_cases()))
def test_river_check(model, check):
    check(model.clone())
