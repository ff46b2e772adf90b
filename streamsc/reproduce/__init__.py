"""The paper's experiments on the real data (Section 6): one module per table.

``streamsc reproduce table1|table2|table5`` runs them (see ``docs/results.md``); each module's
``run(data_dir, out, quick=..., seed=..., progress=...)`` writes a markdown table, a JSON
report and plots under ``out`` and returns the report.
"""

TABLES = ("table1", "table2", "table5")

__all__ = ["TABLES"]
