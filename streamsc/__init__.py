"""streamsc: online, differentiable sparse coding.

The system of Bradley & Bagnell, "Differentiable Sparse Coding" (NIPS 2008) as a streaming
learner: KL-regularised codes by EGD or a dual Newton solver, online basis learning, implicit
gradients of the codes, numba kernels and river's estimator interface.
"""

from .coding import ConvergenceWarning, calibrate_tol, default_tol, encode
from .differentiation import encode_vjp
from .unrolled import unrolled_vjp
from .sparse_coder import SparseCoder
from .classifier import SparseCodingClassifier
from .regressor import SparseCodingRegressor
from .persistence import load

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
    "unrolled_vjp",
]
