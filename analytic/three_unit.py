"""Three-unit student: linear dependence, the overlap line of three erf units, the symmetric plateau.

Run from the repository root::

    python analytic/three_unit.py

Thin call of the registered experiment ``three-unit`` (``ghostsing run three-unit --out
analytic/out/three-unit``): writes ``three_unit.tex``, ``three_unit.md``, ``three_unit.json`` and the
run's report into ``analytic/out/three-unit/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ghostsing.cli import main

if __name__ == "__main__":
    out = Path(__file__).resolve().parent / "out" / "three-unit"
    sys.exit(main(["run", "three-unit", "--out", str(out), *sys.argv[1:]]))
