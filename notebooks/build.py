"""Build the executed notebooks from their scripts.

The scripts ``notebooks/*.py`` (except this one) are the source of truth, in jupytext's
"percent" format: ``# %%`` starts a code cell, ``# %% [markdown]`` a markdown cell whose
lines are comments. This module reads a script with ``jupytext``, makes it an ``nbformat``
v4 notebook (stable cell ids, no jupytext metadata) and executes it with ``nbclient`` (plots
inline as PNG), so the committed ``.ipynb`` files are outputs, never edited by hand;
``tests/test_notebooks.py`` checks that their cells equal the scripts' and runs every script
in quick mode.

Usage, from the repository root (the data directory as for ``demos/paper/``)::

    python notebooks/build.py --data-dir ../shared/data            # all, full size
    python notebooks/build.py --quick --out /tmp/nb movie_ratings  # one, quick mode

Only ``jupytext``, ``nbformat`` and ``nbclient`` (and a Python kernel, ``ipykernel``) are
needed: the ``test`` extra of ``pyproject.toml``.
"""

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUICK_VAR = "STREAMSC_NOTEBOOK_QUICK"
DATA_VAR = "STREAMSC_DATA"


def scripts():
    """The notebook scripts in this folder, by name."""
    return sorted(p for p in HERE.glob("*.py") if p.name != "build.py")


def _cells(text):
    """The non-empty cells of a percent-format script, read by jupytext."""
    import jupytext

    return [cell for cell in jupytext.reads(text, fmt="py:percent").cells if cell.source]


def parse(text):
    """Cells of a percent-format script: a list of ``(kind, source)`` pairs, ``kind`` being
    ``"code"`` or ``"markdown"``; empty cells are dropped.

    >>> parse("# %% [markdown]\\n# # Title\\n#\\n# text\\n\\n# %%\\nx = 1\\n\\n")
    [('markdown', '# Title\\n\\ntext'), ('code', 'x = 1')]
    """
    return [(cell.cell_type, cell.source) for cell in _cells(text)]


def cells_of(nb):
    """``(kind, source)`` pairs of a notebook's cells, comparable with :func:`parse`."""
    return [(cell.cell_type, cell.source) for cell in nb.cells]


def to_notebook(script):
    """An unexecuted ``nbformat`` v4 notebook from a percent-format script."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    make = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell}
    nb.cells = [make[kind](source) for kind, source in parse(Path(script).read_text())]
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i}"  # stable ids: rebuilding changes only the outputs
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    return nb


def execute(nb, *, data_dir, quick, timeout=1800):
    """Execute ``nb`` in a fresh Python kernel started in this folder, with the data
    directory and the quick switch in the kernel's environment. Raises
    ``nbclient.exceptions.CellExecutionError`` if a cell fails. Returns ``nb``."""
    from nbclient import NotebookClient

    env = dict(os.environ)
    env[DATA_VAR] = str(Path(data_dir).resolve())
    env[QUICK_VAR] = "1" if quick else "0"
    env.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(HERE)}})
    client.execute(env=env)
    nb.metadata["language_info"] = {"name": "python"}  # no interpreter version in the file
    return nb


def build(script, out_dir, *, data_dir, quick=False):
    """Convert, execute and write ``<out_dir>/<name>.ipynb``; returns its path."""
    import nbformat

    nb = execute(to_notebook(script), data_dir=data_dir, quick=quick)
    out = Path(out_dir) / (Path(script).stem + ".ipynb")
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(out))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="scripts to build (default: all)")
    parser.add_argument("--data-dir", default=os.environ.get(DATA_VAR),
                        help=f"data directory (default: ${DATA_VAR})")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    parser.add_argument("--out", default=str(HERE), help="output folder (default: notebooks/)")
    args = parser.parse_args(argv)
    if not args.data_dir:
        parser.error(f"pass --data-dir or set {DATA_VAR}")
    chosen = [p for p in scripts() if not args.names or p.stem in args.names]
    unknown = set(args.names) - {p.stem for p in chosen}
    if unknown:
        parser.error(f"no notebook script named {sorted(unknown)} in {HERE}")
    for script in chosen:
        t0 = time.perf_counter()
        path = build(script, args.out, data_dir=args.data_dir, quick=args.quick)
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB, "
              f"{time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
