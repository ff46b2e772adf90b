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
    for j in range(k):
        norms[j] = 0.0
    for i in range(m):
        for j in range(k):
            norms[j] += B[i, j] * B[i, j]
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
