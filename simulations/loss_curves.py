"""Ensemble loss curves (median, quartile band) from starts near the overlap line, plain vs skips.

Thin call of the registered experiment `loss-curves` (`ghostsing run loss-curves`); writes
`simulations/figures/loss-curves/`.  Extra arguments are passed on (`--preset small`, `--set key=value`).
"""

from __future__ import annotations

import sys

from _common import main

if __name__ == "__main__":
    sys.exit(main("loss-curves"))
