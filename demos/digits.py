"""The README's main job: scikit-learn's bundled digits, streamed through sparse coders and a
classifier on their codes, scored by river's progressive validation.

1. The 1,797 8x8 digits (bundled with scikit-learn: no download) are centred by their mean
   image and scaled to unit norm, in a shuffled order fixed by the seed.
2. A basis is learned **without labels** by L1 sparse coding (``SparseCoder(prior="l1")``),
   a few passes over the images, as the paper does before any classifier sees a label.
3. The labels then stream in. Each model predicts the next digit before learning from it
   (river's ``iter_progressive_val_score``) and the table reports the progressive accuracy of
   a maxent (softmax) classifier on: the raw pixels; the L1 codes; the KL codes on the same
   basis; and the KL codes with the classifier's loss back-propagated into the basis
   (``SparseCodingClassifier(gradient="implicit")``, the paper's "KL + backprop"). Every coded model
   keeps adapting its basis online.
4. A picture of the learned atoms and the progressive-accuracy curves are written to ``out``.

Run ``python demos/digits.py`` (a few minutes on two cores; ``--quick``: 500 digits and one
unlabelled pass, a smoke test); ``--help`` lists the options.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["digits_stream", "run", "table", "main"]


def digits_stream(seed=0):
    """The digits as unit-norm, mean-centred feature dicts ``{"px_0": ..., ...}`` and labels,
    in an order shuffled by ``seed``. Returns ``(X, y, names)`` with X an (n, 64) array."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = digits.data / 16.0
    y = digits.target
    order = np.random.default_rng(seed).permutation(len(y))
    X, y = X[order], y[order]
    X = X - X.mean(axis=0)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    names = [f"px_{i}" for i in range(X.shape[1])]
    return X, y, names


def _dicts(X, names):
    return [dict(zip(names, row.tolist())) for row in X]


def _models(basis, seed, n_components, lam_l1, lam_kl):
    from river import compose, linear_model, optim, preprocessing

    from streamsc import SparseCoder, SparseCodingClassifier

    def coder(prior, lam):
        return SparseCoder(n_components=n_components, prior=prior, lam=lam, signed=True,
                           learning_rate=0.02, basis=basis, seed=seed)

    head = dict(learning_rate=20.0, raw_features=False)  # the codes alone, as the paper
    return {
        "raw pixels": compose.Pipeline(
            preprocessing.StandardScaler(),
            linear_model.SoftmaxRegression(optimizer=optim.SGD(0.05)),
        ),
        "L1 codes": SparseCodingClassifier(coder=coder("l1", lam_l1), gradient="alternating", **head),
        "KL codes": SparseCodingClassifier(coder=coder("kl", lam_kl), gradient="alternating", **head),
        "KL + backprop": SparseCodingClassifier(coder=coder("kl", lam_kl), gradient="implicit",
                                                backprop_weight=5.0, **head),
    }


def run(out="streamsc-out", *, n_components=96, epochs=3, lam_l1=0.05, lam_kl=0.005, seed=0,
        pretrain_rate=5.0,
        quick=False, progress=True):
    """Run the digits demo; returns the results as a dict (also written to ``out``).

    Parameters
    ----------
    out : str or Path
        Folder for ``digits_demo.json``, ``digits_atoms.png`` and ``digits_curves.png``.
    n_components : int
        Atoms in the basis.
    epochs : int
        Unlabelled passes over the images to learn the L1 basis.
    lam_l1, lam_kl : float
        Regularisation of the L1 and KL codes.
    seed : int
    quick : bool
        500 images and one unlabelled pass (a smoke test).
    progress : bool
        Show progress bars.
    """
    from river import evaluate, metrics
    from tqdm.auto import tqdm

    from streamsc import SparseCoder

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    X, y, names = digits_stream(seed)
    if quick:
        X, y, epochs = X[:500], y[:500], 1
    xs = _dicts(X, names)

    pre = SparseCoder(n_components=n_components, prior="l1", lam=lam_l1, signed=True,
                      learning_rate=pretrain_rate, seed=seed)
    for _ in tqdm(range(epochs), desc="unlabelled basis (L1)", disable=not progress):
        for x in xs:
            pre.learn_one(x)
    basis = pre.basis_

    results = {}
    curves = {}
    models = _models(basis, seed, n_components, lam_l1, lam_kl)
    stream = list(zip(xs, y.tolist()))
    for name, model in models.items():
        metric = metrics.Accuracy()
        steps = evaluate.iter_progressive_val_score(stream, model, metric, step=1)
        curve = []
        for state in tqdm(steps, total=len(stream), desc=f"labelled stream: {name}",
                          disable=not progress):
            curve.append(state["Accuracy"].get())
        results[name] = metric.get()
        curves[name] = curve

    elapsed = time.perf_counter() - t0
    report = {
        "dataset": "sklearn digits (8x8), mean-centred, unit norm",
        "n_examples": len(stream),
        "n_components": n_components,
        "unlabelled_epochs": epochs,
        "lam_l1": lam_l1,
        "lam_kl": lam_kl,
        "seed": seed,
        "progressive_accuracy": results,
        "seconds": round(elapsed, 1),
    }
    (out / "digits_demo.json").write_text(json.dumps(report, indent=2))
    _plot_atoms(basis.to_numpy(), out / "digits_atoms.png")
    _plot_curves(curves, out / "digits_curves.png")
    return report


def table(report):
    """The results as a markdown table."""
    lines = ["| features | progressive accuracy |", "| --- | --- |"]
    for name, acc in report["progressive_accuracy"].items():
        lines.append(f"| {name} | {100 * acc:.2f}% |")
    return "\n".join(lines)


def _plot_atoms(B, path, side=8, cols=16):
    """All atoms as one mosaic image (each scaled to its own largest magnitude)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = B.shape[1]
    rows = int(np.ceil(k / cols))
    pad = 1
    mosaic = np.full((rows * (side + pad) + pad, cols * (side + pad) + pad), np.nan)
    for j in range(k):
        atom = B[:, j].reshape(side, side)
        atom = atom / max(np.abs(atom).max(), 1e-12)
        r, c = divmod(j, cols)
        top, left = pad + r * (side + pad), pad + c * (side + pad)
        mosaic[top:top + side, left:left + side] = atom
    fig, ax = plt.subplots(figsize=(cols * 0.6, rows * 0.6))
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="white")
    ax.imshow(mosaic, cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
    ax.axis("off")
    ax.set_title("atoms learned without labels (L1 sparse coding), 8x8 digits")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def _plot_curves(curves, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, curve in curves.items():
        ax.plot(np.arange(1, len(curve) + 1), curve, label=name)
    ax.set_xlabel("labelled examples seen")
    ax.set_ylabel("progressive accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not >= 1")
    return value


def parser():
    """The command line's parser (options checked before any work is done)."""
    import streamsc

    p = argparse.ArgumentParser(
        prog="python demos/digits.py",
        description="Stream scikit-learn's bundled digits through sparse coders and a "
                    "classifier on their codes; print progressive accuracy for raw pixels, L1, "
                    "KL and KL + backprop codes and write a picture of the learned atoms.")
    p.add_argument("--out", default="streamsc-out",
                   help="folder for the JSON results and the pictures (default: %(default)s)")
    p.add_argument("--n-components", type=_positive_int, default=96,
                   help="atoms in the basis (default: %(default)s)")
    p.add_argument("--epochs", type=_positive_int, default=3,
                   help="unlabelled passes to learn the basis (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    p.add_argument("--quick", action="store_true",
                   help="500 digits, one unlabelled pass (a smoke test)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.add_argument("--version", action="version", version=f"streamsc {streamsc.__version__}")
    return p


def main(argv=None):
    """Parse ``argv``, run the demo, print its table and the files written. Returns 0."""
    args = parser().parse_args(argv)
    out = args.out
    report = run(out, n_components=args.n_components, epochs=args.epochs, seed=args.seed,
                 quick=args.quick, progress=not args.no_progress)
    print("")
    print(f"{report['n_examples']} digits, {report['n_components']} atoms, "
          f"{report['unlabelled_epochs']} unlabelled pass(es), {report['seconds']} s")
    print(table(report))
    print(f"\nwrote {out}/digits_demo.json, {out}/digits_atoms.png, {out}/digits_curves.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
