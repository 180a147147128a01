"""Plateau length vs distance epsilon from the overlap line at alpha = 0, fitted tau = a ln(1/eps) + c
against a = 1/lambda_u (Jacobian), and escape-time histograms."""

from __future__ import annotations

import sys

from _common import main

from ghostsing.simulate.experiments import run_plateau_vs_epsilon

if __name__ == "__main__":
    sys.exit(main(run_plateau_vs_epsilon, __doc__.splitlines()[0], n=24))
