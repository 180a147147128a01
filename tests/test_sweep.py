"""Sweeps (ghostsing.experiments.sweep, sweep_store, sweep_cli) on real Dask clusters.

The cells are the toy experiment of ``tests/sweep_toy.py`` (``sweep_toy:TOY``, milliseconds to tenths of
a second each), so that these tests do not depend on the registered studies.  Two clusters are used: a
``LocalCluster`` of two worker processes, and a scheduler plus two workers started as separate processes
(``dask scheduler``, ``dask worker``) on free localhost ports.  Shown: the same grid gives identical
stored results serially and on both clusters; a failing cell is recorded with its error and the sweep
goes on; a rerun skips stored cells; a worker killed mid-sweep loses no cell; a client killed mid-sweep
(``SIGKILL``) resumes without redoing stored cells.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")
pytest.importorskip("xarray")
pytest.importorskip("zarr")

import xarray as xr  # noqa: E402

from ghostsing.experiments.sweep import (  # noqa: E402
    RandomDesign,
    SweepSpec,
    cell_key,
    jobqueue_cluster,
    load_sweep_toml,
    run_sweep,
)
from ghostsing.experiments.sweep_store import open_sweep  # noqa: E402

TESTS = Path(__file__).resolve().parent
TOY = "sweep_toy:TOY"
SCALARS = ("value", "stats.max", "stats.n")


def _spec(sleep: float = 0.0, fail_at: float = 2.0, **kw) -> SweepSpec:
    kw.setdefault("grid", {"x": [0.5, 1.0, 2.0], "n": [2, 4]})
    kw.setdefault("seeds", 2)
    return SweepSpec(TOY, settings={"sleep": sleep, "fail_at": fail_at}, **kw)


def _same_results(a: xr.Dataset, b: xr.Dataset) -> None:
    for name in SCALARS:
        np.testing.assert_array_equal(a[name].values, b[name].values)  # NaN == NaN here
    for name in ("status", "error", "config", "key", "version"):
        assert a[name].values.tolist() == b[name].values.tolist()


@pytest.fixture(scope="module")
def serial(tmp_path_factory) -> xr.Dataset:
    path = tmp_path_factory.mktemp("serial") / "s.zarr"
    res = run_sweep(_spec(), path, cluster="serial", progress=False)
    assert (res.n_cells, res.n_run, res.n_done, res.n_failed) == (12, 12, 8, 4)
    return open_sweep(path)


# ------------------------------------------------------------------------------------------ spec + store
def test_spec_cells_keys_and_layout() -> None:
    spec = _spec()
    cells = spec.cells()
    assert len(cells) == 12 and spec.dims() == ("x", "n", "seed")
    assert cells[0].index == (0, 0, 0) and cells[-1].index == (2, 1, 1)
    assert cells[5].config.x == 1.0 and cells[5].config.n == 2 and cells[5].config.seed == 1
    assert len({c.key for c in cells}) == 12
    assert cells[0].key == cell_key("sweep-toy", cells[0].config)  # a content hash: same config, same key
    assert cell_key("sweep-toy", cells[0].config, version="9.9") != cells[0].key  # and the version
    assert [c.key for c in _spec().cells()] == [c.key for c in cells]
    rnd = SweepSpec(TOY, random=RandomDesign(5, (("x", 1e-3, 1.0, "log"), ("n", 1, 4, "int")), seed=3),
                    seeds=(7,))
    lay = rnd.layout()
    assert lay["dims"] == ("sample", "seed") and len(lay["coords"]["x"]) == 5
    assert all(1e-3 <= x <= 1 for x in lay["coords"]["x"]) and all(1 <= n <= 4 for n in lay["coords"]["n"])
    assert rnd.layout()["coords"] == lay["coords"]  # seeded


@pytest.mark.parametrize("kw, match", [
    ({"grid": {"x": []}}, "no values"),
    ({"grid": {"x": [1, 1]}}, "repeats"),
    ({"grid": {"nope": [1, 2]}}, "not a setting"),
    ({"grid": {"n": [0, 1]}}, "n=0"),
    ({"seeds": (1, 1)}, "repeat"),
    ({"retries": -1}, "retries"),
    ({"batch": 0}, "batch"),
])
def test_bad_specs_are_refused(kw, match) -> None:
    with pytest.raises(ValueError, match=match):
        SweepSpec(TOY, **kw).cells()


def test_serial_store_opens_with_xarray(serial, tmp_path) -> None:
    ds = serial
    assert dict(ds.sizes) == {"x": 3, "n": 2, "seed": 2}
    assert ds.x.values.tolist() == [0.5, 1.0, 2.0] and ds.seed.values.tolist() == [0, 1]
    assert (ds.status.sel(x=2.0) == "failed").all() and (ds.status.sel(x=[0.5, 1.0]) == "done").all()
    assert "RuntimeError: toy cell fails at x = 2.0" in ds.error.sel(x=2.0, n=2, seed=0).item()
    assert np.isnan(ds.value.sel(x=2.0)).all() and np.isfinite(ds.value.sel(x=1.0)).all()
    cfg = json.loads(ds.config.sel(x=1.0, n=4, seed=1).item())
    assert cfg == {"x": 1.0, "n": 4, "seed": 1, "sleep": 0.0, "fail_at": 2.0}
    assert (ds.wall_time_s >= 0).all() and ds.attrs["n_records"] == 12


def test_rerun_skips_stored_cells_and_retry_failed(tmp_path) -> None:
    path = tmp_path / "r.zarr"
    run_sweep(_spec(), path, cluster="serial", progress=False)
    again = run_sweep(_spec(), path, cluster="serial", progress=False)
    assert again.n_run == 0 and again.n_skipped == 12
    retried = run_sweep(_spec(), path, cluster="serial", progress=False, retry_failed=True)
    assert retried.n_run == 4 and retried.n_failed == 4
    with pytest.raises(ValueError, match="another sweep"):
        run_sweep(_spec(grid={"x": [0.5]}), path, cluster="serial", progress=False)


@pytest.mark.filterwarnings("ignore:.*(not recognized as a component|Consolidated metadata).*")
def test_store_ignores_temporary_files_and_rebuilds_arrays(tmp_path) -> None:
    """A client killed mid-write leaves at most a temporary file (never a half record); a client killed
    between a record and the array rebuild leaves arrays behind the records: both are repaired."""
    path = tmp_path / "t.zarr"
    run_sweep(_spec(), path, cluster="serial", progress=False)
    (path / "cells" / ".abc.json.123.tmp").write_text('{"key": "abc", "sta')  # a torn temporary file
    rec = next((path / "cells").glob("*.json"))
    held = json.loads(rec.read_text())
    rec.unlink()
    run_sweep(_spec(), path, cluster="serial", progress=False)  # redoes exactly the missing cell
    assert json.loads(rec.read_text())["scalars"] == held["scalars"]
    rec.write_text("")  # a record a power loss emptied (no --durable): read as absent, the cell reruns
    again = run_sweep(_spec(), path, cluster="serial", progress=False, durable=True)
    assert again.n_run == 1 and json.loads(rec.read_text())["scalars"] == held["scalars"]
    from ghostsing.experiments.sweep_store import SweepStore

    held_bytes = rec.read_bytes()
    rec.unlink()
    spec = _spec()
    SweepStore(path, spec.to_dict(), spec.layout()).flush()  # arrays of 11 records
    assert xr.open_zarr(path).attrs["n_records"] == 11
    rec.write_bytes(held_bytes)  # a record the client wrote just before it was killed, before a rebuild
    ds = open_sweep(path)
    assert ds.attrs["n_records"] == 12 and (ds.key == held["key"]).sum() == 1
    where = {k: int(v) for k, v in zip(ds.status.dims, np.argwhere(ds.key.values == held["key"])[0],
                                       strict=True)}
    assert ds.status.isel(where).item() == held["status"]
    import zarr  # a client killed during a rebuild leaves n_records = -1: the arrays are rebuilt

    zarr.open_group(str(path), mode="r+").attrs["n_records"] = -1
    zarr.consolidate_metadata(str(path))
    assert xr.open_zarr(path).attrs["n_records"] == -1 and open_sweep(path).attrs["n_records"] == 12


def test_scalar_named_like_a_coordinate(tmp_path) -> None:
    spec = SweepSpec(TOY, grid={"x": [1.0, 2.0]}, seed_field=None, seeds=())
    from ghostsing.experiments import sweep_store

    st = sweep_store.SweepStore(tmp_path / "c.zarr", spec.to_dict(), spec.layout())
    for c in spec.cells():
        st.write({"key": c.key, "status": "done", "scalars": {"x": c.config.x * 10, "status": 1.0}})
    ds = st.dataset()
    assert ds["out.x"].values.tolist() == [10.0, 20.0] and ds["out.status"].values.tolist() == [1.0, 1.0]
    assert ds.x.values.tolist() == [1.0, 2.0] and dict(ds.sizes) == {"x": 2}


def test_toml_and_command_line(tmp_path, monkeypatch, capsys) -> None:
    from ghostsing.cli import main

    toml = tmp_path / "toy.toml"
    toml.write_text(textwrap.dedent(f"""
        experiment = "{TOY}"
        preset = "small"
        seeds = [3, 4]
        store = "{(tmp_path / 'toml.zarr').as_posix()}"
        [set]
        fail_at = 1.0
        [grid]
        x = [0.5, 1.0]
        [cluster]
        kind = "serial"
    """))
    spec = load_sweep_toml(toml)
    assert spec.grid == (("x", (0.5, 1.0)),) and spec.seeds == (3, 4) and spec.cluster["kind"] == "serial"
    assert main(["sweep", str(toml), "--quiet"]) == 1  # x = 1.0 fails -> exit status 1
    out = capsys.readouterr().out
    assert "4 cells, 0 stored before, 4 run now; 2 done, 2 failed" in out
    ds = open_sweep(tmp_path / "toml.zarr")
    assert json.loads(ds.config.sel(x=0.5, seed=3).item())["n"] == 2  # the preset "small"
    assert main(["sweep", TOY, "--grid", "x=1,3", "--seeds", "2", "--set", "n=5", "--cluster", "serial",
                 "--store", str(tmp_path / "flags.zarr"), "--quiet"]) == 0
    ds = open_sweep(tmp_path / "flags.zarr")
    assert dict(ds.sizes) == {"x": 2, "seed": 2} and (ds["stats.n"] == 5).all()
    assert main(["sweep", TOY, "--random", "3", "--range", "x=0.1:1:log", "--cluster", "serial",
                 "--store", str(tmp_path / "rand.zarr"), "--quiet"]) == 0
    assert dict(open_sweep(tmp_path / "rand.zarr").sizes) == {"sample": 3, "seed": 1}


def test_jobqueue_cluster_from_the_sweep_options() -> None:
    pytest.importorskip("dask_jobqueue")
    options = {"cores": 4, "memory": "8GB", "walltime": "01:00:00", "queue": "short", "jobs": 3}
    spec = SweepSpec(TOY, cluster={"kind": "slurm", "options": options})
    cluster, jobs = jobqueue_cluster("slurm", spec)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert jobs == 3 and "#SBATCH -p short" in script and "#SBATCH -t 01:00:00" in script
    assert "--nthreads 4" in script or "--nworkers" in script
    with pytest.raises(ValueError, match="batch system"):
        jobqueue_cluster("local", spec)


def test_deep_cells_ask_for_a_gpu_only_when_told() -> None:
    from ghostsing.experiments.sweep import task_resources

    assert task_resources(SweepSpec("sweep_toy:TOY_DEEP", gpu=True)) == {"GPU": 1}
    assert task_resources(SweepSpec("sweep_toy:TOY_DEEP")) is None
    assert task_resources(SweepSpec(TOY, gpu=True)) is None  # a simulation never asks for one


def test_gpu_cells_run_on_workers_with_the_resource(tmp_path) -> None:
    from distributed import Client, LocalCluster

    spec = SweepSpec("sweep_toy:TOY_DEEP", grid={"x": [1.0, 2.0]}, seeds=1, gpu=True)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, resources={"GPU": 1},
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        res = run_sweep(spec, tmp_path / "g.zarr", client=client, progress=False)
        assert res.n_done == 2 and res.n_failed == 0


# ------------------------------------------------------------------------------------------ LocalCluster
@pytest.fixture(scope="module")
def local_client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_local_cluster_gives_the_serial_results(serial, local_client, tmp_path) -> None:
    res = run_sweep(_spec(), tmp_path / "l.zarr", client=local_client, progress=False)
    assert (res.n_run, res.n_done, res.n_failed) == (12, 8, 4)
    ds = open_sweep(tmp_path / "l.zarr")
    _same_results(serial, ds)
    assert all(w.startswith(socket.gethostname()) for w in ds.worker.values.ravel().tolist())


def test_batched_cells_give_the_same_store(serial, local_client, tmp_path) -> None:
    res = run_sweep(_spec(batch=5), tmp_path / "b.zarr", client=local_client, progress=False)
    assert (res.n_run, res.n_done, res.n_failed) == (12, 8, 4)
    _same_results(serial, open_sweep(tmp_path / "b.zarr"))  # batch is not part of the sweep's identity


def test_local_cluster_worker_killed_mid_sweep_loses_nothing(serial, local_client, tmp_path) -> None:
    pids = list(local_client.run(os.getpid).values())
    killed = []

    def kill_one(rec) -> None:
        if not killed:
            os.kill(pids[0], signal.SIGKILL)  # its nanny starts a new worker; its cells go elsewhere
            killed.append(pids[0])

    res = run_sweep(_spec(sleep=0.15), tmp_path / "k.zarr", client=local_client, progress=False,
                    on_record=kill_one)
    assert killed and (res.n_done, res.n_failed) == (8, 4)
    ds = open_sweep(tmp_path / "k.zarr")
    assert not any("KilledWorker" in e for e in ds.error.values.ravel().tolist())
    np.testing.assert_array_equal(ds.value.values, serial.value.values)  # the same numbers


# ------------------------------------------------------------------------------ scheduler + worker processes
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def processes(tmp_path_factory):
    """``dask scheduler`` and two ``dask worker`` processes on localhost; yields (address, env, workers)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "GHOSTSING_TOY_LOG": str(tmp_path_factory.mktemp("toylog"))}
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path_factory.mktemp("dasklogs")
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--dashboard-address", ":0"], env=env,
                              stdout=open(logs / "scheduler.log", "w"), stderr=subprocess.STDOUT,
                              start_new_session=True)]

    def worker(i: int) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address,
                                 "--nthreads", "1", "--nworkers", "1", "--no-dashboard", "--name", f"w{i}"],
                                env=env,
                                stdout=open(logs / f"worker{i}.log", "w"), stderr=subprocess.STDOUT,
                                start_new_session=True)

    workers = [worker(0), worker(1)]
    procs += workers
    from distributed import Client

    with Client(address, timeout=60) as c:
        c.wait_for_workers(2, timeout=60)
    yield address, env, workers, worker
    for p in procs + workers:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs + workers:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:  # pragma: no cover
            os.killpg(p.pid, signal.SIGKILL)


def test_scheduler_and_worker_processes_give_the_serial_results(serial, processes, tmp_path) -> None:
    address = processes[0]
    res = run_sweep(_spec(), tmp_path / "p.zarr", scheduler=address, progress=False)
    assert (res.n_run, res.n_done, res.n_failed) == (12, 8, 4) and res.dashboard
    _same_results(serial, open_sweep(tmp_path / "p.zarr"))


_CLIENT = textwrap.dedent("""
    import sys
    from ghostsing.experiments.sweep import SweepSpec, run_sweep
    spec = SweepSpec("sweep_toy:TOY", settings={"sleep": 0.3, "fail_at": -1.0},
                     grid={"x": [0.5, 1.0, 2.0, 3.0], "n": [2, 4]}, seeds=2)
    run_sweep(spec, sys.argv[1], scheduler=sys.argv[2], progress=False)
""")


def test_client_killed_mid_sweep_resumes_without_redoing_stored_cells(processes, tmp_path) -> None:
    address, env, _, _ = processes
    store = tmp_path / "c.zarr"
    proc = subprocess.Popen([sys.executable, "-c", _CLIENT, str(store), address], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((store / "cells").glob("*.json"))) < 4:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    stored = {f.stem: f.read_bytes() for f in (store / "cells").glob("*.json")}
    assert 4 <= len(stored) < 16
    ran = []
    spec = SweepSpec(TOY, settings={"sleep": 0.3, "fail_at": -1.0}, grid={"x": [0.5, 1.0, 2.0, 3.0],
                                                                        "n": [2, 4]}, seeds=2)
    res = run_sweep(spec, store, scheduler=address, progress=False, on_record=lambda r: ran.append(r["key"]))
    assert res.n_skipped == len(stored) and res.n_run == 16 - len(stored) and res.n_done == 16
    assert not set(ran) & set(stored)  # no stored cell was redone
    for key, data in stored.items():  # and none was touched
        assert (store / "cells" / f"{key}.json").read_bytes() == data
    assert (open_sweep(store).status == "done").all()


def test_worker_process_killed_mid_sweep_loses_nothing(serial, processes, tmp_path) -> None:
    address, _, workers, start_worker = processes
    killed = []

    def kill_one(rec) -> None:
        if not killed:
            os.killpg(workers[0].pid, signal.SIGKILL)  # the whole `dask worker` (nanny and worker)
            killed.append(workers[0].pid)

    try:
        res = run_sweep(_spec(sleep=0.2, grid={"x": [0.5, 1.0, 2.0], "n": [2, 4, 6]}), tmp_path / "w.zarr",
                        scheduler=address, progress=False, on_record=kill_one)
    finally:
        workers.append(start_worker(2))
    assert killed and (res.n_run, res.n_done, res.n_failed) == (18, 12, 6)
    ds = open_sweep(tmp_path / "w.zarr")
    assert set(ds.status.values.ravel().tolist()) == {"done", "failed"}
    assert not any("KilledWorker" in e for e in ds.error.values.ravel().tolist())
    assert all("toy cell fails" in e for e in ds.error.sel(x=2.0).values.ravel().tolist())
    np.testing.assert_array_equal(ds.value.sel(n=[2, 4]).values, serial.value.values)
