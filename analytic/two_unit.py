"""Two-unit student: overlap and elimination singularities, plain and with skip connections.

Run from the repository root::

    python analytic/two_unit.py

Thin call of the registered experiment ``two-unit`` (``ghostsing run two-unit --out analytic/out/two-unit``):
writes ``two_unit.tex``, ``two_unit.md``, ``two_unit.json`` and the run's report into
``analytic/out/two-unit/`` and prints the Milnor-attractor interval of the overlap line for each teacher.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ghostsing.cli import main

if __name__ == "__main__":
    out = Path(__file__).resolve().parent / "out" / "two-unit"
    sys.exit(main(["run", "two-unit", "--out", str(out), *sys.argv[1:]]))
