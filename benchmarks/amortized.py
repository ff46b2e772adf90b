"""The amortised encoder (issue 10, item 2): code error, solver iterations saved as a warm
start, and codes/s against the exact solver.

Usage::

    python benchmarks/amortized.py [--quick] [--shapes 64x256,180x1024] [--lam 0.1]
                                   [--rows N] [--test-rows N] [--signed]
                                   [--budget SECONDS] [--seed S] [--json out.json]

Defaults: 1500 training and 200 held-out examples per shape, 0.6 s of timing per
contender; about a minute on 2 idle cores. ``--quick`` is a smoke test (150 + 30 examples,
tiny budget), not a measurement.

For each basis shape (m, k), each ``lam`` and each code family (KL and non-negative L1; with
``--signed`` also signed KL and signed L1), in one process with every BLAS pool pinned to
one thread:

1. inputs from :func:`_common.planted_data` (as every benchmark here): a Gaussian basis with
   unit-norm columns and unit-norm examples ``x = B w* + e`` with a planted sparse ``w*``
   (non-negative, or random signs for the signed families) and 10% noise; ``--rows``
   training examples and ``--test-rows`` held-out ones;
2. their exact codes (``streamsc.coding.solve``, the family's default solver -- EGD for KL,
   coordinate descent for L1 -- at the default ``tol = 1e-6 * lam``, ``p = 1/k``);
3. a :class:`streamsc.amortized.AmortizedEncoder` started by ``init_from_basis(B)`` and
   trained by one ``update(x, exact code)`` per training example, in stream order, once
   (the online setting: each example is seen once, as by the basis learner);
4. **code error**: ``||W_pred - W_exact||_F / ||W_exact||_F`` on the held-out examples, after
   the init and after training;
5. **iterations**: mean iterations of the exact solver on the held-out examples from a cold
   start, and warm-started from the encoder's prediction after init and after training
   (KL: EGD steps and dual-Newton steps; L1: coordinate-descent sweeps). Every warm-started
   solve must reach the same tolerance (self-check: its codes agree with the cold ones);
6. **codes/s** on the first held-out examples (as many as the slowest exact solver codes,
   one row per call, in a third of ``--budget``), one row per call (``solve`` on one row,
   as the estimators call it, and ``AmortizedEncoder.predict`` followed by the
   warm-started ``solve``, for each solver of step 5; ``AmortizedEncoder.predict`` alone)
   and batched (``solve(X, n_threads=1)`` with the default solver; ``predict_batch``),
   numba pinned to one thread. Contenders are warmed up first (numba compilation is not timed),
   three rounds interleave the contenders, and the fastest pass (wall clock) and the least
   CPU time per pass are reported; the ratios use CPU time (the steadier figure on a
   shared machine).

The untimed work (exact codes of the training and held-out examples, the iteration counts)
uses numba's default thread count.

The exit status is 1 if a self-check fails. No number is asserted by the smoke test
(``tests/test_amortized.py`` runs ``--quick`` at a tiny shape).
"""

import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402  (a sibling module, not a package)

SCRIPT = "benchmarks/amortized.py"

#: (label, prior, signed) of the code families; the signed ones only with --signed
FAMILIES = [("KL", "kl", False), ("L1", "l1", False)]
SIGNED_FAMILIES = [("signed KL", "kl", True), ("L1 signed", "l1", True)]
#: exact solvers whose iterations are compared, per prior (the first one is the default,
#: used for the training targets and the timings)
SOLVERS = {"kl": ["egd", "newton"], "l1": ["cd"]}
#: largest relative difference allowed between warm- and cold-started codes
AGREEMENT = 1e-4


def _solver_arg(name):
    """``solve``'s ``solver`` argument for an entry of :data:`SOLVERS` (L1 ignores it)."""
    return "egd" if name == "cd" else name


def rel_error(P, W):
    """Relative Frobenius error of the codes P against W."""
    return float(np.linalg.norm(P - W) / max(np.linalg.norm(W), 1e-300))


# ---------------------------------------------------------------------------------------
# one configuration
# ---------------------------------------------------------------------------------------


def run_config(m, k, lam, family, prior, signed, B, X_train, X_test, args):
    """Train, measure and time one (shape, lam, family). Returns a dict of results."""
    import numba

    from streamsc import default_tol
    from streamsc.amortized import AmortizedEncoder
    # private on purpose: solve returns the optimality violation the checks report, and the
    # exact-solve contenders are the bare solver the amortised predict replaces
    from streamsc.coding import solve

    p = np.full(k, 1.0 / k)
    tol = default_tol(lam)
    default = SOLVERS[prior][0]
    kw = dict(prior=prior, lam=lam, p=p, signed=signed, tol=tol)

    def exact(X, solver=default, init=None):
        return solve(X, B, solver=_solver_arg(solver), init=init, **kw)

    W_train = exact(X_train)[0]
    W_test, _, _, viol_cold = exact(X_test)

    enc = AmortizedEncoder(k, prior=prior, signed=signed, lam=lam, p=p)
    enc.init_from_basis(B)
    P_init = enc.predict_batch(X_test)
    err_init = rel_error(P_init, W_test)
    first_update, _ = _common.first_call(lambda: enc.update(X_train[0], W_train[0]))
    t0 = time.process_time()
    for i in range(1, X_train.shape[0]):
        enc.update(X_train[i], W_train[i])
    update_cpu_us = 1e6 * (time.process_time() - t0) / max(X_train.shape[0] - 1, 1)
    P = enc.predict_batch(X_test)
    err_trained = rel_error(P, W_test)

    # iterations cold / warm, and the self-check that warm starts reach the same codes
    iters = []
    checks = []
    for solver in SOLVERS[prior]:
        W_cold, _, it_cold, _ = exact(X_test, solver)
        _, _, it_init, _ = exact(X_test, solver, init=P_init)
        W_warm, _, it_warm, viol = exact(X_test, solver, init=P)
        iters.append(dict(
            solver=solver, cold=float(it_cold.mean()), warm_init=float(it_init.mean()),
            warm=float(it_warm.mean()), saved=float(1.0 - it_warm.mean() / it_cold.mean()),
            fewer=float(np.mean(it_warm < it_cold)), more=float(np.mean(it_warm > it_cold)),
        ))
        err = rel_error(W_warm, W_cold)
        checks.append(dict(
            check=f"{solver} warm-started codes vs cold ones (rel. diff), all converged",
            err=err, ok=bool(err <= AGREEMENT and np.all(viol <= tol)),
        ))

    # timings: one row per call and batched, all on one thread, on the first n held-out
    # rows, n set by a probe so that a pass of the slowest contender takes about one
    # round's budget
    old_threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        records = _time_contenders(enc, exact, X_test, SOLVERS[prior], args)
    finally:
        numba.set_num_threads(old_threads)
    return dict(
        m=m, k=k, lam=lam, family=family, prior=prior, signed=signed,
        n_train=int(X_train.shape[0]), n_test=int(X_test.shape[0]), err_init=err_init,
        err_trained=err_trained, update_cpu_us=update_cpu_us, first_update_s=first_update,
        iterations=iters, timings=records, checks=checks,
        theta_range=[float(enc.theta.min()), float(enc.theta.max())],
    )


def _time_contenders(enc, exact, X_test, solvers, args):
    """Warm up and time the contenders (see the module docstring): per solver, the exact
    solve and predict + warm solve, one row per call; the prediction alone; and the default
    solver and the prediction batched."""
    default = solvers[0]
    per_round = args.budget / args.rounds
    n_probe = min(args.probe_rows, X_test.shape[0])
    slowest = 0.0  # seconds per code of the slowest exact solver, one row per call
    for solver in solvers:
        t0 = time.perf_counter()
        for i in range(n_probe):
            exact(X_test[i:i + 1], solver)
        slowest = max(slowest, (time.perf_counter() - t0) / n_probe)
    n = int(np.clip(per_round / max(slowest, 1e-9), args.min_rows, X_test.shape[0]))
    X = np.ascontiguousarray(X_test[:n])
    rows = [X[i:i + 1] for i in range(n)]
    xs = [X[i] for i in range(n)]

    def solve_rows(solver):
        for r in rows:
            exact(r, solver)

    def warm_rows(solver):
        for x, r in zip(xs, rows):
            exact(r, solver, init=enc.predict(x)[None, :])

    def predict_rows():
        for x in xs:
            enc.predict(x)

    def solve_batch():
        exact(X)

    def predict_batch():
        enc.predict_batch(X)

    contenders = {}  # name -> (function, name of the exact contender it is compared with)
    for solver in solvers:
        base = f"exact solve ({solver}), 1 row/call"
        contenders[base] = (lambda solver=solver: solve_rows(solver), base)
        contenders[f"predict + warm solve ({solver}), 1 row/call"] = (
            lambda solver=solver: warm_rows(solver), base)
    base_row = f"exact solve ({default}), 1 row/call"
    contenders["amortised predict, 1 row/call"] = (predict_rows, base_row)
    base_batch = f"exact solve ({default}), batch"
    contenders[base_batch] = (solve_batch, base_batch)
    contenders["amortised predict_batch, batch"] = (predict_batch, base_batch)
    first = {}
    for name, (fn, _) in contenders.items():
        first[name], _ = _common.first_call(fn)
    timings = _common.interleave({name: fn for name, (fn, _) in contenders.items()}, n,
                                 budget=args.budget, rounds=args.rounds)
    records = []
    for name, t in timings.items():
        base = timings[contenders[name][1]]
        records.append(dict(
            contender=name, rows=n, codes_per_s=t.rate, codes_per_cpu_s=t.cpu_rate,
            us=1e6 / t.rate, cpu_us=1e6 / t.cpu_rate, vs_exact=t.cpu_rate / base.cpu_rate,
            vs=contenders[name][1], first_call_s=first[name], pass_seconds=t.seconds,
            pass_cpu_seconds=t.cpu_seconds,
        ))
    return records


# ---------------------------------------------------------------------------------------
# printing
# ---------------------------------------------------------------------------------------


def print_config(res):
    print(_common.heading(res, f", {res['family']}: {res['n_train']} training examples (one "
                                f"update each), {res['n_test']} held out, "
                                f"{res['timings'][0]['rows']} timed"))
    print(f"code error (relative, held out): after init {res['err_init']:.3f}, after training "
          f"{res['err_trained']:.3f}; update {res['update_cpu_us']:,.1f} cpu-us/example; "
          f"thresholds in [{res['theta_range'][0]:.3g}, {res['theta_range'][1]:.3g}]")
    rows = [[
        it["solver"], f"{it['cold']:.2f}", f"{it['warm_init']:.2f}", f"{it['warm']:.2f}",
        f"{100 * it['saved']:+.0f}%", f"{100 * it['fewer']:.0f}% / {100 * it['more']:.0f}%",
    ] for it in res["iterations"]]
    print(_common.format_table(
        rows,
        ["solver", "iters cold", "warm (init)", "warm (trained)", "saved",
         "examples fewer / more"],
        align="lrrrrr",
    ))
    rows = [[
        r["contender"], f"{r['codes_per_s']:,.0f}", f"{r['us']:,.1f}",
        f"{r['codes_per_cpu_s']:,.0f}", f"{r['vs_exact']:.2f}x",
    ] for r in res["timings"]]
    print(_common.format_table(
        rows, ["contender", "codes/s", "us/code", "codes/cpu-s", "vs exact (cpu)"],
        align="lrrrr",
    ))
    for c in res["checks"]:
        print(f"check: {c['check']}: {c['err']:.1e} {'ok' if c['ok'] else 'FAIL'}")


def print_summary(results):
    print("\n=== summary: amortised codes (held out) and the exact solver they warm-start "
          "(1 thread, codes per CPU-second) ===")
    rows = []
    for res in results:
        t = {r["contender"]: r["codes_per_cpu_s"] for r in res["timings"]}
        parts = []
        for it in res["iterations"]:
            cold = t["exact solve ({}), 1 row/call".format(it["solver"])]
            warm = t["predict + warm solve ({}), 1 row/call".format(it["solver"])]
            parts.append(f"{it['solver']} {it['cold']:.1f}->{it['warm']:.1f} it "
                         f"({100 * it['saved']:+.0f}%), {cold:,.0f}->{warm:,.0f}/s")
        solvers = "; ".join(parts)
        rows.append([
            *_common.shape_lam(res), res["family"],
            f"{res['err_init']:.3f}", f"{res['err_trained']:.3f}",
            f"{t['amortised predict, 1 row/call']:,.0f}",
            f"{t['amortised predict_batch, batch']:,.0f}", solvers,
        ])
    print(_common.format_table(
        rows,
        ["(m, k)", "lam", "codes", "err init", "err trained", "predict/s",
         "predict_batch/s", "exact solver: iterations and codes/s, cold -> warm-started"],
        align="lllrrrrl",
    ))
    print("(err: relative Frobenius error of the predicted codes on held-out examples; "
          "iterations: mean per held-out code, cold vs warm-started from the trained encoder; "
          "codes/s one row per call, the warm-started figure including the prediction)")


# ---------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------


def parse_args(argv):
    ap = _common.benchmark_parser(
        "amortised encoder: code error, warm-start iterations and codes/s",
        rows=(150, 1500), budget=(0.02, 0.6), rows_help="training examples per shape",
    )
    ap.add_argument("--test-rows", type=int, default=None,
                    help="held-out examples per shape (default 200, --quick 30)")
    ap.add_argument("--signed", action="store_true",
                    help="also the signed families (signed KL, L1 signed)")
    args = _common.parse_benchmark_args(ap, argv, test_rows=(30, 200), rounds=(1, 3),
                                        probe_rows=(2, 5), min_rows=(4, 20))
    if args.rows < 2 or args.test_rows < 2:
        ap.error("--rows and --test-rows must be >= 2")
    return args


def main(argv=None):
    args = parse_args(argv)
    import streamsc  # noqa: F401

    started = _common.start(SCRIPT, argv, intro=(
        "BLAS is pinned to 1 thread (whole run) and numba to 1 thread for every timed "
        "contender (the untimed exact codes use numba's default). Exact codes: "
        "streamsc.coding.solve at the default tol = 1e-6*lam, p = 1/k (KL: EGD, L1: "
        "coordinate descent). The encoder: AmortizedEncoder.init_from_basis(B), then one "
        "update per training example (learning_rate 0.5)."
    ))
    families = FAMILIES + (SIGNED_FAMILIES if args.signed else [])
    results = []
    with _common.pin_blas(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for m, k, (B, X_pos, X_signed, _, _) in _common.planted_shapes(
                args, n=args.rows + args.test_rows):
            for lam in args.lam:
                for family, prior, signed in families:
                    X = X_signed if signed else X_pos
                    res = run_config(m, k, lam, family, prior, signed, B,
                                     X[:args.rows], X[args.rows:], args)
                    print_config(res)
                    results.append(res)
    print_summary(results)
    machine = _common.finish(started)
    failed = [c for res in results for c in res["checks"] if not c["ok"]]
    if failed:
        print(f"\nFAILED: {len(failed)} self-checks (see 'check:' lines)", file=sys.stderr)
    _common.write_json(args.json, SCRIPT, argv, results, machine=machine,
                       settings=_common.settings(args, "test_rows", "signed"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
