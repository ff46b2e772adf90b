"""Shared pieces of the paper's experiments (Section 6): the MNIST PCA space, the unlabelled L1
basis (of a given size, or with its size and passes chosen on validation), batch codes,
maxent heads, the streamed KL + backprop model, plots and output files.

Conventions used by every table:

* Pixels are in [0, 1]. The PCA (180 components, as in the paper) is fitted on the MNIST
  training images (the first 50,000, the validation 10,000 excluded) and every projection is
  divided by one scalar, the mean norm of the projected training images, so that examples
  have norm about 1 (the scale :class:`streamsc.SparseCoder`'s step sizes are set for). The
  PCA is not whitened: the squared loss of the codes is then the squared pixel error within
  the 180-D subspace.
* A basis is a ``(180, k)`` float64 array, one unit-norm atom per column.
* Codes are signed (``signed=True``): PCA coordinates are centred, so atoms need both signs
  (for KL the paper's expanded basis ``[B, -B]``, Appendix B).

Every table is a script with the same options (:func:`main`)::

    python demos/paper/table2.py [--quick] [--data-dir D] [--out O] [--seed S] [--no-progress]

and ``python demos/reproduce.py [table ...]`` runs several in turn. Run as files, the scripts
find this module through their own folder (put first on ``sys.path``).
"""

import argparse
import json
import math
import os
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

__all__ = [
    "MnistSpace",
    "encode_rows",
    "learn_basis",
    "mean_sorted_profile",
    "relative_l1_change",
    "stream_backprop",
    "backprop_codes",
    "maxent_by_size",
    "backprop_by_size",
    "fit_maxent",
    "fit_maxent_on_validation",
    "validation_split",
    "choose_on_validation",
    "select_basis",
    "selected_basis",
    "write_outputs",
    "TABLES",
    "main",
    "main_all",
]

#: the tables, one script each (``demos/paper/<name>.py``)
TABLES = ("table1", "table2", "table5", "table6")

#: the PCA dimension of the paper (Section 6.3.1)
N_PCA = 180


def _tqdm(iterable=None, **kwargs):
    from tqdm.auto import tqdm

    return tqdm(iterable, **kwargs)


def n_threads():
    """Threads for batch coding: the machine's cores (at most 2 on the reference machine)."""
    return max(1, min(2, os.cpu_count() or 1))


class MnistSpace:
    """The MNIST PCA space: ``transform(pixels)`` gives unit-scale 180-D rows.

    Parameters
    ----------
    X_train : ndarray of shape (n, 784)
        Training pixels in [0, 1] the PCA is fitted on.
    n_components : int
        PCA dimension.
    seed : int
        Seed of the randomised SVD.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> space = MnistSpace(rng.uniform(size=(300, 784)), n_components=20)
    >>> Z = space.transform(rng.uniform(size=(5, 784)))
    >>> Z.shape, space.back_project(np.eye(20)[:, :3]).shape
    ((5, 20), (784, 3))
    """

    def __init__(self, X_train, n_components=N_PCA, seed=0):
        from sklearn.decomposition import PCA

        self.pca = PCA(n_components=n_components, svd_solver="randomized", random_state=seed)
        Z = self.pca.fit_transform(X_train)
        self.scale = float(np.linalg.norm(Z, axis=1).mean())
        self.explained_variance = float(self.pca.explained_variance_ratio_.sum())

    def transform(self, X):
        """180-D coordinates of pixel rows, divided by the training mean norm."""
        return np.ascontiguousarray(self.pca.transform(X) / self.scale)

    def back_project(self, B):
        """Atoms (columns of ``B``) as 784-pixel images (the PCA directions they combine)."""
        return self.pca.components_.T @ B


def learn_basis(Z, n_components, *, lam, learning_rate, epochs=1, seed=0, progress=True,
                desc="unlabelled basis (L1)", after_pass=None):
    """Learn a basis by online L1 sparse coding (:class:`streamsc.SparseCoder`) on the rows of
    ``Z`` (no labels), ``epochs`` passes in a shuffled order. Returns the ``(m, k)`` basis.

    ``learning_rate`` is the coder's SGD step; with its default basis update (``"auto"``,
    here Mairal et al.'s online surrogate) the unsupervised learner does not use it.
    ``after_pass(epoch, basis)``, if given, is called after every pass (``epoch`` from 1)
    with a copy of the basis so far.

    Examples
    --------
    >>> import numpy as np
    >>> Z = np.random.default_rng(0).normal(size=(50, 6))
    >>> Z /= np.linalg.norm(Z, axis=1, keepdims=True)
    >>> learn_basis(Z, 4, lam=0.05, learning_rate=0.5, progress=False).shape
    (6, 4)
    """
    import pandas as pd

    from streamsc import SparseCoder

    coder = SparseCoder(n_components=n_components, prior="l1", lam=lam, signed=True,
                        learning_rate=learning_rate, seed=seed)
    rng = np.random.default_rng(seed)
    columns = list(range(Z.shape[1]))
    chunk = 250
    for epoch in range(epochs):
        order = rng.permutation(Z.shape[0])
        starts = range(0, len(order), chunk)
        for s in _tqdm(starts, desc=f"{desc}, pass {epoch + 1}/{epochs}", disable=not progress,
                       unit="chunk"):
            coder.learn_many(pd.DataFrame(Z[order[s : s + chunk]], columns=columns))
        if after_pass is not None:
            after_pass(epoch + 1, np.ascontiguousarray(coder.basis_.to_numpy()))
    return np.ascontiguousarray(coder.basis_.to_numpy())


def encode_rows(Z, B, *, prior, lam, p=None, progress=True, desc="codes", chunk=500):
    """Codes of the rows of ``Z`` under ``B`` (signed), in chunks with a progress bar.

    Examples
    --------
    >>> import numpy as np
    >>> B = np.eye(3)
    >>> W = encode_rows(np.array([[1.0, 0.0, 0.0]]), B, prior="l1", lam=0.1, progress=False)
    >>> W.round(6).tolist()
    [[0.9, 0.0, 0.0]]
    """
    from streamsc import encode

    out = np.empty((Z.shape[0], B.shape[1]))
    for s in _tqdm(range(0, Z.shape[0], chunk), desc=desc, disable=not progress, unit="chunk"):
        out[s : s + chunk] = encode(np.ascontiguousarray(Z[s : s + chunk]), B, prior=prior,
                                    lam=lam, p=p, signed=True, n_threads=n_threads())
    return out


def fit_maxent(W, y, *, C=1.0):
    """A maxent (multinomial logistic regression) head on fixed features: scikit-learn's
    ``LogisticRegression`` (L-BFGS), features standardised first.

    Examples
    --------
    >>> import numpy as np
    >>> W = np.array([[0.0], [0.1], [1.0], [1.1]]); y = np.array([0, 0, 1, 1])
    >>> fit_maxent(W, y).predict([[0.05], [1.05]]).tolist()
    [0, 1]
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000))
    return model.fit(W, y)


#: the candidate inverse regularisations of the maxent head (:func:`fit_maxent_on_validation`)
MAXENT_C = (0.01, 0.1, 1.0)


def fit_maxent_on_validation(W, y, W_va, y_va, Cs=MAXENT_C):
    """:func:`fit_maxent` at every ``C`` of ``Cs``; the one with the lowest error on the
    validation features ``(W_va, y_va)`` (the first on ties). Returns ``(model, C, validation
    error)``.

    Examples
    --------
    >>> import numpy as np
    >>> W = np.array([[0.0], [0.1], [1.0], [1.1]]); y = np.array([0, 0, 1, 1])
    >>> model, C, err = fit_maxent_on_validation(W, y, W, y, Cs=(0.1, 1.0))
    >>> C, err
    (0.1, 0.0)
    """
    best = None
    for C in Cs:
        model = fit_maxent(W, y, C=C)
        err = float(np.mean(model.predict(W_va) != y_va))
        if best is None or err < best[2]:
            best = (model, C, err)
    return best


def stream_backprop(Z, y, B, *, lam, p, learning_rate, head_learning_rate, backprop_weight,
                    epochs=1, head_epochs=1, seed=0, progress=True, desc="KL + backprop"):
    """Stream labelled rows through :class:`streamsc.SparseCodingClassifier` with KL codes on
    a copy of ``B``: first ``head_epochs`` passes that train the head alone (``backprop``
    off, ``reconstruction_weight=0``: the basis does not move), so that the gradients sent
    into the basis come from a trained head; then ``epochs`` passes with ``gradient="implicit"``
    (the basis adapts to every label). Shuffled orders. Returns ``(model, adapted basis)``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> Z = rng.normal(size=(40, 5)); y = (Z[:, 0] > 0).astype(int)
    >>> model, B = stream_backprop(Z, y, np.eye(5)[:, :4], lam=0.05, p=None,
    ...                            learning_rate=0.01, head_learning_rate=1.0,
    ...                            backprop_weight=1.0, progress=False)
    >>> B.shape
    (5, 4)
    """
    from streamsc import SparseCoder, SparseCodingClassifier

    coder = SparseCoder(n_components=B.shape[1], prior="kl", lam=lam, p=p, signed=True,
                        learning_rate=learning_rate, basis=B, seed=seed)
    model = SparseCodingClassifier(coder=coder, gradient="alternating", learning_rate=head_learning_rate,
                                   backprop_weight=backprop_weight, reconstruction_weight=0.0,
                                   raw_features=False)  # the paper: a head on codes
    rng = np.random.default_rng(seed)
    total = head_epochs + epochs
    for epoch in range(total):
        if epoch == head_epochs:
            model.gradient, model.reconstruction_weight = "implicit", 1.0
        stage = "head only" if epoch < head_epochs else "backprop"
        order = rng.permutation(len(y))
        for i in _tqdm(order, desc=f"{desc}, pass {epoch + 1}/{total} ({stage})",
                       disable=not progress, unit="ex", leave=False):
            model.learn_one(dict(enumerate(Z[i].tolist())), int(y[i]))
    return model, np.ascontiguousarray(model.coder_.basis_.to_numpy())


def backprop_codes(Z, y, B, prm, rows, *, epochs=1, seed=0, progress=True,
                   desc="KL + backprop"):
    """Stream the labelled rows ``(Z, y)`` through :func:`stream_backprop` from the basis
    ``B`` with the parameters ``prm`` (the chosen KL lambda, ``p_factor``, basis step, head
    learning rate and backprop weight), then KL-code every array of ``rows`` with the
    adapted basis. Returns ``(streamed model, adapted basis, list of codes)``."""
    p = prm["p_factor"] / B.shape[1]
    streamed, B_bp = stream_backprop(
        Z, y, B, lam=prm["lam_kl"], p=p, learning_rate=prm["bp_learning_rate"],
        head_learning_rate=prm["head_learning_rate"], backprop_weight=prm["backprop_weight"],
        epochs=epochs, seed=seed, progress=progress, desc=desc)
    codes = [encode_rows(R, B_bp, prior="kl", lam=prm["lam_kl"], p=p, progress=progress,
                         desc="KL codes, adapted basis") for R in rows]
    return streamed, B_bp, codes


def maxent_by_size(sizes, features, y, y_test, y_val, Cs, *, progress=True):
    """The fixed-feature rows of Tables 2 and 5: for every labelled size ``n`` of ``sizes``
    and every name of ``features`` (``name -> (F, F_test, F_val)``, the training rows in
    the nested order), :func:`fit_maxent_on_validation` on ``F[:n]`` with ``C`` among ``Cs``.
    Returns ``(test predictions, chosen C, models)``, each ``name -> list by size``."""
    pred, chosen_C, models = ({n: [] for n in features} for _ in range(3))
    for n in _tqdm(sizes, desc="label sizes, fixed features", disable=not progress):
        for name, (F, F_test, F_val) in features.items():
            model, C, _ = fit_maxent_on_validation(F[:n], y[:n], F_val, y_val, Cs)
            pred[name].append(model.predict(F_test))
            chosen_C[name].append(C)
            models[name].append(model)
    return pred, chosen_C, models


def backprop_by_size(sizes, Z, y, Z_test, Z_val, y_val, B, prm, cfg, *, seed=0,
                     progress=True):
    """The "KL + backprop" rows of Tables 2 and 5: for every labelled size ``n`` of
    ``sizes`` (``Z``, ``y``: the training rows in the nested order), :func:`backprop_codes`
    streams the first ``min(n, cfg["bp_max_labels"])`` labels from ``B`` for
    ``cfg["bp_epochs"]`` backprop pass(es); the adapted basis recodes the subset (from the
    cap on, the whole of ``Z`` once), the test and the validation rows, and a maxent head
    is refitted with ``C`` chosen among ``cfg["C"]`` on validation.

    Returns
    -------
    pred : dict
        ``"KL + backprop"`` (the refitted head) and ``"KL + backprop (streamed head)"`` (the
        streamed model's own head): test predictions by size.
    chosen_C : list
        The refitted head's ``C`` by size.
    seconds : list
        Wall time by size.
    B_last : ndarray
        The basis adapted on the largest stream.
    """
    cap = cfg["bp_max_labels"] or max(sizes)
    pred = {"KL + backprop": [], "KL + backprop (streamed head)": []}
    adapted, chosen_C, seconds = {}, [], []
    for n in _tqdm(sizes, desc="label sizes, KL + backprop", disable=not progress):
        clock = Timer()
        n_bp = min(n, cap)
        if n_bp not in adapted:  # from the cap on, recode the whole pool once
            rows = Z[: n if n < cap else len(Z)]
            streamed, B_bp, codes = backprop_codes(
                Z[:n_bp], y[:n_bp], B, prm, [rows, Z_test, Z_val], epochs=cfg["bp_epochs"],
                seed=seed, progress=progress, desc=f"KL + backprop, {n_bp}")
            adapted[n_bp] = (B_bp, codes, predict_stream(streamed, Z_test, progress=progress))
        B_last, (W, W_test, W_val), pred_streamed = adapted[n_bp]
        model, C, _ = fit_maxent_on_validation(W[:n], y[:n], W_val, y_val, cfg["C"])
        pred["KL + backprop"].append(model.predict(W_test))
        pred["KL + backprop (streamed head)"].append(pred_streamed)
        chosen_C.append(C)
        seconds.append(clock.elapsed())
    return pred, chosen_C, seconds, B_last


def finish_backprop_table(out, name, lines, report, prm, timing, where, phases=None):
    """Complete and write a Table 2 or 5 report (:func:`write_outputs`): its ``"compute"``
    entry from ``timing = (timer, basis seconds, grid seconds, backprop seconds per size)``
    (and ``phases``, seconds by phase of the run, if given) and the markdown's last line, the
    settings chosen on ``where`` and the wall time. Returns the report."""
    timer, t_basis, grid_seconds, bp_seconds = timing
    report["compute"] = {"wall_seconds": timer.elapsed(), "basis_seconds": t_basis,
                         "grid_seconds": grid_seconds, "backprop_seconds_per_size": bp_seconds,
                         **({"phase_seconds": phases} if phases is not None else {}),
                         "machine": machine()}
    lines = [*lines, "", f"Chosen on {where}: lam_l1={prm['lam_l1']}, lam_kl={prm['lam_kl']}, "
             f"p={prm['p_factor']}/k, backprop basis step {prm['bp_learning_rate']}. "
             f"Wall time {report['compute']['wall_seconds']} s."]
    write_outputs(out, name, "\n".join(lines), report)
    return report


#: the deviation from the paper every "KL + backprop" column shares (Tables 2 and 5)
BACKPROP_DEVIATION = ("KL + backprop: one online head-only pass then one online backprop pass "
                      "per subset (the paper gives no schedule); its reported figure uses a "
                      "maxent head refitted on codes from the adapted basis")


def predict_stream(model, Z, *, progress=True, desc="streamed head"):
    """Predictions of a streamed classifier on the rows of ``Z`` (its own SGD head)."""
    return np.array([model.predict_one(dict(enumerate(z.tolist())))
                     for z in _tqdm(Z, desc=desc, disable=not progress, unit="ex",
                                    leave=False)])


def relative_l1_change(W, W2):
    r"""Per-row :math:`\|w - w'\|_1 / \|w\|_1` (the paper's Table 1 measure).

    Examples
    --------
    >>> import numpy as np
    >>> relative_l1_change(np.array([[1.0, -1.0]]), np.array([[1.0, -0.5]])).tolist()
    [0.25]
    """
    return np.abs(W - W2).sum(axis=1) / np.abs(W).sum(axis=1)


def mean_sorted_profile(W):
    r"""The paper's Figure 1 curve: every code's magnitudes sorted in decreasing order and
    divided by its largest, then averaged over the codes (rows with no non-zero skipped).

    Examples
    --------
    >>> import numpy as np
    >>> mean_sorted_profile(np.array([[2.0, -1.0, 0.0], [0.0, 0.0, 3.0]])).tolist()
    [1.0, 0.25, 0.0]
    """
    A = -np.sort(-np.abs(W), axis=1)
    top = A[:, 0]
    keep = top > 0
    return (A[keep] / top[keep, None]).mean(axis=0)


def sparsity(W, rel=1e-3):
    """Fraction of coefficients above ``rel`` times the code's largest magnitude."""
    A = np.abs(W)
    top = A.max(axis=1, keepdims=True)
    top[top == 0] = 1.0
    return float((A > rel * top).mean())


# ------------------------------------------------------------------------------------------
# plots and files


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_atoms(images, path, title, side=28, cols=16, max_atoms=128):
    """Atoms as images, one per column of ``images`` (784 x k)."""
    plt = _plt()
    k = min(images.shape[1], max_atoms)
    rows = int(math.ceil(k / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.7, rows * 0.7))
    for j, ax in enumerate(np.ravel(axes)):
        ax.axis("off")
        if j < k:
            atom = images[:, j].reshape(side, side)
            lim = np.abs(atom).max() or 1.0
            ax.imshow(atom, cmap="RdBu_r", vmin=-lim, vmax=lim)
    fig.suptitle(title)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def plot_profile(profiles, path, title):
    """The paper's Figure 1 (left): mean sorted normalised |w|, log horizontal axis."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, prof in profiles.items():
        ax.plot(np.arange(1, len(prof) + 1), prof, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("coefficient rank (sorted by magnitude)")
    ax.set_ylabel("mean |w| / max |w|")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def plot_curves(sizes, curves, path, ylabel, title, paper=None):
    """Figures against the number of labels (log axis); the paper's as dashed lines."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (name, ys) in enumerate(curves.items()):
        line, = ax.plot(sizes, ys, "o-", label=f"{name} (ours)")
        if paper and name in paper:
            psizes = [s for s in paper["sizes"]]
            ax.plot(psizes, paper[name], "x--", color=line.get_color(), alpha=0.6,
                    label=f"{name} (paper)")
    ax.set_xscale("log")
    ax.set_xlabel("labelled examples")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return float(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    return obj


def output_dir(out):
    """The output folder ``out`` as a Path, created if missing."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_outputs(out, name, markdown, report):
    """Write ``<name>.md`` and ``<name>.json`` under ``out``; returns their paths.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     paths = write_outputs(d, "t", "| a |", {"x": 1.0})
    ...     [p.name for p in paths]
    ['t.md', 't.json']
    """
    out = output_dir(out)
    md, js = out / f"{name}.md", out / f"{name}.json"
    md.write_text(markdown + "\n")
    js.write_text(json.dumps(_jsonable(report), indent=2))
    return md, js


def machine():
    """A short description of the machine (cores, platform) for the reports."""
    import platform

    return {"cpu_count": os.cpu_count(), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version()}


class Timer:
    """Wall time since creation, in seconds (``elapsed()``)."""

    def __init__(self):
        self.t0 = time.perf_counter()

    def elapsed(self):
        return round(time.perf_counter() - self.t0, 1)

    def restart(self):
        """Count from now on."""
        self.t0 = time.perf_counter()


class Phases:
    """Wall time of the successive phases of a run: ``done(name)`` records (and prints) the
    seconds since the previous phase ended; ``seconds`` holds them by name.

    Examples
    --------
    >>> phases = Phases(prefix="t", echo=False)
    >>> phases.done("load") >= 0, list(phases.seconds)
    (True, ['load'])
    """

    def __init__(self, prefix, echo=True):
        self.prefix, self.echo, self.seconds = prefix, echo, {}
        self.timer = Timer()

    def done(self, name):
        """End the phase ``name``: its seconds, printed if ``echo``."""
        self.seconds[name] = self.timer.elapsed()
        if self.echo:
            print(f"[{self.prefix}] {name}: {self.seconds[name]} s", flush=True)
        self.timer.restart()
        return self.seconds[name]


def load_mnist_space(data_dir, *, n_pca_fit, seed, progress=True):
    """MNIST (train 50k / validation 10k / test 10k, float pixels) and the PCA space fitted
    on the first ``n_pca_fit`` training images. Returns ``(space, data dict)``."""
    from streamsc import datasets

    X_tr, y_tr, X_va, y_va = datasets.mnist_train_validation(data_dir, as_float=True)
    X_te, y_te = datasets.load_mnist(data_dir, "test", as_float=True)
    space = MnistSpace(X_tr[:n_pca_fit], seed=seed)
    data = dict(X_tr=X_tr, y_tr=y_tr, X_va=X_va, y_va=y_va, X_te=X_te, y_te=y_te)
    return space, data


#: defaults shared by the MNIST tables (the paper's lambda and p were chosen on validation;
#: Tables 2 and 5 re-choose the coding lambdas, p and the backprop step on a small grid
#: (:func:`choose_on_validation`), Table 1 uses these)
DEFAULTS = dict(basis_lam=0.05, basis_learning_rate=1.0, lam_l1=0.05, lam_kl=0.01,
                p_factor=1.0, bp_learning_rate=0.2, head_learning_rate=2.0,
                backprop_weight=1.0)

#: the validation grid of :func:`choose_on_validation` (Tables 2 and 5), and its quick version
GRID = dict(train=2000, val=2000, lam_l1=[0.02, 0.05, 0.1], lam_kl=[0.005, 0.01, 0.02, 0.05],
            p_factor=[0.1, 1.0], bp_learning_rate=[0.2, 0.5, 1.0, 2.0])
QUICK_GRID = dict(train=300, val=200, lam_l1=[0.05], lam_kl=[0.01], p_factor=[1.0],
                  bp_learning_rate=[0.2, 0.5])


def validation_split(data, space, grid, *, seed=0):
    """The labelled images every validation choice is scored on: ``grid["train"]`` random
    training images of the 50,000-image pool and ``grid["val"]`` random validation images
    (drawn with ``seed``), in the PCA space. Returns ``(Z_tr, y_tr, Z_va, y_va)``."""
    rng = np.random.default_rng(seed + 7)
    tr = rng.choice(data["X_tr"].shape[0], grid["train"], replace=False)
    va = rng.choice(data["X_va"].shape[0], grid["val"], replace=False)
    return (space.transform(data["X_tr"][tr]), data["y_tr"][tr],
            space.transform(data["X_va"][va]), data["y_va"][va])


def choose_on_validation(data, space, B, grid, *, seed=0, progress=True, cache_dir=None):
    """Choose the coding parameters on MNIST's validation set, one after the other: the L1
    lambda; the KL lambda at ``p = 1/k``; ``p`` at that lambda; then the basis step of
    KL + backprop (one head-only and one backprop pass of :func:`stream_backprop`) at the
    chosen KL lambda and ``p``. Each candidate is scored by the validation error of a maxent
    head (:func:`fit_maxent`, ``C=1``) trained on ``grid["train"]`` labelled training images
    and measured on ``grid["val"]`` validation images (:func:`validation_split`). Tables 2 and
    5 call this with the same seed and grid: given the same basis, they make the same choices.

    Parameters
    ----------
    data : dict
        MNIST as returned by :func:`load_mnist_space` (``X_tr``, ``y_tr``, ``X_va``, ``y_va``).
    space : MnistSpace
    B : ndarray of shape (180, k)
        The unlabelled basis.
    grid : dict
        ``train``, ``val`` (sizes) and the candidate lists ``lam_l1``, ``lam_kl``,
        ``p_factor`` (multiples of 1/k) and ``bp_learning_rate``.

    Returns
    -------
    params : dict
        :data:`DEFAULTS` with ``lam_l1``, ``lam_kl``, ``p_factor`` and ``bp_learning_rate``
        replaced by the chosen values.
    records : dict
        Every candidate with its validation error, by parameter.
    seconds : float
        Wall time (of reading the cache, if it was there).

    With ``cache_dir`` the choices are stored in, and read back from, a file there named by
    a hash of the basis, the grid, the seed and :data:`DEFAULTS`.
    """
    import hashlib

    timer = Timer()
    k = B.shape[1]
    path = _cache_path(cache_dir, dict(basis=hashlib.sha1(np.ascontiguousarray(B)).hexdigest(),
                                       grid=grid, seed=seed, defaults=DEFAULTS),
                       kind="validation", suffix="json")
    if path is not None and path.exists():
        cached = json.loads(path.read_text())
        return cached["params"], cached["records"], timer.elapsed()
    Z_tr, y_tr, Z_va, y_va = validation_split(data, space, grid, seed=seed)
    prm = dict(DEFAULTS)
    records = {"lam_l1": [], "lam_kl": [], "p_factor": [], "bp_learning_rate": []}

    def error(Wtr, Wva):
        return float(np.mean(fit_maxent(Wtr, y_tr).predict(Wva) != y_va))

    def coded_error(Bc, prior, lam, p):
        kw = dict(prior=prior, lam=lam, p=p, progress=False)
        return error(encode_rows(Z_tr, Bc, **kw), encode_rows(Z_va, Bc, **kw))

    def best(name):
        return min(records[name], key=lambda r: r["val_error"])[name]

    for lam in _tqdm(grid["lam_l1"], desc="validation: L1 lambda", disable=not progress):
        records["lam_l1"].append({"lam_l1": lam, "val_error": coded_error(B, "l1", lam, None)})
    prm["lam_l1"] = best("lam_l1")
    for lam in _tqdm(grid["lam_kl"], desc="validation: KL lambda", disable=not progress):
        records["lam_kl"].append({"lam_kl": lam, "p_factor": 1.0,
                                  "val_error": coded_error(B, "kl", lam, 1.0 / k)})
    prm["lam_kl"] = best("lam_kl")
    at_p1 = min(r["val_error"] for r in records["lam_kl"])  # the best lambda, at p = 1/k
    for pf in _tqdm(grid["p_factor"], desc="validation: KL p", disable=not progress):
        err = at_p1 if pf == 1.0 else coded_error(B, "kl", prm["lam_kl"], pf / k)
        records["p_factor"].append({"p_factor": pf, "lam_kl": prm["lam_kl"], "val_error": err})
    prm["p_factor"] = best("p_factor")
    p = prm["p_factor"] / k
    for lr in _tqdm(grid["bp_learning_rate"], desc="validation: backprop step",
                    disable=not progress):
        _, B_bp = stream_backprop(Z_tr, y_tr, B, lam=prm["lam_kl"], p=p, learning_rate=lr,
                                  head_learning_rate=prm["head_learning_rate"],
                                  backprop_weight=prm["backprop_weight"], seed=seed,
                                  progress=False)
        records["bp_learning_rate"].append(
            {"bp_learning_rate": lr, "val_error": coded_error(B_bp, "kl", prm["lam_kl"], p)})
    prm["bp_learning_rate"] = best("bp_learning_rate")
    if path is not None:
        path.write_text(json.dumps(_jsonable({"params": prm, "records": records})))
    return prm, records, timer.elapsed()


def unlabelled_rows(data, space, n_unlabelled, *, seed):
    """``n_unlabelled`` training images of the 50,000-image pool drawn at random with
    ``seed`` (all of them, shuffled, if ``n_unlabelled`` is the pool's size), in the PCA
    space; no labels."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(data["X_tr"].shape[0], n_unlabelled, replace=False)
    return space.transform(data["X_tr"][idx])


def mnist_basis(data_dir, *, n_pca_fit, n_unlabelled, n_components, epochs, seed,
                progress=True, params=DEFAULTS):
    """The MNIST PCA space, the data, and the basis learned by online L1 sparse coding on
    ``n_unlabelled`` training images drawn at random (no labels). Returns
    ``(space, data, B, seconds)``."""
    t = Timer()
    space, data = load_mnist_space(data_dir, n_pca_fit=n_pca_fit, seed=seed, progress=progress)
    B = learn_basis(unlabelled_rows(data, space, n_unlabelled, seed=seed), n_components,
                    lam=params["basis_lam"], learning_rate=params["basis_learning_rate"],
                    epochs=epochs, seed=seed, progress=progress)
    return space, data, B, t.elapsed()


def _cache_path(cache_dir, settings, kind="basis", suffix="npz"):
    """``<cache_dir>/<kind>-<hash of settings>.<suffix>`` (None without a cache folder)."""
    if cache_dir is None:
        return None
    import hashlib

    key = hashlib.sha1(json.dumps(_jsonable(settings), sort_keys=True).encode()).hexdigest()
    return output_dir(cache_dir) / f"{kind}-{key[:12]}.{suffix}"


def select_basis(data, space, cfg, grid, *, seed=0, progress=True, params=DEFAULTS,
                 cache_dir=None):
    """The unlabelled basis with its size and number of passes chosen on validation.

    For every size of ``cfg["n_components"]`` a basis is learned by :func:`learn_basis` over
    ``cfg["n_unlabelled"]`` unlabelled training images (:func:`unlabelled_rows`) for
    ``cfg["epochs"]`` passes; after every pass (the passes are nested, so a candidate
    number of passes costs nothing more than the passes) the basis is scored by the
    validation error of a maxent head on its signed KL codes (``params["lam_kl"]``,
    ``p = params["p_factor"] / k``), trained on the ``grid["train"]`` labelled images of
    :func:`validation_split` with ``C`` chosen among ``cfg["C"]``
    (:func:`fit_maxent_on_validation`). The basis of lowest validation error is kept (the
    smaller, then the fewer passes, on ties). With ``cache_dir`` the result is stored in,
    and read back from, a file there named by a hash of every setting it depends on.

    Returns
    -------
    B : ndarray of shape (180, k)
    record : dict
        ``n_components`` and ``epochs`` chosen, and ``candidates``: one entry per size and
        pass with its validation error, the ``C`` chosen for it and the learning and scoring
        seconds.
    seconds : float
        Wall time (of reading the cache, if it was there).
    """
    timer = Timer()
    settings = dict(sizes=[cfg[n] for n in ("n_pca_fit", "n_unlabelled", "n_components",
                                            "epochs", "C")],
                    grid=[grid["train"], grid["val"]], seed=seed,
                    params=[params[n] for n in ("basis_lam", "basis_learning_rate", "lam_kl",
                                                "p_factor")])
    path = _cache_path(cache_dir, settings)
    if path is not None and path.exists():
        with np.load(path) as f:
            return f["B"], json.loads(str(f["record"])), timer.elapsed()
    Z = unlabelled_rows(data, space, cfg["n_unlabelled"], seed=seed)
    Z_tr, y_tr, Z_va, y_va = validation_split(data, space, grid, seed=seed)
    candidates, bases = [], {}
    for k in cfg["n_components"]:
        clock = Timer()
        kw = dict(prior="kl", lam=params["lam_kl"], p=params["p_factor"] / k, progress=False)

        def score(epoch, B, k=k, kw=kw, clock=clock):
            learn_seconds = clock.elapsed()
            _, C, err = fit_maxent_on_validation(encode_rows(Z_tr, B, **kw), y_tr,
                                                 encode_rows(Z_va, B, **kw), y_va, cfg["C"])
            candidates.append({"n_components": k, "epochs": epoch, "val_error": err, "C": C,
                               "learn_seconds": learn_seconds,
                               "score_seconds": round(clock.elapsed() - learn_seconds, 1)})
            bases[k, epoch] = B
            clock.restart()

        learn_basis(Z, k, lam=params["basis_lam"], learning_rate=params["basis_learning_rate"],
                    epochs=cfg["epochs"], seed=seed, progress=progress,
                    desc=f"unlabelled basis (L1, {k} atoms)", after_pass=score)
    best = min(candidates, key=lambda r: r["val_error"])  # the first: smaller, fewer passes
    B = bases[best["n_components"], best["epochs"]]
    record = {"n_components": best["n_components"], "epochs": best["epochs"],
              "candidates": candidates}
    if path is not None:
        np.savez(path, B=B, record=json.dumps(_jsonable(record)))
    return B, record, timer.elapsed()


# ------------------------------------------------------------------------------------------
# the command line


_RUN_DOC = """{summary}

    Parameters
    ----------
    data_dir : str or Path or None
        The data directory (see :func:`streamsc.datasets.resolve_data_dir`).
    out : str or Path
        Output folder.
    quick : bool
        Tiny sizes (a smoke test, same code path).
    seed : int
    progress : bool
        Show progress bars.

    Examples
    --------
    >>> import table{number}  # doctest: +SKIP
    >>> report = table{number}.run("../shared/data", "out", quick=True)  # doctest: +SKIP
    >>> sorted(report["{key}"])  # doctest: +SKIP
    {keys}
    """


def run_doc(number, outputs, key, keys):
    """Give a table script's ``run`` the docstring every table shares: its outputs
    (``table<number>.md``, ``.json`` and the figures named in ``outputs``) and the keys of
    ``report[key]``."""
    names = [f"table{number}.md", f"table{number}.json"] + [f"table{number}_{o}.png"
                                                          for o in outputs]
    files = ", ".join(f"``{n}``" for n in names[:-1]) + f" and ``{names[-1]}``"

    def decorate(run):
        summary = textwrap.fill(f"Run Table {number}; writes {files} under ``out`` and returns "
                                "the report.", 88, subsequent_indent="    ")
        run.__doc__ = _RUN_DOC.format(summary=summary, number=number, key=key, keys=sorted(keys))
        return run

    return decorate


#: the basis chosen on validation (:func:`select_basis`, Tables 1, 2 and 5): the candidate
#: sizes, the most passes over the unlabelled images and the maxent C candidates; and its
#: quick version
BASIS_SELECTION = dict(n_pca_fit=50000, n_unlabelled=50000, n_components=(256, 512, 1024),
                       epochs=3, C=MAXENT_C)
QUICK_BASIS_SELECTION = dict(n_pca_fit=5000, n_unlabelled=2000, n_components=(16, 32), epochs=2,
                             C=MAXENT_C)


def selected_basis(data_dir, out, *, quick, seed, progress):
    """The basis Tables 1, 2 and 5 share: MNIST in the PCA space (:func:`load_mnist_space`)
    and :func:`select_basis` at :data:`BASIS_SELECTION` (or its quick version) with the
    validation split of :data:`GRID`, cached under ``<out>/cache`` (the three tables run
    with the same ``out`` and ``seed`` learn it once). Returns ``(cfg, space, data, B,
    selection record, seconds)``, ``cfg`` the basis settings with the ``grid``."""
    cfg = dict(QUICK_BASIS_SELECTION if quick else BASIS_SELECTION,
               grid=QUICK_GRID if quick else GRID)
    timer = Timer()
    space, data = load_mnist_space(data_dir, n_pca_fit=cfg["n_pca_fit"], seed=seed,
                                   progress=progress)
    B, selection, _ = select_basis(data, space, cfg, cfg["grid"], seed=seed, progress=progress,
                                   cache_dir=output_dir(out) / "cache")
    return cfg, space, data, B, selection, timer.elapsed()


def default_data_dir():
    """``$STREAMSC_DATA`` if set (and not empty), else ``../shared/data`` from the repository
    root (the folder next to the repository)."""
    env = os.environ.get("STREAMSC_DATA")
    return env if env else str(Path(__file__).resolve().parents[2].parent / "shared" / "data")


def _parser(prog, description):
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--quick", action="store_true",
                        help="tiny subsets (a smoke test, same code path)")
    parser.add_argument("--data-dir", default=None,
                        help="data directory holding mnist/, ocr_letters/, movie_scale/ "
                             "(default: $STREAMSC_DATA, else ../shared/data)")
    parser.add_argument("--out", default="reproduce-out",
                        help="folder for the tables, JSON and plots (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return parser


def _run_one(name, module, args):
    data_dir = args.data_dir if args.data_dir else default_data_dir()
    report = module.run(data_dir, args.out, quick=args.quick, seed=args.seed,
                        progress=not args.no_progress)
    out = Path(args.out)
    print("")
    print((out / f"{name}.md").read_text())
    print(f"wrote {args.out}/{name}.md, {args.out}/{name}.json and plots "
          f"({report['compute']['wall_seconds']} s)")
    return report


def main(module, argv=None):
    """The command line of one table's script (``module`` is the table's module): parse
    ``argv``, run the table, print its markdown and the files written. Returns 0."""
    name = Path(module.__file__).stem
    description = (module.__doc__ or name).split("\n\n")[0]
    args = _parser(f"python demos/paper/{name}.py", description).parse_args(argv)
    _run_one(name, module, args)
    return 0


def main_all(argv=None):
    """The command line of ``demos/reproduce.py``: the tables named (default: all of
    :data:`TABLES`), one after the other, with the same options as each table's script."""
    import importlib

    parser = _parser("python demos/reproduce.py",
                     "Reproduce the paper's tables on the real data (see docs/results.md).")
    parser.add_argument("tables", nargs="*", metavar="table",
                        help=f"tables to run, among {', '.join(TABLES)} (default: all)")
    args = parser.parse_args(argv)
    unknown = [t for t in args.tables if t not in TABLES]
    if unknown:
        parser.error(f"unknown table(s) {', '.join(unknown)}: choose among {', '.join(TABLES)}")
    for name in args.tables or TABLES:
        _run_one(name, importlib.import_module(name), args)
    return 0
