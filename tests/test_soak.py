"""CI version of the soak run: ``demos/soak.py --n 10000`` (about 20 s here, numba cache
warm) on the adversarial stream must keep every invariant (no NaN/inf, unit-norm atoms,
refused examples leave the model unchanged, flat memory) and say so in its summary line."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "demos" / "soak.py"


def test_soak_10k():
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--n", "10000", "--report-every", "2500"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "INVARIANT BROKEN" not in out
    assert len(re.findall(r"^\[\s*\d+/10000\]", out, flags=re.M)) == 4
    summary = out.strip().splitlines()[-1]
    assert summary.startswith("SOAK PASSED: n=10000"), summary
    assert "0 invariant failure(s)" in summary
    dev = float(re.search(r"max \|column norm - 1\| = (\S+)", summary).group(1))
    assert dev <= 1e-9
    assert "refused" in summary and "too large" in summary  # refusals are counted, not fatal
