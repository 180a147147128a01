r"""``nullspace``: the Hessian null space that dead and duplicated units create, against dense eigenvalues.

Small ReLU MLPs (``in_dim = 3 (32/pool)^2`` CIFAR features, ``depth`` hidden layers of ``width``, 10
outputs, square loss to one-hot labels so that no softmax invariance adds null directions) are *built*
with known defects, plain (``alpha = 0``) and residual (``alpha = 1``):

* ``clean`` -- every bias set to minus the median of its unit's pre-activation over the data, so each unit
  is active on half the inputs (no dead and no always-active unit);
* ``dead`` -- ``k`` units (``k`` drawn from ``1..max_dead`` per seed, at random hidden positions) made dead
  (bias below minus the largest pre-activation);
* ``duplicate`` -- ``k`` pairs (``1..max_dup``) of the last hidden layer given identical incoming weights
  and bias (outgoing weights left generic).

For each net the derived count (:func:`ghostsing.deepcheck.probes.relu_nullspace.null_directions`:
``fan_in + 1`` per dead branch, ``+ fan_out`` when its output is identically zero,
``max(0, fan_out - fan_in - 1)`` per duplicated pair of a plain layer, none in a residual layer) is
compared with the number of eigenvalues of the dense float64 Hessian with
``|lambda| < zero_tol * lambda_max`` (the report gives the gap: the largest "zero" and the smallest
non-zero ``|lambda|``).

Predictions (each with its test, p-value, effect and CI over seeds):

1. the derived count orders the measured nullities (Spearman, permutation test; the number of nets where
   they agree *exactly* is in the details and the report);
2. a dead unit of a plain net creates ``fan_out`` more null directions than one of a residual net (paired
   per seed: ``nullity(plain, dead) - nullity(residual, dead) > 0``);
3. duplicated units create null directions in plain nets and none in residual ones
   (``nullity(plain, dup) - nullity(residual, dup) > 0``);
4. negative control: the same difference for the clean nets (no defect) -- zero on every seed, so the
   prediction is refused as constant rather than passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ghostsing.experiments.base import Experiment, ExperimentOutput
from ghostsing.experiments.deep_curvature import ActMLP, cached_units, check_data_fields, features, mse_onehot
from ghostsing.experiments.predictions import (
    Prediction,
    decide,
    one_group_prediction,
    spearman_over_levels,
    spearman_permutation_test,
)
from ghostsing.validation import check_float, check_int

KINDS_OF_NET = ("clean", "dead", "duplicate")
ALPHAS = {"plain": 0.0, "residual": 1.0}


@dataclass(frozen=True)
class NullspaceConfig:
    """Settings of ``nullspace`` (module docstring)."""

    seeds: tuple[int, ...] = tuple(range(8))
    dataset: str = "cifar10"
    data: str = "real"
    data_root: str | None = None
    n_train: int = 256
    pool: int = 16
    width: int = 6
    depth: int = 2
    max_dead: int = 3
    max_dup: int = 2
    zero_tol: float = 1e-9
    threads: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        check_data_fields(self)
        check_int("n_train", self.n_train, 16)
        check_int("width", self.width, 3, 64)
        check_int("depth", self.depth, 1, 8)
        check_int("max_dead", self.max_dead, 1, self.width)
        check_int("max_dup", self.max_dup, 1, self.width // 2)
        check_float("zero_tol", self.zero_tol, 0, 1e-3, low_open=True)


def build(cfg: NullspaceConfig, x: torch.Tensor, n_classes: int, kind: str, alpha: float, seed: int):
    """The net of ``kind`` (module docstring) for this seed; returns ``(net, layers, defects)``."""
    rng = np.random.default_rng(1000 + seed)
    net = ActMLP(x.shape[1], cfg.width, cfg.depth, n_classes, "relu", alpha, seed)
    k_dead = int(rng.integers(1, cfg.max_dead + 1))
    k_dup = int(rng.integers(1, cfg.max_dup + 1))
    dead = set()
    if kind == "dead":
        cells = [(lay, u) for lay in range(cfg.depth) for u in range(cfg.width)]
        dead = {cells[i] for i in rng.choice(len(cells), k_dead, replace=False)}
    dups = []
    if kind == "duplicate":
        units = rng.permutation(cfg.width)[: 2 * k_dup]
        dups = [(int(units[2 * i]), int(units[2 * i + 1])) for i in range(k_dup)]
    h = x
    with torch.no_grad():
        for li in range(cfg.depth):
            lin = net.linears[li]
            if li == cfg.depth - 1:
                for i, j in dups:
                    lin.weight[j] = lin.weight[i]
            pre = h @ lin.weight.T
            b = -pre.median(0).values
            for i, j in dups if li == cfg.depth - 1 else ():
                b[j] = b[i]
            for lay, u in dead:
                if lay == li:
                    b[u] = -pre[:, u].max() - 1.0
            lin.bias.copy_(b)
            a = torch.relu(pre + b)
            h = a if li == 0 else a + alpha * h
    layers = [(lin.weight.detach(), lin.bias.detach()) for lin in net.linears]
    return net, layers, {"dead_units": sorted(dead), "duplicate_pairs": dups}


def _unit(cfg: NullspaceConfig, x, y, n_classes: int, key: str) -> dict:
    from ghostsing.deepcheck.operators import flat_loss
    from ghostsing.deepcheck.probes.hessian import exact_spectrum
    from ghostsing.deepcheck.probes.relu_nullspace import null_directions

    kind, arm, s = key.split("_")
    seed, alpha = int(s[1:]), ALPHAS[arm]
    net, layers, defects = build(cfg, x, n_classes, kind, alpha, seed)
    count = null_directions(layers, [alpha] * (cfg.depth - 1), x)
    ev = exact_spectrum(flat_loss(net, mse_onehot(n_classes), x, y).hessian())
    a = np.abs(ev)
    zero = a < cfg.zero_tol * a.max()
    return {"kind": kind, "arm": arm, "seed": seed, "n_params": int(ev.size), "predicted": count.total,
            "predicted_dead": count.dead, "predicted_duplicate": count.duplicate,
            "measured": int(zero.sum()), "largest_zero": float(a[zero].max()) if zero.any() else None,
            "smallest_nonzero": float(a[~zero].min()), "lambda_max": float(a.max()), **defects}


def _agreement_prediction(us: list[dict], n_boot: int = 4000) -> Prediction:
    """Spearman's rho between the derived count and the measured nullity over every net built: permutation
    p-value (values permuted across nets), percentile-bootstrap CI over nets (pairs resampled)."""
    pred = np.array([u["predicted"] for u in us], dtype=float)
    meas = np.array([u["measured"] for u in us], dtype=float)
    levels = sorted(set(pred.tolist()))
    groups = [meas[pred == lv] for lv in levels]
    rho, p, test, min_p = spearman_permutation_test(levels, groups)
    rng = np.random.default_rng(0)
    boot = []
    for _ in range(n_boot):
        i = rng.integers(0, len(us), len(us))
        lv = sorted(set(pred[i].tolist()))
        boot.append(spearman_over_levels(lv, *[meas[i][pred[i] == v] for v in lv]))
    boot = np.array(boot)
    boot = boot[np.isfinite(boot)]
    ci = (float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))) if boot.size else (np.nan, np.nan)
    verdict, reason = decide(rho, ci, p, +1, min_p=min_p)
    exact = int(np.sum(pred == meas))
    return Prediction(
        "the derived null-space count orders the measured Hessian nullity", verdict, rho, ci, len(us),
        "Spearman rho(derived count, #{|lambda| < zero_tol lambda_max}) over every net built (CI: bootstrap "
        "over nets)",
        "fan_in + 1 per dead branch, + fan_out when its output is zero (plain), max(0, fan_out - fan_in - 1) "
        f"per duplicated plain pair; exact agreement on {exact} of {len(us)} nets", +1,
        {"exact_agreement": exact, "n_nets": len(us), "min_p": min_p}, test, p, reason=reason)


def run(cfg: NullspaceConfig, out_dir: Path, *, resume: bool = False, progress: bool = True
        ) -> ExperimentOutput:
    from ghostsing.experiments.deep_curvature import set_threads
    from ghostsing.plots.curvature import plot_nullspace

    set_threads(cfg.threads)
    x, y, info = features(cfg.dataset, cfg.data, cfg.data_root, cfg.n_train, cfg.pool)
    keys = [f"{k}_{arm}_s{s}" for k in KINDS_OF_NET for arm in ALPHAS for s in cfg.seeds]
    units = cached_units(out_dir, keys, lambda k: _unit(cfg, x, y, info["n_classes"], k), resume=resume,
                         progress=progress, tag="nullspace")
    us = list(units.values())

    def vals(kind, arm, field="measured"):
        return [units[f"{kind}_{arm}_s{s}"][field] for s in cfg.seeds]

    exact = sum(u["predicted"] == u["measured"] for u in us)
    fan_out = info["n_classes"] if cfg.depth == 1 else cfg.width
    preds = [
        _agreement_prediction(us),
        one_group_prediction(
            "a dead unit of a plain net leaves more null directions than one of a residual net",
            np.subtract(vals("dead", "plain"), vals("dead", "residual")).tolist(), +1,
            "E = mean over seeds of nullity(plain, dead) - nullity(residual, dead) (same dead positions)",
            "the plain net's dead unit outputs zero, so its fan_out outgoing weights are null too; the "
            f"residual stream keeps it alive (derived: about fan_out = {fan_out} per dead hidden unit "
            "beyond the first layer)"),
        one_group_prediction(
            "duplicated units leave null directions in plain nets, none in residual nets",
            np.subtract(vals("duplicate", "plain"), vals("duplicate", "residual")).tolist(), +1,
            "E = mean over seeds of nullity(plain, duplicate) - nullity(residual, duplicate)",
            "the skip adds different stream components to the two copies, which breaks the overlap"),
        one_group_prediction(
            "negative control: clean nets (no defect) differ in nullity between plain and residual",
            np.subtract(vals("clean", "plain"), vals("clean", "residual")).tolist(), +1,
            "E = mean over seeds of nullity(plain, clean) - nullity(residual, clean)",
            "no dead or duplicated unit: the derived count is 0 for both, so there is nothing to find"),
    ]
    gaps = [(u["largest_zero"] or 0.0) / u["lambda_max"] for u in us]
    rows = ["| net | arm | derived (mean) | measured (mean) | exact agreement |", "|---|---|---|---|---|"]
    for kind in KINDS_OF_NET:
        for arm in ALPHAS:
            g = [units[f"{kind}_{arm}_s{s}"] for s in cfg.seeds]
            rows.append(f"| {kind} | {arm} | {np.mean([u['predicted'] for u in g]):.2f} | "
                        f"{np.mean([u['measured'] for u in g]):.2f} | "
                        f"{sum(u['predicted'] == u['measured'] for u in g)} of {len(g)} |")
    smallest = min(u["smallest_nonzero"] / u["lambda_max"] for u in us)
    md = "\n".join(["## Hessian null space of dead and duplicated units", "", *rows, "",
                    f"P = {us[0]['n_params']} parameters; dense float64 Hessian of the square loss on "
                    f"{cfg.n_train} {cfg.dataset} images pooled to {info['in_dim']} features; zero = "
                    f"|lambda| < {cfg.zero_tol:g} lambda_max. Gap: largest 'zero' |lambda|/lambda_max = "
                    f"{max(gaps):.2g}, smallest non-zero = {smallest:.2g}. Exact agreement on {exact} of "
                    f"{len(us)} nets."])
    figs = plot_nullspace(us, out_dir)
    summary = {"data": info, "exact_agreement": exact, "n_nets": len(us), "largest_zero_rel": max(gaps),
               "smallest_nonzero_rel": smallest}
    return ExperimentOutput(tuple(preds), figs, {}, summary, md)


PRESETS = {
    "nullspace-small": NullspaceConfig(seeds=(0, 1, 2, 3, 4), n_train=64, width=4),
    "nullspace-cpu": NullspaceConfig(),
    "nullspace": NullspaceConfig(seeds=tuple(range(16)), n_train=1024, width=8, depth=3),
}

EXPERIMENTS = (Experiment("nullspace", "Hessian null space of dead and duplicated units (dense eigenvalues)",
                          "deep", NullspaceConfig, run, PRESETS),)
