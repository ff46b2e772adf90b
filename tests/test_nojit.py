"""Run the tiny twin tests with ``NUMBA_DISABLE_JIT=1``: the kernels then execute as plain
Python, so a coverage run sees their lines (stumpy's test.sh habit), and any Python-mode
difference (e.g. integer/float semantics numba hides) shows up.

The subset is every kernel test whose name contains ``naive`` and whose id contains
``tiny`` in ``test_kernels_kl.py`` and ``test_kernels_lasso.py`` (a few seconds).
"""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def test_kernel_twins_without_jit():
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    cmd = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "naive and tiny",
        os.path.join(HERE, "test_kernels_kl.py"), os.path.join(HERE, "test_kernels_lasso.py"),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=os.path.dirname(HERE),
                         timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    # the subset is not empty (pytest exits 5 on "no tests collected", but be explicit)
    assert " passed" in out.stdout and " failed" not in out.stdout


def test_jit_really_disabled_in_the_subprocess():
    """NUMBA_DISABLE_JIT=1 turns the kernels into the plain Python functions."""
    code = (
        "from streamsc._kernels import kl, linalg\n"
        "import numba\n"
        "print(type(linalg.matvec).__name__, numba.config.DISABLE_JIT)\n"
    )
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True, timeout=120)
    assert out.stdout.split() == ["function", "1"]
