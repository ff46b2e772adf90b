"""Helpers shared by the benchmark scripts in this folder.

Nothing here imports streamsc or numba, so a script can set numba's environment (for
example ``NUMBA_CACHE_DIR`` for a cold-cache run) after importing this module and before
importing streamsc.

* :func:`pin_blas` -- pin every BLAS/OpenMP pool to a number of threads (threadpoolctl);
* :func:`first_call` and :func:`time_passes` -- a timing loop with warm-up: the first call
  (numba compilation or cache load) is timed on its own and never mixed into a rate;
* :func:`describe_machine` -- CPU, cores, load, library versions and BLAS as a dict;
* :func:`format_table` -- a plain fixed-width text table;
* :func:`parse_shapes`, :func:`parse_floats` -- command-line list parsing;
* :func:`benchmark_parser`, :func:`parse_benchmark_args` -- the options every script has;
* :func:`planted_data` -- the planted-dictionary inputs every script times on;
  :func:`planted_shapes` -- them for every ``--shapes`` shape, each announced;
* :func:`interleave` -- the paired timing loop: rounds of alternating order over contenders;
* :func:`start`, :func:`finish` -- the header (command line, machine, load warning) and the
  footer (load at end) every script prints;
* :func:`write_json` -- the JSON result file, in one envelope for every script (command line,
  machine, streamsc version, git commit, settings, results and the script's extra sections).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from dataclasses import dataclass, field

from threadpoolctl import threadpool_info, threadpool_limits

__all__ = [
    "Timing",
    "command_line",
    "configurations",
    "envelope",
    "finish",
    "git_commit",
    "interleave",
    "settings",
    "start",
    "shape_lam",
    "start_basis",
    "timed_import",
    "format_ratio_table",
    "write_json",
    "benchmark_parser",
    "script_parser",
    "parse_benchmark_args",
    "planted_data",
    "planted_shapes",
    "busy_warning",
    "describe_machine",
    "first_call",
    "format_machine",
    "format_table",
    "parse_floats",
    "parse_shapes",
    "pin_blas",
    "time_passes",
]


def pin_blas(n_threads=1):
    """Limit every BLAS and OpenMP thread pool of this process to ``n_threads``.

    Use as a context manager around a whole comparison so every contender, in the same
    process, runs with the same BLAS setting.

    Parameters
    ----------
    n_threads : int

    Returns
    -------
    threadpoolctl.threadpool_limits
        A context manager (also active immediately; ``unregister()`` restores).
    """
    return threadpool_limits(limits=n_threads)


@dataclass
class Timing:
    """Wall-clock and CPU seconds of repeated passes over the same work.

    Attributes
    ----------
    units : int
        Units of work per pass (codes).
    seconds : list of float
        Wall-clock duration of each pass.
    cpu_seconds : list of float
        CPU time of this process (all its threads) during each pass. For single-threaded
        work it is barely affected by other processes competing for the cores, unlike
        wall-clock time, so it is the steadier figure on a shared machine.
    """

    units: int
    seconds: list = field(default_factory=list)
    cpu_seconds: list = field(default_factory=list)

    @property
    def best(self):
        """The fastest pass (seconds): the least disturbed by other processes."""
        return min(self.seconds)

    @property
    def rate(self):
        """Units per second of the fastest pass."""
        return self.units / self.best

    @property
    def median_rate(self):
        """Units per second of the median pass."""
        s = sorted(self.seconds)
        return self.units / s[len(s) // 2]

    @property
    def cpu_rate(self):
        """Units per CPU-second of the pass that used the least CPU time."""
        return self.units / max(min(self.cpu_seconds), 1e-9)


def first_call(fn):
    """Run ``fn()`` once and return ``(seconds, result)``: the cost of the first call, which
    includes numba compilation (or loading it from the on-disk cache)."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def time_passes(one_pass, units, *, budget, min_repeats=1, max_repeats=50, timing=None):
    """Time ``one_pass()`` repeatedly, after it has been warmed up by the caller.

    Passes run until ``budget`` seconds have been spent and at least ``min_repeats``
    passes were made (at most ``max_repeats``). Pass an earlier ``timing`` to add to it:
    interleaving short rounds of every contender spreads each one's passes over the whole
    comparison, so a burst of load from another process does not hit only one of them.

    Parameters
    ----------
    one_pass : callable
        Does ``units`` units of work.
    units : int
    budget : float
        Seconds to spend in total (soft: a pass is never interrupted).
    min_repeats, max_repeats : int
        Bounds on the passes made by this call.
    timing : Timing, optional
        Add the passes to this record (its ``units`` must equal ``units``).

    Returns
    -------
    Timing
    """
    if timing is None:
        timing = Timing(units=units)
    elif timing.units != units:
        raise ValueError(f"timing has {timing.units} units per pass, not {units}")
    spent = 0.0
    done = 0
    while done < max_repeats and (done < min_repeats or spent < budget):
        c0 = time.process_time()
        t0 = time.perf_counter()
        one_pass()
        dt = time.perf_counter() - t0
        timing.cpu_seconds.append(time.process_time() - c0)
        timing.seconds.append(dt)
        spent += dt
        done += 1
    return timing


def interleave(jobs, units=None, *, budget, rounds, timings=None):
    """Time every job in ``rounds`` rounds of alternating order (forward, then backward),
    about ``budget / rounds`` seconds per job and round, so a burst of load from another
    process does not fall on one contender only.

    Parameters
    ----------
    jobs : dict
        ``{name: one_pass}``; ``one_pass()`` does ``units`` units of work.
    units : int, optional
        Units per pass of every job (default: each given timing's own ``units``).
    budget : float
        Seconds per job in total.
    rounds : int
    timings : dict, optional
        ``{name: Timing}`` to add to (default: fresh ones).

    Returns
    -------
    dict
        ``{name: Timing}``.
    """
    if timings is None:
        timings = {name: Timing(units=units) for name in jobs}
    names = list(jobs)
    for rnd in range(rounds):
        for name in names if rnd % 2 == 0 else names[::-1]:
            time_passes(jobs[name], timings[name].units, budget=budget / rounds,
                        timing=timings[name])
    return timings


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(module_name):
    try:
        module = __import__(module_name)
    except ImportError:
        return None
    return getattr(module, "__version__", "?")


def describe_machine(modules=("numpy", "scipy", "numba", "sklearn", "threadpoolctl", "streamsc")):
    """The machine and software a benchmark ran on, as a JSON-friendly dict.

    Call it after the contenders have run so numba's threading layer and the BLAS pools
    that were actually loaded are reported.
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count()
    desc = {
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()]
        if hasattr(os, "getloadavg")
        else None,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": {name: _version(name) for name in modules},
        "blas": [
            {
                key: pool.get(key)
                for key in ("internal_api", "version", "num_threads", "threading_layer",
                            "architecture")
            }
            for pool in threadpool_info()
        ],
    }
    if "numba" in sys.modules:
        numba = sys.modules["numba"]
        desc["numba_threads"] = numba.get_num_threads()
        try:
            desc["numba_threading_layer"] = numba.threading_layer()
        except ValueError:  # no parallel region has run yet
            desc["numba_threading_layer"] = None
        desc["numba_cache_dir"] = os.environ.get("NUMBA_CACHE_DIR") or "(package __pycache__)"
    return desc


def format_machine(desc):
    """A few lines describing the machine, from :func:`describe_machine`."""
    versions = ", ".join(f"{k} {v}" for k, v in desc["versions"].items() if v is not None)
    blas = "; ".join(
        f"{p['internal_api']} {p['version']} ({p['threading_layer'] or '-'}, "
        f"{p['num_threads']} threads now, {p['architecture']})"
        for p in desc["blas"]
    )
    lines = [
        f"machine : {desc['cpu']}, {desc['usable_cpus']} usable of {desc['logical_cpus']} "
        f"logical CPUs, load average {desc['load_average_1_5_15']}",
        f"platform: {desc['platform']}, Python {desc['python']}",
        f"versions: {versions}",
        f"BLAS    : {blas or 'none loaded'}",
    ]
    if "numba_threads" in desc:
        lines.append(
            f"numba   : {desc['numba_threads']} threads by default, threading layer "
            f"{desc['numba_threading_layer']}, cache {desc['numba_cache_dir']}"
        )
    return "\n".join(lines)


def busy_warning(desc, threshold=0.25):
    """A warning line if the 1-minute load average exceeds ``threshold`` per usable CPU
    (other processes were running), else an empty string."""
    load = desc.get("load_average_1_5_15")
    if not load or load[0] <= threshold * desc["usable_cpus"]:
        return ""
    return (
        f"WARNING: load average {load[0]} on {desc['usable_cpus']} CPUs: other processes are "
        "running, wall-clock rates are pessimistic and noisy; the codes/cpu-s column (CPU time "
        "of this process) is the steadier figure for single-threaded contenders."
    )


def format_table(rows, columns, *, align=None):
    """A fixed-width text table.

    Parameters
    ----------
    rows : list of sequences
        Cells, already formatted as strings (anything else goes through ``str``).
    columns : list of str
        Header names.
    align : str, optional
        One character per column, ``"l"`` or ``"r"``; default: first left, others right.

    Returns
    -------
    str
    """
    align = align or "l" + "r" * (len(columns) - 1)
    cells = [[str(c) for c in columns]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[j]) for r in cells) for j in range(len(columns))]

    def fmt(row):
        return "  ".join(
            c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(row, widths, align)
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(cells[0]), rule] + [fmt(r) for r in cells[1:]])


#: the first words of a comparison's introduction (:func:`start`'s ``intro``)
BLAS_PINNED = "BLAS is pinned to 1 thread for every contender (threadpoolctl, whole comparison)"


def heading(r, rest):
    """The line that opens one configuration's block of a summary:
    ``=== (m, k) = (<m>, <k>), lam = <lam><rest> ===``, after a blank line."""
    return f"\n=== (m, k) = ({r['m']}, {r['k']}), lam = {r['lam']:g}{rest} ==="


def shape_lam(r):
    """The first two cells of a row about one configuration: ``"(m, k)"`` and ``lam``."""
    return [f"({r['m']}, {r['k']})", f"{r['lam']:g}"]


def _met(flag):
    return "" if flag is None else ("met" if flag else "below")


def format_ratio_table(ratios, *, target=lambda r: r["target"], met=True):
    """The table of ratios to a peer: one row per dict of ``ratios`` (keys ``m``, ``k``,
    ``lam``, ``measure``, ``ratio``, ``ratio_cpu``; with ``met``, also ``met`` and ``met_cpu``,
    True, False or None), its target cell given by ``target(row)``."""
    columns = ["(m, k)", "lam", "measure", "ratio", "cpu ratio", "target"]
    rows = []
    for r in ratios:
        row = [*shape_lam(r), r["measure"], f"{r['ratio']:.2f}x",
               f"{r['ratio_cpu']:.2f}x", target(r)]
        if met:
            row += [_met(r.get("met")), _met(r.get("met_cpu"))]
        rows.append(row)
    if met:
        columns += ["wall", "cpu"]
    return format_table(rows, columns, align="lllrrl" + "ll" * met)


def configurations(args):
    """``(m, k, lam)`` for every shape of ``--shapes`` and every value of ``--lam``, in the
    order of the command line (shape by shape)."""
    return [(m, k, lam) for m, k in args.shapes for lam in args.lam]


def parse_shapes(text):
    """``"64x256,180x1024"`` -> ``[(64, 256), (180, 1024)]``."""
    shapes = []
    for item in text.split(","):
        item = item.strip().lower()
        if not item:
            continue
        try:
            m, k = (int(s) for s in item.split("x"))
        except ValueError:
            raise ValueError(f"--shapes: expected MxK items like 64x256, got {item!r}") from None
        if m < 1 or k < 1:
            raise ValueError(f"--shapes: m and k must be positive, got {item!r}")
        shapes.append((m, k))
    if not shapes:
        raise ValueError("--shapes: no shape given")
    return shapes


def parse_floats(text, name):
    """``"0.1,0.03"`` -> ``[0.1, 0.03]`` (all > 0)."""
    try:
        values = [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"{name}: expected comma-separated numbers, got {text!r}") from None
    if not values or any(not (v > 0) for v in values):
        raise ValueError(f"{name}: expected positive numbers, got {text!r}")
    return values


def script_parser(description, *, options=("quick", "seed", "json"),
                  quick_help="few rows and a tiny time budget (a smoke test, not a measurement)",
                  json_help="also write every number to this JSON file"):
    """An argument parser with the options of ``options`` that every script shares:
    ``--quick``, ``--seed`` and ``--json`` (in that order)."""
    ap = argparse.ArgumentParser(description=description)
    if "quick" in options:
        ap.add_argument("--quick", action="store_true", help=quick_help)
    if "seed" in options:
        ap.add_argument("--seed", type=int, default=0)
    if "json" in options:
        ap.add_argument("--json", default=None, help=json_help)
    return ap


def _with_defaults(text, pair):
    """``text`` plus ``" (default F, --quick Q)"`` unless it already names a default."""
    if pair is None or "default" in text:
        return text
    return f"{text} (default {pair[1]:g}, --quick {pair[0]:g})"


def benchmark_parser(description, *, lam="0.1", lam_help="comma-separated lam values",
                     rows=None, budget=None, rows_help="examples generated per shape",
                     budget_help="seconds spent timing each contender"):
    """An argument parser with the options every benchmark script has: ``--quick``,
    ``--shapes``, ``--lam``, ``--rows``, ``--budget``, ``--seed`` and ``--json``.

    ``rows`` and ``budget`` are ``(quick, full)`` defaults, named in the options' help and
    used by :func:`parse_benchmark_args`. Scripts add their own options, then call it."""
    ap = script_parser(description)
    ap.add_argument("--shapes", default="64x256,180x1024", help="comma-separated MxK basis shapes")
    ap.add_argument("--lam", default=lam, help=lam_help)
    ap.add_argument("--rows", type=int, default=None, help=_with_defaults(rows_help, rows))
    ap.add_argument("--budget", type=float, default=None,
                    help=_with_defaults(budget_help, budget))
    ap.set_defaults(_quick_defaults=dict(rows=rows, budget=budget))
    return ap


def parse_benchmark_args(ap, argv, *, rows=None, budget=None, **quick):
    """Parse, convert ``--shapes``/``--lam`` and fill ``--rows``/``--budget`` from their
    ``(quick, full)`` defaults (here or given to :func:`benchmark_parser`); a bad value exits
    through ``ap.error``.

    Every other keyword is a ``(quick, full)`` pair too: it fills ``args.NAME`` when it is
    missing or None (an option left at its None default, or a setting with no option, such
    as the number of timing rounds)."""
    args = ap.parse_args(argv)
    given = args.__dict__.pop("_quick_defaults", {}) or {}
    rows = rows or given.get("rows")
    budget = budget or given.get("budget")
    for name, pair in quick.items():
        if getattr(args, name, None) is None:
            setattr(args, name, pair[0] if args.quick else pair[1])
    try:
        args.shapes = parse_shapes(args.shapes)
        args.lam = parse_floats(args.lam, "--lam")
    except ValueError as exc:
        ap.error(str(exc))
    if args.rows is None:
        args.rows = rows[0] if args.quick else rows[1]
    if args.budget is None:
        args.budget = budget[0] if args.quick else budget[1]
    if not args.budget > 0:
        ap.error("--budget must be > 0")
    return args


def planted_data(m, k, n, seed):
    """A basis and two sets of unit-norm examples on it.

    ``B`` has unit-norm Gaussian columns. Each example is ``x = B w* + e``, normalised, with
    a planted sparse ``w*`` (``s = max(2, round(k/32))`` atoms, magnitudes uniform in
    [0.5, 1.5]) and Gaussian noise ``e`` at 10% of ``||B w*||`` (SNR 20 dB). ``X_pos``
    has ``w* >= 0`` (for non-negative codes), ``X_signed`` random signs (for signed codes).
    Returns ``(B, X_pos, X_signed, s, rng)``; ``rng`` can draw anything else a script needs.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    B = rng.standard_normal((m, k))
    B /= np.linalg.norm(B, axis=0)
    B = np.ascontiguousarray(B)
    s = max(2, round(k / 32))

    def examples(signed):
        W = np.zeros((n, k))
        for i in range(n):
            idx = rng.choice(k, size=min(s, k), replace=False)
            W[i, idx] = rng.uniform(0.5, 1.5, size=idx.size)
            if signed:
                W[i, idx] *= rng.choice([-1.0, 1.0], size=idx.size)
        X = W @ B.T
        X += 0.1 * np.linalg.norm(X, axis=1, keepdims=True) / np.sqrt(m) * rng.standard_normal(
            X.shape
        )
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        return np.ascontiguousarray(X)

    X_pos = examples(False)
    X_signed = examples(True)
    return B, X_pos, X_signed, s, rng


def planted_shapes(args, n=None):
    """For every shape of ``--shapes`` in order, ``(m, k, planted)``: ``planted`` is
    :func:`planted_data` of ``n`` examples (default ``args.rows``) at ``--seed``, announced
    first by the line ``(m, k) = (<m>, <k>): s = <s> planted atoms per example`` after a
    blank line."""
    for m, k in args.shapes:
        planted = planted_data(m, k, args.rows if n is None else n, args.seed)
        print(f"\n(m, k) = ({m}, {k}): s = {planted[3]} planted atoms per example")
        yield m, k, planted


ROOT = Path(__file__).resolve().parents[1]


def command_line(script, argv=None):
    """``["benchmarks/NAME.py", *args]``: the command a script was run with (``argv`` as
    passed to its ``main``, else ``sys.argv[1:]``)."""
    args = sys.argv[1:] if argv is None else [str(a) for a in argv]
    return [script] + list(args)


def git_commit():
    """The commit of the working tree (``+dirty`` if it has changes), or None outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def timed_import(name="streamsc"):
    """Import module ``name`` and return the seconds it took (0 if it was imported)."""
    t0 = time.perf_counter()
    __import__(name)
    return time.perf_counter() - t0


def start(script, argv=None, *, desc=None, quiet_command=False, intro=None):
    """Print the command line (unless ``quiet_command``), the machine, a load warning and
    ``intro`` (what the script compares and how); return the start time
    (``time.perf_counter()``) for :func:`finish`."""
    started = time.perf_counter()
    if not quiet_command:
        print(" ".join(command_line(script, argv)))
    desc = describe_machine() if desc is None else desc
    print(format_machine(desc))
    if busy_warning(desc):
        print(busy_warning(desc))
    if intro:
        print(intro)
    return started


def finish(started=None, *, prefix="\n", desc=None):
    """Print the load average at the end (and the total time since ``started``, a
    ``perf_counter`` value) and a load warning; return the end machine description."""
    machine = describe_machine() if desc is None else desc
    total = "" if started is None else f"; total {time.perf_counter() - started:.1f} s"
    print(f"{prefix}load average at end {machine['load_average_1_5_15']}{total}")
    if busy_warning(machine):
        print(busy_warning(machine))
    return machine


def settings(args, *names, **extra):
    """The common options of :func:`benchmark_parser` (shapes, lam, rows, budget, seed,
    quick), then the attributes ``names`` of ``args`` and ``extra``, as a dict."""
    out = {key: getattr(args, key) for key in ("shapes", "lam", "rows", "budget", "seed",
                                               "quick") if hasattr(args, key)}
    out.update({name: getattr(args, name) for name in names})
    out.update(extra)
    return out


def envelope(script, argv, results, *, machine=None, settings=None, **extra):
    """The JSON result of a script: ``command``, ``machine``, ``streamsc_version``,
    ``git_commit``, ``settings``, ``results``, then the script's own sections."""
    try:
        import streamsc

        version = getattr(streamsc, "__version__", None)
    except ImportError:
        version = None
    out = dict(
        command=command_line(script, argv),
        machine=describe_machine() if machine is None else machine,
        streamsc_version=version,
        git_commit=git_commit(),
        settings=settings or {},
        results=results,
    )
    out.update(extra)
    return out


def write_json(path, script, argv, results, *, compact=False, **kwargs):
    """Write :func:`envelope` to ``path`` (nothing if ``path`` is None) and say so."""
    if not path:
        return None
    out = envelope(script, argv, results, **kwargs)
    with open(path, "w") as f:
        if compact:
            json.dump(out, f, separators=(",", ":"), default=str)
        else:
            json.dump(out, f, indent=1, default=str)
    print(f"wrote {path}")
    return out


def start_basis(m, k, seed):
    """The basis a fresh ``SparseCoder(n_components=k, seed=seed)`` (and
    ``SparseCodingTransformer(random_state=seed)``) starts from on features ``0 .. m-1``,
    with unit-norm columns, shape (m, k).

    Read through the public API: an L1 coder's ``learn_one`` on an all-zero example adds the
    features' seeded rows and takes no step (its code and gradient are zero).
    """
    import numpy as np

    from streamsc import SparseCoder

    coder = SparseCoder(n_components=k, prior="l1", seed=seed)
    coder.learn_one({j: 0.0 for j in range(m)})
    B0 = coder.basis_.to_numpy(dtype=float, copy=True)
    B0 /= np.linalg.norm(B0, axis=0)
    return np.ascontiguousarray(B0)
