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
