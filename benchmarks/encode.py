"""Codes per second of ``streamsc.encode`` against scikit-learn's ``SparseCoder``.

Usage::

    python benchmarks/encode.py [--quick] [--shapes 64x256,180x1024] [--lam 0.1,0.03]
                                [--rows N] [--budget SECONDS] [--seed S] [--cold]
                                [--json out.json]

For each basis shape (m, k) and each ``lam`` it times, in one process with every BLAS
pool pinned to one thread (threadpoolctl) for the whole comparison:

* ``streamsc.encode`` for KL codes (solver ``newton`` and ``egd``), signed KL codes (both
  solvers) and L1 codes (non-negative and signed): one row per call
  (``encode(x, B, ...)``) and batched (``encode(X, B, ...)``) with 1 numba thread and with
  numba's default;
* ``streamsc.SparseCoder.transform_one`` for the same L1 codes (non-negative and signed):
  a coder built with ``basis=B`` (rows = features ``0 .. m-1``), ``prior="l1"`` and the
  same ``lam``, fed one dict per call (the dicts are built before timing). Consecutive
  calls always get different rows, so the coder's cache of its last code never answers;
  the codes are checked against scikit-learn's like ``encode``'s;
* ``sklearn.decomposition.SparseCoder(dictionary=B.T, transform_algorithm="lasso_cd",
  transform_alpha=lam, positive_code=...)`` one row per call (``transform(x[None])``)
  and batched (``transform(X)``). It solves the *same* L1 problem as streamsc's L1 codes
  (scikit-learn divides alpha by m internally); the script checks that the codes agree
  to 1e-4 and prints the largest difference.

Every contender is warmed up first (numba compilation, or loading it from numba's
on-disk cache, happens in the first call, which is timed and reported separately and
never mixed into a rate). Each timed pass encodes the same rows for every contender of a
(shape, lam) configuration, sized so the slowest one-row-per-call contender takes about
``--budget / 3`` seconds per pass. Three rounds interleave all contenders (each spends
about ``--budget / 3`` seconds per round, at least one pass) so load from other processes
is spread over all of them; the fastest pass of each contender is reported.

The exit status is 1 if streamsc's and scikit-learn's L1 codes differ by more than
1e-4 (the two would then not be solving the same problem), else 0.
"""

import os
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402  (a sibling module, not a package)

SCRIPT = "benchmarks/encode.py"

#: streamsc contenders: (name, keyword arguments of encode)
STREAMSC = [
    ("KL newton", dict(prior="kl", solver="newton", signed=False)),
    ("KL egd", dict(prior="kl", solver="egd", signed=False)),
    ("signed KL newton", dict(prior="kl", solver="newton", signed=True)),
    ("signed KL egd", dict(prior="kl", solver="egd", signed=True)),
    ("L1 >=0", dict(prior="l1", signed=False)),
    ("L1 signed", dict(prior="l1", signed=True)),
]
#: streamsc river-estimator contenders: (name, signed); L1 codes by SparseCoder.transform_one
TRANSFORM_ONE = [("L1 >=0 transform_one", False), ("L1 signed transform_one", True)]
#: scikit-learn contenders: (name, signed)
SKLEARN = [("sklearn lasso_cd >=0", False), ("sklearn lasso_cd signed", True)]

#: largest allowed max |w_streamsc - w_sklearn| for the L1 codes
L1_AGREEMENT = 1e-4

#: scikit-learn's hard-coded Lasso tolerance inside SparseCoder (sklearn 1.9.1,
#: decomposition/_dict_learning.py); used only to count its iterations, untimed
SKLEARN_LASSO_TOL = 1e-8

ONE = "1 row/call"
BATCH = "batch"
#: ``threads`` of a streamsc batch run with numba's default thread count (n_threads=None)
DEFAULT = "default"


# ---------------------------------------------------------------------------------------
# contenders
# ---------------------------------------------------------------------------------------


@dataclass
class Contender:
    """One method. ``one(x)`` codes one row; ``batch(X, threads)`` returns
    ``(codes, n_iter or None)``; ``iterations(X)`` the iterations per row (untimed).
    ``prepare(rows)`` (untimed) turns a list of rows into what ``one`` takes (default: the
    rows themselves); ``codes(X)`` (untimed) returns ``(codes, n_iter)`` for a contender
    with no batch mode."""

    name: str
    family: str
    signed: bool
    one: object
    batch: object
    modes: list
    iterations: object = None
    iter_cap: int = 0
    n_iter: object = None
    first_calls: dict = field(default_factory=dict)
    prepare: object = None
    codes: object = None

    def inputs(self, rows):
        """What ``one`` takes for each of ``rows`` (built before any timing)."""
        return list(rows) if self.prepare is None else self.prepare(rows)


def streamsc_contenders(B, lam):
    import streamsc
    from streamsc.coding import MAX_ITER  # not in __all__: the iteration caps, to flag capped codes

    out = []
    for name, kw in STREAMSC:
        def one(x, kw=kw):
            return streamsc.encode(x, B, lam=lam, **kw)

        def batch(X, threads, kw=kw):
            n_threads = None if threads == DEFAULT else threads
            return streamsc.encode(X, B, lam=lam, n_threads=n_threads, return_n_iter=True, **kw)

        cap = MAX_ITER[kw.get("solver", "newton") if kw["prior"] == "kl" else "cd"]
        out.append(
            Contender(
                name=name, family="streamsc", signed=kw["signed"], one=one, batch=batch,
                modes=[(ONE, None), (BATCH, 1), (BATCH, DEFAULT)],
                iter_cap=cap,
            )
        )
    return out


def transform_one_contenders(B, lam):
    """``SparseCoder.transform_one`` with L1 codes on the basis ``B``: same problem as the
    ``encode`` L1 rows (unit-norm rows, so the coder's default tol is ``1e-6 * lam`` too)."""
    import streamsc
    from streamsc.coding import MAX_ITER  # not in __all__: the iteration caps, to flag capped codes

    def prepare(rows):  # one dict per row: feature i -> x_i, the order of B's rows
        return [dict(enumerate(x.tolist())) for x in rows]

    out = []
    for name, signed in TRANSFORM_ONE:
        coder = streamsc.SparseCoder(
            n_components=B.shape[1], prior="l1", lam=lam, signed=signed, basis=B, seed=0,
        )

        def one(x, coder=coder):
            return coder.transform_one(x)

        def codes(X, coder=coder, signed=signed):
            # untimed: transform_one over the rows in order (never the same row twice in a
            # row); the iterations are those of the same solve through encode
            W = np.array([list(coder.transform_one(x).values()) for x in prepare(X)])
            n_iter = streamsc.encode(X, B, prior="l1", lam=lam, signed=signed,
                                     return_n_iter=True)[1]
            return W, n_iter

        out.append(
            Contender(
                name=name, family="streamsc", signed=signed, one=one, batch=None,
                modes=[(ONE, None)], iter_cap=MAX_ITER["cd"], prepare=prepare, codes=codes,
            )
        )
    return out


def sklearn_contenders(B, lam):
    from sklearn.decomposition import SparseCoder
    from sklearn.linear_model import Lasso

    m = B.shape[0]
    out = []
    for name, signed in SKLEARN:
        coder = SparseCoder(
            dictionary=B.T, transform_algorithm="lasso_cd", transform_alpha=lam,
            positive_code=not signed,
        )

        def one(x, coder=coder):
            return coder.transform(x[None])

        def batch(X, threads, coder=coder):
            return coder.transform(X), None

        def iterations(X, signed=signed):
            # the Lasso SparseCoder builds (same alpha scaling, Gram, tol, max_iter), refit
            # untimed only to read its n_iter_ (coordinate-descent epochs per row)
            lasso = Lasso(
                alpha=lam / m, fit_intercept=False, precompute=B.T @ B,
                tol=SKLEARN_LASSO_TOL, max_iter=coder.transform_max_iter, positive=not signed,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                lasso.fit(B, X.T)
            return np.atleast_1d(np.asarray(lasso.n_iter_))

        out.append(
            Contender(
                name=name, family="sklearn", signed=signed, one=one, batch=batch,
                modes=[(ONE, None), (BATCH, None)], iterations=iterations,
                iter_cap=coder.transform_max_iter,
            )
        )
    return out


# ---------------------------------------------------------------------------------------
# one configuration
# ---------------------------------------------------------------------------------------


def run_config(m, k, lam, B, X_pos, X_sgn, args):
    """Warm up, size the pass, time every contender and mode; return the records."""
    contenders = (streamsc_contenders(B, lam) + transform_one_contenders(B, lam)
                  + sklearn_contenders(B, lam))
    data = {False: X_pos, True: X_sgn}
    n = X_pos.shape[0]

    # warm-up: the first call of each mode is timed on its own (compilation / cache load)
    probe = min(args.probe_rows, n)
    rates = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for c in contenders:
            X = data[c.signed]
            x0 = c.inputs([X[0]])[0]
            for call, threads in c.modes:
                if call == ONE:
                    t, _ = _common.first_call(lambda: c.one(x0))
                else:
                    t, _ = _common.first_call(lambda: c.batch(X[:8], threads))
                c.first_calls[(call, threads)] = t
            rows = c.inputs([X[i] for i in range(1, probe)] or [X[0]])
            t0 = time.perf_counter()
            for x in rows:
                c.one(x)
            rates.append(len(rows) / (time.perf_counter() - t0))
    # rows per pass: the slowest contender's one-row pass takes about one round's budget
    per_round = args.budget / args.rounds
    n_rows = int(np.clip(min(rates) * per_round, min(args.min_rows, n), n))

    # one job per (contender, call mode); rounds interleave the jobs (alternating order) so
    # load from other processes is spread over all of them; each job's fastest pass counts
    jobs = []
    for c in contenders:
        X = np.ascontiguousarray(data[c.signed][:n_rows])
        rows = c.inputs([X[i] for i in range(n_rows)])
        for call, threads in c.modes:
            job = dict(contender=c, call=call, threads=threads, X=X,
                       timing=_common.Timing(units=n_rows))
            if call == ONE:
                def one_pass(c=c, rows=rows):
                    for x in rows:
                        c.one(x)
            else:
                def one_pass(c=c, X=X, threads=threads, job=job):
                    job["out"] = c.batch(X, threads)
            job["one_pass"] = one_pass
            jobs.append(job)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _common.interleave({i: job["one_pass"] for i, job in enumerate(jobs)},
                           budget=args.budget, rounds=args.rounds,
                           timings={i: job["timing"] for i, job in enumerate(jobs)})

    records = []
    codes = {}
    for job in jobs:
        c, t = job["contender"], job["timing"]
        if job["call"] == BATCH and job["threads"] in (1, None):
            W, n_iter = job["out"]
            if n_iter is None:
                n_iter = c.iterations(job["X"])
            codes[c.name] = W
            c.n_iter = n_iter
    for c in contenders:
        if c.codes is not None:
            codes[c.name], c.n_iter = c.codes(np.ascontiguousarray(data[c.signed][:n_rows]))
    for job in jobs:
        c, t = job["contender"], job["timing"]
        records.append(dict(
            m=m, k=k, lam=lam, method=c.name, family=c.family, signed=c.signed,
            call=job["call"], threads=job["threads"], rows=n_rows,
            codes_per_s=t.rate, median_codes_per_s=t.median_rate, codes_per_cpu_s=t.cpu_rate,
            pass_seconds=t.seconds, pass_cpu_seconds=t.cpu_seconds,
            first_call_s=c.first_calls[(job["call"], job["threads"])],
            mean_iter=float(np.mean(c.n_iter)), hit_iter_cap=int(np.sum(c.n_iter >= c.iter_cap)),
        ))

    # ratios against scikit-learn of the same sign: one row per call, and same call
    ref = {
        (signed, call): next(
            r["codes_per_s"] for r in records
            if r["family"] == "sklearn" and r["signed"] == signed and r["call"] == call
        )
        for signed in (False, True) for call in (ONE, BATCH)
    }
    ref_cpu = {
        signed: next(
            r["codes_per_cpu_s"] for r in records
            if r["family"] == "sklearn" and r["signed"] == signed and r["call"] == ONE
        )
        for signed in (False, True)
    }
    for r in records:
        r["vs_sklearn_one_row"] = r["codes_per_s"] / ref[(r["signed"], ONE)]
        r["vs_sklearn_same_call"] = r["codes_per_s"] / ref[(r["signed"], r["call"])]
        r["vs_sklearn_one_row_cpu"] = r["codes_per_cpu_s"] / ref_cpu[r["signed"]]

    checks = l1_checks(m, k, lam, codes)
    choice = solver_choice(m, k, lam, B, data, n_rows, records, codes)
    return records, checks, choice, n_rows


def l1_checks(m, k, lam, codes):
    """streamsc's L1 codes against scikit-learn's, same rows (batched outputs)."""
    out = []
    pairs = (
        ("L1 >=0", "sklearn lasso_cd >=0"), ("L1 signed", "sklearn lasso_cd signed"),
        ("L1 >=0 transform_one", "sklearn lasso_cd >=0"),
        ("L1 signed transform_one", "sklearn lasso_cd signed"),
    )
    for ours, theirs in pairs:
        a, b = codes[ours], codes[theirs]
        diff = float(np.max(np.abs(a - b)))
        out.append(dict(
            m=m, k=k, lam=lam, streamsc=ours, sklearn=theirs, max_abs_diff=diff,
            max_abs_code=float(np.max(np.abs(b))), nnz_mean=float(np.mean(np.sum(b != 0, axis=1))),
            ok=diff <= L1_AGREEMENT,
        ))
    return out


def solver_choice(m, k, lam, B, data, n_rows, records, codes):
    """Newton vs EGD at the default tol: speed, and accuracy against a tight reference."""
    import streamsc

    def rate(name, call, threads):
        return next(
            r["codes_per_s"] for r in records
            if r["method"] == name and r["call"] == call and r["threads"] == threads
        )

    def iters(name):
        return next(r["mean_iter"] for r in records if r["method"] == name)

    def rel(a, b):  # max over rows of max_j |a - b| / max_j |b|
        scale = np.maximum(np.abs(b).max(axis=1), np.finfo(float).tiny)
        return float(np.max(np.abs(a - b).max(axis=1) / scale))

    out = []
    for prefix, signed in (("KL", False), ("signed KL", True)):
        newton, egd = f"{prefix} newton", f"{prefix} egd"
        X = np.ascontiguousarray(data[signed][:n_rows])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exact = streamsc.encode(
                X, B, prior="kl", lam=lam, signed=signed, solver="newton", tol=1e-12 * lam,
                max_iter=1000,
            )
        out.append(dict(
            m=m, k=k, lam=lam, codes=prefix,
            newton_one=rate(newton, ONE, None), egd_one=rate(egd, ONE, None),
            newton_batch1=rate(newton, BATCH, 1), egd_batch1=rate(egd, BATCH, 1),
            newton_iter=iters(newton), egd_iter=iters(egd),
            max_rel_diff=rel(codes[egd], codes[newton]),
            newton_err=rel(codes[newton], exact), egd_err=rel(codes[egd], exact),
        ))
    return out


# ---------------------------------------------------------------------------------------
# printing
# ---------------------------------------------------------------------------------------


def _threads_label(threads, default_threads):
    if threads is None:
        return "-"
    if threads == DEFAULT:
        return f"{default_threads} (numba default)"
    return str(threads)


def print_config(records, checks, n_rows, n, default_threads):
    r0 = records[0]
    print(_common.heading(r0, f", {n_rows} rows per timed pass (of {n})"))
    rows = []
    for r in records:
        rows.append([
            r["method"], r["call"], _threads_label(r["threads"], default_threads),
            f"{r['codes_per_s']:,.0f}", f"{1e6 / r['codes_per_s']:,.1f}",
            f"{r['codes_per_cpu_s']:,.0f}",
            f"{r['vs_sklearn_one_row']:.2f}x", f"{r['vs_sklearn_same_call']:.2f}x",
            f"{r['mean_iter']:.1f}"
            + (f" ({r['hit_iter_cap']} capped)" if r["hit_iter_cap"] else ""),
        ])
    print(_common.format_table(
        rows,
        ["method", "call", "threads", "codes/s", "us/code", "codes/cpu-s", "vs sk 1-row",
         "vs sk same call", "mean iter"],
        align="lllrrrrrr",
    ))
    for c in checks:
        status = "ok" if c["ok"] else f"FAIL (> {L1_AGREEMENT:g})"
        print(f"L1 check: max |{c['streamsc']} - {c['sklearn']}| = {c['max_abs_diff']:.2e} "
              f"(largest |code| {c['max_abs_code']:.3f}, mean nonzeros {c['nnz_mean']:.1f}) "
              f"{status}")


ISSUE_TARGETS = [
    # (numerator method, reference sklearn method, target, label)
    ("L1 >=0", "sklearn lasso_cd >=0", 3.0, ">= 3x"),
    ("L1 signed", "sklearn lasso_cd signed", 3.0, ">= 3x"),
    ("L1 >=0 transform_one", "sklearn lasso_cd >=0", 3.0, ">= 3x"),
    ("L1 signed transform_one", "sklearn lasso_cd signed", 3.0, ">= 3x"),
    ("KL newton", "sklearn lasso_cd >=0", 1.0, ">= 1x (aim 2x)"),
    ("KL egd", "sklearn lasso_cd >=0", 1.0, ">= 1x (aim 2x)"),
    ("signed KL newton", "sklearn lasso_cd signed", 1.0, ">= 1x (aim 2x)"),
    ("signed KL egd", "sklearn lasso_cd signed", 1.0, ">= 1x (aim 2x)"),
]


def issue_ratios(all_records):
    out = []
    configs = sorted({(r["m"], r["k"], r["lam"]) for r in all_records},
                     key=lambda t: (t[0], t[1], -t[2]))
    for m, k, lam in configs:
        recs = [r for r in all_records if (r["m"], r["k"], r["lam"]) == (m, k, lam)]

        def one_row(name, key="codes_per_s"):
            return next(r[key] for r in recs if r["method"] == name and r["call"] == ONE)

        for num, den, target, label in ISSUE_TARGETS:
            ratio = one_row(num) / one_row(den)
            ratio_cpu = one_row(num, "codes_per_cpu_s") / one_row(den, "codes_per_cpu_s")
            out.append(dict(m=m, k=k, lam=lam, measure=f"{num} / {den}", ratio=ratio,
                            ratio_cpu=ratio_cpu, target=target, target_label=label,
                            met=ratio >= target, met_cpu=ratio_cpu >= target))
    return out


def print_issue_ratios(ratios):
    print("\n=== ratios asked for by issue 8 (one row per call, BLAS pinned to 1 thread) ===")
    print("KL vs L1: the problems differ in kind (KL codes are dense, L1 codes sparse); only the "
          "shapes, inputs and lam match.")
    print(_common.format_ratio_table(ratios, target=lambda r: r["target_label"]))
    print("(ratio: wall-clock codes/s; cpu ratio: codes per CPU-second of this process, "
          "every contender here single-threaded)")


def batch_ratios(all_records):
    """Issue 21's ratio: batched codes/s (1 numba thread) over one-row-per-call codes/s of
    the same method, for every streamsc method and configuration."""
    out = []
    for r in all_records:
        if r["call"] != BATCH or r["threads"] != 1:
            continue
        one = next((q for q in all_records if (q["m"], q["k"], q["lam"], q["method"]) ==
                    (r["m"], r["k"], r["lam"], r["method"]) and q["call"] == ONE), None)
        if one is None:
            continue
        out.append(dict(m=r["m"], k=r["k"], lam=r["lam"], method=r["method"],
                        ratio=r["codes_per_s"] / one["codes_per_s"],
                        ratio_cpu=r["codes_per_cpu_s"] / one["codes_per_cpu_s"]))
    return out


def print_batch_ratios(ratios):
    print("\n=== issue 21: batched (1 thread) / one row per call, same method, BLAS 1 thread "
          "(target for KL codes at (180, 1024), batches >= 256: >= 2x, goal 4x) ===")
    rows = [[*_common.shape_lam(r), r["method"], f"{r['ratio']:.2f}x",
             f"{r['ratio_cpu']:.2f}x"] for r in ratios]
    print(_common.format_table(rows, ["(m, k)", "lam", "method", "ratio", "cpu ratio"],
                               align="lllrr"))


def print_solver_choice(choices):
    print("\n=== KL solver choice: newton vs egd, both at the default tol (1e-6 * lam) ===")
    print("err = max over rows of max_j |w - w_ref| / max_j |w_ref|, w_ref = newton at tol "
          "1e-12 * lam; diff = the same between the egd and newton codes")
    rows = []
    for c in choices:
        rows.append([
            *_common.shape_lam(c), c["codes"],
            f"{c['newton_one']:,.0f}", f"{c['egd_one']:,.0f}",
            f"{c['newton_one'] / c['egd_one']:.2f}x",
            f"{c['newton_batch1']:,.0f}", f"{c['egd_batch1']:,.0f}",
            f"{c['newton_batch1'] / c['egd_batch1']:.2f}x",
            f"{c['newton_iter']:.1f}", f"{c['egd_iter']:.1f}",
            f"{c['newton_err']:.1e}", f"{c['egd_err']:.1e}", f"{c['max_rel_diff']:.1e}",
        ])
    print(_common.format_table(
        rows,
        ["(m, k)", "lam", "codes", "newton/s", "egd/s", "N/E", "newton/s b1", "egd/s b1", "N/E b1",
         "it N", "it E", "err N", "err E", "diff"],
        align="lll" + "r" * 11,
    ))
    print("(/s: one row per call; b1: batched, 1 thread; it: Newton steps / EGD steps)")


def print_first_calls(first, import_seconds, cold):
    what = "numba compilation (fresh cache)" if cold else "numba compilation or cache load"
    print(f"\n=== first call of each contender (excluded from every rate): {what} ===")
    print(f"import streamsc: {import_seconds:.2f} s. Kernels shared by several contenders are "
          "compiled once, by the first one; later shapes reuse the same compiled code.")
    rows = [[f["method"], f["call"], f["threads"], f"{f['seconds']:.3f}"] for f in first]
    print(_common.format_table(rows, ["method", "call", "threads", "first call s"], align="lllr"))


# ---------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------


def parse_args(argv):
    ap = _common.benchmark_parser(
        "codes/s of streamsc.encode vs scikit-learn SparseCoder(lasso_cd)",
        lam="0.1,0.03", lam_help="comma-separated lam values (KL and L1 use the same lam)",
        rows=(24, 2000), budget=(0.02, 2.0),
        budget_help="seconds spent timing each contender and call mode",
    )
    ap.add_argument("--min-rows", type=int, default=None,
                    help="at least this many rows per timed pass (default 16, --quick 8); "
                         "issue 21's batch target is for batches >= 256")
    ap.add_argument("--cold", action="store_true",
                    help="compile into a fresh temporary numba cache so first calls show real "
                         "compilation time")
    args = _common.parse_benchmark_args(ap, argv, min_rows=(8, 16), rounds=(1, 3),
                                        probe_rows=(4, 9))
    if args.rows < 2:
        ap.error("--rows must be >= 2")
    return args


def main(argv=None):
    args = parse_args(argv)
    cache_dir = None
    if args.cold:
        cache_dir = tempfile.mkdtemp(prefix="streamsc-numba-cache-")
        os.environ["NUMBA_CACHE_DIR"] = cache_dir
    import_seconds = _common.timed_import("streamsc")
    import numba
    import sklearn.decomposition  # noqa: F401  (loads sklearn's BLAS pools before pinning)

    default_threads = numba.get_num_threads()
    started = _common.start(SCRIPT, argv, intro=(
        f"{_common.BLAS_PINNED}; streamsc's per-example kernels call no BLAS.\n"
        "Inputs: x = B w* + e, normalised to unit norm; B Gaussian with unit-norm columns (one "
        "B per shape, shared by all); w* has s planted atoms, |w*_j| ~ U[0.5, 1.5], w* >= 0 for "
        "non-negative codes and random signs for signed codes; e Gaussian, ||e|| ~ 0.1 ||B w*||.\n"
        "KL: p = 1/k, default tol 1e-6*lam. L1 (streamsc and sklearn): 1/2||x - Bw||^2 + "
        "lam ||w||_1 with the same lam (SparseCoder transform_alpha = lam; sklearn divides by "
        "m internally). Ratios compare with sklearn lasso_cd of the same sign (>=0 for "
        "non-negative codes).\n"
        "transform_one: SparseCoder(prior='l1', same lam, basis=B).transform_one of one dict "
        "per row (dicts built untimed; never the same row twice in a row, so its cache of "
        "the last code never answers).\n"
        "mean iter: Newton steps / EGD steps / coordinate-descent sweeps (sklearn: CD epochs "
        "of the same Lasso, refit untimed). Rates: the fastest of repeated passes over the "
        "same rows; codes/cpu-s: codes per CPU-second of this process (all its threads)."
    ))

    all_records, all_checks, all_choices, first = [], [], [], []
    with _common.pin_blas(1):
        for m, k, (B, X_pos, X_sgn, _, _) in _common.planted_shapes(args):
            for lam in args.lam:
                records, checks, choice, n_rows = run_config(m, k, lam, B, X_pos, X_sgn, args)
                print_config(records, checks, n_rows, args.rows, default_threads)
                if not first:
                    first = [dict(method=r["method"], call=r["call"],
                                  threads=_threads_label(r["threads"], default_threads),
                                  seconds=r["first_call_s"], m=m, k=k) for r in records]
                all_records += records
                all_checks += checks
                all_choices += choice

    ratios = issue_ratios(all_records)
    print_issue_ratios(ratios)
    print_batch_ratios(batch_ratios(all_records))
    print_solver_choice(all_choices)
    print_first_calls(first, import_seconds, args.cold)
    machine = _common.describe_machine()
    _common.finish(started, desc=machine,
                   prefix=f"\nnumba threading layer: {machine.get('numba_threading_layer')}; ")

    failed = [c for c in all_checks if not c["ok"]]
    if failed:
        print(f"\nFAILED: {len(failed)} L1 comparisons differ from scikit-learn by more than "
              f"{L1_AGREEMENT:g}", file=sys.stderr)
    _common.write_json(
        args.json, SCRIPT, argv, all_records, machine=machine,
        settings=_common.settings(args, "cold"), import_seconds=import_seconds,
        l1_checks=all_checks, solver_choice=all_choices, issue_ratios=ratios, first_calls=first,
    )
    if cache_dir is not None:
        shutil.rmtree(cache_dir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
