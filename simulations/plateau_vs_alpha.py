"""Ghost passage time vs skip strength alpha from starts near the Milnor segment; power-law and
logarithmic fits with bootstrap CIs."""

from __future__ import annotations

import sys

from _common import main

from ghostsing.simulate.experiments import run_plateau_vs_alpha

if __name__ == "__main__":
    sys.exit(main(run_plateau_vs_alpha, __doc__.splitlines()[0], n=8))
