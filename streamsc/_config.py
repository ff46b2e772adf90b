"""Compilation flags for every numba kernel, kept in one place.

Kernels are compiled lazily (no signature strings, nothing at import time) and cached on
disk (``cache=True``), so the second process starts fast. If numba's cache directory is not
writable numba warns and compiles in memory; nothing else changes.
"""

#: flags for ordinary kernels: IEEE semantics, no reassociation; division by zero gives
#: inf/nan as in NumPy (the solvers test for it) instead of raising
NJIT = dict(cache=True, nogil=True, fastmath=False, error_model="numpy")

#: flags for small helpers called from one solver: inlined into the caller's numba IR, so
#: they compile as part of it instead of as kernels of their own (numba links a kernel's
#: callees into it and optimises the whole again for each caller up the chain, and each
#: kernel costs a fixed 0.1-0.2 s with the cache empty): a shorter cold start. Never for
#: large helpers (inlining a solver's body made its compile slower)
NJIT_INLINE = dict(NJIT, inline="always")

#: flags for dot-product reductions only: reassociation lets LLVM vectorise the sum
#: (results are deterministic for a given machine, not bit-equal to a naive loop)
NJIT_REDUCE = dict(cache=True, nogil=True, fastmath={"reassoc", "contract"}, error_model="numpy")

#: flags for batch drivers that run one example per thread
NJIT_PARALLEL = dict(
    cache=True, nogil=True, fastmath=False, error_model="numpy", parallel=True
)

#: flags for branch-free elementwise loops (``_kernels/vecmath.py``): contraction lets LLVM
#: fuse multiply-adds, without which it leaves these loops scalar; no reassociation
NJIT_VECMATH = dict(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
