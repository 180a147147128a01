r"""The experiment contract: a frozen config, a ``run`` function, and what it returns.

An :class:`Experiment` is a named study of the package (a simulation figure, a ghost study, a deep-net
check, a curvature check).  It has

* a **config type**: a frozen dataclass whose ``__post_init__`` validates every field once, with
  :mod:`ghostsing.validation` (bad values raise ``ValueError`` naming the field and what is allowed);
* **presets**: named configs (``"default"`` is the published size, ``"small"`` the size the tests run);
* a **run function** ``run(config, out_dir, *, resume, progress) -> ExperimentOutput`` that computes,
  draws its figures with :mod:`ghostsing.plots`, writes them (and any checkpoints) into ``out_dir``, and
  returns an :class:`ExperimentOutput`.  ``resume=True`` reuses finished pieces found in ``out_dir``.

The one report writer (:func:`ghostsing.experiments.report.write_report`) turns an output into
``report.json``, ``report.md`` and ``arrays.npz``; sweeps (:mod:`ghostsing.experiments.sweep`) read the
``summary`` scalars of many outputs into one store.

Configs are built from mappings (TOML tables, ``--set key=value`` flags) by :func:`config_from_mapping`,
which coerces strings and lists to the field's type and refuses unknown keys by name.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ghostsing.experiments.predictions import Prediction

__all__ = ["Experiment", "ExperimentOutput", "RunFunction", "config_from_mapping", "config_to_dict",
           "merge_outputs", "KINDS"]

#: What an experiment studies; the command lines filter on it (``python -m ghostsing.deepcheck`` lists
#: the ``deep`` ones).
KINDS: tuple[str, ...] = ("analytic", "simulation", "deep")


@dataclass(frozen=True)
class ExperimentOutput:
    """What a run returns.

    Attributes
    ----------
    predictions : the tested claims (fitted laws of simulation studies too), each with its verdict.
    figures : figure file names, relative to the run folder.
    arrays : named arrays written to ``arrays.npz`` by the report writer (the data behind the figures).
    summary : JSON-ready numbers; its scalar entries (flattened with ``/``) are what sweeps store.
    markdown : an extra section for ``report.md``.
    """

    predictions: tuple[Prediction, ...] = ()
    figures: tuple[str, ...] = ()
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)
    summary: Mapping[str, Any] = field(default_factory=dict)
    markdown: str = ""

    def __post_init__(self) -> None:
        for p in self.predictions:
            if not isinstance(p, Prediction):
                raise TypeError(f"predictions must be Prediction objects, got {type(p).__name__}")
        object.__setattr__(self, "predictions", tuple(self.predictions))
        object.__setattr__(self, "figures", tuple(str(f) for f in self.figures))

    def scalars(self) -> dict[str, float]:
        """The numeric scalars of ``summary`` (nested keys joined by ``/``) and each prediction's effect
        and p-value (``prediction/<name>/effect``); what a sweep stores per cell."""
        out: dict[str, float] = {}

        def walk(prefix: str, obj: Any) -> None:
            if isinstance(obj, Mapping):
                for k, v in obj.items():
                    walk(f"{prefix}/{k}" if prefix else str(k), v)
            elif isinstance(obj, (bool, np.bool_)):
                out[prefix] = float(obj)
            elif isinstance(obj, (int, float, np.integer, np.floating)):
                out[prefix] = float(obj)

        walk("", self.summary)
        for p in self.predictions:
            out[f"prediction/{p.name}/effect"] = p.effect
            p_value = getattr(p, "p_value", None)
            if p_value is not None:
                out[f"prediction/{p.name}/p_value"] = float(p_value)
        return out


def merge_outputs(outputs: typing.Sequence[ExperimentOutput]) -> ExperimentOutput:
    """One output from several: predictions, figures and Markdown concatenated, arrays and summaries
    merged key by key (a repeated key is an error)."""
    arrays: dict[str, np.ndarray] = {}
    summary: dict[str, Any] = {}
    for o in outputs:
        for target, source in ((arrays, o.arrays), (summary, o.summary)):
            clash = set(target) & set(source)
            if clash:
                raise ValueError(f"outputs repeat the keys {sorted(clash)}")
            target.update(source)
    return ExperimentOutput(
        tuple(p for o in outputs for p in o.predictions), tuple(f for o in outputs for f in o.figures),
        arrays, summary, "\n\n".join(o.markdown for o in outputs if o.markdown),
    )


class RunFunction(Protocol):
    """``run(config, out_dir, *, resume, progress) -> ExperimentOutput``."""

    def __call__(self, config: Any, out_dir: Path, *, resume: bool = False,
                 progress: bool = True) -> ExperimentOutput: ...


@dataclass(frozen=True)
class Experiment:
    """A registered study: its name, config type, presets and run function (module docstring).

    ``kind`` is one of :data:`KINDS`; ``title`` is one line for listings and report headings.
    """

    name: str
    title: str
    kind: str
    config_type: type
    run: RunFunction
    presets: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind={self.kind!r} is not allowed; allowed: {KINDS}")
        if not (dataclasses.is_dataclass(self.config_type) and self.config_type.__dataclass_params__.frozen):
            raise TypeError(f"{self.name}: config_type must be a frozen dataclass")
        for key, cfg in self.presets.items():
            if not isinstance(cfg, self.config_type):
                raise TypeError(f"{self.name}: preset {key!r} is a {type(cfg).__name__}, "
                                f"not a {self.config_type.__name__}")
        object.__setattr__(self, "presets", types.MappingProxyType(dict(self.presets)))

    def config(self, preset: str | None = None, overrides: Mapping[str, Any] | None = None) -> Any:
        """A validated config: the preset (``"default"`` if it exists, else the type's defaults) with
        ``overrides`` applied (:func:`config_from_mapping`)."""
        if preset is None:
            base = self.presets.get("default") or self.config_type()
        elif preset in self.presets:
            base = self.presets[preset]
        else:
            raise ValueError(f"preset={preset!r} is not one of the presets of {self.name!r}; allowed: "
                             f"{', '.join(self.presets) or '(none)'}")
        return config_from_mapping(self.config_type, overrides or {}, base=base)


def _field_types(config_type: type) -> dict[str, Any]:
    hints = typing.get_type_hints(config_type)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(config_type) if f.init}


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """``value`` converted to the annotated type ``hint`` (strings from flags, lists from TOML)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(name, value, arg)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError("; ".join(errors) or f"{name}={value!r}: cannot convert")
    if origin is typing.Literal:
        if value in args:
            return value
        raise ValueError(f"{name}={value!r} is not allowed; allowed: {', '.join(map(repr, args))}")
    if origin in (tuple, list):
        items = [s.strip() for s in value.split(",") if s.strip()] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            items = [items]
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(f"{name}[{i}]", v, args[0]) for i, v in enumerate(items))
        if origin is tuple and args:
            if len(items) != len(args):
                raise ValueError(f"{name}={value!r}: expected {len(args)} entries")
            pairs = zip(items, args, strict=True)
            return tuple(_coerce(f"{name}[{i}]", v, a) for i, (v, a) in enumerate(pairs))
        return tuple(items)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ValueError(f"{name}={value!r} is not a boolean; allowed: true or false")
    if hint in (int, float, str):
        if isinstance(value, bool) and hint is not str:
            raise ValueError(f"{name}={value!r} is not a {hint.__name__}")
        try:
            if hint is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return hint(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name}={value!r} is not a {hint.__name__}") from None
    return value


def config_from_mapping(config_type: type, values: Mapping[str, Any], *, base: Any = None) -> Any:
    """A config of ``config_type`` from ``values`` (TOML or ``--set`` flags; ``-`` in keys read as ``_``),
    starting from ``base`` (or the type's defaults).  Values are coerced to the annotated field types and
    validated by the config's ``__post_init__``; an unknown key raises ``ValueError`` listing the fields.
    """
    hints = _field_types(config_type)
    changes = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name not in hints:
            raise ValueError(f"{key!r} is not a setting of {config_type.__name__}; allowed: "
                             f"{', '.join(sorted(hints))}")
        changes[name] = _coerce(name, value, hints[name])
    if base is None:
        return config_type(**changes)
    return dataclasses.replace(base, **changes)


def config_to_dict(config: Any) -> dict[str, Any]:
    """The config's fields as a JSON-ready dict (tuples as lists)."""
    from ghostsing._io import to_jsonable

    return to_jsonable({f.name: getattr(config, f.name) for f in dataclasses.fields(config)})

