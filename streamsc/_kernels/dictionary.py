"""One stochastic-gradient step on the basis (the paper's eq. 7), in place.

For one example x with code w, the gradient of the reconstruction loss with respect to the
basis entry ``B[i, j]`` is (eq. 7, matching loss/transfer pairs)::

    dL/dB[i, j] = w_j * g_i,        g = f(B w) - x

so an SGD step is the rank-one update ``B <- B - eta * g w^T`` followed by rescaling every
column to unit L2 norm (the paper's constraint against the trivial solution of a huge B and
tiny codes). The step is split in two so other losses can reuse the update:

* :func:`squared_residual` fills ``g = B w - x`` (squared loss, linear transfer);
* :func:`softmax_residual` fills ``g = softmax(B w) - x`` over every row (KL loss,
  normalised-exponential transfer, for a distribution ``x``: the paper's Appendix D);
* :func:`sgd_update` applies ``B <- B - eta g w^T`` and the renormalisation for any ``g``.

Both act on a subset of the rows of B, ``rows`` (sorted int64 indices): the features present
in the example. Rows not in ``rows`` are not moved by the gradient step but are rescaled with
their column, so every column keeps unit norm over all rows. Nothing of size m x k is
allocated: the work is O(m k) with two length-k/length-|rows| buffers supplied by the caller.
"""

import numpy as np
from numba import njit

from .._config import NJIT
from .kl import loss_residual
from .linalg import col_sq_norms, matvec


@njit(**NJIT)
def squared_residual(B, rows, w, x, g):
    """g = B[rows] @ w - x (the squared-loss residual on the observed rows).

    Parameters
    ----------
    B: float64[m, k]  the basis
    rows: int64[r]  rows of B (features) observed in the example, x[i] belongs to rows[i]
    w: float64[k]  the code
    x: float64[r]  the observed values
    g: float64[r]  output

    Returns
    -------
    loss: float  1/2 ||B[rows] w - x||^2
    """
    k = B.shape[1]
    f = 0.0
    for t in range(rows.shape[0]):
        i = rows[t]
        s = 0.0
        for j in range(k):
            s += B[i, j] * w[j]
        s -= x[t]
        g[t] = s
        f += 0.5 * s * s
    return f


@njit(**NJIT)
def softmax_residual(B, w, x, g):
    """g = softmax(B w) - x over every row (the KL-loss residual; softmax couples all rows,
    so a word absent from the document is a zero count, not an unobserved entry).

    Parameters
    ----------
    B: float64[m, k]  the basis
    w: float64[k]  the code
    x: float64[m]  the document as a distribution (non-negative, summing to one)
    g: float64[m]  output

    Returns
    -------
    loss: float  KL(x || softmax(B w))

    Examples
    --------
    >>> import numpy as np
    >>> from streamsc._kernels.dictionary import softmax_residual
    >>> B = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    >>> x = np.array([0.5, 0.5, 0.0])
    >>> g = np.empty(3)
    >>> loss = softmax_residual(B, np.array([3.0, 3.0]), x, g)
    >>> round(float(loss), 4), g.round(4)
    (0.0246, array([-0.0121, -0.0121,  0.0243]))
    """
    return loss_residual(x, B, w, g, 1)


@njit(**NJIT)
def sgd_update(B, rows, g, w, eta, norms):
    """B[rows] -= eta * outer(g, w), then every column of B rescaled to unit L2 norm.

    Parameters
    ----------
    B: float64[m, k]  the basis, updated in place
    rows: int64[r]  rows of B the gradient touches
    g: float64[r]  loss gradient with respect to the reconstruction of those rows
    w: float64[k]  the code
    eta: float  step size
    norms: float64[k]  work buffer, left holding the column norms before rescaling

    A column whose norm is zero (possible only if every entry is exactly zero) is left as it
    is rather than divided by zero.

    Examples
    --------
    One step of eq. 7 on a 3 x 2 basis, for x = (1, 1, 0) coded by atom 0 alone:

    >>> import numpy as np
    >>> from streamsc._kernels.dictionary import squared_residual, sgd_update
    >>> B = np.ascontiguousarray(np.eye(3)[:, :2])
    >>> rows, x, w = np.arange(3), np.array([1.0, 1.0, 0.0]), np.array([1.0, 0.0])
    >>> g = np.empty(3)
    >>> float(squared_residual(B, rows, w, x, g)), g
    (0.5, array([ 0., -1.,  0.]))
    >>> sgd_update(B, rows, g, w, 0.5, np.empty(2))
    >>> B.round(4)                      # atom 0 turned towards x, then rescaled to norm 1
    array([[0.8944, 0.    ],
           [0.4472, 1.    ],
           [0.    , 0.    ]])
    """
    m, k = B.shape
    for t in range(rows.shape[0]):
        i = rows[t]
        a = eta * g[t]
        if a != 0.0:
            for j in range(k):
                B[i, j] -= a * w[j]
    normalise_columns(B, norms)


@njit(**NJIT)
def normalise_columns(B, norms):
    """Rescale every column of B to unit L2 norm in place (zero columns are left alone).
    ``norms`` (float64[k]) is left holding the norms before rescaling."""
    m, k = B.shape
    col_sq_norms(B, norms)
    for j in range(k):
        norms[j] = np.sqrt(norms[j])
    for i in range(m):
        for j in range(k):
            if norms[j] > 0.0:
                B[i, j] /= norms[j]


@njit(**NJIT)
def rank2_update(B, rows, a, w, b, v, eta, norms):
    """B[rows] -= eta * (outer(a, w) + outer(b, v)), then every column rescaled to unit L2
    norm: one step along a gradient of the form ``a w^T + b v^T`` (the reconstruction
    gradient plus the implicit supervised gradient ``(x - Bw) v^T - (Bv) w^T``).

    Parameters
    ----------
    B: float64[m, k]  updated in place
    rows: int64[r]  rows of B the step touches; a, b: float64[r]; w, v: float64[k]
    eta: float
    norms: float64[k]  work buffer
    """
    m, k = B.shape
    for t in range(rows.shape[0]):
        i = rows[t]
        ai = eta * a[t]
        bi = eta * b[t]
        for j in range(k):
            B[i, j] -= ai * w[j] + bi * v[j]
    normalise_columns(B, norms)


@njit(**NJIT)
def dense_update(B, rows, G, a, w, eta, norms):
    """B[rows] -= eta * (G + outer(a, w)), then every column rescaled to unit L2 norm: one
    step along a dense gradient ``G`` (the unrolled gradient, which is not low-rank) plus a
    rank-one term (the reconstruction gradient at the exact code).

    Parameters
    ----------
    B: float64[m, k]  updated in place
    rows: int64[r]  rows of B the step touches; G: float64[r, k]; a: float64[r]; w: float64[k]
    eta: float
    norms: float64[k]  work buffer

    Examples
    --------
    >>> import numpy as np
    >>> from streamsc._kernels.dictionary import dense_update
    >>> B = np.ascontiguousarray(np.eye(2))
    >>> G = np.array([[0.0, -1.0], [0.0, 0.0]])
    >>> dense_update(B, np.arange(2), G, np.zeros(2), np.zeros(2), 1.0, np.empty(2))
    >>> B.round(4)                      # atom 1 turned towards row 0, then rescaled
    array([[1.    , 0.7071],
           [0.    , 0.7071]])
    """
    m, k = B.shape
    for t in range(rows.shape[0]):
        i = rows[t]
        ai = eta * a[t]
        for j in range(k):
            B[i, j] -= eta * G[t, j] + ai * w[j]
    normalise_columns(B, norms)


@njit(**NJIT)
def surrogate_accumulate(A, S, B, rows, x, w, c, Bw):
    """Add one example to the running statistics of the online surrogate (Mairal et al.,
    JMLR 2010) with weight ``c``: ``A += c w w^T`` and ``S += c x w^T``, where a row the
    example does not observe is imputed by its reconstruction ``(B w)_i`` under the current
    basis (so it pulls that row nowhere).

    Parameters
    ----------
    A: float64[k, k]  sum of c w w^T, updated in place
    S: float64[m, k]  sum of c x w^T, updated in place
    B: float64[m, k]  the basis the example was coded with
    rows: int64[r]  rows of B observed (sorted); x: float64[r]  the values on them
    w: float64[k]  the code
    c: float  the example's weight
    Bw: float64[m]  work buffer
    """
    m, k = B.shape
    for a in range(k):
        ca = c * w[a]
        if ca != 0.0:
            for b in range(k):
                A[a, b] += ca * w[b]
    matvec(B, w, Bw)  # the reconstruction: the value of every unobserved row
    for t in range(rows.shape[0]):
        Bw[rows[t]] = x[t]
    for i in range(m):
        ci = c * Bw[i]
        if ci != 0.0:
            for j in range(k):
                S[i, j] += ci * w[j]


@njit(**NJIT)
def surrogate_atoms(B, S, A, atoms, floor, u):
    """Block-coordinate descent on the online surrogate over ``atoms``, in order: atom j
    becomes the minimiser of ``sum_t c_t ||x_t - B w_t||^2`` over unit vectors with the
    other atoms fixed, ``u / ||u||`` with ``u = b_j + (S[:, j] - B A[:, j]) / A[j, j]``.
    An atom with ``A[j, j] <= floor`` (not yet used) or ``u = 0`` is left alone.

    Parameters
    ----------
    B: float64[m, k]  the basis (unit-norm columns), updated in place
    S: float64[m, k]  sum of c x w^T
    A: float64[k, k]  sum of c w w^T
    atoms: int64[s]  the atoms to update
    floor: float
    u: float64[m]  work buffer

    Examples
    --------
    With one atom, the surrogate's minimiser is the direction of ``sum_t c_t x_t w_t``:

    >>> import numpy as np
    >>> from streamsc._kernels.dictionary import surrogate_accumulate, surrogate_atoms
    >>> B = np.array([[1.0], [0.0]]); A = np.zeros((1, 1)); S = np.zeros((2, 1))
    >>> x, w = np.array([0.6, 0.8]), np.array([1.0])
    >>> surrogate_accumulate(A, S, B, np.arange(2), x, w, 1.0, np.empty(2))
    >>> surrogate_atoms(B, S, A, np.array([0]), 0.0, np.empty(2))
    >>> B.ravel().round(6)
    array([0.6, 0.8])
    """
    m = B.shape[0]
    for q in range(atoms.shape[0]):
        j = atoms[q]
        ajj = A[j, j]
        if not ajj > floor:
            continue
        inv = 1.0 / ajj
        matvec(B, A[j], u)  # (B A)[:, j]: A is symmetric, its row j is contiguous
        nrm = 0.0
        for i in range(m):
            u[i] = B[i, j] + (S[i, j] - u[i]) * inv
            nrm += u[i] * u[i]
        if not nrm > 0.0:
            continue
        inv_nrm = 1.0 / np.sqrt(nrm)
        for i in range(m):
            B[i, j] = u[i] * inv_nrm
