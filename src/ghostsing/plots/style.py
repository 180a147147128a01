"""Shared figure style: the Okabe–Ito colour-blind-safe palette, rc settings, and atomic saving.

:func:`save_figure` writes ``<stem>.png`` (and ``<stem>.pdf`` on request) plus the data behind the
figure: ``<stem>.npz`` (arrays) and/or ``<stem>.csv`` (one table) and ``<stem>.json`` (metadata: the
ModelSpec / config, seed, ghostsing version, anything JSON-serialisable).  Every file is written to a
temporary name in the same folder and moved into place with ``os.replace``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np

#: Okabe & Ito (2008) colour-blind-safe palette.
OKABE_ITO: dict[str, str] = {
    "black": "#000000", "orange": "#E69F00", "skyblue": "#56B4E9", "green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7",
}
#: Cycle used for curves (yellow left out: too light on white).
CYCLE: tuple[str, ...] = tuple(OKABE_ITO[k] for k in ("blue", "vermillion", "green", "orange", "purple",
                                                      "skyblue", "black"))
#: Sequential colour map for speed maps (perceptually uniform, colour-blind safe).
SPEED_CMAP = "cividis"

RC: dict[str, Any] = {
    "figure.dpi": 100, "savefig.dpi": 130, "font.size": 10, "axes.titlesize": 10, "axes.labelsize": 10,
    "legend.fontsize": 8.5, "xtick.labelsize": 9, "ytick.labelsize": 9, "lines.linewidth": 1.6,
    "axes.prop_cycle": mpl.cycler(color=list(CYCLE)), "figure.constrained_layout.use": True,
    "axes.grid": False, "image.cmap": SPEED_CMAP,
}


@contextlib.contextmanager
def style_context() -> Iterator[None]:
    """``with style_context(): ...`` draws with the ghostsing rc settings (restored afterwards)."""
    with mpl.rc_context(RC):
        yield


def _atomic_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if hasattr(obj, "to_dict"):
        return _jsonable(obj.to_dict())
    return obj


def write_json(path: Path | str, meta: Mapping[str, Any]) -> Path:
    """Write ``meta`` as indented JSON atomically (numpy values and non-finite floats converted)."""
    path = Path(path)
    _atomic_bytes(path, (json.dumps(_jsonable(meta), indent=2, sort_keys=True) + "\n").encode())
    return path


def write_npz(path: Path | str, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write arrays to a compressed ``.npz`` atomically."""
    path = Path(path)
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    _atomic_bytes(path, buf.getvalue())
    return path


def write_csv(path: Path | str, columns: Mapping[str, Sequence[Any]]) -> Path:
    """Write equal-length columns as a CSV table with a header row, atomically."""
    path = Path(path)
    names = list(columns)
    cols = [np.asarray(columns[k]).ravel() for k in names]
    if len({c.size for c in cols}) > 1:
        raise ValueError(f"columns have lengths {[c.size for c in cols]}; allowed: equal lengths")
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(names)
    for row in zip(*cols, strict=True):
        w.writerow([f"{v:.10g}" if isinstance(v, float | np.floating) else v for v in row])
    _atomic_bytes(path, buf.getvalue().encode())
    return path


def package_version() -> str:
    try:
        from ghostsing import __version__
    except ImportError:  # pragma: no cover
        return "unknown"
    return __version__


def save_figure(
    fig: Any,
    out_dir: Path | str,
    stem: str,
    *,
    arrays: Mapping[str, np.ndarray] | None = None,
    table: Mapping[str, Sequence[Any]] | None = None,
    meta: Mapping[str, Any] | None = None,
    pdf: bool = False,
    dpi: float | None = None,
) -> dict[str, Path]:
    """Save ``fig`` as ``<out_dir>/<stem>.png`` (+ ``.pdf``) with its data (``.npz``, ``.csv``, ``.json``).

    The JSON always holds ``ghostsing_version`` and ``figure`` (the PNG name) besides ``meta``;
    ``dpi`` overrides the resolution (default: the style's ``savefig.dpi`` = 130).
    Returns a dict kind -> path of every file written.
    """
    if not isinstance(stem, str) or not stem or "/" in stem:
        raise ValueError(f"stem={stem!r} is not allowed; allowed: a non-empty file name without '/'")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for ext in ("png", "pdf") if pdf else ("png",):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=dpi if dpi is not None else RC["savefig.dpi"])
        p = out / f"{stem}.{ext}"
        _atomic_bytes(p, buf.getvalue())
        paths[ext] = p
    if arrays:
        paths["npz"] = write_npz(out / f"{stem}.npz", arrays)
    if table:
        paths["csv"] = write_csv(out / f"{stem}.csv", table)
    full = {"figure": f"{stem}.png", "ghostsing_version": package_version(), **dict(meta or {})}
    paths["json"] = write_json(out / f"{stem}.json", full)
    return paths
