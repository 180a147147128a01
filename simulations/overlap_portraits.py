"""Overlap singularity: phase portraits in the relaxed (z, |u|) plane, plain vs skips 0.5 and 0.1, and with u
parallel to J* (alpha = 0.02).

Thin call of the registered experiment `portraits` (`ghostsing run portraits`); writes
`simulations/figures/portraits/`. Extra arguments are passed on (`--preset small`, `--set key=value`).
"""

from __future__ import annotations

import sys

from _common import main

if __name__ == "__main__":
    sys.exit(main("portraits"))
