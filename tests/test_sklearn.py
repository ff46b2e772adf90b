"""The scikit-learn wrapper: scikit-learn's estimator checks, and that it is the same learner
as the river estimator."""

import numpy as np
import pytest
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
