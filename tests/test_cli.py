"""The ``streamsc`` command line: ``streamsc demo --quick`` end to end through click's
CliRunner (the table, the JSON results and the two pictures), the help pages, and bad
options rejected with a clear message before any work is done.

The quick demo (500 digits, one unlabelled pass) runs once per module; no timing is asserted.
"""

import json
import re
import struct

import pytest
from click.testing import CliRunner

from streamsc.cli import main

#: the rows of the demo's table, in order (the README's main job: issue 4 item 4, issue 5)
ROWS = ["raw pixels", "L1 codes", "KL codes", "KL + backprop"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: smallest size (bytes) of a real picture: a blank 1x1 PNG is under 100 bytes
MIN_PNG_BYTES = 5_000


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    result = CliRunner().invoke(
        main, ["demo", "--quick", "--no-progress", "--out", str(out)], catch_exceptions=False
    )
    return result, out


def test_demo_exit_code(quick_demo):
    result, _ = quick_demo
    assert result.exit_code == 0, result.output


def _table(output):
    """``{row name: percentage}`` from the markdown table printed by the demo."""
    rows = {}
    for line in output.splitlines():
        match = re.fullmatch(r"\| (.+?) \| (\d{1,3}\.\d{2})% \|", line.strip())
        if match:
            rows[match.group(1)] = float(match.group(2))
    return rows


def test_demo_table(quick_demo):
    result, _ = quick_demo
    assert "| features | progressive accuracy |" in result.output
    rows = _table(result.output)
    assert list(rows) == ROWS, result.output
    assert all(0.0 <= pct <= 100.0 for pct in rows.values()), rows
    assert "500 digits, 96 atoms, 1 unlabelled pass(es)" in result.output


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
    table = _table(result.output)
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


def test_help():
    runner = CliRunner()
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "demo" in result.output and "Usage:" in result.output
    result = runner.invoke(main, ["demo", "--help"])
    assert result.exit_code == 0
    for option in ("--quick", "--out", "--n-components", "--epochs", "--seed", "--no-progress"):
        assert option in result.output, option


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert re.search(r"\d+\.\d+", result.output), result.output


@pytest.mark.parametrize(
    "args, option",
    [
        (["--n-components", "0"], "--n-components"),
        (["--n-components", "many"], "--n-components"),
        (["--epochs", "0"], "--epochs"),
        (["--no-such-option"], "--no-such-option"),
    ],
)
def test_bad_option(tmp_path, args, option):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["demo", "--quick", "--no-progress", "--out", str(out),
                                       *args])
    assert result.exit_code != 0
    assert "Error" in result.output and option in result.output, result.output
    assert not out.exists()  # rejected before any work (or output) was done


def test_unknown_command():
    result = CliRunner().invoke(main, ["dmeo"])
    assert result.exit_code != 0
    assert "No such command" in result.output
