"""The one registry of experiments: name -> :class:`~ghostsing.experiments.base.Experiment`.

:data:`CATALOG` maps every experiment name to the module that defines it (in its module-level tuple
``EXPERIMENTS``); a module is imported only when one of its experiments is asked for, so listing names
or running a simulation never imports torch.  To add a study: define its config, run function and
``Experiment`` in a module of this package, add it to that module's ``EXPERIMENTS`` and its name here.
``ghostsing run NAME``, ``python -m ghostsing.deepcheck`` and ``ghostsing sweep`` all resolve names here.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from ghostsing.experiments.base import KINDS, Experiment

__all__ = ["CATALOG", "get", "names", "experiments", "find_preset"]

#: experiment name -> (module defining it, kind).  Kept in one place so that listing needs no imports.
CATALOG: Mapping[str, tuple[str, str]] = MappingProxyType({
    # simulations of the symmetric two-unit model
    "portraits": ("ghostsing.experiments.simulations", "simulation"),
    "elimination-portraits": ("ghostsing.experiments.simulations", "simulation"),
    "plateau-vs-epsilon": ("ghostsing.experiments.simulations", "simulation"),
    "loss-curves": ("ghostsing.experiments.simulations", "simulation"),
    "sgd-vs-ode": ("ghostsing.experiments.simulations", "simulation"),
    # ghosts of the overlap line under skips
    "ghost-passage": ("ghostsing.experiments.ghosts", "simulation"),
    "ghost-traps": ("ghostsing.experiments.ghosts", "simulation"),
    "ghost-basin": ("ghostsing.experiments.ghosts", "simulation"),
    "symmetric-passage": ("ghostsing.experiments.ghosts", "simulation"),
    "ghost-noise": ("ghostsing.experiments.ghosts", "simulation"),
    # ghosts of the degenerate line over three decades, elimination and linear-dependence sets under skips
    "degenerate-passage-deep": ("ghostsing.experiments.ghost_sets", "simulation"),
    "ghost-set-fates": ("ghostsing.experiments.ghost_sets", "simulation"),
    "ghost-noise-n": ("ghostsing.experiments.ghost_sets", "simulation"),
    "ghost-noise-trap": ("ghostsing.experiments.ghost_noise_trap", "simulation"),
    # derivation documents (LaTeX, Markdown, JSON)
    "two-unit": ("ghostsing.experiments.derivation_two_unit", "analytic"),
    "three-unit": ("ghostsing.experiments.derivation_three_unit", "analytic"),
    # one cell of the plateau phase diagram (the sweep sweeps/plateau.toml)
    "plateau-cell": ("ghostsing.experiments.plateau_cell", "simulation"),
    # deep nets with and without skips (python -m ghostsing.deepcheck)
    "skip-comparison": ("ghostsing.experiments.deep_skips", "deep"),
    "dead-branches": ("ghostsing.experiments.deep_dead_branches", "deep"),
    "parker-hoang": ("ghostsing.experiments.deep_parker_hoang", "deep"),
    # curvature checks of deep nets: Hessian spectra, null spaces, edge of stability, LLC, the bridge
    "hessian": ("ghostsing.experiments.deep_curvature_hessian", "deep"),
    "nullspace": ("ghostsing.experiments.deep_curvature_nullspace", "deep"),
    "eos": ("ghostsing.experiments.deep_curvature_gd", "deep"),
    "lowell": ("ghostsing.experiments.deep_curvature_gd", "deep"),
    "slt": ("ghostsing.experiments.deep_curvature_slt", "deep"),
    "bridge": ("ghostsing.experiments.deep_curvature_bridge", "deep"),
})


def names(kind: str | None = None) -> tuple[str, ...]:
    """Registered experiment names (of one :data:`~ghostsing.experiments.base.KINDS` if ``kind``)."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind={kind!r} is not allowed; allowed: {', '.join(KINDS)}")
    return tuple(n for n, (_, k) in CATALOG.items() if kind is None or k == kind)


def get(name: str) -> Experiment:
    """The registered experiment called ``name`` (``ValueError`` naming the known ones otherwise)."""
    if name not in CATALOG:
        raise ValueError(f"experiment {name!r} is not registered; allowed: {', '.join(CATALOG)}")
    module_name, kind = CATALOG[name]
    module = importlib.import_module(module_name)
    found = {e.name: e for e in getattr(module, "EXPERIMENTS", ())}
    if name not in found:
        raise LookupError(f"{module_name} does not define the experiment {name!r} in EXPERIMENTS")
    experiment = found[name]
    if experiment.kind != kind:
        raise LookupError(f"{name}: the catalog says kind {kind!r}, {module_name} says {experiment.kind!r}")
    return experiment


def experiments(kind: str | None = None) -> Iterable[Experiment]:
    """Every registered experiment (of one kind if given), importing their modules."""
    return tuple(get(n) for n in names(kind))


def find_preset(preset: str, kind: str | None = None) -> tuple[Experiment, str]:
    """``(experiment, preset)`` for a preset name unique among the experiments (of ``kind``), or an
    ``experiment:preset`` pair.  ``python -m ghostsing.deepcheck --preset NAME`` resolves through this."""
    if ":" in preset:
        exp_name, _, key = preset.partition(":")
        exp = get(exp_name)
        exp.config(key)  # raises naming the allowed presets
        return exp, key
    hits = [(e, preset) for e in experiments(kind) if preset in e.presets]
    if len(hits) == 1:
        return hits[0]
    allowed = sorted(f"{e.name}:{p}" for e in experiments(kind) for p in e.presets)
    if not hits:
        raise ValueError(f"preset {preset!r} is not known; allowed: {', '.join(allowed)}")
    raise ValueError(f"preset {preset!r} is ambiguous; give one of "
                     f"{', '.join(f'{e.name}:{p}' for e, p in hits)}")
