"""Quick mode of every reproduced table, each script run as a file in a fresh interpreter
(``python demos/paper/tableN.py --quick``), and ``demos/reproduce.py``'s command line.

At these sizes only what is stable is asserted: the files exist, the JSON has its schema,
every figure is finite, accuracies and error rates are in [0, 1], and L1 codes are sparser
than KL codes (KL codes are never exactly zero). The full runs are in docs/results.md.
"""

import json
import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "demos" / "paper"
DATA = ROOT.parent / "shared" / "data"

needs_data = pytest.mark.skipif(
    not (DATA / "mnist").is_dir() or not (DATA / "ocr_letters").is_dir(),
    reason=f"the MNIST / OCR letters data are not at {DATA}",
)


def _script(path, *args, timeout=1800):
    """``python <path> *args`` in a fresh interpreter, from another folder than the repo."""
    return subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=str(ROOT.parent))


def _run(table, out):
    result = _script(PAPER / f"{table}.py", "--quick", "--data-dir", str(DATA), "--out",
                     str(out), "--no-progress")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"wrote {out}/{table}.md" in result.stdout
    # the table printed is the file written
    assert (out / f"{table}.md").read_text().strip() in result.stdout
    report = json.loads((out / f"{table}.json").read_text())
    assert report["table"] == table and report["quick"] is True
    assert (out / f"{table}.md").read_text().startswith("Table")
    assert report["protocol"]["deviations"]
    compute = report["compute"]
    assert compute["wall_seconds"] > 0 and compute["machine"]["cpu_count"] >= 1
    return report


def _assert_pictures(out, table, *names):
    """``<out>/<table>_<name>.png`` were written, not empty, for every name."""
    for name in names:
        assert (out / f"{table}_{name}.png").stat().st_size > 0, name


def _finite(values):
    values = np.asarray(values, dtype=float)
    return values.size > 0 and bool(np.all(np.isfinite(values)))


@needs_data
def test_table1_quick(tmp_path):
    report = _run("table1", tmp_path)
    _assert_pictures(tmp_path, "table1", "atoms", "figure1")
    figures = report["figures"]
    assert set(figures) == {"L1", "KL"}
    for name in ("L1", "KL"):
        assert set(figures[name]) == {"gauss_0.01", "gauss_0.1", "shift_0.1", "shift_1"}
        for cell in figures[name].values():
            assert _finite([cell["mean"], cell["std"]])
            assert cell["mean"] > 0 and cell["std"] >= 0
        # more noise moves the code more (sigma x10)
        assert figures[name]["gauss_0.1"]["mean"] > figures[name]["gauss_0.01"]["mean"]
    # L1 codes sparser than KL codes (KL is never exactly zero)
    assert report["fraction_nonzero"]["L1"] < report["fraction_nonzero"]["KL"]
    for prof in report["figure1_profile"].values():
        assert math.isclose(prof[0], 1.0) and np.all(np.diff(prof) <= 1e-12)


@pytest.fixture(scope="module")
def table2_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("table2")
    return _run("table2", out), out


@pytest.fixture(scope="module")
def table5_report(table2_report):
    """Table 5 run with Table 2's ``--out``: it reads Table 2's basis and choices back."""
    out = table2_report[1]
    return _run("table5", out), out


@needs_data
def test_table2_quick(table2_report):
    report, tmp_path = table2_report
    _assert_pictures(tmp_path, "table2", "atoms", "figure1", "curves")
    sizes = report["sizes"]
    errors = report["test_error"]
    assert set(errors) == {"L1", "KL", "KL + backprop", "KL + backprop (streamed head)"}
    for values in list(errors.values()) + [report["train_error_kl"]]:
        assert len(values) == len(sizes) and _finite(values)
        assert all(0.0 <= v <= 1.0 for v in values)
    # far better than chance (90% error) even at these sizes
    assert max(errors["L1"] + errors["KL"]) < 0.5
    assert report["chosen"]["lam_l1"] > 0 and report["chosen"]["lam_kl"] > 0
    # every candidate of the validation grid was scored, and the choice is the best one
    grid = report["validation_grid"]
    steps = grid["bp_learning_rate"]
    assert [r["bp_learning_rate"] for r in steps] == [0.2, 0.5]
    assert all(0.0 <= r["val_error"] <= 1.0 for name in grid for r in grid[name])
    best = min(steps, key=lambda r: r["val_error"])["bp_learning_rate"]
    assert report["chosen"]["bp_learning_rate"] == best
    # the basis: every candidate size scored after every pass, the best one kept
    selection = report["basis_selection"]
    cands = selection["candidates"]
    assert [(c["n_components"], c["epochs"]) for c in cands] == [(16, 1), (16, 2), (32, 1),
                                                                   (32, 2)]
    assert all(0.0 <= c["val_error"] <= 1.0 and c["C"] in (0.01, 0.1, 1.0) for c in cands)
    best = min(cands, key=lambda c: c["val_error"])
    assert (selection["n_components"], selection["epochs"]) == (best["n_components"],
                                                                best["epochs"])
    assert len(list((tmp_path / "cache").glob("basis-*.npz"))) == 1
    # the maxent C chosen on validation at every size, for every refitted head
    assert set(report["chosen_C"]) == {"L1", "KL", "KL + backprop"}
    for values in report["chosen_C"].values():
        assert len(values) == len(sizes) and all(C in (0.01, 0.1, 1.0) for C in values)
    assert set(report["compute"]["phase_seconds"]) == {
        "data, PCA and basis selection", "validation grid", "fixed-basis codes",
        "maxent on fixed codes", "KL + backprop"}


@needs_data
def test_table5_quick(table5_report):
    report, tmp_path = table5_report
    _assert_pictures(tmp_path, "table5", "atoms", "figure1", "curves")
    acc = report["accuracy"]
    assert set(acc) == {"Raw", "PCA", "L1", "KL", "KL + backprop",
                        "KL + backprop (streamed head)"}
    for values in acc.values():
        assert len(values) == len(report["sizes"]) and _finite(values)
        assert all(0.0 <= v <= 1.0 for v in values)
    # 26 classes: chance is 3.8%
    assert min(acc["KL"]) > 0.1


@needs_data
def test_table5_validates_as_table2(table2_report, table5_report):
    """Table 5 codes the letters with Table 2's basis and its choices on MNIST validation,
    read back from the cache Table 2 wrote (one basis file, one validation file)."""
    (t2, out), t5 = table2_report, table5_report[0]
    assert t5["basis_selection"] == t2["basis_selection"]
    assert t5["chosen"] == t2["chosen"] and t5["validation_grid"] == t2["validation_grid"]
    assert len(list((out / "cache").glob("basis-*.npz"))) == 1
    assert len(list((out / "cache").glob("validation-*.json"))) == 1
    # the maxent C chosen on the validation letters at every size, for every head
    assert set(t5["chosen_C"]) == {"Raw", "PCA", "L1", "KL", "KL + backprop"}
    for values in t5["chosen_C"].values():
        assert len(values) == len(t5["sizes"]) and all(C in (0.01, 0.1, 1.0) for C in values)


def test_select_basis_is_cached(tmp_path):
    """``common.select_basis`` scores every size after every pass, keeps the best, and
    reads its result back from the cache folder on a second call."""
    common = _common()
    rng = np.random.default_rng(0)
    data = dict(X_tr=rng.uniform(size=(120, 784)), y_tr=rng.integers(0, 3, 120),
                X_va=rng.uniform(size=(40, 784)), y_va=rng.integers(0, 3, 40))
    space = common.MnistSpace(data["X_tr"], n_components=10)
    cfg = dict(n_pca_fit=120, n_unlabelled=100, n_components=(4, 6), epochs=2, C=(1.0,))
    grid = dict(train=30, val=20)
    B, record, _ = common.select_basis(data, space, cfg, grid, progress=False,
                                       cache_dir=tmp_path)
    assert len(record["candidates"]) == 4
    assert B.shape == (10, record["n_components"])
    B2, record2, _ = common.select_basis(data, space, cfg, grid, progress=False,
                                         cache_dir=tmp_path)
    assert np.array_equal(B, B2) and record2 == record
    assert len(list(tmp_path.glob("basis-*.npz"))) == 1


@pytest.mark.skipif(not (DATA / "movie_scale").is_dir(),
                    reason=f"the movie scale data are not at {DATA}")
@needs_data
def test_table6_quick(tmp_path):
    report = _run("table6", tmp_path)
    _assert_pictures(tmp_path, "table6", "r2", "scatter", "figure1")
    scores = report["r2"]
    assert set(scores) == {"16D KL", "32D KL", "32D KL + backprop", "L2 regression",
                           "KL + backprop (streamed head)"}
    assert _finite(list(scores.values())) and all(v <= 1.0 for v in scores.values())
    for values in report["r2_per_fold"].values():
        assert len(values) == 2 and _finite(values)
    # lambda, then the backprop step, chosen on validation: every candidate scored, the best
    grid = report["validation_grid"]
    assert [r["lam"] for r in grid["lam"]] == [0.2, 0.05]
    assert [r["bp_learning_rate"] for r in grid["bp_learning_rate"]] == [0.2, 1.0]
    for name in ("lam", "bp_learning_rate"):
        best = max(grid[name], key=lambda r: r["val_r2"])[name]
        assert report["chosen"][name] == best


# ------------------------------------------------------------------------------------------
# the command lines (no data needed)


@pytest.mark.parametrize("table", ["table1", "table2", "table5", "table6"])
def test_table_help(table):
    result = _script(PAPER / f"{table}.py", "--help", timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"python demos/paper/{table}.py" in result.stdout
    for option in ("--quick", "--data-dir", "--out", "--seed", "--no-progress"):
        assert option in result.stdout, option


def test_reproduce_help_lists_the_tables():
    result = _script(ROOT / "demos" / "reproduce.py", "--help", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "--quick" in result.stdout and "--data-dir" in result.stdout


def test_reproduce_rejects_an_unknown_table(tmp_path):
    out = tmp_path / "out"
    result = _script(ROOT / "demos" / "reproduce.py", "table3", "--out", str(out),
                     timeout=120)
    assert result.returncode == 2
    assert "table3" in result.stderr and "table6" in result.stderr, result.stderr
    assert not out.exists()


def test_missing_data_dir_is_reported(tmp_path):
    missing = tmp_path / "no-such-data"
    result = _script(PAPER / "table1.py", "--quick", "--no-progress", "--data-dir",
                     str(missing), "--out", str(tmp_path / "out"), timeout=300)
    assert result.returncode != 0
    assert "no-such-data" in result.stderr, result.stderr


def _common():
    """``demos/paper/common.py``, imported from its file."""
    spec = importlib.util.spec_from_file_location("demos_paper_common", PAPER / "common.py")
    common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(common)
    return common


def test_default_data_dir(monkeypatch):
    """``$STREAMSC_DATA`` when set, else ``../shared/data`` from the repository root."""
    common = _common()
    monkeypatch.setenv("STREAMSC_DATA", "/somewhere/data")
    assert common.default_data_dir() == "/somewhere/data"
    monkeypatch.setenv("STREAMSC_DATA", "")
    assert Path(common.default_data_dir()) == ROOT.parent / "shared" / "data"
    monkeypatch.delenv("STREAMSC_DATA")
    assert Path(common.default_data_dir()) == ROOT.parent / "shared" / "data"


@needs_data
def test_reproduce_runs_the_named_tables(tmp_path):
    """``demos/reproduce.py table1 --quick`` runs table1 as its own script does."""
    result = _script(ROOT / "demos" / "reproduce.py", "table1", "--quick", "--no-progress",
                     "--data-dir", str(DATA), "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"wrote {tmp_path}/table1.md" in result.stdout
    assert "table2" not in result.stdout
    report = json.loads((tmp_path / "table1.json").read_text())
    assert report["table"] == "table1" and report["quick"] is True
