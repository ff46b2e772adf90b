"""The atoms a learner takes from the data: the first distinct examples become the atoms
(:func:`init_atom`), and an atom the codes have stopped using, or one duplicating another, is
replaced by the direction of a badly reconstructed example (:func:`track`). Functions of a
:class:`~streamsc._learner.Learner`, whose state they read and change.
"""

import math

import numpy as np

from . import _models

__all__ = ["init_atom", "safe_norm", "track"]

#: an example joins the atoms taken from data unless within this |cosine| of one of them
DISTINCT_COS = 0.99
#: every REPLACE_EVERY examples (after REPLACE_AFTER * k), the least used atom is replaced
#: if its usage is below DEAD_FRACTION of the mean
REPLACE_EVERY = 16
REPLACE_AFTER = 2
DEAD_FRACTION = 1e-2
#: every k examples, the less used of the two most similar atoms is replaced if their
#: |cosine| is above DUPLICATE_COS
DUPLICATE_COS = 0.9


def safe_norm(x):
    """The L2 norm of a vector without overflow for entries up to the largest float."""
    top = float(np.abs(x).max(initial=0.0))
    if not (top > 0.0 and math.isfinite(top)):
        return top
    y = x / top
    return top * math.sqrt(float(np.dot(y, y)))


def _atom_from(lr, rows, x):
    """The unit vector an example would make as an atom, over the rows it observes:
    x itself (squared loss) or the centred log of its smoothed distribution (KL loss:
    an atom lives in logit space). None for an example with no direction."""
    if _models.LOSSES[lr.config.loss].distribution:
        a = np.log(x + 1.0 / x.size)
        a -= a.mean()
    else:
        a = np.array(x, dtype=np.float64)
    norm = safe_norm(a)
    if not (norm > 0.0 and math.isfinite(norm)):
        return None
    return a / norm


def _set_atom(lr, j, rows, a):
    """Atom j becomes ``a`` on ``rows`` (None: all); its other rows keep their direction
    and their share of the norm; the atom is then rescaled to unit norm."""
    col = lr.B[:, j].copy()
    if rows is None:
        col[:] = a
    else:
        share = float(np.sqrt(np.dot(col[rows], col[rows])))
        col[rows] = a * (share if share > 0.0 else 1.0)
    norm = float(np.sqrt(np.dot(col, col)))
    lr.B[:, j] = col / norm


def init_atom(lr, rows, x):
    """While atoms are unset (the first examples), the example x becomes the next atom
    unless it has no direction or is within ``DISTINCT_COS`` of an atom already taken
    from the data. Returns the example's loss under the zero code (nothing was coded),
    or None if x was not taken (it is then learned from as usual)."""
    a = _atom_from(lr, rows, x)
    if a is None:
        return None
    j = lr.n_data_atoms
    if j:
        Bo = lr.B[:, :j] if rows is None else lr.B[rows, :j]
        with np.errstate(divide="ignore", invalid="ignore"):
            cos = np.abs(a @ Bo) / np.sqrt(np.einsum("ij,ij->j", Bo, Bo))
        if np.nanmax(cos) > DISTINCT_COS:
            return None
    _set_atom(lr, j, rows, a)
    lr.n_data_atoms = j + 1
    lr.t += 1
    lr.version += 1
    if lr.encoder is not None:
        lr.encoder.init_from_basis(lr.B)
    if _models.LOSSES[lr.config.loss].distribution:
        return 0.0
    with np.errstate(over="ignore"):  # the loss of a huge example is inf
        return 0.5 * float(np.dot(x, x))


def _atom_to_replace(lr, duplicate_check):
    """The least used atom if the codes have all but stopped using it, else (every k
    examples) the less used of two atoms that duplicate each other; None if neither."""
    usage = lr.usage
    j = int(np.argmin(usage))
    if usage[j] < DEAD_FRACTION * usage.mean():
        return j
    if duplicate_check:  # every k examples: atoms that duplicate others
        C = np.abs(lr.B.T @ lr.B)
        np.fill_diagonal(C, 0.0)
        a, b = np.unravel_index(int(np.argmax(C)), C.shape)
        if C[a, b] > DUPLICATE_COS:
            return int(a if usage[a] < usage[b] else b)
    return None


def track(lr, rows, x, resid, usage, n=1):
    """After a step on ``n`` examples: add their ``usage`` (``c_t w_j^2`` summed) to the
    atoms', keep x (with its residual ``resid`` on ``rows``) if it is the worst
    reconstructed since the last check, and every ``REPLACE_EVERY`` examples replace the
    least used atom, if the codes have all but stopped using it (usage below
    ``DEAD_FRACTION`` of the mean), by that example's residual direction."""
    lr.usage += usage
    before = lr.seen
    lr.seen += n
    # Python floats (np.vdot: np.dot's product without its floating-point error check):
    # an overflow is inf, with no warning to silence; a zero x scores inf, never kept
    xx = float(np.vdot(x, x))
    score = float(np.vdot(resid, resid)) / xx if xx != 0.0 else math.inf
    if math.isfinite(score) and (lr.candidate is None or score > lr.candidate[0]):
        lr.candidate = (score, None if rows is None else rows.copy(), resid.copy())
    k = lr.config.n_components
    dead_check = before // REPLACE_EVERY != lr.seen // REPLACE_EVERY
    duplicate_check = before // k != lr.seen // k
    if not (dead_check or duplicate_check) or lr.seen < REPLACE_AFTER * k \
            or lr.candidate is None:
        return
    j = _atom_to_replace(lr, duplicate_check)
    if j is None:
        lr.candidate = None
        return
    _, c_rows, resid = lr.candidate
    lr.candidate = None
    a = resid  # x - f(B w): towards what the codes miss (in logit space for KL)
    norm = float(np.sqrt(np.dot(a, a)))
    if not norm > 0.0:
        return
    if lr.A is not None:  # the surrogate forgets atom j
        lr.S[:, j] = 0.0
        lr.A[j, :] = 0.0
        lr.A[:, j] = 0.0
    col = np.zeros(lr.m)
    col[slice(None) if c_rows is None else c_rows] = a / norm
    lr.B[:, j] = col
    lr.usage[j] = lr.usage.mean()  # a grace period before it can be replaced again
    lr.G[j] = 0.0
    lr.n_replaced += 1
