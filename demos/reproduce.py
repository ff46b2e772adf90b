"""The paper's experiments (Section 6), several tables in one run.

``python demos/reproduce.py [table1 table2 table5 table6] [--quick] [--data-dir D] [--out O]
[--seed S] [--no-progress]`` runs the tables named (default: all four) one after the other,
each as ``python demos/paper/<table>.py`` with the same options would; the scripts and their
shared code are in ``demos/paper/`` (see ``docs/results.md``).
"""

import sys
from pathlib import Path

PAPER = Path(__file__).resolve().parent / "paper"


def main(argv=None):
    if str(PAPER) not in sys.path:
        sys.path.insert(0, str(PAPER))
    import common

    return common.main_all(argv)


if __name__ == "__main__":
    sys.exit(main())
