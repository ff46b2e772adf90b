"""Smoke test of demos/defaults.py (the sweep behind the learner's defaults): its quick
planted, unrolled and text suites run and write one row per candidate with a score for every problem,
the default starred once per setting, and scores in range. No learning quality is asserted
at these tiny sizes; the full tables are in docs/learning.md."""

import math

from conftest import ROOT, quick_json_fixture, quick_run_data
from conftest import test_exit_status  # noqa: F401 (pytest collects it here)

quick_run = quick_json_fixture(ROOT / "demos" / "defaults.py", "--sections", "planted,unrolled,text")


def test_every_candidate_scored_on_every_problem(quick_run):
    data = quick_run_data(quick_run)
    assert set(data) == {"planted", "unrolled", "text"}
    for section in data.values():
        problems = section["problems"]
        assert problems
        settings = {}
        for row in section["rows"]:
            assert set(row["scores"]) == set(problems)
            for score in row["scores"].values():
                assert math.isfinite(score) and 0.0 <= score <= 1.0
            settings.setdefault(row["setting"], []).append(row["default"])
        for setting, defaults in settings.items():
            assert sum(defaults) == 1, f"{setting}: the default is starred once"
            assert len(defaults) >= 3, f"{setting}: at least three candidates"
    assert data["text"]["lsa"] > 0.5


def test_tables_printed(quick_run):
    proc, _ = quick_run
    assert proc.stdout.count("| setting | value |") == 3
    assert "planted dictionaries" in proc.stdout and "planted topics" in proc.stdout
