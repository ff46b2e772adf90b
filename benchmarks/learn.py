"""Basis learning throughput: ``SparseCoder.learn_one`` against scikit-learn's
``MiniBatchDictionaryLearning.partial_fit`` (issue 4 item 5; issue 8's ``learn_one`` row).

Usage::

    python benchmarks/learn.py [--quick] [--shapes 64x256,180x1024] [--lam 0.1]
                               [--kl-solver newton|egd]
                               [--batch-size 256] [--rows N]
                               [--budget SECONDS] [--seed S] [--json out.json]

For each basis shape (m, k) and each ``lam`` it times, in one process with every BLAS pool
pinned to one thread (threadpoolctl) for the whole comparison, samples learned per second by:

* streamsc on the L1 problem scikit-learn solves (``prior="l1", signed=True``, the same lam):

  - ``SparseCoder.learn_one(x)`` with ``x`` a dict (the river interface);
  - ``Learner.learn(None, x)`` with ``x`` a float64 array: the array path under
    ``learn_one`` (the same code and step, without the dict checks and gathering);
  - ``SparseCodingTransformer.partial_fit`` (the scikit-learn wrapper) with one row per call
    and with ``--batch-size`` rows per call (which learns them one by one, in order);

* streamsc ``SparseCoder.learn_one(x)`` (dicts) with KL codes (the paper's prior,
  ``p = 1/k``, non-negative codes) and with signed KL codes, the same lam, with
  ``SparseCoder``'s default KL solver or ``--kl-solver`` (the table names the one used);
* scikit-learn ``MiniBatchDictionaryLearning(alpha=lam).partial_fit`` with one row per call
  and with ``--batch-size`` rows per call, for ``fit_algorithm="lars"`` (its default) and
  ``"cd"``.

**The same problem.** scikit-learn 1.9.1's ``MiniBatchDictionaryLearning`` codes each sample
with ``1/2 ||x - D^T w||^2 + alpha ||w||_1`` (its ``_minibatch_step`` calls ``_sparse_encode``
with ``alpha``, which passes ``alpha / n_features`` to ``LassoLars``/``Lasso``, whose objectives
divide the squared loss by ``n_features``), with signed codes (``positive_code=False``). That is
streamsc's ``prior="l1", signed=True, lam=alpha``. The script checks it: on the starting basis,
streamsc's L1 codes and ``sklearn.decomposition.sparse_encode`` (lars and cd) agree to 1e-4.
Both update the basis by block coordinate descent on accumulated sufficient statistics
``A = sum w w^T``, ``B = sum x w^T`` (Mairal et al., 2010): streamsc's default (its
``basis_update="auto"``, which is the surrogate for the squared loss) passes over the atoms
once every k samples, unit-norm atoms; scikit-learn after every call, atoms of norm <= 1.

**Data.** A planted dictionary: ``B*`` Gaussian with unit-norm columns; each sample is
``x = B* w* + e``, rescaled to unit norm, with ``max(2, round(k/32))`` planted atoms of random
sign and magnitude uniform in [0.5, 1.5] and 10% Gaussian noise (``_common.planted_data``,
shared with the other scripts). Every learner starts from the same random unit-norm basis (the one
``SparseCodingTransformer(random_state=seed)`` starts from; scikit-learn gets it as
``dict_init``) and streams the same samples in the same order, each from its own position in
the stream (wrapping around after ``--rows`` samples).

**Timing.** Every contender's first call (numba compilation or cache load; scikit-learn's
initialisation) is timed on its own and never mixed into a rate. A one-row-per-call pass learns
the same number of samples for every such contender, sized so the slowest takes about
``--budget / 3`` seconds; a batched pass learns one batch. Three rounds interleave all
contenders (alternating order), each spending about ``--budget / 3`` seconds per round and at
least one pass; the fastest pass is reported (samples/s) with samples per CPU-second of the
process (the steadier figure on a shared machine; every contender here is single-threaded).
Models keep learning across passes, so rates are those of a live stream, not of a fixed basis.

**Quality (untimed, after timing).** On held-out samples of the same distribution, the basis
each learner ended with is rated by the L1 codes of the shared problem
(``streamsc.coding.solve``, ``prior="l1", signed=True``, the same lam, default tol): mean
nonzeros per code (the sparsity), mean objective, coordinate-descent sweeps per code (and codes
that stopped short of the tolerance), and the fraction of planted atoms recovered (Hungarian
matching, ``|cos| >= 0.95``).
Learners saw different numbers of samples (the faster saw more), which is printed alongside.

**Python overhead.** In the live stream each learner's basis, hence the cost of its codes,
drifts apart; so the overhead of each streamsc call path is measured separately on identical
work: fresh models from the starting basis learn the same ``--batch-size`` samples through the
array path, ``learn_one`` on dicts and ``SparseCodingTransformer.partial_fit`` (one row per
call, and all in one call), each pass timed after an untimed first sample.

Self-checks (exit status 1 if one fails): the L1 problems agree with scikit-learn's as above;
``learn_one`` on dicts, ``Learner.learn`` on arrays and ``SparseCodingTransformer.partial_fit``
(one row per call and batched) learn the same basis from the same samples (to 1e-8).
"""

import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402  (a sibling module, not a package)

SCRIPT = "benchmarks/learn.py"

ONE = "1 row/call"

#: target of issue 8: learn_one samples/s / scikit-learn partial_fit one row per call
TARGET = 20.0
#: largest allowed max |w_streamsc - w_sklearn| between the two L1 codes of the same problem
L1_AGREEMENT = 1e-4
#: largest allowed max |B_a - B_b| between streamsc's call paths after the same samples
SAME_PATH = 1e-8
#: samples of the same-path self-check
SAME_PATH_ROWS = 20
#: |cos| at which a planted atom counts as recovered
RECOVERED_COS = 0.95

L1_DICT = "SparseCoder.learn_one (dict)"
L1_ARRAY = "Learner.learn (array)"
SCT_ONE = "SparseCodingTransformer.partial_fit"
KL_DICT = "SparseCoder.learn_one (dict)"


def batch_label(batch_size):
    return f"batch {batch_size}"


# ---------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------


start_basis = _common.start_basis  # the basis SparseCoder(seed=seed) starts from


def planted(m, k, n, n_test, seed):
    """(B*, stream X (n, m), held-out X (n_test, m), s): signed planted codes, unit-norm rows."""
    B_star, _, X_all, s, _ = _common.planted_data(m, k, n + n_test, seed)
    return B_star, np.ascontiguousarray(X_all[:n]), np.ascontiguousarray(X_all[n:]), s


# ---------------------------------------------------------------------------------------
# contenders
# ---------------------------------------------------------------------------------------


@dataclass
class Job:
    """One contender in one call mode: a model, its input items and its place in the stream.

    ``learn(item)`` learns one item (a sample, or a batch of samples); ``items`` is the
    stream in the form the contender takes (dicts, rows, 2-D slices or batches);
    ``per_item`` samples per item.
    """

    method: str
    family: str
    problem: str
    call: str
    model: object
    learn: object
    items: list
    per_item: int
    basis: object  # () -> the current basis as an (m, k) array
    cursor: int = 0
    seen: int = 0
    first_call_s: float = float("nan")
    timing: object = None
    n_items: int = 0
    extra: dict = field(default_factory=dict)

    def run(self, n_items):
        """Learn the next ``n_items`` items of the stream (wrapping around)."""
        items, learn = self.items, self.learn
        c, total = self.cursor, len(items)
        left = n_items
        while left:
            chunk = items[c:c + left]
            for item in chunk:
                learn(item)
            left -= len(chunk)
            c = (c + len(chunk)) % total
        self.cursor = c
        self.seen += n_items * self.per_item


def _rows_as_dicts(X):
    return [dict(zip(range(X.shape[1]), row)) for row in X.tolist()]


def make_jobs(B0, X, lam, args):
    """Every contender, fresh, all starting from ``B0``."""
    from sklearn.decomposition import MiniBatchDictionaryLearning

    from streamsc import SparseCoder
    from streamsc.sklearn import SparseCodingTransformer

    m, k = B0.shape
    n = X.shape[0]
    bs = args.batch_size
    dicts = _rows_as_dicts(X)
    rows = [X[i] for i in range(n)]
    slices = [X[i:i + 1] for i in range(n)]
    batches = [X[i:i + bs] for i in range(0, n - bs + 1, bs)]
    common = dict(n_components=k, lam=lam)

    def coder(prior, signed):
        return SparseCoder(prior=prior, signed=signed, seed=args.seed, basis=B0, **common)

    def transformer():
        return SparseCodingTransformer(prior="l1", signed=True, random_state=args.seed,
                                       **common)

    def coder_basis(model):
        return lambda: model.basis_.to_numpy(dtype=float, copy=True)

    def sct_basis(model):
        return lambda: model.components_.T.copy()

    jobs = []
    l1 = coder("l1", True)
    jobs.append(Job(L1_DICT, "streamsc", "L1 signed", ONE, l1, l1.learn_one, dicts, 1,
                    coder_basis(l1)))
    l1a = coder("l1", True)
    learner = l1a._learner  # private on purpose: the array path under learn_one, timed alone
    jobs.append(Job(L1_ARRAY, "streamsc", "L1 signed", ONE, l1a,
                    lambda x, learner=learner: learner.learn(None, x), rows, 1,
                    coder_basis(l1a)))
    for call, items, per in ((ONE, slices, 1), (batch_label(bs), batches, bs)):
        sct = transformer()
        jobs.append(Job(SCT_ONE, "streamsc", "L1 signed", call, sct, sct.partial_fit, items,
                        per, sct_basis(sct)))
    for problem, signed in (("KL", False), ("signed KL", True)):
        kl = SparseCoder(prior="kl", signed=signed, seed=args.seed, basis=B0,
                         solver=args.kl_solver, **common)
        jobs.append(Job(KL_DICT, "streamsc", problem, ONE, kl, kl.learn_one, dicts, 1,
                        coder_basis(kl),  # private: the solver resolved from solver=None
                        extra=dict(solver=kl._learner.config.solver)))
    for algorithm in ("lars", "cd"):
        for call, items, per in ((ONE, slices, 1), (batch_label(bs), batches, bs)):
            mbdl = MiniBatchDictionaryLearning(
                n_components=k, alpha=lam, fit_algorithm=algorithm, dict_init=B0.T.copy(),
                random_state=args.seed,
            )
            jobs.append(Job(f"MiniBatchDictionaryLearning.partial_fit ({algorithm})", "sklearn",
                            "L1 signed", call, mbdl, mbdl.partial_fit, items, per,
                            lambda mbdl=mbdl: mbdl.components_.T.copy(),
                            extra=dict(algorithm=algorithm)))
    return jobs


# ---------------------------------------------------------------------------------------
# self-checks
# ---------------------------------------------------------------------------------------


def check_same_problem(B0, X, lam):
    """streamsc's L1 codes vs scikit-learn's ``sparse_encode`` (the coder its partial_fit
    uses) on the starting basis: the same problem gives the same codes."""
    import streamsc
    from sklearn.decomposition import sparse_encode

    Xc = np.ascontiguousarray(X)
    ours = streamsc.encode(Xc, B0, prior="l1", lam=lam, signed=True, n_threads=1)
    out = []
    for algorithm in ("lasso_lars", "lasso_cd"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = sparse_encode(Xc, B0.T, algorithm=algorithm, alpha=lam, max_iter=10_000)
        diff = float(np.max(np.abs(ours - theirs)))
        out.append(dict(check=f"L1 codes: streamsc vs sparse_encode({algorithm})",
                        value=diff, limit=L1_AGREEMENT, ok=diff <= L1_AGREEMENT,
                        nnz_mean=float(np.mean(np.sum(theirs != 0, axis=1)))))
    return out


def check_same_path(B0, X, lam, args):
    """learn_one on dicts, Learner.learn on rows and SparseCodingTransformer.partial_fit (one
    row per call and batched) learn the same basis from the same samples."""
    from streamsc import SparseCoder
    from streamsc.sklearn import SparseCodingTransformer

    m, k = B0.shape
    n = min(SAME_PATH_ROWS, X.shape[0])
    Xs = np.ascontiguousarray(X[:n])
    common = dict(n_components=k, prior="l1", signed=True, lam=lam)
    # no basis=: the atoms come from the first rows, as in the transformer
    a = SparseCoder(seed=args.seed, **common)
    for x in _rows_as_dicts(Xs):
        a.learn_one(x)
    b = SparseCoder(seed=args.seed, **common)
    b.learn_one(dict(enumerate(Xs[0])))  # grows the rows (features 0 .. m-1)
    for x in Xs[1:]:
        b._learner.learn(None, x)  # private on purpose: the array path must learn the same
    c = SparseCodingTransformer(random_state=args.seed, **common)
    for i in range(n):
        c.partial_fit(Xs[i:i + 1])
    d = SparseCodingTransformer(random_state=args.seed, **common).partial_fit(Xs)
    ref = a.basis_.to_numpy()
    out = []
    for name, B in (("Learner.learn (array)", b._learner.B),
                    ("partial_fit 1 row/call", c.components_.T),
                    ("partial_fit batch", d.components_.T)):
        diff = float(np.max(np.abs(B - ref)))
        out.append(dict(check=f"same basis after {n} samples: learn_one (dict) vs {name}",
                        value=diff, limit=SAME_PATH, ok=diff <= SAME_PATH))
    return out


# ---------------------------------------------------------------------------------------
# one configuration
# ---------------------------------------------------------------------------------------


def run_config(m, k, lam, args):
    """Warm up, size the passes, time every contender, then run the self-checks and rate
    the learned bases; returns ``(records, checks, reference, n_rows, overheads)``."""
    from scipy.optimize import linear_sum_assignment

    B_star, X, X_test, s = planted(m, k, args.rows, args.test_rows, args.seed)
    B0 = start_basis(m, k, args.seed)
    jobs = make_jobs(B0, X, lam, args)
    with warnings.catch_warnings():
        # scikit-learn's lasso_cd warns when its 1e-8 duality-gap target is not met within
        # transform_max_iter sweeps; the warnings are part of its normal operation here
        warnings.simplefilter("ignore")
        # first call (numba compilation or cache load, scikit-learn's initialisation), then a
        # short probe of each one-row contender to size the passes
        rates = []
        for job in jobs:
            job.first_call_s, _ = _common.first_call(lambda job=job: job.run(1))
            if job.per_item == 1:
                t0 = time.perf_counter()
                job.run(args.probe_rows)
                rates.append(args.probe_rows / (time.perf_counter() - t0))
        per_round = args.budget / args.rounds
        n_rows = int(np.clip(min(rates) * per_round, args.min_rows, args.rows))
        for job in jobs:
            job.n_items = n_rows if job.per_item == 1 else 1
            job.timing = _common.Timing(units=job.n_items * job.per_item)
        _common.interleave({i: (lambda job=job: job.run(job.n_items)) for i, job in enumerate(jobs)},
                           budget=args.budget, rounds=args.rounds,
                           timings={i: job.timing for i, job in enumerate(jobs)})

    # self-checks after the timing, so the first calls above include numba's cache load
    checks = check_same_problem(B0, X_test[: min(len(X_test), 50)], lam)
    checks += check_same_path(B0, X, lam, args)
    over = measure_overheads(B0, X, lam, args)

    # quality of the bases the learners ended with (untimed), by the shared L1 problem
    records = []
    for job in jobs:
        B = job.basis()
        norms = np.linalg.norm(B, axis=0)
        cos = np.abs(B_star.T @ (B / np.maximum(norms, np.finfo(float).tiny)))
        r, c = linear_sum_assignment(-cos)
        t = job.timing
        records.append(dict(
            m=m, k=k, lam=lam, s=s, method=job.method, family=job.family, problem=job.problem,
            call=job.call, samples_per_pass=t.units,
            samples_per_s=t.rate, median_samples_per_s=t.median_rate,
            samples_per_cpu_s=t.cpu_rate, passes=len(t.seconds),
            pass_seconds=t.seconds, pass_cpu_seconds=t.cpu_seconds,
            first_call_s=job.first_call_s, samples_seen=job.seen,
            **l1_quality(X_test, B, lam),
            recovered=float(np.mean(cos[r, c] >= RECOVERED_COS)),
            algorithm=job.extra.get("algorithm"), solver=job.extra.get("solver"),
            max_atom_norm=float(norms.max()),
        ))
    # the planted basis itself, for scale
    reference = dict(m=m, k=k, lam=lam, s=s, **l1_quality(X_test, B_star, lam))
    add_ratios(records)
    return records, checks, reference, n_rows, over


def l1_quality(X, B, lam):
    """Codes of the shared L1 problem for the rows of X under B (``streamsc.coding.solve``, the
    entry point of every streamsc estimator, default tol): mean nonzeros, mean objective, mean
    coordinate-descent sweeps and the number of codes that stopped short of the tolerance."""
    from streamsc import default_tol
    from streamsc.coding import solve  # private: its optimality violation counts short codes

    B = np.ascontiguousarray(B, dtype=np.float64)
    k = B.shape[1]
    tol = default_tol(lam)
    W, _, n_iter, viol = solve(np.ascontiguousarray(X), B, prior="l1", lam=lam,
                               p=np.full(k, 1.0 / k), signed=True, tol=tol, n_threads=1)
    R = X - W @ B.T
    objective = 0.5 * np.sum(R * R, axis=1) + lam * np.sum(np.abs(W), axis=1)
    return dict(l1_nnz_mean=float(np.mean(np.sum(W != 0, axis=1))),
                l1_objective_mean=float(np.mean(objective)),
                l1_cd_sweeps_mean=float(np.mean(n_iter)),
                l1_unconverged=int(np.sum(viol > tol)))


def _find(records, method, call, problem="L1 signed"):
    return next(r for r in records
                if r["method"] == method and r["call"] == call and r["problem"] == problem)


def add_ratios(records):
    """Each record's rate over scikit-learn's faster one-row-per-call partial_fit."""
    sk = [r for r in records if r["family"] == "sklearn" and r["call"] == ONE]
    best = max(sk, key=lambda r: r["samples_per_s"])
    best_cpu = max(sk, key=lambda r: r["samples_per_cpu_s"])
    for r in records:
        r["vs_sklearn_one_row"] = r["samples_per_s"] / best["samples_per_s"]
        r["vs_sklearn_one_row_cpu"] = r["samples_per_cpu_s"] / best_cpu["samples_per_cpu_s"]


# ---------------------------------------------------------------------------------------
# summaries
# ---------------------------------------------------------------------------------------


def issue_ratios(all_records, batch_size):
    """The ratios asked for: learn_one over each scikit-learn call mode, and the others over
    scikit-learn's faster one-row-per-call partial_fit."""
    out = []
    bl = batch_label(batch_size)
    configs = sorted({(r["m"], r["k"], r["lam"]) for r in all_records},
                     key=lambda t: (t[0], t[1], -t[2]))
    for m, k, lam in configs:
        recs = [r for r in all_records if (r["m"], r["k"], r["lam"]) == (m, k, lam)]
        sk = {(r["algorithm"], r["call"]): r for r in recs if r["family"] == "sklearn"}
        faster = max((sk[("lars", ONE)], sk[("cd", ONE)]), key=lambda r: r["samples_per_s"])
        faster_alg = faster["algorithm"]
        ours = _find(recs, L1_DICT, ONE)
        rows = []
        for alg in ("lars", "cd"):
            rows.append((ours, sk[(alg, ONE)], f"L1 learn_one / sklearn {alg} 1 row/call", TARGET))
        for alg in ("lars", "cd"):
            rows.append((ours, sk[(alg, bl)], f"L1 learn_one / sklearn {alg} {bl}", None))
        rows.append((_find(recs, SCT_ONE, ONE), faster,
                     f"SparseCodingTransformer.partial_fit 1 row/call / sklearn {faster_alg} "
                     "1 row/call", None))
        faster_b = max((sk[("lars", bl)], sk[("cd", bl)]), key=lambda r: r["samples_per_s"])
        rows.append((_find(recs, SCT_ONE, bl), faster_b,
                     f"SparseCodingTransformer.partial_fit {bl} / sklearn "
                     f"{faster_b['algorithm']} {bl}", None))
        for problem in ("KL", "signed KL"):
            rows.append((_find(recs, KL_DICT, ONE, problem), faster,
                         f"{problem} learn_one / sklearn {faster_alg} 1 row/call", None))
        for num, den, label, target in rows:
            ratio = num["samples_per_s"] / den["samples_per_s"]
            ratio_cpu = num["samples_per_cpu_s"] / den["samples_per_cpu_s"]
            out.append(dict(m=m, k=k, lam=lam, measure=label, ratio=ratio, ratio_cpu=ratio_cpu,
                            target=target,
                            met=None if target is None else ratio >= target,
                            met_cpu=None if target is None else ratio_cpu >= target))
    return out


def measure_overheads(B0, X, lam, args):
    """Per-sample cost of each streamsc L1 call path on the *same* work: every pass builds
    fresh models from ``B0``, learns sample 0 untimed (first-call setup: the scikit-learn
    wrapper's parameter checks and basis), then times learning samples ``1 .. n`` with
    ``n = --batch-size`` (the batched path in one ``partial_fit`` call). Every path computes
    the same codes and steps (see the self-check), so the differences are call overhead."""
    from streamsc import SparseCoder
    from streamsc.sklearn import SparseCodingTransformer

    m, k = B0.shape
    n = min(args.batch_size, X.shape[0] - 1)
    common = dict(n_components=k, prior="l1", signed=True, lam=lam)
    X1 = np.ascontiguousarray(X[: n + 1])
    dicts = _rows_as_dicts(X1)
    rows = [X1[i] for i in range(n + 1)]
    slices = [X1[i:i + 1] for i in range(n + 1)]

    def coder_path(items, use_dict):
        def setup():
            c = SparseCoder(seed=args.seed, basis=B0, **common)
            # private on purpose (array path): the overhead of learn_one is measured against it
            fn = c.learn_one if use_dict else (lambda x, lr=c._learner: lr.learn(None, x))
            fn(items[0])
            return fn
        return setup, lambda fn: [fn(x) for x in items[1:]]

    def sct_setup():
        t = SparseCodingTransformer(random_state=args.seed, **common)
        t.partial_fit(slices[0])
        return t

    paths = [
        (L1_ARRAY, ONE) + coder_path(rows, False),
        (L1_DICT, ONE) + coder_path(dicts, True),
        (SCT_ONE, ONE, sct_setup, lambda t: [t.partial_fit(x) for x in slices[1:]]),
        (SCT_ONE, batch_label(n), sct_setup, lambda t: t.partial_fit(X1[1:])),
    ]
    timings = {(name, call): _common.Timing(units=n) for name, call, _, _ in paths}
    per_round = args.budget / args.rounds
    for rnd in range(args.rounds):
        for name, call, setup, work in paths if rnd % 2 == 0 else paths[::-1]:
            t = timings[(name, call)]
            spent = 0.0
            while spent < per_round or not t.seconds:
                state = setup()
                c0, t0 = time.process_time(), time.perf_counter()
                work(state)
                dt = time.perf_counter() - t0
                t.cpu_seconds.append(time.process_time() - c0)
                t.seconds.append(dt)
                spent += dt
    base = timings[(L1_ARRAY, ONE)]
    out = []
    for name, call, _, _ in paths:
        t = timings[(name, call)]
        us, base_us = 1e6 / t.rate, 1e6 / base.rate
        cpu_us, base_cpu_us = 1e6 / t.cpu_rate, 1e6 / base.cpu_rate
        out.append(dict(m=m, k=k, lam=lam, path=f"{name} {call}", samples=n,
                        passes=len(t.seconds), us=us, array_us=base_us,
                        overhead_us=us - base_us, cpu_us=cpu_us, array_cpu_us=base_cpu_us,
                        overhead_cpu_us=cpu_us - base_cpu_us, ratio=us / base_us,
                        ratio_cpu=cpu_us / base_cpu_us))
    return out


# ---------------------------------------------------------------------------------------
# printing
# ---------------------------------------------------------------------------------------


def _label(r):
    if r["family"] == "sklearn":
        return f"{r['method']}"
    if r["solver"]:
        return f"{r['method']} [{r['problem']}, {r['solver']}]"
    return f"{r['method']} [{r['problem']}]"


def print_config(records, checks, reference, n_rows):
    r0 = records[0]
    print(_common.heading(r0, f": {r0['s']} planted atoms per sample; one-row passes learn "
                              f"{n_rows} samples"))
    rows = []
    for r in records:
        rows.append([
            _label(r), r["call"], f"{r['samples_per_s']:,.0f}", f"{1e6 / r['samples_per_s']:,.0f}",
            f"{r['samples_per_cpu_s']:,.0f}", f"{r['vs_sklearn_one_row']:.2f}x",
            f"{r['vs_sklearn_one_row_cpu']:.2f}x", str(r["passes"]),
            f"{r['first_call_s']:.3f}",
        ])
    print(_common.format_table(
        rows,
        ["method", "call", "samples/s", "us/sample", "samples/cpu-s", "vs sk 1-row",
         "cpu vs sk 1-row", "passes", "first call s"],
        align="llrrrrrrr",
    ))
    print("(vs sk 1-row: over the faster of scikit-learn's lars/cd partial_fit one row per call)")
    for c in checks:
        extra = f" (mean nonzeros {c['nnz_mean']:.1f})" if "nnz_mean" in c else ""
        status = "ok" if c["ok"] else f"FAIL (> {c['limit']:g})"
        print(f"check: {c['check']}: max |diff| = {c['value']:.2e}{extra} {status}")
    print(f"\nquality of each learned basis on held-out samples (untimed; L1 codes of the shared "
          f"problem, lam = {r0['lam']:g}); planted B*: {reference['l1_nnz_mean']:.1f} nonzeros, "
          f"objective {reference['l1_objective_mean']:.4f}, {reference['l1_cd_sweeps_mean']:.1f} "
          "CD sweeps per code")
    rows = []
    for r in records:
        rows.append([
            _label(r), r["call"], f"{r['samples_seen']:,}", f"{r['l1_nnz_mean']:.1f}",
            f"{r['l1_objective_mean']:.4f}",
            f"{r['l1_cd_sweeps_mean']:.1f}" + (f" ({r['l1_unconverged']} short of tol)"
                                               if r["l1_unconverged"] else ""),
            f"{100 * r['recovered']:.0f}%",
        ])
    print(_common.format_table(
        rows, ["method", "call", "samples seen", "nonzeros", "objective", "CD sweeps",
               "atoms recovered"],
        align="llrrrrr",
    ))


def print_issue_ratios(ratios):
    print("\n=== ratios (issue 4 item 5; issue 8 target: learn_one / sklearn partial_fit one row "
          f"per call >= {TARGET:g}x) ===")
    print(_common.format_ratio_table(
        ratios, target=lambda r: "-" if r["target"] is None else f">= {r['target']:g}x"))
    print("(ratio: wall-clock samples/s; cpu ratio: samples per CPU-second of this process; "
          "L1 learn_one is SparseCoder.learn_one on dicts)")


def print_overheads(rows):
    print("\n=== Python overhead: streamsc L1 call paths vs the array path (Learner.learn), "
          "the same samples from the same starting basis ===")
    table = [[*_common.shape_lam(r), r["path"], str(r["samples"]),
              f"{r['us']:,.1f}", f"{r['overhead_us']:+,.1f}", f"{r['ratio']:.3f}x",
              f"{r['cpu_us']:,.1f}", f"{r['overhead_cpu_us']:+,.1f}", f"{r['ratio_cpu']:.3f}x"]
             for r in rows]
    print(_common.format_table(
        table, ["(m, k)", "lam", "path", "samples", "us/sample", "overhead us", "ratio",
                "cpu us/sample", "cpu overhead us", "cpu ratio"],
        align="lllrrrrrrr",
    ))
    print("(each pass: fresh models from the starting basis learn sample 0 untimed, then the "
          "timed samples; every path computes the same codes and steps, so the differences are "
          "call overhead: dict checks and gathering, scikit-learn's validate_data)")


# ---------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------


def parse_args(argv):
    ap = _common.benchmark_parser(
        "samples/s of SparseCoder.learn_one vs scikit-learn MiniBatchDictionaryLearning.partial_fit",
        lam_help="comma-separated lam values (streamsc lam = scikit-learn alpha)",
        rows_help="samples in the stream per shape (default 4096, --quick 64); every learner "
                  "wraps around after them",
        budget_help="seconds spent timing each contender (default 2, --quick 0.02)",
    )
    ap.add_argument("--kl-solver", choices=["newton", "egd"], default=None,
                    help="solver of the KL rows (default: SparseCoder's default)")
    ap.add_argument("--batch-size", type=int, default=None,
                    help="rows per partial_fit call in the batched mode (default 256, --quick 16)")
    args = _common.parse_benchmark_args(
        ap, argv, rows=(64, 4096), budget=(0.02, 2.0), batch_size=(16, 256), min_rows=(4, 16),
        rounds=(1, 3), probe_rows=(2, 8), test_rows=(32, 500))
    if args.batch_size < 1:
        ap.error("--batch-size must be >= 1")
    if args.rows < args.batch_size:
        ap.error("--rows must be >= --batch-size")
    return args


def main(argv=None):
    args = parse_args(argv)
    import_seconds = _common.timed_import("streamsc")
    import sklearn.decomposition  # noqa: F401  (loads scikit-learn's BLAS pools before pinning)

    started = _common.start(SCRIPT, argv, intro=(
        f"{_common.BLAS_PINNED}; every contender runs in this thread (streamsc's per-example "
        "kernels call no BLAS).\n"
        "Problem: 1/2||x - Bw||^2 + lam ||w||_1 per sample, signed codes: streamsc prior='l1', "
        "signed=True, lam; scikit-learn MiniBatchDictionaryLearning(alpha=lam) (checked below). "
        "streamsc also learns with KL codes (p = 1/k) and signed KL codes, same lam.\n"
        "Basis updates: streamsc's default (Mairal et al.'s online surrogate, a pass over the "
        "atoms every k samples), unit-norm atoms; scikit-learn block coordinate descent on its "
        "running sufficient statistics after every call.\n"
        "Data: planted unit-norm B*, samples B* w* + 10% noise with random-sign w*, rescaled to "
        f"unit norm; a stream of {args.rows} samples per shape, the same order for every "
        "learner; all start from the same random unit-norm basis.\n"
        "Rates: the fastest of repeated passes (models keep learning across passes); "
        "samples/cpu-s: samples per CPU-second of this process."
    ))

    all_records, all_checks, references, all_overheads = [], [], [], []
    with _common.pin_blas(1):
        for m, k, lam in _common.configurations(args):
            records, checks, reference, n_rows, over = run_config(m, k, lam, args)
            print_config(records, checks, reference, n_rows)
            all_records += records
            all_overheads += over
            all_checks += [dict(c, m=m, k=k, lam=lam) for c in checks]
            references.append(reference)

    ratios = issue_ratios(all_records, args.batch_size)
    print_issue_ratios(ratios)
    print_overheads(all_overheads)
    machine = _common.finish(started, prefix=f"\nimport streamsc: {import_seconds:.2f} s; ")

    failed = [c for c in all_checks if not c["ok"]]
    if failed:
        print(f"\nFAILED: {len(failed)} self-check(s): "
              + "; ".join(f"{c['check']} at ({c['m']}, {c['k']})" for c in failed),
              file=sys.stderr)
    _common.write_json(
        args.json, SCRIPT, argv, all_records, machine=machine,
        settings=_common.settings(args, "kl_solver", "batch_size"),
        import_seconds=import_seconds, checks=all_checks, planted_reference=references,
        issue_ratios=ratios, overheads=all_overheads,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
