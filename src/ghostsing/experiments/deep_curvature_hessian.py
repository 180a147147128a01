r"""``hessian``: Orhan & Pitkow's degenerate and negative Hessian eigenvalues, at certified end points.

Orhan & Pitkow (ICLR 2018, "Skip connections eliminate singularities") argue that the singularities of
plain nets make the Hessian degenerate, and that skip connections remove degenerate directions: the plain
net should have the larger fraction of (near-)zero eigenvalues.  (Only the paper's abstract was at hand; the
direction tested is the abstract's -- skips remove degenerate manifolds -- and the report states it.)  The
claim is about the landscape, so it is measured at **certified end points** of training:

* deep ReLU MLPs (:class:`ghostsing.deepcheck.nets.BatchedMLP`: every arm and seed in one batched model)
  of ``depth`` x ``width`` on ``n_train`` CIFAR images pooled to ``3 (32/pool)^2`` features, trained by
  full-batch Adam with :func:`ghostsing.deepcheck.training.train` (cross-entropy, ``epochs`` steps);
  ``n_train`` is several times the parameter count, so the data are not separable and the cross-entropy
  has finite minimisers;
* each net then polished by full-batch L-BFGS in float64 and at most ``newton_steps`` damped-Newton steps
  on the dense Hessian (:func:`~ghostsing.experiments.deep_curvature.converge`,
  :func:`~ghostsing.experiments.deep_curvature.newton_polish`), which certifies the end point: a critical
  point (``|grad L| <= grad_tol``), a nonsmooth *stationary* point (no damped-Newton step lowers the loss by
  ``stall_tol`` relative over ``stall_steps`` steps while the damping exceeds ``damping_max``, although
  ``|grad L|`` does not vanish: a minimum on a ReLU kink) or neither; the counts of each are reported;
* the dense float64 Hessian of the training loss diagonalised.

ReLU nets end on kinks, where the Hessian is one-sided.  The **smooth control set** (``smooth``, e.g.
``gelu``) repeats every arm with that activation (:class:`~ghostsing.experiments.deep_curvature.ActMLP`,
the same initial weights and skips, each net trained alone by the same Adam steps) on the loss
``L + (smooth_weight_decay / 2) |theta|^2``: without the penalty the cross-entropy of a smooth net keeps
falling towards its infimum at infinite weights (damped Newton lowers it for hundreds of steps with
``|grad L| ~ 0.1``), with it a minimiser exists and Newton reaches ``|grad L| <= grad_tol``.  The penalty
shifts every eigenvalue by ``smooth_weight_decay``, far below ``tau_pred lambda_max``.  The smooth set's
predictions use only its nets certified ``converged``: the Orhan & Pitkow predictions at true critical
points.

``f_deg = #{|lambda| < tau lambda_max} / P`` (degenerate, ``tau = tau_pred``) and
``f_neg = #{lambda < -tau lambda_max} / P``.  Arms: the skips of ``skips`` -- ``none`` (plain),
``lowrank:k`` (a degenerate identity skip on ``k`` of the ``width`` units, Orhan & Pitkow's degenerate
skips), ``identity`` (residual) -- and a control arm: plain nets with other seeds.

Predictions: (1) plain nets have more degenerate eigenvalues than residual nets (permutation test over
seeds); (2) plain nets have more negative eigenvalues (at a converged minimum both fractions should be
near 0: a test of whether the points are minima); (3) the degenerate-skip sweep: ``f_deg`` falls as the
skip rank ``k`` grows (Spearman, permutation test); (4) negative control: plain against plain with other
seeds -- no difference expected.  The four are made for the ReLU nets (at their certified end points) and
again for the smooth set (at critical points only).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ghostsing.experiments.base import Experiment, ExperimentOutput
from ghostsing.experiments.deep_curvature import (
    POLISH_KINDS,
    ActMLP,
    cached_units,
    check_data_fields,
    converge,
    device_of,
    features,
    penalised,
    set_threads,
)
from ghostsing.experiments.predictions import difference_prediction, spearman_prediction
from ghostsing.validation import check_choice, check_float, check_floats, check_int

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
    newton_steps: int = 500
    stall_tol: float = 1e-10
    stall_steps: int = 10
    damping_max: float = 1e8
    smooth: str = "gelu"
    smooth_weight_decay: float = 1e-3
    tau_pred: float = 1e-4
    taus: tuple[float, ...] = (1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
    threads: int = 0
    device: str = "cpu"
    note: str = ""

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
        check_int("newton_steps", self.newton_steps, 0)
        check_float("stall_tol", self.stall_tol, 0, 1, low_open=True)
        check_int("stall_steps", self.stall_steps, 1)
        check_float("damping_max", self.damping_max, 0, low_open=True)
        check_choice("smooth", self.smooth, ("", "tanh", "gelu"))
        check_float("smooth_weight_decay", self.smooth_weight_decay, 0, 1)
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


def _smooth_net(cfg: HessianConfig, x, y, n_classes: int, skip: str, seed: int):
    """The smooth control net of ``(skip, seed)``: :class:`ActMLP` with activation ``cfg.smooth``, trained
    alone by ``cfg.epochs`` full-batch Adam steps on the penalised loss; returns ``(net, Adam loss)``."""
    net = ActMLP(x.shape[1], cfg.width, cfg.depth, n_classes, cfg.smooth, 0.0, seed, skip=skip).to(x.device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    loss = torch.tensor(float("nan"))
    for _ in range(cfg.epochs):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss = loss + 0.5 * cfg.smooth_weight_decay * sum((p * p).sum() for p in net.parameters())
        loss.backward()
        opt.step()
    return net, float(loss.detach())


def _keys(cfg: HessianConfig, prefix: str = "") -> list[str]:
    keys = [f"{prefix}{s}_s{seed}" for s in cfg.skips for seed in cfg.seeds]
    return keys + ([f"{prefix}control_s{seed}" for seed in cfg.seeds] if cfg.control else [])


def _unit(cfg: HessianConfig, x, y, n_classes: int, trained: dict, key: str) -> dict:
    from ghostsing.deepcheck.operators import flat_loss
    from ghostsing.deepcheck.probes.hessian import degeneracy_curve, exact_spectrum, negative_fraction

    smooth = bool(cfg.smooth) and key.startswith(f"{cfg.smooth}-")
    if smooth:
        arm, s = key[len(cfg.smooth) + 1:].rsplit("_s", 1)
        seed = int(s) + (CONTROL_OFFSET if arm == "control" else 0)
        skip = "none" if arm == "control" else arm
        net, adam_loss = _smooth_net(cfg, x, y, n_classes, skip, seed)
        wd = cfg.smooth_weight_decay
    else:
        skip, seed, net, adam_loss = trained[key]
        wd = 0.0
    fl = penalised(flat_loss(net, torch.nn.functional.cross_entropy, x, y), wd)
    theta, conv = converge(fl, lbfgs_iters=cfg.lbfgs_iters, grad_tol=cfg.grad_tol,
                           newton_steps=cfg.newton_steps, stall_tol=cfg.stall_tol,
                           stall_steps=cfg.stall_steps, damping_max=cfg.damping_max)
    ev = exact_spectrum(replace(fl, theta=theta).hessian())
    lm = float(ev.max())
    return {"skip": skip, "seed": seed, "activation": cfg.smooth if smooth else "relu", "weight_decay": wd,
            "rank": skip_rank(skip, cfg.width), "n_params": int(ev.size),
            "adam_loss": adam_loss, **conv, "lambda_max": lm, "lambda_min": float(ev.min()),
            "f_deg": float(degeneracy_curve(ev, (cfg.tau_pred,))[0]),
            "f_neg": negative_fraction(ev, cfg.tau_pred * lm),
            "f_deg_curve": degeneracy_curve(ev, cfg.taus).tolist(),
            "f_neg_curve": [negative_fraction(ev, t * lm) for t in cfg.taus]}


def _kinds(units) -> dict[str, int]:
    """How many of ``units`` ended at each certificate of :data:`POLISH_KINDS`."""
    units = list(units)
    return {k: sum(u.get("kind", "converged" if u["converged"] else "not stationary") == k for u in units)
            for k in POLISH_KINDS}


def _predictions(cfg: HessianConfig, units: dict, prefix: str, only_converged: bool, tag: str) -> list:
    """The four predictions on the nets ``prefix + arm``; with ``only_converged`` only the nets certified
    critical points enter."""
    def arm(s, field="f_deg"):
        g = [units[f"{prefix}{s}_s{seed}"] for seed in cfg.seeds]
        return [u[field] for u in g if u["kind"] == "converged" or not only_converged]

    label = f" ({cfg.smooth} nets at critical points)" if prefix else ""
    preds = [
        difference_prediction(
            "plain nets have more degenerate Hessian eigenvalues than residual nets" + label,
            arm("none"), arm("identity"), +1,
            f"E = f_deg(plain) - f_deg(residual), f_deg = #{{|lambda| < {cfg.tau_pred:g} lambda_max}}/P",
            "Orhan & Pitkow: skips eliminate the degenerate manifolds of the plain net; " + tag),
        difference_prediction(
            "plain nets have more negative Hessian eigenvalues than residual nets" + label,
            arm("none", "f_neg"), arm("identity", "f_neg"), +1,
            f"E = f_neg(plain) - f_neg(residual), f_neg = #{{lambda < -{cfg.tau_pred:g} lambda_max}}/P",
            "saddle-like curvature near the plain net's singular sets; at minima both should be near 0; "
            + tag),
    ]
    sweep = sorted(cfg.skips, key=lambda s: skip_rank(s, cfg.width))
    if len(sweep) >= 3:
        preds.append(spearman_prediction(
            "degenerate-skip sweep: f_deg falls as the skip rank grows" + label,
            [skip_rank(s, cfg.width) for s in sweep], [arm(s) for s in sweep], -1,
            "Spearman rho(skip rank k, f_deg), k = 0 (plain) ... width (identity)",
            "Orhan & Pitkow's degenerate skips: the more units a skip reaches, the fewer degenerate "
            "directions; " + tag))
    if cfg.control:
        preds.append(difference_prediction(
            "negative control: plain nets differ from plain nets with other seeds" + label,
            arm("none"), arm("control"), +1,
            "E = f_deg(plain, seeds) - f_deg(plain, seeds + 100)",
            "identical arms: no effect expected; " + tag))
    return preds


def _tag(cfg: HessianConfig, group: list[dict], what: str) -> str:
    k = _kinds(group)
    kink = max([u["grad_norm"] for u in group if u["kind"] == "stationary"] or [0])
    return (f"tau = {cfg.tau_pred:g} lambda_max, {what}: of {len(group)} nets {k['converged']} at critical "
            f"points (|grad L| <= {cfg.grad_tol:g}), {k['stationary']} at nonsmooth stationary points "
            f"(kinks, |grad L| up to {kink:.2g}), {k['not stationary']} neither")


def run(cfg: HessianConfig, out_dir: Path, *, resume: bool = False, progress: bool = True
        ) -> ExperimentOutput:
    from ghostsing.plots.curvature import plot_hessian_fractions

    set_threads(cfg.threads)
    x, y, info = features(cfg.dataset, cfg.data, cfg.data_root, cfg.n_train, cfg.pool)
    x, y = x.to(device_of(cfg)), y.to(device_of(cfg))
    relu_keys = _keys(cfg)
    smooth_keys = _keys(cfg, f"{cfg.smooth}-") if cfg.smooth else []
    done = {k for k in relu_keys if resume and (Path(out_dir) / "units" / f"{k}.json").is_file()}
    trained = _train_all(cfg, x, y, info) if set(relu_keys) - done else {}
    units = cached_units(out_dir, relu_keys + smooth_keys,
                         lambda k: _unit(cfg, x, y, info["n_classes"], trained, k), resume=resume,
                         progress=progress, tag="hessian")
    relu = [units[k] for k in relu_keys]
    smooth = [units[k] for k in smooth_keys]
    preds = _predictions(cfg, units, "", False, _tag(cfg, relu, "ReLU nets at their certified end points"))
    if smooth_keys:
        preds += _predictions(cfg, units, f"{cfg.smooth}-", True,
                              _tag(cfg, smooth, f"{cfg.smooth} nets (loss + {cfg.smooth_weight_decay:g}/2 "
                                   "|theta|^2); only the critical points enter"))
    sweep = sorted(cfg.skips, key=lambda s: skip_rank(s, cfg.width))
    rows = ["| activation | arm | rank k | P | loss | critical / kink / neither | max |grad L| | f_deg "
            "| f_neg | lambda_max |", "|---|---|---|---|---|---|---|---|---|---|"]
    for act, prefix in [("relu", "")] + ([(cfg.smooth, f"{cfg.smooth}-")] if cfg.smooth else []):
        for s in sweep + (["control"] if cfg.control else []):
            g = [units[f"{prefix}{s}_s{seed}"] for seed in cfg.seeds]
            k = _kinds(g)
            rows.append(f"| {act} | {s} | {g[0]['rank']} | {g[0]['n_params']} | "
                        f"{np.mean([u['loss'] for u in g]):.4f} | {k['converged']} / {k['stationary']} / "
                        f"{k['not stationary']} | {max(u['grad_norm'] for u in g):.2g} | "
                        f"{np.mean([u['f_deg'] for u in g]):.4f} | {np.mean([u['f_neg'] for u in g]):.4f} | "
                        f"{np.mean([u['lambda_max'] for u in g]):.3g} |")
    kr, ks = _kinds(relu), _kinds(smooth)
    smooth_line = (f" Smooth control set: {cfg.smooth} nets, same initial weights and skips, loss + "
                   f"{cfg.smooth_weight_decay:g}/2 |theta|^2 (the loss column includes it); "
                   f"{ks['converged']} of {len(smooth)} reached critical points, and only those enter its "
                   "predictions." if smooth else "")
    md = "\n".join([
        "## Hessian spectra at certified end points (dense, float64)", "", *rows, "",
        f"Means over {len(cfg.seeds)} seeds. {cfg.epochs} full-batch Adam steps (lr {cfg.lr:g}), at most "
        f"{cfg.lbfgs_iters} L-BFGS iterations, then at most {cfg.newton_steps} damped-Newton steps on the "
        f"dense Hessian. Certificates: critical = |grad L| <= {cfg.grad_tol:g}; kink = nonsmooth stationary "
        f"point (loss decrease < {cfg.stall_tol:g} relative over the last {cfg.stall_steps} damped-Newton "
        f"steps with damping > {cfg.damping_max:g}, |grad L| not small; not a critical point); neither = "
        f"the step budget ran out. ReLU nets: {kr['converged']} critical, {kr['stationary']} kink, "
        f"{kr['not stationary']} neither of {len(relu)}.{smooth_line} {cfg.n_train} {cfg.dataset} images "
        f"pooled to {info['in_dim']} features, cross-entropy."])
    figs = plot_hessian_fractions(units, cfg.taus, sweep, cfg.width, out_dir,
                                  prefixes=[("relu", "")] + ([(cfg.smooth, f"{cfg.smooth}-")] if cfg.smooth
                                                              else []))
    summary = {"data": info, "converged": kr["converged"] + ks["converged"], "n_nets": len(units),
               "kinds": {"relu": kr, **({cfg.smooth: ks} if smooth else {})},
               "f_deg_mean": {s: float(np.mean([units[f"{s}_s{d}"]["f_deg"] for d in cfg.seeds]))
                              for s in cfg.skips},
               "f_neg_mean": {s: float(np.mean([units[f"{s}_s{d}"]["f_neg"] for d in cfg.seeds]))
                              for s in cfg.skips}}
    if smooth:
        summary["f_deg_mean_smooth_converged"] = {
            s: float(np.mean([u["f_deg"] for u in (units[f"{cfg.smooth}-{s}_s{d}"] for d in cfg.seeds)
                              if u["kind"] == "converged"] or [np.nan])) for s in cfg.skips}
    return ExperimentOutput(tuple(preds), figs, {}, summary, md)


PRESETS = {
    "hessian-small": HessianConfig(seeds=(0, 1), n_train=256, width=4, depth=3,
                                   skips=("none", "lowrank:2", "identity"), control=False, epochs=50,
                                   lbfgs_iters=100, grad_tol=1e-5, newton_steps=30),
    "hessian-cpu": HessianConfig(),
    "hessian": HessianConfig(seeds=tuple(range(10)), n_train=12000, pool=8, width=16, depth=8,
                             skips=("none", "lowrank:4", "lowrank:8", "lowrank:12", "identity"),
                             epochs=5000, lbfgs_iters=20000, device="auto"),
}

EXPERIMENTS = (Experiment("hessian", "Degenerate and negative Hessian eigenvalues at certified end points: "
                          "ReLU kinks and smooth critical points (Orhan & Pitkow)", "deep", HessianConfig,
                          run, PRESETS),)
