"""``demos/digits.py``, the README's main job: ``python demos/digits.py --quick`` end to end
as a file in a fresh interpreter (the table, the JSON results and the two pictures), its
help and version, and bad options rejected with a clear message before any work is done.

The quick demo (500 digits, one unlabelled pass) runs once per module; no timing is asserted.
"""

import importlib.util
import json
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "demos" / "digits.py"
#: the rows of the demo's table, in order (the README's main job: issue 4 item 4, issue 5)
ROWS = ["raw pixels", "L1 codes", "KL codes", "KL + backprop"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: smallest size (bytes) of a real picture: a blank 1x1 PNG is under 100 bytes
MIN_PNG_BYTES = 5_000


def _script(*args, cwd=None, timeout=900):
    """``python demos/digits.py *args`` in a fresh interpreter."""
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd)


@pytest.fixture(scope="module")
def digits():
    """The script imported as a module from its path (for the in-process checks)."""
    spec = importlib.util.spec_from_file_location("demos_digits", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    # run from another folder: the script must not depend on the working directory
    result = _script("--quick", "--no-progress", "--out", str(out),
                     cwd=tmp_path_factory.mktemp("cwd"))
    return result, out


def test_demo_exit_code(quick_demo):
    result, _ = quick_demo
    assert result.returncode == 0, result.stdout + result.stderr


def _table(output):
    """``{row name: percentage}`` from the markdown table printed by the demo."""
    rows = {}
    for line in output.splitlines():
        match = re.fullmatch(r"\| (.+?) \| (\d{1,3}\.\d{2})% \|", line.strip())
        if match:
            rows[match.group(1)] = float(match.group(2))
    return rows


def test_demo_table(quick_demo):
    result, out = quick_demo
    assert "| features | progressive accuracy |" in result.stdout
    rows = _table(result.stdout)
    assert list(rows) == ROWS, result.stdout
    assert all(0.0 <= pct <= 100.0 for pct in rows.values()), rows
    assert "500 digits, 96 atoms, 1 unlabelled pass(es)" in result.stdout
    assert f"wrote {out}/digits_demo.json, {out}/digits_atoms.png" in result.stdout


def test_demo_json(quick_demo):
    result, out = quick_demo
    path = out / "digits_demo.json"
    assert path.is_file()
    report = json.loads(path.read_text())
    acc = report["progressive_accuracy"]
    assert list(acc) == ROWS
    assert all(isinstance(a, float) and 0.0 <= a <= 1.0 for a in acc.values()), acc
    assert report["n_examples"] == 500 and report["unlabelled_epochs"] == 1
    # the printed table is the JSON, rounded
    table = _table(result.stdout)
    for name in ROWS:
        assert table[name] == pytest.approx(100 * acc[name], abs=0.005 + 1e-9), name
    # better than guessing one of ten digits, for every model (quick mode: 500 digits)
    assert min(acc.values()) > 0.3, acc


def _png_size(data):
    """(width, height) from a PNG's IHDR chunk; raises AssertionError if not a PNG."""
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("name", ["digits_atoms.png", "digits_curves.png"])
def test_demo_pictures(quick_demo, name):
    _, out = quick_demo
    path = out / name
    assert path.is_file()
    data = path.read_bytes()
    assert len(data) >= MIN_PNG_BYTES, len(data)
    width, height = _png_size(data)
    assert width >= 200 and height >= 100, (width, height)
    assert data.rstrip(b"\0")[-8:-4] == b"IEND"  # the last chunk: the file is complete
    # and it decodes to an image with some contrast (not a blank canvas)
    import matplotlib.image

    pixels = matplotlib.image.imread(path)
    assert pixels.shape[:2] == (height, width)
    assert float(pixels[..., :3].std()) > 0.01


def test_help(digits, capsys):
    with pytest.raises(SystemExit) as exit_:
        digits.main(["--help"])
    assert exit_.value.code == 0
    output = capsys.readouterr().out
    assert "usage:" in output and "python demos/digits.py" in output
    for option in ("--quick", "--out", "--n-components", "--epochs", "--seed", "--no-progress"):
        assert option in output, option


def test_help_as_a_file():
    result = _script("--help", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "--quick" in result.stdout and "--n-components" in result.stdout


def test_version(digits, capsys):
    with pytest.raises(SystemExit) as exit_:
        digits.main(["--version"])
    assert exit_.value.code == 0
    assert re.search(r"\d+\.\d+", capsys.readouterr().out)


@pytest.mark.parametrize(
    "args, option",
    [
        (["--n-components", "0"], "--n-components"),
        (["--n-components", "many"], "--n-components"),
        (["--epochs", "0"], "--epochs"),
        (["--no-such-option"], "--no-such-option"),
        (["extra-argument"], "extra-argument"),
    ],
)
def test_bad_option(digits, capsys, tmp_path, args, option):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        digits.main(["--quick", "--no-progress", "--out", str(out), *args])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and option in err, err
    assert not out.exists()  # rejected before any work (or output) was done


def test_table_format(digits):
    report = {"progressive_accuracy": {"raw pixels": 0.5, "KL codes": 0.98765}}
    assert digits.table(report).splitlines() == [
        "| features | progressive accuracy |", "| --- | --- |",
        "| raw pixels | 50.00% |", "| KL codes | 98.77% |"]
