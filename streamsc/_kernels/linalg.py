"""Dense matrix-vector products used inside per-example kernels (no BLAS calls)."""

import numpy as np
from numba import njit

from .._config import NJIT, NJIT_REDUCE


@njit(**NJIT_REDUCE)
def matvec(B, v, out):
    """out = B @ v for B of shape (m, k)."""
    m, k = B.shape
    for i in range(m):
        s = 0.0
        for j in range(k):
            s += B[i, j] * v[j]
        out[i] = s


@njit(**NJIT_REDUCE)
def rmatvec(B, r, out):
    """out = B.T @ r for B of shape (m, k)."""
    m, k = B.shape
    for j in range(k):
        out[j] = 0.0
    for i in range(m):
        ri = r[i]
        for j in range(k):
            out[j] += ri * B[i, j]


@njit(**NJIT_REDUCE)
def dot(a, b):
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i] * b[i]
    return s


@njit(**NJIT)
def col_sq_norms(B, out):
    """out[j] = ||B[:, j]||^2."""
    m, k = B.shape
    for j in range(k):
        out[j] = 0.0
    for i in range(m):
        for j in range(k):
            out[j] += B[i, j] * B[i, j]


@njit(**NJIT)
def solve_spd(A, b):
    """Solve A y = b for a symmetric positive definite A (Cholesky, LAPACK)."""
    L = np.linalg.cholesky(A)
    n = b.shape[0]
    y = np.empty(n)
    for i in range(n):
        s = b[i]
        for j in range(i):
            s -= L[i, j] * y[j]
        y[i] = s / L[i, i]
    for i in range(n - 1, -1, -1):
        s = y[i]
        for j in range(i + 1, n):
            s -= L[j, i] * y[j]
        y[i] = s / L[i, i]
    return y
