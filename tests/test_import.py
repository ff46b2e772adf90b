"""Importing streamsc compiles nothing: every numba kernel is compiled lazily on first call
(no signature strings), and ``cache=True`` only makes that first call cheap in a later
process. Checked in a fresh interpreter so that no other test has compiled anything yet."""

import json
import os
import subprocess
import sys

import pytest

CHECK = r"""
import importlib, json, pkgutil, sys
from numba.core.dispatcher import Dispatcher

import streamsc
import streamsc._kernels as K

for info in pkgutil.iter_modules(K.__path__):
    importlib.import_module(f"streamsc._kernels.{info.name}")

found = {}
for name, mod in sorted(sys.modules.items()):
    if name != "streamsc" and not name.startswith("streamsc."):
        continue
    for attr, obj in vars(mod).items():
        if isinstance(obj, Dispatcher) and obj.py_func.__module__ == name:
            found[f"{name}.{attr}"] = [str(s) for s in obj.signatures]
print(json.dumps(found))
"""


@pytest.fixture(scope="module")
def dispatchers():
    env = dict(os.environ)
    env.pop("NUMBA_DISABLE_JIT", None)
    out = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, env=env, timeout=300,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_kernels_are_found(dispatchers):
    names = set(dispatchers)
    for expected in (
        "streamsc._kernels.linalg.matvec",
        "streamsc._kernels.kl.kl_egd",
        "streamsc._kernels.kl.kl_newton",
        "streamsc._kernels.kl.kl_newton_batch",
        "streamsc._kernels.lasso.enet_cd",
        "streamsc._kernels.lasso.ridge",
    ):
        assert expected in names


def test_import_compiles_nothing(dispatchers):
    compiled = {name: sigs for name, sigs in dispatchers.items() if sigs}
    assert compiled == {}


def test_kernels_use_the_shared_flags():
    """Every kernel is compiled with cache=True and without signatures, from _config."""
    import importlib
    import pkgutil

    from numba.core.dispatcher import Dispatcher

    import streamsc._kernels as K
    from streamsc import _config

    allowed = [_config.NJIT, _config.NJIT_INLINE, _config.NJIT_REDUCE, _config.NJIT_PARALLEL,
               _config.NJIT_VECMATH]
    for info in pkgutil.iter_modules(K.__path__):
        mod = importlib.import_module(f"streamsc._kernels.{info.name}")
        for attr, obj in vars(mod).items():
            if isinstance(obj, Dispatcher) and obj.py_func.__module__ == mod.__name__:
                assert type(obj._cache).__name__ == "FunctionCache", f"{attr}: cache=True"
                opts = {
                    key: val for key, val in obj.targetoptions.items()
                    if key not in ("nopython", "boundscheck")
                }
                # the options passed are exactly one of the shared flag sets
                assert any(
                    opts == {key: val for key, val in flags.items() if key != "cache"}
                    for flags in allowed
                ), (attr, opts)


LAZY = r"""
import json, sys
import numpy as np

import streamsc

streamsc.encode(np.ones(8), np.eye(8))
heavy_after_encode = sorted(
    name for name in ("river", "pandas", "sklearn") if name in sys.modules
)
listed = sorted(set(streamsc.__all__) & set(dir(streamsc)))

from streamsc import SparseCodingRegressor  # noqa: E402  (the import under test)

reached = {
    name: f"{obj.__module__}.{obj.__qualname__}"
    for name in ("SparseCoder", "SparseCodingClassifier", "SparseCodingRegressor", "load")
    for obj in [getattr(streamsc, name)]
}
reached["from-import"] = SparseCodingRegressor.__module__
try:
    streamsc.no_such_name
except AttributeError as exc:
    missing = str(exc)
else:
    missing = None
print(json.dumps(dict(
    heavy_after_encode=heavy_after_encode, listed=listed, all=sorted(streamsc.__all__),
    reached=reached, missing=missing, river_now="river" in sys.modules,
)))
"""


def test_functions_do_not_import_river_or_pandas():
    """``import streamsc`` and ``encode`` leave river and pandas (and scikit-learn) unloaded;
    the river estimators and ``load`` are imported on first access (PEP 562), by attribute
    and by ``from streamsc import``, are listed by ``dir`` and are the submodules' objects
    (the class paths pickles refer to)."""
    env = dict(os.environ)
    env.pop("NUMBA_DISABLE_JIT", None)
    out = subprocess.run(
        [sys.executable, "-c", LAZY], capture_output=True, text=True, env=env, timeout=300,
        check=True,
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["heavy_after_encode"] == []
    assert got["listed"] == got["all"]  # every name of __all__, lazy ones included, in dir()
    assert got["reached"] == {
        "SparseCoder": "streamsc.sparse_coder.SparseCoder",
        "SparseCodingClassifier": "streamsc.classifier.SparseCodingClassifier",
        "SparseCodingRegressor": "streamsc.regressor.SparseCodingRegressor",
        "load": "streamsc.persistence.load",
        "from-import": "streamsc.regressor",
    }
    assert got["river_now"] is True
    assert got["missing"] == "module 'streamsc' has no attribute 'no_such_name'"


def test_all_is_unchanged():
    import streamsc

    assert sorted(streamsc.__all__) == [
        "ConvergenceWarning", "SparseCoder", "SparseCodingClassifier", "SparseCodingRegressor",
        "calibrate_tol", "default_tol", "encode", "encode_vjp", "load", "save", "unrolled_vjp",
    ]
    for name in streamsc.__all__:
        assert getattr(streamsc, name) is not None
