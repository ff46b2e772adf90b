"""Per-example speed in a river pipeline: streamsc's coder against river's own linear model.

Usage::

    python benchmarks/pipeline.py [--budget 20] [--rounds 4] [--json out.json] [--quick]

Issue 21's measure: on river's Phishing (1,250 examples, 9 features), progressive
validation's ``predict_one`` then ``learn_one`` for every example, through

* ``StandardScaler() | SparseCoder(n_components=32, seed=0) | LogisticRegression()``;
* ``StandardScaler() | SparseCodingClassifier(seed=0)`` (the supervised model, its head on
  the codes and the raw features);
* ``StandardScaler() | LogisticRegression()``, river's baseline.

Each pass streams the whole data set through a fresh pipeline (the first pass of each is a
warm-up: numba's cache load); the contenders alternate in rounds (:func:`_common.interleave`)
so a burst of load from another process does not fall on one only. BLAS is pinned to one
thread. Prints examples/s and each streamsc pipeline's ratio to river's (issue 21's target:
≥ 0.33×, goal 0.5×).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

SCRIPT = "benchmarks/pipeline.py"
TARGET = 0.33


def _pipelines():
    from river import linear_model, preprocessing

    from streamsc import SparseCoder, SparseCodingClassifier

    return {
        "StandardScaler | SparseCoder(32) | LogisticRegression": lambda: (
            preprocessing.StandardScaler() | SparseCoder(n_components=32, seed=0)
            | linear_model.LogisticRegression()),
        "StandardScaler | SparseCodingClassifier": lambda: (
            preprocessing.StandardScaler() | SparseCodingClassifier(seed=0)),
        "StandardScaler | LogisticRegression (river)": lambda: (
            preprocessing.StandardScaler() | linear_model.LogisticRegression()),
    }


def _stream(make, data):
    def one_pass():
        model = make()
        for x, y in data:
            model.predict_one(x)
            model.learn_one(x, y)
    return one_pass


def main(argv=None):
    ap = _common.script_parser(__doc__.splitlines()[0], options=("quick", "json"))
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds per contender (default 20, --quick 1)")
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args(argv)
    budget = args.budget or (1.0 if args.quick else 20.0)
    _common.pin_blas(1)
    started = _common.start(SCRIPT, argv, intro=(
        "progressive validation (predict_one, learn_one) over river's Phishing; BLAS on one "
        "thread; fresh pipeline per pass"))
    from river import datasets

    data = list(datasets.Phishing())
    if args.quick:
        data = data[:200]
    jobs = {name: _stream(make, data) for name, make in _pipelines().items()}
    for name, job in jobs.items():  # warm-up: numba's cache load, river's imports
        _common.first_call(job)
    timings = _common.interleave(jobs, len(data), budget=budget, rounds=args.rounds)
    baseline = "StandardScaler | LogisticRegression (river)"
    base_rate = timings[baseline].rate
    base_cpu = timings[baseline].cpu_rate
    rows, results = [], []
    for name, timing in timings.items():
        ratio, cpu_ratio = timing.rate / base_rate, timing.cpu_rate / base_cpu
        rows.append([name, f"{timing.rate:,.0f}", f"{ratio:.3f}×", f"{cpu_ratio:.3f}×",
                     "" if name == baseline else ("yes" if ratio >= TARGET else "no")])
        results.append(dict(pipeline=name, examples_per_s=timing.rate, ratio=ratio,
                            cpu_ratio=cpu_ratio, passes=len(timing.seconds)))
    print()
    print(_common.format_table(rows, ["pipeline", "examples/s", "÷ river", "cpu ÷ river",
                                      f"≥ {TARGET}×?"]))
    machine = _common.finish(started)
    _common.write_json(args.json, SCRIPT, argv, results, machine=machine,
                       settings=dict(budget=budget, rounds=args.rounds, quick=args.quick,
                                     examples=len(data)))


if __name__ == "__main__":
    main()
