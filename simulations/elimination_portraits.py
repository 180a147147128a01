"""Elimination singularity of unit 2: phase portraits in the relaxed (w_2, |J_2|) plane, plain vs skip."""

from __future__ import annotations

import sys

from _common import FIGURES, main

from ghostsing.simulate.experiments import run_elimination_portraits


def run(out_dir=FIGURES, seed: int = 0) -> list:
    return run_elimination_portraits(out_dir=out_dir, alpha_skip=0.1, grid=41, seed=seed)


if __name__ == "__main__":
    sys.exit(main(run, __doc__.splitlines()[0]))
