"""Ensemble loss curves (median, quartile band) from starts near the overlap line, plain vs skips."""

from __future__ import annotations

import sys

from _common import main

from ghostsing.simulate.experiments import run_loss_curves

if __name__ == "__main__":
    sys.exit(main(run_loss_curves, __doc__.splitlines()[0], n=32))
