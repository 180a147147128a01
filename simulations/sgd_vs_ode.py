"""On-line SGD at N = 500 (4 seeds) vs the large-N order-parameter ODE, K = M = 2 erf.

Thin call of the registered experiment `sgd-vs-ode` (`ghostsing run sgd-vs-ode`); writes
`simulations/figures/sgd-vs-ode/`.  Extra arguments are passed on (`--preset small`, `--set key=value`).
"""

from __future__ import annotations

import sys

from _common import main

if __name__ == "__main__":
    sys.exit(main("sgd-vs-ode"))
