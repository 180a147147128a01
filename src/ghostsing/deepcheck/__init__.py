"""Deep-network checks of the singularity picture: the torch library (optional extra ``[deep]``).

Modules: :mod:`.data` (CIFAR loading with a restricted unpickler, synthetic data in CIFAR's formats),
:mod:`.nets` (deep MLPs with skips batched over seeds, their initialisations), :mod:`.cnns` (the 2022 CNNs
and the skip ablation of the residual one), :mod:`.training` (batched training, warm-up, step probes,
checkpoints, exact resume), :mod:`.probes` (unit measures: ablation, overlap, linear dependence; curvature
probes), :mod:`.operators` (curvature operators).  The experiments that use them (presets, predictions,
reports, figures) are registered in :mod:`ghostsing.experiments` (``deep_skips``, ``deep_parker_hoang``, the
curvature ones); ``python -m ghostsing.deepcheck`` runs them.

The names below are exported lazily: ``import ghostsing.deepcheck`` does not import torch; the first use
of an exported name imports its submodule.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "data": ("CifarData", "DataNotFoundError", "UnsafePickleError", "RestrictedUnpickler", "load_cifar",
             "load_for_run", "describe", "synthetic_arrays", "write_synthetic_cifar", "to_tensors",
             "safe_pickle_load", "DATASETS", "DATA_MODES"),
    "nets": ("MLP", "MLPConfig", "BatchedMLP", "SkipSpec", "parse_skip", "batch_groups",
             "init_mlp_tensors", "count_params", "INITS"),
    "cnns": ("BatchedModule", "parker_hoang_cnn", "parker_hoang_resnet", "parker_hoang_resnet_noskip",
             "CNN_FACTORIES"),
    "training": ("TrainConfig", "TrainResult", "train", "evaluate", "resolve_device", "epoch_permutation",
                 "make_optimizer", "per_net_loss"),
    "probes.units": ("ProbeConfig", "probe_mlp", "probe_layer", "ablation_contributions", "spectrum_stats",
                     "overlapping_pairs", "dead_units", "METRICS", "UNIT_METRICS"),
}
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'ghostsing.deepcheck' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"ghostsing.deepcheck.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
