"""Shared helper of the figure scripts: where figures go and a uniform ``main``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

FIGURES = Path(__file__).resolve().parent / "figures"


def main(run: Callable[..., list], description: str, **defaults) -> int:
    """Parse ``--out`` and ``--seed``, call ``run(out_dir=..., seed=..., **defaults)``, print the paths."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", default=str(FIGURES), help="output folder (default simulations/figures)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    t0 = time.perf_counter()
    paths = run(out_dir=args.out, seed=args.seed, **defaults)
    for p in paths:
        print(p)
    print(f"[{Path(sys.argv[0]).name}] done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0
