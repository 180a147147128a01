"""Deep-network checks of the singularity picture (optional extra ``[deep]``: torch).

Modules: :mod:`.data` (CIFAR loading, restricted unpickler), :mod:`.nets` (deep MLPs with skips,
batched over seeds; the 2022 CNNs), :mod:`.training` (batched training, checkpoints, resume),
:mod:`.probes` (unit-level probes: eliminated, overlapping, linearly dependent units),
:mod:`.predictions` (named predictions, bootstrap CIs, verdicts), :mod:`.report` (JSON / Markdown /
PNG), :mod:`.presets` (experiment configs) and ``python -m ghostsing.deepcheck``.

Submodules import torch; this package file does not, so ``import ghostsing.deepcheck`` is cheap.
"""
