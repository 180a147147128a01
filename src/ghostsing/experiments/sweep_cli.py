"""``ghostsing sweep``: the command line of :mod:`ghostsing.experiments.sweep`.

    ghostsing sweep sweeps/plateau.toml                              # a sweep file (README, docs/sweeps.md)
    ghostsing sweep plateau-cell --grid alpha=0,1e-3,1e-2 --grid lr=1e-2,3e-2 --seeds 3 --store runs/p.zarr
    ghostsing sweep plateau-cell --random 20 --range alpha=1e-4:1e-1:log --store runs/r.zarr
    ghostsing sweep sweeps/plateau.toml --scheduler tcp://head:8786  # a running Dask cluster
    ghostsing sweep sweeps/deep_skips.toml --cluster slurm           # batch jobs via dask-jobqueue

:func:`add_parser` adds the sub-command to the ``ghostsing`` parser and :func:`main` runs it; flags
given with a sweep file override the file's settings.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "main"]


def _key_values(text: str) -> tuple[str, list[str]]:
    key, sep, values = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not FIELD=VALUES; allowed e.g. alpha=1e-3,1e-2")
    return key.strip(), [v.strip() for v in values.split(",") if v.strip()]


def _range(text: str) -> tuple[str, float, float, str]:
    key, sep, rest = text.partition("=")
    parts = rest.split(":")
    try:
        if not sep or len(parts) not in (2, 3):
            raise ValueError
        return key.strip(), float(parts[0]), float(parts[1]), parts[2] if len(parts) == 3 else "linear"
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not FIELD=LOW:HIGH[:linear|log|int]") from None


def _seeds(text: str) -> int | list[int]:
    try:
        return [int(s) for s in text.split(",")] if "," in text else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count or seeds such as 0,1,2") from None


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``sweep`` to the sub-parsers ``sub`` of the ``ghostsing`` command line."""
    from ghostsing.experiments.sweep import CLUSTERS

    description = ("Run a grid (or random design) x seeds of a registered experiment on dask.distributed; "
                   "every cell goes into one Zarr store (xarray.open_zarr); a rerun skips stored cells. "
                   "See docs/sweeps.md.")
    p = sub.add_parser("sweep", help="run a grid of an experiment on dask (results in one Zarr store)",
                       description=description)
    p.add_argument("target", help="a sweep file (.toml) or a registered experiment name")
    p.add_argument("--grid", action="append", type=_key_values, default=[], metavar="FIELD=V1,V2",
                   help="a grid axis (repeat for more axes)")
    p.add_argument("--random", type=int, default=None, metavar="N", help="N random samples of the --range "
                   "fields instead of a grid")
    p.add_argument("--range", action="append", type=_range, default=[], metavar="FIELD=LOW:HIGH[:SCALE]",
                   help="a sampled field of the random design (scale linear, log or int)")
    p.add_argument("--design-seed", type=int, default=0, help="seed of the random design")
    p.add_argument("--seeds", type=_seeds, default=None, help="a count (0..n-1) or a list such as 3,7")
    p.add_argument("--preset", default=None, help="the experiment's base preset")
    p.add_argument("--set", action="append", type=_key_values, default=[], metavar="FIELD=VALUE",
                   help="a fixed setting of every cell")
    p.add_argument("--store", default=None, help="the results store, e.g. runs/sweep.zarr")
    p.add_argument("--cluster", choices=CLUSTERS, default=None, help="where to run (default: local, one "
                   "worker process per core)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS", help="a running Dask scheduler")
    p.add_argument("--workers", type=int, default=None, help="local workers, or jobqueue jobs")
    p.add_argument("--gpu", action="store_true", help="deep cells ask for a GPU (worker resource GPU=1)")
    p.add_argument("--batch", type=int, default=None, help="cells per Dask task (default 1)")
    p.add_argument("--retry-failed", action="store_true", help="rerun cells stored as failed")
    p.add_argument("--durable", action="store_true", help="fsync every cell record (survives a power loss)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _spec_from_args(args: argparse.Namespace):
    from ghostsing.experiments.sweep import RandomDesign, SweepSpec, load_sweep_toml

    extra: dict[str, Any] = {}
    if args.grid:
        extra["grid"] = {k: v for k, v in args.grid}
    if args.random is not None or args.range:
        if args.random is None or not args.range:
            raise ValueError("--random N needs --range FIELD=LOW:HIGH (and the other way round)")
        extra["random"] = RandomDesign(args.random, tuple(args.range), args.design_seed)
        extra["grid"] = ()
    if args.seeds is not None:
        extra["seeds"] = args.seeds
    if args.preset is not None:
        extra["preset"] = args.preset
    if args.gpu:
        extra["gpu"] = True
    if args.batch is not None:
        extra["batch"] = args.batch
    sets = {k: (v[0] if len(v) == 1 else v) for k, v in args.set}
    if str(args.target).endswith(".toml") or Path(args.target).is_file():
        spec = load_sweep_toml(args.target)
        if sets:
            extra["settings"] = {**dict(spec.settings), **sets}
        if "random" in extra and spec.grid:
            extra["grid"] = ()
        if "grid" in extra and extra["grid"] and spec.random is not None:
            extra["random"] = None
        import dataclasses

        return dataclasses.replace(spec, **extra) if extra else spec
    return SweepSpec(args.target, settings=sets, **extra)


def main(args: argparse.Namespace) -> int:
    """Run the sweep the parsed ``args`` describe; prints a summary; 0 if no cell failed, else 1."""
    from ghostsing.experiments.sweep import run_sweep

    spec = _spec_from_args(args)
    store = args.store or spec.store
    if store is None:
        raise ValueError("no store given; allowed: --store DIR.zarr (or store = ... in the sweep file)")
    result = run_sweep(spec, store, cluster=args.cluster, scheduler=args.scheduler, workers=args.workers,
                       progress=not args.quiet, retry_failed=args.retry_failed, durable=args.durable)
    print(f"sweep {spec.experiment}: {result.n_cells} cells, {result.n_skipped} stored before, "
          f"{result.n_run} run now; {result.n_done} done, {result.n_failed} failed in "
          f"{result.wall_time_s:.1f} s -> {result.store} (xarray.open_zarr)")
    return 0 if result.n_failed == 0 else 1
