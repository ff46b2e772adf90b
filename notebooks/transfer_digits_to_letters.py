# %% [markdown]
# # Digits → letters: a basis learned on MNIST, adapted by the letters' labels
#
# The transfer experiment of Bradley & Bagnell, *Differentiable Sparse Coding* (NIPS 2008),
# Section 6.3.2 and Table 5, at a size that runs in a few minutes on two cores:
#
# 1. learn a basis **without labels** on MNIST digits, by online L1 sparse coding in the
#    180-D PCA space of the digits;
# 2. code handwritten letters (Taskar's OCR letters, padded and scaled to 28×28) with that
#    basis, and train a maxent classifier on the codes of more and more labelled letters:
#    L1 codes and KL codes on the **frozen** digit basis, against **KL + backprop**, where the
#    digit basis keeps adapting to every labelled letter (the classifier's loss is
#    back-propagated through the codes into the basis).
#
# Every step calls `streamsc`; the building blocks are those of
# `python demos/paper/table5.py` (`demos/paper/common.py`), with fewer digits, atoms,
# labels and test letters. The full-size run and an honest comparison with the paper's
# figures are in `docs/results.md`. This file is generated from
# `notebooks/transfer_digits_to_letters.py` by `notebooks/build.py`; edit the script, not
# the notebook.
#
# The data directory comes from the `STREAMSC_DATA` environment variable;
# `STREAMSC_NOTEBOOK_QUICK=1` shrinks every size (the test suite runs it that way).

# %%
import io
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from IPython.display import Image, display
from PIL import Image as PILImage

from streamsc import datasets

sys.path.insert(0, str(Path("..", "demos", "paper").resolve()))  # the paper's scripts
import common  # noqa: E402  (demos/paper/common.py)
import table5  # noqa: E402  (demos/paper/table5.py)

QUICK = os.environ.get("STREAMSC_NOTEBOOK_QUICK", "") not in ("", "0")
DATA = datasets.resolve_data_dir()  # the STREAMSC_DATA environment variable
SEED = 0
if QUICK:
    cfg = dict(n_pca_fit=1000, n_unlabelled=1000, n_components=32, sizes=[50, 150],
               n_test=200, grid=common.QUICK_GRID)
else:
    cfg = dict(n_pca_fit=20000, n_unlabelled=10000, n_components=96,
               sizes=[100, 300, 1000, 3000], n_test=2000,
               grid=dict(train=1000, val=1000, lam_l1=[0.05], lam_kl=[0.01, 0.02],
                         p_factor=[0.1, 1.0], bp_learning_rate=[0.2, 1.0]))
FIGURES = tempfile.TemporaryDirectory()
warnings.filterwarnings("ignore", message="IProgress not found")  # progress bars are off


def show(name, plot, *args, **kwargs):
    """Draw with one of the demos' plotting helpers (they write PNG files) and show the
    picture inline, reduced to 64 colours to keep the notebook small."""
    path = Path(FIGURES.name) / name
    plot(*args, path=path, **kwargs)
    png = io.BytesIO()
    PILImage.open(path).convert("RGB").quantize(colors=64).save(png, "png", optimize=True)
    display(Image(data=png.getvalue(), format="png"))


print("quick mode" if QUICK else "full mode", cfg)

# %% [markdown]
# ## 1. A basis learned on digits, without labels
#
# `common.mnist_basis` loads MNIST (the first 50,000 training images; the last 10,000 are
# the paper's validation set), fits the 180-D PCA on some of them, scales the projections to
# unit mean norm, and learns the basis with `streamsc.SparseCoder(prior="l1", signed=True)`,
# one online pass over random training digits. No label is used.

# %%
t0 = time.perf_counter()
space, mnist, B, seconds = common.mnist_basis(
    DATA, n_pca_fit=cfg["n_pca_fit"], n_unlabelled=cfg["n_unlabelled"],
    n_components=cfg["n_components"], epochs=1, seed=SEED, progress=False)
k = B.shape[1]
print(f"PCA: {space.pca.n_components_} components, {space.explained_variance:.1%} of the "
      f"pixel variance; basis {B.shape} learned in {seconds:.0f} s")

# %% [markdown]
# The atoms, back-projected from the PCA space to 28×28 pixels (red positive, blue
# negative). After a single online pass they are still noisy — pen strokes are visible in
# some, but the basis has not converged (more passes over more digits would sharpen it; see
# "What was cut" in `docs/results.md`).

# %%
show("atoms.png", common.plot_atoms, space.back_project(B),
     title=f"atoms learned on {cfg['n_unlabelled']} unlabelled digits ({min(k, 48)} of {k})",
     max_atoms=48)

# %% [markdown]
# The lambdas of the codes, the prior mean p of the KL codes and the step of the basis in
# KL + backprop are chosen on MNIST's validation digits (`common.choose_on_validation`, the
# procedure of `demos/paper/table2.py` and `table5.py`, on a smaller grid here): each
# candidate is scored by the validation error of a maxent head trained on labelled training
# digits. No letter is used to choose them.

# %%
prm, grid, seconds = common.choose_on_validation(mnist, space, B, cfg["grid"], seed=SEED,
                                                 progress=False)
for name, records in grid.items():
    print(name, "->", ", ".join(f"{r[name]}: {100 * r['val_error']:.1f}%" for r in records),
          f"(chose {prm[name]})")
print(f"validation took {seconds:.0f} s")

# %% [markdown]
# ## 2. Letters, seen through the digit basis
#
# The letters are framed as MNIST digits are (`load_ocr_letters(size=28,
# framing="mnist")`: crop to the ink, scale to 20 pixels, centre of mass in the middle),
# then projected on the *digits'* PCA. Folds 0–6 are the labelled pool, folds 8–9 the
# test letters (`ocr_letters_split`). Labelled subsets are nested prefixes of one random
# order of the pool, so "more labels" means "the same letters and then some".

# %%
X, y, fold, _ = datasets.load_ocr_letters(DATA, size=28, framing="mnist")
pool, _, test = datasets.ocr_letters_split(fold)
rng = np.random.default_rng(SEED + 5)
train = rng.permutation(pool)[: max(cfg["sizes"])]
test = np.sort(rng.choice(test, cfg["n_test"], replace=False))
Z_train, Z_test = space.transform(X[train]), space.transform(X[test])
y_train, y_test = y[train], y[test]
print(f"{len(pool)} letters in the pool, {len(train)} drawn; {cfg['n_test']} test letters; "
      f"{len(np.unique(y))} classes")
show("letters.png", common.plot_atoms, X[train[:32]].T, title="letters, framed as MNIST digits",
     max_atoms=32)

# %% [markdown]
# ## 3. Codes on the frozen basis: L1 and KL
#
# The same basis, two priors: L1 codes and KL codes with the parameters chosen above, both
# signed, computed in batch by `streamsc.encode` (through `common.encode_rows`). KL codes are
# dense, L1 codes are exactly sparse:

# %%
codes = {
    "L1": dict(prior="l1", lam=prm["lam_l1"]),
    "KL": dict(prior="kl", lam=prm["lam_kl"], p=prm["p_factor"] / k),
}
features = {}
for name, kw in codes.items():
    features[name] = (common.encode_rows(Z_train, B, progress=False, **kw),
                      common.encode_rows(Z_test, B, progress=False, **kw))
    print(f"{name} codes: {common.sparsity(features[name][1]):.0%} of the coefficients above "
          "1e-3 of the code's largest")

# %% [markdown]
# ## 4. Learning curves: frozen basis against an adapting one
#
# For every number of labelled letters `n`, a maxent head (`common.fit_maxent`:
# scikit-learn's `LogisticRegression` on standardised features) is fitted on the first `n`
# letters' L1 codes and KL codes. For **KL + backprop**, the letters stream
# through `streamsc.SparseCodingClassifier(gradient="implicit")` whose KL coder starts from the
# digit basis (`common.stream_backprop`: one pass that trains the streamed head alone, then
# one pass in which every labelled letter also moves the basis); the adapted basis recodes
# the letters and the same maxent head is refitted, so all coded rows share one head.

# %%
curves = {name: [] for name in ["L1", "KL", "KL + backprop"]}
for n in cfg["sizes"]:
    for name, (F_train, F_test) in features.items():
        head = common.fit_maxent(F_train[:n], y_train[:n])
        curves[name].append(float(np.mean(head.predict(F_test) == y_test)))
    _, B_adapted = common.stream_backprop(
        Z_train[:n], y_train[:n], B, lam=prm["lam_kl"], p=prm["p_factor"] / k,
        learning_rate=prm["bp_learning_rate"], head_learning_rate=prm["head_learning_rate"],
        backprop_weight=prm["backprop_weight"], seed=SEED, progress=False)
    W_train, W_test = (common.encode_rows(Z, B_adapted, progress=False, **codes["KL"])
                       for Z in (Z_train[:n], Z_test))
    head = common.fit_maxent(W_train, y_train[:n])
    curves["KL + backprop"].append(float(np.mean(head.predict(W_test) == y_test)))

accuracy = pd.DataFrame({name: np.round(100 * np.array(acc), 1) for name, acc in curves.items()},
                        index=pd.Index(cfg["sizes"], name="labelled letters"))
print(f"test accuracy (%) on {cfg['n_test']} letters, {time.perf_counter() - t0:.0f} s so far")
print(accuracy.to_string())
se = 100 * np.sqrt(0.25 / cfg["n_test"])  # the largest standard error of one accuracy
for better, worse in (("KL", "L1"), ("KL + backprop", "KL")):
    gain = (accuracy[better] - accuracy[worse]).round(1).tolist()
    print(f"{better} - {worse}, points: {gain}")
print(f"(one standard error of an accuracy on {cfg['n_test']} letters: at most {se:.1f} points)")

# %%
paper = {"sizes": table5.PAPER["sizes"], "KL": table5.PAPER["KL"],
         "L1": table5.PAPER["L1"], "KL + backprop": table5.PAPER["KL + backprop"]}
show("curves.png", common.plot_curves, cfg["sizes"],
     {name: list(accuracy[name]) for name in accuracy}, ylabel="test accuracy (%)",
     title="letters: accuracy against labels (dashed: the paper, Table 5)", paper=paper)

# %% [markdown]
# How far did the letters move the digit basis? The relative change of the basis after the
# largest subset, and its atoms after adaptation:

# %%
change = np.linalg.norm(B_adapted - B) / np.linalg.norm(B)
print(f"after {cfg['sizes'][-1]} labelled letters: ||B_adapted - B|| / ||B|| = {change:.3f}")
show("atoms_adapted.png", common.plot_atoms, space.back_project(B_adapted),
     title=f"the same atoms after KL + backprop on {cfg['sizes'][-1]} letters",
     max_atoms=48)

# %% [markdown]
# ## Reading the numbers
#
# What the committed (full-size) run shows, honestly:
#
# * **KL beats L1** on the same frozen basis at every number of labels, by two to three
#   points — the paper's first ordering (the paper's gap is 3.6–5.5 points).
# * **KL + backprop beats KL** at every number of labels: by about half a point at 100
#   letters (within the noise: one standard error of a single accuracy on 2,000 letters is
#   about 1.1 points) and by 2.3 to 2.7 points from 300 letters on — more than the paper's
#   gains at the neighbouring sizes (0.7–1.7 points from 500 to 5,000 letters). The digit
#   basis moves a lot to get there (the relative change printed above).
# * The validation chose the largest backprop step of its small grid (1.0; the full run of
#   `python demos/paper/table5.py`, on a wider grid and 2,000 validation digits, chose 0.5).
# * **Our accuracies are below the paper's** (the dashed lines): the basis is small (96 atoms,
#   fewer than the 180 PCA dimensions) and learned in one pass over 10,000 digits.
# * `python demos/paper/table5.py` runs the same steps at a larger size (20,000 digits for the
#   basis, up to 20,000 labels, all 10,473 test letters, plus raw pixels and PCA features);
#   `docs/results.md` reports it beside the paper's figures, with every deviation from the
#   paper's protocol.
