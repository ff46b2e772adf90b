"""Table 5: transfer from MNIST digits to handwritten letters (Section 6.3.2).

Protocol: Taskar's 16x8 letters are padded and scaled to 28x28
(:func:`streamsc.datasets.load_ocr_letters` with ``framing="mnist"``), projected on the MNIST
PCA basis (180-D, the same scaling as the digits) and coded with Table 2's basis, learned on
all 50,000 unlabelled MNIST training digits by online L1 sparse coding, its size and passes
chosen on MNIST validation (:func:`common.selected_basis`; run with Table 2's ``--out`` it is
read from the cache). Letters of folds 0-6 form the labelled pool, fold 7 the validation
set, folds 8-9 the test set (:func:`streamsc.datasets.ocr_letters_split`). For every labelled
subset size (nested prefixes of one random permutation of the pool) a maxent head
(scikit-learn ``LogisticRegression``, standardised features, C chosen among
:data:`common.MAXENT_C` on the validation letters) is trained on: the raw 784 pixels; the
180-D PCA projection; the L1 codes and the KL codes on the MNIST basis. For **KL + backprop**
the MNIST basis keeps adapting as the labelled letters arrive
(:class:`streamsc.SparseCodingClassifier`, ``gradient="implicit"``, one pass over the whole
subset); the subset is then recoded with the adapted basis and the head refitted (C chosen
likewise). Accuracy on the test letters.
"""

import sys

import numpy as np

import common  # demos/paper/common.py: a script's folder is on sys.path

__all__ = ["run", "PAPER"]

#: the paper's Table 5 (accuracy, %)
PAPER = {
    "sizes": [100, 500, 1000, 5000, 20000],
    "Raw": [44.3, 60.4, 66.3, 75.1, 79.3],
    "PCA": [46.9, 61.2, 66.7, 76.0, 79.7],
    "L1": [44.0, 63.7, 69.5, 78.9, 83.3],
    "KL": [49.4, 69.2, 75.0, 82.5, 86.0],
    "KL + backprop": [50.7, 69.9, 76.4, 84.2, 89.1],
}

#: the sizes of the run (the basis: :func:`common.selected_basis`, Table 2's); ``None``: all
#: the letters of the folds
FULL = dict(sizes=[100, 500, 1000, 5000, 20000], n_test=None, n_val=None, bp_epochs=1,
            bp_max_labels=None, framing="mnist")
QUICK = dict(sizes=[50, 200], n_test=300, n_val=200, bp_epochs=1, bp_max_labels=None,
             framing="mnist")

METHODS = ["Raw", "PCA", "L1", "KL", "KL + backprop"]


@common.run_doc(5, ['atoms', 'figure1', 'curves'], 'accuracy',
                ['KL', 'KL + backprop', 'KL + backprop (streamed head)', 'L1', 'PCA', 'Raw'])
def run(data_dir=None, out="reproduce-out", *, quick=False, seed=0, progress=True):
    from streamsc import datasets

    timer = common.Timer()
    basis_cfg, space, data, B, selection, t_basis = common.selected_basis(
        data_dir, out, quick=quick, seed=seed, progress=progress)
    cfg = dict(basis_cfg, **(QUICK if quick else FULL))
    k = B.shape[1]
    # lambda, p and the backprop step: chosen on MNIST's validation digits, as in Table 2
    prm, grid, grid_seconds = common.choose_on_validation(
        data, space, B, cfg["grid"], seed=seed, progress=progress,
        cache_dir=common.output_dir(out) / "cache")
    del data
    p = prm["p_factor"] / k
    X, y, fold, _ = datasets.load_ocr_letters(data_dir, size=28, framing=cfg["framing"])
    pool, val, test = datasets.ocr_letters_split(fold)
    rng = np.random.default_rng(seed + 5)
    n_max = max(cfg["sizes"])
    tr = rng.permutation(pool)[:n_max]
    te, va = (np.sort(rng.choice(rows, rows.size if n is None else min(n, rows.size),
                                 replace=False))
              for rows, n in ((test, cfg["n_test"]), (val, cfg["n_val"])))
    Z_tr, Z_te, Z_va = (space.transform(X[rows]) for rows in (tr, te, va))
    y_tr, y_te, y_va = y[tr], y[te], y[va]
    feats = {"Raw": (X[tr], X[te], X[va]), "PCA": (Z_tr, Z_te, Z_va)}
    for name, kw in (("L1", dict(prior="l1", lam=prm["lam_l1"])),
                     ("KL", dict(prior="kl", lam=prm["lam_kl"], p=p))):
        feats[name] = tuple(common.encode_rows(Z, B, progress=progress,
                                               desc=f"{name} codes, {what}", **kw)
                            for Z, what in ((Z_tr, "letters"), (Z_te, "test"),
                                            (Z_va, "validation")))
    pred, chosen_C, _ = common.maxent_by_size(cfg["sizes"], feats, y_tr, y_te, y_va, cfg["C"],
                                              progress=progress)
    bp_pred, chosen_C["KL + backprop"], bp_seconds, B_last = common.backprop_by_size(
        cfg["sizes"], Z_tr, y_tr, Z_te, Z_va, y_va, B, prm, cfg, seed=seed, progress=progress)
    pred.update(bp_pred)
    acc = {n: [float(np.mean(q == y_te)) for q in v] for n, v in pred.items()}
    return _write(out, cfg, prm, grid, selection, chosen_C, acc, feats, space, B, B_last,
                  quick, seed, t_basis, grid_seconds, bp_seconds, timer)


def _write(out, cfg, prm, grid, selection, chosen_C, acc, feats, space, B, B_last, quick,
           seed, t_basis, grid_seconds, bp_seconds, timer):
    out = common.output_dir(out)
    sizes = cfg["sizes"]
    n_test, n_val = len(feats["PCA"][1]), len(feats["PCA"][2])
    g = cfg["grid"]
    common.plot_atoms(space.back_project(B), out / "table5_atoms.png",
                      f"MNIST basis ({B.shape[1]} atoms), back-projected")
    common.plot_atoms(space.back_project(B_last), out / "table5_atoms_backprop.png",
                      f"the MNIST basis after KL + backprop on {sizes[-1]} letters")
    profiles = {n: common.mean_sorted_profile(feats[n][1]) for n in ("L1", "KL")}
    common.plot_profile(profiles, out / "table5_figure1.png",
                        f"Figure 1 on letters: mean sorted |w|/max|w|, {n_test} letters")
    pct = {n: [100 * a for a in v] for n, v in acc.items()}
    common.plot_curves(sizes, {n: pct[n] for n in METHODS}, out / "table5_curves.png",
                       "test accuracy (%)", "letters: accuracy against labels", paper=PAPER)
    lines = [f"Table 5 — accuracy (%) on {n_test} test letters (folds 8-9)"
             + (" (QUICK MODE: smoke-test sizes)" if quick else ""), "",
             "| labels | " + " | ".join(f"{m} ours / paper" for m in METHODS)
             + " | KL + backprop (streamed head) |",
             "| --- |" + " --- |" * (len(METHODS) + 1)]
    for i, s in enumerate(sizes):
        cells = []
        for m in METHODS:
            paper = (f"{PAPER[m][PAPER['sizes'].index(s)]:.1f}" if s in PAPER["sizes"]
                     else "—")
            cells.append(f"{pct[m][i]:.1f} / {paper}")
        cells.append(f"{pct['KL + backprop (streamed head)'][i]:.1f}")
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    lines += ["", f"Maxent C chosen on {n_val} validation letters (fold 7) per size: "
              + "; ".join(f"{n} {chosen_C[n]}" for n in chosen_C) + "."]
    report = {
        "table": "table5",
        "quick": quick,
        "sizes": sizes,
        "accuracy": acc,
        "paper_percent": PAPER,
        "chosen": {"lam_l1": prm["lam_l1"], "lam_kl": prm["lam_kl"],
                   "p": f"{prm['p_factor']}/k", "bp_learning_rate": prm["bp_learning_rate"]},
        "chosen_C": chosen_C,
        "basis_selection": selection,
        "validation_grid": grid,
        "protocol": {
            "letters": f"load_ocr_letters(size=28, framing={cfg['framing']!r}); pool = folds "
                       f"0-6, validation = fold 7 ({n_val} letters), test = folds 8-9 "
                       "(ocr_letters_split); labelled subsets are nested prefixes of one "
                       "random permutation of the pool",
            "input": "letters projected on the MNIST PCA basis (180-D, fitted on the first "
                     f"{cfg['n_pca_fit']} MNIST training images) and divided by the MNIST "
                     f"mean training norm {space.scale:.4f}",
            "basis": f"Table 2's: {selection['n_components']} atoms, "
                     f"{selection['epochs']} pass(es) over {cfg['n_unlabelled']} unlabelled "
                     f"MNIST training digits by online L1 sparse coding (signed, "
                     f"lam={prm['basis_lam']}), size among {list(cfg['n_components'])} and "
                     f"passes 1 to {cfg['epochs']} chosen on MNIST validation "
                     "(common.select_basis)",
            "codes": f"signed L1 lam={prm['lam_l1']}; signed KL lam={prm['lam_kl']}, "
                     f"p={prm['p_factor']}/k",
            "validation": "lam_l1, lam_kl, p and the KL + backprop basis step chosen on "
                          "MNIST's validation digits by the procedure and grid of Table 2 "
                          f"(same seed, same choices; {g['train']} labelled training "
                          f"digits, {g['val']} validation digits), not on letters",
            "heads": "Raw, PCA, L1, KL: sklearn LogisticRegression(lbfgs, max_iter=1000) on "
                     f"standardised features, C among {list(cfg['C'])} chosen at every size "
                     "on the validation letters (chosen_C). KL + backprop: "
                     "SparseCodingClassifier("
                     f"gradient='implicit', learning_rate={prm['head_learning_rate']}, "
                     f"backprop_weight={prm['backprop_weight']}) with a KL SparseCoder "
                     f"(learning_rate={prm['bp_learning_rate']}) started from the MNIST basis, "
                     "one head-only pass (basis fixed) then "
                     f"{cfg['bp_epochs']} backprop pass(es) over the labelled letters; the "
                     "adapted basis recodes them and a LogisticRegression is refitted (C "
                     "chosen likewise)",
            "test_letters": n_test,
            "seed": seed,
            "deviations": [
                f"{n_test} test letters: folds 8-9 (the paper does not say which letters it "
                "tested on)",
                f"basis size chosen on MNIST validation among {list(cfg['n_components'])} "
                "atoms (the paper does not state its basis size)",
                "lambda, p and the backprop step chosen on MNIST digits (as in Table 2), "
                "not on letters",
                common.BACKPROP_DEVIATION,
            ],
        },
    }
    return common.finish_backprop_table(out, "table5", lines, report, prm,
                                        (timer, t_basis, grid_seconds, bp_seconds),
                                        "MNIST validation (as Table 2)")


if __name__ == "__main__":
    sys.exit(common.main(sys.modules[__name__]))
