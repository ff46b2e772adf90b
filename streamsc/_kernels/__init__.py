"""numba kernels: pure ``@njit`` functions over NumPy arrays, no Python objects.

Conventions shared by every kernel:

* ``B`` is the basis, shape ``(m, k)``, C-contiguous float64: one atom per column, as in
  the paper. Signed codes never materialise ``[B, -B]``: a signed state vector has length
  ``2k`` with ``w[:k] = w+`` and ``w[k:] = w-`` and the code is ``w+ - w-``.
* ``tol`` is always a bound on the largest violation of the optimality conditions
  (``max_j |dL/dw_j|`` for the KL prior, the minimum-norm subgradient for L1), so
  every solver stops on the same criterion as the paper's EGD.
* Per-example kernels do their own matrix-vector products (``linalg.py``), so they use no
  BLAS threads and are safe to run one example per thread under ``prange``; the exps of a
  whole vector go through ``vecmath.exp``, which LLVM vectorises (a scalar ``np.exp`` is a
  C-library call per element).
"""

import logging
import threading
import time

logger = logging.getLogger("streamsc")

#: seconds a first call of a kernel (numba compiling it, its on-disk cache empty) may take
#: before streamsc says so, once per process, through ``logging.getLogger("streamsc")``
COMPILE_NOTICE_AFTER = 1.0

_notice_lock = threading.Lock()
_noticed = False


def _notice(name):
    global _noticed
    with _notice_lock:
        if _noticed:
            return
        _noticed = True
    logger.warning(
        "streamsc: numba is compiling %s on first use (numba's on-disk cache is empty); "
        "this takes a few seconds once, later processes load it from the cache",
        name,
    )


def first_call(dispatcher, *args):
    """``dispatcher(*args)``, saying once per process (a WARNING on the ``streamsc`` logger,
    so on stderr when logging is not configured) when a call of a kernel with nothing
    compiled yet in this process takes over :data:`COMPILE_NOTICE_AFTER` seconds: numba is
    compiling it, and the call would otherwise look hung. A call that loads the kernel from
    numba's cache is fast and says nothing; later calls cost one attribute test. A plain
    Python function (a kernel run without numba, or a test's stand-in) is just called."""
    if _noticed or getattr(dispatcher, "overloads", True):
        return dispatcher(*args)
    name = getattr(getattr(dispatcher, "py_func", None), "__qualname__", str(dispatcher))
    timer = threading.Timer(COMPILE_NOTICE_AFTER, _notice, (name,))
    timer.daemon = True
    t0 = time.perf_counter()
    timer.start()
    try:
        return dispatcher(*args)
    finally:
        timer.cancel()
        if time.perf_counter() - t0 >= COMPILE_NOTICE_AFTER:
            _notice(name)  # the timer thread may not have run (numba holding the GIL)
