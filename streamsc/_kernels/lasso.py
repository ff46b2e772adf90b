"""L1 and L2 priors (the paper's baselines) with squared loss and linear transfer.

Objective, for one example x (m,) and basis B (m, k)::

    L(w) = 1/2 ||x - B w||^2 + l1 ||w||_1 + l2/2 ||w||^2,     optionally w >= 0

L1 is ``l2 = 0``; L2 is ``l1 = 0``. ``tol`` bounds the largest violation of the optimality
conditions (the minimum-norm subgradient), as for the KL prior.

Solver (:func:`enet_cd`): working-set coordinate descent with Newton steps.

* Each outer iteration computes the full gradient ``B^T r`` (one pass over B; a few per
  code), stops if the largest violation is <= tol, and otherwise grows a working set: every
  non-zero, then the largest violators -- at least ``max(8, m // 8)`` and as many as the set
  already holds, so it doubles.
* The problem restricted to the working set is solved on its Gram matrix (rows and columns
  computed once, when an atom joins, from a packed contiguous copy of the atoms): cyclic
  coordinate descent (a sweep costs O(|set|) per coordinate that moves, instead of m
  strided reads of B per coordinate) and, after each sweep that changed no sign, a Newton
  step on the non-zeros with their signs fixed -- the exact minimiser by Cholesky, cut at
  the first coordinate that would cross zero, which is set to 0 (the feature-sign step of
  Lee et al., 2007). If the non-zeros' atoms are (nearly) dependent (duplicates, more than
  m non-zeros), the step instead moves along the dependence, downhill, until a coordinate
  reaches 0. It stops when a sweep moves no coordinate by more than tol / 10 in gradient
  units, or when an exact Newton step is followed by a sweep that changes no sign (what
  remains is rounding), and only as precisely as the largest violation left outside the
  set warrants (``INNER`` times it) while violators remain outside.
* The working set, its Gram matrix and packed atoms hold at most ``min(k, max(2m, 128))``
  atoms (1.5 MB at (m, k) = (180, 1024)). When full, it drops its zeros; a code that needs
  more (a non-negative L2 code with k >> m, say) is finished from where it got by plain
  active-set coordinate descent on B (a full sweep, then sweeps over the non-zeros until
  they settle, then the exact optimality test).

* For a batch (:func:`enet_gram_batch`) the same solver (:func:`enet_gram`) is given the
  Gram matrix ``B^T B`` (:func:`gram`) and the correlations ``X B``, computed by BLAS like
  the Gram matrix SPAMS' ``lasso`` precomputes (both in blocks of rows on every thread, so
  they scale with the threads like the solves): the full gradient is
  ``B^T x - (B^T B) w`` (k flops per non-zero instead of k m), an atom's Gram row is
  copied instead of computed, and B is read only by the fallback. Same steps and stopping rule; the gradients differ
  from the per-row path's by rounding. ``streamsc.coding.use_gram`` decides when the
  k^2 m flops pay (measured on one thread, L1 codes at lam 0.1 of
  ``benchmarks/spams_peer.py``'s inputs, against :func:`enet_cd_batch`: about 1.4x faster
  at (m, k) = (64, 256), 2.1-2.3x at (180, 1024), Gram matrix and products included).

Work is counted in passes (sweeps and Newton steps, ``max_iter`` caps their total).
Every step is deterministic; scratch is O(k + m) plus the bounded working set.
"""

import numpy as np
from numba import njit, prange

from .._config import NJIT, NJIT_INLINE, NJIT_PARALLEL
from .linalg import chol_solve, col_sq_norms, dot, rmatvec

#: working-set growth: at least this many new atoms per outer iteration (and m // 8)
WS_MIN_ADD = 8
#: working-set capacity: min(k, max(WS_CAP_M * m, WS_CAP_MIN)) atoms
WS_CAP_M = 2
WS_CAP_MIN = 128
#: the restricted problem is solved to max(tol, INNER * largest violation left outside)
INNER = 0.3
#: a Newton step holds an atom fixed when its Cholesky pivot^2 is below this times its
#: squared norm (it is then nearly in the span of the atoms before it)
NEWTON_PIVOT = 1e-10
#: rows of B^T B per block of :func:`gram`: one BLAS product per block, a block per thread
GRAM_BLOCK = 32
#: rows of X per BLAS product X[rows] B in :func:`enet_gram_batch`: few enough that a
#: thread's correlations stay small (no n x k scratch), enough that the products do not
#: alternate with the solves so often that each product evicts the Gram rows the solves read
#: (blocks of 32 rows were slower at (64, 256); commit 4500202)
CORR_BLOCK = 128


@njit(**NJIT)
def _kkt(g, wj, l1, positive):
    """Violation of the optimality condition of one coordinate: g is the gradient of the
    smooth part, wj the coordinate."""
    if wj > 0.0:
        return abs(g + l1)
    elif wj < 0.0:
        return abs(g - l1)
    elif positive:
        return max(-g - l1, 0.0)
    return max(abs(g) - l1, 0.0)


@njit(**NJIT)
def enet_violation(x, B, l1, l2, positive, w, r, c):
    """Largest violation of the optimality conditions at w; r = x - B w and c = B^T r are
    given (c is overwritten with B^T r)."""
    k = w.shape[0]
    rmatvec(B, r, c)
    v = 0.0
    for j in range(k):
        a = _kkt(-c[j] + l2 * w[j], w[j], l1, positive)
        if a > v:
            v = a
    return v


@njit(**NJIT)
def _sweep(B, cn2, l1, l2, positive, w, r, idx, n_idx):
    """One cyclic pass over coordinates idx[:n_idx], on the residual r = x - B w (kept in
    sync). Returns max_j cn2_j |dw_j|."""
    m = B.shape[0]
    biggest = 0.0
    for t in range(n_idx):
        j = idx[t]
        if cn2[j] == 0.0:
            continue
        wj = w[j]
        c = 0.0
        for i in range(m):
            c += B[i, j] * r[i]
        c += cn2[j] * wj
        if positive:
            new = max(c - l1, 0.0) / (cn2[j] + l2)
        elif c > l1:
            new = (c - l1) / (cn2[j] + l2)
        elif c < -l1:
            new = (c + l1) / (cn2[j] + l2)
        else:
            new = 0.0
        dw = new - wj
        if dw != 0.0:
            for i in range(m):
                r[i] -= dw * B[i, j]
            w[j] = new
            ch = cn2[j] * abs(dw)
            if ch > biggest:
                biggest = ch
    return biggest


@njit(**NJIT_INLINE)
def _gram_sweep(G, cw, w, ws, n, l1, l2, positive):
    """One cyclic pass over the working set ws[:n] on its Gram matrix G (n x n, leading
    block), with cw[a] = b_{ws[a]}^T r kept in sync. Returns (max_a G_aa |dw_a|, whether a
    coordinate changed sign, entered or left 0)."""
    biggest = 0.0
    changed = False
    for a in range(n):
        gaa = G[a, a]
        j = ws[a]
        wj = w[j]
        if gaa == 0.0:
            # a zero atom: the objective in w_j is l1 |w_j| + l2/2 w_j^2, least at 0
            if wj != 0.0 and (l1 > 0.0 or l2 > 0.0):
                w[j] = 0.0
                changed = True
            continue
        z = cw[a] + gaa * wj
        if positive:
            new = max(z - l1, 0.0) / (gaa + l2)
        elif z > l1:
            new = (z - l1) / (gaa + l2)
        elif z < -l1:
            new = (z + l1) / (gaa + l2)
        else:
            new = 0.0
        dw = new - wj
        if dw != 0.0:
            if (new > 0.0) != (wj > 0.0) or (new < 0.0) != (wj < 0.0):
                changed = True
            w[j] = new
            for b in range(n):
                cw[b] -= dw * G[a, b]
            ch = gaa * abs(dw)
            if ch > biggest:
                biggest = ch
    return biggest, changed


@njit(**NJIT)
def _gram_newton(G, cw, w, ws, n, l1, l2):
    """Newton step on the non-zeros N of ws[:n] with their signs fixed: the exact minimiser
    of the objective restricted to them, (G_NN + l2 I) d = b_N^T r - l2 w_N - l1 sign(w_N),
    cut at the first coordinate that would cross zero (which is set to exactly 0; up to
    there the objective is the same convex quadratic, so it decreases). cw is kept in sync.

    An atom (nearly) in the span of the ones before it (its Cholesky pivot^2 below
    NEWTON_PIVOT times its squared norm: duplicate atoms, more than m non-zeros) makes the
    system singular. Then the step is instead along the direction that keeps B w (nearly)
    unchanged -- that atom against its expression in the earlier ones -- taken downhill to
    the first coordinate that reaches zero (or to the minimum along it), which removes the
    dependence; if that direction is flat and leads to no zero, the atom is held fixed and
    the step is the exact minimiser over the others.

    Returns 2 for a full step over all of N, 1 for a full step with atoms held fixed or a
    step along a dependence that set no coordinate to 0, 0 for a step that set one to 0,
    -1 if there is nothing to step (no non-zero).
    """
    pos = np.empty(n, dtype=np.int64)
    q = np.int64(0)  # not a literal 0: numba would compile callees for it too
    for a in range(n):
        if w[ws[a]] != 0.0:
            pos[q] = a
            q += 1
    if q == 0:
        return -1
    L = np.empty((q, q))
    rhs = np.empty(q)
    for p in range(q):
        a = pos[p]
        for s in range(p + 1):
            L[p, s] = G[a, pos[s]]
        L[p, p] += l2
        wj = w[ws[a]]
        rhs[p] = cw[a] - l2 * wj - (l1 if wj > 0.0 else -l1)
    # Cholesky factor L L^T of the lower triangle, skipping dependent atoms: their row and
    # column of L are those of the identity and their right-hand side 0, so their step is 0
    held = np.zeros(q, dtype=np.bool_)
    first = np.int64(-1)  # the first dependent atom
    d = np.zeros(q)
    for i in range(q):
        hii = L[i, i]
        for j in range(i):
            if held[j]:
                L[i, j] = 0.0
            else:
                L[i, j] = (L[i, j] - dot(L[i, :j], L[j, :j])) / L[j, j]
        piv = hii - dot(L[i, :i], L[i, :i])
        if piv > NEWTON_PIVOT * hii:
            L[i, i] = np.sqrt(piv)
        else:
            held[i] = True
            if first < 0:
                first = i
                # L[i, :i] solves L_i y = G_{<i, i}: back-substitute for the coefficients
                # z of the atom in the earlier ones; the direction is e_i - z
                for p in range(i - 1, -1, -1):
                    if not held[p]:
                        zp = L[i, p]
                        for s2 in range(p + 1, i):
                            zp -= L[s2, p] * d[s2]
                        d[p] = zp / L[p, p]
                for p in range(i):
                    d[p] = -d[p]
                d[i] = 1.0
            for j in range(i):
                L[i, j] = 0.0
            L[i, i] = 1.0
            rhs[i] = 0.0
    if first >= 0:
        res = _dependence_step(G, cw, w, ws, n, pos, q, first, d, l1, l2)
        if res >= 0:
            return res
        for p in range(q):
            d[p] = 0.0
    chol_solve(L, rhs, d)
    t = 1.0
    hit = -1
    for p in range(q):
        wj = w[ws[pos[p]]]
        nw = wj + d[p]
        if (wj > 0.0 and nw <= 0.0) or (wj < 0.0 and nw >= 0.0):
            tp = -wj / d[p]
            if tp < t:
                t = tp
                hit = p
    for p in range(q):
        j = ws[pos[p]]
        if p == hit:
            d[p] = -w[j]
            w[j] = 0.0
        else:
            d[p] *= t
            w[j] += d[p]
    for p in range(q):
        dp = d[p]
        if dp != 0.0:
            a = pos[p]
            for b in range(n):
                cw[b] -= dp * G[a, b]
    if hit >= 0:
        return 0
    return 2 if first < 0 else 1


@njit(**NJIT_INLINE)
def _dependence_step(G, cw, w, ws, n, pos, q, last, d, l1, l2):
    """Move the non-zeros N = ws[pos[:q]] along d (non-zero on pos[:last + 1] only), the
    direction downhill, to the first coordinate reaching 0 (set to exactly 0) or to the
    minimum along the line, whichever is first. Along d the objective is the quadratic
    t (g . d) + t^2/2 d^T (G_NN + l2 I) d, g = -b_N^T r + l2 w_N + l1 sign(w_N).
    Returns 0 if a coordinate reached 0, 1 for a step to the minimum, -1 for no step."""
    slope = 0.0
    curv = 0.0
    for p in range(last + 1):
        dp = d[p]
        if dp == 0.0:
            continue
        a = pos[p]
        wj = w[ws[a]]
        slope += dp * (-cw[a] + l2 * wj + (l1 if wj > 0.0 else -l1))
        gd = l2 * dp
        for s in range(last + 1):
            gd += G[a, pos[s]] * d[s]
        curv += dp * gd
    if slope > 0.0:
        slope = -slope
        for p in range(last + 1):
            d[p] = -d[p]
    t = np.inf
    if curv > 0.0:
        t = -slope / curv
    hit = -1
    for p in range(last + 1):
        wj = w[ws[pos[p]]]
        if (wj > 0.0 and d[p] < 0.0) or (wj < 0.0 and d[p] > 0.0):
            tp = -wj / d[p]
            if tp < t:
                t = tp
                hit = p
    if not t < np.inf or (hit < 0 and slope == 0.0):
        return -1
    for p in range(last + 1):
        if d[p] == 0.0:
            continue
        a = pos[p]
        j = ws[a]
        if p == hit:
            dw = -w[j]
            w[j] = 0.0
        else:
            dw = t * d[p]
            w[j] += dw
        for b in range(n):
            cw[b] -= dw * G[a, b]
    return 0 if hit >= 0 else 1


@njit(**NJIT_INLINE)
def _ws_add(B, j, ws, n, Bws, G):
    """Append atom j to the working set at position n: its packed copy and its row and
    column of the Gram matrix."""
    m = B.shape[0]
    ws[n] = j
    for i in range(m):
        Bws[n, i] = B[i, j]
    for b in range(n + 1):
        g = dot(Bws[n], Bws[b])
        G[n, b] = g
        G[b, n] = g


@njit(**NJIT_INLINE)
def _ws_add_gram(GB, j, ws, n, G):
    """Append atom j to the working set at position n, its row and column of the Gram
    matrix copied from the full Gram matrix GB = B^T B."""
    ws[n] = j
    for b in range(n + 1):
        g = GB[j, ws[b]]
        G[n, b] = g
        G[b, n] = g


@njit(**NJIT_INLINE)
def _kth_largest(a, p):
    """The p-th largest entry of a (1 <= p <= len(a)); a is reordered. Quickselect with
    the middle entry as pivot (np.partition would do, but takes seconds to compile)."""
    lo = 0
    hi = a.shape[0] - 1
    want = p - 1  # position in decreasing order
    while lo < hi:
        pivot = a[(lo + hi) // 2]
        i = lo
        j = hi
        while i <= j:
            while a[i] > pivot:
                i += 1
            while a[j] < pivot:
                j -= 1
            if i <= j:
                t = a[i]
                a[i] = a[j]
                a[j] = t
                i += 1
                j -= 1
        # now a[lo..j] >= pivot >= a[i..hi], and a[j+1..i-1] == pivot
        if want <= j:
            hi = j
        elif want >= i:
            lo = i
        else:
            return pivot
    return a[want]


@njit(**NJIT_INLINE)
def _ws_compact(w, ws, n, Bws, G, in_ws):
    """Remove the atoms whose coordinate is 0 from the working set ws[:n], in place and in
    order (an entry is only ever moved to a lower position, after it was read). Returns
    the new size."""
    kept = np.empty(n, dtype=np.int64)
    q = 0
    for a in range(n):
        if w[ws[a]] != 0.0:
            kept[q] = a
            q += 1
        else:
            in_ws[ws[a]] = False
    for i in range(q):
        a = kept[i]
        ws[i] = ws[a]
        for t in range(Bws.shape[1]):
            Bws[i, t] = Bws[a, t]
        for t in range(i + 1):
            g = G[a, kept[t]]
            G[i, t] = g
            G[t, i] = g
    return q


@njit(**NJIT)
def active_set_cd(x, B, l1, l2, positive, tol, max_iter, w, r, sweeps, viol):
    """The fallback of the working-set solver (:func:`enet_ws`, when its working set cannot
    hold the code): cyclic coordinate descent on B with an active set (a full sweep, then
    sweeps over the non-zeros until they settle, then the exact optimality test), from w
    with r = x - B w, ``sweeps`` passes spent and the violation ``viol`` there. Returns
    (sweeps, violation)."""
    k = B.shape[1]
    c = np.empty(k)
    cn2 = np.empty(k)
    col_sq_norms(B, cn2)
    all_idx = np.arange(k)
    active = np.empty(k, dtype=np.int64)
    while viol > tol and sweeps < max_iter:
        _sweep(B, cn2, l1, l2, positive, w, r, all_idx, k)
        sweeps += 1
        n_act = np.int64(0)
        for j in range(k):
            if w[j] != 0.0:
                active[n_act] = j
                n_act += 1
        # sweeps over the active set until no coordinate moves its gradient by more than
        # tol / 10 (settling the active set well keeps the full sweeps few)
        while sweeps < max_iter:
            ch = _sweep(B, cn2, l1, l2, positive, w, r, active, n_act)
            sweeps += 1
            if ch <= 0.1 * tol:
                break
        viol = enet_violation(x, B, l1, l2, positive, w, r, c)
    return sweeps, viol


@njit(**NJIT)
def enet_cd(x, B, l1, l2, positive, tol, max_iter, w):
    """Working-set coordinate descent for the L1/L2 objective (see the module docstring).

    Parameters
    ----------
    x: float[m]
    B: float[m, k]  (float64 or float32; the iterates are float64)
    l1, l2: float  penalty weights (>= 0)
    positive: bool  constrain w >= 0
    tol: float  stop when the optimality violation is <= tol
    max_iter: int  maximum number of passes: coordinate-descent sweeps (over the working
        set, or over B in the fallback) and Newton steps together
    w: float64[k]  starting point (warm start), overwritten with the solution

    Returns
    -------
    n_passes: int (sweeps and Newton steps), violation: float (at the returned w)
    """
    return _enet(x, B, None, None, l1, l2, positive, tol, max_iter, w)


@njit(**NJIT)
def enet_gram(x, B, GB, cx, l1, l2, positive, tol, max_iter, w):
    """:func:`enet_cd` given the Gram matrix ``GB = B^T B`` (float64[k, k]) and the
    correlations ``cx = B^T x`` (float64[k]), computed once for a batch: the full gradient
    is ``cx - GB w`` (k per non-zero instead of k m) and an atom's Gram row is copied from
    GB instead of computed, so the solver reads B only if it falls back to plain
    coordinate descent. Same steps, optimality test and stopping rule as :func:`enet_cd`;
    the iterates differ from its by rounding only (the gradient is formed differently)."""
    return _enet(x, B, GB, cx, l1, l2, positive, tol, max_iter, w)


@njit(**NJIT)
def _enet(x, B, GB, cx, l1, l2, positive, tol, max_iter, w):
    """:func:`enet_ws`, finished by :func:`active_set_cd` when it falls back."""
    r = np.empty(B.shape[0])
    sweeps, viol, done = enet_ws(x, B, GB, cx, l1, l2, positive, tol, max_iter, w, r, True)
    if done:
        return sweeps, viol
    return active_set_cd(x, B, l1, l2, positive, tol, max_iter, w, r, sweeps, viol)


@njit(**NJIT)
def _residual(x, B, w, r):
    """r = x - B w, reading the columns of the non-zeros of w (with x = B^T x, B the Gram
    matrix's transpose and r = c: the gradient c = B^T x - (B^T B) w, reading the rows of
    the Gram matrix)."""
    m, k = B.shape
    for i in range(m):
        r[i] = x[i]
    for j in range(k):
        wj = w[j]
        if wj != 0.0:
            for i in range(m):
                r[i] -= wj * B[i, j]


def ws_fills(m, k):
    """:func:`enet_ws`'s ``fills`` for an (m, k) basis: None when the working set holds
    every atom, else True."""
    return True if k > max(WS_CAP_M * m, WS_CAP_MIN) else None


@njit(**NJIT)
def enet_ws(x, B, GB, cx, l1, l2, positive, tol, max_iter, w, r, fills):
    """The working-set solver behind :func:`enet_cd` (``GB`` and ``cx`` None: gradients
    from the residual r = x - B w, Gram rows from packed atoms) and :func:`enet_gram`
    (``GB = B^T B`` and ``cx = B^T x`` given: gradients cx - GB w, Gram rows copied, no
    residual). None is known when compiling: the other variant's code is not compiled.

    Returns (passes, violation, done); done False when the working set cannot hold the
    code: w is then where it got, ``r`` (float64[m], scratch otherwise) holds x - B w, and
    :func:`active_set_cd` finishes it from there. A separate kernel, so that the first
    call of the one-row solver compiles the fallback only if it needs it.

    ``fills`` True, or None when the working set holds every atom (k at most
    ``max(WS_CAP_M m, WS_CAP_MIN)``, :func:`ws_fills`): it then never fills up and never
    falls back, and None, known when compiling, leaves that code out."""
    m, k = B.shape
    cap = min(k, max(WS_CAP_M * m, WS_CAP_MIN))
    grow = max(WS_MIN_ADD, m // 8)
    mb = 0 if GB is not None else m  # columns of the packed atoms (none with a Gram matrix)
    if GB is None:
        _residual(x, B, w, r)
    nnz = 0
    for j in range(k):
        if w[j] != 0.0:
            nnz += 1
    c = np.empty(k)
    v = np.empty(k)
    in_ws = np.zeros(k, dtype=np.bool_)
    out = np.empty(k, dtype=np.int64)  # atoms outside the working set: non-zeros, violators
    ws = np.empty(cap, dtype=np.int64)
    cw = np.empty(cap)
    w0 = np.empty(cap)
    size = min(cap, max(32, 2 * nnz))  # Gram / packed-atom storage, grown on demand
    G = np.empty((size, size))
    Bws = np.empty((size, mb))
    n = np.int64(0)  # not a literal 0: numba would compile callees for it too
    sweeps = np.int64(0)
    # a signed L2 code has every atom with a non-zero gradient non-zero: if they cannot all
    # fit in the working set, go straight to plain coordinate descent
    legacy = l1 == 0.0 and not positive and k > cap
    while True:
        if GB is not None:
            _residual(cx, GB.T, w, c)  # c = cx - GB w, reading rows of GB
        else:
            rmatvec(B, r, c)
        viol = 0.0
        n_out = 0  # violators outside the working set, and non-zeros not yet in it
        n_nz = 0  # (listed in out[:n_out] in increasing order, so the rest are not read)
        for j in range(k):
            a = _kkt(-c[j] + l2 * w[j], w[j], l1, positive)
            v[j] = a
            if a > viol:
                viol = a
            if not in_ws[j]:
                if w[j] != 0.0:
                    n_nz += 1
                    out[n_out] = j
                    n_out += 1
                elif a > tol:
                    out[n_out] = j
                    n_out += 1
        n_new = n_out - n_nz
        if viol <= tol or sweeps >= max_iter or legacy:
            break
        # grow the working set: every non-zero, then the largest violators
        p = min(n_new, max(grow, n + n_nz))
        if fills is not None and n + n_nz + p > cap:
            # full (never when the set holds every atom: the set, the non-zeros outside it
            # and the p violators are distinct atoms): drop the working set's zeros (they
            # may come back later), then take what room is left
            n = _ws_compact(w, ws, n, Bws, G, in_ws)
            n_out = 0
            for j in range(k):
                if not in_ws[j] and (w[j] != 0.0 or v[j] > tol):
                    out[n_out] = j
                    n_out += 1
            n_new = n_out - n_nz
            p = min(n_new, max(grow, n + n_nz), cap - n - n_nz)
            if p < 0 or (p == 0 and n_nz == 0 and n_new > 0):
                legacy = True
                break
        need = n + n_nz + p
        if need > G.shape[0]:
            size = min(cap, max(2 * G.shape[0], need))
            G2 = np.empty((size, size))
            B2 = np.empty((size, mb))
            for a in range(n):  # explicit loops: slice assignment is slow to compile
                for b in range(n):
                    G2[a, b] = G[a, b]
                for i in range(mb):
                    B2[a, i] = Bws[a, i]
            G = G2
            Bws = B2
        thr = tol
        if 0 < p < n_new:
            # the p-th largest violation outside the working set
            cand = np.empty(n_new)
            t = 0
            for q in range(n_out):
                if w[out[q]] == 0.0:
                    cand[t] = v[out[q]]
                    t += 1
            thr = _kth_largest(cand, p)
        added = 0
        # the largest violation left outside the working set (the atoms not listed have
        # violations <= tol, which do not change inner_tol below)
        v_out = 0.0
        for q in range(n_out):
            j = out[q]
            if w[j] != 0.0 or (added < p and v[j] >= thr):
                if w[j] == 0.0:
                    added += 1
                in_ws[j] = True
                if GB is not None:
                    _ws_add_gram(GB, j, ws, n, G)
                else:
                    _ws_add(B, j, ws, n, Bws, G)
                n += 1
            elif v[j] > v_out:
                v_out = v[j]
        for a in range(n):
            cw[a] = c[ws[a]]
            w0[a] = w[ws[a]]
        # solve the restricted problem only as well as the coordinates left out allow:
        # Gram sweeps, and a Newton step after each sweep that changed no sign, until a
        # sweep moves no coordinate by more than inner_tol / 10 in gradient units, an exact
        # Newton step is followed by a sweep that changes no sign, or max_iter passes are
        # spent (here, not in a kernel of its own: numba re-optimises a kernel's callees for
        # every caller up the chain, so a shallower chain compiles faster)
        inner_tol = max(tol, INNER * v_out)
        newton_ok = True  # False when there is nothing to step, until the signs change
        solved = False  # an exact Newton step was taken and no sign changed since
        while sweeps < max_iter:
            ch, changed = _gram_sweep(G, cw, w, ws, n, l1, l2, positive)
            sweeps += 1
            if ch <= 0.1 * inner_tol:
                break
            if changed:
                newton_ok = True
                solved = False
            elif solved:
                # the restricted problem is solved to rounding (what is left of ch is
                # rounding when tol is below what float64 resolves): the outer loop
                # re-checks on exact B^T r
                break
            elif newton_ok and sweeps < max_iter:
                sweeps += 1
                res = _gram_newton(G, cw, w, ws, n, l1, l2)
                newton_ok = res >= 0
                solved = res == 2
        if GB is None:
            for a in range(n):
                dw = w[ws[a]] - w0[a]
                if dw != 0.0:
                    for i in range(m):
                        r[i] -= dw * Bws[a, i]
    if legacy:
        if GB is not None:  # the fallback works on the residual
            _residual(x, B, w, r)
        return sweeps, viol, False
    return sweeps, viol, True


@njit(**NJIT_PARALLEL)
def enet_cd_batch(X, B, l1, l2, positive, tol, max_iter, W, n_iter, viol):
    for i in prange(X.shape[0]):
        it, v = enet_cd(X[i], B, l1, l2, positive, tol, max_iter, W[i])
        n_iter[i] = it
        viol[i] = v


@njit(**NJIT_PARALLEL)
def gram(B, G):
    """G = B^T B (float64[k, k]), one block of GRAM_BLOCK rows per thread (BLAS products:
    callers pin BLAS to one thread)."""
    k = B.shape[1]
    Bt = np.ascontiguousarray(B.T)
    for b in prange((k + GRAM_BLOCK - 1) // GRAM_BLOCK):
        j0 = b * GRAM_BLOCK
        j1 = min(k, j0 + GRAM_BLOCK)
        G[j0:j1] = np.dot(Bt[j0:j1], B)


@njit(**NJIT_PARALLEL)
def enet_gram_batch(X, B, GB, l1, l2, positive, tol, max_iter, W, n_iter, viol, threads):
    """:func:`enet_gram` for every row, given ``GB = B^T B`` (:func:`gram`). The rows are
    cut into ``threads`` runs of consecutive rows, as many rows in each (to one row), a run
    per thread (``threads``: numba's thread count in the caller; read here, it would keep
    the function out of numba's cache). A run goes through its rows CORR_BLOCK at a time:
    their correlations ``X B`` in one BLAS product (callers pin BLAS to one thread) into
    the run's one scratch block, then their solves. No n x k scratch: a batch does not map
    fresh pages for one on every call (page faults, which two threads take in turn)."""
    n, k = X.shape[0], B.shape[1]
    threads = max(1, threads)
    for t in prange(threads):
        r0 = t * n // threads
        r1 = (t + 1) * n // threads
        if r1 > r0:
            C = np.empty((min(CORR_BLOCK, r1 - r0), k))
            for i0 in range(r0, r1, CORR_BLOCK):
                i1 = min(r1, i0 + CORR_BLOCK)
                Cb = C[:i1 - i0]
                np.dot(X[i0:i1], B, Cb)
                for i in range(i0, i1):
                    it, v = enet_gram(X[i], B, GB, Cb[i - i0], l1, l2, positive, tol,
                                      max_iter, W[i])
                    n_iter[i] = it
                    viol[i] = v


@njit(**NJIT)
def ridge(X, B, lam, W):
    """Closed-form signed L2 codes W[i] = argmin 1/2 ||X[i] - B w||^2 + lam/2 ||w||^2 for
    every row, through the smaller of the k x k and m x m systems (factored once)."""
    m, k = B.shape
    if k <= m:
        A = np.dot(B.T, B)
        for j in range(k):
            A[j, j] += lam
        L = np.linalg.cholesky(A)
        R = np.dot(X, B)  # (n, k) = rows of B^T x
        Y = _chol_solve_rows(L, R)
        for i in range(X.shape[0]):
            for j in range(k):
                W[i, j] = Y[i, j]
    else:
        A = np.dot(B, B.T)
        for i in range(m):
            A[i, i] += lam
        L = np.linalg.cholesky(A)
        Y = _chol_solve_rows(L, np.ascontiguousarray(X))
        W[:, :] = np.dot(Y, B)  # w = B^T (B B^T + lam I)^{-1} x


@njit(**NJIT)
def _chol_solve_rows(L, R):
    """Solve (L L^T) y = r for every row r of R."""
    n = L.shape[0]
    Y = np.empty_like(R)
    for q in range(R.shape[0]):
        for i in range(n):
            s = R[q, i]
            for j in range(i):
                s -= L[i, j] * Y[q, j]
            Y[q, i] = s / L[i, i]
        for i in range(n - 1, -1, -1):
            s = Y[q, i]
            for j in range(i + 1, n):
                s -= L[j, i] * Y[q, j]
            Y[q, i] = s / L[i, i]
    return Y
