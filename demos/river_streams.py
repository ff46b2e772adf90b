"""streamsc's supervised models on river's streams, against river's linear baselines.

Every model is scored by river's progressive validation (predict, then learn, one example at
a time) behind a ``StandardScaler``, with its defaults (only ``seed`` given):

* ImageSegments, Phishing, Bananas (accuracy): ``SparseCodingClassifier(seed=0)`` against
  ``LogisticRegression`` (one-vs-rest for the 7 classes of ImageSegments);
* TrumpApproval (MAE): ``SparseCodingRegressor(seed=0)`` against ``LinearRegression``;
* digits transfer (accuracy): scikit-learn's 8x8 digits; a basis learned without labels on
  the digits 0-4 (``SparseCoder(seed=0)``, three passes), then a labelled stream of the
  digits 5-9, on which ``SparseCodingClassifier(basis=<that basis>, seed=0)`` keeps adapting
  the basis, against the same model from a fresh basis and river's softmax regression;
  and the same two with the head on the codes alone (``raw_features=False``), which shows
  what the pretrained basis itself adds (the default model also reads the pixels and mixes
  its head with a linear expert on them, which wins this stream);
* text (accuracy): two-theme documents, ``BagOfWords | SparseCoder(loss="kl") |
  LogisticRegression`` against ``BagOfWords | LogisticRegression``.

Run ``python demos/river_streams.py`` (about a minute); ``--out DIR`` writes
``river_streams.json`` and the learning curves ``river_streams.png`` there, ``--quick``
streams the first 600 examples of each. The transfer's stream is short (about 900 labelled
digits: a point is 9 digits), so ``--transfer-seeds N`` prints the default model's transfer
alone at seeds 0 to N-1 with the mean gain of the pretrained basis.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def _classifiers(seed):
    from river import linear_model, multiclass, preprocessing

    from streamsc import SparseCodingClassifier

    return {
        "streamsc": lambda: preprocessing.StandardScaler() | SparseCodingClassifier(seed=seed),
        "river": lambda multi: preprocessing.StandardScaler() | (
            multiclass.OneVsRestClassifier(linear_model.LogisticRegression()) if multi
            else linear_model.LogisticRegression()),
    }


def _digits_split(seed):
    from sklearn.datasets import load_digits

    digits = load_digits()
    X, y = digits.data, digits.target
    order = np.random.default_rng(seed).permutation(len(y))
    X, y = X[order], y[order]
    names = [f"px_{i}" for i in range(X.shape[1])]
    rows = [dict(zip(names, r.tolist())) for r in X]
    old = [r for r, c in zip(rows, y) if c < 5]
    new = [(r, int(c)) for r, c in zip(rows, y) if c >= 5]
    return old, new


def _text_stream(seed, n):
    rng = np.random.default_rng(seed)
    themes = {
        "pets": "cat dog puppy kitten leash bark purr fur vet treat".split(),
        "weather": "rain wind cloud storm sunny cold snow forecast humid fog".split(),
    }
    common = "the a and of to in is it on my".split()
    out = []
    for _ in range(n):
        label = ["pets", "weather"][int(rng.integers(2))]
        words = list(rng.choice(themes[label], size=4)) + list(rng.choice(common, size=6))
        out.append((" ".join(words), label == "pets"))
    return out


def streams(seed, limit=None):
    """``name -> (kind, examples, multiclass)``; kind is ``"accuracy"`` or ``"mae"``."""
    from river import datasets

    def take(ds):
        data = list(ds)
        return data[:limit] if limit else data

    out = {
        "ImageSegments": ("accuracy", take(datasets.ImageSegments()), True),
        "Phishing": ("accuracy", take(datasets.Phishing()), False),
        "Bananas": ("accuracy", take(datasets.Bananas()), False),
        "TrumpApproval": ("mae", take(datasets.TrumpApproval()), False),
    }
    return out


def progressive(model, data, kind, every=25):
    """Progressive validation; returns the final score, the curve and examples/s."""
    from river import metrics

    metric = metrics.Accuracy() if kind == "accuracy" else metrics.MAE()
    curve = []
    start = time.perf_counter()
    for i, (x, y) in enumerate(data):
        y_pred = model.predict_one(x)
        if y_pred is not None:
            metric.update(y, y_pred)
        model.learn_one(x, y)
        if (i + 1) % every == 0 or i + 1 == len(data):
            curve.append((i + 1, metric.get()))
    rate = len(data) / (time.perf_counter() - start)
    return metric.get(), curve, rate


def run(seed=0, limit=None, progress=True):
    from river import feature_extraction, linear_model, preprocessing

    from streamsc import SparseCoder, SparseCodingClassifier, SparseCodingRegressor

    results = {}

    def say(msg):
        if progress:
            print(msg, file=sys.stderr, flush=True)

    for name, (kind, data, multi) in streams(seed, limit).items():
        if kind == "accuracy":
            ours = preprocessing.StandardScaler() | SparseCodingClassifier(seed=seed)
            from river import multiclass
            base = linear_model.LogisticRegression()
            theirs = preprocessing.StandardScaler() | (
                multiclass.OneVsRestClassifier(base) if multi else base)
            baseline = "StandardScaler | " + ("OneVsRest(LogisticRegression)" if multi
                                             else "LogisticRegression")
        else:
            ours = preprocessing.StandardScaler() | SparseCodingRegressor(seed=seed)
            theirs = preprocessing.StandardScaler() | linear_model.LinearRegression()
            baseline = "StandardScaler | LinearRegression"
        say(f"{name}: {len(data)} examples")
        s_ours, c_ours, r_ours = progressive(ours, data, kind)
        s_theirs, c_theirs, r_theirs = progressive(theirs, data, kind)
        results[name] = dict(metric=kind, streamsc=s_ours, baseline=s_theirs,
                             baseline_model=baseline, n=len(data),
                             streamsc_rate=r_ours, baseline_rate=r_theirs,
                             curves={"streamsc": c_ours, "baseline": c_theirs})

    results.update(digits_transfer(seed, limit, progress=progress))

    # text: KL-loss codes downstream of BagOfWords, a river head after them
    docs = _text_stream(seed, limit or 2000)
    say(f"text: {len(docs)} documents")
    ours = (feature_extraction.BagOfWords() | SparseCoder(loss="kl", seed=seed)
            | linear_model.LogisticRegression())
    theirs = feature_extraction.BagOfWords() | linear_model.LogisticRegression()
    s_ours, c_ours, r_ours = progressive(ours, docs, "accuracy")
    s_theirs, c_theirs, r_theirs = progressive(theirs, docs, "accuracy")
    results["text (two themes)"] = dict(
        metric="accuracy", streamsc=s_ours, baseline=s_theirs,
        streamsc_model="BagOfWords | SparseCoder(loss='kl') | LogisticRegression",
        baseline_model="BagOfWords | LogisticRegression", n=len(docs),
        streamsc_rate=r_ours, baseline_rate=r_theirs,
        curves={"streamsc": c_ours, "baseline": c_theirs})
    return results


def digits_transfer(seed=0, limit=None, *, codes_only=True, progress=False):
    """The digits transfer (digits 0-4 without labels, then a labelled stream of 5-9): the
    default model from the pretrained basis and from a fresh one, river's softmax
    regression, and (``codes_only``) the same two with the head on the codes alone.
    Returns the two result rows, by name, as :func:`run` does."""
    from river import compose, linear_model, multiclass, preprocessing

    from streamsc import SparseCoder, SparseCodingClassifier

    old, new = _digits_split(seed)
    if limit:
        new = new[:limit]
    if progress:
        print(f"digits transfer: {len(old)} unlabelled 0-4, {len(new)} labelled 5-9",
              file=sys.stderr, flush=True)
    pre = compose.Pipeline(preprocessing.StandardScaler(), SparseCoder(seed=seed))
    for _ in range(3):
        for x in old:
            pre.learn_one(x)
    basis = pre["SparseCoder"].basis_
    softmax = preprocessing.StandardScaler() | multiclass.OneVsRestClassifier(
        linear_model.LogisticRegression())
    s_lr, c_lr, r_lr = progressive(softmax, new, "accuracy")
    baseline = "StandardScaler | OneVsRest(LogisticRegression)"
    rows = {}
    for name, extra in (("digits 0-4 -> 5-9", {}),
                        ("digits 0-4 -> 5-9, codes only", {"raw_features": False}))[
                            : 2 if codes_only else 1]:
        pretrained, fresh = (
            preprocessing.StandardScaler() | SparseCodingClassifier(**start, **extra,
                                                                    seed=seed)
            for start in ({"basis": basis}, {}))
        s_pre, c_pre, r_pre = progressive(pretrained, new, "accuracy")
        s_fresh, c_fresh, _ = progressive(fresh, new, "accuracy")
        rows[name] = dict(
            metric="accuracy", streamsc=s_pre, fresh_basis=s_fresh, baseline=s_lr,
            **({"streamsc_model": "SparseCodingClassifier(basis=..., raw_features=False)"}
               if extra else {}),
            baseline_model=baseline, n=len(new), streamsc_rate=r_pre, baseline_rate=r_lr,
            curves={"pretrained basis": c_pre, "fresh basis": c_fresh, "baseline": c_lr})
    return rows


def transfer_table(seeds):
    """The default model's digits transfer at every seed of ``seeds``: pretrained basis,
    fresh basis, their difference and river's softmax regression, in points, with the
    mean. Returns ``(markdown, rows)``."""
    rows = []
    for seed in seeds:
        r = digits_transfer(seed, codes_only=False)["digits 0-4 -> 5-9"]
        rows.append((seed, 100 * r["streamsc"], 100 * r["fresh_basis"], 100 * r["baseline"]))
    arr = np.array([r[1:] for r in rows])
    gain = arr[:, 0] - arr[:, 1]
    lines = ["| seed | pretrained basis | fresh basis | pretrained - fresh | river |",
             "|---|---|---|---|---|"]
    lines += [f"| {s} | {p:.2f} % | {f:.2f} % | {p - f:+.2f} | {b:.2f} % |"
              for s, p, f, b in rows]
    lines.append(f"| mean | {arr[:, 0].mean():.2f} % | {arr[:, 1].mean():.2f} % | "
                 f"{gain.mean():+.2f} ({(gain > 0).sum()} above, {(gain < 0).sum()} below) | "
                 f"{arr[:, 2].mean():.2f} % |")
    return "\n".join(lines), rows


def table(results, seed=0):
    lines = [f"| stream | n | metric | streamsc (defaults, seed={seed}) | river baseline | "
             "streamsc ex/s ÷ baseline |", "|---|---|---|---|---|---|"]
    for name, r in results.items():
        fmt = (lambda s: f"{100 * s:.2f} %") if r["metric"] == "accuracy" else (
            lambda s: f"{s:.3f}")
        ours = fmt(r["streamsc"])
        if "fresh_basis" in r:
            ours += f" (fresh basis: {fmt(r['fresh_basis'])})"
        lines.append(f"| {name} | {r['n']} | {r['metric']} | {ours} | {fmt(r['baseline'])} | "
                     f"{r['streamsc_rate'] / r['baseline_rate']:.2f}× |")
    return "\n".join(lines)


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = -(-len(results) // 3)
    fig, axes = plt.subplots(rows, 3, figsize=(13, 3.5 * rows))
    for ax in axes.ravel()[len(results):]:
        ax.set_visible(False)
    for ax, (name, r) in zip(axes.ravel(), results.items()):
        for label, curve in r["curves"].items():
            n, s = zip(*curve)
            ax.plot(n, s, label=label)
        ax.set_title(name)
        ax.set_xlabel("examples")
        ax.set_ylabel("progressive " + r["metric"])
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="the first 600 examples of each")
    parser.add_argument("--out", type=Path, help="directory for river_streams.json and .png")
    parser.add_argument("--transfer-seeds", type=int, metavar="N",
                        help="only the digits transfer of the default model, at seeds 0..N-1")
    args = parser.parse_args(argv)
    if args.transfer_seeds:
        print(transfer_table(range(args.transfer_seeds))[0])
        return
    results = run(args.seed, 600 if args.quick else None)
    print(table(results, args.seed))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "river_streams.json").write_text(json.dumps(results, indent=1))
        plot(results, args.out / "river_streams.png")
        print(f"wrote {args.out / 'river_streams.json'} and {args.out / 'river_streams.png'}")


if __name__ == "__main__":
    main()
