"""Import + first call, numba cache warm and cold, against numba's own floor.

Usage::

    python benchmarks/startup.py [--runs 10] [--cold 1]

Issue 8's target: ``import streamsc`` plus a first ``streamsc.encode`` call within 1 s with
numba's on-disk cache warm, 20 s cold. Each measurement is a fresh Python process running

    import numpy as np, streamsc; streamsc.encode(np.ones(8), np.eye(8))

timed from before the imports to after the call (wall clock and the process's CPU time).
Next to it, alternating with it run for run, the **floor**: the same process shape for a
module holding one ``@njit(cache=True)`` function ``f(x): return x.sum()`` (import numpy
and numba, load one cached kernel, call it). No numba program starts faster than the floor
on this machine: numba initialises its CPU target on the first call of any kernel (its
typing and lowering registries, its extension entry points, and a BLAS check that imports
``scipy.linalg``), cached or not. The difference is streamsc's own share: importing its
modules, creating its kernels' dispatchers and loading the kernel the call needs.

Cold runs use an empty ``NUMBA_CACHE_DIR`` (so numba compiles everything the call needs)
and are run ``--cold`` times; so, each ``--cold`` times, are issue 21's cold starts of the
river coder: ``from streamsc import SparseCoder`` then a first ``learn_one`` and
``transform_one`` of an 8-feature dict, for ``SparseCoder()`` (KL) and
``SparseCoder(prior="l1")``.

Prints every run, then the medians and the median of the per-pair differences.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402  (a sibling module, not a package)

SCRIPT = "benchmarks/startup.py"

ROOT = Path(__file__).resolve().parents[1]

TIMED = textwrap.dedent("""
    import time
    c0, t0 = time.process_time(), time.perf_counter()
    {imports}
    t1 = time.perf_counter()
    {call}
    t2, c2 = time.perf_counter(), time.process_time()
    print(t1 - t0, t2 - t1, t2 - t0, c2 - c0)
""")
STREAMSC = dict(imports="import numpy as np, streamsc",
                call="streamsc.encode(np.ones(8), np.eye(8))")
#: issue 21's cold start: import + the river coder's first learn_one + transform_one
CODER_CALL = ("x = {{f'f{{i}}': float(i % 3) for i in range(8)}}; c = SparseCoder({args}); "
              "c.learn_one(x); c.transform_one(x)")
CODERS = {
    "kl coder": dict(imports="import numpy as np; from streamsc import SparseCoder",
                     call=CODER_CALL.format(args="")),
    "l1 coder": dict(imports="import numpy as np; from streamsc import SparseCoder",
                     call=CODER_CALL.format(args="prior='l1'")),
}
FLOOR = dict(imports="import numpy as np, startup_floor",
             call="startup_floor.f(np.ones(8))")
FLOOR_MODULE = textwrap.dedent("""
    from numba import njit


    @njit(cache=True)
    def f(x):
        return x.sum()
""")


def run(kind, env, floor_dir):
    code = TIMED.format(**(STREAMSC if kind == "streamsc" else CODERS.get(kind, FLOOR)))
    env = dict(env, PYTHONPATH=os.pathsep.join(
        p for p in (str(floor_dir), str(ROOT), env.get("PYTHONPATH", "")) if p))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True, cwd=floor_dir, timeout=600)
    imp, first, total, cpu = map(float, out.stdout.split()[-4:])
    return dict(kind=kind, import_s=imp, first_call_s=first, total_s=total, cpu_s=cpu)


def main(argv=None):
    ap = _common.script_parser(__doc__.splitlines()[0], options=("json",),
                               json_help="write every run here")
    ap.add_argument("--runs", type=int, default=10, help="warm pairs (streamsc, floor)")
    ap.add_argument("--cold", type=int, default=1, help="cold-cache runs of streamsc")
    args = ap.parse_args(argv)
    _common.start(SCRIPT, argv)
    env = dict(os.environ)
    env.pop("NUMBA_CACHE_DIR", None)
    env.pop("NUMBA_DISABLE_JIT", None)
    records = []
    with tempfile.TemporaryDirectory() as floor_dir:
        Path(floor_dir, "startup_floor.py").write_text(FLOOR_MODULE)
        for kind in ("streamsc", "floor"):  # fill both caches (not timed)
            run(kind, env, floor_dir)
        print(f"\nwarm cache, {args.runs} pairs, each pair's order alternating (seconds):")
        print(f"{'run':>4}  {'streamsc total':>14}  {'(import, call, cpu)':>20}  "
              f"{'floor total':>11}  {'(import, call)':>14}")
        for i in range(args.runs):
            if i % 2 == 0:  # alternate which one goes first
                s = run("streamsc", env, floor_dir)
                f = run("floor", env, floor_dir)
            else:
                f = run("floor", env, floor_dir)
                s = run("streamsc", env, floor_dir)
            records += [s, f]
            print(f"{i + 1:>4}  {s['total_s']:>14.2f}  ({s['import_s']:.2f}, "
                  f"{s['first_call_s']:.2f}, {s['cpu_s']:.2f})  {f['total_s']:>11.2f}  "
                  f"({f['import_s']:.2f}, {f['first_call_s']:.2f})")
        cold = []
        for _ in range(args.cold):
            with tempfile.TemporaryDirectory() as cache:
                c = run("streamsc", dict(env, NUMBA_CACHE_DIR=cache), floor_dir)
            c["kind"] = "streamsc cold"
            cold.append(c)
            records.append(c)
        coder_cold = []
        for _ in range(args.cold):
            for kind in CODERS:
                with tempfile.TemporaryDirectory() as cache:
                    c = run(kind, dict(env, NUMBA_CACHE_DIR=cache), floor_dir)
                c["kind"] = kind + " cold"
                coder_cold.append(c)
                records.append(c)
    warm = [r for r in records if r["kind"] == "streamsc"]
    floor = [r for r in records if r["kind"] == "floor"]
    diffs = [s["total_s"] - f["total_s"] for s, f in zip(warm, floor)]
    med = statistics.median
    print(f"\nwarm: streamsc import + first call median {med(r['total_s'] for r in warm):.2f} s "
          f"(min {min(r['total_s'] for r in warm):.2f}, max {max(r['total_s'] for r in warm):.2f}); "
          f"numba's floor median {med(r['total_s'] for r in floor):.2f} s "
          f"(min {min(r['total_s'] for r in floor):.2f}); streamsc's own share "
          f"(pairwise difference) median {med(diffs):.2f} s")
    if cold:
        print("cold: " + ", ".join(f"{c['total_s']:.2f} s wall ({c['cpu_s']:.2f} s CPU)"
                                   for c in cold))
    print("issue 8 targets: warm <= 1 s, cold <= 20 s")
    for c in coder_cold:
        print(f"cold {c['kind'][:-5]} (import + first learn_one + transform_one): "
              f"{c['total_s']:.2f} s wall (import {c['import_s']:.2f}, calls "
              f"{c['first_call_s']:.2f}, {c['cpu_s']:.2f} s CPU)")
    if coder_cold:
        print("issue 21 targets: cold KL and L1 coder <= 4 s (goal 2 s)")
    end = _common.finish(prefix="")
    _common.write_json(args.json, SCRIPT, argv, records, machine=end,
                       settings=dict(runs=args.runs, cold=args.cold))
    return 0


if __name__ == "__main__":
    sys.exit(main())
