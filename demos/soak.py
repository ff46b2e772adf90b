"""Soak test: a long adversarial stream through ``SparseCodingClassifier(gradient="implicit")``.

    python demos/soak.py [--n 1000000] [--report-every N] [--seed 0] [--no-tracemalloc]

Each step predicts (``predict_proba_one``) then learns (``learn_one``) one example of a
stream built to hurt a streaming learner: examples scaled log-uniformly from 1e-6 to 1e6
(and, one in a thousand, from 1e152 to 1e160: extreme examples whose basis step would
overflow, which the model must refuse), exact zeros (single features and whole examples),
exact duplicates of the previous example, bursts of a single class, and a sudden
distribution shift at the middle (new class patterns on permuted features, new class
balance). The model is small (16 features, a signed KL coder
with 32 atoms, dual Newton solver) so the run measures robustness, not speed.

Checked after every step (the run exits 1 if any check ever fails):

* no NaN or infinity in the basis, the head's weights and biases, or the predicted
  probabilities;
* every column of the basis has unit L2 norm to within 1e-9;
* an example the model refuses (``ValueError`` "x is too large to learn from", or a code that
  would not be finite -- both by design, "the model is unchanged") leaves the basis, the step
  counter and the head exactly as they were; such examples are counted and reported, not
  fatal;
* memory stays flat: Python allocations (``tracemalloc`` current) and the resident set size
  (``psutil`` or /proc; peak from ``resource``) are printed every report interval; the run
  fails if, from the first report to the end, traced memory grew by more than 1 MiB or RSS
  by more than 8 MiB.

``tracemalloc`` slows the run about threefold (about 500 examples/s here with it, 1500-2500
without); ``--no-tracemalloc`` leaves RSS as the only memory check, for the long runs.

The last line is the summary, ``SOAK PASSED: ...`` or ``SOAK FAILED: ...``.
"""

import argparse
import os
import sys
import time
import tracemalloc
import warnings

import numpy as np

M, K, N_CLASSES = 16, 32, 4
NORM_TOL = 1e-9
MAX_TRACED_GROWTH = 1 << 20  # bytes
MAX_RSS_GROWTH = 8 << 20  # bytes (allocator noise is a few MiB)


def rss_bytes():
    """Current resident set size in bytes (psutil, else /proc), or None."""
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except ImportError:
        pass
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None


def peak_rss_bytes():
    try:
        import resource

        scale = 1 if sys.platform == "darwin" else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    except ImportError:  # pragma: no cover - Windows
        return None


def mib(n):
    return "n/a" if n is None else f"{n / 2**20:.1f} MiB"


class Stream:
    """The adversarial stream, generated one example at a time (O(1) memory)."""

    def __init__(self, n, seed):
        self.n = n
        self.rng = np.random.default_rng(seed)
        self.names = [f"f{j}" for j in range(M)]
        self.patterns = self._patterns()
        self.class_p = np.full(N_CLASSES, 1.0 / N_CLASSES)
        self.prev = None
        self.burst_left = 0
        self.burst_class = 0
        self.kind_counts = dict(duplicate=0, all_zero=0, some_zeros=0, burst=0, plain=0, extreme=0)

    def _patterns(self):
        P = self.rng.standard_normal((N_CLASSES, M))
        return P / np.linalg.norm(P, axis=1, keepdims=True)

    def shift(self):
        """The sudden distribution shift: new patterns on permuted features, skewed classes."""
        self.patterns = self._patterns()[:, self.rng.permutation(M)]
        p = self.rng.uniform(0.1, 1.0, N_CLASSES)
        self.class_p = p / p.sum()

    def next(self):
        rng = self.rng
        if self.prev is not None and rng.random() < 0.05:  # exact duplicate
            self.kind_counts["duplicate"] += 1
            x, y = self.prev
            return dict(x), y
        if self.burst_left == 0 and rng.random() < 0.002:  # a burst of one class
            self.burst_left = int(rng.integers(50, 500))
            self.burst_class = int(rng.integers(N_CLASSES))
        if self.burst_left:
            self.burst_left -= 1
            y = self.burst_class
            self.kind_counts["burst"] += 1
        else:
            y = int(rng.choice(N_CLASSES, p=self.class_p))
        if rng.random() < 0.001:  # a rare extreme example, beyond what can be learned from
            scale = 10.0 ** rng.uniform(152.0, 160.0)
            self.kind_counts["extreme"] += 1
        else:
            scale = 10.0 ** rng.uniform(-6.0, 6.0)
        values = scale * (self.patterns[y] + 0.3 * rng.standard_normal(M))
        u = rng.random()
        if u < 0.01:  # an all-zero example
            values[:] = 0.0
            self.kind_counts["all_zero"] += 1
        elif u < 0.11:  # some features exactly zero
            values[rng.random(M) < 0.5] = 0.0
            self.kind_counts["some_zeros"] += 1
        elif not self.burst_left:
            self.kind_counts["plain"] += 1
        x = dict(zip(self.names, values.tolist()))
        self.prev = (x, y)
        return dict(x), y


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="examples to learn from")
    parser.add_argument("--report-every", type=int, default=None,
                        help="examples between progress lines (default n/20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-tracemalloc", action="store_true",
                        help="skip tracemalloc (about 3x faster; memory checked by RSS only)")
    args = parser.parse_args(argv)
    n = args.n
    every = args.report_every or max(n // 20, 1)

    from streamsc import SparseCoder, SparseCodingClassifier

    model = SparseCodingClassifier(
        coder=SparseCoder(n_components=K, signed=True, lam=0.05, learning_rate=0.1,
                          solver="newton", seed=args.seed),
        gradient="implicit",
        learning_rate=0.5,
    )
    learner = model.coder_._learner  # internals read directly: cheap checks at every step
    stream = Stream(n, args.seed)

    warn_counts = {}

    def count_warning(message, category, *rest, **kw):
        warn_counts[category.__name__] = warn_counts.get(category.__name__, 0) + 1

    warnings.simplefilter("always")
    warnings.showwarning = count_warning

    print(f"soak: n={n}, SparseCodingClassifier(gradient='implicit'), m={M} features, k={K} atoms "
          f"(signed KL, dual Newton), {N_CLASSES} classes, seed={args.seed}; "
          f"shift at example {n // 2}")
    print("examples refused by design ('x is too large to learn from', or a code that would "
          "not be finite; the model is unchanged) are counted, not fatal")
    sys.stdout.flush()

    failures = []
    nonfinite = [0]  # steps that saw a NaN/inf anywhere

    def fail(msg):
        if len(failures) < 20:
            failures.append(msg)
            print("INVARIANT BROKEN:", msg)
            sys.stdout.flush()

    rejected = {"too large": 0, "code not finite": 0}
    rejected_predictions = 0
    correct = 0
    predicted = 0
    max_norm_dev = 0.0
    baseline = None
    trace = not args.no_tracemalloc
    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    for i in range(1, n + 1):
        if i == n // 2 + 1:
            stream.shift()
        x, y = stream.next()
        try:
            proba = model.predict_proba_one(x)
        except ValueError as exc:
            rejected_predictions += 1
            proba = None
            if "not finite" not in str(exc) and "too large" not in str(exc):
                fail(f"step {i}: predict_proba_one raised {exc!r}")
        if proba:
            pv = np.fromiter(proba.values(), dtype=np.float64, count=len(proba))
            if not np.isfinite(pv).all():
                nonfinite[0] += 1
                fail(f"step {i}: non-finite prediction {proba}")
            predicted += 1
            correct += max(proba, key=proba.get) == y
        B_before, t_before = learner.B.copy(), learner.t
        V_before, b_before = model._V.copy(), model._b.copy()
        try:
            model.learn_one(x, y)
        except ValueError as exc:
            msg = str(exc)
            if "too large to learn from" in msg:
                rejected["too large"] += 1
            elif "not finite" in msg:
                rejected["code not finite"] += 1
            else:
                fail(f"step {i}: learn_one raised {exc!r}")
            if not (np.array_equal(learner.B, B_before) and learner.t == t_before
                    and np.array_equal(model._V, V_before) and np.array_equal(model._b, b_before)):
                fail(f"step {i}: a refused example changed the model")
        B = learner.B
        if not (np.isfinite(B).all() and np.isfinite(model._V).all()
                and np.isfinite(model._b).all()):
            nonfinite[0] += 1
            fail(f"step {i}: non-finite value in the basis or the head")
        if B.shape[0]:
            dev = float(np.abs(np.sqrt(np.einsum("ij,ij->j", B, B)) - 1.0).max())
            max_norm_dev = max(max_norm_dev, dev)
            if not dev <= NORM_TOL:
                fail(f"step {i}: a column norm is off 1 by {dev:.3g}")
        if i % every == 0 or i == n:
            traced = tracemalloc.get_traced_memory()[0] if trace else None
            rss = rss_bytes()
            if baseline is None:
                baseline = (traced, rss)
            elapsed = time.perf_counter() - t0
            acc = correct / predicted if predicted else float("nan")
            print(f"[{i:>9d}/{n}] {elapsed:8.1f} s  {i / elapsed:7.0f} ex/s  "
                  f"refused {sum(rejected.values())}  max|norm-1| {max_norm_dev:.2e}  "
                  f"acc(cum) {acc:.3f}  traced {mib(traced)}  rss {mib(rss)}  "
                  f"failures {len(failures)}")
            sys.stdout.flush()
    elapsed = time.perf_counter() - t0
    traced_end, traced_peak = tracemalloc.get_traced_memory() if trace else (None, None)
    tracemalloc.stop()
    rss_end = rss_bytes()
    traced_growth = traced_end - baseline[0] if trace else None
    rss_growth = None if rss_end is None or baseline[1] is None else rss_end - baseline[1]
    if trace and traced_growth > MAX_TRACED_GROWTH:
        fail(f"traced memory grew by {mib(traced_growth)} after the first report")
    if rss_growth is not None and rss_growth > MAX_RSS_GROWTH:
        fail(f"RSS grew by {mib(rss_growth)} after the first report")

    print(f"stream: {stream.kind_counts}")
    print(f"refused examples (by design, model unchanged): {rejected}; refused predictions: "
          f"{rejected_predictions}; warnings: {warn_counts or 'none'}")
    print(f"steps taken: {learner.t}; classes: {model.classes_}; "
          f"cumulative accuracy: {correct / max(predicted, 1):.3f}")
    print(f"memory: traced {mib(baseline[0])} -> {mib(traced_end)} (growth {mib(traced_growth)}, "
          f"peak {mib(traced_peak)}); RSS {mib(baseline[1])} -> {mib(rss_end)} "
          f"(growth {mib(rss_growth)}); peak RSS {mib(peak_rss_bytes())}")
    status = "PASSED" if not failures else "FAILED"
    print(f"SOAK {status}: n={n} in {elapsed:.1f} s, NaN/inf seen {nonfinite[0]} time(s), "
          f"max |column norm - 1| = {max_norm_dev:.2e} (tol {NORM_TOL:g}), "
          f"refused {sum(rejected.values())} (too large: {rejected['too large']}), "
          f"memory growth traced {mib(traced_growth)} / RSS {mib(rss_growth)}, "
          f"{len(failures)} invariant failure(s)")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
