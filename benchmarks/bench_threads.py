"""Thread scaling of the parallel ensemble driver (1 vs 2 threads, same work, one run).

Two-unit erf model with identity skips (alpha = 0.5), n trajectories to t = 1e4 at rtol 1e-8 with the
`auto853` method (DOP853 switching to Rodas5P, the default stiff method).  Prints the wall times and
the speed-up and writes benchmarks/results/threads.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numba
import numpy as np

from ghostsing import ModelSpec
from ghostsing.analytic import derive
from ghostsing.simulate import Execution, integrate, log_grid


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="trajectories")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "threads.json")
    args = ap.parse_args(argv)
    spec = ModelSpec(K=2, M=2, N=2, activation="erf", alpha=0.5)
    f = derive(spec).compile()
    rng = np.random.default_rng(0)
    Y = rng.normal(scale=0.5, size=(args.n, spec.n_params))
    te = log_grid(1e4, 50, t_first=1e-2)
    max_threads = numba.config.NUMBA_NUM_THREADS
    integrate(f, Y[:4], te, method="auto853", execution=Execution(threads=1))  # compile
    integrate(f, Y[:4], te, method="auto853", execution=Execution(threads=min(2, max_threads)))
    times: dict[int, float] = {}
    for threads in sorted({1, min(2, max_threads)}):
        best = np.inf
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            sol = integrate(f, Y, te, method="auto853", execution=Execution(threads=threads))
            best = min(best, time.perf_counter() - t0)
        times[threads] = best
        ok = (sol.status <= 1).mean()
        print(f"threads={threads}: {best:.3f} s for {args.n} trajectories (status ok or converged: {ok:.3f})")
    speedup = times[1] / times[max(times)]
    print(f"speed-up 1 -> {max(times)} threads: {speedup:.2f}x (load average {os.getloadavg()[0]:.2f})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"n": args.n, "wall_s": times, "speedup": speedup,
                               "loadavg_after": os.getloadavg()[0], "cpus": os.cpu_count()}, indent=2))
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
