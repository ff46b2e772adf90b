"""streamsc: online, differentiable sparse coding.

The system of Bradley & Bagnell, "Differentiable Sparse Coding" (NIPS 2008) as a streaming
learner: KL-regularised codes by EGD or a dual Newton solver, online basis learning, implicit
gradients of the codes, numba kernels and river's estimator interface.

:func:`encode` and its helpers are imported with the package; everything else -- the
gradients (:func:`encode_vjp`, :func:`unrolled_vjp`), the river estimators and :func:`load`,
which need river and pandas -- is imported on first use of its name (``streamsc.SparseCoder``
or ``from streamsc import SparseCoder``), so a script that only codes examples does not pay
for importing river, pandas or kernels it does not call.
"""

import importlib

from .coding import ConvergenceWarning, calibrate_tol, default_tol, encode

__version__ = "0.1.0"

__all__ = [
    "ConvergenceWarning",
    "SparseCoder",
    "SparseCodingClassifier",
    "SparseCodingRegressor",
    "calibrate_tol",
    "default_tol",
    "encode",
    "encode_vjp",
    "load",
    "save",
    "unrolled_vjp",
]

#: names imported on first access (PEP 562): name -> submodule defining it
_LAZY = {
    "SparseCoder": ".sparse_coder",
    "SparseCodingClassifier": ".classifier",
    "SparseCodingRegressor": ".regressor",
    "encode_vjp": ".differentiation",
    "load": ".persistence",
    "save": ".persistence",
    "unrolled_vjp": ".unrolled",
}


def __getattr__(name):
    """Import a lazily loaded name (``_LAZY``) from its submodule on first access."""
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later accesses skip this function
    return value


def __dir__():
    """The module's names, the ones not imported yet included."""
    return sorted(set(globals()) | set(_LAZY))
