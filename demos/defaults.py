"""How the learner's defaults were chosen: a sweep over a suite of problems.

Usage::

    python demos/defaults.py [--quick] [--sections planted,unrolled,text,mnist]
                             [--data-dir DIR] [--json docs/figures/defaults.json]

Every candidate is run with the public API only (``SparseCoder(n_components=k, seed=0,
...)``), the candidate's one setting given and everything else left at its default:

* **planted** -- :func:`streamsc.synthetic.planted_dictionary` problems (several m, k and
  sparsities; rows of unit norm, and features standardised as a ``StandardScaler`` in front
  would). The score is the fraction of planted atoms recovered (|cos| >= 0.95) after the
  stream. ``lam`` candidates are multiples of the mean norm of the first k examples, which
  is what ``lam=None`` calibrates (0.05 for the KL prior, 0.1 for L1); ``p`` candidates are
  the KL prior mean times k; ``learning_rate`` candidates are run with
  ``gradient="unrolled"``, the squared-loss learner that takes SGD steps (the default
  learner, Mairal et al.'s surrogate, has no step size).
* **unrolled** -- ``unrolled_steps`` T of ``gradient="unrolled"`` with L1 codes, signed and
  non-negative, on the first planted problem drawn from several seeds (one column per seed):
  the unrolled learner's one setting that the planted section does not sweep.
* **text** -- :func:`streamsc.synthetic.planted_topics` (overlapping topics), KL-loss codes:
  dominant-topic accuracy of a logistic regression on the codes (3-fold), against LSA of the
  same dimension. Candidates: ``lam`` and ``learning_rate`` of ``SparseCoder(loss="kl")``.
* **mnist** (needs ``--data-dir``) -- PCA-180 digits scaled to unit mean norm, one pass of
  ``learn_one`` over the training digits, signed codes, test error of a logistic regression
  on 2,000 labelled codes. Candidates: ``lam`` multiples for the L1 and the KL prior.

For each setting the table marks the default with ``*`` and prints, per candidate, the worst
and the mean score over the problems: a default should be the best or near it on all of
them, not only on one.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from streamsc import SparseCoder, datasets
from streamsc.synthetic import planted_dictionary, planted_topics, recovery

#: planted problems: (m, k, planted atoms per example, signed, scaling)
PLANTED = [
    (32, 64, 2, True, "unit"),
    (32, 64, 2, False, "unit"),
    (64, 128, 3, True, "unit"),
    (64, 128, 3, True, "standard"),
]
PLANTED_QUICK = [(16, 24, 2, True, "unit"), (16, 24, 2, True, "standard")]

#: candidates: (setting, values, the default's value, extra parameters of the runs)
LAM_PER_NORM = {"kl": (0.01, 0.02, 0.05, 0.1, 0.2), "l1": (0.02, 0.05, 0.1, 0.2, 0.4)}
DEFAULT_LAM_PER_NORM = {"kl": 0.05, "l1": 0.1}
P_TIMES_K = (0.01, 0.1, 1.0)  # the KL prior mean times k (p=None: 0.1 / k)
LEARNING_RATES = (0.1, 0.3, 1.0, 3.0, 10.0)
TEXT_LAM = (0.001, 0.003, 0.01, 0.03, 0.1)
UNROLLED_STEPS = (10, 15, 20, 25, 40)
UNROLLED_SEEDS = 8


def _log(msg):
    print(msg, flush=True)


def _mean_norm(X, k):
    return float(np.linalg.norm(X[:k], axis=1).mean())


def _planted_runs(quick):
    """(column label, setting, value, default?, parameters given a problem's data)."""
    runs = []
    for prior in ("kl", "l1"):
        for c in LAM_PER_NORM[prior]:
            runs.append((f"{prior} lam/norm", c, c == DEFAULT_LAM_PER_NORM[prior],
                         lambda X, k, prior=prior, c=c: dict(
                             prior=prior, lam=c * _mean_norm(X, k))))
    for c in P_TIMES_K:
        runs.append(("kl p*k", c, c == 0.1, lambda X, k, c=c: dict(p=np.full(k, c / k))))
    for lr in LEARNING_RATES if not quick else (0.3, 1.0, 3.0):
        runs.append(("unrolled learning_rate", lr, lr == 1.0,
                     lambda X, k, lr=lr: dict(gradient="unrolled", learning_rate=lr)))
    return runs


def planted_section(quick, n):
    problems = PLANTED_QUICK if quick else PLANTED
    runs = _planted_runs(quick)
    scores = {}
    names = _names(problems)
    for (m, k, s, signed, scaling), name in zip(problems, names):
        B_true, X = planted_dictionary(m, k, n, sparsity=s, signed=signed, scaling=scaling,
                                       seed=0)
        for setting, value, _, params in runs:
            t0 = time.perf_counter()
            coder = SparseCoder(n_components=k, seed=0, signed=signed, **params(X, k))
            for start in range(0, n, 5000):
                coder.learn_many(pd.DataFrame(X[start:start + 5000]))
            r = recovery(B_true, coder.basis_.to_numpy())
            scores[(setting, value, name)] = r
            _log(f"  planted {name:32s} {setting} = {value:<6g} recovered {r:6.1%} "
                 f"({time.perf_counter() - t0:.1f} s)")
    return _table("planted dictionaries: atoms recovered (|cos| >= 0.95) after "
                  f"{n:,} examples", runs, names, scores,
                  percent=True)


def unrolled_section(quick, n):
    """``unrolled_steps`` candidates for the unrolled learner with L1 codes: recovery of the
    first planted problem (quick: the first quick one) at several seeds, signed and not."""
    m, k, sparsity, _, scaling = (PLANTED_QUICK if quick else PLANTED)[0]
    steps, seeds = ((10, 20, 40), 2) if quick else (UNROLLED_STEPS, UNROLLED_SEEDS)
    default = SparseCoder().unrolled_steps
    runs = [("unrolled L1 unrolled_steps", T, T == default, None) for T in steps]
    problems, scores = [], {}
    for signed in (True, False):
        for seed in range(seeds):
            name = f"{'signed' if signed else 'non-neg'} seed {seed}"
            problems.append(name)
            B_true, X = planted_dictionary(m, k, n, sparsity=sparsity, signed=signed,
                                           scaling=scaling, seed=seed)
            for setting, T, _, _ in runs:
                coder = SparseCoder(n_components=k, seed=seed, signed=signed, prior="l1",
                                    gradient="unrolled", unrolled_steps=T)
                coder.learn_many(pd.DataFrame(X))
                r = recovery(B_true, coder.basis_.to_numpy())
                scores[(setting, T, name)] = r
                _log(f"  unrolled {name:16s} T = {T:<3d} recovered {r:6.1%}")
    return _table(f"m={m} k={k} s={sparsity} {scaling}, gradient='unrolled', prior='l1': "
                  f"atoms recovered after {n:,} examples", runs, problems, scores,
                  percent=True)


def _names(problems):
    return [f"m={m} k={k} s={s} {'signed' if signed else 'non-neg'} {scaling}"
            for m, k, s, signed, scaling in problems]


def text_section(quick):
    from sklearn.decomposition import TruncatedSVD
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    n_docs = 1000 if quick else 3000
    k = 12
    docs, topics = planted_topics(n_docs, seed=0)

    def accuracy(F):
        return float(cross_val_score(LogisticRegression(max_iter=2000), F, topics,
                                     cv=3).mean())

    vocabulary = sorted({w for doc in docs for w in doc})
    counts = np.array([[doc.get(w, 0) for w in vocabulary] for doc in docs], dtype=float)
    lsa = accuracy(TruncatedSVD(k, random_state=0).fit_transform(counts))
    _log(f"  text: LSA-{k} accuracy {lsa:.3f}")
    runs = [("text lam", lam, lam == 0.01, dict(lam=lam)) for lam in TEXT_LAM]
    runs += [("text learning_rate", lr, lr == 1.0, dict(learning_rate=lr))
             for lr in LEARNING_RATES]
    runs += [("text p*k", c, c == 0.1, dict(p=np.full(k, c / k))) for c in P_TIMES_K]
    scores = {}
    for setting, value, _, params in runs:
        t0 = time.perf_counter()
        coder = SparseCoder(n_components=k, loss="kl", seed=0, **params)
        for doc in docs:
            coder.learn_one(doc)
        W = np.array([list(coder.transform_one(doc).values()) for doc in docs])
        scores[(setting, value, "topics")] = accuracy(W)
        _log(f"  text {setting} = {value:<6g} accuracy {scores[(setting, value, 'topics')]:.3f}"
             f" ({time.perf_counter() - t0:.1f} s)")
    table = _table(f"planted topics ({n_docs:,} documents, {k} atoms): dominant-topic "
                   f"accuracy; LSA-{k}: {lsa:.3f}", runs, ["topics"], scores, percent=False)
    table["lsa"] = lsa
    return table


def mnist_section(data_dir, quick):
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression

    X_tr, y_tr = datasets.load_mnist(data_dir, "train", as_float=True)
    X_te, y_te = datasets.load_mnist(data_dir, "test", as_float=True)
    n_learn, k = (3000, 64) if quick else (20000, 256)
    n_lab, n_test = (1000, 1000) if quick else (2000, 5000)
    pca = PCA(180 if not quick else 50, random_state=0).fit(X_tr[:20000])
    Z = pca.transform(X_tr)
    scale = np.linalg.norm(Z[:20000], axis=1).mean()
    Z /= scale
    Z_te = pca.transform(X_te[:n_test]) / scale
    # lam is given per unit of the first k examples' mean norm (what lam=None calibrates)
    runs = [(f"{prior} lam/norm", c, c == DEFAULT_LAM_PER_NORM[prior], dict(prior=prior, lam=c))
            for prior in ("kl", "l1") for c in LAM_PER_NORM[prior]]
    runs += [("kl p*k", c, c == 0.1, dict(prior="kl", lam=DEFAULT_LAM_PER_NORM["kl"],
                                            p=np.full(k, c / k)))
             for c in P_TIMES_K]
    norm = float(np.linalg.norm(Z[:k], axis=1).mean())
    scores = {}
    for setting, value, _, params in runs:
        t0 = time.perf_counter()
        coder = SparseCoder(n_components=k, seed=0, signed=True,
                            **dict(params, lam=params["lam"] * norm))
        for start in range(0, n_learn, 5000):
            coder.learn_many(pd.DataFrame(Z[start:start + 5000]))
        lab = slice(50000, 50000 + n_lab)  # digits not learned from (the validation part)
        F = coder.transform_many(pd.DataFrame(Z[lab])).to_numpy()
        F_te = coder.transform_many(pd.DataFrame(Z_te)).to_numpy()
        mu, sd = F.mean(axis=0), F.std(axis=0) + 1e-12
        head = LogisticRegression(max_iter=3000).fit((F - mu) / sd, y_tr[lab])
        err = float(1.0 - head.score((F_te - mu) / sd, y_te[:n_test]))
        scores[(setting, value, "mnist")] = err
        _log(f"  mnist {setting} = {value:<6g} test error {err:6.2%} "
             f"({time.perf_counter() - t0:.1f} s)")
    return _table(f"MNIST PCA-{Z.shape[1]}, {k} atoms, one pass over {n_learn:,} digits, "
                  f"{n_lab:,} labels: test error (lower is better)", runs, ["mnist"], scores,
                  percent=True, lower_is_better=True)


def _table(title, runs, problems, scores, *, percent, lower_is_better=False):
    """Print one markdown table: a row per candidate, a column per problem, then the worst
    and the mean; the default marked with *. Returns it as plain data."""
    fmt = (lambda s: f"{s:.1%}") if percent else (lambda s: f"{s:.3f}")
    worst = max if lower_is_better else min
    print(f"\n{title}\n")
    print("| setting | value | " + " | ".join(problems) + " | worst | mean |")
    print("|---|---|" + "---|" * (len(problems) + 2))
    rows = []
    for setting, value, default, _ in runs:
        row = [scores[(setting, value, p)] for p in problems]
        star = " *" if default else ""
        print(f"| {setting} | {value:g}{star} | " + " | ".join(fmt(s) for s in row)
              + f" | {fmt(worst(row))} | {fmt(float(np.mean(row)))} |")
        rows.append(dict(setting=setting, value=value, default=default,
                         scores=dict(zip(problems, row))))
    sys.stdout.flush()
    return dict(title=title, problems=problems, rows=rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small problems (a smoke run)")
    ap.add_argument("--sections", default="planted,unrolled,text,mnist")
    ap.add_argument("--n", type=int, default=None,
                    help="planted examples per run (default 30,000; 3,000 with --quick)")
    ap.add_argument("--data-dir", default=None,
                    help="data directory for MNIST (default: $STREAMSC_DATA or ../shared/data)")
    ap.add_argument("--json", default=None, help="write the tables here")
    args = ap.parse_args(argv)
    sections = args.sections.split(",")
    known = ("planted", "unrolled", "text", "mnist")
    bad = set(sections) - set(known)
    if bad:
        ap.error(f"unknown section(s) {sorted(bad)}; choose from {', '.join(known)}")
    out = {}
    t0 = time.perf_counter()
    if "planted" in sections:
        out["planted"] = planted_section(args.quick, args.n or (3000 if args.quick else 30000))
    if "unrolled" in sections:
        out["unrolled"] = unrolled_section(args.quick, args.n or (3000 if args.quick else 30000))
    if "text" in sections:
        out["text"] = text_section(args.quick)
    if "mnist" in sections:
        out["mnist"] = mnist_section(args.data_dir, args.quick)
    print(f"\n{time.perf_counter() - t0:.0f} s in all")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
