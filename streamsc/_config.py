"""Compilation flags for every numba kernel, kept in one place.

Kernels are compiled lazily (no signature strings, nothing at import time) and cached on
disk (``cache=True``), so the second process starts fast. If numba's cache directory is not
writable numba warns and compiles in memory; nothing else changes.
"""

#: flags for ordinary kernels: IEEE semantics, no reassociation
NJIT = dict(cache=True, nogil=True, fastmath=False)

#: flags for dot-product reductions only: reassociation lets LLVM vectorise the sum
#: (results are deterministic for a given machine, not bit-equal to a naive loop)
NJIT_REDUCE = dict(cache=True, nogil=True, fastmath={"reassoc", "contract"})

#: flags for batch drivers that run one example per thread
NJIT_PARALLEL = dict(cache=True, nogil=True, fastmath=False, parallel=True)
