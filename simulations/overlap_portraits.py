"""Overlap singularity: phase portraits in the relaxed (z, |u|) plane, plain vs skip.

Makes figures/overlap_portraits.png (alpha = 0 vs 0.5, what `ghostsing portrait` makes) and
figures/overlap_portraits_alpha0.1.png (alpha = 0 vs 0.1: the ghost of the critical line) and
figures/overlap_portraits_parallel.png (u parallel to J*, the direction neutral at second order; alpha =
0 vs 0.02).
"""

from __future__ import annotations

import sys

from _common import FIGURES, main

from ghostsing.simulate.experiments import run_portraits


def run(out_dir=FIGURES, seed: int = 0) -> list:
    paths = run_portraits(out_dir=out_dir, alpha_skip=0.5, grid=41, seed=seed)
    paths += run_portraits(out_dir=out_dir, alpha_skip=0.1, grid=41, seed=seed,
                           stem="overlap_portraits_alpha0.1")
    paths += run_portraits(out_dir=out_dir, alpha_skip=0.02, grid=41, seed=seed, e=(1.0, 1.0),
                           stem="overlap_portraits_parallel")
    return paths


if __name__ == "__main__":
    sys.exit(main(run, __doc__.splitlines()[0]))
