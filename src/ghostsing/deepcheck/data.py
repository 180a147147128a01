"""CIFAR-10 / CIFAR-100 loading without running code from data files.

Sources, tried in this order inside a data root ``R``:

1. torchvision's own layout: ``R/cifar-10-batches-py/{data_batch_1..5, test_batch}`` or
   ``R/cifar-100-python/{train, test}``.  These are Python pickles; they are read with
   :class:`RestrictedUnpickler`, which resolves **no** global except numpy's array-reconstruction
   helpers (``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype`` with object
   dtypes refused).  A pickle that names anything else (``os.system``, ``builtins.eval``, ...) raises
   :class:`UnsafePickleError` *before* the call is made, so a data file can never run code.
2. an ``.npz`` archive ``R/{name}.npz`` or ``R/{name}_subset.npz`` with ``x_train``, ``y_train``,
   ``x_test``, ``y_test`` (``uint8`` NHWC images, integer labels), read with ``allow_pickle=False``.

The default roots (when no ``--data-root`` is given) are ``../shared/data``, ``shared/data`` and
``data`` relative to the working directory; the shared CIFAR subsets of this project live in the first.

Images are normalised per channel, ``x' = (x - mu_c) / sigma_c`` with the mean and (population)
standard deviation of the *training* images of the loaded set, so no test statistic leaks in.
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATASETS: tuple[str, ...] = ("cifar10", "cifar100")
_TV_DIRS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
_TV_TRAIN = {"cifar10": tuple(f"data_batch_{i}" for i in range(1, 6)), "cifar100": ("train",)}
_TV_TEST = {"cifar10": ("test_batch",), "cifar100": ("test",)}
_TV_LABEL_KEY = {"cifar10": b"labels", "cifar100": b"fine_labels"}
N_CLASSES = {"cifar10": 10, "cifar100": 100}
DEFAULT_ROOTS: tuple[str, ...] = ("../shared/data", "shared/data", "data")
#: How an experiment gets its data (validated once, by the experiment configs).
DATA_MODES: tuple[str, ...] = ("auto", "real", "synthetic")


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a global outside the whitelist of :class:`RestrictedUnpickler`."""


class DataNotFoundError(FileNotFoundError):
    """No usable CIFAR files were found; the message names the paths searched and files expected."""


def _safe_dtype(*args, **kwargs):
    dt = np.dtype(*args, **kwargs)
    if dt.hasobject:
        raise UnsafePickleError(f"object dtype {dt!r} refused in a data pickle (only plain numeric arrays)")
    return dt


def _latin1_encode(obj, encoding="latin1"):
    """``_codecs.encode`` as protocol-2 pickles use it for bytes: only ``str -> latin1 bytes``."""
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(
            f"_codecs.encode({type(obj).__name__}, {encoding!r}) refused in a data pickle"
        )
    return obj.encode("latin1")


def _safe_reconstruct(subtype, shape, dtype):
    if subtype is not np.ndarray:
        raise UnsafePickleError(f"array subtype {subtype!r} refused (only numpy.ndarray)")
    dtype = _safe_dtype(dtype)
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _safe_frombuffer(buf, dtype, shape, order):
    """numpy's protocol-5 array constructor, for plain numeric dtypes only."""
    dtype = _safe_dtype(dtype)
    return np.frombuffer(bytes(buf), dtype=dtype).reshape(shape, order=order).copy()


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that allows only containers, scalars, bytes/str and plain numpy arrays.

    ``find_class`` is the single place where a pickle can reach code; it returns only
    ``_reconstruct`` / ``ndarray`` / ``dtype`` (the three names a numpy array pickle needs, with object
    arrays and ndarray subclasses refused), ``_frombuffer`` (numpy's protocol-5 form, same checks) and
    a ``_codecs.encode`` limited to ``str -> latin1 bytes`` (how Python-3 protocol-2 pickles store
    bytes), and raises :class:`UnsafePickleError` for every other name.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _safe_reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _safe_reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _safe_dtype,
        ("numpy.core.numeric", "_frombuffer"): _safe_frombuffer,
        ("numpy._core.numeric", "_frombuffer"): _safe_frombuffer,
        ("_codecs", "encode"): _latin1_encode,
    }

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle API
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"data pickle refers to global {module}.{name}; only plain containers, bytes and numpy "
                "arrays are allowed in CIFAR files"
            ) from None

    def persistent_load(self, pid):
        raise UnsafePickleError(f"persistent id {pid!r} refused in a data pickle")


def safe_pickle_load(path: str | os.PathLike) -> object:
    """Load one CIFAR pickle (Python-2 files: ``encoding='bytes'``) with :class:`RestrictedUnpickler`."""
    with open(path, "rb") as fh:
        return RestrictedUnpickler(io.BufferedReader(fh), encoding="bytes").load()


@dataclass(frozen=True)
class CifarData:
    """Images as ``uint8`` NHWC arrays and ``int64`` labels in ``[0, n_classes)``."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    source: str

    def subset(self, n_train: int | None = None, n_test: int | None = None) -> CifarData:
        """The first ``n_train`` training and ``n_test`` test images (official order kept)."""
        for label, n, have in (("n_train", n_train, len(self.y_train)), ("n_test", n_test, len(self.y_test))):
            if n is not None and not (1 <= n <= have):
                raise ValueError(f"{label}={n} is outside 1..{have} (images available in {self.source})")
        return CifarData(
            self.name,
            self.x_train[:n_train],
            self.y_train[:n_train],
            self.x_test[:n_test],
            self.y_test[:n_test],
            self.n_classes,
            self.source,
        )


def _expected_files(name: str) -> str:
    tv = _TV_DIRS[name]
    files = ", ".join(_TV_TRAIN[name] + _TV_TEST[name])
    return f"{tv}/{{{files}}} or {name}.npz / {name}_subset.npz (x_train, y_train, x_test, y_test)"


def _check_arrays(name: str, x: np.ndarray, y: np.ndarray, where: str) -> None:
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3):
        raise ValueError(f"{where}: images must be uint8 of shape (n, 32, 32, 3), got {x.dtype} {x.shape}")
    if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"{where}: labels must be integers of shape ({x.shape[0]},), got {y.dtype} {y.shape}"
        )
    if y.size and (y.min() < 0 or y.max() >= N_CLASSES[name]):
        raise ValueError(f"{where}: labels outside 0..{N_CLASSES[name] - 1} for {name}")


def _read_tv_batches(name: str, folder: Path, files: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for f in files:
        path = folder / f
        try:
            d = safe_pickle_load(path)
        except UnsafePickleError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError) as exc:
            raise ValueError(f"{path}: not a readable CIFAR pickle ({exc})") from exc
        if not isinstance(d, dict) or b"data" not in d or _TV_LABEL_KEY[name] not in d:
            raise ValueError(f"{path}: expected a dict with keys b'data' and {_TV_LABEL_KEY[name]!r}")
        data = np.asarray(d[b"data"])
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise ValueError(f"{path}: b'data' must be uint8 (n, 3072), got {data.dtype} {data.shape}")
        xs.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        ys.append(np.asarray(d[_TV_LABEL_KEY[name]], dtype=np.int64))
    x, y = np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys)
    _check_arrays(name, x, y, str(folder))
    return x, y


def _read_npz(name: str, path: Path) -> CifarData:
    with np.load(path, allow_pickle=False) as z:
        missing = {"x_train", "y_train", "x_test", "y_test"} - set(z.files)
        if missing:
            raise ValueError(
                f"{path}: missing arrays {sorted(missing)} (needs x_train, y_train, x_test, y_test)"
            )
        x_tr, y_tr, x_te, y_te = (z[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    _check_arrays(name, x_tr, y_tr, f"{path} (train)")
    _check_arrays(name, x_te, y_te, f"{path} (test)")
    return CifarData(
        name, x_tr, y_tr.astype(np.int64), x_te, y_te.astype(np.int64), N_CLASSES[name], str(path)
    )


def candidate_roots(data_root: str | os.PathLike | None) -> list[Path]:
    """The roots to search: ``[data_root]`` when given, else :data:`DEFAULT_ROOTS` under the cwd."""
    if data_root is not None:
        return [Path(data_root)]
    return [Path.cwd() / r for r in DEFAULT_ROOTS]


def load_cifar(name: str, data_root: str | os.PathLike | None = None) -> CifarData:
    """Load CIFAR-10 (``name='cifar10'``) or CIFAR-100 (``'cifar100'``) from the first root holding it.

    Raises :class:`DataNotFoundError` naming every path searched and the files expected, and
    :class:`ValueError` for malformed files (wrong keys, shapes or dtypes).
    """
    if name not in DATASETS:
        raise ValueError(f"dataset {name!r} is not one of {DATASETS}")
    roots = candidate_roots(data_root)
    if data_root is not None and not roots[0].is_dir():
        raise DataNotFoundError(
            f"data root {roots[0]} does not exist; expected {_expected_files(name)} there"
        )
    for root in roots:
        tv = root / _TV_DIRS[name]
        if tv.is_dir():
            need = _TV_TRAIN[name] + _TV_TEST[name]
            missing = [f for f in need if not (tv / f).is_file()]
            if missing:
                raise DataNotFoundError(f"{tv} lacks {missing}; expected {_expected_files(name)}")
            x_tr, y_tr = _read_tv_batches(name, tv, _TV_TRAIN[name])
            x_te, y_te = _read_tv_batches(name, tv, _TV_TEST[name])
            return CifarData(name, x_tr, y_tr, x_te, y_te, N_CLASSES[name], str(tv))
        for fname in (f"{name}.npz", f"{name}_subset.npz"):
            if (root / fname).is_file():
                return _read_npz(name, root / fname)
    searched = ", ".join(str(r) for r in roots)
    raise DataNotFoundError(
        f"no {name} data found in {searched}; expected {_expected_files(name)}. "
        "Point --data-root at a folder holding them "
        "(or use --download where torchvision and a network exist)."
    )


def download_cifar(name: str, data_root: str | os.PathLike) -> Path:
    """Fetch the official files with torchvision into ``data_root`` (needs torchvision and a network)."""
    try:
        import torchvision  # noqa: PLC0415
    except ImportError as exc:
        raise RuntimeError(
            "--download needs torchvision (pip install torchvision) and network access"
        ) from exc
    cls = {"cifar10": torchvision.datasets.CIFAR10, "cifar100": torchvision.datasets.CIFAR100}[name]
    cls(root=str(data_root), train=True, download=True)
    cls(root=str(data_root), train=False, download=True)
    return Path(data_root) / _TV_DIRS[name]


def channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean ``mu_c`` and population std ``sigma_c`` of uint8 NHWC images (0..255 units)."""
    xf = x.reshape(-1, x.shape[-1]).astype(np.float64)
    return xf.mean(axis=0), xf.std(axis=0)


def to_tensors(data: CifarData, device="cpu", dtype=None, layout: str = "flat"):
    """Normalised training and test tensors on ``device``: ``(x_tr, y_tr, x_te, y_te)``.

    ``layout='flat'`` gives ``(n, 3072)`` (HWC order flattened), ``'nchw'`` gives ``(n, 3, 32, 32)``.
    The whole set lives on the device as one tensor (no DataLoader).
    """
    import torch  # noqa: PLC0415

    if layout not in ("flat", "nchw"):
        raise ValueError(f"layout {layout!r} is not 'flat' or 'nchw'")
    dtype = dtype or torch.float32
    mu, sd = channel_stats(data.x_train)

    def conv(x: np.ndarray) -> torch.Tensor:
        z = ((x.astype(np.float32) - mu.astype(np.float32)) / sd.astype(np.float32)).astype(np.float32)
        z = z.reshape(len(x), -1) if layout == "flat" else z.transpose(0, 3, 1, 2)
        return torch.as_tensor(np.ascontiguousarray(z)).to(device=device, dtype=dtype)

    y_tr = torch.as_tensor(data.y_train, dtype=torch.long, device=device)
    y_te = torch.as_tensor(data.y_test, dtype=torch.long, device=device)
    return conv(data.x_train), y_tr, conv(data.x_test), y_te


def synthetic_arrays(name: str, n_train: int, n_test: int, seed: int) -> CifarData:
    """Learnable synthetic CIFAR-shaped data: class-dependent mean images plus uint8 noise.

    Image ``i`` of class ``c`` is ``clip(m_c + e_i)`` with ``m_c`` a blocky random pattern (4x4 blocks
    of levels in [100, 155]) and ``e_i ~ N(0, 60^2)`` per pixel, so a classifier can learn it but not
    perfectly.
    """
    if name not in DATASETS:
        raise ValueError(f"dataset {name!r} is not one of {DATASETS}")
    rng = np.random.default_rng(seed)
    k = N_CLASSES[name]
    coarse = rng.uniform(100, 155, size=(k, 4, 4, 3))
    means = np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, k, size=n)
        x = np.clip(means[y] + rng.normal(0, 60, size=(n, 32, 32, 3)), 0, 255).astype(np.uint8)
        return x, y.astype(np.int64)

    x_tr, y_tr = draw(n_train)
    x_te, y_te = draw(n_test)
    return CifarData(name, x_tr, y_tr, x_te, y_te, k, f"synthetic(seed={seed})")


def write_synthetic_cifar(
    root: str | os.PathLike,
    name: str = "cifar10",
    n_train: int = 500,
    n_test: int = 100,
    seed: int = 0,
    fmt: str = "pickle",
) -> Path:
    """Write synthetic data in the real files' formats: torchvision pickles (``fmt='pickle'``) or ``.npz``.

    The pickles are dicts with byte keys (``b'data'`` uint8 ``(n, 3072)`` in CHW row order,
    ``b'labels'`` / ``b'fine_labels'`` + ``b'coarse_labels'`` lists), protocol 2, as in the official files.
    """
    d = synthetic_arrays(name, n_train, n_test, seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if fmt == "npz":
        path = root / f"{name}.npz"
        np.savez_compressed(path, x_train=d.x_train, y_train=d.y_train, x_test=d.x_test, y_test=d.y_test)
        return path
    if fmt != "pickle":
        raise ValueError(f"fmt {fmt!r} is not 'pickle' or 'npz'")
    folder = root / _TV_DIRS[name]
    folder.mkdir(exist_ok=True)

    def dump(fname: str, x: np.ndarray, y: np.ndarray) -> None:
        rec = {
            b"batch_label": fname.encode(),
            b"data": x.transpose(0, 3, 1, 2).reshape(len(x), -1).copy(),
            b"filenames": [f"img_{i}.png".encode() for i in range(len(x))],
        }
        if name == "cifar10":
            rec[b"labels"] = [int(v) for v in y]
        else:
            rec[b"fine_labels"] = [int(v) for v in y]
            rec[b"coarse_labels"] = [int(v) // 5 for v in y]
        with open(folder / fname, "wb") as fh:
            pickle.dump(rec, fh, protocol=2)

    train_files = _TV_TRAIN[name]
    chunks = np.array_split(np.arange(n_train), len(train_files))
    for fname, idx in zip(train_files, chunks, strict=True):
        dump(fname, d.x_train[idx], d.y_train[idx])
    dump(_TV_TEST[name][0], d.x_test, d.y_test)
    return folder


def load_for_run(
    name: str,
    mode: str,
    data_root: str | os.PathLike | None,
    n_train: int | None,
    n_test: int | None,
    synthetic_seed: int = 0,
) -> CifarData:
    """Data for an experiment: ``mode='real'`` (errors when missing), ``'synthetic'``, or ``'auto'`` (the
    real data when found in the default roots, else synthetic data of the requested size, 2,000 / 500 by
    default), then the first ``n_train`` / ``n_test`` images.

    An explicit ``data_root`` means the real data: with ``mode='auto'`` a root that does not hold them is
    an error (:class:`DataNotFoundError`), never a silent switch to synthetic data.
    """
    if mode not in DATA_MODES:
        raise ValueError(f"data mode {mode!r} is not one of {DATA_MODES}")
    if mode != "synthetic":
        try:
            d = load_cifar(name, data_root)
        except DataNotFoundError:
            if mode == "real" or data_root is not None:
                raise
        else:
            return d.subset(n_train, n_test)
    return synthetic_arrays(name, n_train or 2000, n_test or 500, synthetic_seed)


def describe(data: CifarData) -> str:
    """One line saying which data a run uses: ``cifar10: <source> (n train / m test)``."""
    return f"{data.name}: {data.source} ({len(data.y_train):,} train / {len(data.y_test):,} test images)"
