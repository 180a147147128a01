"""Sweeps: a grid (or random) design over the config fields of an experiment, run on dask.distributed.

One idea: a sweep, from its spec (a grid or random design over an experiment's config fields, and seeds) to
its cells and their run on dask.distributed.

A :class:`SweepSpec` names an experiment (a registered name, or ``package.module:ATTR`` for an
:class:`~ghostsing.experiments.base.Experiment` outside the registry), a preset, fixed settings, grid
axes (field -> values), an optional random design (``n`` samples of some fields over ranges, seeded)
and seeds.  Its cells are the product of the axes (or the samples) and the seeds; each cell is a pure
task: the resolved config (:func:`~ghostsing.experiments.base.config_to_dict`), the experiment name and
the package version hash to the cell's ``key``, the name of its record in the store and of its Dask
task.  :func:`run_sweep` runs the cells that the store (:mod:`ghostsing.experiments.sweep_store`) does
not hold yet:

* ``cluster="local"`` (default): a ``LocalCluster`` with one single-threaded worker process per core;
* ``scheduler="tcp://host:8786"``: a running Dask cluster (``dask scheduler`` + ``dask worker``);
* ``cluster="slurm"`` / ``"pbs"``: ``dask_jobqueue.SLURMCluster`` / ``PBSCluster`` built from
  ``spec.cluster`` (``jobs`` = how many batch jobs to start, the rest are the class's keyword
  arguments: ``cores``, ``memory``, ``walltime``, ``queue``, ``job_extra_directives``, ...);
* ``cluster="serial"``: in this process, no Dask (the reference the tests compare the clusters to).

Deep cells ask for a GPU through worker resources (``resources={"GPU": 1}``) when the experiment's kind
is ``"deep"`` and ``spec.gpu`` is true; start the workers with ``--resources GPU=1`` (jobqueue:
``worker_extra_args = ["--resources", "GPU=1"]``).

The client is the only writer of the store: it writes each cell's record when its result arrives, so
cells are written as they finish, a rerun skips stored cells, and a killed sweep resumes.  A cell that
raises is recorded as ``failed`` with its error (and traceback) and the sweep goes on; a cell whose
worker dies is rescheduled by Dask on another worker (and its task retried ``spec.retries`` times on
errors outside the experiment); ``KilledWorker`` after repeated losses is recorded as a failure.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import itertools
import json
import math
import os
import socket
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ghostsing._io import to_jsonable
from ghostsing.experiments.base import Experiment, ExperimentOutput, config_from_mapping, config_to_dict
from ghostsing.experiments.sweep_store import STATUS_DONE, STATUS_FAILED, SweepStore

__all__ = ["SweepSpec", "RandomDesign", "Cell", "SweepResult", "resolve_experiment", "cell_key",
           "cell_scalars", "run_cell", "run_cells", "run_sweep", "jobqueue_cluster", "task_resources",
           "CLUSTERS", "load_sweep_toml"]

CLUSTERS: tuple[str, ...] = ("local", "serial", "slurm", "pbs")
SCALES: tuple[str, ...] = ("linear", "log", "int")


def resolve_experiment(ref: str | Experiment) -> Experiment:
    """The experiment ``ref`` names: a registered name, or ``package.module:ATTR`` (an ``Experiment``, or
    the name of one in that module's ``EXPERIMENTS``)."""
    if isinstance(ref, Experiment):
        return ref
    from ghostsing.experiments import registry

    if ref in registry.CATALOG:
        return registry.get(ref)
    if ":" in ref:
        module_name, _, attr = ref.partition(":")
        module = importlib.import_module(module_name)
        found = getattr(module, attr, None)
        if found is None:
            found = {e.name: e for e in getattr(module, "EXPERIMENTS", ())}.get(attr)
        if isinstance(found, Experiment):
            return found
        raise ValueError(f"{ref!r}: {module_name} has no Experiment {attr!r}")
    return registry.get(ref)  # raises naming the registered experiments


@dataclass(frozen=True)
class RandomDesign:
    """``n`` samples of the fields in ``ranges`` (field -> ``(low, high, scale)``, scale one of
    :data:`SCALES`: uniform, log-uniform, or uniform integers in ``low..high``), drawn with ``seed``."""

    n: int
    ranges: tuple[tuple[str, float, float, str], ...]
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"random n={self.n!r} is not allowed; allowed: an integer >= 1")
        if not self.ranges:
            raise ValueError("random design: ranges is empty; allowed: at least one field = [low, high]")
        for name, lo, hi, scale in self.ranges:
            if scale not in SCALES:
                raise ValueError(f"random {name}: scale={scale!r} is not allowed; allowed: "
                                 f"{', '.join(SCALES)}")
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi) or (scale == "log" and lo <= 0):
                raise ValueError(f"random {name}: range [{lo}, {hi}] is not allowed; allowed: finite "
                                 "low < high (low > 0 for log)")

    def samples(self) -> dict[str, list]:
        rng = np.random.default_rng(self.seed)
        out: dict[str, list] = {}
        for name, lo, hi, scale in self.ranges:
            if scale == "log":
                vals = np.exp(rng.uniform(math.log(lo), math.log(hi), self.n))
            elif scale == "int":
                vals = rng.integers(int(lo), int(hi) + 1, self.n)
            else:
                vals = rng.uniform(lo, hi, self.n)
            out[name] = [v.item() for v in vals]
        return out


@dataclass(frozen=True)
class Cell:
    """One task of a sweep: its position in the store's arrays, coordinates, seed, config and key."""

    index: tuple[int, ...]
    coords: Mapping[str, Any]
    seed: int | None
    config: Any
    key: str


def cell_key(experiment: str, config: Any, version: str | None = None) -> str:
    """The content hash of a cell: SHA-256 of the experiment name, resolved config and package version."""
    import ghostsing

    doc = {"experiment": experiment, "config": config_to_dict(config),
           "version": ghostsing.__version__ if version is None else version}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:24]


def _tuple_values(name: str, values: Any) -> tuple:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        values = (values,)
    values = tuple(values)
    if not values:
        raise ValueError(f"grid axis {name!r} has no values; allowed: one or more")
    if len(set(map(repr, values))) != len(values):
        raise ValueError(f"grid axis {name!r} repeats values: {list(values)}")
    return values


@dataclass(frozen=True)
class SweepSpec:
    """A sweep (module docstring).

    Attributes
    ----------
    experiment : registered name or ``module:ATTR``.
    preset : the base preset (None: the experiment's ``"default"``).
    settings : fixed overrides of the preset, field -> value (``[set]`` in TOML).
    grid : axes, ``((field, (values...)), ...)``; the store has one dimension per axis, in this order.
    random : a :class:`RandomDesign` instead of (not with) a grid: one ``sample`` dimension.
    seeds : seeds, one ``seed`` dimension; each is written into the config field ``seed_field``.
    seed_field : the config field that receives the seed (None: no seed dimension; ``seeds`` must be
        empty).
    retries : Dask retries of a cell's task (errors outside the experiment, e.g. a worker that fails
        to import it); a cell whose experiment raises is recorded as failed and not retried.
    gpu : deep experiments ask for ``{"GPU": 1}`` of worker resources.
    batch : cells per Dask task (taken with a stride through the grid, so that a task does not hold
        a block of neighbours of similar cost); more than 1 divides the scheduler's
        per-cell cost for sweeps of sub-second cells, and a batch's records are written when it finishes.
    cluster : ``kind`` (one of :data:`CLUSTERS`), ``workers`` (local) and ``options`` (jobqueue class
        keyword arguments plus ``jobs``); the command line's ``--cluster``/``--scheduler`` override it.
    store : default store path (the TOML's ``store``).
    """

    experiment: str
    preset: str | None = None
    settings: tuple[tuple[str, Any], ...] = ()
    grid: tuple[tuple[str, tuple], ...] = ()
    random: RandomDesign | None = None
    seeds: tuple[int, ...] = (0,)
    seed_field: str | None = "seed"
    retries: int = 2
    gpu: bool = False
    batch: int = 1
    cluster: Mapping[str, Any] = field(default_factory=dict)
    store: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.experiment, str) or not self.experiment:
            raise ValueError(f"experiment={self.experiment!r} is not allowed; allowed: a registered name")
        settings = self.settings.items() if isinstance(self.settings, Mapping) else self.settings
        object.__setattr__(self, "settings", tuple((str(k), v) for k, v in settings))
        grid = self.grid.items() if isinstance(self.grid, Mapping) else self.grid
        grid = tuple((str(k).replace("-", "_"), _tuple_values(k, v)) for k, v in grid)
        object.__setattr__(self, "grid", grid)
        names = [k for k, _ in self.grid]
        if len(set(names)) != len(names):
            raise ValueError(f"grid repeats an axis: {names}")
        if self.random is not None and self.grid:
            raise ValueError("a sweep has a grid or a random design, not both")
        seeds = tuple(range(self.seeds)) if isinstance(self.seeds, int) else tuple(self.seeds)
        if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0 for s in seeds):
            raise ValueError(f"seeds={self.seeds!r} is not allowed; allowed: a count or integers >= 0")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds repeat: {list(seeds)}")
        object.__setattr__(self, "seeds", tuple(int(s) for s in seeds))
        if self.seed_field is None and len(self.seeds) > 1:
            raise ValueError("seeds given but seed_field is None; allowed: name the config field of the seed")
        sampled = {r[0] for r in (self.random.ranges if self.random else ())}
        reserved = {"seed", "sample"} & (set(names) | sampled)
        if reserved and self.seed_field is not None:
            raise ValueError(f"{sorted(reserved)} cannot be grid axes (the seed dimension); use seeds=")
        if isinstance(self.batch, bool) or not isinstance(self.batch, int) or self.batch < 1:
            raise ValueError(f"batch={self.batch!r} is not allowed; allowed: an integer >= 1")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ValueError(f"retries={self.retries!r} is not allowed; allowed: an integer >= 0")
        kind = dict(self.cluster).get("kind", "local")
        if kind not in CLUSTERS:
            raise ValueError(f"cluster kind={kind!r} is not allowed; allowed: {', '.join(CLUSTERS)}")
        object.__setattr__(self, "cluster", dict(self.cluster))

    # ----------------------------------------------------------------------------- (de)serialise
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, as stored in ``sweep.json`` (cluster settings excluded: where a sweep runs does
        not change its cells)."""
        d = {"experiment": self.experiment, "preset": self.preset, "settings": dict(self.settings),
             "grid": {k: list(v) for k, v in self.grid}, "seeds": list(self.seeds),
             "seed_field": self.seed_field}
        if self.random is not None:
            d["random"] = {"n": self.random.n, "seed": self.random.seed,
                           "ranges": {n: [lo, hi, s] for n, lo, hi, s in self.random.ranges}}
        return to_jsonable(d)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], **extra: Any) -> SweepSpec:
        """A spec from a mapping (``sweep.json`` or a TOML document, see :func:`load_sweep_toml`)."""
        known = {"experiment", "preset", "settings", "set", "grid", "random", "seeds", "seed_field",
                 "retries", "gpu", "batch", "cluster", "store"}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"{sorted(unknown)} are not sweep settings; allowed: {', '.join(sorted(known))}")
        random = d.get("random")
        if random is not None:
            ranges = []
            for name, r in (random.get("ranges") or {}).items():
                if isinstance(r, Mapping):
                    lo, hi, scale = r["low"], r["high"], r.get("scale", "linear")
                else:
                    lo, hi, *rest = r
                    scale = rest[0] if rest else "linear"
                ranges.append((str(name), float(lo), float(hi), str(scale)))
            random = RandomDesign(int(random.get("n", 0)), tuple(ranges), int(random.get("seed", 0)))
        settings = dict(d.get("settings") or {})
        settings.update(d.get("set") or {})
        kw = {"experiment": d["experiment"], "preset": d.get("preset"), "settings": settings,
              "grid": dict(d.get("grid") or {}), "random": random, "seeds": d.get("seeds", (0,)),
              "seed_field": d.get("seed_field", "seed"), "retries": d.get("retries", 2),
              "gpu": bool(d.get("gpu", False)), "batch": int(d.get("batch", 1)),
              "cluster": dict(d.get("cluster") or {}),
              "store": d.get("store")}
        kw.update(extra)
        return cls(**kw)

    # ----------------------------------------------------------------------------- cells
    def experiment_object(self) -> Experiment:
        return resolve_experiment(self.experiment)

    def dims(self) -> tuple[str, ...]:
        axes = ("sample",) if self.random is not None else tuple(k for k, _ in self.grid)
        return axes + (("seed",) if self.seed_field is not None else ())

    def cells(self) -> list[Cell]:
        """Every cell, in row-major order of :meth:`dims` (configs validated here, at the boundary)."""
        exp = self.experiment_object()
        base = exp.config(self.preset, dict(self.settings))
        if self.random is not None:
            samples = self.random.samples()
            points = [({k: v[i] for k, v in samples.items()}, (i,)) for i in range(self.random.n)]
        else:
            axes = [v for _, v in self.grid]
            names = [k for k, _ in self.grid]
            points = [(dict(zip(names, combo, strict=True)), idx)
                      for idx, combo in zip(itertools.product(*[range(len(a)) for a in axes]),
                                            itertools.product(*axes), strict=True)]
        seeds: Sequence[int | None] = self.seeds if self.seed_field is not None else (None,)
        out = []
        for coords, idx in points:
            for j, seed in enumerate(seeds):
                values = dict(coords)
                if seed is not None:
                    values[self.seed_field] = seed
                try:
                    config = config_from_mapping(exp.config_type, values, base=base)
                except ValueError as exc:
                    raise ValueError(f"sweep cell {values}: {exc}") from None
                index = idx + ((j,) if seed is not None else ())
                out.append(Cell(index, coords, seed, config, cell_key(exp.name, config)))
        keys = [c.key for c in out]
        if len(set(keys)) != len(keys):
            raise ValueError("two cells resolve to the same config (an axis that does not change it?)")
        return out

    def layout(self, cells: Sequence[Cell] | None = None) -> dict[str, Any]:
        """Dims, coordinates and key -> index of the store's arrays."""
        cells = self.cells() if cells is None else cells
        coords: dict[str, Any] = {}
        coord_dims: dict[str, str] = {}
        if self.random is not None:
            coords["sample"] = list(range(self.random.n))
            for name, values in self.random.samples().items():
                coords[name] = values
                coord_dims[name] = "sample"
        else:
            coords.update({k: list(v) for k, v in self.grid})
        if self.seed_field is not None:
            coords["seed"] = list(self.seeds)
        return {"dims": self.dims(), "coords": coords, "coord_dims": coord_dims,
                "index": {c.key: c.index for c in cells}}

    def uses_gpu(self) -> bool:
        return bool(self.gpu) and self.experiment_object().kind == "deep"


# ------------------------------------------------------------------------------------------ the task
def cell_scalars(output: ExperimentOutput) -> dict[str, float]:
    """What a cell stores: :meth:`ExperimentOutput.scalars` plus the numbers inside lists of the summary
    (``runs/0/final_train_loss``: experiments that report one entry per run in a list)."""
    out = output.scalars()

    def walk(prefix: str, obj: Any, in_list: bool) -> None:
        if isinstance(obj, Mapping):
            for k, v in obj.items():
                walk(f"{prefix}/{k}", v, in_list)
        elif isinstance(obj, (list, tuple, np.ndarray)):
            for i, v in enumerate(np.asarray(obj).ravel().tolist() if isinstance(obj, np.ndarray) else obj):
                walk(f"{prefix}/{i}", v, True)
        elif in_list and isinstance(obj, (bool, int, float, np.bool_, np.integer, np.floating)):
            out.setdefault(prefix, float(obj))

    for key, value in output.summary.items():
        if isinstance(value, (list, tuple, Mapping, np.ndarray)):
            walk(str(key), value, False)
    return out


def run_cell(experiment: str, config: Any, key: str) -> dict[str, Any]:
    """Run one cell (on a worker): the experiment into a temporary folder; returns its record.

    Exceptions of the experiment are caught and returned as a ``failed`` record (with the traceback), so
    one bad cell never stops a sweep.
    """
    import ghostsing

    exp = resolve_experiment(experiment)
    rec: dict[str, Any] = {"key": key, "experiment": exp.name, "version": ghostsing.__version__,
                           "config": json.dumps(config_to_dict(config), sort_keys=True),
                           "host": socket.gethostname(), "worker": f"{socket.gethostname()}:{os.getpid()}"}
    t0 = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="ghostsing-cell-") as tmp:
            output = exp.run(config, Path(tmp), resume=False, progress=False)
        rec.update(status=STATUS_DONE, error="", scalars=cell_scalars(output))
    except Exception as exc:  # noqa: BLE001 - recorded, the sweep goes on
        rec.update(status=STATUS_FAILED, error=f"{type(exc).__name__}: {exc}",
                   traceback=traceback.format_exc(limit=20), scalars={})
    rec["wall_time_s"] = time.perf_counter() - t0
    return rec


def run_cells(experiment: str, items: Sequence[tuple[Any, str]]) -> list[dict[str, Any]]:
    """:func:`run_cell` for each ``(config, key)`` of a batch, in order (one Dask task)."""
    return [run_cell(experiment, config, key) for config, key in items]


# ------------------------------------------------------------------------------------------ running
@dataclass
class SweepResult:
    """What :func:`run_sweep` did: the store path, cells in total, skipped (stored before), run now,
    done and failed (in the store after the run), wall time, and the dashboard link if any."""

    store: Path
    n_cells: int
    n_skipped: int
    n_run: int
    n_done: int
    n_failed: int
    wall_time_s: float
    dashboard: str | None = None
    ran_keys: list[str] = field(default_factory=list)

    def dataset(self):
        from ghostsing.experiments.sweep_store import open_sweep

        return open_sweep(self.store)


def _make_cluster(kind: str, spec: SweepSpec, workers: int | None):
    """``(cluster, n_workers_expected)`` for a kind of :data:`CLUSTERS` other than ``serial``."""
    options = dict(spec.cluster.get("options") or {})
    if kind == "local":
        from distributed import LocalCluster

        # GPU cells: one worker holding {"GPU": 1} unless told otherwise (several GPUs on one machine:
        # start one `dask worker --resources GPU=1` per GPU with its CUDA_VISIBLE_DEVICES, use --scheduler)
        default = 1 if spec.uses_gpu() else (os.cpu_count() or 1)
        n = workers or spec.cluster.get("workers") or default
        resources = task_resources(spec)
        # one single-threaded worker per core: Numba's parallel loops get one thread too (no oversubscription)
        env = {"NUMBA_NUM_THREADS": "1", **dict(options.pop("env", {}))}
        cluster = LocalCluster(n_workers=int(n), threads_per_worker=1, processes=True, resources=resources,
                               dashboard_address=options.pop("dashboard_address", ":0"), env=env, **options)
        return cluster, int(n)
    cluster, jobs = jobqueue_cluster(kind, spec, workers)
    cluster.scale(jobs=jobs)
    return cluster, jobs


def jobqueue_cluster(kind: str, spec: SweepSpec, jobs: int | None = None):
    """``(cluster, jobs)``: a ``dask_jobqueue`` ``SLURMCluster`` or ``PBSCluster`` from ``spec.cluster
    ["options"]`` (``jobs`` there, or the argument, is how many batch jobs to start; not started here).
    GPU sweeps of deep experiments start their workers with ``--resources GPU=1``."""
    import dask_jobqueue

    if kind not in ("slurm", "pbs"):
        raise ValueError(f"cluster={kind!r} is not a batch system; allowed: slurm, pbs")
    options = dict(spec.cluster.get("options") or {})
    n_jobs = int(options.pop("jobs", jobs or 1))
    cls = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}[kind]
    if spec.uses_gpu() and "worker_extra_args" not in options:
        options["worker_extra_args"] = ["--resources", "GPU=1"]
    options.setdefault("processes", 1)
    return cls(**options), n_jobs


class _Progress:
    """A tqdm bar over cells with done / failed / running in the postfix (or nothing)."""

    def __init__(self, total: int, initial: int, enabled: bool, desc: str):
        self.bar = None
        self.counts = {"done": 0, "failed": 0, "running": 0}
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, unit="cell", dynamic_ncols=True)

    def update(self, status: str | None = None, running: int | None = None) -> None:
        if status is not None:
            self.counts[status] += 1
        if running is not None:
            self.counts["running"] = running
        if self.bar is not None:
            if status is not None:
                self.bar.update(1)
            self.bar.set_postfix(self.counts, refresh=status is None)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_sweep(spec: SweepSpec, store: str | os.PathLike | None = None, *, cluster: str | None = None,
              scheduler: str | None = None, client: Any = None, workers: int | None = None,
              progress: bool = True, retry_failed: bool = False, flush_s: float = 2.0, durable: bool = False,
              on_record: Callable[[dict[str, Any]], None] | None = None,
              echo: Callable[[str], None] = print) -> SweepResult:
    """Run the cells of ``spec`` that ``store`` does not hold (module docstring); returns a summary.

    ``client`` (a ``distributed.Client``) wins over ``scheduler`` (an address), which wins over
    ``cluster`` (default ``spec.cluster["kind"]`` or ``"local"``).  ``retry_failed`` reruns cells stored as
    failed.  The arrays of the store are rebuilt at most every ``flush_s`` seconds (and at least 10 times
    as long as the last rebuild took, so that rebuilding never takes more than a tenth of the client's
    time) and at the end; ``durable`` fsyncs every record (:mod:`~ghostsing.experiments.sweep_store`).
    """
    t_start = time.perf_counter()
    path = store if store is not None else spec.store
    if path is None:
        raise ValueError("no store given; allowed: a path such as runs/sweep.zarr (store= or --store)")
    cells = spec.cells()
    st = SweepStore(path, spec.to_dict(), spec.layout(cells), durable=durable)
    stored = st.done_keys() | (set() if retry_failed else st.failed_keys())
    todo = [c for c in cells if c.key not in stored]
    exp_ref = spec.experiment
    dashboard = None
    bar = _Progress(len(cells), len(cells) - len(todo), progress and bool(todo), desc=spec.experiment)
    last_flush, flush_cost = time.perf_counter(), 0.0
    ran: list[str] = []

    def record(rec: dict[str, Any]) -> None:
        nonlocal last_flush, flush_cost
        st.write(rec)
        ran.append(rec["key"])
        if on_record is not None:
            on_record(rec)
        bar.update(rec["status"])
        now = time.perf_counter()
        if now - last_flush > max(flush_s, 10 * flush_cost):
            st.flush()
            last_flush = time.perf_counter()
            flush_cost = last_flush - now

    kind = cluster or spec.cluster.get("kind", "local")
    if kind not in CLUSTERS:
        raise ValueError(f"cluster={kind!r} is not allowed; allowed: {', '.join(CLUSTERS)}")
    try:
        if not todo:
            pass
        elif client is None and scheduler is None and kind == "serial":
            for c in todo:
                bar.update(running=1)
                record(run_cell(exp_ref, c.config, c.key))
        else:
            dashboard = _run_distributed(spec, todo, record, bar, kind=kind, scheduler=scheduler,
                                         client=client, workers=workers, echo=echo if progress else None)
    finally:
        bar.close()
        st.flush()
    return SweepResult(Path(path), len(cells), len(cells) - len(todo), len(ran), len(st.done_keys()),
                       len(st.failed_keys()), time.perf_counter() - t_start, dashboard, ran)


def _run_distributed(spec: SweepSpec, todo: Sequence[Cell], record: Callable[[dict[str, Any]], None],
                     bar: _Progress, *, kind: str, scheduler: str | None, client: Any, workers: int | None,
                     echo: Callable[[str], None] | None) -> str | None:
    from distributed import Client, as_completed
    from distributed.client import FutureCancelledError

    own_cluster = own_client = None
    try:
        if client is None:
            if scheduler is not None:
                client = own_client = Client(scheduler)
            else:
                own_cluster, _ = _make_cluster(kind, spec, workers)
                client = own_client = Client(own_cluster)
        dashboard = getattr(client, "dashboard_link", None)
        if echo is not None:
            echo(f"sweep {spec.experiment}: {len(todo)} cells on {client.scheduler.address}; "
                 f"dashboard: {dashboard}")
        resources = task_resources(spec)
        futures = {}
        n_tasks = -(-len(todo) // spec.batch)
        for i in range(n_tasks):
            cells = list(todo[i::n_tasks])  # strided: neighbours in the grid (often alike in cost) spread out
            if len(cells) == 1:
                c = cells[0]
                fut = client.submit(run_cell, spec.experiment, c.config, c.key, key=f"ghostsing-cell-{c.key}",
                                    retries=spec.retries, resources=resources, pure=False)
            else:
                fut = client.submit(run_cells, spec.experiment, [(c.config, c.key) for c in cells],
                                    key=f"ghostsing-cells-{cells[0].key}-{len(cells)}", retries=spec.retries,
                                    resources=resources, pure=False)
            futures[fut] = cells
        pending = len(todo)
        last_poll = 0.0
        for fut in as_completed(list(futures)):
            cells = futures[fut]
            try:
                result = fut.result()
                recs = [result] if isinstance(result, dict) else list(result)
            except FutureCancelledError as exc:  # pragma: no cover - cancelled by the user
                recs = [_lost_record(spec, c, exc) for c in cells]
            except Exception as exc:  # noqa: BLE001 - KilledWorker, import errors on the workers, ...
                recs = [_lost_record(spec, c, exc) for c in cells]
            for rec in recs:
                record(rec)
            pending -= len(cells)
            if time.perf_counter() - last_poll > 1.0:
                last_poll = time.perf_counter()
                try:
                    nthreads = sum(client.nthreads().values())
                except Exception:  # noqa: BLE001 - the scheduler is busy or gone; the count is cosmetic
                    nthreads = pending
                bar.update(running=min(pending, nthreads))
            fut.release()
        return dashboard
    finally:
        if own_client is not None:
            own_client.close()
        if own_cluster is not None:
            own_cluster.close()


def task_resources(spec: SweepSpec) -> dict[str, int] | None:
    """The worker resources a cell's task asks for: ``{"GPU": 1}`` for deep experiments with
    ``spec.gpu``, else None (any worker)."""
    return {"GPU": 1} if spec.uses_gpu() else None


def _lost_record(spec: SweepSpec, c: Cell, exc: BaseException) -> dict[str, Any]:
    import ghostsing

    return {"key": c.key, "experiment": spec.experiment, "version": ghostsing.__version__,
            "config": json.dumps(config_to_dict(c.config), sort_keys=True), "host": "", "worker": "",
            "status": STATUS_FAILED, "error": f"{type(exc).__name__}: {exc}", "scalars": {},
            "wall_time_s": float("nan")}


# ------------------------------------------------------------------------------------------ TOML
def load_sweep_toml(path: str | os.PathLike, **overrides: Any) -> SweepSpec:
    """A :class:`SweepSpec` from a TOML file (format in the README and ``docs/sweeps.md``); a relative
    ``store`` is taken relative to the current folder."""
    import tomllib

    with open(path, "rb") as fh:
        doc = tomllib.load(fh)
    return SweepSpec.from_dict(doc, **overrides)


def replace(spec: SweepSpec, **changes: Any) -> SweepSpec:
    """A copy of ``spec`` with fields changed (validated again)."""
    return dataclasses.replace(spec, **changes)
