r"""``hessian``: Orhan & Pitkow's degenerate and negative Hessian eigenvalues, at converged points.

Orhan & Pitkow (ICLR 2018, "Skip connections eliminate singularities") argue that the singularities of
plain nets make the Hessian degenerate, and that skip connections remove degenerate directions: the plain
net should have the larger fraction of (near-)zero eigenvalues.  (The seed text in the shared folder holds
only the abstract; the direction tested is the abstract's -- skips remove degenerate manifolds -- and the
report states it.)  The claim is about the landscape, so it is measured at **converged points**:

* deep ReLU MLPs (:class:`ghostsing.deepcheck.nets.BatchedMLP`: every arm and seed in one batched model)
  of ``depth`` x ``width`` on ``n_train`` CIFAR images pooled to ``3 (32/pool)^2`` features, trained by
  full-batch Adam with :func:`ghostsing.deepcheck.training.train` (cross-entropy, ``epochs`` steps);
  ``n_train`` is several times the parameter count, so the data are not separable and the cross-entropy
  has finite minimisers;
* each net then polished by full-batch L-BFGS in float64 until ``|grad L| <= grad_tol``
  (:func:`~ghostsing.experiments.deep_curvature.converge`); nets that do not get there are reported (and
  their count stated) but kept;
* the dense float64 Hessian of the training loss diagonalised.

``f_deg = #{|lambda| < tau lambda_max} / P`` (degenerate, ``tau = tau_pred``) and
``f_neg = #{lambda < -tau lambda_max} / P``.  Arms: the skips of ``skips`` -- ``none`` (plain),
``lowrank:k`` (a degenerate identity skip on ``k`` of the ``width`` units, Orhan & Pitkow's degenerate
skips), ``identity`` (residual) -- and a control arm: plain nets with other seeds.

Predictions: (1) plain nets have more degenerate eigenvalues than residual nets (permutation test over
seeds); (2) plain nets have more negative eigenvalues (at a converged minimum both fractions should be
near 0: a test of whether the points are minima); (3) the degenerate-skip sweep: ``f_deg`` falls as the
skip rank ``k`` grows (Spearman, permutation test); (4) negative control: plain against plain with other
seeds -- no difference expected.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ghostsing.experiments.base import Experiment, ExperimentOutput
from ghostsing.experiments.deep_curvature import (
    cached_units,
    check_data_fields,
    converge,
    device_of,
    features,
    set_threads,
)
from ghostsing.experiments.predictions import difference_prediction, spearman_prediction
from ghostsing.validation import check_float, check_floats, check_int

CONTROL_OFFSET = 100


@dataclass(frozen=True)
class HessianConfig:
    """Settings of ``hessian`` (module docstring).  ``skips`` must contain ``none`` and ``identity``;
    ``lowrank:k`` arms make the degenerate-skip sweep."""

    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    dataset: str = "cifar10"
    data: str = "real"
    data_root: str | None = None
    n_train: int = 1024
    pool: int = 16
    width: int = 8
    depth: int = 4
    skips: tuple[str, ...] = ("none", "lowrank:4", "identity")
    control: bool = True
    lr: float = 3e-3
    epochs: int = 1000
    lbfgs_iters: int = 1500
    grad_tol: float = 1e-6
    tau_pred: float = 1e-4
    taus: tuple[float, ...] = (1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
    threads: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        from ghostsing.deepcheck.nets import parse_skip

        check_data_fields(self)
        check_int("n_train", self.n_train, 32)
        check_int("width", self.width, 2, 256)
        check_int("depth", self.depth, 2, 64)
        for s in self.skips:
            spec = parse_skip(s)
            if spec.kind not in ("none", "identity", "lowrank"):
                raise ValueError(f"skips: {s!r} is not allowed; allowed: none, identity, lowrank:k")
            if spec.kind == "lowrank" and not 0 < spec.k < self.width:
                raise ValueError(f"skips: {s!r} needs 0 < k < width={self.width}")
        if {"none", "identity"} - set(self.skips) or len(set(self.skips)) != len(self.skips):
            raise ValueError(f"skips={self.skips!r}: need distinct entries including 'none' and 'identity'")
        check_float("lr", self.lr, 0, 1, low_open=True)
        check_int("epochs", self.epochs, 0)
        check_int("lbfgs_iters", self.lbfgs_iters, 0)
        check_float("grad_tol", self.grad_tol, 0, 1, low_open=True)
        check_float("tau_pred", self.tau_pred, 0, 1, low_open=True, high_open=True)
        check_floats("taus", self.taus, 0, 1, low_open=True)


def skip_rank(skip: str, width: int) -> int:
    """Rank of the skip: 0 plain, ``k`` for ``lowrank:k``, ``width`` for identity."""
    from ghostsing.deepcheck.nets import parse_skip

    spec = parse_skip(skip)
    return {"none": 0, "identity": width}.get(spec.kind, spec.k)


def _train_all(cfg: HessianConfig, x, y, info) -> dict:
    """Adam phase for every (arm, seed) in one batched model; returns ``{key: (skip, seed, MLP)}``."""
    from ghostsing.deepcheck.nets import BatchedMLP, MLPConfig
    from ghostsing.deepcheck.training import TrainConfig, train

    arms = [(s, seed, f"{s}_s{seed}") for s in cfg.skips for seed in cfg.seeds]
    if cfg.control:
        arms += [("none", seed + CONTROL_OFFSET, f"control_s{seed}") for seed in cfg.seeds]
    mcfg = MLPConfig(cfg.depth, cfg.width, info["in_dim"], info["n_classes"], "none")
    model = BatchedMLP(mcfg, [a[1] for a in arms], [a[0] for a in arms], dtype=torch.float64, device=x.device)
    tc = TrainConfig(optimizer="adam", lr=cfg.lr, epochs=cfg.epochs, batch_size=None,
                     eval_every=max(cfg.epochs, 1))
    res = train(model, x, y, x[:2], y[:2], tc, progress=False)
    return {key: (skip, seed, model.extract(i), float(res.history["train_loss"][-1, i]))
            for i, (skip, seed, key) in enumerate(arms)}


def _unit(cfg: HessianConfig, x, y, trained: dict, key: str) -> dict:
    from ghostsing.deepcheck.operators import flat_loss
    from ghostsing.deepcheck.probes.hessian import degeneracy_curve, exact_spectrum, negative_fraction

    skip, seed, net, adam_loss = trained[key]
    fl = flat_loss(net, torch.nn.functional.cross_entropy, x, y)
    theta, conv = converge(fl, lbfgs_iters=cfg.lbfgs_iters, grad_tol=cfg.grad_tol)
    ev = exact_spectrum(replace(fl, theta=theta).hessian())
    lm = float(ev.max())
    return {"skip": skip, "seed": seed, "rank": skip_rank(skip, cfg.width), "n_params": int(ev.size),
            "adam_loss": adam_loss, **conv, "lambda_max": lm, "lambda_min": float(ev.min()),
            "f_deg": float(degeneracy_curve(ev, (cfg.tau_pred,))[0]),
            "f_neg": negative_fraction(ev, cfg.tau_pred * lm),
            "f_deg_curve": degeneracy_curve(ev, cfg.taus).tolist(),
            "f_neg_curve": [negative_fraction(ev, t * lm) for t in cfg.taus]}


def run(cfg: HessianConfig, out_dir: Path, *, resume: bool = False, progress: bool = True
        ) -> ExperimentOutput:
    from ghostsing.plots.curvature import plot_hessian_fractions

    set_threads(cfg.threads)
    x, y, info = features(cfg.dataset, cfg.data, cfg.data_root, cfg.n_train, cfg.pool)
    x, y = x.to(device_of(cfg)), y.to(device_of(cfg))
    keys = [f"{s}_s{seed}" for s in cfg.skips for seed in cfg.seeds]
    keys += [f"control_s{seed}" for seed in cfg.seeds] if cfg.control else []
    done = {k for k in keys if resume and (Path(out_dir) / "units" / f"{k}.json").is_file()}
    trained = _train_all(cfg, x, y, info) if set(keys) - done else {}
    units = cached_units(out_dir, keys, lambda k: _unit(cfg, x, y, trained, k), resume=resume,
                         progress=progress, tag="hessian")

    def arm(s, field):
        return [units[f"{s}_s{seed}"][field] for seed in cfg.seeds]

    n_conv = sum(u["converged"] for u in units.values())
    tag = (f"tau = {cfg.tau_pred:g} lambda_max, at the L-BFGS points ({n_conv} of {len(units)} nets with "
           f"|grad L| <= {cfg.grad_tol:g}, the largest {max(u['grad_norm'] for u in units.values()):.2g})")
    preds = [
        difference_prediction(
            "plain nets have more degenerate Hessian eigenvalues than residual nets",
            arm("none", "f_deg"), arm("identity", "f_deg"), +1,
            f"E = f_deg(plain) - f_deg(residual), f_deg = #{{|lambda| < {cfg.tau_pred:g} lambda_max}}/P",
            "Orhan & Pitkow: skips eliminate the degenerate manifolds of the plain net; " + tag),
        difference_prediction(
            "plain nets have more negative Hessian eigenvalues than residual nets",
            arm("none", "f_neg"), arm("identity", "f_neg"), +1,
            f"E = f_neg(plain) - f_neg(residual), f_neg = #{{lambda < -{cfg.tau_pred:g} lambda_max}}/P",
            "saddle-like curvature near the plain net's singular sets; at converged minima both should be "
            "near 0; " + tag),
    ]
    sweep = sorted(cfg.skips, key=lambda s: skip_rank(s, cfg.width))
    if len(sweep) >= 3:
        preds.append(spearman_prediction(
            "degenerate-skip sweep: f_deg falls as the skip rank grows",
            [skip_rank(s, cfg.width) for s in sweep], [arm(s, "f_deg") for s in sweep], -1,
            "Spearman rho(skip rank k, f_deg), k = 0 (plain) ... width (identity)",
            "Orhan & Pitkow's degenerate skips: the more units a skip reaches, the fewer degenerate "
            "directions; " + tag))
    if cfg.control:
        preds.append(difference_prediction(
            "negative control: plain nets differ from plain nets with other seeds",
            arm("none", "f_deg"), [units[f"control_s{s}"]["f_deg"] for s in cfg.seeds], +1,
            "E = f_deg(plain, seeds) - f_deg(plain, seeds + 100)", "identical arms: no effect expected"))
    rows = ["| arm | rank k | P | loss | max |grad L| | f_deg | f_neg | lambda_max |",
            "|---|---|---|---|---|---|---|---|"]
    for s in sweep + (["control"] if cfg.control else []):
        g = [units[f"{s}_s{seed}"] for seed in cfg.seeds]
        rows.append(f"| {s} | {g[0]['rank']} | {g[0]['n_params']} | {np.mean([u['loss'] for u in g]):.4f} | "
                    f"{max(u['grad_norm'] for u in g):.2g} | {np.mean([u['f_deg'] for u in g]):.4f} | "
                    f"{np.mean([u['f_neg'] for u in g]):.4f} | {np.mean([u['lambda_max'] for u in g]):.3g} |")
    md = "\n".join(["## Hessian spectra at converged points (dense, float64)", "", *rows, "",
                    f"Means over {len(cfg.seeds)} seeds. {cfg.epochs} full-batch Adam steps (lr {cfg.lr:g}) "
                    f"then L-BFGS to |grad L| <= {cfg.grad_tol:g} (at most {cfg.lbfgs_iters} iterations); "
                    f"{n_conv} of {len(units)} nets reached it. {cfg.n_train} {cfg.dataset} images pooled "
                    f"to {info['in_dim']} features, cross-entropy."])
    figs = plot_hessian_fractions(units, cfg.taus, sweep, cfg.width, out_dir)
    summary = {"data": info, "converged": n_conv, "n_nets": len(units),
               "f_deg_mean": {s: float(np.mean(arm(s, "f_deg"))) for s in cfg.skips},
               "f_neg_mean": {s: float(np.mean(arm(s, "f_neg"))) for s in cfg.skips}}
    return ExperimentOutput(tuple(preds), figs, {}, summary, md)


PRESETS = {
    "hessian-small": HessianConfig(seeds=(0, 1), n_train=256, width=4, depth=3,
                                   skips=("none", "lowrank:2", "identity"), control=False, epochs=50,
                                   lbfgs_iters=100, grad_tol=1e-5),
    "hessian-cpu": HessianConfig(),
    "hessian": HessianConfig(seeds=tuple(range(10)), n_train=12000, pool=8, width=16, depth=8,
                             skips=("none", "lowrank:4", "lowrank:8", "lowrank:12", "identity"),
                             epochs=5000, lbfgs_iters=20000, device="auto"),
}

EXPERIMENTS = (Experiment("hessian", "Degenerate and negative Hessian eigenvalues at converged points "
                          "(Orhan & Pitkow)", "deep", HessianConfig, run, PRESETS),)
