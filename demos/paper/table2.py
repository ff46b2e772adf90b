"""Table 2: MNIST test error of maxent on L1, KL and KL + backprop codes (Section 6.3.1).

Protocol: MNIST's last 10,000 training images are held out for validation; pixels are
projected to 180-D by PCA; a basis is learned without labels by online L1 sparse coding over
all 50,000 images of the training pool, its size (256, 512 or 1024 atoms) and its number of
passes (1 to 3, nested) chosen by the validation error of a maxent head on its KL codes
(:func:`common.select_basis`). The coding lambdas, the KL prior mean p and the backprop
basis step are then chosen on a small grid by the validation error of a maxent head trained
on a labelled subset (:func:`common.choose_on_validation`). For every labelled subset size
(nested prefixes of one random permutation of the 50,000 training images; 1k to 50k), tested
on all 10,000 test digits:

* **L1**, **KL**: codes on the unlabelled basis, scikit-learn ``LogisticRegression``
  (multinomial, L-BFGS, standardised codes), its C chosen on the validation images among
  :data:`common.MAXENT_C` at every size;
* **KL + backprop**: :class:`streamsc.SparseCodingClassifier` with ``gradient="implicit"``
  streams the labelled subset (the basis adapts to every label through the implicit gradient
  of the code; at most ``bp_max_labels`` labels, beyond which the basis adapted on the first
  ``bp_max_labels`` serves the larger subsets); its basis then recodes the subset and a
  ``LogisticRegression`` is refitted on those codes (C chosen on validation likewise), so the
  three columns share one kind of head. The streamed model's own SGD head is reported too.

Every phase's wall time is printed as it ends and stored in the JSON. The chosen basis and
the validation choices are cached under ``<out>/cache`` (keyed by their settings): a rerun,
and Tables 1 and 5 run with the same ``--out``, do not learn them again.
"""

import sys

import numpy as np

import common  # demos/paper/common.py: a script's folder is on sys.path

__all__ = ["run", "PAPER"]

#: the paper's Table 2 (test error, %)
PAPER = {
    "sizes": [1000, 2000, 10000, 20000, 50000],
    "L1": [7.72, 6.63, 4.74, 4.16, 3.53],
    "KL": [5.87, 5.06, 3.00, 2.51, 2.21],
    "KL + backprop": [5.66, 4.46, 2.31, 1.78, 1.30],
    "KL (training set)": [0.00, 0.05, 1.01, 1.50, 1.65],
}

#: the sizes of the run (the basis: :func:`common.selected_basis`)
FULL = dict(sizes=[1000, 2000, 10000, 20000, 50000], n_test=10000, bp_epochs=1,
            bp_max_labels=10000)
QUICK = dict(sizes=[100, 300], n_test=300, bp_epochs=1, bp_max_labels=200)

#: the columns of the table, then the extra rows
FIXED = ("L1", "KL")
NAMES = ["L1", "KL", "KL + backprop", "KL + backprop (streamed head)", "KL (training set)"]


def _error(pred, y):
    return float(np.mean(pred != y))


@common.run_doc(2, ['atoms', 'figure1', 'curves'], 'test_error',
                ['KL', 'KL + backprop', 'KL + backprop (streamed head)', 'L1'])
def run(data_dir=None, out="reproduce-out", *, quick=False, seed=0, progress=True):
    timer = common.Timer()
    phases = common.Phases("table2")
    # --- the basis (size and passes, shared with Tables 1 and 5), then lambda, p and the
    # backprop step, on validation
    basis_cfg, space, data, B, selection, t_basis = common.selected_basis(
        data_dir, out, quick=quick, seed=seed, progress=progress)
    cfg = dict(basis_cfg, **(QUICK if quick else FULL))
    phases.done("data, PCA and basis selection")
    prm, grid, grid_seconds = common.choose_on_validation(
        data, space, B, cfg["grid"], seed=seed, progress=progress,
        cache_dir=common.output_dir(out) / "cache")
    phases.done("validation grid")
    _, _, Z_va, y_va = common.validation_split(data, space, cfg["grid"], seed=seed)
    kw = {"L1": dict(prior="l1", lam=prm["lam_l1"]),
          "KL": dict(prior="kl", lam=prm["lam_kl"], p=prm["p_factor"] / B.shape[1])}
    rng = np.random.default_rng(seed + 2)
    order = rng.permutation(data["X_tr"].shape[0])
    n_max = max(cfg["sizes"])
    Z_tr = space.transform(data["X_tr"][order[:n_max]])
    y_tr = data["y_tr"][order[:n_max]]
    n_test = min(cfg["n_test"], data["X_te"].shape[0])
    te = np.sort(rng.choice(data["X_te"].shape[0], n_test, replace=False))
    Z_te, y_te = space.transform(data["X_te"][te]), data["y_te"][te]

    # --- fixed-basis codes (nested subsets: code the largest once)
    feats = {name: tuple(common.encode_rows(Z, B, progress=progress,
                                            desc=f"{name} codes, {what}", **kw[name])
                         for Z, what in ((Z_tr, "labelled pool"), (Z_te, "test"),
                                         (Z_va, "validation")))
             for name in FIXED}
    phases.done("fixed-basis codes")
    pred, chosen_C, models = common.maxent_by_size(cfg["sizes"], feats, y_tr, y_te, y_va,
                                                   cfg["C"], progress=progress)
    err = {n: [_error(q, y_te) for q in pred[n]] for n in FIXED}
    err["KL (training set)"] = [_error(m.predict(feats["KL"][0][:n]), y_tr[:n])
                                for m, n in zip(models["KL"], cfg["sizes"])]
    phases.done("maxent on fixed codes")

    # --- KL + backprop: one adapted basis per subset, up to bp_max_labels streamed labels
    bp_pred, chosen_C["KL + backprop"], bp_seconds, B_last = common.backprop_by_size(
        cfg["sizes"], Z_tr, y_tr, Z_te, Z_va, y_va, B, prm, cfg, seed=seed, progress=progress)
    err.update({n: [_error(q, y_te) for q in v] for n, v in bp_pred.items()})
    phases.done("KL + backprop")
    W_te = {n: f[1] for n, f in feats.items()}
    return _write(out, cfg, prm, grid, selection, chosen_C, err, W_te, space, B, B_last, quick,
                  seed, (timer, t_basis, grid_seconds, bp_seconds), phases)


def _write(out, cfg, prm, grid, selection, chosen_C, err, W_te, space, B, B_last, quick,
           seed, timing, phases):
    out = common.output_dir(out)
    sizes = cfg["sizes"]
    g = cfg["grid"]
    cap = cfg["bp_max_labels"]
    k, passes = selection["n_components"], selection["epochs"]
    common.plot_atoms(space.back_project(B), out / "table2_atoms.png",
                      f"MNIST basis ({k} atoms, L1 sparse coding), back-projected")
    common.plot_atoms(space.back_project(B_last), out / "table2_atoms_backprop.png",
                      f"the same basis after KL + backprop on {min(sizes[-1], cap)} labels")
    profiles = {n: common.mean_sorted_profile(W_te[n]) for n in FIXED}
    common.plot_profile(profiles, out / "table2_figure1.png",
                        f"Figure 1: mean sorted |w|/max|w|, {cfg['n_test']} MNIST test digits")
    pct = {n: [100 * e for e in v] for n, v in err.items()}
    common.plot_curves(sizes, {n: pct[n] for n in ("L1", "KL", "KL + backprop")},
                       out / "table2_curves.png", "test error (%)",
                       "MNIST maxent test error against labels", paper=PAPER)
    paper_at = {n: {s: PAPER[n][PAPER["sizes"].index(s)] for s in sizes if s in PAPER["sizes"]}
                for n in ("L1", "KL", "KL + backprop", "KL (training set)")}
    lines = [f"Table 2 — MNIST test error (%) on {cfg['n_test']} test digits"
             + (" (QUICK MODE: smoke-test sizes)" if quick else ""), "",
             "| labels | " + " | ".join(str(s) for s in sizes) + " |",
             "| --- |" + " --- |" * len(sizes)]
    for n in NAMES:
        lines.append(f"| {n} (ours) | " + " | ".join(f"{v:.2f}" for v in pct[n]) + " |")
        if n in paper_at:
            lines.append(f"| {n} (paper) | " + " | ".join(
                f"{paper_at[n][s]:.2f}" if s in paper_at[n] else "—" for s in sizes) + " |")
    lines += ["", f"Basis chosen on validation: {k} atoms, {passes} pass(es) over "
              f"{cfg['n_unlabelled']} unlabelled digits (candidates {list(cfg['n_components'])}"
              f" atoms, 1 to {cfg['epochs']} passes). Maxent C chosen on validation per size: "
              + "; ".join(f"{n} {chosen_C[n]}" for n in chosen_C) + "."]
    report = {
        "table": "table2",
        "quick": quick,
        "sizes": sizes,
        "test_error": {n: v for n, v in err.items() if n != "KL (training set)"},
        "train_error_kl": err["KL (training set)"],
        "paper_percent": PAPER,
        "chosen": {"lam_l1": prm["lam_l1"], "lam_kl": prm["lam_kl"],
                   "p": f"{prm['p_factor']}/k", "bp_learning_rate": prm["bp_learning_rate"]},
        "chosen_C": chosen_C,
        "basis_selection": selection,
        "validation_grid": grid,
        "protocol": {
            "split": "MNIST train: first 50,000 training pool, last 10,000 validation",
            "input": f"pixels /255, PCA to 180-D fitted on the first {cfg['n_pca_fit']} "
                     f"training images, divided by the mean training norm {space.scale:.4f}",
            "basis": f"online L1 sparse coding (SparseCoder(prior='l1', lam="
                     f"{prm['basis_lam']}, signed=True), its default basis update, Mairal et "
                     "al.'s online surrogate, which no learning_rate enters) over "
                     f"{cfg['n_unlabelled']} unlabelled training images, without labels; "
                     f"size among {list(cfg['n_components'])} atoms and 1 to {cfg['epochs']} "
                     "passes (nested: scored after every pass) chosen by the validation error "
                     f"of maxent (C among {list(cfg['C'])}) on signed KL codes (lam="
                     f"{common.DEFAULTS['lam_kl']}, p={common.DEFAULTS['p_factor']}/k) trained on the grid's {g['train']} "
                     f"labelled images, error on its {g['val']} validation images: chosen "
                     f"{k} atoms, {passes} pass(es)",
            "validation": f"maxent (C=1) trained on {g['train']} random labelled training "
                          f"codes, error on {g['val']} random validation images; in turn "
                          f"lam_l1 in {g['lam_l1']}; lam_kl in {g['lam_kl']} at p=1/k; p in "
                          f"{g['p_factor']}/k at the best lam_kl; the KL + backprop basis "
                          f"step in {g['bp_learning_rate']} (one head-only and one backprop "
                          "pass over the same labelled images, head refitted on the recoded "
                          "images) at the chosen lam_kl and p",
            "heads": f"sklearn LogisticRegression(lbfgs, max_iter=1000) on standardised codes, "
                     f"C chosen among {list(cfg['C'])} at every size by the error on the "
                     f"{g['val']} validation images (chosen_C). L1, KL: fixed codes on the "
                     "unlabelled basis. KL + backprop: SparseCodingClassifier("
                     f"gradient='implicit', learning_rate={prm['head_learning_rate']}, "
                     f"backprop_weight={prm['backprop_weight']}) with a KL SparseCoder "
                     f"(learning_rate={prm['bp_learning_rate']}) started from the L1 basis, "
                     "one head-only pass (basis fixed) then "
                     f"{cfg['bp_epochs']} backprop pass(es) over the labelled subset (its "
                     f"first {cap} labels if larger) in random order; "
                     "its adapted basis recodes the subset and the LogisticRegression is "
                     "refitted ('KL + backprop'); the streamed SGD head's own error is the "
                     "'streamed head' row",
            "subsets": "nested prefixes of one random permutation of the training pool",
            "test_images": cfg["n_test"],
            "seed": seed,
            "deviations": [
                *([f"{cfg['n_test']} random test digits instead of all 10,000 (compute)"]
                  if cfg["n_test"] < 10000 else []),
                *([f"label sizes {sizes} (the paper's go to 50,000; compute)"]
                  if max(sizes) < 50000 else []),
                *([f"basis learned on {cfg['n_unlabelled']} unlabelled images, not all 50,000"]
                  if cfg["n_unlabelled"] < 50000 else []),
                f"basis size chosen on validation among {list(cfg['n_components'])} atoms "
                "(the paper does not state its basis size)",
                "a small grid of lambdas, p and backprop steps, validated on a subset",
                common.BACKPROP_DEVIATION,
                *([f"KL + backprop streams at most {cap} labels (compute): for larger subsets "
                   f"the basis adapted on their first {cap} labels recodes the whole subset, "
                   "the head is refitted on all of it, and the streamed head is that of the "
                   f"{cap}-label stream"] if cap < max(sizes) else []),
            ],
        },
    }
    return common.finish_backprop_table(out, "table2", lines, report, prm, timing,
                                        "validation", phases=phases.seconds)


if __name__ == "__main__":
    sys.exit(common.main(sys.modules[__name__]))
