"""Sweep overhead and scaling: 1 vs 2 workers, per-cell scheduler + store overhead, simulated many workers.

    python benchmarks/bench_sweep.py            # about 3 minutes on 2 cores; benchmarks/results/sweep.json
    python benchmarks/bench_sweep.py --quick    # a smaller version (about a minute)

1. **1 vs 2 workers.**  The same cells (``plateau-cell`` runs of ~1-2 s, distinct seeds) on a
   ``LocalCluster`` of one and of two single-threaded worker processes, both warmed up first (imports,
   generated code from the disk cache); speed-up = wall(1) / wall(2).
2. **Per-cell overhead.**  Cells that do nothing (``NOOP`` below) on two workers: the wall time per cell is
   what the scheduler, the transfer of the record, the atomic record write and the array rebuilds cost
   the sweep per cell (the ``durable`` record write, with ``fsync``, is timed separately).
   Against the measured cell times of the shipped sweeps (the
   ``wall_time_s`` of their stores, when present) that is the overhead in % of a cell.  The record write
   and one array rebuild are also timed alone, and the same cells in batches of 8 per task (``batch = 8``).
3. **Simulated many workers.**  One process, a ``LocalCluster`` of ``W`` worker threads (``W`` up to 256),
   cells that sleep for durations drawn from the measured plateau-cell costs (clipped at their 90th
   percentile, so that one cell does not outlast the run, and scaled to a mean of 0.25 s so that a run
   takes seconds; sleeping releases the GIL, so the threads behave as independent workers), ``16 W``
   cells per run (an ideal 4 s of work per worker, so that the run's fixed costs do not dominate).
   Efficiency = (total cell time / W) / wall.  The client handles each result in
   turn (one writer), so it saturates when ``W * overhead_per_cell / mean_cell_time`` approaches 1; the
   table shows where.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ghostsing.experiments.base import Experiment, ExperimentOutput  # noqa: E402


@dataclass(frozen=True)
class SleepConfig:
    duration: float = 0.0
    seed: int = 0


def _sleep(config: SleepConfig, out_dir: Path, *, resume: bool = False,
           progress: bool = True) -> ExperimentOutput:
    if config.duration > 0:
        time.sleep(config.duration)
    return ExperimentOutput(summary={"duration": config.duration})


NOOP = Experiment("bench-sleep", "a cell that sleeps (sweep overhead benchmark)", "simulation", SleepConfig,
                  _sleep, {"default": SleepConfig()})
EXPERIMENTS = (NOOP,)


def _load() -> list[float]:
    return [float(x) for x in os.getloadavg()]


def one_vs_two(n_cells: int, tmp: Path, rounds: int = 2) -> dict:
    from distributed import Client, LocalCluster

    from ghostsing.experiments.sweep import SweepSpec, run_sweep

    settings = {"teacher": "reference", "alpha": 0.01, "lr": 3e-3, "N": 1}
    out: dict = {"cells": n_cells, "cell": settings, "rounds": rounds, "runs": []}
    env = {"NUMBA_NUM_THREADS": "1"}
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
                      env=env) as c1, Client(c1) as one, \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                         env=env) as c2, Client(c2) as two:
        for w, client in ((1, one), (2, two)):  # warm-up: imports, generated code from the disk cache
            warm = SweepSpec("plateau-cell", settings={**settings, "t_max": 200.0},
                             seeds=tuple(range(100, 100 + w)))
            run_sweep(warm, tmp / f"warm{w}.zarr", client=client, progress=False)
        for r in range(rounds):  # alternate, so that both see the same load of the shared machine
            for w, client in ((1, one), (2, two)):
                seeds = tuple(range(r * 1000, r * 1000 + n_cells))
                spec = SweepSpec("plateau-cell", settings=settings, seeds=seeds)
                load0 = _load()
                t0 = time.perf_counter()
                res = run_sweep(spec, tmp / f"w{w}_r{r}.zarr", client=client, progress=False)
                wall = time.perf_counter() - t0
                cell = res.dataset().wall_time_s.values.ravel()
                run = {"workers": w, "round": r, "wall_s": wall, "cell_s_median": float(np.median(cell)),
                       "cell_s_sum": float(cell.sum()), "busy_fraction": float(cell.sum()) / (w * wall),
                       "load_before": load0, "load_after": _load()}
                out["runs"].append(run)
                print(f"  round {r}, {w} worker(s): {wall:.1f} s, busy {run['busy_fraction']:.2f}",
                      flush=True)
    best = {w: min(x["wall_s"] for x in out["runs"] if x["workers"] == w) for w in (1, 2)}
    out["best_wall_s"] = best
    out["speedup_2_over_1"] = best[1] / best[2]
    wall = {(x["workers"], x["round"]): x["wall_s"] for x in out["runs"]}
    out["speedup_2_over_1_per_round"] = [wall[1, r] / wall[2, r] for r in range(rounds)]
    return out


def per_cell_overhead(n_cells: int, tmp: Path) -> dict:
    from distributed import Client, LocalCluster

    from ghostsing.experiments.sweep import SweepSpec, run_sweep
    from ghostsing.experiments.sweep_store import SweepStore

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      env={"NUMBA_NUM_THREADS": "1"}) as cl, Client(cl) as client:
        run_sweep(SweepSpec("bench_sweep:NOOP", seeds=4), tmp / "noop_warm.zarr", client=client,
                  progress=False)
        spec = SweepSpec("bench_sweep:NOOP", seeds=n_cells)
        t0 = time.perf_counter()
        run_sweep(spec, tmp / "noop.zarr", client=client, progress=False)
        wall = time.perf_counter() - t0
        batched = SweepSpec("bench_sweep:NOOP", seeds=tuple(range(10_000, 10_000 + n_cells)), batch=8)
        t0 = time.perf_counter()
        run_sweep(batched, tmp / "noop_batch8.zarr", client=client, progress=False)
        wall_b8 = time.perf_counter() - t0
    # the store alone: record writes (fsync'ed) and one array rebuild of a plateau-sized store
    st = SweepStore(tmp / "alone.zarr", spec.to_dict(), spec.layout())
    recs = [{"key": c.key, "status": "done", "error": "", "config": "{}", "version": "x", "host": "h",
             "worker": "w", "wall_time_s": 1.0, "scalars": {f"s{i}": float(i) for i in range(8)}}
            for c in spec.cells()]
    t1 = time.perf_counter()
    for r in recs:
        st.write(r)
    write_s = (time.perf_counter() - t1) / len(recs)
    st_d = SweepStore(tmp / "durable.zarr", spec.to_dict(), spec.layout(), durable=True)
    t1 = time.perf_counter()
    for r in recs[:100]:
        st_d.write(r)
    durable_s = (time.perf_counter() - t1) / 100
    t2 = time.perf_counter()
    st.flush()
    flush_s = time.perf_counter() - t2
    return {"noop_cells": n_cells, "workers": 2, "wall_s": wall,
            "overhead_per_cell_s": wall / n_cells * 2,  # two workers: each cell holds one for this long
            "overhead_per_cell_batch8_s": wall_b8 / n_cells * 2,
            "client_time_per_cell_s": wall / n_cells,
            "record_write_s": write_s, "record_write_durable_s": durable_s, "array_rebuild_s": flush_s,
            "array_rebuild_cells": n_cells}


def shipped_cells() -> dict:
    from ghostsing.experiments.sweep_store import open_sweep

    out = {}
    for name in ("plateau", "plateau_symmetric", "deep_skips"):
        path = ROOT / "sweeps" / "results" / f"{name}.zarr"
        if not path.exists():
            continue
        ds = open_sweep(path)
        t = ds.wall_time_s.values.ravel()
        t = t[np.isfinite(t)]
        out[name] = {"cells": int(t.size), "median_s": float(np.median(t)), "mean_s": float(t.mean()),
                     "min_s": float(t.min()), "max_s": float(t.max()), "costs_s": t.tolist()}
    return out


def simulated(workers: list[int], costs: np.ndarray, mean_target: float, tmp: Path) -> dict:
    """Many worker threads over scaled measured cell costs (module docstring, point 3)."""
    from distributed import Client, LocalCluster

    from ghostsing.experiments.sweep import SweepSpec, run_sweep

    costs = np.minimum(costs, np.quantile(costs, 0.9))  # no single cell longer than the whole run
    scale = mean_target / float(np.mean(costs))
    rows = []
    rng = np.random.default_rng(0)
    for w in workers:
        n = 16 * w
        durations = rng.choice(costs * scale, size=n) + rng.uniform(0.0, 1e-6, n)  # distinct cells
        with LocalCluster(n_workers=1, threads_per_worker=w, processes=False, dashboard_address=":0") as cl, \
                Client(cl) as client:
            run_sweep(SweepSpec("bench_sweep:NOOP", seeds=2), tmp / f"sim_warm{w}.zarr", client=client,
                      progress=False)
            spec = SweepSpec("bench_sweep:NOOP", grid={"duration": durations.tolist()}, seeds=(0,))
            t0 = time.perf_counter()
            run_sweep(spec, tmp / f"sim{w}.zarr", client=client, progress=False, flush_s=2.0)
            wall = time.perf_counter() - t0
        ideal = float(durations.sum()) / w
        longest = float(durations.max())
        rows.append({"workers": w, "cells": n, "wall_s": wall, "ideal_s": max(ideal, longest),
                     "efficiency": max(ideal, longest) / wall, "cells_per_s": n / wall})
        print(f"  simulated {w:4d} workers: efficiency {rows[-1]['efficiency']:.2f}, "
              f"{rows[-1]['cells_per_s']:.0f} cells/s", flush=True)
    return {"scale": scale, "mean_cell_s_simulated": mean_target, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sweep.json"))
    args = ap.parse_args(argv)
    import ghostsing

    tmp = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    try:
        res: dict = {"benchmark": "python benchmarks/bench_sweep.py" + (" --quick" if args.quick else ""),
                     "ghostsing_version": ghostsing.__version__, "python": platform.python_version(),
                     "cpu_count": os.cpu_count(), "load_start": _load()}
        import dask
        import distributed
        import xarray
        import zarr

        res["versions"] = {"dask": dask.__version__, "distributed": distributed.__version__,
                           "xarray": xarray.__version__, "zarr": zarr.__version__}
        print("1 vs 2 workers ...", flush=True)
        res["one_vs_two"] = one_vs_two(6 if args.quick else 8, tmp, rounds=1 if args.quick else 3)
        print(f"  speed-up {res['one_vs_two']['speedup_2_over_1']:.2f}", flush=True)
        print("per-cell overhead ...", flush=True)
        res["overhead"] = ov = per_cell_overhead(100 if args.quick else 300, tmp)
        print(f"  batch = 8: {ov['overhead_per_cell_batch8_s'] * 1e3:.1f} ms of a worker per cell",
              flush=True)
        print(f"  {ov['overhead_per_cell_s'] * 1e3:.1f} ms of a worker per cell; record write "
              f"{ov['record_write_s'] * 1e3:.2f} ms; array rebuild {ov['array_rebuild_s'] * 1e3:.0f} ms",
              flush=True)
        shipped = shipped_cells()
        res["shipped"] = {k: {kk: vv for kk, vv in v.items() if kk != "costs_s"} for k, v in shipped.items()}
        for name, s in res["shipped"].items():
            s["overhead_percent_of_median_cell"] = 100 * ov["overhead_per_cell_s"] / s["median_s"]
            s["overhead_percent_of_mean_cell"] = 100 * ov["overhead_per_cell_s"] / s["mean_s"]
            per_b8 = ov["overhead_per_cell_batch8_s"]
            s["overhead_percent_of_median_cell_batch8"] = 100 * per_b8 / s["median_s"]
            print(f"  {name}: median cell {s['median_s']:.2f} s -> overhead "
                  f"{s['overhead_percent_of_median_cell']:.2f} % of the median cell", flush=True)
        costs = np.asarray(shipped["plateau"]["costs_s"]) if "plateau" in shipped else np.array([1.0])
        print("simulated many workers ...", flush=True)
        ws = [1, 8, 32, 128] if args.quick else [1, 8, 32, 128, 256]
        res["simulated"] = simulated(ws, costs, 0.25, tmp)
        # where the one client saturates: W * overhead / mean cell = 1
        client_s = ov["client_time_per_cell_s"]
        res["saturation_workers_at_mean_cell"] = {
            name: s["mean_s"] / client_s for name, s in res["shipped"].items()}
        res["load_end"] = _load()
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        from ghostsing._io import write_json_atomic

        write_json_atomic(out, res)
        keys = ("one_vs_two", "overhead", "shipped", "saturation_workers_at_mean_cell")
        print(json.dumps({k: res[k] for k in keys}, indent=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
