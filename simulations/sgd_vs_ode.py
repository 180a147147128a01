"""On-line SGD at N = 500 (4 seeds) vs the large-N order-parameter ODE, K = M = 2 erf."""

from __future__ import annotations

import sys

from _common import main

from ghostsing.simulate.experiments import run_sgd_vs_ode

if __name__ == "__main__":
    sys.exit(main(run_sgd_vs_ode, __doc__.splitlines()[0], n=4))
