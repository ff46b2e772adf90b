"""Feature names -> rows and the checks of examples given by name (streamsc._features)."""

import numpy as np
import pandas as pd
import pytest

from streamsc import _features


def test_check_basis_names_the_rows_and_uses_the_one_basis_check():
    frame = pd.DataFrame([[1.0, 0.0], [0.0, 2.0]], index=["b", "a"])
    names, arr = _features.check_basis(frame, 2)
    assert names == ["b", "a"] and arr.flags.c_contiguous
    assert _features.check_basis(np.eye(3)[:, :2], 2)[0] == [0, 1, 2]
    with pytest.raises(ValueError, match="basis has 2 atoms .* n_components is 3"):
        _features.check_basis(frame, 3)
    with pytest.raises(ValueError, match="basis has a zero column"):
        _features.check_basis(np.zeros((3, 2)), 2)
    with pytest.raises(ValueError, match="duplicate feature names"):
        _features.check_basis(pd.DataFrame(np.eye(2), index=["a", "a"]), 2)


def test_check_frame():
    columns, values = _features.check_frame(pd.DataFrame({"a": [1, 2], "b": [0.5, 1.0]}))
    assert columns == ["a", "b"] and values.dtype == np.float64
    with pytest.raises(TypeError, match="DataFrame"):
        _features.check_frame({"a": [1]})
    with pytest.raises(ValueError, match="finite"):
        _features.check_frame(pd.DataFrame({"a": [np.nan]}))
    frame = pd.DataFrame({"a": [1.0, -1.0]})
    with pytest.raises(ValueError, match="non-negative counts"):
        _features.check_frame_counts(frame, ["a"], frame.to_numpy())


def test_rows_do_not_depend_on_arrival_order():
    features = _features.Features()
    features.add(features.new_names(["z", 3, "a"]))
    assert features.names == [3, "a", "z"]
    a = _features.init_rows(["x", "y"], 3, seed=0)
    b = _features.init_rows(["y", "x"], 3, seed=0)
    np.testing.assert_array_equal(a[0], b[1])
