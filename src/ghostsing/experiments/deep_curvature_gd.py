r"""``eos`` and ``lowell``: full-batch gradient descent near the edge of stability and Lowell's singularity.

``eos`` -- edge of stability by Cohen et al.'s protocol (ICLR 2021): one grid of step sizes ``etas``;
for each step size, activation (``relu``, ``tanh``, ``gelu``) and seed, a small MLP
(:class:`~ghostsing.experiments.deep_curvature.ActMLP`) trained by ``steps`` (>= 10^4) full-batch GD steps on
the square loss to one-hot labels of ``n_train`` CIFAR images; the sharpness ``lambda_max`` of the training
loss every ``probe_every`` steps by power iteration with Hessian-vector products
(the block-diagonal :class:`~ghostsing.deepcheck.operators.FunctionOperator` of
:class:`~ghostsing.experiments.deep_curvature.StackedMLP`, every net of a grid trained at once, through
:func:`~ghostsing.experiments.deep_curvature.block_sharpness`, warm-started from the previous probe).
Late-time
sharpness = the mean over the last ``late_frac`` of the probes.  Cohen et al.: ``lambda_max`` rises
(progressive sharpening) to ``2/eta`` and hovers there, so late ``lambda_max`` against ``2/eta`` has slope 1.
Predictions per activation: (1) the per-seed slope of late ``lambda_max`` against ``2/eta`` is positive;
(2) the late ratio ``lambda_max eta / 2`` is within ``tolerance`` of 1 (``E = tolerance - mean |ratio - 1|``);
negative control (3): the same slope for the sharpness at the first probe, before GD has shaped it.

``lowell`` -- Lowell (2022): as the data set grows, a point forms where ``|grad L|`` is unbounded, and GD
trains near it.  For each ``n`` in ``n_sizes`` (two decades), a ReLU MLP and, as a control, the linear
(softmax-regression) model are trained by full-batch GD with one step size on the first ``n`` images until
the training cross-entropy first reaches ``matched_loss`` (the linear model: ``control_matched_loss``,
which it can reach at every n; matched loss, not matched steps); the measure
is ``max |grad L|`` over the last ``window`` steps before that.  Predictions: (1) Spearman
``rho(n, max |grad L|) > 0`` for the MLP (permutation test over every seed and size); (2) the same for the
linear model, whose loss is convex and has no singularity (the control; a positive result there would say
the growth is not the singularity's).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ghostsing.experiments.base import Experiment, ExperimentOutput
from ghostsing.experiments.deep_curvature import (
    ACTIVATIONS,
    cached_units,
    check_data_fields,
    device_of,
    features,
    seeds_one_group_prediction,
    set_threads,
)
from ghostsing.experiments.predictions import spearman_prediction
from ghostsing.validation import check_choice, check_float, check_floats, check_int, check_ints


@dataclass(frozen=True)
class EoSConfig:
    """Settings of ``eos`` (module docstring)."""

    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    dataset: str = "cifar10"
    data: str = "real"
    data_root: str | None = None
    n_train: int = 128
    pool: int = 16
    width: int = 16
    depth: int = 2
    activations: tuple[str, ...] = ACTIVATIONS
    etas: tuple[float, ...] = (0.1, 0.2, 0.4)
    steps: int = 10_000
    probe_every: int = 20
    power_iters: int = 20
    late_frac: float = 0.2
    tolerance: float = 0.1
    threads: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        check_data_fields(self)
        check_int("n_train", self.n_train, 16)
        check_int("width", self.width, 2, 1024)
        check_int("depth", self.depth, 1, 32)
        for a in self.activations:
            check_choice("activations", a, ACTIVATIONS)
        check_floats("etas", self.etas, 0, 10, low_open=True)
        if len(set(self.etas)) < 2:
            raise ValueError(f"etas={self.etas!r}; allowed: at least 2 distinct step sizes (a slope)")
        check_int("steps", self.steps, 1)
        check_int("probe_every", self.probe_every, 1, self.steps)
        check_int("power_iters", self.power_iters, 1)
        check_float("late_frac", self.late_frac, 0, 1, low_open=True)
        check_float("tolerance", self.tolerance, 0, 1, low_open=True)


def gd_sharpness_traces(net, x, y, loss_fn, etas: np.ndarray, steps: int, probe_every: int,
                        power_iters: int) -> dict:
    """Full-batch GD of every net of a :class:`~ghostsing.experiments.deep_curvature.StackedMLP` at once,
    net ``s`` with step ``etas[s]``; losses every step, sharpness (block power iteration with HVPs,
    warm-started) every ``probe_every`` steps.  A net whose loss is not finite is frozen (its later values
    NaN)."""
    from ghostsing.experiments.deep_curvature import block_sharpness

    S = net.n_nets
    ps = [p.clone() for p in net.params]
    eta = torch.as_tensor(etas, dtype=ps[0].dtype, device=ps[0].device)
    alive = torch.ones(S, dtype=torch.bool, device=ps[0].device)
    losses, sharp, probe_steps = [], [], []
    v = None

    def per_net(qs):
        return loss_fn(net.logits(qs, x), y)

    for t in range(steps + 1):
        if t % probe_every == 0 or t == steps:
            lam, v = block_sharpness(net.operator(ps, per_net), S, v,
                                     iters=power_iters if t else 10 * power_iters,
                                     tol=1e-6 if t == 0 else 1e-4)
            lam[~alive.cpu().numpy()] = np.nan
            sharp.append(lam)
            probe_steps.append(t)
        leaves = [p.detach().requires_grad_(True) for p in ps]
        ls = per_net(leaves)
        grads = torch.autograd.grad(ls.sum(), leaves)
        lv = ls.detach().clone()
        alive &= torch.isfinite(lv)
        lv[~alive] = float("nan")
        losses.append(lv.cpu().numpy())
        if t == steps or not bool(alive.any()):
            break
        step = torch.where(alive, eta, torch.zeros_like(eta))
        ps = [p.detach() - step.view(-1, *[1] * (p.dim() - 1)) * torch.nan_to_num(g) for p, g in
              zip(ps, grads, strict=True)]
    return {"loss": np.array(losses), "sharpness": np.array(sharp), "probe_steps": probe_steps}


def _eos_unit(cfg: EoSConfig, x, y, n_classes: int, act: str) -> dict:
    from ghostsing.experiments.deep_curvature import StackedMLP

    grid = [(eta, seed) for eta in cfg.etas for seed in cfg.seeds]
    net = StackedMLP(x.shape[1], cfg.width, cfg.depth, n_classes, act, 0.0, [s for _, s in grid],
                     device=x.device)
    loss_fn = _per_net_mse(n_classes)
    tr = gd_sharpness_traces(net, x, y, loss_fn, np.array([e for e, _ in grid]), cfg.steps, cfg.probe_every,
                             cfg.power_iters)
    sh, loss = tr["sharpness"], tr["loss"]
    n_late = max(1, int(round(cfg.late_frac * sh.shape[0])))
    thin = max(1, loss.shape[0] // 500)
    out = {}
    for j, (eta, seed) in enumerate(grid):
        late = float(np.mean(sh[-n_late:, j]))
        out[f"eta{cfg.etas.index(eta)}_s{seed}"] = {
            "activation": act, "eta": eta, "seed": seed, "lambda_late": late, "lambda_first": float(sh[0, j]),
            "ratio_late": late * eta / 2, "final_loss": float(loss[-1, j]),
            "loss_up_fraction": float(np.mean(np.diff(loss[:, j]) > 0)), "probe_steps": tr["probe_steps"],
            "sharpness": sh[:, j].tolist(), "loss_thin": loss[::thin, j].tolist(), "thin": thin}
    return out


def _per_net_mse(n_classes: int):
    def loss(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        t = torch.nn.functional.one_hot(y, n_classes).to(z.dtype)
        return 0.5 * ((z - t) ** 2).sum(-1).mean(-1)

    return loss


def _per_net_ce(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    S, B, C = z.shape
    return torch.nn.functional.cross_entropy(z.reshape(S * B, C), y.repeat(S), reduction="none"
                                             ).reshape(S, B).mean(1)


def _slopes(units: dict, cfg: EoSConfig, act: str, field: str) -> list[float]:
    out = []
    for seed in cfg.seeds:
        g = [units[f"{act}_eta{i}_s{seed}"] for i in range(len(cfg.etas))]
        out.append(float(np.polyfit([2 / u["eta"] for u in g], [u[field] for u in g], 1)[0]))
    return out


def run_eos(cfg: EoSConfig, out_dir: Path, *, resume: bool = False, progress: bool = True
            ) -> ExperimentOutput:
    from ghostsing.plots.curvature import plot_eos

    set_threads(cfg.threads)
    x, y, info = features(cfg.dataset, cfg.data, cfg.data_root, cfg.n_train, cfg.pool)
    x, y = x.to(device_of(cfg)), y.to(device_of(cfg))
    by_act = cached_units(out_dir, cfg.activations, lambda a: _eos_unit(cfg, x, y, info["n_classes"], a),
                          resume=resume, progress=progress, tag="eos")
    units = {f"{a}_{k}": u for a, d in by_act.items() for k, u in d.items()}
    preds, rows = [], ["| activation | eta | 2/eta | lambda_max first probe | late lambda_max | "
                       "late lambda_max eta/2 | final loss |", "|---|---|---|---|---|---|---|"]
    summary = {"data": info}
    for act in cfg.activations:
        slope = _slopes(units, cfg, act, "lambda_late")
        dev = [float(np.mean([abs(units[f"{act}_eta{i}_s{s}"]["ratio_late"] - 1)
                              for i in range(len(cfg.etas))])) for s in cfg.seeds]
        preds += [
            seeds_one_group_prediction(cfg,
                f"late sharpness tracks 2/eta ({act})", slope, +1,
                "E = mean over seeds of the least-squares slope of late lambda_max against 2/eta",
                f"Cohen et al.: lambda_max rises to 2/eta and hovers there (slope 1); {cfg.steps} full-batch "
                f"GD steps, sharpness every {cfg.probe_every}",
                details={"slope_mean": float(np.mean(slope))}),
            seeds_one_group_prediction(cfg,
                f"late sharpness within {cfg.tolerance:.0%} of 2/eta ({act})",
                [cfg.tolerance - d for d in dev], +1,
                f"E = {cfg.tolerance:g} - mean over seeds of mean over eta |late lambda_max eta/2 - 1|",
                "the edge of stability: the ratio sits at 1", details={"mean_abs_dev": float(np.mean(dev))}),
            seeds_one_group_prediction(cfg,
                f"negative control: the first-probe sharpness tracks 2/eta ({act})",
                _slopes(units, cfg, act, "lambda_first"), +1,
                "E = mean over seeds of the slope of lambda_max at step 0 against 2/eta",
                "before GD has run, the sharpness cannot depend on eta (same initialisation)"),
        ]
        summary[act] = {"slope_mean": float(np.mean(slope)), "mean_abs_dev": float(np.mean(dev))}
        for i, eta in enumerate(cfg.etas):
            g = [units[f"{act}_eta{i}_s{s}"] for s in cfg.seeds]
            rows.append(f"| {act} | {eta:g} | {2 / eta:.4g} | "
                        f"{np.mean([u['lambda_first'] for u in g]):.4g} | "
                        f"{np.mean([u['lambda_late'] for u in g]):.4g} | "
                        f"{np.mean([u['ratio_late'] for u in g]):.3f} | "
                        f"{np.mean([u['final_loss'] for u in g]):.4f} |")
    md = "\n".join(["## Edge of stability (full-batch GD, square loss)", "", *rows, "",
                    f"Means over {len(cfg.seeds)} seeds; {cfg.steps} GD steps; late = last "
                    f"{cfg.late_frac:.0%} of the probes; width {cfg.width}, depth {cfg.depth}, "
                    f"{cfg.n_train} {cfg.dataset} images pooled to {info['in_dim']} features."])
    figs = plot_eos(units, cfg.activations, cfg.etas, cfg.seeds, out_dir)
    return ExperimentOutput(tuple(preds), figs, {}, summary, md)


@dataclass(frozen=True)
class LowellConfig:
    """Settings of ``lowell`` (module docstring)."""

    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    dataset: str = "cifar10"
    data: str = "real"
    data_root: str | None = None
    n_sizes: tuple[int, ...] = (10, 32, 100, 316, 1000)
    pool: int = 16
    width: int = 16
    depth: int = 3
    eta: float = 0.2
    matched_loss: float = 1.6
    control_matched_loss: float = 1.9
    max_steps: int = 12_000
    window: int = 100
    threads: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        check_data_fields(self)
        check_ints("n_sizes", self.n_sizes, 4, distinct=True)
        if len(self.n_sizes) < 3:
            raise ValueError(f"n_sizes={self.n_sizes!r}; allowed: at least 3 sizes")
        check_int("width", self.width, 2, 1024)
        check_int("depth", self.depth, 1, 32)
        check_float("eta", self.eta, 0, 10, low_open=True)
        check_float("matched_loss", self.matched_loss, 0, low_open=True)
        check_float("control_matched_loss", self.control_matched_loss, 0, low_open=True)
        check_int("max_steps", self.max_steps, 1)
        check_int("window", self.window, 1, self.max_steps)


def _lowell_unit(cfg: LowellConfig, x, y, n_classes: int, key: str) -> dict:
    """Every seed of one (model, n) at once: GD until each net's loss first reaches the matched loss."""
    from ghostsing.experiments.deep_curvature import StackedMLP

    model, n = key.split("_n")
    n = int(n)
    net = StackedMLP(x.shape[1], cfg.width, cfg.depth if model == "mlp" else 0, n_classes, "relu", 0.0,
                     cfg.seeds, device=x.device)
    xs, ys = x[:n], y[:n]
    target = cfg.matched_loss if model == "mlp" else cfg.control_matched_loss
    ps = [p.clone() for p in net.params]
    S = net.n_nets
    running = torch.ones(S, dtype=torch.bool, device=x.device)
    reached = [None] * S
    gn, ls = [], []
    for t in range(cfg.max_steps + 1):
        leaves = [p.detach().requires_grad_(True) for p in ps]
        loss = _per_net_ce(net.logits(leaves, xs), ys)
        grads = torch.autograd.grad(loss.sum(), leaves)
        g = torch.sqrt(sum((gr.reshape(S, -1) ** 2).sum(1) for gr in grads)).detach()
        gn.append(torch.where(running, g, torch.full_like(g, float("nan"))).cpu().numpy())
        ls.append(loss.detach().cpu().numpy())
        hit = running & (loss.detach() <= target)
        for s in torch.nonzero(hit).flatten().tolist():
            reached[s] = t
        running &= ~hit & torch.isfinite(loss.detach())
        if not bool(running.any()):
            break
        step = torch.where(running, torch.full((S,), cfg.eta, dtype=ps[0].dtype, device=x.device),
                           torch.zeros(S, dtype=ps[0].dtype, device=x.device))
        ps = [p.detach() - step.view(-1, *[1] * (p.dim() - 1)) * gr for p, gr in zip(ps, grads, strict=True)]
    gn, ls = np.array(gn), np.array(ls)
    out = {}
    for j, seed in enumerate(cfg.seeds):
        col = gn[:, j]
        end = int(np.sum(np.isfinite(col)))
        tail = col[max(0, end - cfg.window): end]
        thin = max(1, end // 400)
        out[f"s{seed}"] = {"model": model, "n": n, "seed": seed, "reached_step": reached[j],
                           "max_grad_late": float(np.max(tail)), "median_grad_late": float(np.median(tail)),
                           "final_loss": float(ls[end - 1, j]), "grad_thin": col[:end:thin].tolist(),
                           "thin": thin}
    return out


def run_lowell(cfg: LowellConfig, out_dir: Path, *, resume: bool = False, progress: bool = True
               ) -> ExperimentOutput:
    from ghostsing.plots.curvature import plot_lowell

    set_threads(cfg.threads)
    x, y, info = features(cfg.dataset, cfg.data, cfg.data_root, max(cfg.n_sizes), cfg.pool)
    x, y = x.to(device_of(cfg)), y.to(device_of(cfg))
    keys = [f"{m}_n{n}" for m in ("mlp", "linear") for n in cfg.n_sizes]
    by_key = cached_units(out_dir, keys, lambda k: _lowell_unit(cfg, x, y, info["n_classes"], k),
                          resume=resume, progress=progress, tag="lowell")
    units = {f"{k}_{s}": u for k, d in by_key.items() for s, u in d.items()}
    sizes = sorted(cfg.n_sizes)
    preds, rows = [], ["| model | n | reached the matched loss | steps (median) | max |grad L| (mean) |",
                       "|---|---|---|---|---|"]
    for model, label in (("mlp", f"ReLU MLP depth {cfg.depth}"), ("linear", "linear model, control")):
        groups = [[units[f"{model}_n{n}_s{s}"]["max_grad_late"] for s in cfg.seeds] for n in sizes]
        reached = sum(units[f"{model}_n{n}_s{s}"]["reached_step"] is not None
                      for n in sizes for s in cfg.seeds)
        preds.append(spearman_prediction(
            f"max |grad L| at matched loss grows with n ({label})", sizes, groups, +1,
            f"Spearman rho(n, max |grad L| over the last {cfg.window} GD steps before the loss reaches "
            f"{cfg.matched_loss if model == 'mlp' else cfg.control_matched_loss:g})",
            "Lowell 2022: a point where |grad L| is unbounded forms as n grows, and GD trains near it"
            + (" (control: convex loss, no singularity)" if model == "linear" else "")
            + f"; {reached} of {len(sizes) * len(cfg.seeds)} runs reached the matched loss"))
        for n, g in zip(sizes, groups, strict=True):
            us = [units[f"{model}_n{n}_s{s}"] for s in cfg.seeds]
            st = [u["reached_step"] for u in us if u["reached_step"] is not None]
            rows.append(f"| {model} | {n} | {len(st)} of {len(us)} | "
                        f"{np.median(st) if st else float('nan'):.0f} "
                        f"| {np.mean(g):.4g} |")
    md = "\n".join(["## Lowell's gradient singularity (full-batch GD, matched loss)", "", *rows, "",
                    f"GD step {cfg.eta:g}, matched cross-entropy {cfg.matched_loss:g} (linear control: "
                    f"{cfg.control_matched_loss:g}, above its best fit at n = {max(sizes)}), at most "
                    f"{cfg.max_steps} "
                    f"steps; {info['dataset']} images pooled to {info['in_dim']} features."])
    figs = plot_lowell(units, sizes, cfg.seeds, out_dir)
    return ExperimentOutput(tuple(preds), figs, {}, {"data": info}, md)


EOS_PRESETS = {
    "eos-small": EoSConfig(seeds=(0, 1), n_train=32, width=8, activations=("relu", "tanh"), etas=(0.05, 0.1),
                           steps=60, probe_every=10),
    "eos-cpu": EoSConfig(),
    "eos": EoSConfig(seeds=tuple(range(8)), n_train=5000, pool=4, width=200, depth=3,
                     etas=(0.01, 0.02, 0.04, 0.08), steps=20_000, probe_every=20, device="auto"),
}
LOWELL_PRESETS = {
    "lowell-small": LowellConfig(seeds=(0, 1), n_sizes=(8, 16, 32), width=4, depth=2, max_steps=50, window=5,
                                 matched_loss=2.2, control_matched_loss=2.25),
    "lowell-cpu": LowellConfig(),
    "lowell": LowellConfig(seeds=tuple(range(10)), n_sizes=(50, 158, 500, 1581, 5000, 12000), pool=8,
                           width=64, depth=6, eta=0.1, matched_loss=1.5, control_matched_loss=1.75,
                           max_steps=100_000, window=500, device="auto"),
}

EXPERIMENTS = (
    Experiment("eos", "Edge of stability by Cohen et al.'s protocol (late sharpness against 2/eta)", "deep",
               EoSConfig, run_eos, EOS_PRESETS),
    Experiment("lowell", "Lowell's gradient singularity: max |grad L| at matched loss against n", "deep",
               LowellConfig, run_lowell, LOWELL_PRESETS),
)
