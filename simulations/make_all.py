"""Make every simulation figure from scratch into simulations/figures/ (a few minutes on 2 cores).

    python simulations/make_all.py [--out DIR] [--seed S] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import FIGURES  # noqa: E402

from ghostsing.simulate import experiments as ex  # noqa: E402

JOBS = {
    "overlap_portraits": lambda out, seed: ex.run_portraits(out, alpha_skip=0.5, grid=41, seed=seed)
    + ex.run_portraits(out, alpha_skip=0.1, grid=41, seed=seed, stem="overlap_portraits_alpha0.1")
    + ex.run_portraits(out, alpha_skip=0.02, grid=41, seed=seed, e=(1.0, 1.0),
                       stem="overlap_portraits_parallel"),
    "elimination_portraits": lambda out, seed: ex.run_elimination_portraits(out, alpha_skip=0.1, grid=41,
                                                                            seed=seed),
    "plateau_vs_epsilon": lambda out, seed: ex.run_plateau_vs_epsilon(out, seed=seed, n=24),
    "loss_curves": lambda out, seed: ex.run_loss_curves(out, seed=seed, n=32),
    "sgd_vs_ode": lambda out, seed: ex.run_sgd_vs_ode(out, seed=seed, n=4),
    "ghost_passage": lambda out, seed: ex.EXPERIMENTS["ghost-passage"](out, seed=seed, n=5),
    "ghost_traps": lambda out, seed: ex.EXPERIMENTS["ghost-traps"](out, seed=seed),
    "ghost_basin": lambda out, seed: ex.EXPERIMENTS["ghost-basin"](out, seed=seed, n=200),
    "symmetric_passage": lambda out, seed: ex.EXPERIMENTS["symmetric-passage"](out, seed=seed, n=6),
    "ghost_noise": lambda out, seed: ex.EXPERIMENTS["ghost-noise"](out, seed=seed, n=6),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(FIGURES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", choices=sorted(JOBS), default=None)
    args = parser.parse_args()
    timings = {}
    for name, job in JOBS.items():
        if args.only and name not in args.only:
            continue
        t0 = time.perf_counter()
        for p in job(args.out, args.seed):
            print(p)
        timings[name] = round(time.perf_counter() - t0, 1)
        print(f"[make_all] {name}: {timings[name]} s", file=sys.stderr)
    path = Path(args.out) / "timings.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**old, **timings}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
