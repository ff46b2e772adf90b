"""Dictionary quality: how good a basis streamsc's online learner finds with its defaults,
against scikit-learn's ``MiniBatchDictionaryLearning`` (Mairal et al.'s online algorithm),
SPAMS ``trainDL`` (if installed) and no learning at all, in one process.

Usage::

    python benchmarks/dictionary_quality.py [--data-dir DIR] [--sections planted,mnist]
                                            [--quick] [--json out.json]

**planted** -- for each problem of the suite (:data:`PLANTED`: m, k, planted atoms per
example, signed or non-negative codes, rows of unit norm or features standardised), every
learner sees the same examples once, one at a time where it can, and the table gives the
fraction of planted atoms recovered (``|cos| >= 0.95``, :func:`streamsc.synthetic.recovery`)
after each third of the stream, with samples/s. Contenders: ``SparseCoder`` with only
``n_components`` and ``seed`` given (its default prior, KL) and with ``prior="l1"`` (signed
for signed codes); ``MiniBatchDictionaryLearning`` with its defaults (``alpha=1``, batch 256)
and with ``alpha`` equal to streamsc's L1 ``lam`` (as calibrated from the data), both at
equal examples.

**mnist** -- the setting of issue 17: MNIST in PCA-180 scaled to unit mean norm, 256 atoms,
three passes over the 50,000 training digits; ``SparseCoder(prior="l1", lam=0.05,
signed=True)`` with its default basis update, one example at a time (``learn_many``, which
is ``learn_one`` on every row in order) and with ``mini_batch=True`` (batch 256); MBDL
(``alpha=0.05``, batch 256, 3 passes); SPAMS ``trainDL`` (same lambda, batch 256, as many
iterations); and 256 random training digits. Each basis is rated by the test error of a
maxent classifier (scikit-learn ``LogisticRegression`` on standardised codes, ``C`` chosen
on 2,000 validation digits) on L1 codes (lam 0.05, signed) at 1k / 2k / 10k labelled
training digits, and for streamsc's basis also on signed KL codes (``lam`` and ``p`` chosen
on validation from a small grid). Learning runs with every BLAS pool and numba on one
thread, for every contender.
"""

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402  (a sibling module, not a package)
from _common import format_table, pin_blas  # noqa: E402

SCRIPT = "benchmarks/dictionary_quality.py"

#: (m, k, planted atoms per example, signed codes, scaling) of the planted suite
PLANTED = [
    (32, 64, 2, True, "unit"),
    (32, 64, 2, False, "unit"),
    (64, 128, 3, True, "unit"),
    (64, 128, 3, True, "standard"),
]
MNIST_SIZES = (1000, 2000, 10000)
KL_GRID = ((0.01, None), (0.03, None), (0.03, 0.1))  # (lam, p as a factor of 1/k)


def _say(text):
    """A progress line on stderr (the tables go to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _rate(n, seconds):
    return n / seconds if seconds > 0 else float("nan")


def _stream(coder, X, checkpoints, B_true, names):
    """learn_one on every row (through learn_many, row by row), the recovery at each
    checkpoint; returns (recoveries, seconds spent learning)."""
    import pandas as pd

    from streamsc.synthetic import recovery

    out, spent, start = [], 0.0, 0
    for stop in checkpoints:
        frame = pd.DataFrame(X[start:stop], columns=names)
        t0 = time.perf_counter()
        coder.learn_many(frame)
        spent += time.perf_counter() - t0
        out.append(recovery(B_true, coder.basis_.loc[names].to_numpy()))
        start = stop
    return out, spent


def planted_section(n, seed):
    import warnings

    from sklearn.decomposition import MiniBatchDictionaryLearning

    from streamsc import SparseCoder
    from streamsc.synthetic import planted_dictionary, recovery

    rows, report = [], []
    thirds = [n // 3, 2 * n // 3, n]
    for m, k, s, signed, scaling in PLANTED:
        B_true, X = planted_dictionary(m, k, n, sparsity=s, signed=signed, scaling=scaling,
                                       seed=seed)
        names = [f"f{i}" for i in range(m)]
        problem = f"m={m} k={k} s={s} {'signed' if signed else 'non-neg'} {scaling}"
        contenders = [
            ("streamsc defaults (KL)", SparseCoder(n_components=k, seed=seed, signed=signed)),
            ("streamsc prior='l1'", SparseCoder(n_components=k, prior="l1", signed=signed,
                                                seed=seed)),
        ]
        for name, coder in contenders:
            coder.learn_one(dict(zip(names, X[0].tolist())))  # compile outside the timing
            coder = coder.clone()
            rec, sec = _stream(coder, X, thirds, B_true, names)
            rows.append([problem, name, *[f"{r:.0%}" for r in rec], f"{_rate(n, sec):,.0f}"])
            report.append(dict(problem=problem, learner=name, recovery=rec, samples_per_s=_rate(n, sec)))
            # private: lam=None is calibrated on the first k examples; no public attribute
            lam = coder._learner.config.lam
        l1_lam = lam  # the L1 coder's (the last contender)
        for name, alpha in (("MBDL defaults", 1.0), (f"MBDL alpha={l1_lam:g}", l1_lam)):
            mb = MiniBatchDictionaryLearning(n_components=k, alpha=alpha, random_state=seed,
                                             **({} if signed else dict(
                                                 positive_code=True, fit_algorithm="cd",
                                                 transform_algorithm="lasso_cd")))
            rec, sec = [], 0.0
            start = 0
            for stop in thirds:
                t0 = time.perf_counter()
                for b in range(start, stop, 256):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        mb.partial_fit(X[b:min(b + 256, stop)])
                sec += time.perf_counter() - t0
                rec.append(recovery(B_true, mb.components_.T))
                start = stop
            rows.append([problem, name, *[f"{r:.0%}" for r in rec], f"{_rate(n, sec):,.0f}"])
            report.append(dict(problem=problem, learner=name, recovery=rec, samples_per_s=_rate(n, sec)))
    cols = ["problem", "learner", f"{thirds[0]:,}", f"{thirds[1]:,}", f"{thirds[2]:,} examples",
            "samples/s"]
    print("\nPlanted dictionaries: atoms recovered (|cos| >= 0.95) after each third of the stream")
    print(format_table(rows, cols))
    return report


def _paper_common():
    """The paper experiments' shared helpers (``demos/paper/common.py``: the PCA space of
    the MNIST tables and the maxent head with C chosen on validation), so this comparison
    codes and scores digits exactly as the tables do."""
    paper = str(Path(__file__).resolve().parents[1] / "demos" / "paper")
    if paper not in sys.path:
        sys.path.insert(0, paper)
    import common

    return common


def _mnist(data_dir, quick, seed):
    from streamsc import datasets
    MnistSpace = _paper_common().MnistSpace

    X_tr, y_tr, X_va, y_va = datasets.mnist_train_validation(data_dir, as_float=True)
    X_te, y_te = datasets.load_mnist(data_dir, "test", as_float=True)
    if quick:
        X_tr, y_tr, X_va, y_va, X_te, y_te = (X_tr[:3000], y_tr[:3000], X_va[:500], y_va[:500],
                                              X_te[:500], y_te[:500])
    space = MnistSpace(X_tr, seed=seed)
    return (space.transform(X_tr), y_tr, space.transform(X_va[:2000]), y_va[:2000],
            space.transform(X_te), y_te)


def _errors(B, data, sizes, prior, lam, p, n_threads):
    """Test error of the maxent head on codes under B at each labelled size (C chosen on
    validation), and the validation error at the largest size."""
    from streamsc import encode
    fit_maxent_on_validation = _paper_common().fit_maxent_on_validation

    Z_tr, y_tr, Z_va, y_va, Z_te, y_te = data
    n_lab = max(sizes)
    B = np.ascontiguousarray(B / np.linalg.norm(B, axis=0))

    def code(Z):
        return encode(np.ascontiguousarray(Z), B, prior=prior, lam=lam, p=p, signed=True,
                      n_threads=n_threads)

    W_tr, W_va, W_te = code(Z_tr[:n_lab]), code(Z_va), code(Z_te)
    errs, val = [], None
    for size in sizes:
        # C among demos/paper/common.py's MAXENT_C (0.01, 0.1, 1), chosen on validation
        model, _, val = fit_maxent_on_validation(W_tr[:size], y_tr[:size], W_va, y_va)
        errs.append(float(np.mean(model.predict(W_te) != y_te)))
    return errs, val


def mnist_section(data_dir, quick, seed, passes):
    import warnings

    import pandas as pd
    from sklearn.decomposition import MiniBatchDictionaryLearning

    from streamsc import SparseCoder

    data = _mnist(data_dir, quick, seed)
    Z = data[0]
    n, m = Z.shape
    k = 32 if quick else 256
    lam = 0.05
    sizes = (200, 500, 1000) if quick else MNIST_SIZES
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(n) for _ in range(passes)]
    bases, speed, report = {}, {}, []
    with pin_blas(1):
        for name, mini in (("streamsc learn_one", False), ("streamsc mini_batch=True", True)):
            coder = SparseCoder(n_components=k, prior="l1", lam=lam, signed=True, seed=seed,
                                mini_batch=mini, n_threads=1)
            warm = coder.clone()
            warm.learn_many(pd.DataFrame(Z[:300]))  # compile outside the timing
            chunk = 256 if mini else 1000
            t0 = time.perf_counter()
            for order in orders:
                for s in range(0, n, chunk):
                    coder.learn_many(pd.DataFrame(Z[order[s:s + chunk]]))
            speed[name] = _rate(n * passes, time.perf_counter() - t0)
            bases[name] = coder.basis_.to_numpy()
            _say(f"{name}: {speed[name]:,.0f} samples/s")
        mb = MiniBatchDictionaryLearning(n_components=k, alpha=lam, batch_size=256,
                                         max_iter=passes, random_state=seed, tol=0.0,
                                         max_no_improvement=None)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mb.fit(Z)
        speed["MBDL"] = _rate(n * passes, time.perf_counter() - t0)
        bases["MBDL"] = mb.components_.T
        _say(f"MBDL: {speed['MBDL']:,.0f} samples/s")
        try:
            import spams
        except ImportError:
            print("SPAMS not installed (pip install -e '.[bench]'): trainDL skipped")
        else:
            Zf = np.asfortranarray(Z.T)
            t0 = time.perf_counter()
            D = spams.trainDL(Zf, K=k, lambda1=lam, batchsize=256, iter=passes * n // 256,
                              numThreads=1, verbose=False)
            speed["SPAMS trainDL"] = _rate(n * passes, time.perf_counter() - t0)
            bases["SPAMS trainDL"] = np.asarray(D)
            _say(f"SPAMS trainDL: {speed['SPAMS trainDL']:,.0f} samples/s")
        idx = rng.choice(n, size=k, replace=False)
        bases["random digits"] = Z[idx].T
        speed["random digits"] = float("nan")
    rows = []
    for name, B in bases.items():
        errs, _ = _errors(B, data, sizes, "l1", lam, None, None)
        rows.append([name, "L1", *[f"{e:.2%}" for e in errs], f"{speed[name]:,.0f}"])
        _say(f"{name}, L1 codes: test error {', '.join(f'{e:.2%}' for e in errs)}")
        report.append(dict(basis=name, codes="l1", lam=lam, errors=errs,
                           samples_per_s=speed[name]))
    best = None
    for lam_kl, pf in KL_GRID:
        p = None if pf is None else pf / k
        errs, val = _errors(bases["streamsc learn_one"], data, sizes, "kl", lam_kl, p, None)
        if best is None or val < best[0]:
            best = (val, lam_kl, pf, errs)
    _, lam_kl, pf, errs = best
    label = f"KL (lam {lam_kl:g}, p {1.0 if pf is None else pf:g}/k)"
    rows.append(["streamsc learn_one", label, *[f"{e:.2%}" for e in errs], ""])
    report.append(dict(basis="streamsc learn_one", codes="kl", lam=lam_kl, p_factor=pf,
                       errors=errs))
    print(f"\nMNIST, PCA-{m} at unit mean norm, {k} atoms, {passes} passes over {n:,} digits: "
          "test error of maxent on the codes (C chosen on validation)")
    print(format_table(rows, ["basis", "codes", *[f"{s:,} labels" for s in sizes],
                              "learning samples/s"]))
    return report


def main(argv=None):
    ap = _common.script_parser(__doc__.split("\n\n")[0], quick_help="tiny sizes: a smoke test")
    ap.add_argument("--data-dir", default=None, help="data directory (default: $STREAMSC_DATA)")
    ap.add_argument("--sections", default="planted,mnist")
    ap.add_argument("--examples", type=int, default=None,
                    help="planted examples per problem (default 30000; 600 with --quick)")
    ap.add_argument("--passes", type=int, default=3)
    args = ap.parse_args(argv)
    sections = [s for s in args.sections.split(",") if s]
    bad = set(sections) - {"planted", "mnist"}
    if bad:
        ap.error(f"unknown sections {sorted(bad)}")
    started = _common.start(SCRIPT, argv)
    out = {}
    if "planted" in sections:
        n = args.examples or (600 if args.quick else 30000)
        out["planted"] = planted_section(n, args.seed)
    if "mnist" in sections:
        out["mnist"] = mnist_section(args.data_dir, args.quick, args.seed,
                                     1 if args.quick else args.passes)
    machine = _common.finish(started)
    _common.write_json(args.json, SCRIPT, argv, out, machine=machine,
                       settings=_common.settings(args, "sections", "examples", "passes"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
