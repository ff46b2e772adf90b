"""One record per prior and per loss: everything the library knows about each choice of
``prior`` (:data:`PRIORS`) and ``loss`` (:data:`LOSSES`), read by :mod:`streamsc.coding`,
:mod:`streamsc.differentiation`, :mod:`streamsc.unrolled`, :mod:`streamsc.amortized` and
the learner instead of branching on the names.

A :class:`Prior` holds its kernel id (the implicit VJP's and the unrolled solver's, one
shared id), its domain (whether ``p`` applies, whether unsigned codes are > 0 or >= 0,
whether signed codes are halves ``(w+, w-)`` on the expanded basis ``[B, -B]``, whether a
code is unique only while its active atoms are independent), its split / merge of signed
halves, the function that solves it (:mod:`streamsc._solvers`), its unrolled form (EGD with an adapted
step, or ISTA / FISTA with step 1/L) and its amortised encoder's form (the shrink of
:mod:`streamsc._kernels.amortized`, unsigned and signed, and the start of the thresholds).
A :class:`Loss` holds its code (the coding kernels' ``loss`` argument), the priors it pairs
with, whether examples are normalised to distributions (with the softmax transfer), its
default KL-prior solver and whether the unrolled solvers support it.

Adding a prior
--------------
Write its kernels (a coding solver; its cases in the VJP and unrolled kernels under a new
id, ``_kernels/vjp.py``'s ``KL``/``L1``/``L2``; a shrink in ``_kernels/amortized.py``),
then one :class:`Prior` record in :data:`PRIORS` providing every field:

* ``solve(X, B, *, loss, lam, p, signed, tol, solver, max_iter, init)`` returning
  ``(W, halves, n_iter, violation)`` (see :mod:`streamsc._solvers`);
* ``max_iter(solver)``: its default iteration cap;
* ``unrolled_step(B, *, lam, p, signed, lipschitz)``: the unrolled solver's default step;
* ``amortized_start(lam, cn2, p, signed)``: the encoder's initial ``(bias, theta)``;
* the ids and flags below. The name must also be added to the ``loss`` records' ``priors``
  that pair with it. :data:`streamsc._validation.PRIORS` (the schema's choices) is read
  from here. A new loss is one :class:`Loss` record plus its cases in the kernels.

Examples
--------
>>> from streamsc._models import PRIORS, get_prior
>>> sorted(PRIORS)
['kl', 'l1', 'l2']
>>> get_prior("kl").state_size(5, signed=True), get_prior("l1").state_size(5, signed=True)
(10, 5)
>>> get_prior("l3")
Traceback (most recent call last):
...
ValueError: prior must be one of ('kl', 'l1', 'l2'), got 'l3'
"""

from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import _solvers
from ._kernels import amortized as amortized_kernels
from ._kernels import vjp as vjp_kernels

__all__ = ["Prior", "Loss", "PRIORS", "LOSSES", "get_prior", "get_loss"]


@dataclass(frozen=True)
class Prior:
    """What the library knows about one prior :math:`R(w)` (see :func:`streamsc.encode`)."""

    #: the ``prior`` argument naming it
    name: str
    #: its id in the implicit-VJP and unrolled kernels (``_kernels.vjp.KL`` etc.)
    kernel_id: int
    #: the prior mean ``p`` enters the problem (else it is ignored)
    uses_p: bool
    #: unsigned codes are > 0 (the prior's domain); else >= 0
    positive: bool
    #: signed codes are halves (w+, w-) on the expanded basis [B, -B], code w+ - w-
    split: bool
    #: codes are sparse on an active set, unique (and differentiable) only while the active
    #: atoms are linearly independent (so at most m of them)
    active_set: bool
    #: the unrolled solver is EGD, its default step adapted (halved while the objective
    #: rises); else ISTA / FISTA with the fixed step 1/L
    unrolled_egd: bool
    #: ``solve(X, B, *, loss, lam, p, signed, tol, solver, max_iter, init)``: the codes
    solve: Callable
    #: ``max_iter(solver)``: the default iteration cap of its solver
    max_iter: Callable
    #: ``unrolled_step(B, *, lam, p, signed, lipschitz)``: the unrolled default step
    unrolled_step: Callable
    #: the amortised encoder's shrink (``_kernels.amortized``): (unsigned, signed)
    amortized_modes: tuple
    #: ``amortized_start(lam, cn2, p, signed)``: initial (bias, theta) of the encoder for
    #: atoms of squared norms cn2 (orthonormal-basis map)
    amortized_start: Callable

    def state_size(self, k, signed):
        """Length of a code's state: 2k for split signed codes (the halves), else k."""
        return 2 * k if (self.split and signed) else k

    def halved(self, signed):
        """Whether codes with this ``signed`` are held as halves (w+, w-)."""
        return self.split and signed

    def split_halves(self, W, p):
        """Halves (W+, W-) with W+ - W- = W and W+ W- = p^2 (the optimum's relation)."""
        return _solvers.split_signed(W, p)

    @staticmethod
    def merge(H, k):
        """The code of a halved state H (..., 2k): ``H[..., :k] - H[..., k:]``."""
        return H[..., :k] - H[..., k:]

    def amortized_mode(self, signed):
        """The encoder's shrink for codes with this ``signed``."""
        return self.amortized_modes[1 if signed else 0]


@dataclass(frozen=True)
class Loss:
    """What the library knows about one loss/transfer pair (see :func:`streamsc.encode`)."""

    #: the ``loss`` argument naming it
    name: str
    #: the coding kernels' ``loss`` argument (``_kernels.kl.egd``)
    code: int
    #: the priors it pairs with (the problem stays convex)
    priors: tuple
    #: examples are normalised to distributions and the transfer is the softmax
    distribution: bool
    #: the default KL-prior solver
    default_solver: str
    #: the unrolled solvers (squared loss) support it
    unrolled: bool


def _cap(key):
    def max_iter(solver):
        return _solvers.MAX_ITER[key]
    return max_iter


def _solver_cap(solver):
    return _solvers.MAX_ITER[solver]


def _egd_step(B, *, lam, p, signed, lipschitz=None):
    cn2 = np.einsum("ij,ij->j", B, B)
    mass = float(np.dot(p, cn2)) * (2.0 if signed else 1.0)
    return 1.0 / (lam + mass)


def _ista_step(B, *, lam, p, signed, lipschitz=None):
    if lipschitz is None:
        lipschitz = float(np.linalg.norm(B, 2)) ** 2
    return 1.0 / lipschitz


def _l1_start(lam, cn2, p, signed):
    return np.zeros(cn2.shape[0]), lam / cn2


def _l2_start(lam, cn2, p, signed):
    k = cn2.shape[0]
    return np.zeros(k), np.full(k, 0.01 * lam)


def _kl_start(lam, cn2, p, signed):
    bias = np.zeros(cn2.shape[0])
    exact = lam * np.log(lam / p)
    theta = np.maximum(exact, 0.01 * lam)
    if not signed:
        bias = theta - exact
    return bias, theta


def _norm_prior(name, kernel_id, *, active_set, solve, amortized_start):
    """The record of a norm prior (L1, L2) on the squared-loss coding problem: ``p`` does not
    enter, unsigned codes are >= 0 and signed codes are whole (no halves); solved by
    coordinate descent, unrolled as ISTA / FISTA with step 1/L, encoded by the ReLU (unsigned)
    or soft (signed) shrink."""
    return Prior(
        name=name, kernel_id=kernel_id, uses_p=False, positive=False, split=False,
        active_set=active_set, unrolled_egd=False, solve=solve,
        max_iter=_cap("cd"), unrolled_step=_ista_step,
        amortized_modes=(amortized_kernels.RELU, amortized_kernels.SOFT),
        amortized_start=amortized_start,
    )


PRIORS = {
    "kl": Prior(
        name="kl", kernel_id=vjp_kernels.KL, uses_p=True, positive=True, split=True,
        active_set=False, unrolled_egd=True, solve=_solvers.solve_kl,
        max_iter=_solver_cap, unrolled_step=_egd_step,
        amortized_modes=(amortized_kernels.KL, amortized_kernels.KL_SIGNED),
        amortized_start=_kl_start,
    ),
    "l1": _norm_prior("l1", vjp_kernels.L1, active_set=True, solve=_solvers.solve_l1,
                      amortized_start=_l1_start),
    "l2": _norm_prior("l2", vjp_kernels.L2, active_set=False, solve=_solvers.solve_l2,
                      amortized_start=_l2_start),
}

LOSSES = {
    "squared": Loss(name="squared", code=0, priors=("kl", "l1", "l2"), distribution=False,
                    default_solver="egd", unrolled=True),
    "kl": Loss(name="kl", code=1, priors=("kl",), distribution=True,
               default_solver="newton", unrolled=False),
}


def _lookup(kind, table, name):
    try:
        return table[name]
    except (KeyError, TypeError):
        raise ValueError(f"{kind} must be one of {tuple(table)}, got {name!r}") from None


def get_prior(name):
    """The :class:`Prior` record named ``name`` (ValueError naming the choices if none)."""
    return _lookup("prior", PRIORS, name)


def get_loss(name):
    """The :class:`Loss` record named ``name`` (ValueError naming the choices if none)."""
    return _lookup("loss", LOSSES, name)
