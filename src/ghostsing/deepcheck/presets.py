"""Experiment configurations (frozen dataclasses) and the preset registry of the deepcheck CLI.

Every config has an ``experiment`` field naming the runner that executes it (``skip_comparison``,
``parker_hoang``; other modules add theirs, see :mod:`ghostsing.deepcheck.__main__`) and a ``name``.
:func:`apply_overrides` turns command-line flags or TOML keys into a new config; unknown keys and bad
values raise ``ValueError`` naming the key and what is allowed.

MLP initialisation defaults to ``init='scaled'`` (He-normal, skip branches scaled by ``1/(depth-1)``;
see :func:`ghostsing.deepcheck.nets.init_mlp_tensors`); ``init='torch'`` is PyTorch's default.

Presets (settings chosen here; the references fix the architectures, not every hyper-parameter):

* ``smoke`` — CPU, well under 3 minutes on 2 cores: 3 seeds of depth-2 and depth-6, width-32 MLPs
  (plain, residual, hyper-residual, lowrank:8/24) for 4 epochs on 1,500 CIFAR-10 images (the
  shared subset when present, else synthetic data).
* ``orhan-pitkow`` — 10- and 30-layer, 128-unit MLPs, plain / residual / hyper-residual, CIFAR-10 and
  CIFAR-100, 5 seeds, Adam, 50 epochs (Orhan & Pitkow 2018 architectures).
* ``skip-degeneracy`` — 30-layer, 128-unit MLPs with skips none, lowrank:16..96, identity, CIFAR-10.
* ``parker-hoang`` — the two CNNs of the 2022 report: first 2,500 CIFAR-10 training images, batch
  64, RMSprop (Keras defaults: lr 1e-3, rho 0.9, eps 1e-7), 250 epochs, 3 seeds.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ghostsing.deepcheck.nets import parse_skip

DATA_MODES: tuple[str, ...] = ("auto", "real", "synthetic")


def _check_common(cfg) -> None:
    if cfg.data not in DATA_MODES:
        raise ValueError(f"data={cfg.data!r} is not one of {DATA_MODES}")
    if not cfg.seeds or len(set(cfg.seeds)) != len(cfg.seeds) or min(cfg.seeds) < 0:
        raise ValueError(f"seeds={cfg.seeds!r} must be distinct integers >= 0 (at least one)")
    if not isinstance(cfg.epochs, int) or cfg.epochs < 1:
        raise ValueError(f"epochs={cfg.epochs!r} must be an integer >= 1")
    if cfg.batch_size is not None and cfg.batch_size < 1:
        raise ValueError(f"batch_size={cfg.batch_size!r} must be >= 1 (or 0/None for full batch)")
    for k in ("n_train", "n_test"):
        v = getattr(cfg, k)
        if v is not None and v < 1:
            raise ValueError(f"{k}={v!r} must be >= 1 (or None for all)")
    if cfg.optimizer not in ("sgd", "adam", "rmsprop"):
        raise ValueError(f"optimizer={cfg.optimizer!r} is not one of ('sgd', 'adam', 'rmsprop')")
    if not cfg.lr > 0:
        raise ValueError(f"lr={cfg.lr!r} must be > 0")


@dataclass(frozen=True)
class SkipComparisonConfig:
    """Deep MLPs with different skips, trained on CIFAR, probed, and compared (``skip_comparison``)."""

    name: str
    experiment: str = "skip_comparison"
    datasets: tuple[str, ...] = ("cifar10",)
    depths: tuple[int, ...] = (30,)
    width: int = 128
    init: str = "scaled"
    skips: tuple[str, ...] = ("none", "identity", "hyper")
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 10
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    batch_size: int | None = 256
    n_train: int | None = None
    n_test: int | None = None
    data: str = "auto"
    probe_epochs: tuple[int, ...] = (0,)
    n_probe: int = 500
    act_tol: float = 0.0
    weight_frac: float = 0.01
    cos_threshold: float = 0.99
    rank_rel_tol: float = 1e-3
    device: str = "auto"
    note: str = ""

    def __post_init__(self) -> None:
        _check_common(self)
        from ghostsing.deepcheck.data import DATASETS  # noqa: PLC0415

        bad = [d for d in self.datasets if d not in DATASETS]
        if bad or not self.datasets:
            raise ValueError(f"datasets={self.datasets!r}: each must be one of {DATASETS}")
        if not self.depths or min(self.depths) < 1:
            raise ValueError(f"depths={self.depths!r} must be integers >= 1")
        if self.width < 1:
            raise ValueError(f"width={self.width!r} must be >= 1")
        if self.init not in ("torch", "scaled"):
            raise ValueError(f"init={self.init!r} is not one of ('torch', 'scaled')")
        if not self.skips:
            raise ValueError("skips must name at least one skip")
        for s in self.skips:
            sp = parse_skip(s)
            if sp.kind == "lowrank" and sp.k > self.width:
                raise ValueError(f"skip {s!r} needs k <= width={self.width}")


@dataclass(frozen=True)
class ParkerHoangConfig:
    """The plain and residual CNNs of the 2022 course report on CIFAR-10 (``parker_hoang``)."""

    name: str
    experiment: str = "parker_hoang"
    models: tuple[str, ...] = ("cnn", "resnet")
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 250
    optimizer: str = "rmsprop"
    lr: float = 1e-3
    momentum: float = 0.0
    rms_alpha: float = 0.9
    eps: float = 1e-7
    batch_size: int | None = 64
    n_train: int | None = 2500
    n_test: int | None = None
    dropout: float = 0.5
    data: str = "real"
    device: str = "auto"
    note: str = ""

    def __post_init__(self) -> None:
        _check_common(self)
        bad = [m for m in self.models if m not in ("cnn", "resnet")]
        if bad or not self.models:
            raise ValueError(f"models={self.models!r}: each must be 'cnn' or 'resnet'")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout={self.dropout} must lie in [0, 1)")


PRESETS: Mapping[str, Any] = MappingProxyType(
    {
        "smoke": SkipComparisonConfig(
            name="smoke",
            depths=(2, 6),
            width=32,
            skips=("none", "identity", "hyper", "lowrank:8", "lowrank:24"),
            seeds=(0, 1, 2),
            epochs=4,
            batch_size=128,
            n_train=1500,
            n_test=500,
            probe_epochs=(0, 2, 4),
            n_probe=256,
            device="cpu",
        ),
        "orhan-pitkow": SkipComparisonConfig(
            name="orhan-pitkow",
            datasets=("cifar10", "cifar100"),
            depths=(10, 30),
            width=128,
            skips=("none", "identity", "hyper"),
            seeds=(0, 1, 2, 3, 4),
            epochs=50,
            batch_size=256,
            probe_epochs=(0, 1, 5, 10, 25, 50),
            data="real",
        ),
        "skip-degeneracy": SkipComparisonConfig(
            name="skip-degeneracy",
            depths=(30,),
            width=128,
            skips=("none", "lowrank:16", "lowrank:32", "lowrank:64", "lowrank:96", "identity"),
            seeds=(0, 1, 2, 3, 4),
            epochs=50,
            batch_size=256,
            probe_epochs=(0, 10, 50),
            data="real",
        ),
        "parker-hoang": ParkerHoangConfig(name="parker-hoang"),
    }
)


def config_to_dict(cfg) -> dict:
    """The resolved settings as a JSON-ready dict."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()}


def _coerce(key: str, value: Any, current: Any) -> Any:
    """Convert a TOML / flag value to the type of the field (tuples from lists or comma strings)."""
    if isinstance(current, tuple):
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            items = [items]
        elem = type(current[0]) if current else str
        try:
            return tuple(elem(x.strip() if isinstance(x, str) else x) for x in items)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{key}={value!r}: expected a list of {elem.__name__}") from exc
    if key == "batch_size" and value in (0, None, "full"):
        return None
    if key in ("n_train", "n_test") and value in (0, None, "all"):
        return None
    typ = type(current) if current is not None else int
    if isinstance(value, bool) != (typ is bool):
        raise ValueError(f"{key}={value!r}: expected {typ.__name__}")
    try:
        return typ(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{key}={value!r}: expected {typ.__name__}") from exc


def apply_overrides(cfg, overrides: Mapping[str, Any]):
    """A new config with ``overrides`` applied (``None`` values are ignored)."""
    fields = {f.name for f in dataclasses.fields(cfg)}
    changes = {}
    for key, value in overrides.items():
        if value is None:
            continue
        k = key.replace("-", "_")
        if k not in fields or k == "experiment":
            raise ValueError(
                f"setting {key!r} does not apply to the {cfg.experiment} experiment; allowed: "
                f"{', '.join(sorted(fields - {'experiment'}))}"
            )
        changes[k] = _coerce(k, value, getattr(cfg, k))
    return dataclasses.replace(cfg, **changes)


def load_toml(path: str | Path, presets: Mapping[str, Any] = PRESETS):
    """A config from a TOML file: ``preset = "<name>"`` plus top-level overrides of its fields."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"config file {path}: not valid TOML ({exc})") from exc
    name = data.pop("preset", None)
    if name not in presets:
        raise ValueError(f"config file {path}: 'preset' must be one of {sorted(presets)}, got {name!r}")
    return apply_overrides(presets[name], data)
