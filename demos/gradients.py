"""Dictionary recovery by the three basis gradients of ``SparseCoder`` (issue 10, item 3):
``gradient="alternating"`` (the paper's eq. 7), ``"unrolled"`` (PUDLE, T = 5, 10, 20) and
``"implicit"``, on the same planted-dictionary stream.

Usage::

    python demos/gradients.py [--quick] [--shapes 32x48] [--rows N] [--every N]
                              [--learning-rates 5,10,20,40,80,160] [--seeds N]
                              [--lam 0.1] [--kl-lam 0.03] [--kl-p 0.001]
                              [--kl-solver egd|newton] [--priors l1,kl] [--seed S]
                              [--json out.json] [--plot-dir DIR]

Defaults: (m, k) = (32, 48), 6000 examples per stream, the recovery measured every 250
examples, six learning rates per method, three seeds: 180 runs, about 4.5 CPU-minutes
(7 minutes of wall clock on 2 cores at load average 3; ``--seeds 2`` or a shorter
``--learning-rates`` grid cut it proportionally). ``--quick`` is a smoke test (one seed, 400
examples measured every 50, one learning rate), not a measurement.

**Data** (:func:`_common.planted_data`, shared with every script here): a planted basis
``B*`` (m, k) with unit-norm Gaussian columns; each example is ``x = B* w* + e`` rescaled to
unit norm, with ``max(2, round(k/32))`` planted atoms of non-negative magnitude uniform in
[0.5, 1.5] and Gaussian noise at 10% of ``||B* w*||``. Each of ``--seeds`` seeds (``--seed``,
``--seed + 1``, ...) draws its own ``B*``, its own stream of ``--rows`` examples (each seen
once, in the same order by every run) and its own starting basis.

**Learners.** ``SparseCoder(n_components=k, basis=B0, learning_rate=lr, seed=S, ...)`` with
``B0`` the random unit-norm basis ``SparseCoder(seed=S)`` would start from (the same for
every method and learning rate of a seed), fed by ``learn_one`` on dicts
``{0: x_0, ..., m-1: x_{m-1}}``, for two priors (separate panels), both with non-negative
codes:

* ``"l1"``: ``prior="l1", lam=--lam`` (default 0.1);
* ``"kl"``: ``prior="kl", lam=--kl-lam, p=--kl-p`` (default 0.03 and 1e-3, as in
  ``tests/test_sparse_coder.py``: a small prior mean makes KL codes nearly sparse), with
  ``SparseCoder``'s default KL solver for the squared loss (EGD) unless ``--kl-solver``;

and five gradients: ``"alternating"`` (eq. 7 at the exact code, the code held fixed),
``"unrolled"`` with ``unrolled_steps`` T = 5, 10 and 20 (the derivative of
``1/2 ||x - B w_T(B)||^2`` through T ISTA iterations (L1) or fixed-step EGD iterations (KL)
from a cold start; no exact code is computed) and ``"implicit"`` (the total derivative of
``1/2 ||x - B w(B)||^2`` through the exact code). Every run takes steps
``lr / sqrt(t)`` and rescales atoms to unit norm after each step.

**Learning rates.** Each (prior, method) runs once per seed and value of
``--learning-rates`` (the same grid for every method) and is reported at the rate with the
smallest final recovery error averaged over the seeds; the grid table shows every rate, so
the comparison at one common rate can be read too, and a last table each seed's final
error at the reported rate.

**Measures**, every ``--every`` examples (untimed), of the learned basis B against B*, then
averaged over the seeds at each measurement (the thresholds are read on this mean curve):

* recovery error: the mean over planted atoms of ``1 - max_j |cos(b*_i, b_j)|``;
* fraction recovered: planted atoms matched (Hungarian matching on ``|cos|``) to a learned
  atom with ``|cos| >= 0.95`` (``tests/test_sparse_coder.py``'s ``matched_fraction``);
* examples needed to first reach error < 0.05 and 90% recovered ("-" if never);
* microseconds per example of ``learn_one``, wall clock and CPU time of this process, the
  mean over the whole run (the measurements between segments are not timed) and over the
  seeds, and the CPU seconds of ``learn_one`` spent until the mean error first fell below
  0.05.

Every configuration is warmed up first (a throwaway model learns a few examples: numba
compilation or cache load is never timed). BLAS is pinned to one thread (threadpoolctl) and
``learn_one`` runs in this thread. Runs go seed by seed and learning rate by learning rate,
the methods in alternating order, so a burst of load from another process is spread over
all of them; CPU time is the steadier figure on a shared machine.

A run that raises (the learner refuses a step whose iterates or step overflow) is reported
as failed with its message, and its curve stops there; a learning rate with a failed seed is
not eligible as a method's best. The exit status is 1 if some method failed at every
learning rate.
"""

import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import _common  # noqa: E402  (the benchmarks' shared harness, not a package)

SCRIPT = "demos/gradients.py"

#: (label, SparseCoder keyword arguments) of the methods, in table order
METHODS = [
    ("alternating", dict(gradient="alternating")),
    ("unrolled T=5", dict(gradient="unrolled", unrolled_steps=5)),
    ("unrolled T=10", dict(gradient="unrolled", unrolled_steps=10)),
    ("unrolled T=20", dict(gradient="unrolled", unrolled_steps=20)),
    ("implicit", dict(gradient="implicit")),
]
BASELINE = "alternating"
#: the priors (panel names) and their labels
PRIORS = {"l1": "L1, non-negative codes", "kl": "KL, non-negative codes"}
#: |cos| at which a planted atom counts as recovered
RECOVERED_COS = 0.95
#: thresholds of the "examples needed" columns
ERROR_TARGET = 0.05
FRACTION_TARGET = 0.9
#: examples learned by the throwaway model of each configuration before any timing
WARMUP = 5


# ---------------------------------------------------------------------------------------
# data and measures
# ---------------------------------------------------------------------------------------


start_basis = _common.start_basis  # the basis SparseCoder(seed=seed) starts from


def recovery(B_star, B):
    """``(error, fraction)``: the mean over planted atoms of ``1 - max_j |cos|`` and the
    fraction matched (Hungarian matching) at ``|cos| >= RECOVERED_COS``."""
    from scipy.optimize import linear_sum_assignment

    norms = np.linalg.norm(B, axis=0)
    C = np.abs(B_star.T @ (B / np.maximum(norms, np.finfo(float).tiny)))
    r, c = linear_sum_assignment(-C)
    error = float(np.mean(1.0 - C.max(axis=1)))
    return max(error, 0.0), float(np.mean(C[r, c] >= RECOVERED_COS))


def first_reach(curve, key, target, below):
    """Examples seen at the first measurement where ``curve[key]`` is below (or at least)
    ``target``; None if never."""
    for point in curve:
        value = point[key]
        if (value < target) if below else (value >= target):
            return point["examples"]
    return None


# ---------------------------------------------------------------------------------------
# runs
# ---------------------------------------------------------------------------------------


def coder_params(prior, args):
    if prior == "l1":
        return dict(prior="l1", lam=args.lam)
    return dict(prior="kl", lam=args.kl_lam, p=args.kl_p, solver=args.kl_solver)


def make_coder(prior, method_kw, lr, B0, args):
    from streamsc import SparseCoder

    return SparseCoder(n_components=B0.shape[1], basis=B0, learning_rate=lr, seed=args.seed,
                       **coder_params(prior, args), **method_kw)


def warm_up(prior, method_kw, B0, items, args):
    """Compile (or load from numba's cache) every kernel of a configuration, untimed."""
    coder = make_coder(prior, method_kw, args.learning_rates[0], B0, args)
    for x in items[:WARMUP]:
        coder.learn_one(x)


def run_one(prior, method, method_kw, lr, B0, B_star, items, args):
    """Stream ``items`` through a fresh coder; the recovery every ``args.every`` examples."""
    coder = make_coder(prior, method_kw, lr, B0, args)
    learner = coder._learner
    err0, frac0 = recovery(B_star, learner.B)
    curve = [dict(examples=0, error=err0, fraction=frac0, cpu_s=0.0, wall_s=0.0)]
    wall = cpu = 0.0
    seen = 0
    failure = None
    n = len(items)
    while seen < n and failure is None:
        chunk = items[seen:seen + args.every]
        learn = coder.learn_one
        c0, t0 = time.process_time(), time.perf_counter()
        done = 0
        try:
            for x in chunk:
                learn(x)
                done += 1
        except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
            failure = dict(example=seen + done, error=f"{type(exc).__name__}: {exc}")
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
        seen += done
        if not np.all(np.isfinite(learner.B)):
            failure = failure or dict(example=seen, error="the basis is not finite")
            break
        if done:
            err, frac = recovery(B_star, learner.B)
            curve.append(dict(examples=seen, error=err, fraction=frac, cpu_s=cpu, wall_s=wall))
    final = curve[-1]
    reach_err = first_reach(curve, "error", ERROR_TARGET, below=True)
    reach_frac = first_reach(curve, "fraction", FRACTION_TARGET, below=False)
    cpu_to_err = next((p["cpu_s"] for p in curve if p["examples"] == reach_err), None)
    norms = np.linalg.norm(learner.B, axis=0)
    return dict(
        prior=prior, method=method, learning_rate=lr, params=dict(method_kw),
        examples=seen, failed=failure is not None, failure=failure,
        final_error=final["error"], final_fraction=final["fraction"],
        examples_to_error=reach_err, examples_to_fraction=reach_frac,
        cpu_s_to_error=cpu_to_err,
        us_per_example=1e6 * wall / seen if seen else None,
        cpu_us_per_example=1e6 * cpu / seen if seen else None,
        wall_s=wall, cpu_s=cpu,
        max_atom_norm_error=float(np.max(np.abs(norms - 1.0))) if seen else None,
        curve=curve,
    )


def aggregate(prior, method, lr, runs):
    """The runs of one (prior, method, learning rate) over the seeds: mean final error and
    fraction recovered, the mean curve (error, fraction and cumulative seconds averaged over
    the seeds at each measurement), the thresholds read on the mean curve, and the mean
    microseconds per example. ``failed`` if any seed's run failed (then no mean curve)."""
    failed = [r for r in runs if r["failed"]]
    agg = dict(prior=prior, method=method, learning_rate=lr, seeds=[r["seed"] for r in runs],
               failed=bool(failed), failed_seeds=[r["seed"] for r in failed],
               final_errors=[r["final_error"] for r in runs],
               final_fractions=[r["final_fraction"] for r in runs],
               examples_to_error_per_seed=[r["examples_to_error"] for r in runs])
    if failed:
        agg.update(final_error=None, final_fraction=None, curve=None, examples_to_error=None,
                   examples_to_fraction=None, cpu_s_to_error=None, us_per_example=None,
                   cpu_us_per_example=None)
        return agg
    curve = []
    for points in zip(*(r["curve"] for r in runs)):
        curve.append({key: float(np.mean([pt[key] for pt in points]))
                      for key in ("examples", "error", "fraction", "cpu_s", "wall_s")})
        curve[-1]["examples"] = int(points[0]["examples"])
    reach_err = first_reach(curve, "error", ERROR_TARGET, below=True)
    agg.update(
        final_error=curve[-1]["error"], final_fraction=curve[-1]["fraction"], curve=curve,
        examples_to_error=reach_err,
        examples_to_fraction=first_reach(curve, "fraction", FRACTION_TARGET, below=False),
        cpu_s_to_error=next((pt["cpu_s"] for pt in curve if pt["examples"] == reach_err), None),
        us_per_example=float(np.mean([r["us_per_example"] for r in runs])),
        cpu_us_per_example=float(np.mean([r["cpu_us_per_example"] for r in runs])),
    )
    return agg


def pick_best(aggs):
    """The learning rate with the smallest mean final recovery error among those whose runs
    all finished (None if none did); ties go to the one that reached the error target
    first, then to the smaller rate."""
    done = [a for a in aggs if not a["failed"]]
    if not done:
        return None
    big = float("inf")
    return min(done, key=lambda a: (a["final_error"], a["examples_to_error"] or big,
                                    a["learning_rate"]))


def run_prior(prior, streams, args):
    """Every method at every learning rate on every seed's stream; returns ``(runs, aggs,
    best)``: the runs, their aggregates over the seeds per (method, learning rate), and a
    dict from method to its chosen aggregate (or None)."""
    seed0, B_star0, B00, items0 = streams[0]
    for _, kw in METHODS:
        warm_up(prior, kw, B00, items0, args)
    runs = []
    turn = 0
    for seed, B_star, B0, items in streams:
        for lr in args.learning_rates:
            order = METHODS if turn % 2 == 0 else METHODS[::-1]
            turn += 1
            for method, kw in order:
                r = run_one(prior, method, kw, lr, B0, B_star, items, args)
                r["seed"] = seed
                runs.append(r)
    aggs = []
    for method, _ in METHODS:
        for lr in args.learning_rates:
            mine = [r for r in runs if r["method"] == method and r["learning_rate"] == lr]
            mine.sort(key=lambda r: r["seed"])
            aggs.append(aggregate(prior, method, lr, mine))
    best = {method: pick_best([a for a in aggs if a["method"] == method])
            for method, _ in METHODS}
    return runs, aggs, best


# ---------------------------------------------------------------------------------------
# printing
# ---------------------------------------------------------------------------------------


def _int(value):
    return "-" if value is None else f"{value:,}"


RATIO_KEYS = ("us_per_example", "cpu_us_per_example", "examples_to_error", "cpu_s_to_error",
              "final_error")


def summary_rows(best):
    """One row per method (its chosen learning rate), with ratios against alternating."""
    base = best.get(BASELINE)
    rows = []
    for method, _ in METHODS:
        a = best[method]
        if a is None:
            rows.append(dict(method=method, failed=True))
            continue
        row = dict(method=method, failed=False, learning_rate=a["learning_rate"],
                   final_fraction=a["final_fraction"],
                   examples_to_fraction=a["examples_to_fraction"],
                   **{key: a[key] for key in RATIO_KEYS})
        for key in RATIO_KEYS:
            den = None if base is None else base[key]
            row[f"{key}_vs_alternating"] = (
                None if row[key] is None or den is None or not den > 0 else row[key] / den
            )
        rows.append(row)
    return rows


def print_prior(prior, aggs, best, args, s):
    m, k = args.shapes[0]
    n_seeds = len(args.seed_list)
    print(f"\n=== {prior}: {PRIORS[prior]}, {describe_prior(prior, args)}; (m, k) = "
          f"({m}, {k}), {s} planted atoms per example, {args.rows:,} examples, mean of "
          f"{n_seeds} seed{'s' if n_seeds > 1 else ''} ===")
    table = []
    for row in summary_rows(best):
        if row["failed"]:
            table.append([row["method"], "-", "failed"] + ["-"] * 10)
            continue
        table.append([
            row["method"], f"{row['learning_rate']:g}", f"{row['final_error']:.4f}",
            f"{100 * row['final_fraction']:.0f}%", _int(row["examples_to_error"]),
            _int(row["examples_to_fraction"]), f"{row['us_per_example']:,.0f}",
            f"{row['cpu_us_per_example']:,.0f}",
            _fmt_ratio(row["cpu_us_per_example_vs_alternating"]),
            _fmt_ratio(row["examples_to_error_vs_alternating"]),
            "-" if row["cpu_s_to_error"] is None else f"{row['cpu_s_to_error']:.2f}",
            _fmt_ratio(row["cpu_s_to_error_vs_alternating"]),
            _fmt_ratio(row["final_error_vs_alternating"]),
        ])
    print(_common.format_table(
        table,
        ["method", "lr", "final err", "recovered", f"ex. to err<{ERROR_TARGET:g}",
         f"ex. to {100 * FRACTION_TARGET:.0f}%", "us/ex wall", "us/ex cpu", "cpu/ex ratio",
         "ex. ratio", f"cpu s to err<{ERROR_TARGET:g}", "cpu-s ratio", "err ratio"],
    ))
    print("(each method at the learning rate of the grid with the smallest mean final error; "
          "errors, fractions and thresholds from the seed-averaged curve; ratios: method / "
          "alternating; us/ex: mean over the runs of learn_one on dicts; cpu s to "
          f"err<{ERROR_TARGET:g}: CPU seconds of learn_one until the first measurement below "
          f"{ERROR_TARGET:g})")
    print("\nevery learning rate: mean final error (mean fraction recovered) over the seeds "
          "[* = reported above]")
    lrs = args.learning_rates
    grid = []
    for method, _ in METHODS:
        row = [method]
        for lr in lrs:
            a = next(a for a in aggs if a["method"] == method and a["learning_rate"] == lr)
            if a["failed"]:
                cell = f"failed ({len(a['failed_seeds'])}/{n_seeds} seeds)"
            else:
                cell = f"{a['final_error']:.4f} ({100 * a['final_fraction']:.0f}%)"
            if best[method] is a:
                cell += " *"
            row.append(cell)
        grid.append(row)
    print(_common.format_table(grid, ["method"] + [f"lr {lr:g}" for lr in lrs]))
    if n_seeds > 1:
        print("\nfinal error (fraction recovered) of each seed at the reported learning rate")
        rows = []
        for method, _ in METHODS:
            a = best[method]
            if a is None:
                rows.append([method] + ["-"] * n_seeds)
                continue
            rows.append([method] + [f"{e:.4f} ({100 * f:.0f}%)"
                                    for e, f in zip(a["final_errors"], a["final_fractions"])])
        print(_common.format_table(rows, ["method"] + [f"seed {sd}" for sd in args.seed_list]))


def print_failures(runs):
    for r in runs:
        if r["failed"]:
            print(f"failed: {r['method']} lr {r['learning_rate']:g} seed {r['seed']} at "
                  f"example {r['failure']['example']:,}: {r['failure']['error']}")


def _fmt_ratio(value):
    return "-" if value is None else f"{value:.2f}x"


def describe_prior(prior, args):
    if prior == "l1":
        return f"lam {args.lam:g}"
    solver = args.kl_solver or "default (egd)"
    return f"lam {args.kl_lam:g}, p {args.kl_p:g}, solver {solver}"


# ---------------------------------------------------------------------------------------
# plots
# ---------------------------------------------------------------------------------------


def plot_prior(prior, best, path, args, floor=1e-5):
    """The seed-averaged recovery error against examples seen and against CPU seconds of
    learn_one, one line per method (at its chosen learning rate), log vertical axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m, k = args.shapes[0]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    styles = ["-", "--", "-.", ":", "-"]
    for (method, _), style in zip(METHODS, styles):
        r = best[method]
        if r is None:
            continue
        ex = [p["examples"] for p in r["curve"]]
        cpu = [p["cpu_s"] for p in r["curve"]]
        err = [max(p["error"], floor) for p in r["curve"]]
        label = f"{method} (lr {r['learning_rate']:g})"
        axes[0].plot(ex, err, style, label=label, lw=1.6)
        axes[1].plot(cpu, err, style, label=label, lw=1.6)
    for ax, xlabel in zip(axes, ("examples seen", "CPU seconds of learn_one")):
        ax.set_yscale("log")
        ax.axhline(ERROR_TARGET, color="grey", lw=0.8, ls=":")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("recovery error: mean (1 - max |cos|)")
    axes[0].legend(fontsize=8)
    n_seeds = len(args.seed_list)
    fig.suptitle(f"{PRIORS[prior]} ({describe_prior(prior, args)}), planted ({m}, {k}); "
                 f"mean of {n_seeds} seed{'s' if n_seeds > 1 else ''}, each method at its "
                 "best learning rate")
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


# ---------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------


def parse_args(argv):
    ap = _common.benchmark_parser(
        "dictionary recovery by SparseCoder's alternating, unrolled and implicit gradients",
        lam="0.1", lam_help="lam of the L1 runs (one value)",
        rows_help="examples in each stream (default 6000, --quick 400)",
        budget_help="unused (every run streams all examples; kept for a uniform interface)",
    )
    ap.set_defaults(shapes="32x48")
    ap.add_argument("--seeds", type=int, default=None,
                    help="number of seeds (seed, seed+1, ...): each draws its own planted "
                         "basis, stream and starting basis (default 3, --quick 1)")
    ap.add_argument("--every", type=int, default=None,
                    help="examples between recovery measurements (default 250, --quick 50)")
    ap.add_argument("--learning-rates", default=None,
                    help="comma-separated learning_rate grid, the same for every method "
                         "(default 5,10,20,40,80,160; --quick 30)")
    ap.add_argument("--kl-lam", type=float, default=0.03, help="lam of the KL runs")
    ap.add_argument("--kl-p", type=float, default=1e-3, help="KL prior mean p of the KL runs")
    ap.add_argument("--kl-solver", choices=["egd", "newton"], default=None,
                    help="KL code solver (default: SparseCoder's default, EGD)")
    ap.add_argument("--priors", default="l1,kl", help="comma-separated subset of l1,kl")
    ap.add_argument("--plot-dir", default=None,
                    help="write gradients_<prior>.png (recovery curves) into this directory")
    args = _common.parse_benchmark_args(ap, argv, rows=(400, 6000), budget=(1.0, 1.0))
    if len(args.shapes) != 1:
        ap.error("--shapes: give one shape")
    if len(args.lam) != 1:
        ap.error("--lam: give one value (the L1 runs' lam)")
    args.lam = args.lam[0]
    if args.every is None:
        args.every = 50 if args.quick else 250
    if args.every < 1:
        ap.error("--every must be >= 1")
    if args.rows < max(args.every, WARMUP):
        ap.error("--rows must be >= --every")
    if args.learning_rates is None:
        args.learning_rates = "30" if args.quick else "5,10,20,40,80,160"
    try:
        args.learning_rates = _common.parse_floats(args.learning_rates, "--learning-rates")
    except ValueError as exc:
        ap.error(str(exc))
    if args.seeds is None:
        args.seeds = 1 if args.quick else 3
    if args.seeds < 1:
        ap.error("--seeds must be >= 1")
    args.seed_list = [args.seed + i for i in range(args.seeds)]
    if not (args.kl_lam > 0 and args.kl_p > 0):
        ap.error("--kl-lam and --kl-p must be > 0")
    args.priors = [p.strip() for p in args.priors.split(",") if p.strip()]
    if not args.priors or any(p not in PRIORS for p in args.priors):
        ap.error(f"--priors: a comma-separated subset of {','.join(PRIORS)}")
    return args


def _columns(agg):
    """An aggregate for the JSON file: its mean curve as one list per measure (6 significant
    digits)."""
    out = dict(agg)
    if agg["curve"] is not None:
        out["curve"] = {key: [float(f"{pt[key]:.6g}") for pt in agg["curve"]]
                        for key in ("examples", "error", "fraction", "cpu_s", "wall_s")}
    return out


def _without_curve(run):
    """A run for the JSON file: its numbers without its curve (the seed-averaged curves are
    in the aggregates), plus its error at the start."""
    out = {key: value for key, value in run.items() if key != "curve"}
    out["start_error"] = run["curve"][0]["error"]
    out["measurements"] = len(run["curve"])
    return out


def _clean(obj):
    """NaN/inf -> None, recursively (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: _clean(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(value) for value in obj]
    return obj


def main(argv=None):
    args = parse_args(argv)
    import streamsc  # noqa: F401

    started = _common.start(SCRIPT, argv)
    m, k = args.shapes[0]
    lrs = ", ".join(f"{lr:g}" for lr in args.learning_rates)
    seeds = ", ".join(str(sd) for sd in args.seed_list)
    print(
        "BLAS is pinned to 1 thread; learn_one runs in this thread.\n"
        f"Data: planted unit-norm B* ({m}, {k}); examples B* w* + 10% noise, non-negative w*, "
        f"rescaled to unit norm; per seed ({seeds}) its own B*, stream of {args.rows:,} "
        "examples and random unit-norm starting basis, the same for every method and "
        "learning rate.\n"
        "Methods: SparseCoder(gradient=...) learn_one on dicts, step learning_rate/sqrt(t), "
        "unit-norm atoms; alternating = eq. 7 at the exact code; unrolled T = derivative of "
        "1/2||x - B w_T(B)||^2 through T ISTA (L1) / fixed-step EGD (KL) iterations; implicit "
        "= total derivative of 1/2||x - B w(B)||^2 through the exact code.\n"
        f"Learning rates: the grid [{lrs}] for every method; each method reported at the one "
        "with the smallest final recovery error averaged over the seeds.\n"
        f"Recovery error: mean over planted atoms of 1 - max_j |cos(b*_i, b_j)|, every "
        f"{args.every} examples; recovered: Hungarian match with |cos| >= {RECOVERED_COS}."
    )
    results = {}
    ok = True
    with _common.pin_blas(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        streams = []
        for seed in args.seed_list:
            B_star, X, _, s, _ = _common.planted_data(m, k, args.rows, seed)
            items = [dict(zip(range(m), row)) for row in X.tolist()]
            streams.append((seed, B_star, start_basis(m, k, seed), items))
        for prior in args.priors:
            runs, aggs, best = run_prior(prior, streams, args)
            print_prior(prior, aggs, best, args, s)
            print_failures(runs)
            ok &= all(a is not None for a in best.values())
            results[prior] = dict(
                prior=prior, params=coder_params(prior, args), summary=summary_rows(best),
                best_learning_rate={meth: (a and a["learning_rate"]) for meth, a in best.items()},
                aggregates=[_columns(a) for a in aggs],
                runs=[_without_curve(r) for r in runs],
            )
            if args.plot_dir:
                out_dir = Path(args.plot_dir)
                out_dir.mkdir(parents=True, exist_ok=True)
                path = out_dir / f"gradients_{prior}.png"
                plot_prior(prior, best, path, args)
                print(f"wrote {path}")
    machine = _common.finish(started)
    if not ok:
        print("\nFAILED: some method failed at every learning rate", file=sys.stderr)
    if args.json:
        _common.write_json(
            args.json, SCRIPT, argv, _clean(results), machine=machine, compact=True,
            settings=_clean(dict(shapes=args.shapes, rows=args.rows, every=args.every,
                          learning_rates=args.learning_rates, lam=args.lam,
                          kl_lam=args.kl_lam, kl_p=args.kl_p, kl_solver=args.kl_solver,
                          priors=args.priors, seeds=args.seed_list, quick=args.quick,
                          planted_atoms_per_example=s, error_target=ERROR_TARGET,
                          fraction_target=FRACTION_TARGET, recovered_cos=RECOVERED_COS)),
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
