"""Smoke test of benchmarks/pipeline.py: its quick run times the three pipelines and writes
each one's examples/s and ratio to river's baseline (the baseline's ratio is 1). No speed
is asserted."""

import math

from conftest import ROOT, quick_json_fixture, quick_run_data
from conftest import test_exit_status  # noqa: F401 (pytest collects it here)

quick_run = quick_json_fixture(ROOT / "benchmarks" / "pipeline.py", "--rounds", "2")


def test_every_pipeline_timed_against_river(quick_run):
    data = quick_run_data(quick_run)
    assert data["command"][0].endswith("pipeline.py")
    results = {r["pipeline"]: r for r in data["results"]}
    assert len(results) == 3
    base = results["StandardScaler | LogisticRegression (river)"]
    assert base["ratio"] == 1.0 and base["cpu_ratio"] == 1.0
    for r in results.values():
        assert math.isfinite(r["examples_per_s"]) and r["examples_per_s"] > 0
        assert r["passes"] >= 2
    assert data["settings"]["examples"] == 200
