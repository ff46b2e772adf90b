"""Table 1: stability of L1 and KL codes on MNIST test digits (Section 6.2), and Figure 1.

Protocol: Table 2's basis, learned without labels by online L1 sparse coding over the 50,000
MNIST training images in the 180-D PCA space, its size and passes chosen on validation
(:func:`common.selected_basis`; run with Table 2's ``--out`` it is read from the cache). All
10,000 test digits are coded on that basis with the L1 prior and with the KL prior; each digit is perturbed in pixel space
(Gaussian noise of standard deviation 0.01 and 0.1 on pixels in [0, 1], not clipped; or a
translation by 0.1 or 1 pixel in a uniformly random direction, bilinear interpolation,
zero fill), projected and coded again; the figure is
:math:`\\|\\hat w(x) - \\hat w(x')\\|_1 / \\|\\hat w(x)\\|_1`, mean ± standard deviation over
the test digits used. Figure 1 (left) is drawn from the unperturbed codes.
"""

import sys

import numpy as np

import common  # demos/paper/common.py: a script's folder is on sys.path

__all__ = ["run", "PAPER"]

#: the paper's Table 1: (mean, std) per perturbation
PAPER = {
    "L1": {"gauss_0.01": (0.0283, 0.0069), "gauss_0.1": (0.285, 0.056),
           "shift_0.1": (0.138, 0.026), "shift_1": (1.211, 0.213)},
    "KL": {"gauss_0.01": (0.0172, 0.0016), "gauss_0.1": (0.164, 0.015),
           "shift_0.1": (0.070, 0.011), "shift_1": (0.671, 0.080)},
}

COLUMNS = {"gauss_0.01": "noise σ=0.01", "gauss_0.1": "noise σ=0.1",
           "shift_0.1": "shift 0.1 px", "shift_1": "shift 1 px"}

#: test digits coded (the basis: :func:`common.selected_basis`, Table 2's); ``None``: all
FULL = dict(n_test=None)
QUICK = dict(n_test=200)


def _shift(X, distance, rng):
    from scipy import ndimage

    out = np.empty_like(X)
    for i, x in enumerate(X):
        theta = rng.uniform(0, 2 * np.pi)
        out[i] = ndimage.shift(x.reshape(28, 28), (distance * np.sin(theta),
                               distance * np.cos(theta)), order=1, mode="constant").ravel()
    return out


@common.run_doc(1, ['atoms', 'figure1'], 'figures', ['KL', 'L1'])
def run(data_dir=None, out="reproduce-out", *, quick=False, seed=0, progress=True):
    prm = common.DEFAULTS
    timer = common.Timer()
    basis_cfg, space, data, B, selection, t_basis = common.selected_basis(
        data_dir, out, quick=quick, seed=seed, progress=progress)
    cfg = dict(basis_cfg, **(QUICK if quick else FULL), selection=selection)
    k = B.shape[1]
    rng = np.random.default_rng(seed + 1)
    n_all = data["X_te"].shape[0]
    cfg["n_test"] = n_all if cfg["n_test"] is None else min(cfg["n_test"], n_all)
    idx = np.sort(rng.choice(n_all, cfg["n_test"], replace=False))
    X = data["X_te"][idx]
    perturbed = {
        "gauss_0.01": X + rng.normal(0.0, 0.01, X.shape),
        "gauss_0.1": X + rng.normal(0.0, 0.1, X.shape),
        "shift_0.1": _shift(X, 0.1, rng),
        "shift_1": _shift(X, 1.0, rng),
    }
    priors = {"L1": dict(prior="l1", lam=prm["lam_l1"]),
              "KL": dict(prior="kl", lam=prm["lam_kl"], p=prm["p_factor"] / k)}
    figures, profiles, spars = {}, {}, {}
    Z = space.transform(X)
    for name, kw in priors.items():
        W0 = common.encode_rows(Z, B, progress=progress, desc=f"{name} codes, clean", **kw)
        profiles[name] = common.mean_sorted_profile(W0)
        spars[name] = common.sparsity(W0)
        figures[name] = {}
        for key, Xp in perturbed.items():
            W = common.encode_rows(space.transform(Xp), B, progress=progress,
                                   desc=f"{name} codes, {key}", **kw)
            r = common.relative_l1_change(W0, W)
            figures[name][key] = {"mean": float(r.mean()), "std": float(r.std())}

    out_paths = _write(out, figures, profiles, spars, space, B, cfg, prm, quick, seed,
                       t_basis, timer)
    return out_paths


def _write(out, figures, profiles, spars, space, B, cfg, prm, quick, seed, t_basis, timer):
    out = common.output_dir(out)
    common.plot_atoms(space.back_project(B), out / "table1_atoms.png",
                      f"MNIST basis ({B.shape[1]} atoms, L1 sparse coding), back-projected")
    common.plot_profile(profiles, out / "table1_figure1.png",
                        f"Figure 1: mean sorted |w|/max|w|, {cfg['n_test']} MNIST test digits")
    lines = [f"Table 1 — relative L1 change of the code, mean ± std over {cfg['n_test']} "
             "MNIST test digits" + (" (QUICK MODE: smoke-test sizes)" if quick else ""),
             "", "| prior | source | " + " | ".join(COLUMNS.values()) + " |",
             "| --- | --- |" + " --- |" * len(COLUMNS)]
    for name in ("L1", "KL"):
        ours = " | ".join(f"{figures[name][c]['mean']:.4f} ± {figures[name][c]['std']:.4f}"
                          for c in COLUMNS)
        paper = " | ".join(f"{PAPER[name][c][0]} ± {PAPER[name][c][1]}" for c in COLUMNS)
        lines.append(f"| {name} | ours | {ours} |")
        lines.append(f"| {name} | paper | {paper} |")
    report = {
        "table": "table1",
        "quick": quick,
        "figures": figures,
        "paper": {n: {c: {"mean": m, "std": s} for c, (m, s) in d.items()}
                  for n, d in PAPER.items()},
        "fraction_nonzero": spars,
        "figure1_profile": {n: p[:64] for n, p in profiles.items()},
        "protocol": {
            "input": "MNIST pixels /255, PCA to 180-D (fitted on the first "
                     f"{cfg['n_pca_fit']} training images, not whitened), divided by the "
                     f"mean training norm {space.scale:.4f}",
            "basis": f"Table 2's: {B.shape[1]} atoms, {cfg['selection']['epochs']} pass(es) "
                     f"of online L1 sparse coding (SparseCoder, signed, lam="
                     f"{prm['basis_lam']}) over {cfg['n_unlabelled']} unlabelled training "
                     f"images, size among {list(cfg['n_components'])} and passes 1 to "
                     f"{cfg['epochs']} chosen on validation (common.select_basis)",
            "codes": f"signed L1 lam={prm['lam_l1']}; signed KL lam={prm['lam_kl']}, "
                     f"p={prm['p_factor']}/k; streamsc.encode default tol",
            "perturbations": "Gaussian noise on [0,1] pixels (not clipped); translation by "
                             "0.1 / 1 px in a uniform random direction (scipy.ndimage.shift, "
                             "order=1, zero fill)",
            "test_images": cfg["n_test"],
            "seed": seed,
            "deviations": [
                *([f"{cfg['n_test']} random test digits instead of all 10,000 (compute)"]
                  if cfg["n_test"] < 10000 else []),
                f"basis size chosen on validation among {list(cfg['n_components'])} atoms "
                "(the paper does not state its basis size)",
                *([f"basis learned on {cfg['n_unlabelled']} unlabelled images, not all "
                   "50,000"] if cfg["n_unlabelled"] < 50000 else []),
                "lambda and p fixed (not chosen on validation for this table)",
            ],
        },
        "compute": {"wall_seconds": timer.elapsed(), "basis_seconds": t_basis,
                    "machine": common.machine()},
    }
    lines += ["", f"Fraction of coefficients above 1e-3 of the code's largest: L1 "
              f"{spars['L1']:.3f}, KL {spars['KL']:.3f}.",
              f"Wall time {report['compute']['wall_seconds']} s."]
    md, js = common.write_outputs(out, "table1", "\n".join(lines), report)
    return report


if __name__ == "__main__":
    sys.exit(common.main(sys.modules[__name__]))
