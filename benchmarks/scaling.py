"""Throughput of ``streamsc.encode`` against k and against threads; float32; the matvec bound.

Usage::

    python benchmarks/scaling.py [--quick] [--m 64,180] [--ks 64,128,256,512,1024]
                                 [--shapes 64x256,180x1024] [--lam 0.1] [--rows N]
                                 [--budget SECONDS] [--seed S] [--plot-dir docs/figures]
                                 [--no-plot] [--sections k,threads,bound] [--pairs N]
                                 [--json out.json]

Every BLAS pool is pinned to one thread (``_common.pin_blas``) for the whole run; numba's
thread count is what varies. It prints and plots:

1. **Throughput against k** (``--m`` x ``--ks``): codes/s of batched ``encode(X, B, ...)``
   for L1 codes (``prior="l1"``, non-negative) and KL codes (``prior="kl"``, default solver
   EGD) with ``n_threads=1`` and ``2``, and with ``dtype=np.float32`` on 1 thread (the
   float32 / float64 ratio is printed: whether float32 is faster at all; X is float32, B
   float64, so each call also pays one O(mk) conversion of B). Plot:
   ``throughput_k.png``.
2. **Throughput against threads** (``--shapes``): batched ``encode``,
   ``SparseCoder.transform_many`` (a pandas frame, the river estimator's batch path) and
   ``SparseCoder(mini_batch=True).learn_many`` (the frame coded in parallel, then one
   averaged basis step; samples/s) with numba's thread count set with
   ``numba.set_num_threads``, on 1 and 2 threads, and the 2-thread /
   1-thread ratio (issue 8's target for ``transform_many``: >= 1.7x). Plot:
   ``throughput_threads.png``. Next to it, the same ratio for a trivially parallel numba
   loop (no memory traffic, no synchronisation): what the machine could give at that moment
   -- on a machine shared with other jobs a second thread may have no core to run on. The
   ratio is printed twice: fastest 2-thread pass over fastest 1-thread pass, and the median
   over ``--pairs`` back-to-back pairs (1 thread, 2 threads), each pair bracketed by the
   control loop on 1 and 2 threads, with the median over the pairs whose control ratio
   reached 1.9x (the second core was free during that pair). Each pair is also bracketed by
   a second control, a trivially parallel loop of streamsc's own matvec kernel on the same
   B: vectorised arithmetic, which two logical CPUs may not double even when the scalar
   control does (they can share a core's vector units, clock or caches). Last, the same
   paired ratio for that matvec loop alone on B of 8 KB, 32 KB, 128 KB and 1.4 MB
   (``MATVEC_SIZES``): how what two threads give depends on where B sits in the caches.
   Each row also counts the minor page faults per call after warm-up: scratch arrays that
   map fresh pages on every call cost time, and two threads take the faults in turn.
3. **Fraction of the matvec bound** (``--shapes``, 1 thread): codes/s x matvecs per code /
   measured matvec/s. The matvec rate is measured for BLAS DGEMV (``np.dot(B, v, out)``
   called from a numba loop, so no Python overhead, 1 BLAS thread) and for streamsc's own
   kernel (``streamsc._kernels.linalg.matvec``). Matvecs per code come from the iteration
   counts ``encode(..., return_n_iter=True)`` returns, counted per solver as stated in the
   output: EGD >= 2 per accepted step + 2 (one product ``B w`` in the step's evaluation, one
   ``B^T r`` for the gradient; backtracked trials add more, uncounted, so the fraction is a
   lower bound); dual Newton >= 2 per step + 3 (``B^T delta`` and ``B w``; the Woodbury
   solve is not counted: lower bound); coordinate descent: 1 per sweep + 2 (a full sweep
   reads every column once, an active-set sweep only the active ones, so this over-counts
   and the fraction is an upper estimate).

Timing: each contender is warmed up (first call, numba compilation or cache load, never
timed into a rate); the rows per pass are sized from a probe so a pass takes about
``--budget / 12`` seconds; six rounds interleave the contenders of a configuration (short
passes spread over the whole run, so that some 1- and 2-thread passes alike land in
moments when no other process holds a core). The fastest pass is reported (wall clock),
with codes per CPU-second of the process (which for 2 threads sums both). On a loaded
machine only the CPU-time column of single-threaded runs is steady; thread ratios need
free cores, and the script prints the load average and a control (a trivially parallel
numba loop's 2-thread / 1-thread ratio, measured before and after).
"""

import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402  (a sibling module, not a package)

SCRIPT = "benchmarks/scaling.py"

ROOT = Path(__file__).resolve().parents[1]
PRIORS = {
    "L1": dict(prior="l1", signed=False),
    "KL": dict(prior="kl", signed=False),  # default solver: EGD
}


# ---------------------------------------------------------------------------------------
# numba helpers (compiled here, not part of streamsc)
# ---------------------------------------------------------------------------------------


def _make_helpers():
    from numba import njit, prange

    # private on purpose: the solvers' own matvec kernel, timed against DGEMV (the bound)
    from streamsc._kernels.linalg import matvec

    @njit(nogil=True)
    def dgemv_loop(B, v, out, reps):
        """reps BLAS gemv products out = B @ v (a dependency keeps each one)."""
        for _ in range(reps):
            np.dot(B, v, out)
            v[0] += 1e-300 * out[0]

    @njit(nogil=True)
    def kernel_matvec_loop(B, v, out, reps):
        for _ in range(reps):
            matvec(B, v, out)
            v[0] += 1e-300 * out[0]

    @njit(parallel=True, nogil=True)
    def busy_loop(a, reps):
        out = np.empty(a.shape[0])
        for i in prange(a.shape[0]):
            s = 0.0
            for r in range(reps):
                s += np.sin(a[i] + r)
            out[i] = s
        return out

    @njit(parallel=True, nogil=True)
    def matvec_par_loop(B, reps, n):
        """n independent rows, each reps products of streamsc's own matvec kernel on B:
        vectorised arithmetic, B shared read-only, nothing else shared."""
        out = np.empty((n, B.shape[0]))
        for i in prange(n):
            v = np.ones(B.shape[1])
            for _ in range(reps):
                matvec(B, v, out[i])
                v[0] += 1e-300 * out[i, 0]
        return out

    return dgemv_loop, kernel_matvec_loop, busy_loop, matvec_par_loop


def machine_parallelism(busy_loop, seconds=0.3):
    """Wall-clock speed-up of a trivially parallel numba loop on 2 threads over 1, now."""
    import numba

    a = np.arange(64.0)
    busy_loop(a, 10)
    old = numba.get_num_threads()
    rates = {}
    try:
        for threads in (1, 2):
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
            reps = 20000
            t = _common.time_passes(lambda: busy_loop(a, reps), a.size * reps,
                                    budget=seconds, min_repeats=3)
            rates[threads] = t.rate
    finally:
        numba.set_num_threads(old)
    return rates[2] / rates[1]


def matvec_rates(B, dgemv_loop, kernel_matvec_loop, seconds=0.3):
    """(DGEMV matvec/s, streamsc kernel matvec/s) for the basis B, 1 thread."""
    m, k = B.shape
    v = np.ones(k)
    out = np.empty(m)
    out_rates = []
    for fn in (dgemv_loop, kernel_matvec_loop):
        fn(B, v, out, 2)
        reps = max(10, int(2e7 / (m * k)))
        t = _common.time_passes(lambda fn=fn: fn(B, v, out, reps), reps, budget=seconds,
                                min_repeats=3)
        out_rates.append(t.rate)
    return tuple(out_rates)


# ---------------------------------------------------------------------------------------
# timing helpers
# ---------------------------------------------------------------------------------------


def size_rows(fn_rows, X, per_pass, min_rows):
    """Rows per pass so that fn_rows(X[:n]) takes about ``per_pass`` seconds."""
    probe = X[:min(8, X.shape[0])]
    fn_rows(probe)  # warm
    t0 = time.perf_counter()
    fn_rows(probe)
    rate = probe.shape[0] / max(time.perf_counter() - t0, 1e-9)
    return int(np.clip(rate * per_pass, min(min_rows, X.shape[0]), X.shape[0]))


PAIRS = 12  # paired 1-thread / 2-thread measurements per configuration (section 2)
FREE = 1.9  # a pair counts as "on free cores" when the control's ratio reached this


def paired_ratios(job, controls, pairs=PAIRS):
    """2-thread / 1-thread speed-ups of ``job(threads)`` measured in pairs, each pair next
    to the same ratios of the ``controls`` (callables ``control(threads)`` -> seconds,
    trivially parallel loops) taken around it: controls 1t, job 1t, job 2t, controls 2t.
    Returns (job ratios, [ratios of each control]), one per pair. A pair whose first
    control (the scalar loop) is near 1x ran while another process held the second core;
    the pairs whose control reached ``FREE`` show what free cores give."""
    job_r, ctl_r = [], [[] for _ in controls]
    for _ in range(pairs):
        c1 = [control(1) for control in controls]
        j1 = job(1)
        j2 = job(2)
        c2 = [control(2) for control in controls]
        job_r.append(j1 / j2)
        for r, a, b in zip(ctl_r, c1, c2):
            r.append(a / b)
    return np.array(job_r), [np.array(r) for r in ctl_r]


def minor_faults(fn, calls=3):
    """Minor page faults per call of ``fn`` after warm-up (``getrusage``; 0 where it is not
    available): fresh pages mapped for scratch arrays every call, which two threads take in
    turn."""
    try:
        import resource
    except ImportError:  # not on Windows
        return 0.0
    fn()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        fn()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls


def _seconds(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def on_threads(fn):
    """``run(threads)``: the seconds one call of ``fn`` takes on that many numba threads."""
    import numba

    def run(threads):
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        return _seconds(fn)
    return run


# ---------------------------------------------------------------------------------------
# 1. throughput against k (and float32)
# ---------------------------------------------------------------------------------------


def sweep_k(args):
    import streamsc

    records = []
    for m in args.m:
        for k in args.ks:
            B, X_pos, _, _, _ = _common.planted_data(m, k, args.rows, args.seed)
            for pname, kw in PRIORS.items():
                def enc(Xr, threads=1, dtype=np.float64, kw=kw):
                    return streamsc.encode(Xr, B, lam=args.lam, n_threads=threads, dtype=dtype,
                                           **kw)

                first = {}
                first["f64"] = _common.first_call(lambda: enc(X_pos[:2]))[0]
                first["f32"] = _common.first_call(lambda: enc(X_pos[:2], dtype=np.float32))[0]
                first["2t"] = _common.first_call(lambda: enc(X_pos[:2], threads=2))[0]
                n_rows = size_rows(enc, X_pos, args.budget / args.rounds / 2, args.min_rows)
                X = np.ascontiguousarray(X_pos[:n_rows])
                X32 = X.astype(np.float32)
                jobs = {
                    (1, "float64"): lambda: enc(X, 1),
                    (2, "float64"): lambda: enc(X, 2),
                    (1, "float32"): lambda: enc(X32, 1, np.float32),
                }
                timings = _common.interleave(jobs, n_rows, budget=args.budget, rounds=args.rounds)
                _, n_iter = streamsc.encode(X, B, lam=args.lam, return_n_iter=True, **kw)
                for (threads, dtype), t in timings.items():
                    records.append(dict(
                        m=m, k=k, prior=pname, threads=threads, dtype=dtype, rows=n_rows,
                        codes_per_s=t.rate, codes_per_cpu_s=t.cpu_rate,
                        mean_iter=float(np.mean(n_iter)),
                        first_call_s=first["f32" if dtype == "float32" else
                                           ("2t" if threads == 2 else "f64")],
                    ))
    return records


def print_sweep(records):
    print("\n=== 1. batched encode against k (lam shared, BLAS 1 thread) ===")
    rows = []
    keyed = {(r["m"], r["k"], r["prior"], r["threads"], r["dtype"]): r for r in records}
    for (m, k, prior, threads, dtype), r in keyed.items():
        if (threads, dtype) != (1, "float64"):
            continue
        r2 = keyed[(m, k, prior, 2, "float64")]
        r32 = keyed[(m, k, prior, 1, "float32")]
        rows.append([
            f"({m}, {k})", prior, str(r["rows"]), f"{r['codes_per_s']:,.0f}",
            f"{r['codes_per_cpu_s']:,.0f}", f"{r2['codes_per_s']:,.0f}",
            f"{r2['codes_per_s'] / r['codes_per_s']:.2f}x", f"{r32['codes_per_s']:,.0f}",
            f"{r32['codes_per_cpu_s']:,.0f}",
            f"{r32['codes_per_s'] / r['codes_per_s']:.2f}x",
            f"{r32['codes_per_cpu_s'] / r['codes_per_cpu_s']:.2f}x",
            f"{r['mean_iter']:.1f}",
        ])
    print(_common.format_table(rows, [
        "(m, k)", "prior", "rows", "1t codes/s", "1t codes/cpu-s", "2t codes/s", "2t/1t",
        "f32 1t codes/s", "f32 codes/cpu-s", "f32/f64", "f32/f64 cpu", "mean iter"],
        align="llr" + "r" * 9))
    print("(1t, 2t: n_threads=1, 2, float64; f32: dtype=np.float32, n_threads=1; f32/f64: "
          "wall and CPU-time ratios on 1 thread; mean iter: EGD steps (KL) or CD sweeps (L1))")


# ---------------------------------------------------------------------------------------
# 2. throughput against threads: encode and transform_many
# ---------------------------------------------------------------------------------------


#: the batch calls of section 2: ``streamsc.encode``, ``SparseCoder.transform_many`` and
#: ``SparseCoder(mini_batch=True).learn_many`` (codes in parallel, then one basis step)
CALLS = ("encode", "transform_many", "learn_many")


def sweep_threads(args, busy_loop, matvec_par_loop):
    import numba
    import pandas as pd

    import streamsc
    from streamsc import SparseCoder

    records = []
    for m, k in args.shapes:
        B, X_pos, _, _, _ = _common.planted_data(m, k, args.rows, args.seed)
        for pname, kw in PRIORS.items():
            coder = SparseCoder(n_components=k, lam=args.lam, basis=B, seed=args.seed, **kw)

            # private: the estimators' default p (encode's is 1/k), not a public attribute
            p = coder._learner.config.p

            def enc(Xr, threads=1, kw=kw, p=p):
                return streamsc.encode(Xr, B, lam=args.lam, p=p, n_threads=threads, **kw)

            # the mini-batch learner: one averaged basis step per frame (its basis moves from
            # call to call; every call codes the whole frame, then steps)
            learner = SparseCoder(n_components=k, lam=args.lam, basis=B.copy(), seed=args.seed,
                                  mini_batch=True, **kw)

            def on(method, frame, threads):
                old = numba.get_num_threads()
                numba.set_num_threads(threads)
                try:
                    return method(frame)
                finally:
                    numba.set_num_threads(old)

            def tm(frame, threads, coder=coder):
                return on(coder.transform_many, frame, threads)

            def lm(frame, threads, learner=learner):
                return on(learner.learn_many, frame, threads)

            n_rows = size_rows(enc, X_pos, args.budget / args.rounds / 2, args.min_rows)
            X = np.ascontiguousarray(X_pos[:n_rows])
            frame = pd.DataFrame(X)
            for threads in (1, 2):
                enc(X[:2], threads)
                tm(frame.iloc[:2], threads)
                lm(frame.iloc[:2], threads)
            # the river path codes the same problem: same codes as encode
            same = float(np.abs(tm(frame, 1).to_numpy() - enc(X, 1)).max())
            jobs = {}
            for threads in (1, 2):
                jobs[("encode", threads)] = lambda t=threads: enc(X, t)
                jobs[("transform_many", threads)] = lambda t=threads: tm(frame, t)
                jobs[("learn_many", threads)] = lambda t=threads: lm(frame, t)
            timings = _common.interleave(jobs, n_rows, budget=args.budget, rounds=args.rounds)
            faults = {name: minor_faults(job) for name, job in jobs.items()}
            a = np.arange(64.0)
            mv_rows, mv_reps = 8, max(1, int(2e6 / (m * k)))  # both 10-30 ms on one thread
            matvec_par_loop(B, 1, mv_rows)
            control = on_threads(lambda: busy_loop(a, 20000))
            vector_control = on_threads(lambda: matvec_par_loop(B, mv_reps, mv_rows))
            paired = {}
            for call in CALLS:
                paired[call] = paired_ratios(
                    lambda t, c=call: _seconds(jobs[(c, t)]), [control, vector_control],
                    args.pairs)
            for (call, threads), t in timings.items():
                job_r, (ctl_r, vec_r) = paired[call]
                records.append(dict(m=m, k=k, prior=pname, call=call, threads=threads,
                                    rows=n_rows, codes_per_s=t.rate,
                                    codes_per_cpu_s=t.cpu_rate,
                                    max_diff_vs_encode=None if call == "learn_many" else same,
                                    minor_faults_per_call=faults[(call, threads)],
                                    paired_ratios=job_r.tolist(),
                                    paired_control_ratios=ctl_r.tolist(),
                                    paired_vector_control_ratios=vec_r.tolist()))
    return records


#: shapes of B for the matvec loop's size sweep (section 2): 8 KB (inside a core's L1 data
#: cache), 32 KB, 128 KB and 1.4 MB
MATVEC_SIZES = [(16, 64), (32, 128), (64, 256), (180, 1024)]


def matvec_sizes(args, busy_loop, matvec_par_loop):
    """2-thread / 1-thread ratios of the trivially parallel matvec loop against the size of
    B, in back-to-back pairs bracketed by the scalar control (as in :func:`paired_ratios`):
    whether what two threads give vectorised arithmetic depends on where B lives in the
    cache hierarchy, i.e. on the host rather than on the solver."""
    rng = np.random.default_rng(args.seed)
    a = np.arange(64.0)
    work = 2e5 if args.quick else 2e6  # multiply-adds per row: 10-30 ms a call on 1 thread
    records = []
    for m, k in MATVEC_SIZES:
        B = np.ascontiguousarray(rng.standard_normal((m, k)))
        rows, reps = 8, max(1, int(work / (m * k)))
        matvec_par_loop(B, 1, rows)
        job = on_threads(lambda B=B, reps=reps: matvec_par_loop(B, reps, rows))
        job_r, (ctl_r,) = paired_ratios(job, [on_threads(lambda: busy_loop(a, 20000))],
                                        args.pairs)
        records.append(dict(m=m, k=k, bytes=B.nbytes, paired_ratios=job_r.tolist(),
                            paired_control_ratios=ctl_r.tolist()))
    return records


def print_matvec_sizes(records):
    rows = []
    for r in records:
        job_r, ctl_r = np.array(r["paired_ratios"]), np.array(r["paired_control_ratios"])
        free = ctl_r >= FREE
        rows.append([f"({r['m']}, {r['k']})", f"{r['bytes'] / 1024:,.0f} KB",
                     f"{np.median(job_r):.2f}x [{np.median(ctl_r):.2f}x]",
                     f"{np.median(job_r[free]):.2f}x ({free.sum()})" if free.any() else "- (0)"])
    print("\nthe matvec loop alone (8 independent rows of repeated products with B), 2 threads "
          "/ 1 thread, against the size of B:")
    print(_common.format_table(rows, ["B (m, k)", "B size", "paired [scalar control]",
                                      f"paired, control >= {FREE}x (pairs)"], align="lrrr"))
    print("(no solver involved: where this stays below 2x with the scalar control at 2x, two "
          "threads do not double vectorised arithmetic on B of that size on this host)")


def print_threads(records, parallel_before, parallel_after):
    print("\n=== 2. batch throughput against threads (numba threads; BLAS 1 thread) ===")
    keyed = {(r["m"], r["k"], r["prior"], r["call"], r["threads"]): r for r in records}
    rows = []
    for (m, k, prior, call, threads), r in keyed.items():
        if threads != 1:
            continue
        r2 = keyed[(m, k, prior, call, 2)]
        job_r = np.array(r["paired_ratios"])
        ctl_r = np.array(r["paired_control_ratios"])
        vec_r = np.array(r["paired_vector_control_ratios"])
        free = ctl_r >= FREE
        rows.append([f"({m}, {k})", prior, call, str(r["rows"]), f"{r['codes_per_s']:,.0f}",
                     f"{r2['codes_per_s']:,.0f}",
                     f"{r2['codes_per_s'] / r['codes_per_s']:.2f}x",
                     f"{np.median(job_r):.2f}x [{np.median(ctl_r):.2f}x]",
                     f"{np.median(job_r[free]):.2f}x ({free.sum()})" if free.any() else "- (0)",
                     f"{np.median(vec_r[free]):.2f}x" if free.any() else "-",
                     f"{r['minor_faults_per_call']:,.0f} / {r2['minor_faults_per_call']:,.0f}",
                     "-" if r["max_diff_vs_encode"] is None
                     else f"{r['max_diff_vs_encode']:.1e}"])
    print(_common.format_table(rows, ["(m, k)", "prior", "call", "rows", "1 thread codes/s",
                                      "2 threads codes/s", "2t/1t fastest",
                                      "2t/1t paired [control]",
                                      f"paired, control >= {FREE}x (pairs)",
                                      "same pairs: matvec loop", "page faults/call 1t / 2t",
                                      "max|tm - encode|"],
                               align="lllrrrrrrrrr"))
    print("codes/s: samples/s for learn_many (a frame coded and one basis step taken). "
          "2t/1t fastest: the fastest 2-thread pass over the fastest 1-thread pass. paired: "
          "the median over pairs (1 thread, then 2, back to back) of their ratio, next to the "
          "median ratio of a trivially parallel numba loop of scalar sin calls timed around "
          f"each pair (2x on free cores); then the median over the pairs whose control reached "
          f"{FREE}x, and over the same pairs the ratio of a second control timed with it: a "
          "trivially parallel loop of streamsc's own (vectorised) matvec kernel on the same "
          "B, which shows what two threads give vectorised arithmetic here. Page faults: "
          "minor faults per call after warm-up (fresh pages mapped for scratch every call "
          "cost time, and two threads take them in turn).")
    print(f"issue 8 target: transform_many 2 threads / 1 thread >= 1.7x. The control loop gave "
          f"{parallel_before:.2f}x before and {parallel_after:.2f}x after these runs.")


# ---------------------------------------------------------------------------------------
# 3. fraction of the matvec bound
# ---------------------------------------------------------------------------------------

#: (label, encode kwargs, matvecs per iteration, matvecs per code outside iterations, kind)
BOUND_SOLVERS = [
    ("KL egd", dict(prior="kl", solver="egd"), 2, 2, "lower bound"),
    ("KL newton", dict(prior="kl", solver="newton"), 2, 3, "lower bound"),
    ("L1 cd", dict(prior="l1"), 1, 2, "upper estimate"),
]


def matvec_bound(args, dgemv_loop, kernel_matvec_loop):
    import streamsc

    records = []
    for m, k in args.shapes:
        B, X_pos, _, _, _ = _common.planted_data(m, k, args.rows, args.seed)
        dgemv, kernel = matvec_rates(B, dgemv_loop, kernel_matvec_loop)
        for label, kw, per_iter, extra, kind in BOUND_SOLVERS:
            def enc(Xr, kw=kw):
                return streamsc.encode(Xr, B, lam=args.lam, n_threads=1, **kw)

            n_rows = size_rows(enc, X_pos, args.budget / args.rounds, args.min_rows)
            X = np.ascontiguousarray(X_pos[:n_rows])
            t = _common.interleave({label: lambda: enc(X)}, n_rows, budget=args.budget, rounds=args.rounds)[label]
            _, n_iter = streamsc.encode(X, B, lam=args.lam, n_threads=1, return_n_iter=True,
                                        **kw)
            mv = float(np.mean(per_iter * n_iter + extra))
            records.append(dict(
                m=m, k=k, solver=label, codes_per_s=t.rate, codes_per_cpu_s=t.cpu_rate,
                mean_iter=float(np.mean(n_iter)), matvecs_per_code=mv, kind=kind,
                dgemv_per_s=dgemv, kernel_matvec_per_s=kernel,
                dgemv_gflops=2 * m * k * dgemv / 1e9,
                fraction_dgemv=t.rate * mv / dgemv,
                fraction_dgemv_cpu=t.cpu_rate * mv / dgemv,
                fraction_kernel=t.rate * mv / kernel,
            ))
    return records


def print_bound(records):
    print("\n=== 3. fraction of the matvec bound (1 thread): codes/s x matvecs per code / "
          "matvec/s ===")
    rows = [[f"({r['m']}, {r['k']})", r["solver"], f"{r['codes_per_s']:,.0f}",
             f"{r['mean_iter']:.1f}", f"{r['matvecs_per_code']:.1f}",
             f"{r['dgemv_per_s']:,.0f} ({r['dgemv_gflops']:.1f} GFLOP/s)",
             f"{r['kernel_matvec_per_s']:,.0f}",
             f"{100 * r['fraction_dgemv']:.0f}%", f"{100 * r['fraction_dgemv_cpu']:.0f}%",
             f"{100 * r['fraction_kernel']:.0f}%", r["kind"]] for r in records]
    print(_common.format_table(rows, [
        "(m, k)", "solver", "codes/s", "iter/code", "matvecs/code", "DGEMV matvec/s",
        "kernel matvec/s", "of DGEMV", "of DGEMV (cpu)", "of kernel", "fraction is a"],
        align="llrrrrrrrrl"))
    print("matvecs per code: EGD 2 per accepted step + 2, dual Newton 2 per step + 3 (lower "
          "bounds: backtracking and the Woodbury solve are not counted), coordinate descent 1 "
          "per sweep + 2 (an upper estimate: active-set sweeps read only the active columns). "
          "Issue 8's target: >= 50% of DGEMV.")


# ---------------------------------------------------------------------------------------
# plots
# ---------------------------------------------------------------------------------------


def plot(k_records, t_records, plot_dir, caption, control):
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_dir.mkdir(parents=True, exist_ok=True)
    caption = textwrap.fill(caption, 100)
    ms = sorted({r["m"] for r in k_records})
    fig, axes = plt.subplots(1, len(ms), figsize=(5.2 * len(ms), 4.2), squeeze=False)
    styles = {(1, "float64"): "-o", (2, "float64"): "--s", (1, "float32"): ":^"}
    for ax, m in zip(axes[0], ms):
        for prior, color in (("L1", "tab:blue"), ("KL", "tab:red")):
            for (threads, dtype), style in styles.items():
                sel = sorted((r for r in k_records if (r["m"], r["prior"], r["threads"],
                                                       r["dtype"]) == (m, prior, threads, dtype)),
                             key=lambda r: r["k"])
                if not sel:
                    continue
                ax.plot([r["k"] for r in sel], [r["codes_per_s"] for r in sel], style,
                        color=color, label=f"{prior}, {threads} thread{'s' * (threads > 1)}, "
                                           f"{dtype}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("k (atoms)")
        ax.set_ylabel("codes/s (batched encode)")
        ax.set_title(f"m = {m}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"streamsc.encode throughput against k\n{caption}", fontsize=8)
    fig.tight_layout()
    k_path = plot_dir / "throughput_k.png"
    fig.savefig(k_path, dpi=110)
    plt.close(fig)

    groups = sorted({(r["m"], r["k"], r["prior"], r["call"]) for r in t_records})
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for m, k, prior, call in groups:
        sel = sorted((r for r in t_records if (r["m"], r["k"], r["prior"], r["call"]) ==
                      (m, k, prior, call)), key=lambda r: r["threads"])
        base = sel[0]["codes_per_s"]
        ax.plot([r["threads"] for r in sel], [r["codes_per_s"] / base for r in sel],
                {"encode": "-o", "transform_many": "--s", "learn_many": ":^"}[call],
                label=f"{call}, {prior}, ({m}, {k})")
    ax.plot([1, 2], [1, 2], ":", color="gray", label="linear")
    ax.plot([1, 2], [1, control], "-.", color="black",
            label="trivially parallel numba loop (what the machine offered)")
    ax.set_xticks([1, 2])
    ax.set_xlabel("numba threads")
    ax.set_ylabel("speed-up over 1 thread (codes/s)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"batch throughput against threads\n{caption}", fontsize=8)
    fig.tight_layout()
    t_path = plot_dir / "throughput_threads.png"
    fig.savefig(t_path, dpi=110)
    plt.close(fig)
    return k_path, t_path


# ---------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------


def _ints(text, name):
    try:
        values = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"{name}: expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"{name}: expected positive integers, got {text!r}")
    return values


def parse_args(argv):
    ap = _common.benchmark_parser(
        "throughput of streamsc.encode against k and threads; float32; the matvec bound",
        lam="0.1", lam_help="lam (one value)",
        rows=(16, 1024), budget=(0.03, 1.5), budget_help="seconds per configuration",
    )
    ap.add_argument("--m", default="64,180", help="comma-separated m of the k sweep")
    ap.add_argument("--ks", default="64,128,256,512,1024", help="comma-separated k of the sweep")
    ap.add_argument("--plot-dir", default=str(ROOT / "docs" / "figures"),
                    help="where throughput_k.png and throughput_threads.png go")
    ap.add_argument("--no-plot", action="store_true", help="skip the plots")
    ap.add_argument("--pairs", type=int, default=None,
                    help=f"paired 1-/2-thread measurements per configuration in section 2 "
                         f"(default {PAIRS}, --quick 2)")
    ap.add_argument("--sections", default="k,threads,bound",
                    help="which of the sections k, threads, bound to run (plots need k and "
                         "threads)")
    args = _common.parse_benchmark_args(ap, argv, rounds=(1, 6), pairs=(2, PAIRS),
                                        min_rows=(8, 64))
    try:
        args.m = _ints(args.m, "--m")
        args.ks = _ints(args.ks, "--ks")
    except ValueError as exc:
        ap.error(str(exc))
    args.sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    if not args.sections or not args.sections <= {"k", "threads", "bound"}:
        ap.error("--sections: a comma-separated subset of k, threads, bound")
    if len(args.lam) != 1:
        ap.error("--lam: one value")
    args.lam = args.lam[0]
    if args.rows < 2:
        ap.error("--rows must be >= 2")
    return args


def main(argv=None):
    args = parse_args(argv)
    argv_text = " ".join(sys.argv[1:] if argv is None else argv)
    import numba  # noqa: F401
    import pandas  # noqa: F401

    import streamsc  # noqa: F401
    from streamsc import SparseCoder  # noqa: F401  (everything imported before pinning)

    print(" ".join(_common.command_line(SCRIPT, argv)))
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dgemv_loop, kernel_matvec_loop, busy_loop, matvec_par_loop = _make_helpers()
        # load every BLAS library (numba's np.dot goes through scipy's) before pinning:
        # threadpoolctl limits only the pools loaded when the limit is set
        dgemv_loop(np.eye(2), np.ones(2), np.empty(2), 1)
        with _common.pin_blas(1):
            _common.start(SCRIPT, argv, quiet_command=True)
            print(f"BLAS pinned to 1 thread; lam = {args.lam:g}; inputs: _common.planted_data "
                  "(unit-norm rows, planted non-negative codes, 10% noise); default tol "
                  "1e-6*lam.")
            parallel_before = machine_parallelism(busy_loop)
            k_records, t_records, s_records, b_records = [], [], [], []
            if "k" in args.sections:
                k_records = sweep_k(args)
                print_sweep(k_records)
            if "threads" in args.sections:
                t_records = sweep_threads(args, busy_loop, matvec_par_loop)
                s_records = matvec_sizes(args, busy_loop, matvec_par_loop)
            parallel_after = machine_parallelism(busy_loop)
            print(f"\ntrivially parallel numba loop, 2 threads / 1 thread: {parallel_before:.2f}x "
                  f"at the start, {parallel_after:.2f}x after sections 1-2 (what the machine "
                  "offered; 2x on free cores)")
            if t_records:
                print_threads(t_records, parallel_before, parallel_after)
                print_matvec_sizes(s_records)
            if "bound" in args.sections:
                b_records = matvec_bound(args, dgemv_loop, kernel_matvec_loop)
                print_bound(b_records)
    end = _common.describe_machine()
    caption = (f"{end['cpu']}, {end['usable_cpus']} CPUs, load {end['load_average_1_5_15']}; "
               f"python benchmarks/scaling.py {argv_text}".strip())
    paths = ()
    if not args.no_plot and k_records and t_records:
        paths = plot(k_records, t_records, Path(args.plot_dir), caption,
                     min(parallel_before, parallel_after))
        for p in paths:
            print(f"wrote {p}")
    _common.finish(started, desc=end)
    _common.write_json(
        args.json, SCRIPT, argv,
        dict(k_sweep=k_records, threads=t_records, matvec_sizes=s_records,
             matvec_bound=b_records),
        machine=end, settings=_common.settings(args, "m", "ks"),
        machine_parallel_speedup=[parallel_before, parallel_after],
        plots=[str(p) for p in paths],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
