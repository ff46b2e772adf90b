"""The notebooks in ``notebooks/``: generated from their scripts, and still running.

* The committed ``.ipynb`` files have exactly the cells of their percent-format scripts
  (so they cannot drift from the code that is reviewed), were executed without error and
  show at least one picture.
* Every script, converted and executed in quick mode (``STREAMSC_NOTEBOOK_QUICK=1``) in a
  fresh kernel by ``notebooks/build.py``, runs without error against the real data in
  ``../shared/data`` and shows at least one PNG; skipped with a reason when the data are
  absent.
"""

import importlib.util
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat is needed (the test extra)")
pytest.importorskip("nbclient", reason="nbclient is needed (the test extra)")
pytest.importorskip("jupytext", reason="jupytext is needed (the test extra)")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
NOTEBOOKS = ROOT / "notebooks"


def _load_build():
    spec = importlib.util.spec_from_file_location("notebooks_build", NOTEBOOKS / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _load_build()
SCRIPTS = build.scripts()
NAMES = [p.stem for p in SCRIPTS]
#: the data folders each notebook reads
NEEDS = {"transfer_digits_to_letters": ("mnist", "ocr_letters"),
         "movie_ratings": ("movie_scale",)}


def _images(nb):
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
            if "image/png" in out.get("data", {})]


def _errors(nb):
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
            if out.output_type == "error"]


def test_the_two_notebooks_exist():
    assert set(NAMES) == set(NEEDS)


def test_parse_percent_format():
    text = ("# %% [markdown]\n# # Title\n#\n# Some *text*.\n\n# %%\nimport os\n\n\nx = 1\n"
            "\n# %%\n\n# %% [markdown]\n# end\n")
    assert build.parse(text) == [("markdown", "# Title\n\nSome *text*."),
                                 ("code", "import os\n\n\nx = 1"), ("markdown", "end")]


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_matches_its_script(name):
    path = NOTEBOOKS / f"{name}.ipynb"
    assert path.is_file(), f"{path} is missing: run python notebooks/build.py"
    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    expected = build.parse((NOTEBOOKS / f"{name}.py").read_text())
    assert build.cells_of(nb) == expected, (
        f"{path.name} differs from {name}.py: rebuild it with python notebooks/build.py")
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code), "not executed"
    assert not _errors(nb)
    assert _images(nb), "no picture in the committed notebook"
    # executed at full size, not in quick mode
    assert "full mode" in code[0].outputs[0]["text"]
    assert path.stat().st_size < 400_000


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_in_quick_mode(name):
    missing = [d for d in NEEDS[name] if not (DATA / d).is_dir()]
    if missing:
        pytest.skip(f"the data folders {missing} are not in {DATA}")
    pytest.importorskip("ipykernel", reason="a Python kernel (ipykernel) is needed")
    nb = build.execute(build.to_notebook(NOTEBOOKS / f"{name}.py"), data_dir=DATA, quick=True,
                       timeout=600)
    assert not _errors(nb)
    first = next(cell for cell in nb.cells if cell.cell_type == "code")
    assert "quick mode" in first.outputs[0]["text"]
    assert _images(nb), "no PNG output"
