"""Elimination singularity of unit 2: phase portraits in the relaxed (w_2, |J_2|) plane, plain vs skip.

Thin call of the registered experiment `elimination-portraits` (`ghostsing run elimination-portraits`);
writes `simulations/figures/elimination-portraits/`. Extra arguments are passed on (`--preset small`,
`--set key=value`).
"""

from __future__ import annotations

import sys

from _common import main

if __name__ == "__main__":
    sys.exit(main("elimination-portraits"))
