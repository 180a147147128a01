"""Plateau length vs distance epsilon from the overlap line at alpha = 0: tau = a ln(1/eps) + c against a =
1/lambda_u.

Thin call of the registered experiment `plateau-vs-epsilon` (`ghostsing run plateau-vs-epsilon`); writes
`simulations/figures/plateau-vs-epsilon/`. Extra arguments are passed on (`--preset small`, `--set
key=value`).
"""

from __future__ import annotations

import sys

from _common import main

if __name__ == "__main__":
    sys.exit(main("plateau-vs-epsilon"))
