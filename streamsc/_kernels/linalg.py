"""Dense matrix-vector products used inside per-example kernels (no BLAS calls)."""

import numpy as np
from numba import njit

from .._config import NJIT, NJIT_INLINE, NJIT_REDUCE


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


@njit(**NJIT_INLINE)
def max_abs(v, n):
    """max_j |v_j| over the first n entries (0.0 if n is 0)."""
    top = 0.0
    for j in range(n):
        a = abs(v[j])
        if a > top:
            top = a
    return top


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
def cholesky_inplace(A):
    """In-place Cholesky factor of a symmetric positive definite A: on return the lower
    triangle holds L with A = L L^T (the strict upper triangle is left as it was). Returns
    False, leaving A partly overwritten, if a pivot is not positive."""
    n = A.shape[0]
    for i in range(n):
        for j in range(i + 1):
            s = A[i, j] - dot(A[i, :j], A[j, :j])
            if i == j:
                if not s > 0.0:
                    return False
                A[i, i] = np.sqrt(s)
            else:
                A[i, j] = s / A[j, j]
    return True


@njit(**NJIT)
def chol_solve(L, b, y):
    """y = (L L^T)^{-1} b for a lower-triangular Cholesky factor L."""
    n = b.shape[0]
    for i in range(n):
        y[i] = (b[i] - dot(L[i, :i], y[:i])) / L[i, i]
    for i in range(n - 1, -1, -1):
        s = y[i]
        for j in range(i + 1, n):
            s -= L[j, i] * y[j]
        y[i] = s / L[i, i]


@njit(**NJIT)
def solve_spd(A, b):
    """Solve A y = b for a symmetric positive definite A (Cholesky). If A is not positive
    definite (to rounding) y is all NaN: kernels never raise, since an exception inside
    compiled code leaks memory; callers treat NaN as a failed step."""
    n = b.shape[0]
    L = A.copy()
    y = np.empty(n)
    if not cholesky_inplace(L):
        y[:] = np.nan
        return y
    chol_solve(L, b, y)
    return y
