"""streamsc against SPAMS (``spams-bin``): batched L1 codes and mini-batch basis learning.

Usage::

    pip install -e '.[bench]'        # spams-bin, the optional peer
    python benchmarks/spams_peer.py [--quick] [--shapes 64x256,180x1024] [--lam 0.1]
                                    [--rows N] [--batch-size 256] [--batches N]
                                    [--learning-rate 10] [--budget SECONDS] [--seed S]
                                    [--json out.json]

Issue 8 asks for two rows against SPAMS, both timed here in one process with every BLAS pool
pinned to one thread (``_common.pin_blas``) for the whole comparison:

* **batched L1 codes** -- ``streamsc.encode(X, B, prior="l1", lam=lam, signed=...)`` with
  ``n_threads=1`` and ``2`` against ``spams.lasso(X.T, D=B, lambda1=lam, lambda2=0,
  mode=2, pos=not signed, numThreads=1 or 2)``. SPAMS' ``mode=2`` objective is
  ``0.5 ||x - D a||_2^2 + lambda1 ||a||_1 + 0.5 lambda2 ||a||_2^2`` (its documentation of
  ``lasso``), ``pos=True`` restricting to ``a >= 0``: with ``lambda2 = 0`` that is exactly
  streamsc's ``1/2 ||x - B w||^2 + lam ||w||_1`` (``w >= 0`` unless ``signed``), with the
  same lam. SPAMS solves it by LARS/homotopy (exact up to rounding); streamsc by coordinate
  descent to its default ``tol = 1e-6 * lam``. The script checks the codes agree (largest
  ``|w_streamsc - w_spams|`` at most 1e-4, else exit status 1) and prints the largest
  objective gap per row. Both return what their API returns: a dense (n, k) array for
  streamsc, a ``scipy.sparse`` CSC matrix for SPAMS (no conversion is timed).
* **batched KL codes** (issue 21) -- ``streamsc.encode(X, B, prior="kl", lam=lam,
  signed=...)`` (the batched EGD of ``_kernels/kl_batch.py``), ``n_threads=1`` and ``2``, on
  the same rows and lam, against the same ``spams.lasso`` L1 codes: issue 21 asks for
  batched KL codes/s >= SPAMS lasso's L1 codes/s on the same problem (different priors:
  a speed comparison, not an agreement check).
* **mini-batch basis learning** -- ``spams.trainDL(X.T, D=B0, lambda1=lam, lambda2=0,
  mode=2, batchsize=--batch-size, iter=--batches, numThreads=1)`` (signed L1 codes, atoms in
  the unit ball), samples per second = ``batches * batch_size / seconds``, against streamsc's
  basis learners on the same samples, lam and start basis ``B0``. streamsc has no mini-batch
  mode yet: its rows are ``SparseCoder.learn_one`` (dicts, one row per call) and
  ``SparseCodingTransformer.partial_fit`` fed ``--batch-size`` rows per call (which learns
  them one at a time, in order). The ratio issue 8 asks for (mini-batch basis learning
  samples/s / SPAMS trainDL) is printed as a TODO until :func:`streamsc_minibatch_learner`
  returns a learner; :func:`time_basis_learner` times any learner fed mini-batches, so adding
  the row is one function.

Inputs are ``_common.planted_data`` (unit-norm rows of planted sparse codes plus 10% noise
on a Gaussian unit-norm basis), non-negative codes for the non-negative comparison, random
signs otherwise. Every contender is warmed up first (first call timed on its own); timed
passes of all contenders are interleaved over three rounds and the fastest pass is
reported, with units per CPU-second of the process (all threads), the steadier figure on a
shared machine. The rows of a batched pass are sized so streamsc's 1-thread pass takes about
``--budget / 6`` seconds (at least 256 rows, at most ``--rows``); every contender codes the
same rows.

If SPAMS is not importable the script says so (``SPAMS not installed (pip install -e
'.[bench]')``), skips the SPAMS rows and still times streamsc's.
"""

import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402  (a sibling module, not a package)

SCRIPT = "benchmarks/spams_peer.py"

#: largest allowed max |w_streamsc - w_spams| for the L1 codes
L1_AGREEMENT = 1e-4
SPAMS_MISSING = "SPAMS not installed (pip install -e '.[bench]')"


def spams_version():
    """The installed ``spams-bin`` (or ``spams``) distribution's version, or None."""
    from importlib import metadata

    for dist in ("spams-bin", "spams"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return None


def machine(spams):
    desc = _common.describe_machine(
        modules=("numpy", "scipy", "numba", "sklearn", "threadpoolctl", "streamsc"))
    desc["versions"]["spams-bin"] = spams_version() if spams is not None else None
    return desc


def import_spams():
    """``(spams module or None, reason)``."""
    try:
        import spams  # noqa: F401
    except ImportError as exc:
        return None, f"{SPAMS_MISSING}: {exc}"
    except Exception as exc:  # a broken binary wheel
        return None, f"SPAMS failed to import ({type(exc).__name__}: {exc}); skipping its rows"
    return spams, ""


# ---------------------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------------------


def time_basis_learner(learn_batch, batches, *, budget, rounds, timing=None):
    """Samples per second of a basis learner fed mini-batches in order.

    Parameters
    ----------
    learn_batch : callable
        ``learn_batch(Xb)`` learns one mini-batch ``Xb`` of shape (batch, m) (the learner
        keeps its state across calls, as in a live stream).
    batches : list of ndarray
        The mini-batches of one timed pass, in order.
    budget : float
        Seconds to spend in total.
    rounds : int
        Passes are split into this many calls of :func:`_common.time_passes`.
    timing : _common.Timing, optional
        Add the passes to this record.

    Returns
    -------
    _common.Timing
        ``units`` = samples per pass.
    """
    units = sum(b.shape[0] for b in batches)

    def one_pass():
        for Xb in batches:
            learn_batch(Xb)

    for _ in range(rounds):
        timing = _common.time_passes(one_pass, units, budget=budget / rounds, timing=timing)
    return timing


# ---------------------------------------------------------------------------------------
# batched L1 codes
# ---------------------------------------------------------------------------------------


def l1_objective(X, B, W, lam):
    R = X - W @ B.T
    return 0.5 * np.einsum("ij,ij->i", R, R) + lam * np.abs(W).sum(axis=1)


def size_rows(B, X, lam, signed, args):
    """Rows per timed pass: streamsc's 1-thread pass takes about ``budget / rounds / 2``
    seconds (at least ``args.min_rows``, at most all of X); every contender codes them."""
    import streamsc

    probe = X[:min(16, X.shape[0])]
    streamsc.encode(probe[:2], B, prior="l1", lam=lam, signed=signed, n_threads=1)
    t0 = time.perf_counter()
    streamsc.encode(probe, B, prior="l1", lam=lam, signed=signed, n_threads=1)
    rate = probe.shape[0] / max(time.perf_counter() - t0, 1e-9)
    per_pass = args.budget / args.rounds / 2
    return int(np.clip(rate * per_pass, min(args.min_rows, X.shape[0]), X.shape[0]))


def run_codes(m, k, lam, B, X, signed, spams, args):
    import streamsc

    X = np.ascontiguousarray(X[:size_rows(B, X, lam, signed, args)])
    n = X.shape[0]
    Xf = X.T  # (m, n), Fortran-ordered: SPAMS' layout, no copy
    Bf = np.asfortranarray(B)
    jobs, first = {}, {}
    out = {}
    for threads in (1, 2):
        name = f"streamsc encode L1, n_threads={threads}"

        def fn(rows=slice(None), threads=threads, name=name):
            out[name] = streamsc.encode(X[rows], B, prior="l1", lam=lam, signed=signed,
                                        n_threads=threads)
        jobs[name] = fn
    for threads in (1, 2):  # issue 21: batched KL codes (the default prior) vs SPAMS' L1
        name = f"streamsc encode KL (batched EGD), n_threads={threads}"

        def fn(rows=slice(None), threads=threads, name=name):
            out[name] = streamsc.encode(X[rows], B, prior="kl", lam=lam, signed=signed,
                                        n_threads=threads)
        jobs[name] = fn
    if spams is not None:
        for threads in (1, 2):
            name = f"spams.lasso, numThreads={threads}"

            def fn(rows=slice(None), threads=threads, name=name):
                out[name] = spams.lasso(np.asfortranarray(Xf[:, rows]), D=Bf, lambda1=lam,
                                        lambda2=0.0, mode=2, pos=not signed,
                                        numThreads=threads)
            jobs[name] = fn
    for name, fn in jobs.items():  # warm-up on 8 rows (compilation / cache load; 8 is the
        # batched EGD kernel's minimum)
        first[name] = _common.first_call(lambda fn=fn: fn(slice(0, 8)))[0]
    timings = _common.interleave(jobs, n, budget=args.budget, rounds=args.rounds)
    records = [
        dict(m=m, k=k, lam=lam, signed=signed, method=name, rows=n,
             codes_per_s=t.rate, codes_per_cpu_s=t.cpu_rate, first_call_s=first[name],
             pass_seconds=t.seconds, pass_cpu_seconds=t.cpu_seconds)
        for name, t in timings.items()
    ]
    check = None
    if spams is not None:
        W_ours = out["streamsc encode L1, n_threads=1"]
        W_spams = out["spams.lasso, numThreads=1"].toarray().T
        gap = l1_objective(X, B, W_ours, lam) - l1_objective(X, B, W_spams, lam)
        diff = float(np.abs(W_ours - W_spams).max())
        check = dict(m=m, k=k, lam=lam, signed=signed, max_abs_diff=diff,
                     max_abs_code=float(np.abs(W_spams).max()),
                     nnz_mean=float(np.mean((W_spams != 0).sum(axis=1))),
                     max_objective_gap=float(gap.max()), min_objective_gap=float(gap.min()),
                     ok=diff <= L1_AGREEMENT)
    return records, check


# ---------------------------------------------------------------------------------------
# mini-batch basis learning
# ---------------------------------------------------------------------------------------


start_basis = _common.start_basis  # the basis SparseCodingTransformer(random_state=seed) starts from


def streamsc_minibatch_learner(B0, lam, args):
    """streamsc's mini-batch basis learner: ``(name, learn_batch)`` where ``learn_batch(Xb)``
    learns one mini-batch of ``args.batch_size`` rows (an (batch, m) float64 array) with
    ``SparseCoder(mini_batch=True).learn_many`` (codes in parallel, one averaged step),
    started from ``B0`` with ``prior="l1", signed=True, lam=lam``."""
    import pandas as pd

    from streamsc import SparseCoder

    k = B0.shape[1]
    model = SparseCoder(n_components=k, prior="l1", signed=True, lam=lam, basis=B0,
                        learning_rate=args.learning_rate, seed=args.seed, mini_batch=True)
    columns = list(range(B0.shape[0]))
    return "SparseCoder.learn_many (mini-batch)", lambda Xb: model.learn_many(
        pd.DataFrame(Xb, columns=columns))


def basis_learners(B0, lam, args):
    """streamsc's per-row learners: ``{name: learn_batch}``."""
    from streamsc import SparseCoder
    from streamsc.sklearn import SparseCodingTransformer

    k = B0.shape[1]
    common = dict(n_components=k, prior="l1", signed=True, lam=lam,
                  learning_rate=args.learning_rate)
    coder = SparseCoder(seed=args.seed, basis=B0, **common)

    def learn_one_rows(Xb, coder=coder):
        for row in Xb.tolist():
            coder.learn_one(dict(enumerate(row)))

    sct = SparseCodingTransformer(random_state=args.seed, shuffle=False, **common)
    return {
        "streamsc SparseCoder.learn_one (dict per row)": learn_one_rows,
        f"streamsc SparseCodingTransformer.partial_fit ({args.batch_size} rows per call, "
        "learned one at a time)": sct.partial_fit,
    }


def run_learning(m, k, lam, X, spams, args):
    bs, nb = args.batch_size, args.batches
    B0 = start_basis(m, k, args.seed)
    batches = [X[i * bs:(i + 1) * bs] for i in range(nb)]
    units = nb * bs
    jobs = dict(basis_learners(B0, lam, args))
    extra = streamsc_minibatch_learner(B0, lam, args)
    minibatch_name = None
    if extra is not None:
        minibatch_name, learn = extra
        jobs[minibatch_name] = learn
    first, timings = {}, {}
    for name, learn in jobs.items():
        first[name] = _common.first_call(lambda learn=learn: learn(batches[0]))[0]
    if spams is not None:
        Xf = np.asfortranarray(X[:units].T)
        D0 = np.asfortranarray(B0)
        spams_name = f"spams.trainDL (batchsize={bs}, numThreads=1)"

        def train(n_iter):
            return spams.trainDL(Xf, D=D0, lambda1=lam, lambda2=0.0, mode=2, batchsize=bs,
                                 iter=n_iter, numThreads=1, verbose=False, posAlpha=False,
                                 modeD=0)
        first[spams_name] = _common.first_call(lambda: train(1))[0]
    for rnd in range(args.rounds):
        names = list(jobs) + ([spams_name] if spams is not None else [])
        for name in names if rnd % 2 == 0 else names[::-1]:
            if name in jobs:
                timings[name] = time_basis_learner(jobs[name], batches,
                                                   budget=args.budget / args.rounds,
                                                   rounds=1, timing=timings.get(name))
            else:  # one trainDL call of nb mini-batches from D0 per pass
                timings[name] = _common.time_passes(
                    lambda: train(nb), units, budget=args.budget / args.rounds,
                    timing=timings.get(name))
    records = [
        dict(m=m, k=k, lam=lam, method=name, batch_size=bs, samples=units,
             samples_per_s=t.rate, samples_per_cpu_s=t.cpu_rate, first_call_s=first[name],
             pass_seconds=t.seconds, pass_cpu_seconds=t.cpu_seconds,
             minibatch=name == minibatch_name)
        for name, t in timings.items()
    ]
    return records


# ---------------------------------------------------------------------------------------
# printing
# ---------------------------------------------------------------------------------------


def print_codes(records, check):
    r0 = records[0]
    sign = "signed" if r0["signed"] else ">= 0"
    print(f"\n=== batched L1 codes, (m, k) = ({r0['m']}, {r0['k']}), lam = {r0['lam']:g}, "
          f"{sign}, {r0['rows']} rows per pass ===")
    rows = [[r["method"], f"{r['codes_per_s']:,.0f}", f"{r['codes_per_cpu_s']:,.0f}",
             f"{r['first_call_s']:.3f}"] for r in records]
    print(_common.format_table(rows, ["method", "codes/s", "codes/cpu-s", "first call s"]))
    if check is not None:
        status = "ok" if check["ok"] else f"FAIL (> {L1_AGREEMENT:g})"
        print(f"L1 check: max |streamsc - spams| = {check['max_abs_diff']:.2e} (largest |code| "
              f"{check['max_abs_code']:.3f}, mean nonzeros {check['nnz_mean']:.1f}); "
              f"objective streamsc - spams per row in [{check['min_objective_gap']:.1e}, "
              f"{check['max_objective_gap']:.1e}] {status}")


def print_learning(records):
    r0 = records[0]
    print(f"\n=== basis learning, (m, k) = ({r0['m']}, {r0['k']}), lam = {r0['lam']:g}, "
          f"signed L1, {r0['samples']} samples per pass ===")
    rows = [[r["method"], f"{r['samples_per_s']:,.0f}", f"{r['samples_per_cpu_s']:,.0f}",
             f"{r['first_call_s']:.3f}"] for r in records]
    print(_common.format_table(rows, ["method", "samples/s", "samples/cpu-s", "first call s"]))


def issue_ratios(code_records, learn_records):
    """Issue 8's SPAMS rows: (label, shape, lam, ratio, cpu ratio, target) dicts."""
    out = []
    for r in code_records:
        if not r["method"].startswith("streamsc"):
            continue
        threads = r["method"].rsplit("=", 1)[1]
        ref = next((q for q in code_records
                    if (q["m"], q["k"], q["lam"], q["signed"]) ==
                    (r["m"], r["k"], r["lam"], r["signed"])
                    and q["method"] == f"spams.lasso, numThreads={threads}"), None)
        if ref is None:
            continue
        kl = "KL" in r["method"]
        out.append(dict(
            measure=f"batched {'KL' if kl else 'L1'} encode {'signed' if r['signed'] else '>=0'}"
                    f", {threads} thread(s) / spams.lasso (L1) {threads} thread(s)",
            m=r["m"], k=r["k"], lam=r["lam"], ratio=r["codes_per_s"] / ref["codes_per_s"],
            ratio_cpu=r["codes_per_cpu_s"] / ref["codes_per_cpu_s"],
            target=">= 1x (issue 21)" if kl else ">= 1x (issue 8)"))
    for r in learn_records:
        if r["method"].startswith("spams"):
            continue
        ref = next((q for q in learn_records if (q["m"], q["k"], q["lam"]) ==
                    (r["m"], r["k"], r["lam"]) and q["method"].startswith("spams")), None)
        if ref is None:
            continue
        out.append(dict(
            measure=("mini-batch basis learning" if r["minibatch"] else r["method"])
            + " / spams.trainDL", m=r["m"], k=r["k"], lam=r["lam"],
            ratio=r["samples_per_s"] / ref["samples_per_s"],
            ratio_cpu=r["samples_per_cpu_s"] / ref["samples_per_cpu_s"],
            target=">= 1x" if r["minibatch"] else "(per-row learner, for reference)"))
    return out


def print_issue_ratios(ratios, spams_reason, have_minibatch):
    print("\n=== ratios asked for by issue 8 and issue 21 (SPAMS rows; BLAS pinned to 1 "
          "thread) ===")
    if spams_reason:
        print(spams_reason)
        return
    print(_common.format_ratio_table(ratios, met=False))
    print("(ratio: wall-clock; cpu ratio: per CPU-second of this process, all threads)")
    if not have_minibatch:
        print("TODO mini-batch basis learning / spams.trainDL: streamsc has no mini-batch mode "
              "yet (benchmarks/spams_peer.py::streamsc_minibatch_learner returns None)")


# ---------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------


def parse_args(argv):
    ap = _common.benchmark_parser(
        "streamsc vs SPAMS: batched L1 codes (spams.lasso) and basis learning (spams.trainDL)",
        rows=(32, 2000), budget=(0.02, 2.0), rows_help="examples per shape for the batched codes",
    )
    ap.add_argument("--batch-size", type=int, default=None,
                    help="mini-batch size of trainDL and of the batched partial_fit "
                         "(default 256, --quick 16)")
    ap.add_argument("--batches", type=int, default=None,
                    help="mini-batches per timed learning pass (default 8, --quick 2)")
    ap.add_argument("--learning-rate", type=float, default=10.0,
                    help="streamsc's SGD step size (as benchmarks/learn.py)")
    args = _common.parse_benchmark_args(ap, argv, batch_size=(16, 256), batches=(2, 8),
                                        rounds=(1, 3), min_rows=(8, 256))
    if args.rows < 2 or args.batch_size < 1 or args.batches < 1:
        ap.error("--rows must be >= 2, --batch-size and --batches >= 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    spams, spams_reason = import_spams()
    import numba  # noqa: F401

    import streamsc  # noqa: F401
    from streamsc import SparseCoder  # noqa: F401  (everything imported before pinning)

    started = _common.start(SCRIPT, argv, desc=machine(spams))
    if spams_reason:
        print(spams_reason)
    print("BLAS is pinned to 1 thread for every contender (threadpoolctl, whole comparison). "
          "L1: 1/2||x - Bw||^2 + lam ||w||_1, same lam (SPAMS lasso mode=2, lambda2=0).")
    code_records, checks, learn_records = [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with _common.pin_blas(1):
            for m, k in args.shapes:
                n = max(args.rows, args.batch_size * args.batches)
                B, X_pos, X_sgn, s, _ = _common.planted_data(m, k, n, args.seed)
                for lam in args.lam:
                    for signed, X in ((False, X_pos), (True, X_sgn)):
                        recs, check = run_codes(m, k, lam, B, X[:args.rows], signed,
                                                spams, args)
                        print_codes(recs, check)
                        code_records += recs
                        if check is not None:
                            checks.append(check)
                    recs = run_learning(m, k, lam, X_sgn, spams, args)
                    print_learning(recs)
                    learn_records += recs
    ratios = issue_ratios(code_records, learn_records)
    have_minibatch = any(r["minibatch"] for r in learn_records)
    print_issue_ratios(ratios, spams_reason, have_minibatch)
    end = _common.finish(started, desc=machine(spams))
    failed = [c for c in checks if not c["ok"]]
    if failed:
        print(f"FAILED: {len(failed)} L1 comparisons differ from SPAMS by more than "
              f"{L1_AGREEMENT:g}", file=sys.stderr)
    _common.write_json(
        args.json, SCRIPT, argv, dict(codes=code_records, learning=learn_records), machine=end,
        settings=_common.settings(args, "batch_size", "batches", "learning_rate"),
        spams=spams_reason or "installed", l1_checks=checks, issue_ratios=ratios,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
