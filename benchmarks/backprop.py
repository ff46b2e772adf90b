"""Cost of the implicit backward pass against the forward encode, and labelled-example
throughput of the supervised learner (issue 5, item 5).

Usage::

    python benchmarks/backprop.py [--quick] [--shapes 64x256,180x1024] [--lam 0.1]
                                  [--rows N] [--budget SECONDS] [--seed S] [--json out.json]

For each basis shape (m, k), each ``lam`` and KL codes both unsigned and signed, it times,
in one process with every BLAS pool pinned to one thread (threadpoolctl):

* per example, on a fixed basis (all single-threaded numba kernels):

  - ``encode``: the forward code, ``streamsc.coding.solve`` on one row (dual Newton, default
    ``tol = 1e-6 * lam``, cold start), as every estimator calls it;
  - ``direction``: the implicit backward an estimator runs,
    ``streamsc.differentiation.direction`` (``v = H^{-1} g`` and ``B v``), with
    ``method="auto"`` and with the other method for comparison (``direct`` forms and
    factors the m x m matrix ``I + B D B^T``, ``cg`` runs preconditioned conjugate
    gradients; ``auto`` takes CG when m > 100);
  - ``encode_vjp``: the public ``streamsc.encode_vjp`` (argument checks, ``direction`` and
    the dense m x k gradient ``grad_B``);

  and the ratio of each backward to ``encode`` (the issue's target: <= 1x);
* per labelled example, on a live stream of dicts (``f0``, ..., one label of 10):
  ``SparseCoder.learn_one(x)`` (the unsupervised step), and
  ``SparseCodingClassifier.learn_one(x, y)`` with ``gradient="alternating"`` (code, head step and
  reconstruction step) and ``gradient="implicit"`` (plus the implicit backward and the supervised
  basis step), both ``reconstruction_weight=1``.

Inputs are those of ``benchmarks/encode.py``: a Gaussian basis with unit-norm columns and
unit-norm examples ``x = B w* + e`` with a planted sparse ``w*`` (non-negative for unsigned
codes, random signs for signed ones) and 10% noise. The cotangent of a backward is the
gradient of a softmax head's log-loss, ``g = V^T (softmax(V w) - e_y)``, for a random
10-class head ``V``. The estimators start from their own random basis (seeded) and are
warmed up on a few examples of the stream before timing.

Every contender is warmed up first; its first call (numba compilation or cache load) is
reported on its own and never mixed into a rate. Rounds interleave the contenders of a
configuration (alternating order) so load from other processes is spread over all of them;
each reports its fastest pass (wall clock) and its passes' least CPU time (CPU time of this
process: the steadier figure on a shared machine, every contender here being
single-threaded).

Untimed self-checks: ``direction`` and ``encode_vjp`` give the same gradient
(``(x - B w) v^T - (B v) w^T``), the direct and CG solves agree, and the classifier with
``gradient="implicit"`` really took supervised steps. The exit status is 1 if a check fails.
"""

import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402  (a sibling module, not a package)

SCRIPT = "benchmarks/backprop.py"

#: (label, signed) of the code families benchmarked
FAMILIES = [("KL", False), ("signed KL", True)]
#: classes of the random softmax head that makes the cotangents, and of the label stream
N_CLASSES = 10
#: largest allowed relative disagreement of the self-checks (direct vs CG is ~1e-10)
AGREEMENT = 1e-6
#: examples each estimator learns before it is timed (grows the basis, compiles kernels)
WARMUP = 20

ENCODE = "encode"
VJP = "encode_vjp"
CODER = "SparseCoder.learn_one"
CLF_OFF = "Classifier.learn_one gradient='alternating'"
CLF_ON = "Classifier.learn_one gradient='implicit'"


def _direction_name(method):
    return f"direction {method}"


# ---------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------


def make_data(planted, n):
    """The basis and two sets of unit-norm examples of ``planted`` (n examples of
    :func:`_common.planted_data`, as in benchmarks/encode.py), then labels and a random
    softmax head drawn from its rng."""
    B, X_pos, X_signed, _, rng = planted
    k = B.shape[1]
    labels = rng.integers(N_CLASSES, size=n)
    head = rng.standard_normal((N_CLASSES, k)) / math.sqrt(k)
    return B, {False: X_pos, True: X_signed}, labels, head


def head_gradients(W, labels, V):
    """g = V^T (softmax(V w) - e_y) for every row w of W: the softmax log-loss's gradient."""
    Z = W @ V.T
    Z -= Z.max(axis=1, keepdims=True)
    P = np.exp(Z)
    P /= P.sum(axis=1, keepdims=True)
    P[np.arange(len(labels)), labels] -= 1.0
    return np.ascontiguousarray(P @ V)


# ---------------------------------------------------------------------------------------
# one configuration
# ---------------------------------------------------------------------------------------


def run_config(m, k, lam, signed, B, X, labels, V, args):
    """Warm up, check, time every contender of one (shape, lam, sign); return the records,
    the self-checks and the rows per pass."""
    import streamsc
    from streamsc import SparseCoder, SparseCodingClassifier
    # private on purpose: the CG iteration counts of the backward are only returned by its
    # kernel (untimed), and ``solve``/``direction`` are the encode and the backward without
    # encode's and encode_vjp's argument checks, the pair whose cost ratio issue 5 targets
    from streamsc._kernels import vjp as vjp_kernels
    from streamsc._models import PRIORS
    from streamsc.coding import solve
    from streamsc.differentiation import (
        CG_HESS_DROP, CG_MAX_ITER, CG_MAX_KEPT, CG_RTOL, direction,
    )

    n = X.shape[0]
    p = np.full(k, 1.0 / k)
    tol = streamsc.default_tol(lam)
    rows = [X[i:i + 1] for i in range(n)]  # (1, m) C-contiguous views, as estimators pass
    # untimed: the codes and the cotangents the backward contenders work on
    out = streamsc.encode(X, B, prior="kl", lam=lam, p=p, signed=signed, tol=tol,
                          return_halves=signed, return_n_iter=True)
    W, n_newton = np.ascontiguousarray(out[0]), out[-1]
    halves = out[1] if signed else (W, np.empty((n, 0)))
    G = head_gradients(W, labels, V)
    auto = "cg" if m > 100 else "direct"
    other = "direct" if auto == "cg" else "cg"
    kw = dict(prior="kl", lam=lam, p=p, signed=signed)

    def encode_one(i):
        return solve(rows[i], B, tol=tol, **kw)[0]

    def direction_one(i, method):
        return direction(B, W[i], G[i], method=method, **kw)

    def vjp_one(i):
        return streamsc.encode_vjp(X[i], B, W[i], G[i], **kw)

    stream = [{f"f{j}": float(v) for j, v in enumerate(x)} for x in X]
    y = [int(c) for c in labels]

    def new_coder():
        return SparseCoder(n_components=k, prior="kl", lam=lam, signed=signed,
                           seed=args.seed)

    models = {
        CODER: new_coder(),
        CLF_OFF: SparseCodingClassifier(coder=new_coder(), gradient="alternating", learning_rate=0.1),
        CLF_ON: SparseCodingClassifier(coder=new_coder(), gradient="implicit", learning_rate=0.1),
    }

    def learn(name, i):
        model = models[name]
        if name == CODER:
            model.learn_one(stream[i])
        else:
            model.learn_one(stream[i], y[i])

    per_example = {
        ENCODE: encode_one,
        _direction_name(auto): lambda i: direction_one(i, auto),
        _direction_name(other): lambda i: direction_one(i, other),
        VJP: vjp_one,
    }
    per_sample = {name: (lambda i, name=name: learn(name, i)) for name in models}
    contenders = {**per_example, **per_sample}

    # warm-up: the first call (compilation or cache load) is timed on its own; the
    # estimators then learn WARMUP examples so their basis has every feature
    first = {}
    probe_rates = {}
    n_probe = min(args.probe_rows, n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, fn in contenders.items():
            first[name], _ = _common.first_call(lambda: fn(0))
            if name in per_sample:
                for i in range(1, min(WARMUP, n)):
                    fn(i)
            t0 = time.perf_counter()
            for i in range(n_probe):
                fn(i)
            probe_rates[name] = n_probe / (time.perf_counter() - t0)
    per_round = args.budget / args.rounds
    n_rows = int(np.clip(min(probe_rates.values()) * per_round, min(args.min_rows, n), n))

    # self-checks (untimed)
    checks = []
    i = 0
    v_a, Bv_a, _ = direction_one(i, auto)
    v_o, Bv_o, _ = direction_one(i, other)
    gB, gx = vjp_one(i)
    c = W[i]
    gB_dir = np.outer(X[i] - B @ c, v_a) - np.outer(Bv_a, c)

    def rel(a, b):
        return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))

    checks.append(dict(check=f"direction {auto} vs {other}: v", err=rel(v_a, v_o)))
    checks.append(dict(check="encode_vjp grad_B vs (x - Bw) v^T - (Bv) w^T",
                       err=rel(gB, gB_dir)))
    checks.append(dict(check="encode_vjp grad_x vs B v", err=rel(gx, Bv_a)))
    for ch in checks:
        ch["ok"] = bool(ch["err"] <= AGREEMENT)
    # CG iterations of the backward (untimed; 0 means a factored solve)
    wp, wm = halves[0][:n_rows], halves[1][:n_rows]
    n_cg = []
    for j in range(n_rows):
        _, it = vjp_kernels.vjp_direction(
            B, PRIORS["kl"].kernel_id, signed, lam, p, np.ascontiguousarray(wp[j]),
            np.ascontiguousarray(wm[j]), G[j], vjp_kernels.CG, CG_RTOL, CG_MAX_ITER,
            CG_HESS_DROP, CG_MAX_KEPT, np.empty(k), np.empty(m),
        )
        n_cg.append(it)

    # timed rounds
    def one_pass(fn):
        for j in range(n_rows):
            fn(j)

    t_before = models[CLF_ON].coder_._learner.t  # private: no public count of basis steps
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        timings = _common.interleave(
            {name: (lambda fn=fn: one_pass(fn)) for name, fn in contenders.items()}, n_rows,
            budget=args.budget, rounds=args.rounds)
    clf = models[CLF_ON]
    took = clf.coder_._learner.t - t_before
    steps = len(timings[CLF_ON].seconds) * n_rows
    checks.append(dict(check="gradient='implicit' took a basis step on every labelled example",
                       err=float(steps - took), ok=took == steps and len(clf.classes_) > 1))

    enc = timings[ENCODE]
    records = []
    family = "signed KL" if signed else "KL"
    for name, t in timings.items():
        kind = "per example" if name in per_example else "per sample"
        rec = dict(
            m=m, k=k, lam=lam, family=family, signed=signed, contender=name, kind=kind,
            rows=n_rows, per_s=t.rate, median_per_s=t.median_rate, per_cpu_s=t.cpu_rate,
            us=1e6 / t.rate, cpu_us=1e6 / t.cpu_rate, first_call_s=first[name],
            pass_seconds=t.seconds, pass_cpu_seconds=t.cpu_seconds,
        )
        if name in per_example:
            rec["vs_encode"] = enc.rate / t.rate  # time ratio: backward / encode
            rec["vs_encode_cpu"] = enc.cpu_rate / t.cpu_rate
        records.append(rec)
    info = dict(newton_iter=float(np.mean(n_newton)), cg_iter=float(np.mean(n_cg)),
                auto=auto)
    return records, checks, n_rows, info


# ---------------------------------------------------------------------------------------
# printing
# ---------------------------------------------------------------------------------------


def print_config(records, checks, n_rows, info):
    r0 = records[0]
    print(_common.heading(r0, f", {r0['family']}: {n_rows} examples per timed pass"))
    print(f"encode: {info['newton_iter']:.1f} Newton steps per code; backward: "
          f"direction auto = {info['auto']}, CG takes {info['cg_iter']:.1f} iterations per "
          "example when used")
    rows = []
    for r in records:
        rows.append([
            r["contender"], r["kind"], f"{r['per_s']:,.0f}", f"{r['us']:,.1f}",
            f"{r['per_cpu_s']:,.0f}", f"{r['cpu_us']:,.1f}",
            f"{r['vs_encode']:.2f}x" if "vs_encode" in r else "",
            f"{r['vs_encode_cpu']:.2f}x" if "vs_encode_cpu" in r else "",
        ])
    print(_common.format_table(
        rows,
        ["contender", "unit", "/s", "us", "/cpu-s", "cpu us", "time / encode",
         "cpu time / encode"],
        align="llrrrrrr",
    ))
    for c in checks:
        print(f"check: {c['check']}: {c['err']:.1e} {'ok' if c['ok'] else 'FAIL'}")


def summary(all_records):
    """The issue's two figures per (shape, lam, family): backward / encode and learn_one."""
    out = []
    keys = sorted({(r["m"], r["k"], r["lam"], r["family"]) for r in all_records},
                  key=lambda t: (t[0], t[1], -t[2], t[3]))
    for key in keys:
        recs = {r["contender"]: r for r in all_records
                if (r["m"], r["k"], r["lam"], r["family"]) == key}
        auto = next(name for name in recs if name.startswith("direction ")
                    and name.split()[1] == ("cg" if key[0] > 100 else "direct"))
        out.append(dict(
            m=key[0], k=key[1], lam=key[2], family=key[3], direction=auto,
            encode_us=recs[ENCODE]["us"], encode_cpu_us=recs[ENCODE]["cpu_us"],
            direction_us=recs[auto]["us"], direction_cpu_us=recs[auto]["cpu_us"],
            direction_ratio=recs[auto]["vs_encode"],
            direction_ratio_cpu=recs[auto]["vs_encode_cpu"],
            vjp_ratio=recs[VJP]["vs_encode"], vjp_ratio_cpu=recs[VJP]["vs_encode_cpu"],
            coder_per_s=recs[CODER]["per_s"], coder_per_cpu_s=recs[CODER]["per_cpu_s"],
            off_per_s=recs[CLF_OFF]["per_s"], off_per_cpu_s=recs[CLF_OFF]["per_cpu_s"],
            on_per_s=recs[CLF_ON]["per_s"], on_per_cpu_s=recs[CLF_ON]["per_cpu_s"],
        ))
    return out


def print_summary(rows):
    print("\n=== issue 5: backward / encode per example (target <= 1x) and labelled "
          "samples/s (BLAS pinned to 1 thread) ===")
    table = [[
        *_common.shape_lam(s), s["family"],
        f"{s['encode_cpu_us']:,.0f}", f"{s['direction_cpu_us']:,.0f} ({s['direction'][10:]})",
        f"{s['direction_ratio_cpu']:.2f}x",
        "met" if s["direction_ratio_cpu"] <= 1.0 else "above",
        f"{s['vjp_ratio_cpu']:.2f}x",
        f"{s['coder_per_cpu_s']:,.0f}", f"{s['off_per_cpu_s']:,.0f}",
        f"{s['on_per_cpu_s']:,.0f}",
    ] for s in rows]
    print(_common.format_table(
        table,
        ["(m, k)", "lam", "codes", "encode us", "backward us", "bwd/enc", "<= 1x",
         "vjp/enc", "coder/s", "clf/s bp off", "clf/s bp on"],
        align="lllrrrlrrrr",
    ))
    print("(all from CPU time of this process; backward = direction, the estimators' path; "
          "vjp = encode_vjp with checks and the dense m x k gradient; /s = labelled samples "
          "per CPU-second of learn_one; the per-configuration tables give wall-clock too)")


def print_first_calls(first, import_seconds):
    print("\n=== first call of each contender (excluded from every rate): numba compilation "
          "or cache load ===")
    print(f"import streamsc: {import_seconds:.2f} s (first configuration only; later ones "
          "reuse the compiled kernels)")
    rows = [[f["contender"], f"{f['seconds']:.3f}"] for f in first]
    print(_common.format_table(rows, ["contender", "first call s"], align="lr"))


# ---------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------


def parse_args(argv):
    ap = _common.benchmark_parser(
        "implicit backward / encode cost and labelled learn_one samples/s",
        rows=(24, 600), budget=(0.02, 1.5),
    )
    args = _common.parse_benchmark_args(ap, argv, min_rows=(4, 16), rounds=(1, 3),
                                        probe_rows=(2, 5))
    if args.rows < WARMUP + 2:
        ap.error(f"--rows must be >= {WARMUP + 2}")
    return args


def main(argv=None):
    args = parse_args(argv)
    import_seconds = _common.timed_import("streamsc")
    started = _common.start(SCRIPT, argv, intro=(
        f"{_common.BLAS_PINNED}; the per-example kernels are single-threaded numba code.\n"
        "encode = streamsc.coding.solve on one row (dual Newton, default tol 1e-6*lam, cold "
        "start, p = 1/k); direction = streamsc.differentiation.direction (v = H^-1 g, B v); "
        "encode_vjp = the public function (checks + direction + dense grad_B).\n"
        "Cotangent g = V^T(softmax(V w) - e_y) of a random 10-class head. learn_one: a "
        "stream of dicts, 10 classes, each estimator warmed up on "
        f"{WARMUP} examples; Classifier has reconstruction_weight=1.\n"
        "Rates: the fastest of repeated passes (/s, us) and per CPU-second of this process "
        "(/cpu-s, cpu us: the steadier figures on a loaded machine). 'time / encode' is "
        "the backward's time over encode's (target <= 1x)."
    ))

    all_records, all_checks, infos, first = [], [], [], []
    with _common.pin_blas(1):
        for m, k, planted in _common.planted_shapes(args):
            B, data, labels, V = make_data(planted, args.rows)
            for lam in args.lam:
                for family, signed in FAMILIES:
                    records, checks, n_rows, info = run_config(
                        m, k, lam, signed, B, data[signed], labels, V, args
                    )
                    print_config(records, checks, n_rows, info)
                    if not first:
                        first = [dict(contender=r["contender"], seconds=r["first_call_s"],
                                      m=m, k=k, family=family) for r in records]
                    all_records += records
                    all_checks += [dict(c, m=m, k=k, lam=lam, family=family) for c in checks]
                    infos.append(dict(info, m=m, k=k, lam=lam, family=family))

    rows = summary(all_records)
    print_summary(rows)
    print_first_calls(first, import_seconds)
    machine = _common.finish(started)
    failed = [c for c in all_checks if not c["ok"]]
    if failed:
        print(f"\nFAILED: {len(failed)} self-checks (see 'check:' lines)", file=sys.stderr)
    _common.write_json(args.json, SCRIPT, argv, all_records, machine=machine,
                       settings=_common.settings(args), import_seconds=import_seconds,
                       checks=all_checks, info=infos, summary=rows, first_calls=first)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
