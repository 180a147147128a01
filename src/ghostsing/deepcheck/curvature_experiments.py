"""Curvature experiments for ``python -m ghostsing.deepcheck``: presets ``hessian``, ``lowell`` and ``slt``.

Device: ``device`` (``auto`` = CUDA when present, else CPU); all probes run on the tensors' device.

Nets: deep ReLU MLPs (:class:`ghostsing.deepcheck.nets.MLP`, skips ``none`` = plain, ``identity`` = residual)
in float64 on CIFAR images average-pooled by ``pool`` (``32/pool`` squared pixels x 3 channels, normalised
per channel), the first ``n_train`` training images.  All training is full batch.

``hessian`` — each net is trained (full-batch Adam) until its training cross-entropy reaches
``target_loss`` (matched training loss) or ``epochs`` steps pass; then the exact Hessian of the training
loss on all ``n_train`` images is diagonalised (float64) and the SLQ estimate is computed beside it.

1. ``plain nets have more degenerate Hessian eigenvalues`` — ``E = f_deg(plain) - f_deg(residual) > 0``
   with ``f_deg = #{|lambda| < tau_pred lambda_max} / P`` (Sagun et al. 2017; Orhan & Pitkow 2018), and the
   same with an absolute threshold ``#{|lambda| < abs_tau_pred} / P`` (a relative threshold also moves with
   ``lambda_max``);
2. ``plain nets have more negative Hessian eigenvalues`` — ``E = f_neg(plain) - f_neg(residual) > 0``,
   ``f_neg = #{lambda < -tau_pred lambda_max} / P`` (more saddle-like curvature near the singular sets).

``lowell`` — full-batch gradient descent with rate ``gd_lr`` on the mean squared error to one-hot labels
(Cohen et al. 2021), sharpness and the top-``top_k`` Hessian eigenspace by Lanczos every ``probe_every``
steps; then Dom-GD / Bulk-GD / GD for ``proj_steps`` steps from the final point (Song, Ahn & Yun 2024); and
the same net trained on the first ``n`` images for each ``n`` in ``n_sizes`` (Lowell 2022).

3. ``sharpness at the edge of stability`` — ``E = 0.2 - |mean(lambda_max) eta / 2 - 1| > 0``, the mean over
   the probes in the last third of training;
4. ``gradient concentrates in the top subspace`` — ``E = mean c_k - 0.5 > 0``, ``c_k = ||P_k g||^2/||g||^2``
   averaged over the probes in the last third;
5. ``top-subspace steps deliver little of the loss decrease`` — ``E = 0.5 - r_top > 0`` with
   ``r_top = (L_0 - L_T^top) / max(L_0 - L_T^GD, L_0 - L_T^bulk)`` (losses averaged over the last 10 steps of
   each run; the max because GD at the edge of stability is not monotone);
6. ``gradient norm grows with the training-set size`` — Spearman ``rho(n, |g|) > 0``, ``|g|`` the median
   gradient norm over the second half of training on ``n`` images.

Predictions 3-6 are made per skip (suffix ``[plain]`` / ``[residual]``).

``slt`` — nets trained (full-batch Adam) to ``target_loss`` or ``epochs`` steps, then the local learning
coefficient by SGLD (:mod:`ghostsing.deepcheck.probes.llc`, ``n beta = n / ln n`` with ``n = n_train``,
``L_n(w*)`` on all ``n_train`` images).  Singular learning theory: the LLC ``lambda`` is the effective
dimension (``lambda <= d/2``, equality for regular models); singularities lower it.  If skips remove the
singularities of the plain net, the residual net is "less singular":

7. ``plain nets have a lower LLC`` — ``E = lambda(plain) - lambda(residual) < 0``;
8. ``LLC far below d/2`` (both) — ``E = 0.5 - mean(lambda / (d/2)) > 0``.

Every (experiment, dataset, depth, skip, seed) unit is written atomically to ``out_dir/units/`` and reused
on ``--resume``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ghostsing.deepcheck.probes import gradient as gp
from ghostsing.deepcheck.probes import hessian as hs
from ghostsing.deepcheck.probes.llc import SGLDConfig, estimate_llc, functional_batched_loss
from ghostsing.experiments.predictions import Prediction, bootstrap_ci, difference_prediction, verdict_from_ci

EXPERIMENTS: tuple[str, ...] = ("hessian", "lowell", "slt")
LABELS = {"none": "plain", "identity": "residual"}
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")


@dataclass(frozen=True)
class CurvatureConfig:
    """Settings of the curvature experiments (see the module docstring for what each one does).

    ``epochs`` is the maximum number of full-batch training steps; ``lr`` the Adam rate used to reach
    ``target_loss`` (``hessian``, ``slt``); ``gd_lr`` the gradient-descent rate ``eta`` of ``lowell``, or,
    when 0, ``eta = gd_lr_rel * 2 / lambda_max(init)`` per net (plain and residual nets start with
    sharpness differing by ~100x, so one fixed ``eta`` either diverges at once or never reaches 2/eta).
    """

    name: str
    experiment: str = "hessian"
    datasets: tuple[str, ...] = ("cifar10",)
    seeds: tuple[int, ...] = (0, 1, 2)
    depths: tuple[int, ...] = (6,)
    width: int = 16
    skips: tuple[str, ...] = ("none", "identity")
    pool: int = 4
    n_train: int | None = 512
    n_test: int | None = 100
    data: str = "auto"
    optimizer: str = "adam"
    lr: float = 3e-3
    epochs: int = 3000
    target_loss: float = 1.0
    taus: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
    tau_pred: float = 1e-3
    abs_tau_pred: float = 1e-3
    slq_probes: int = 8
    slq_m: int = 80
    max_exact: int = 6000
    gd_lr: float = 0.0
    gd_lr_rel: float = 0.6
    top_k: int = 10
    probe_every: int = 50
    proj_steps: int = 100
    n_sizes: tuple[int, ...] = (64, 128, 256, 512)
    sgld_step: float = 3e-5
    sgld_gamma: float = 100.0
    sgld_chains: int = 4
    sgld_draws: int = 1000
    sgld_burnin: int = 1000
    sgld_batch: int | None = None
    threads: int = 0
    device: str = "auto"
    note: str = ""

    def __post_init__(self) -> None:
        if self.experiment not in EXPERIMENTS:
            raise ValueError(f"experiment={self.experiment!r} is not one of {EXPERIMENTS}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ValueError(f"seeds={self.seeds!r} must be distinct integers >= 0")
        bad = [s for s in self.skips if s not in LABELS]
        if bad or not self.skips:
            raise ValueError(f"skips={self.skips!r}: each must be one of {tuple(LABELS)}")
        if self.pool not in (1, 2, 4, 8, 16, 32):
            raise ValueError(f"pool={self.pool!r} must divide 32 (1, 2, 4, 8, 16, 32)")
        for k in ("width", "epochs", "top_k", "probe_every", "proj_steps", "slq_probes", "slq_m",
                  "sgld_chains", "sgld_draws"):
            if int(getattr(self, k)) < 1:
                raise ValueError(f"{k}={getattr(self, k)!r} must be >= 1")
        if not self.depths or min(self.depths) < 1:
            raise ValueError(f"depths={self.depths!r} must be integers >= 1")
        if not (0 < self.tau_pred < 1) or any(not 0 < t < 1 for t in self.taus):
            raise ValueError(f"tau_pred={self.tau_pred!r} and taus={self.taus!r} must lie in (0, 1)")
        if not (self.lr > 0 and self.gd_lr >= 0 and 0 < self.gd_lr_rel < 1 and self.sgld_step > 0
                and self.sgld_gamma >= 0):
            raise ValueError("need lr > 0, gd_lr >= 0, 0 < gd_lr_rel < 1, sgld_step > 0, sgld_gamma >= 0")
        if self.data not in ("auto", "real", "synthetic"):
            raise ValueError(f"data={self.data!r} is not one of ('auto', 'real', 'synthetic')")
        if self.optimizer != "adam":
            raise ValueError(f"optimizer={self.optimizer!r}: the curvature experiments train with 'adam'")


PRESETS: dict[str, CurvatureConfig] = {
    "hessian": CurvatureConfig(name="hessian", experiment="hessian"),
    "lowell": CurvatureConfig(name="lowell", experiment="lowell", epochs=2000, target_loss=0.0),
    "slt": CurvatureConfig(name="slt", experiment="slt", epochs=3000, target_loss=0.5),
}


# ----------------------------------------------------------------------------------------- data and nets
def _features(cfg: CurvatureConfig, ds: str, data_root) -> tuple[torch.Tensor, torch.Tensor, dict]:
    from ghostsing.deepcheck.data import load_for_run  # noqa: PLC0415

    d = load_for_run(ds, cfg.data, data_root, cfg.n_train, cfg.n_test)
    x = d.x_train.astype(np.float64) / 255.0
    p = cfg.pool
    n, h, w, c = x.shape
    x = x.reshape(n, h // p, p, w // p, p, c).mean(axis=(2, 4))
    mu = x.reshape(-1, c).mean(0)
    sd = x.reshape(-1, c).std(0)
    x = ((x - mu) / sd).reshape(n, -1)
    info = {"source": d.source, "n_train": int(n), "n_test": int(len(d.y_test)), "n_classes": d.n_classes,
            "in_dim": int(x.shape[1])}
    return torch.tensor(x, dtype=torch.float64), torch.tensor(d.y_train, dtype=torch.long), info


def _net(cfg: CurvatureConfig, depth: int, skip: str, in_dim: int, n_classes: int, seed: int):
    from ghostsing.deepcheck.nets import MLP, MLPConfig  # noqa: PLC0415
    from ghostsing.deepcheck.training import resolve_device  # noqa: PLC0415

    return MLP(MLPConfig(depth=depth, width=cfg.width, in_dim=in_dim, n_classes=n_classes, skip=skip),
               seed=seed, dtype=torch.float64, device=resolve_device(cfg.device))


def _ce(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(out, y)


def _mse_onehot(n_classes: int) -> Callable:
    def loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((out - torch.nn.functional.one_hot(y, n_classes).to(out.dtype)) ** 2).sum(1).mean()

    return loss


def _train_adam(model, x, y, loss_fn, lr: float, max_steps: int, target: float) -> dict:
    """Full-batch Adam until ``loss <= target`` or ``max_steps``; returns the loss trace summary."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    trace = []
    for step in range(max_steps + 1):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        lv = float(loss.detach())
        trace.append(lv)
        if lv <= target or step == max_steps or not math.isfinite(lv):
            break
        loss.backward()
        opt.step()
    return {"steps": len(trace) - 1, "final_loss": trace[-1], "reached": trace[-1] <= target,
            "trace": trace[:: max(1, len(trace) // 200)]}


# ----------------------------------------------------------------------------------------- units
def _hessian_unit(cfg, model, x, y) -> dict:
    tr = _train_adam(model, x, y, _ce, cfg.lr, cfg.epochs, cfg.target_loss)
    fl = hs.flat_loss(model, _ce, x, y, dtype=torch.float64)
    out = {"train": tr, "n_params": fl.dim}
    op = fl.hessian()
    if fl.dim <= cfg.max_exact:
        ev = hs.exact_spectrum(op, chunk=256)
        lm = float(ev.max())
        out.update(
            exact=True,
            lambda_max=lm,
            lambda_min=float(ev.min()),
            trace=float(ev.sum()),
            f_deg=hs.degeneracy_curve(ev, cfg.taus).tolist(),
            f_deg_pred=float(hs.degeneracy_curve(ev, (cfg.tau_pred,))[0]),
            f_neg=hs.negative_fraction(ev, tol=cfg.tau_pred * lm),
            f_neg_any=hs.negative_fraction(ev),
            f_deg_abs=float(np.mean(np.abs(ev) < cfg.abs_tau_pred)),
            abs_quantiles=np.quantile(np.abs(ev), np.linspace(0, 1, 101)).tolist(),
            eig_hist=_log_hist(ev),
        )
    else:
        out["exact"] = False
    res = hs.slq(op, cfg.slq_probes, cfg.slq_m, seed=0)
    lm = out.get("lambda_max", res.lambda_max)
    out.update(
        slq_lambda_max=res.lambda_max,
        slq_f_deg=res.degeneracy(cfg.taus, lambda_max=lm).tolist(),
        slq_f_deg_pred=float(res.degeneracy((cfg.tau_pred,), lambda_max=lm)[0]),
        slq_f_neg=res.negative_fraction(cfg.tau_pred, lambda_max=lm),
        slq_trace=res.moment(1) * fl.dim,
        slq_trace_stderr=res.moment_stderr(1) * fl.dim,
    )
    if not out["exact"]:  # large net: the estimate stands in for the exact values
        out.update(lambda_max=lm, f_deg=out["slq_f_deg"], f_deg_pred=out["slq_f_deg_pred"],
                   f_neg=out["slq_f_neg"], trace=out["slq_trace"])
    return out


def _log_hist(ev: np.ndarray, bins: int = 60) -> dict:
    """Histogram of ``sign(lambda) log10(|lambda| / lambda_max)`` clipped at -8 (for the figure)."""
    lm = ev.max()
    z = np.clip(np.log10(np.maximum(np.abs(ev) / lm, 1e-8)), -8, 0)
    edges = np.linspace(-8, 0, bins + 1)
    pos, _ = np.histogram(z[ev >= 0], edges)
    neg, _ = np.histogram(z[ev < 0], edges)
    return {"edges": edges.tolist(), "pos": pos.tolist(), "neg": neg.tolist()}


def _lowell_unit(cfg, depth, skip, seed, x, y, n_classes) -> dict:
    loss_fn = _mse_onehot(n_classes)
    model = _net(cfg, depth, skip, x.shape[1], n_classes, seed)
    fl = hs.flat_loss(model, loss_fn, x, y)
    lam0 = float(hs.extreme_eigenvalues(fl.hessian(), 1, seed=seed).values[0])
    eta = cfg.gd_lr if cfg.gd_lr > 0 else cfg.gd_lr_rel * 2 / lam0
    tr = gp.gradient_descent_probe(fl, fl.theta, eta, cfg.epochs, probe_every=cfg.probe_every,
                                   k=cfg.top_k, seed=seed)
    out = {"gd": tr.to_dict(), "n_params": fl.dim, "eta": eta, "two_over_eta": 2 / eta,
           "sharpness_init": lam0}
    if math.isfinite(tr.loss[-1]):
        proj = {m: gp.projected_gd(fl, tr.theta, eta, cfg.proj_steps, mode=m, k=cfg.top_k,
                                   refresh=10, seed=seed).tolist() for m in ("full", "top", "bulk")}
        out["projected"] = proj
    sizes = {}
    for n in cfg.n_sizes:
        if n > len(y):
            continue
        m2 = _net(cfg, depth, skip, x.shape[1], n_classes, seed)
        f2 = hs.flat_loss(m2, loss_fn, x[:n], y[:n])
        gn = _gd_grad_norms(f2.fn, f2.theta, eta, cfg.epochs)
        sizes[str(n)] = {"median_late": float(np.median(gn[len(gn) // 2:])), "max": float(np.max(gn)),
                         "trace": gn[:: max(1, len(gn) // 200)].tolist()}
    out["sizes"] = sizes
    return out


def _gd_grad_norms(fn, theta, lr, steps) -> np.ndarray:
    th = theta.detach().clone()
    out = []
    for _ in range(steps):
        t = th.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(fn(t), t)
        out.append(float(g.norm()))
        if not math.isfinite(out[-1]):
            break
        th = th - lr * g
    return np.asarray(out)


def _slt_unit(cfg, model, x, y) -> dict:
    tr = _train_adam(model, x, y, _ce, cfg.lr, cfg.epochs, cfg.target_loss)
    loss, w_star = functional_batched_loss(model, _ce, x, y)
    sg = SGLDConfig(step_size=cfg.sgld_step, gamma=cfg.sgld_gamma, num_chains=cfg.sgld_chains,
                    num_draws=cfg.sgld_draws, num_burnin=cfg.sgld_burnin, batch_size=cfg.sgld_batch,
                    sampler="sgld", preconditioner="none")
    res = estimate_llc(loss, w_star, len(y), sg, seed=0)
    d = int(w_star.numel())
    return {"train": tr, "n_params": d, "llc": res.llc, "llc_over_half_d": res.llc / (d / 2),
            "llc_std": res.llc_std, "llc_per_chain": res.llc_per_chain.tolist(), "flags": list(res.flags),
            "stationarity_z": res.stationarity_z.tolist(), "loss_star": res.loss_star,
            "trace_mean": res.loss_trace.mean(0)[:: max(1, cfg.sgld_draws // 200)].tolist(),
            "burnin_mean": res.burnin_trace.mean(0).tolist()[:: max(1, cfg.sgld_burnin // 100)]}


# ----------------------------------------------------------------------------------------- runner
def _write_json(path: Path, obj) -> None:
    from ghostsing.deepcheck.report import write_json_atomic  # noqa: PLC0415

    write_json_atomic(path, obj)


def run(
    cfg: CurvatureConfig,
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
    data_root: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict:
    """Run ``cfg.experiment``; returns ``{predictions, figures, summary, markdown}`` for the shared report."""
    if not isinstance(cfg, CurvatureConfig):
        raise TypeError(f"cfg must be a CurvatureConfig, got {type(cfg).__name__}")
    out = Path(out_dir)
    (out / "units").mkdir(parents=True, exist_ok=True)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    units: dict[str, dict] = {}
    data_info = {}
    for ds in cfg.datasets:
        x, y, info = _features(cfg, ds, data_root)
        from ghostsing.deepcheck.training import resolve_device  # noqa: PLC0415

        dev = resolve_device(cfg.device)
        x, y = x.to(dev), y.to(dev)
        data_info[ds] = info
        for depth in cfg.depths:
            for skip in cfg.skips:
                for seed in cfg.seeds:
                    key = f"{cfg.experiment}_{ds}_d{depth}_{skip}_s{seed}"
                    path = out / "units" / f"{key}.json"
                    if resume and path.is_file():
                        units[key] = json.loads(path.read_text())
                        continue
                    if progress:
                        print(f"[{cfg.name}] {key}", flush=True)
                    torch.manual_seed(seed)
                    if cfg.experiment == "lowell":
                        u = _lowell_unit(cfg, depth, skip, seed, x, y, info["n_classes"])
                    else:
                        model = _net(cfg, depth, skip, x.shape[1], info["n_classes"], seed)
                        u = (_hessian_unit if cfg.experiment == "hessian" else _slt_unit)(cfg, model, x, y)
                    u.update(dataset=ds, depth=depth, skip=skip, seed=seed)
                    _write_json(path, u)
                    units[key] = u
    from ghostsing._io import to_jsonable as _jsonable  # noqa: PLC0415

    units = {k: json.loads(json.dumps(_jsonable(v))) for k, v in units.items()}
    builder = {"hessian": _hessian_report, "lowell": _lowell_report, "slt": _slt_report}[cfg.experiment]
    preds, figs, summary, md = builder(cfg, units, out)
    summary = {"data": data_info, "experiment": cfg.experiment, **summary}
    return {"predictions": preds, "figures": figs, "summary": summary, "markdown": md}


def _group(units: dict, ds: str, depth: int, skip: str) -> list[dict]:
    return [u for u in units.values() if u["dataset"] == ds and u["depth"] == depth and u["skip"] == skip]


def _f(v) -> float:
    return float("nan") if v is None else float(v)


# ----------------------------------------------------------------------------------------- reports
def _hessian_report(cfg, units, out):
    preds, figs, summary = [], [], {}
    md = ["## Hessian spectra (exact, float64) at matched training loss", ""]
    for ds in cfg.datasets:
        for depth in cfg.depths:
            g = {s: _group(units, ds, depth, s) for s in cfg.skips}
            tag = f"{ds}, depth {depth}"
            rows = {}
            for s, us in g.items():
                rows[s] = {
                    "n_params": us[0]["n_params"],
                    "final_loss": [u["train"]["final_loss"] for u in us],
                    "reached_target": [bool(u["train"]["reached"]) for u in us],
                    "f_deg_pred": [u["f_deg_pred"] for u in us],
                    "slq_f_deg_pred": [u["slq_f_deg_pred"] for u in us],
                    "f_neg": [u["f_neg"] for u in us],
                    "f_deg_abs": [u.get("f_deg_abs") for u in us],
                    "slq_f_neg": [u["slq_f_neg"] for u in us],
                    "lambda_max": [u["lambda_max"] for u in us],
                    "trace": [u["trace"] for u in us],
                    "slq_trace": [u["slq_trace"] for u in us],
                    "f_deg_curve_mean": np.mean([u["f_deg"] for u in us], 0).tolist(),
                    "slq_f_deg_curve_mean": np.mean([u["slq_f_deg"] for u in us], 0).tolist(),
                }
            summary[f"{ds}_d{depth}"] = rows
            if "none" in g and "identity" in g:
                a, b = g["none"], g["identity"]
                matched = all(u["train"]["reached"] for u in a + b)
                preds.append(difference_prediction(
                    f"plain nets have more degenerate Hessian eigenvalues ({tag})",
                    [u["f_deg_pred"] for u in a], [u["f_deg_pred"] for u in b], +1,
                    "E = f_deg(plain) - f_deg(residual), "
                    f"f_deg = #{{|lambda| < {cfg.tau_pred:g} lambda_max}}/P",
                    "Sagun et al. 2017; Orhan & Pitkow 2018: skips remove degenerate directions. "
                    + ("All nets reached the target loss." if matched
                       else "NOT all nets reached the target loss."),
                    details={"matched_loss": matched}))
                if all("f_deg_abs" in u for u in a + b):
                    preds.append(difference_prediction(
                        f"plain nets have more near-zero Hessian eigenvalues, absolute threshold ({tag})",
                        [u["f_deg_abs"] for u in a], [u["f_deg_abs"] for u in b], +1,
                        f"E = f(plain) - f(residual), f = #{{|lambda| < {cfg.abs_tau_pred:g}}}/P "
                        "(loss units)",
                        "as above, without the dependence on lambda_max of a relative threshold"))
                preds.append(difference_prediction(
                    f"plain nets have more negative Hessian eigenvalues ({tag})",
                    [u["f_neg"] for u in a], [u["f_neg"] for u in b], +1,
                    "E = f_neg(plain) - f_neg(residual), "
                    f"f_neg = #{{lambda < -{cfg.tau_pred:g} lambda_max}}/P",
                    "near the singular sets of the plain net the landscape is saddle-like"))
            figs.append(_plot_hessian(cfg, g, out, f"hessian_{ds}_d{depth}.png", tag))
            md += [f"### {tag}", "",
                   "| net | P | final loss | f_deg exact | f_deg SLQ | f_abs exact | f_neg exact | f_neg SLQ "
                   "| lambda_max | trace exact | trace SLQ |", "|" + "---|" * 11]
            for s, r in rows.items():
                md.append(f"| {LABELS[s]} | {r['n_params']} | {np.mean(r['final_loss']):.3f} | "
                          f"{np.mean(r['f_deg_pred']):.3f} | {np.mean(r['slq_f_deg_pred']):.3f} | "
                          f"{_mean_or_na(r['f_deg_abs'])} | "
                          f"{np.mean(r['f_neg']):.3f} | {np.mean(r['slq_f_neg']):.3f} | "
                          f"{np.mean(r['lambda_max']):.3g} | {np.mean(r['trace']):.4g} | "
                          f"{np.mean(r['slq_trace']):.4g} |")
            md += ["", f"Means over {len(cfg.seeds)} seeds; tau = {cfg.tau_pred:g} (f_abs: |lambda| < "
                   f"{cfg.abs_tau_pred:g}); SLQ: {cfg.slq_probes} "
                   f"probes x {cfg.slq_m} Lanczos steps (large-net estimate, checked here against exact).",
                   ""]
    return preds, figs, summary, "\n".join(md)


def _mean_or_na(v: list) -> str:
    v = [x for x in v if x is not None]
    return f"{np.mean(v):.3f}" if v else "n/a"


def _plot_hessian(cfg, g, out, fname, tag) -> str:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    taus = np.array(cfg.taus)
    for i, (s, us) in enumerate(g.items()):
        c = OKABE_ITO[i]
        fd = np.array([u["f_deg"] for u in us])
        ax[0].plot(taus, fd.mean(0), "o-", color=c, label=f"{LABELS[s]} exact")
        ax[0].fill_between(taus, fd.min(0), fd.max(0), color=c, alpha=0.2)
        sq = np.array([u["slq_f_deg"] for u in us])
        ax[0].plot(taus, sq.mean(0), "s--", color=c, mfc="none", label=f"{LABELS[s]} SLQ estimate")
        h = us[0].get("eig_hist")
        if h:
            e = np.array(h["edges"])
            mid = 0.5 * (e[1:] + e[:-1])
            pos = np.mean([u["eig_hist"]["pos"] for u in us], 0)
            neg = np.mean([u["eig_hist"]["neg"] for u in us], 0)
            ax[1].step(mid, pos, where="mid", color=c, label=f"{LABELS[s]} lambda > 0")
            ax[1].step(mid, -neg, where="mid", color=c, ls=":", label=f"{LABELS[s]} lambda < 0 (down)")
    ax[0].set_xscale("log")
    ax[0].set_xlabel("tau (threshold relative to lambda_max)")
    ax[0].set_ylabel("f_deg(tau) = P[|lambda| < tau lambda_max]")
    ax[0].legend(fontsize=8)
    ax[1].axhline(0, color="0.5", lw=0.5)
    ax[1].set_yscale("symlog", linthresh=1)
    ax[1].set_xlabel("log10(|lambda| / lambda_max) (clipped at -8)")
    ax[1].set_ylabel("eigenvalues per bin (negative: down)")
    ax[1].legend(fontsize=8)
    fig.suptitle(f"Hessian spectrum at matched training loss ({tag})")
    fig.savefig(out / fname, dpi=110)
    plt.close(fig)
    return fname


def _one_group_prediction(name, values, func, statistic, description, details=None) -> Prediction:
    vals = [float(v) for v in values]
    effect, ci = bootstrap_ci([vals], lambda a: func(a), n_resamples=2000, seed=0)
    if len(vals) < 2:
        effect = float(func(np.asarray(vals))) if vals else float("nan")
    return Prediction(name, verdict_from_ci(ci, +1), effect, ci, len(vals), statistic, description, +1,
                      {"values": vals, **(details or {})})


def _late(values: list, steps: list, total: int) -> float:
    v = np.array([_f(a) for a, s in zip(values, steps, strict=True) if s >= 2 * total / 3], dtype=float)
    v = v[np.isfinite(v)]
    return float(np.mean(v)) if v.size else float("nan")


def _lowell_report(cfg, units, out):
    preds, figs, summary = [], [], {}
    md = ["## Gradient probes: edge of stability, top subspace, data size", ""]
    for ds in cfg.datasets:
        for depth in cfg.depths:
            tag = f"{ds}, depth {depth}"
            g = {s: _group(units, ds, depth, s) for s in cfg.skips}
            rows = {}
            for s, us in g.items():
                lab = f"{LABELS[s]}, {tag}"
                ratio = [_late(u["gd"]["sharpness"], u["gd"]["probe_steps"], cfg.epochs) * u["eta"] / 2
                         for u in us]
                share = [_late(u["gd"]["grad_share_top"], u["gd"]["probe_steps"], cfg.epochs) for u in us]
                rtop, rbulk = [], []
                for u in us:
                    pr = u.get("projected")
                    if not pr:
                        rtop.append(float("nan"))
                        rbulk.append(float("nan"))
                        continue
                    l0 = pr["full"][0]
                    end = {m: float(np.mean(pr[m][-10:])) for m in pr}
                    # GD at the edge of stability is not monotone: normalise by the larger of the GD and
                    # Bulk-GD decreases
                    dref = max(l0 - end["full"], l0 - end["bulk"])
                    rtop.append((l0 - end["top"]) / dref if dref > 0 else float("nan"))
                    rbulk.append((l0 - end["bulk"]) / dref if dref > 0 else float("nan"))
                sizes = [int(n) for n in cfg.n_sizes if str(n) in us[0]["sizes"]]
                gn = {n: [_f(u["sizes"][str(n)]["median_late"]) for u in us] for n in sizes}
                rows[s] = {"sharpness_over_2_eta": ratio, "grad_share_top": share, "r_top": rtop,
                           "r_bulk": rbulk, "grad_norm_by_n": {str(n): v for n, v in gn.items()},
                           "final_loss": [u["gd"]["loss"][-1] for u in us]}
                preds.append(_one_group_prediction(
                    f"sharpness at the edge of stability ({lab})", ratio,
                    lambda a: 0.2 - abs(np.mean(a) - 1),
                    "E = 0.2 - |mean(lambda_max eta/2) - 1| over the last third of full-batch GD",
                    "Cohen et al. 2021: lambda_max rises to 2/eta and hovers there"))
                preds.append(_one_group_prediction(
                    f"gradient concentrates in the top-{cfg.top_k} Hessian subspace ({lab})", share,
                    lambda a: np.mean(a) - 0.5, "E = mean ||P_k g||^2/||g||^2 - 0.5 (last third of GD)",
                    "Gur-Ari, Roberts & Dyer 2018"))
                preds.append(_one_group_prediction(
                    f"top-subspace steps deliver little of the loss decrease ({lab})", rtop,
                    lambda a: 0.5 - np.mean(a),
                    "E = 0.5 - r_top, r_top = loss decrease of Dom-GD / max(GD, Bulk-GD) over "
                    f"{cfg.proj_steps} steps",
                    "Song, Ahn & Yun 2024; Lowell 2022", details={"r_bulk": rbulk}))
                if len(sizes) >= 2:
                    from ghostsing.experiments.predictions import spearman_prediction  # noqa: PLC0415

                    preds.append(spearman_prediction(
                        f"gradient norm grows with the training-set size ({lab})", sizes,
                        [gn[n] for n in sizes], +1,
                        "Spearman rho(n, median |grad L| over the second half of GD)",
                        "Lowell 2022: the gradient near the singularity grows without bound as n grows"))
            summary[f"{ds}_d{depth}"] = rows
            figs.append(_plot_lowell(cfg, g, out, f"lowell_{ds}_d{depth}.png", tag))
            md += [f"### {tag}", "", "| net | lambda_max eta/2 | c_k | r_top | r_bulk | |g| by n |",
                   "|---|---|---|---|---|---|"]
            for s, r in rows.items():
                gns = ", ".join(f"{n}: {np.mean(v):.3g}" for n, v in r["grad_norm_by_n"].items())
                md.append(f"| {LABELS[s]} | {np.nanmean(r['sharpness_over_2_eta']):.3f} | "
                          f"{np.nanmean(r['grad_share_top']):.3f} | {np.nanmean(r['r_top']):.3f} | "
                          f"{np.nanmean(r['r_bulk']):.3f} | {gns} |")
            etas = ", ".join(f"{LABELS[s]} {np.mean([u['eta'] for u in us]):.3g}" for s, us in g.items())
            md += ["", f"Full-batch GD, mean eta: {etas}, MSE to one-hot labels, "
                   f"{cfg.epochs} steps, k = {cfg.top_k}; means over {len(cfg.seeds)} seeds.", ""]
    return preds, figs, summary, "\n".join(md)


def _plot_lowell(cfg, g, out, fname, tag) -> str:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(2, 2, figsize=(11, 7.5), layout="constrained")
    for i, (s, us) in enumerate(g.items()):
        c = OKABE_ITO[i]
        for j, u in enumerate(us):
            lab = LABELS[s] if j == 0 else None
            ps = u["gd"]["probe_steps"]
            ax[0, 0].plot(ps, np.array(u["gd"]["sharpness"], dtype=float) * u["eta"] / 2, color=c, alpha=0.8,
                          label=lab)
            ax[0, 1].plot(ps, u["gd"]["grad_share_top"], color=c, alpha=0.8, label=lab)
            pr = u.get("projected")
            if pr:
                for m, ls in (("full", "-"), ("top", ":"), ("bulk", "--")):
                    ax[1, 0].plot(pr[m], color=c, ls=ls, alpha=0.8,
                                  label=f"{LABELS[s]} {m}" if j == 0 else None)
        ns = sorted(int(n) for n in us[0]["sizes"])
        gn = np.array([[u["sizes"][str(n)]["median_late"] for n in ns] for u in us])
        ax[1, 1].errorbar(ns, gn.mean(0), yerr=gn.std(0), color=c, marker="o", capsize=3, label=LABELS[s])
    ax[0, 0].axhline(1.0, color="0.3", ls="--", label="lambda_max = 2/eta")
    ax[0, 0].set_xlabel("GD step")
    ax[0, 0].set_ylabel("sharpness lambda_max / (2/eta)")
    ax[0, 1].set_xlabel("GD step")
    ax[0, 1].set_ylabel(f"||P_k g||^2 / ||g||^2 (k = {cfg.top_k})")
    ax[1, 0].set_xlabel("step after the end of GD")
    ax[1, 0].set_ylabel("training loss (MSE)")
    ax[1, 0].set_title("GD (solid), Dom-GD top (dotted), Bulk-GD (dashed)", fontsize=9)
    ax[1, 1].set_xscale("log", base=2)
    ax[1, 1].set_xlabel("training-set size n")
    ax[1, 1].set_ylabel("median |grad L|, 2nd half of GD")
    for a in ax.flat:
        a.legend(fontsize=7)
    fig.suptitle(f"Gradient probes under full-batch GD ({tag})")
    fig.savefig(out / fname, dpi=110)
    plt.close(fig)
    return fname


def _slt_report(cfg, units, out):
    preds, figs, summary, md = [], [], {}, ["## Local learning coefficient (SGLD)", ""]
    for ds in cfg.datasets:
        for depth in cfg.depths:
            tag = f"{ds}, depth {depth}"
            g = {s: _group(units, ds, depth, s) for s in cfg.skips}
            rows = {s: {"llc": [u["llc"] for u in us], "llc_over_half_d": [u["llc_over_half_d"] for u in us],
                        "n_params": us[0]["n_params"], "final_loss": [u["train"]["final_loss"] for u in us],
                        "flags": [u["flags"] for u in us]} for s, us in g.items()}
            summary[f"{ds}_d{depth}"] = rows
            if "none" in g and "identity" in g:
                preds.append(difference_prediction(
                    f"plain nets have a lower LLC than residual nets ({tag})",
                    rows["none"]["llc"], rows["identity"]["llc"], -1,
                    "E = LLC(plain) - LLC(residual), SGLD at the trained weights",
                    "SLT: singularities lower the learning coefficient; skips remove singularities of the "
                    "plain net, so the residual net should be less singular (higher LLC) at matched loss"))
            allv = [v for r in rows.values() for v in r["llc_over_half_d"]]
            preds.append(_one_group_prediction(
                f"LLC far below d/2 ({tag})", allv, lambda a: 0.5 - np.mean(a),
                "E = 0.5 - mean(LLC / (d/2)) over all nets",
                "deep nets are singular: lambda < d/2 (regular models have lambda = d/2)"))
            figs.append(_plot_slt(cfg, g, out, f"slt_{ds}_d{depth}.png", tag))
            md += [f"### {tag}", "",
                   "| net | d | final loss | LLC (mean ± sd over seeds) | LLC/(d/2) | flags |",
                   "|---|---|---|---|---|---|"]
            for s, r in rows.items():
                nflag = sum(bool(f) for f in r["flags"])
                md.append(f"| {LABELS[s]} | {r['n_params']} | {np.mean(r['final_loss']):.3f} | "
                          f"{np.mean(r['llc']):.1f} ± {np.std(r['llc']):.1f} | "
                          f"{np.mean(r['llc_over_half_d']):.3f} | {nflag} of {len(r['flags'])} flagged |")
            md += ["", f"SGLD: step {cfg.sgld_step:g}, gamma {cfg.sgld_gamma:g}, n beta = n/ln n, n = "
                   f"{cfg.n_train}, {cfg.sgld_chains} chains x {cfg.sgld_draws} draws after "
                   f"{cfg.sgld_burnin} burn-in, "
                   + ("full-batch gradients" if cfg.sgld_batch is None else f"batches of {cfg.sgld_batch}"),
                   ""]
    return preds, figs, summary, "\n".join(md)


def _plot_slt(cfg, g, out, fname, tag) -> str:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    for i, (s, us) in enumerate(g.items()):
        c = OKABE_ITO[i]
        for j, u in enumerate(us):
            tr = np.concatenate([u["burnin_mean"], u["trace_mean"]])
            ax[0].plot(tr - u["loss_star"], color=c, alpha=0.8, label=LABELS[s] if j == 0 else None)
        ax[1].scatter(np.full(len(us), i) + np.linspace(-0.1, 0.1, len(us)), [u["llc"] for u in us], color=c,
                      label=f"{LABELS[s]} (d = {us[0]['n_params']})")
    ax[0].set_xlabel("SGLD record (burn-in then draws, thinned)")
    ax[0].set_ylabel("L_n(w) - L_n(w*) (nats, mean over chains)")
    ax[0].legend(fontsize=8)
    ax[1].set_xticks(range(len(g)), [LABELS[s] for s in g])
    ax[1].set_ylabel("LLC estimate (per seed)")
    ax[1].legend(fontsize=8)
    fig.suptitle(f"Local learning coefficient by SGLD ({tag})")
    fig.savefig(out / fname, dpi=110)
    plt.close(fig)
    return fname


def config_dict(cfg: CurvatureConfig) -> dict:
    """JSON-ready settings."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()}
