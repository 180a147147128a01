r"""``slt``: the local learning coefficient of plain and residual nets, with ``n >> d ln n`` and a plateau.

Singular learning theory: the LLC ``lambda`` of a model at a minimiser ``w*`` is its effective dimension
(``lambda <= d/2``, equality for a regular model); singularities lower it.  If skips remove the plain
net's singularities, the residual net is less singular: ``lambda(plain) < lambda(residual)``.

What makes the estimate mean something here (each checked in the report):

* ``n >> d ln n`` -- small MLPs (``d`` about 120) on all ``n_train`` CIFAR images pooled to
  ``3 (32/pool)^2`` features, so ``n / (d ln n)`` is about 10 (the estimator's ``n beta = n / ln n`` scale
  then bounds nothing: ``(n / ln n)(ln C - L*)`` is far above ``d/2``);
* a certified ``w*`` -- full-batch L-BFGS, then damped Newton on the dense Hessian
  (:func:`~ghostsing.experiments.deep_curvature.converge`) of ``L_n + (weight_decay/2) |w|^2``.  The default
  nets are smooth (GELU) with a small penalty: a ReLU net's minimiser sits on a kink (no critical point,
  the Newton certificate says "stationary"), and without the penalty the cross-entropy of a smooth net keeps
  falling along directions where weights grow (GELU(c x)/c tends to ReLU), so no minimiser exists.  The
  penalty ``weight_decay/2 |w|^2`` per sample is, in the tempered posterior, a Gaussian prior of precision
  ``n beta weight_decay``; it is ``O(1/n)`` of the loss and leaves the learning coefficient's ``n ->
  infinity`` limit unchanged.  Each ``w*`` is reported as a critical point (``|grad L| <= grad_tol``), a
  nonsmooth stationary point or neither, with the smallest eigenvalue of its Hessian (a strict local
  minimum when positive);
* a sampler that equilibrates -- unadjusted full-batch SGLD (the step is a swept parameter, not adapted)
  with the constant preconditioner ``M = (n beta |H(w*)| + gamma)^{-1}``
  (:func:`~ghostsing.deepcheck.probes.llc.hessian_preconditioner`): at ``w*`` every direction has curvature
  1 in the metric of ``M``, so directions whose curvatures differ by ``10^5`` relax in the same ``~1/eps``
  steps (without it, the flat directions need ``n beta lambda_max / gamma`` steps, and earlier runs of this
  experiment read an LLC that still grew by 18-43 % when the sampling time was doubled);
* plateaus -- on ``sweep_seeds`` nets per arm the estimate is repeated over a grid of the SGLD step
  ``step_rel`` (``eps = step_rel`` in the metric of ``M``), of the sampling time (``time_grid``: draws and
  burn-in multiplied by each factor) and of the localisation ``gamma_rel`` (``gamma = gamma_rel sqrt(n
  beta)``).  With ``fixed_time`` the draws and burn-in at step ``s`` are ``draws step_rel / s`` and ``burnin
  step_rel / s``, so every point of the step grid samples the same SGLD time.  Step and time test the
  *sampler* (no discretisation bias, equilibrated chains); gamma tests the *quantity*: the estimate depends
  on gamma unless the Hessian spectrum has a gap around ``gamma / (n beta)``.  The regular-model value
  ``LLC_gauss = (1/2) sum_i n beta lambda_i / (n beta lambda_i + gamma)``
  (:func:`~ghostsing.deepcheck.probes.llc.gaussian_llc`) of each net's spectrum is reported at every
  gamma, so the gamma dependence a quadratic loss would show is on the page beside the measured one;
* ``E_w[L] - L(w*)`` small against ``L(w*)``.

Predictions: (1) plain nets have a lower LLC than residual nets; (2) the LLC is below ``d/2``; (3) the
LLC is below its regular value ``LLC_gauss`` (flatness beyond the quadratic approximation on the
posterior's scale); (4) the sampler is on a plateau in step and sampling time: ``E = plateau_tol - max
relative deviation``; (5) the estimate is on a plateau in gamma (same form); (6) ``E_w[L] - L(w*)`` below
``small_tol L(w*)``; (7) negative control: plain against plain nets with other seeds, no difference
expected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ghostsing.experiments.base import Experiment, ExperimentOutput
from ghostsing.experiments.deep_curvature import (
    ACTIVATIONS,
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
from ghostsing.experiments.predictions import difference_prediction, one_group_prediction
from ghostsing.validation import check_choice, check_float, check_floats, check_int

CONTROL_OFFSET = 100
ARMS = {"plain": 0.0, "residual": 1.0}


@dataclass(frozen=True)
class SLTConfig:
    """Settings of ``slt`` (module docstring)."""

    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    sweep_seeds: int = 3
    control: bool = False
    dataset: str = "cifar10"
    data: str = "real"
    data_root: str | None = None
    n_train: int = 12000
    pool: int = 16
    width: int = 4
    depth: int = 2
    activation: str = "gelu"
    weight_decay: float = 1e-4
    lbfgs_iters: int = 1000
    grad_tol: float = 1e-5
    newton_steps: int = 300
    gamma_rel: float = 0.05
    step_rel: float = 0.01
    gamma_grid: tuple[float, ...] = (0.0125, 0.2)
    step_grid: tuple[float, ...] = (0.005, 0.02)
    time_grid: tuple[float, ...] = (2.0,)
    fixed_time: bool = True
    preconditioner: str = "hessian"
    chains: int = 2
    draws: int = 1500
    burnin: int = 500
    plateau_tol: float = 0.15
    small_tol: float = 0.05
    threads: int = 0
    device: str = "cpu"
    note: str = ""

    def __post_init__(self) -> None:
        check_data_fields(self)
        check_int("sweep_seeds", self.sweep_seeds, 0, len(self.seeds))
        check_int("n_train", self.n_train, 16)
        check_int("width", self.width, 1, 256)
        check_int("depth", self.depth, 1, 16)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_float("weight_decay", self.weight_decay, 0, 1)
        check_choice("preconditioner", self.preconditioner, ("hessian", "none"))
        check_int("lbfgs_iters", self.lbfgs_iters, 0)
        check_float("grad_tol", self.grad_tol, 0, 1, low_open=True)
        check_float("gamma_rel", self.gamma_rel, 0, low_open=True)
        check_float("step_rel", self.step_rel, 0, 2, low_open=True, high_open=True)
        check_floats("gamma_grid", self.gamma_grid, 0, low_open=True)
        check_floats("step_grid", self.step_grid, 0, 2, low_open=True)
        if self.time_grid:
            check_floats("time_grid", self.time_grid, 0, 100, low_open=True)
        check_int("newton_steps", self.newton_steps, 0)
        for name in ("chains", "draws"):
            check_int(name, getattr(self, name), 1)
        check_int("burnin", self.burnin, 0)
        check_float("plateau_tol", self.plateau_tol, 0, 1, low_open=True)
        check_float("small_tol", self.small_tol, 0, 1, low_open=True)


def _llc(fl, w_star, n: int, cfg: SLTConfig, gamma_rel: float, step_rel: float, time: float = 1.0) -> dict:
    """One LLC estimate; with ``cfg.fixed_time`` the draws and burn-in scale as ``cfg.step_rel / step_rel``
    (the same SGLD time at every step), and ``time`` multiplies both."""
    from ghostsing.deepcheck.probes.llc import SGLDConfig, estimate_llc

    scale = time * (cfg.step_rel / step_rel if cfg.fixed_time else 1.0)
    draws, burnin = max(1, round(cfg.draws * scale)), round(cfg.burnin * scale)
    sg = SGLDConfig(num_chains=cfg.chains, num_draws=draws, num_burnin=burnin, sampler="sgld",
                    preconditioner=cfg.preconditioner, gamma_rel=gamma_rel, step_rel=step_rel)
    r = estimate_llc(fl, w_star, n, sg, seed=0)
    half = r.loss_trace.shape[1] // 2
    return {"llc": r.llc, "llc_stderr": r.llc_stderr, "loss_star": r.loss_star,
            "llc_gaussian": r.llc_gaussian, "gamma": r.gamma, "step_size": r.step_size,
            "mean_loss": float(np.mean(r.loss_trace)), "flags": list(r.flags), "draws": draws,
            "burnin": burnin,
            "llc_first_half": float(r.nbeta * (r.loss_trace[:, :half].mean() - r.loss_star)),
            "llc_second_half": float(r.nbeta * (r.loss_trace[:, half:].mean() - r.loss_star))}


def _unit(cfg: SLTConfig, x, y, n_classes: int, key: str) -> dict:
    from ghostsing.deepcheck.operators import flat_loss

    arm, s = key.split("_s")
    seed = int(s)
    alpha = ARMS["plain" if arm == "control" else arm]
    net = ActMLP(x.shape[1], cfg.width, cfg.depth, n_classes, cfg.activation, alpha, seed).to(x.device)
    fl = penalised(flat_loss(net, torch.nn.functional.cross_entropy, x, y), cfg.weight_decay)
    w_star, conv = converge(fl, lbfgs_iters=cfg.lbfgs_iters, grad_tol=cfg.grad_tol,
                            newton_steps=cfg.newton_steps)
    n, d = len(y), fl.dim
    ev = torch.linalg.eigvalsh(replace(fl, theta=w_star.detach()).hessian().to_dense()).double().cpu().numpy()
    nbeta = n / math.log(n)
    gamma = cfg.gamma_rel * math.sqrt(nbeta)
    out = {"arm": arm, "seed": seed, "d": d, "n": n, "n_over_d_ln_n": n / (d * math.log(n)), **conv,
           "hessian_min": float(ev.min()), "hessian_max": float(ev.max()),
           "n_negative": int((ev < 0).sum()), "n_soft": int((nbeta * ev < gamma).sum()),
           "central": _llc(fl, w_star, n, cfg, cfg.gamma_rel, cfg.step_rel)}
    sweep_seeds = [cfg.seeds[i] for i in range(cfg.sweep_seeds)]
    if arm != "control" and seed in sweep_seeds:
        out["gamma_sweep"] = [_llc(fl, w_star, n, cfg, g, cfg.step_rel) for g in cfg.gamma_grid]
        out["step_sweep"] = [_llc(fl, w_star, n, cfg, cfg.gamma_rel, e) for e in cfg.step_grid]
        out["time_sweep"] = [_llc(fl, w_star, n, cfg, cfg.gamma_rel, cfg.step_rel, t) for t in cfg.time_grid]
    return out


def run(cfg: SLTConfig, out_dir: Path, *, resume: bool = False, progress: bool = True) -> ExperimentOutput:
    from ghostsing.plots.curvature import plot_llc_sweep

    set_threads(cfg.threads)
    x, y, info = features(cfg.dataset, cfg.data, cfg.data_root, cfg.n_train, cfg.pool)
    x, y = x.to(device_of(cfg)), y.to(device_of(cfg))
    keys = [f"{a}_s{s}" for a in ARMS for s in cfg.seeds]
    keys += [f"control_s{s + CONTROL_OFFSET}" for s in cfg.seeds] if cfg.control else []
    units = cached_units(out_dir, keys, lambda k: _unit(cfg, x, y, info["n_classes"], k), resume=resume,
                         progress=progress, tag="slt")

    def llc(a, seeds=cfg.seeds):
        return [units[f"{a}_s{s}"]["central"]["llc"] for s in seeds]

    d = units[keys[0]]["d"]
    kinds = {k: sum(u.get("kind", "converged" if u["converged"] else "not stationary") == k
                    for u in units.values()) for k in POLISH_KINDS}
    n_conv = kinds["converged"]
    dev_sampler, dev_gamma, dev_gamma_gauss, excess = [], [], [], []
    grid_dev: dict[str, list[float]] = {"gamma_sweep": [], "step_sweep": [], "time_sweep": []}
    for u in units.values():
        c = u["central"]["llc"]
        for g in grid_dev:
            grid_dev[g] += [abs(r["llc"] / c - 1) for r in u.get(g, [])]
        if "step_sweep" in u:
            dev_sampler.append(max(abs(r["llc"] / c - 1) for g in ("step_sweep", "time_sweep") for r in u[g]))
            dev_gamma.append(max(abs(r["llc"] / c - 1) for r in u["gamma_sweep"]))
            cg = u["central"]["llc_gaussian"]
            dev_gamma_gauss.append(max(abs(r["llc_gaussian"] / cg - 1) for r in u["gamma_sweep"]))
        excess.append((u["central"]["mean_loss"] - u["central"]["loss_star"]) / u["central"]["loss_star"])
    grid_max = {g: (max(v) if v else float("nan")) for g, v in grid_dev.items()}
    ratio = units[keys[0]]["n_over_d_ln_n"]
    smooth = cfg.activation != "relu"
    base = (f"{cfg.activation} nets, loss L_n + {cfg.weight_decay:g}/2 |w|^2; w* after L-BFGS and damped "
            f"Newton: {kinds['converged']} of {len(units)} critical points with |grad L| <= {cfg.grad_tol:g}"
            f"{'' if smooth else ' (ReLU: the others are kinks or neither)'}, "
            f"{kinds['stationary']} nonsmooth stationary, {kinds['not stationary']} neither; the largest "
            f"|grad L| "
            f"{max(u['grad_norm'] for u in units.values()):.2g}; smallest Hessian eigenvalue over nets "
            f"{min(u['hessian_min'] for u in units.values()):.2g}; n = {cfg.n_train}, d = {d}, "
            f"n/(d ln n) = {ratio:.1f}; SGLD with the {cfg.preconditioner} preconditioner")

    def ratio_to_gauss(a):
        return [units[f"{a}_s{s}"]["central"]["llc"] / units[f"{a}_s{s}"]["central"]["llc_gaussian"]
                for s in cfg.seeds]

    preds = [
        difference_prediction(
            "plain nets have a lower LLC than residual nets", llc("plain"), llc("residual"), -1,
            "E = LLC(plain) - LLC(residual)",
            "SLT: singularities lower the learning coefficient; skips remove the plain net's; " + base),
        one_group_prediction(
            "the LLC is below d/2", [v / (d / 2) for v in llc("plain") + llc("residual")], -1,
            "E = mean(LLC / (d/2)) - 1 over every net", "deep nets are singular models; " + base, null=1.0),
        one_group_prediction(
            "the LLC is below its regular (Gaussian) value at the same gamma",
            ratio_to_gauss("plain") + ratio_to_gauss("residual"), -1,
            "E = mean(LLC / LLC_gauss) - 1 over every net; LLC_gauss = (1/2) sum_i n beta lambda_i / (n beta "
            "lambda_i + gamma) from the Hessian spectrum at w*",
            "beyond the quadratic approximation the loss is flatter (higher-order, singular directions) on "
            "the posterior's scale; a regular minimum gives a ratio 1", null=1.0),
        one_group_prediction(
            "the sampler is on a plateau in step and sampling time (equilibrated, no step bias)",
            [cfg.plateau_tol - v for v in dev_sampler], +1,
            f"E = {cfg.plateau_tol:g} - max over the step and time grids of |LLC / LLC(central) - 1|",
            f"step_rel in {cfg.step_grid} ({'draws x step fixed' if cfg.fixed_time else 'fixed draws'}) and "
            f"sampling time x {cfg.time_grid} around ({cfg.step_rel:g}, {cfg.draws} draws); "
            f"{cfg.sweep_seeds} seeds per arm; largest deviations: step {grid_max['step_sweep']:.1%}, time "
            f"{grid_max['time_sweep']:.1%}"),
        one_group_prediction(
            "the LLC estimate is on a plateau in gamma",
            [cfg.plateau_tol - v for v in dev_gamma], +1,
            f"E = {cfg.plateau_tol:g} - max over the gamma grid of |LLC / LLC(central) - 1|",
            f"gamma_rel in {cfg.gamma_grid} around {cfg.gamma_rel:g}; largest deviation "
            f"{grid_max['gamma_sweep']:.1%}; the regular-model (Gaussian) formula on the same spectra "
            f"predicts up to "
            f"{max(dev_gamma_gauss) if dev_gamma_gauss else float('nan'):.1%}: a plateau needs a gap in the "
            f"Hessian spectrum around gamma / (n beta)"),
        one_group_prediction(
            "E_w[L] - L(w*) is small", [cfg.small_tol - v for v in excess], +1,
            f"E = {cfg.small_tol:g} - mean over nets of (E_w[L] - L(w*)) / L(w*)",
            "the chains stay in the basin of w*, so the estimate is local"),
    ]
    if cfg.control:
        preds.append(difference_prediction(
            "negative control: plain nets differ from plain nets with other seeds", llc("plain"),
            [units[f"control_s{s + CONTROL_OFFSET}"]["central"]["llc"] for s in cfg.seeds], -1,
            "E = LLC(plain, seeds) - LLC(plain, seeds + 100)", "identical arms: no effect expected"))
    rows = ["| arm | d | L(w*) | max |grad L| | min Hessian eigenvalue | soft directions (n beta lambda "
            "< gamma) | LLC (mean ± sd) | LLC_gauss | LLC/(d/2) | (E[L] - L*)/L* |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for a in list(ARMS) + (["control"] if cfg.control else []):
        us = [u for k, u in units.items() if u["arm"] == a]
        v = [u["central"]["llc"] for u in us]
        rows.append(f"| {a} | {us[0]['d']} | {np.mean([u['loss'] for u in us]):.4f} | "
                    f"{max(u['grad_norm'] for u in us):.2g} | {min(u['hessian_min'] for u in us):.2g} | "
                    f"{np.mean([u['n_soft'] for u in us]):.1f} | {np.mean(v):.2f} ± {np.std(v):.2f} | "
                    f"{np.mean([u['central']['llc_gaussian'] for u in us]):.2f} | "
                    f"{np.mean(v) / (d / 2):.3f} | "
                    f"{np.mean([(u['central']['mean_loss'] - u['loss']) / u['loss'] for u in us]):.4f} |")
    md = "\n".join(["## Local learning coefficient (SGLD)", "", *rows, "",
                    f"{base}; {cfg.chains} chains x {cfg.draws} draws after {cfg.burnin}; central gamma_rel "
                    f"{cfg.gamma_rel:g}, step_rel {cfg.step_rel:g}; largest deviation over the sweeps: gamma "
                    f"{grid_max['gamma_sweep']:.1%}, step {grid_max['step_sweep']:.1%} with "
                    f"{'draws x step fixed' if cfg.fixed_time else 'fixed draws'}, sampling time x "
                    f"{cfg.time_grid}: {grid_max['time_sweep']:.1%}. Central LLC from the first and second "
                    f"half of the draws (an equilibrated chain gives the same): "
                    f"{np.mean([u['central']['llc_first_half'] for u in units.values()]):.2f} and "
                    f"{np.mean([u['central']['llc_second_half'] for u in units.values()]):.2f} (means over "
                    f"nets)."])
    figs = plot_llc_sweep(units, cfg.gamma_grid, cfg.step_grid, cfg.gamma_rel, cfg.step_rel, out_dir,
                          time_grid=cfg.time_grid)
    summary = {"data": info, "d": d, "n_over_d_ln_n": ratio, "converged": n_conv, "kinds": kinds,
               "max_sampler_deviation": max(dev_sampler) if dev_sampler else None,
               "max_gamma_deviation": max(dev_gamma) if dev_gamma else None,
               "max_gamma_deviation_gaussian": max(dev_gamma_gauss) if dev_gamma_gauss else None,
               "max_deviation_per_grid": {g: (v if math.isfinite(v) else None) for g, v in grid_max.items()}}
    return ExperimentOutput(tuple(preds), figs, {}, summary, md)


PRESETS = {
    "slt-small": SLTConfig(seeds=(0, 1, 2), sweep_seeds=3, control=False, n_train=400, width=3,
                           lbfgs_iters=100, newton_steps=30, grad_tol=1e-4, gamma_grid=(0.1,),
                           step_grid=(0.02,), chains=2, draws=50, burnin=20),
    "slt-cpu": SLTConfig(control=True),
    "slt": SLTConfig(seeds=tuple(range(10)), sweep_seeds=5, control=True, n_train=12000, pool=16, width=8,
                     depth=3, gamma_grid=(0.0125, 0.025, 0.1, 0.2), step_grid=(0.0025, 0.005, 0.02),
                     time_grid=(2.0, 4.0), chains=8, draws=8000, burnin=2000, lbfgs_iters=20000,
                     grad_tol=1e-6, device="auto"),
}

EXPERIMENTS = (Experiment("slt", "Local learning coefficient of plain and residual nets (n >> d ln n, "
                          "plateau in gamma, step and sampling time)", "deep", SLTConfig, run, PRESETS),)
