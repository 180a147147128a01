"""Atomic file output and JSON conversion: the one place the package writes results to disk.

Every result file is written to a temporary name in its own folder and moved into place with
:func:`os.replace`, so a reader (or a resumed run) sees either the old file or the whole new one, never a
half-written one.  JSON conversion is the same everywhere: NumPy scalars and arrays become Python
numbers and lists, tuples become lists, paths become strings, and non-finite floats (``nan``, ``inf``)
become ``null`` (strict JSON has no literal for them).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["to_jsonable", "write_bytes_atomic", "write_text_atomic", "write_json_atomic", "save_npz_atomic",
           "write_with_atomic", "read_json"]


def to_jsonable(obj: Any) -> Any:
    """``obj`` as JSON types: mappings -> dicts with str keys, sequences and arrays -> lists, NumPy
    scalars -> Python numbers, frozen dataclasses -> dicts, paths -> str, non-finite floats -> ``None``."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        obj = obj.tolist()
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def write_with_atomic(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``path`` (parents created), then move it into place.

    The temporary file is removed if ``write`` raises; returns ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return write_with_atomic(path, lambda tmp: tmp.write_bytes(data))


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``to_jsonable(obj)`` as indented JSON to ``path`` atomically."""
    return write_text_atomic(path, json.dumps(to_jsonable(obj), indent=2) + "\n")


def save_npz_atomic(path: str | os.PathLike, arrays: Mapping[str, Any]) -> Path:
    """Write ``arrays`` (name -> array-like) as a compressed ``.npz`` atomically."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **{k: np.asarray(v) for k, v in arrays.items()})

    return write_with_atomic(path, write)


def read_json(path: str | os.PathLike) -> Any:
    """The JSON document at ``path``."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
