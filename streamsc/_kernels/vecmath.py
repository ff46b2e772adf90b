"""Elementwise ``exp`` over a whole vector, in a loop LLVM can vectorise.

numba compiles ``np.exp`` of a scalar to a call into the C library, one element at a time
(numba vectorises it only with Intel's SVML, which the pip builds of llvmlite do not use).
At (m, k) = (64, 256) the 256 calls of one EGD step cost more than its two matrix-vector
products. :func:`exp` computes the same function with arithmetic only:

    exp(x) = 2^n exp(r),   n = round(x / ln 2),   r = x - n ln 2  (|r| <= ln 2 / 2)

with ``n ln 2`` subtracted in two parts (Cody and Waite: the high part has trailing zero
bits, so ``n * LN2_HI`` is exact), ``exp(r)`` its Taylor polynomial of degree 13
(truncation error below 5e-18 relative on |r| <= ln 2 / 2) and ``2^n`` built from its
IEEE bits (``(n + 1023) << 52``, read back as a float through an int64 scratch array).
The result is within a few units in the last place of the C library's (the test bound is
4 ulp over the whole range). Below ``EXP_MIN`` (where exp leaves the normal range) it
returns 0 instead of a subnormal number; above ``EXP_MAX`` inf; NaN for NaN.
"""

import numpy as np
from numba import njit

from .._config import NJIT_VECMATH

LOG2E = 1.4426950408889634
LN2_HI = 6.93147180369123816490e-01  # fdlibm's split of ln 2: 32 significant bits ...
LN2_LO = 1.90821492927058770002e-10  # ... and the rest
#: exp(x) for x < EXP_MIN is returned as 0 (exp(EXP_MIN) is the smallest normal double,
#: 2^-1022); above EXP_MAX it overflows to inf
EXP_MIN = -708.3964185322641
EXP_MAX = 709.782712893384
# 1/j! for j = 13, 12, ..., 2 (Horner, highest degree first)
_C13 = 1.0 / 6227020800.0
_C12 = 1.0 / 479001600.0
_C11 = 1.0 / 39916800.0
_C10 = 1.0 / 3628800.0
_C9 = 1.0 / 362880.0
_C8 = 1.0 / 40320.0
_C7 = 1.0 / 5040.0
_C6 = 1.0 / 720.0
_C5 = 1.0 / 120.0
_C4 = 1.0 / 24.0
_C3 = 1.0 / 6.0
_C2 = 0.5


@njit(**NJIT_VECMATH)
def exp(x, out, bits):
    """out[j] = exp(x[j]) for float64 vectors x and out of length n (out must not be x),
    with ``bits`` an int64 scratch vector of length n."""
    n = x.shape[0]
    for j in range(n):  # branch-free: LLVM vectorises it
        xj = x[j]
        t = EXP_MIN if xj < EXP_MIN else xj
        t = EXP_MAX if t > EXP_MAX else t
        t = 0.0 if xj != xj else t  # NaN: any finite t (the result is set to NaN below)
        nf = np.floor(t * LOG2E + 0.5)
        r = (t - nf * LN2_HI) - nf * LN2_LO
        q = _C13
        q = q * r + _C12
        q = q * r + _C11
        q = q * r + _C10
        q = q * r + _C9
        q = q * r + _C8
        q = q * r + _C7
        q = q * r + _C6
        q = q * r + _C5
        q = q * r + _C4
        q = q * r + _C3
        q = q * r + _C2
        e = 1.0 + r * (1.0 + r * q)
        # n runs from -1022 (at EXP_MIN) to 1024 (near EXP_MAX), whose bits would be inf's:
        # 2^1024 is taken as 2 * 2^1023
        e = e * 2.0 if nf > 1023.0 else e
        e = 0.0 if xj < EXP_MIN else e
        e = np.inf if xj > EXP_MAX else e
        out[j] = xj if xj != xj else e  # NaN stays NaN (2^n below is finite, non-zero)
        bits[j] = (np.int64(min(nf, 1023.0)) + 1023) << 52
    scale = bits.view(np.float64)
    for j in range(n):
        out[j] *= scale[j]
