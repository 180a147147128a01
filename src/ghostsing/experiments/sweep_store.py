"""The results store of a sweep: one Zarr store that ``xarray.open_zarr`` opens as a Dataset.

Layout of ``DIR.zarr`` (one idea: per-cell records that are never lost, and an array view of them)::

    DIR.zarr/sweep.json          the sweep (SweepSpec.to_dict()), written once; a rerun must match it
    DIR.zarr/cells/<key>.json    one record per finished cell (done or failed), written atomically
    DIR.zarr/zarr.json, <var>/   the Zarr arrays, rebuilt from the records by :meth:`SweepStore.flush`

**The records are the truth.**  The client (the only writer) writes a cell's record the moment its
result arrives: to a temporary file in ``cells/``, then moved into place with :func:`os.replace`; a
reader, a resumed sweep or a crash (``kill -9`` of the client mid-write) sees the whole record or none.
With ``durable=True`` the file and the folder are also ``fsync``-ed, so that a record survives a power
loss too (about 15 ms per record on a busy disk here); without it, a record the operating system had not
written yet when the machine died is read as absent (or unreadable, hence absent) and the cell reruns.

The arrays are a view, rebuilt by the client from all records every few seconds
and at the end (``xarray.Dataset.to_zarr(mode="a")``: same shapes, every variable rewritten; the
``cells/`` folder is left alone).  ``n_records`` in the store's attributes says how many records the
arrays hold; it is -1 while a rebuild is writing them and set only when all are written, so if a crash
interrupts a rebuild, the next :func:`open_sweep` (or the resumed sweep) sees it and rebuilds.

**The Dataset.**  One dimension per grid axis (coordinate = the grid values) and ``seed`` (or ``sample``
for a random design, with each sampled field as a coordinate along it); data variables: every scalar a
cell returned (:func:`~ghostsing.experiments.sweep.cell_scalars`, names with ``/`` written as ``.``,
prefixed ``out.`` where one equals a coordinate or a per-cell field; NaN where a cell has not finished or
did not return it) and per cell ``status`` (``"done"``, ``"failed"`` or ``""`` not run),
``error`` (the exception, ``""`` if none), ``config`` (the resolved config as JSON), ``key`` (the cell's
content hash), ``version`` (the package version it ran with), ``wall_time_s``, ``host`` and
``worker``.  The attributes hold the sweep as JSON (``sweep``), the experiment name and ``n_records``.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ghostsing._io import read_json, to_jsonable, write_json_atomic

__all__ = ["SweepStore", "open_sweep", "var_name", "STATUS_DONE", "STATUS_FAILED"]

STATUS_DONE = "done"
STATUS_FAILED = "failed"
#: per-cell metadata variables (strings, then numbers) every store has
_TEXT_FIELDS = ("status", "error", "config", "key", "version", "host", "worker")
_NUMBER_FIELDS = ("wall_time_s",)


def var_name(scalar: str) -> str:
    """The Dataset variable of a cell scalar: ``/`` (nesting) becomes ``.`` (Zarr reads ``/`` as a group)."""
    return scalar.replace("/", ".")


def _write_record_atomic(path: Path, record: Mapping[str, Any], durable: bool = False) -> None:
    """``record`` as JSON at ``path``: temporary file, rename (and with ``durable`` fsync of both)."""
    data = (json.dumps(to_jsonable(record), indent=1, sort_keys=True) + "\n").encode()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if not durable:
        return
    try:  # make the rename itself durable (not possible on every platform)
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # pragma: no cover
        return
    try:
        os.fsync(dir_fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(dir_fd)


class SweepStore:
    """The store of one sweep (module docstring).  ``layout`` comes from
    :meth:`ghostsing.experiments.sweep.SweepSpec.layout`: ``dims`` (names), ``coords`` (name -> values,
    one per dim, plus extra coordinates along ``sample``) and ``index`` (cell key -> position tuple)."""

    def __init__(self, path: str | os.PathLike, spec_dict: Mapping[str, Any], layout: Mapping[str, Any],
                 *, durable: bool = False):
        self.path = Path(path)
        self.durable = durable
        self.cells_dir = self.path / "cells"
        self.spec_dict = dict(to_jsonable(spec_dict))
        self.layout = layout
        self.cells_dir.mkdir(parents=True, exist_ok=True)
        spec_file = self.path / "sweep.json"
        if spec_file.is_file():
            before = read_json(spec_file)
            if before != self.spec_dict:
                changed = sorted(k for k in set(before) | set(self.spec_dict)
                                 if before.get(k) != self.spec_dict.get(k))
                raise ValueError(f"{self.path} holds another sweep (differs in {', '.join(changed)}); "
                                 "use the same sweep to resume, or another store")
        else:
            write_json_atomic(spec_file, self.spec_dict)
        self._records: dict[str, dict[str, Any]] = {}
        for f in self.cells_dir.glob("*.json"):
            try:
                rec = read_json(f)
                rec["key"], rec["status"]  # noqa: B018 - a record without them is not one
            except (OSError, ValueError, KeyError, TypeError):  # e.g. emptied by a power loss: rerun it
                continue
            self._records[rec["key"]] = rec
        self._flushed = -1

    # ------------------------------------------------------------------------------------ records
    @property
    def records(self) -> Mapping[str, Mapping[str, Any]]:
        """Cell key -> record, for every stored cell."""
        return self._records

    def status(self, key: str) -> str | None:
        """``"done"``, ``"failed"`` or None (not stored)."""
        rec = self._records.get(key)
        return rec["status"] if rec else None

    def write(self, record: Mapping[str, Any]) -> None:
        """Store one finished cell (atomically; replaces an earlier record of the same key)."""
        rec = dict(record)
        if rec.get("status") not in (STATUS_DONE, STATUS_FAILED):
            raise ValueError(f"status={rec.get('status')!r} is not allowed; allowed: done, failed")
        _write_record_atomic(self.cells_dir / f"{rec['key']}.json", rec, self.durable)
        self._records[rec["key"]] = rec

    # ------------------------------------------------------------------------------------ arrays
    def dataset(self):
        """The records as an ``xarray.Dataset`` (module docstring)."""
        import xarray as xr

        dims = tuple(self.layout["dims"])
        shape = tuple(len(self.layout["coords"][d]) for d in dims)
        index: Mapping[str, tuple[int, ...]] = self.layout["index"]
        text = {f: np.full(shape, "", dtype=object) for f in _TEXT_FIELDS}
        numbers = {f: np.full(shape, np.nan) for f in _NUMBER_FIELDS}
        scalars: dict[str, np.ndarray] = {}
        taken = set(_TEXT_FIELDS) | set(_NUMBER_FIELDS) | set(self.layout["coords"])
        for key, rec in self._records.items():
            pos = index.get(key)
            if pos is None:  # a record of a cell this layout does not have (pragma: defensive)
                continue
            for f in _TEXT_FIELDS:
                value = rec.get(f)
                text[f][pos] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            numbers["wall_time_s"][pos] = rec.get("wall_time_s", np.nan)
            for name, value in (rec.get("scalars") or {}).items():
                name = var_name(name)
                if name in taken:
                    name = f"out.{name}"
                arr = scalars.setdefault(name, np.full(shape, np.nan))
                arr[pos] = np.nan if value is None else float(value)
        data = {**{k: (dims, v) for k, v in text.items()},
                **{k: (dims, v) for k, v in numbers.items()},
                **{k: (dims, v) for k, v in sorted(scalars.items())}}
        coords: dict[str, Any] = {}
        for name, values in self.layout["coords"].items():
            coords[name] = (self.layout.get("coord_dims", {}).get(name, name), np.asarray(values))
        attrs = {"sweep": json.dumps(self.spec_dict, sort_keys=True),
                 "experiment": self.spec_dict["experiment"], "n_records": len(self._records),
                 "n_cells": int(np.prod(shape))}
        return xr.Dataset(data, coords=coords, attrs=attrs)

    def flush(self) -> None:
        """Rebuild the Zarr arrays from the records (skipped when nothing changed since the last one)."""
        if self._flushed == len(self._records) and self._arrays_current():
            return
        import zarr

        ds = self.dataset()
        n = ds.attrs["n_records"]
        # n_records = -1 while the arrays are being written, the true count only once all are: a client
        # killed in between leaves a store that open_sweep rebuilds, never arrays that look current
        ds.attrs["n_records"] = -1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zarr 3: "consolidated metadata is not in the v3 spec"
            ds.to_zarr(self.path, mode="a", consolidated=True)
            zarr.open_group(str(self.path), mode="r+").attrs["n_records"] = n
            zarr.consolidate_metadata(str(self.path))
        self._flushed = len(self._records)

    def _arrays_current(self) -> bool:
        return (self.path / "zarr.json").is_file() or (self.path / ".zgroup").is_file()

    def done_keys(self) -> set[str]:
        return {k for k, r in self._records.items() if r["status"] == STATUS_DONE}

    def failed_keys(self) -> set[str]:
        return {k for k, r in self._records.items() if r["status"] == STATUS_FAILED}


def stored_n_records(path: str | os.PathLike) -> int | None:
    """``n_records`` of the arrays at ``path`` (None if they cannot be read)."""
    import xarray as xr

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = xr.open_zarr(path)
        return int(ds.attrs.get("n_records", -1))
    except Exception:  # noqa: BLE001 - any unreadable state means "rebuild"
        return None


def open_sweep(path: str | os.PathLike, *, rebuild: bool | None = None):
    """The sweep at ``path`` as an ``xarray.Dataset`` (loaded into memory).

    The arrays are rebuilt from the cell records first when they are missing, unreadable or hold fewer
    records than ``cells/`` (a client killed between a record and the next rebuild); ``rebuild=True``
    forces it.
    """
    import xarray as xr

    from ghostsing.experiments.sweep import SweepSpec

    path = Path(path)
    spec_file = path / "sweep.json"
    if not spec_file.is_file():
        raise FileNotFoundError(f"{path} is not a sweep store (no sweep.json)")
    n_files = len(list((path / "cells").glob("*.json")))
    if rebuild or stored_n_records(path) != n_files:
        spec = SweepSpec.from_dict(read_json(spec_file))
        store = SweepStore(path, spec.to_dict(), spec.layout())
        store.flush()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xr.open_zarr(path).load()


def records_table(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Flat rows (config fields, status, scalars) of records, for quick inspection or pandas."""
    rows = []
    for rec in records:
        row = {"key": rec["key"], "status": rec["status"], "error": rec.get("error", "")}
        row.update(json.loads(rec["config"]) if isinstance(rec.get("config"), str) else rec.get("config", {}))
        row.update(rec.get("scalars") or {})
        rows.append(row)
    return rows
