"""``encode(..., dtype=np.float32)``: codes of the float32-rounded problem, returned as float32.

The kernels read float32 copies of X and B but keep float64 accumulators and iterates, so the
float32 codes differ from the float64 ones only by the rounding of the data (about 6e-8
relative) amplified by the problem's conditioning, plus each solver's own stopping error at
the default ``tol = 1e-6 * lam``. ``python tests/test_float32.py`` prints the largest
difference, relative to the largest float64 coefficient, over 256 of the random problems
below (4 shapes with k up to 4m, lam from 0.3 down to 0.01, unit-norm planted inputs): it
printed 1.7e-7 or less for KL codes (EGD and Newton, unsigned and signed), 4.2e-7 for L1
and 7.9e-7 for L2 codes (the closed-form signed L2 codes are computed in float32
arithmetic). The asserted bounds, documented in ``encode``'s docstring, keep a margin
(L1 and L2 codes with k > m and a small lam are the worst conditioned): KL_TOL and
L1_L2_TOL.

Compilation: each solver compiles a float32 specialisation on first use (cached on disk by
numba afterwards); to keep that cost small the tests code single rows, which reuse the same
per-example kernels as a batch, and run one batch (L1) to cover a parallel driver.
"""

import warnings

import numpy as np
import pytest

import streamsc

#: largest allowed max_j |w32 - w64| / max_j |w64| for KL-prior codes
KL_TOL = 1e-6
#: the same for L1 and L2 codes
L1_L2_TOL = 2e-5

CASES = [
    ("kl egd", dict(prior="kl", solver="egd"), KL_TOL),
    ("kl newton", dict(prior="kl", solver="newton"), KL_TOL),
    ("signed kl egd", dict(prior="kl", solver="egd", signed=True), KL_TOL),
    ("signed kl newton", dict(prior="kl", solver="newton", signed=True), KL_TOL),
    ("l1", dict(prior="l1"), L1_L2_TOL),
    ("signed l1", dict(prior="l1", signed=True), L1_L2_TOL),
    ("l2", dict(prior="l2"), L1_L2_TOL),
    ("signed l2", dict(prior="l2", signed=True), L1_L2_TOL),
]


def _problems(n_problems=16, seed=1):
    """(B, x, lam): planted sparse inputs on random unit-norm bases of a few shapes."""
    rng = np.random.default_rng(seed)
    out = []
    for t in range(n_problems):
        m, k = [(8, 12), (16, 32), (32, 16), (12, 48)][t % 4]
        lam = [0.3, 0.1, 0.03, 0.01][(t // 4) % 4]
        B = rng.standard_normal((m, k))
        B /= np.linalg.norm(B, axis=0)
        w = np.where(rng.random(k) < 0.15, rng.uniform(0.5, 1.5, k), 0.0)
        x = B @ w + 0.1 * rng.standard_normal(m)
        out.append((B, x / np.linalg.norm(x), lam))
    return out


def _rel_diff(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("name, kw, bound", CASES, ids=[c[0] for c in CASES])
def test_float32_codes_match_float64(name, kw, bound):
    worst = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", streamsc.ConvergenceWarning)
        for B, x, lam in _problems():
            w32 = streamsc.encode(x, B, lam=lam, dtype=np.float32, **kw)
            w64 = streamsc.encode(x, B, lam=lam, **kw)
            assert w32.dtype == np.float32 and w64.dtype == np.float64
            assert w32.shape == w64.shape
            assert np.all(np.isfinite(w32))
            if kw["prior"] == "kl" and not kw.get("signed"):
                assert np.all(w32 > 0)
            if kw["prior"] != "kl" and not kw.get("signed"):
                assert np.all(w32 >= 0)
            worst = max(worst, _rel_diff(w32, w64))
    assert worst <= bound, f"{name}: float32 codes differ by {worst:.2e} (> {bound:g})"


def test_float32_codes_solve_the_rounded_problem():
    """The float32 result is the float64 code of the float32-rounded X and B, rounded to
    float32: the kernels' arithmetic stays float64 (same iterates, so equal to rounding)."""
    B, x, lam = _problems()[1]
    B32, x32 = B.astype(np.float32), x.astype(np.float32)
    w32 = streamsc.encode(x, B, prior="kl", solver="egd", lam=lam, dtype=np.float32)
    w_rounded = streamsc.encode(x32.astype(np.float64), B32.astype(np.float64), prior="kl",
                                solver="egd", lam=lam)
    np.testing.assert_allclose(w32, w_rounded.astype(np.float32), rtol=1e-6, atol=0)


def test_float32_batch_matches_rows():
    """A 2-D batch (parallel driver) in float32 gives float32 codes equal to the rows coded
    one at a time, and close to the float64 batch."""
    rng = np.random.default_rng(3)
    B = rng.standard_normal((16, 32))
    B /= np.linalg.norm(B, axis=0)
    X = rng.standard_normal((5, 16))
    W32, n_iter = streamsc.encode(X, B, prior="l1", lam=0.1, dtype=np.float32,
                                  return_n_iter=True, n_threads=2)
    assert W32.dtype == np.float32 and W32.shape == (5, 32) and n_iter.shape == (5,)
    rows = np.stack([streamsc.encode(x, B, prior="l1", lam=0.1, dtype="float32") for x in X])
    np.testing.assert_array_equal(W32, rows)
    W64 = streamsc.encode(X, B, prior="l1", lam=0.1)
    assert _rel_diff(W32, W64) <= L1_L2_TOL


def test_float32_signed_halves():
    B, x, lam = _problems()[2]
    w, (wp, wm) = streamsc.encode(x, B, prior="kl", signed=True, lam=lam, dtype=np.float32,
                                  solver="newton", return_halves=True)
    assert w.dtype == wp.dtype == wm.dtype == np.float32
    np.testing.assert_allclose(wp - wm, w, rtol=1e-5, atol=1e-7)


def test_float32_rejects_a_column_that_rounds_to_zero():
    """The zero-column check runs on the float32 basis: an atom below float32's range is
    zero there and is refused rather than divided by."""
    B = np.eye(3)
    B[:, 1] *= 1e-50
    with pytest.raises(ValueError, match="zero column"):
        streamsc.encode(np.ones(3), B, prior="l1", dtype=np.float32)
    streamsc.encode(np.ones(3), B, prior="l1")  # fine in float64


@pytest.mark.parametrize("bad", [np.float16, np.int64, "float128", complex, None, True, "x", 3])
def test_bad_dtype_raises_type_error_naming_dtype(bad):
    with pytest.raises(TypeError, match="dtype"):
        streamsc.encode(np.ones(3), np.eye(3), prior="l1", dtype=bad)


@pytest.mark.parametrize("good", [np.float32, "float32", np.dtype("float32"), np.float64,
                                  "f8", float])
def test_dtype_spellings(good):
    w = streamsc.encode(np.ones(3), np.eye(3), prior="l1", lam=0.1, dtype=good)
    assert w.dtype == np.dtype(good)


if __name__ == "__main__":  # python tests/test_float32.py: the measured differences
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", streamsc.ConvergenceWarning)
        for name, kw, bound in CASES:
            worst = max(
                _rel_diff(streamsc.encode(x, B, lam=lam, dtype=np.float32, **kw),
                          streamsc.encode(x, B, lam=lam, **kw))
                for B, x, lam in _problems(n_problems=256)
            )
            print(f"{name:17s} largest |w32 - w64| / max|w64| over 256 problems: {worst:.1e} "
                  f"(test bound {bound:g})")
