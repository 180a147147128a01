"""Benchmark: on-line SGD steps per second — ghostsing's Numba kernel vs a plain NumPy loop vs PyTorch (CPU).

The same Goldt-convention update (``ghostsing.simulate.sgd``) for an erf student / teacher with
K = M = 2 at several N; one fresh Gaussian sample per step.  All three loops run one seed on one thread
(``torch.set_num_threads(1)``); the Numba kernel is also run with several seeds over the Numba thread
pool (``prange``), reported as aggregate steps per second.  The NumPy loop uses the same sample stream as
the Numba kernel and is checked against it (same final order parameters to 1e-9) before timing.

Usage::

    python benchmarks/bench_sgd.py            # prints a table, writes benchmarks/results/sgd.json
    python benchmarks/bench_sgd.py --quick    # smaller step counts

Timings are wall-clock, best of ``--repeat``; on a shared machine they are noisy — compare the ratios
within one run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time
from pathlib import Path

import numba
import numpy as np
from numba.typed import List
from scipy.special import erf

from ghostsing.simulate.sgd import _goldt_seeds, online_sgd
from ghostsing.simulate.status import Status

HERE = Path(__file__).resolve().parent
K = M = 2
LR = 0.5


def numpy_loop(J, v, B, A, steps, seed):
    """Plain NumPy on-line SGD (same update and sample stream as the Numba kernel)."""
    rs = np.random.default_rng(seed)
    n = J.shape[1]
    sq = math.sqrt(n)
    c = math.sqrt(2 / math.pi)
    J, v = J.copy(), v.copy()
    for _ in range(steps):
        x = rs.standard_normal(n)
        lam, nu = J @ x / sq, B @ x / sq
        g_lam = erf(lam / math.sqrt(2))
        delta = v @ g_lam - A @ erf(nu / math.sqrt(2))
        J -= np.outer(LR / sq * v * c * np.exp(-0.5 * lam * lam) * delta, x)
        v -= LR / n * g_lam * delta
    return J, v


def torch_loop(J, v, B, A, steps, seed):
    """The same loop in PyTorch on CPU (float64, no autograd), samples from torch.randn."""
    import torch

    gen = torch.Generator().manual_seed(int(seed))
    J, v, B, A = (torch.tensor(a, dtype=torch.float64) for a in (J, v, B, A))
    n = J.shape[1]
    sq = math.sqrt(n)
    c = math.sqrt(2 / math.pi)
    with torch.no_grad():
        for _ in range(steps):
            x = torch.randn(n, generator=gen, dtype=torch.float64)
            lam, nu = J @ x / sq, B @ x / sq
            g_lam = torch.erf(lam / math.sqrt(2))
            delta = v @ g_lam - A @ torch.erf(nu / math.sqrt(2))
            J -= torch.outer(LR / sq * v * c * torch.exp(-0.5 * lam * lam) * delta, x)
            v -= LR / n * g_lam * delta
    return J.numpy(), v.numpy()


def _best(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def run(Ns, steps_numba, steps_numpy, steps_torch, n_par, repeat):
    import torch

    torch.set_num_threads(1)
    rows = []
    for n in Ns:
        rng = np.random.default_rng(0)
        J0, B = rng.standard_normal((K, n)), rng.standard_normal((M, n))
        v0, A = np.ones(K), np.ones(M)
        kseed = 0

        # correctness: the NumPy loop reproduces the Numba kernel (same stream)
        chk = 200
        res = online_sgd(K, M, n, [0.0, chk / n], activation="erf", lr=LR, J0=J0, B=B, v0=v0, A=A, seeds=[0])
        Jn, _ = numpy_loop(J0, v0, B, A, chk, kseed)
        assert np.allclose(res.Q[0, 1], Jn @ Jn.T / n, rtol=1e-9, atol=1e-12), "NumPy loop differs from Numba"

        steps_n = max(int(steps_numba * 500 / n), 1000)  # about the same wall time per N
        grid = np.array([0, steps_n], dtype=np.int64)

        def kernel(n_seeds, steps_n=steps_n, grid=grid, n=n, J0=J0, B=B, v0=v0, A=A):
            """The Numba kernel alone (what online_sgd calls), n_seeds seeds over the thread pool."""
            Js = np.repeat(J0[None], n_seeds, 0)
            vs = np.repeat(v0[None], n_seeds, 0)
            Bs = np.repeat(B[None], n_seeds, 0)
            rngs = List([np.random.default_rng(s) for s in range(n_seeds)])
            Qo, Ro, vo = np.empty((n_seeds, 2, K, K)), np.empty((n_seeds, 2, K, M)), np.empty((n_seeds, 2, K))
            status = np.zeros(n_seeds, dtype=np.int64)
            _goldt_seeds(Js, vs, Bs, A, LR, LR, 0.0, True, 0, 1, grid, rngs, Qo, Ro, vo, status)
            assert np.all(status == Status.OK)

        kernel(1)
        kernel(n_par)
        t_nb = _best(lambda: kernel(1), repeat)
        t_par = _best(lambda: kernel(n_par), repeat)
        t_np = _best(lambda n=n, J0=J0, B=B, v0=v0, A=A: numpy_loop(J0, v0, B, A, steps_numpy, 0), repeat)
        t_th = _best(lambda n=n, J0=J0, B=B, v0=v0, A=A: torch_loop(J0, v0, B, A, steps_torch, 0), repeat)
        row = {
            "N": n,
            "numba_steps_per_s": steps_n / t_nb,
            "numba_parallel_seeds": n_par,
            "numba_parallel_steps_per_s": n_par * steps_n / t_par,
            "numpy_steps_per_s": steps_numpy / t_np,
            "torch_cpu_steps_per_s": steps_torch / t_th,
        }
        row["numba_over_numpy"] = row["numba_steps_per_s"] / row["numpy_steps_per_s"]
        row["numba_over_torch"] = row["numba_steps_per_s"] / row["torch_cpu_steps_per_s"]
        row["parallel_speedup"] = row["numba_parallel_steps_per_s"] / row["numba_steps_per_s"]
        rows.append(row)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps (a smoke run)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "sgd.json")
    args = ap.parse_args(argv)
    scale = 0.1 if args.quick else 1.0
    n_par = max(2, numba.get_num_threads())
    rows = run([100, 500, 2000], int(40000 * scale), int(4000 * scale), int(2000 * scale), n_par, args.repeat)

    head = (
        f"{'N':>6} {'Numba 1 seed':>14} {f'Numba {n_par} seeds':>15} {'NumPy':>10} {'torch CPU':>10} "
        f"{'Numba/NumPy':>12} {'Numba/torch':>12} {'par. speed-up':>14}"
    )
    print("on-line SGD, erf, K = M = 2: steps per second (higher is better)")
    print(head)
    for r in rows:
        print(
            f"{r['N']:>6} {r['numba_steps_per_s']:>14.0f} {r['numba_parallel_steps_per_s']:>15.0f} "
            f"{r['numpy_steps_per_s']:>10.0f} {r['torch_cpu_steps_per_s']:>10.0f} "
            f"{r['numba_over_numpy']:>12.1f} {r['numba_over_torch']:>12.1f} {r['parallel_speedup']:>14.2f}"
        )
    import torch

    meta = {
        "benchmark": "on-line SGD steps per second (Goldt convention, erf, K = M = 2, lr = 0.5)",
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "numba_threads": numba.get_num_threads(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        },
        "versions": {"numpy": np.__version__, "numba": numba.__version__, "torch": torch.__version__},
        "quick": args.quick,
        "repeat": args.repeat,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=args.out.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(meta, fh, indent=2)
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
