r"""Simulation studies of the symmetric two-unit model: phase portraits, plateaus, loss curves, SGD vs ODE.

One idea: the studies of the symmetric two-unit model and its overlap line, so one module.

Registered experiments (kind ``simulation``; ``ghostsing run NAME``):

* ``portraits`` — overlap phase portraits in the relaxed ``(z, |u|)`` plane, plain vs skip;
* ``elimination-portraits`` — the ``(w_2, |J_2|)`` plane of unit 2, plain vs skip;
* ``plateau-vs-epsilon`` — plateau length against the distance of the start from the overlap line at
  alpha = 0: the log law ``tau = a ln(1/eps) + c`` with ``a = 1/lambda_u``;
* ``loss-curves`` — ensemble loss curves from starts near the overlap line, plain vs skips;
* ``sgd-vs-ode`` — on-line SGD at finite N against the large-N order-parameter ODE.

The model is :mod:`ghostsing.simulate.symmetric` (``L* = 1/3 - (4/pi) asin(1/4) = 0.0116108``); the
planes are :mod:`ghostsing.simulate.planes`.  Each study has the presets ``default`` (the published size,
what ``python simulations/make_all.py`` draws) and ``small`` (seconds; what the tests run).  The laws a
study checks are reported as predictions (:mod:`ghostsing.experiments.laws`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ghostsing.experiments.base import Experiment, ExperimentOutput
from ghostsing.experiments.laws import agreement_prediction, bootstrap_agreement, exact_check
from ghostsing.simulate import symmetric as sym
from ghostsing.validation import check_choice, check_float, check_floats, check_int

#: The escape rate of the symmetric plateau (Saad & Solla; the largest eigenvalue of the flow's Jacobian at
#: z = 0 of the overlap line), to 7 digits.
ESCAPE_RATE = 0.0657498


# ----------------------------------------------------------------------------------------- portraits
@dataclass(frozen=True)
class PortraitsConfig:
    """``alphas``: one figure (plain vs skip) per skip strength, ``u`` along ``(1, -1)`` (unstable at
    z = 0); ``parallel_alphas``: the same with ``u`` along ``(1, 1)``, parallel to ``J*`` (neutral at second
    order); ``slice``: ``relaxed`` (fast coordinates minimised) or ``fixed`` (at the best one-unit fit)."""

    alphas: tuple[float, ...] = (0.5, 0.1)
    parallel_alphas: tuple[float, ...] = (0.02,)
    grid: int = 41
    line_points: int = 241
    slice: Literal["relaxed", "fixed"] = "relaxed"
    t_end: float = 3000.0
    pdf: bool = False

    def __post_init__(self) -> None:
        check_floats("alphas", self.alphas, 0.0, low_open=True, nonempty=False)
        check_floats("parallel_alphas", self.parallel_alphas, 0.0, low_open=True, nonempty=False)
        if not self.alphas and not self.parallel_alphas:
            raise ValueError("alphas=() and parallel_alphas=(): allowed: at least one skip strength > 0")
        check_int("grid", self.grid, 5)
        check_int("line_points", self.line_points, 5)
        check_choice("slice", self.slice, ("relaxed", "fixed"))
        check_float("t_end", self.t_end, 0.0, low_open=True)


MILNOR_NOTE = (
    "Milnor segment marked where the largest eigenvalue of the generated flow Jacobian at the point of the "
    "line is <= 1e-7. For this teacher with N = 2, Amari's Kmat has eigenvalues (0, 0.0329): along u "
    "parallel to J* the second-order transverse curvature vanishes, so that direction is neutral at second "
    "order and attracts only at higher order (ghostsing.analytic.milnor.milnor_interval reports rule 'none' "
    "for that reason); runs from random u-directions at |z| > 1 stay on the plateau "
    "(loss-curves, alpha = 0).")


def _panel(p, title: str):
    from ghostsing.plots import PortraitData

    return PortraitData(p.x, p.y, p.vx, p.vy, p.speed, title=title, xlabel=p.plane.xlabel,
                        ylabel=p.plane.ylabel, singular=p.singular, milnor=p.milnor,
                        trajectories=p.trajectories)


def _title(alpha: float) -> str:
    return "plain network (α = 0)" if alpha == 0 else f"with skips (α = {alpha:g})"


def run_portraits(config: PortraitsConfig, out_dir: Path, *, resume: bool = False,
                  progress: bool = True) -> ExperimentOutput:
    """Overlap phase portraits: plain (alpha = 0) against each skip strength (module docstring)."""
    from ghostsing.plots import portrait_pair, save_figure
    from ghostsing.simulate.planes import overlap_portrait

    kw = {"grid": config.grid, "line_points": config.line_points, "slice_": config.slice,
          "t_end": config.t_end, "progress": progress}
    figures, arrays, summary, preds = [], {}, {"milnor_note": MILNOR_NOTE}, []
    for direction, skips, base in (((1.0, -1.0), config.alphas, "overlap_portraits"),
                                   ((1.0, 1.0), config.parallel_alphas, "overlap_portraits_parallel")):
        if not skips:
            continue
        plain = overlap_portrait(0.0, e=direction, **kw)
        tag = "parallel_" if direction == (1.0, 1.0) else ""
        arrays.update({"z": plain.x, "r": plain.y, f"{tag}vz_plain": plain.vx, f"{tag}vr_plain": plain.vy,
                       f"{tag}speed_plain": plain.speed, "z_line": plain.line["z"],
                       f"{tag}rate_line_plain": plain.line["rate"]})
        summary[f"{tag}milnor_interval_plain"] = plain.milnor_interval
        summary[f"{tag}plain_max_speed_on_line"] = float(np.max(plain.line["speed"]))
        for k, a in enumerate(skips):
            skip = overlap_portrait(float(a), e=direction, **kw)
            stem = base if k == 0 else f"{base}_alpha{a:g}"
            fig = portrait_pair(_panel(plain, _title(0.0)), _panel(skip, _title(a)), floor=1e-5,
                                suptitle=f"Overlap singularity of a two-unit erf student: {config.slice} "
                                         f"(z, |u|) plane, u ∥ ({direction[0]:g}, {direction[1]:g})")
            figures += save_figure(fig, out_dir, stem, pdf=config.pdf, dpi=90)
            key = f"{tag}alpha{a:g}"
            arrays.update({f"vz_{key}": skip.vx, f"vr_{key}": skip.vy, f"speed_{key}": skip.speed,
                           f"rate_line_{key}": skip.line["rate"], f"speed_line_{key}": skip.line["speed"]})
            for j, tr in enumerate(skip.trajectories):
                arrays[f"traj_{key}_{j}"] = tr
            summary[f"ghost_min_speed_{key}"] = float(np.min(skip.line["speed"]))
        for j, tr in enumerate(plain.trajectories):
            arrays[f"traj_{tag}plain_{j}"] = tr
    # the laws: the line is critical at alpha = 0, its Milnor segment is |z| >= 1, the rate at z = 0
    line_z = arrays["z_line"]
    dz = float(line_z[1] - line_z[0])
    interval = summary.get("milnor_interval_plain") or summary.get("parallel_milnor_interval_plain")
    preds.append(exact_check(
        "plain line is critical", summary.get("plain_max_speed_on_line",
                                              summary.get("parallel_plain_max_speed_on_line")), 0.0, 1e-8,
        "at alpha = 0 every point of {u = 0} (fast coordinates relaxed) is a critical point: the largest "
        "|dtheta/dt| along the line is below 1e-8"))
    inner = [-hi for lo, hi in interval if hi < 0] + [lo for lo, hi in interval if lo > 0]
    preds.append(exact_check(
        "Milnor segment is |z| >= 1", float(np.mean(inner)) if len(inner) == 2 else float("nan"), 1.0, dz,
        "at alpha = 0 the line attracts (largest Jacobian eigenvalue <= 1e-7) exactly on |z| >= 1 "
        "(Amari et al.); measured: the mean |inner end| of the two segments, to the line's grid spacing",
        details={"segments": interval}))
    f0 = sym.compiled(sym.symmetric_spec(0.0))
    from ghostsing.simulate.plateau import transverse_rate

    base_theta = np.array([1.0, 1.0, *sym.J_STAR, *sym.J_STAR])
    rate0 = transverse_rate(f0.jacobian(base_theta))
    summary["escape_rate_z0"] = rate0
    preds.append(exact_check(
        "escape rate at z = 0", rate0, ESCAPE_RATE, 0.5e-7,
        "the largest eigenvalue of the generated Jacobian at z = 0 of the line is the escape rate 0.0657498 "
        "of the symmetric plateau (Saad & Solla), to half a unit of the 7th digit"))
    return ExperimentOutput(tuple(preds), tuple(figures), arrays, summary)


# ------------------------------------------------------------------------------ elimination portraits
@dataclass(frozen=True)
class EliminationPortraitsConfig:
    """One figure: the ``(w_2, |J_2|)`` plane at alpha = 0 against the skip strength ``alpha``."""

    alpha: float = 0.1
    grid: int = 41
    line_points: int = 121
    slice: Literal["relaxed", "fixed"] = "relaxed"
    t_end: float = 3000.0
    pdf: bool = False

    def __post_init__(self) -> None:
        check_float("alpha", self.alpha, 0.0, low_open=True)
        check_int("grid", self.grid, 5)
        check_int("line_points", self.line_points, 5)
        check_choice("slice", self.slice, ("relaxed", "fixed"))
        check_float("t_end", self.t_end, 0.0, low_open=True)


def run_elimination_portraits(config: EliminationPortraitsConfig, out_dir: Path, *, resume: bool = False,
                              progress: bool = True) -> ExperimentOutput:
    """Elimination phase portraits of unit 2, plain vs skip."""
    from ghostsing.plots import portrait_pair, save_figure
    from ghostsing.simulate.planes import elimination_portrait

    kw = {"grid": config.grid, "line_points": config.line_points, "slice_": config.slice,
          "t_end": config.t_end, "progress": progress}
    plain = elimination_portrait(0.0, **kw)
    skip = elimination_portrait(config.alpha, **kw)
    fig = portrait_pair(_panel(plain, _title(0.0)), _panel(skip, _title(config.alpha)), floor=1e-5,
                        suptitle=f"Elimination singularity of unit 2: {config.slice} (w₂, |J₂|) plane")
    figures = save_figure(fig, out_dir, "elimination_portraits", pdf=config.pdf, dpi=90)
    arrays = {"w2": plain.x, "r": plain.y, "vw_plain": plain.vx, "vr_plain": plain.vy,
              "speed_plain": plain.speed, "vw_skip": skip.vx, "vr_skip": skip.vy, "speed_skip": skip.speed}
    for name, d in plain.line.items():
        for k, v in d.items():
            arrays[f"line_{name}_{k}"] = v
    summary = {"milnor_segments_plain": plain.milnor_interval, "e": plain.plane.e,
               "min_speed_skip": float(np.min(skip.speed))}
    return ExperimentOutput((), figures, arrays, summary)


# ---------------------------------------------------------------------------------- plateau vs epsilon
@dataclass(frozen=True)
class PlateauVsEpsilonConfig:
    """``n`` random directions of ``u`` per distance ``eps``; start ``z0`` on the repelling part of the
    line; plateau band ``L* (1 +- rel_band)``; ``n_boot`` bootstrap resamples of the log-law fit."""

    n: int = 24
    eps: tuple[float, ...] = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7)
    z0: float = 0.0
    rel_band: float = 0.1
    n_boot: int = 1000
    slope_tol: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("n", self.n, 2)
        if len(check_floats("eps", self.eps, 0.0, low_open=True)) < 2:
            raise ValueError(f"eps={self.eps!r} has fewer than 2 values; allowed: at least 2 distances > 0")
        check_float("z0", self.z0, -0.99, 0.99)
        check_float("rel_band", self.rel_band, 0.0, 1.0, low_open=True, high_open=True)
        check_int("n_boot", self.n_boot, 10)
        check_float("slope_tol", self.slope_tol, 0.0, low_open=True)
        check_int("seed", self.seed, 0)


def run_plateau_vs_epsilon(config: PlateauVsEpsilonConfig, out_dir: Path, *, resume: bool = False,
                           progress: bool = True) -> ExperimentOutput:
    """Plateau length against the distance eps from the overlap line at alpha = 0; the fitted slope of
    ``tau = a ln(1/eps) + c`` against ``1/lambda_u`` (lambda_u: the Jacobian's largest eigenvalue)."""
    from ghostsing.plots import plot_histograms, plot_scaling, save_figure
    from ghostsing.simulate.plateau import summarize, transverse_rate
    from ghostsing.simulate.scaling_fits import fit_log_law

    rng = np.random.default_rng(config.seed)
    f = sym.compiled(sym.symmetric_spec(0.0))
    base = sym.overlap_starts(1, 1e-300, config.z0, rng)[0]  # the point on the line
    lam = transverse_rate(f.jacobian(np.ascontiguousarray(base)))
    L_s = float(f.loss(np.ascontiguousarray(base)))
    level = L_s * (1 - config.rel_band)
    t_end = 40.0 + 3.0 * math.log(1.0 / min(config.eps)) / max(lam, 1e-3)
    xs, taus = [], []
    for e_ in config.eps:
        tau, _ = sym.escape_times(f, sym.overlap_starts(config.n, e_, config.z0, rng), level, t_end)
        xs.append(np.full(config.n, e_))
        taus.append(tau)
    x, tau = np.concatenate(xs), np.concatenate(taus)
    fit = fit_log_law(x, tau, n_boot=config.n_boot, seed=config.seed)
    ref_x = np.geomspace(min(config.eps), max(config.eps), 50)
    fig = plot_scaling(
        x, tau, {f"fit a ln(1/ε) + c: a = {fit.params['a']:.3f} "
                 f"[{fit.ci['a'][0]:.3f}, {fit.ci['a'][1]:.3f}]": fit},
        reference=(ref_x, np.log(1 / ref_x) / lam + fit.params["c"],
                   f"slope 1/λ_u = {1 / lam:.3f} (Jacobian)"),
        title=f"overlap, α = 0, start z = {config.z0:g}: escape time vs distance ε", logx=True)
    figures = save_figure(fig, out_dir, "plateau_vs_epsilon")
    fig2 = plot_histograms({f"ε = {e_:g}": tau[x == e_] for e_ in config.eps[::2]},
                           title="overlap, α = 0: escape-time histograms (random directions of u)")
    figures += save_figure(fig2, out_dir, "plateau_histograms")
    summary = {"L_s": L_s, "lambda_u": lam, "inv_lambda_u": 1 / lam, "escape_level": level,
               "fit": fit.to_dict(),
               "slope_rel_error": fit.params["a"] * lam - 1,
               "tau_by_eps": {f"{e_:g}": summarize(tau[x == e_]) for e_ in config.eps}}
    preds = (
        bootstrap_agreement("plateau slope = 1/lambda_u", fit.params["a"], fit.boot["a"], 1 / lam,
                            config.slope_tol,
                            "the escape time from a start at distance eps grows as a ln(1/eps) with "
                            "a = 1/lambda_u (linear escape along the unstable direction); the fitted a, "
                            "bootstrap over starts", n=int(np.isfinite(tau).sum())),
        exact_check("lambda_u = 0.0657498", lam, ESCAPE_RATE, 0.5e-7,
                    "the unstable rate at the start's base point is the symmetric plateau's escape rate"),
    )
    return ExperimentOutput(preds, figures, {"eps": x, "tau": tau}, summary)


# ---------------------------------------------------------------------------------------- loss curves
@dataclass(frozen=True)
class LossCurvesConfig:
    """``n`` starts with ``z`` uniform in ``z_range``, ``|u| = eps``, the same starts for every alpha in
    ``alphas``; escape = loss below ``L*/2``; plateau statistics with band ``L* (1 +- rel_band)`` and
    ``|grad L| < g_tol``."""

    n: int = 32
    alphas: tuple[float, ...] = (0.0, 0.02, 0.1)
    eps: float = 1e-3
    z_range: tuple[float, float] = (-3.0, 3.0)
    t_end: float = 1e5
    rel_band: float = 0.1
    g_tol: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("n", self.n, 1)
        check_floats("alphas", self.alphas, 0.0)
        check_float("eps", self.eps, 0.0, low_open=True)
        lo, hi = check_floats("z_range", self.z_range)
        if not lo < hi:
            raise ValueError(f"z_range={self.z_range!r} is not allowed; allowed: (low, high) with low < high")
        check_float("t_end", self.t_end, 0.0, low_open=True)
        check_float("rel_band", self.rel_band, 0.0, 1.0, low_open=True, high_open=True)
        check_float("g_tol", self.g_tol, 0.0, low_open=True)
        check_int("seed", self.seed, 0)


def run_loss_curves(config: LossCurvesConfig, out_dir: Path, *, resume: bool = False,
                    progress: bool = True) -> ExperimentOutput:
    """Ensemble loss curves (median, 25–75 % band) from starts near the overlap line, plain vs skips;
    at alpha = 0 the starts on the Milnor segment (|z0| > 1) never escape, with skips they do."""
    from ghostsing.plots import plot_loss_bands, save_figure
    from ghostsing.simulate.plateau import PlateauConfig, detect_plateaus, summarize

    rng = np.random.default_rng(config.seed)
    band = PlateauConfig.relative(sym.L_STAR, config.rel_band, g_tol=config.g_tol)
    z0 = rng.uniform(*config.z_range, config.n)
    th0 = sym.overlap_starts(config.n, config.eps, z0, rng)
    ens, arrays, stats, t = {}, {"z0": z0}, {}, None
    milnor = np.abs(z0) > 1
    escaped_milnor = {}
    for a in config.alphas:
        tau, sol = sym.escape_times(sym.compiled(sym.symmetric_spec(a)), th0, sym.L_STAR / 2, config.t_end)
        t = sol.t
        ens[f"α = {a:g}, escaped {int(np.isfinite(tau).sum())}/{config.n}"] = sol.loss
        arrays[f"loss_alpha_{a:g}"], arrays[f"tau_alpha_{a:g}"] = sol.loss, tau
        tab = detect_plateaus(t, sol.loss, band, grad_norm=sol.grad_norm)
        escaped_milnor[a] = int(np.isfinite(tau[milnor]).sum())
        stats[f"{a:g}"] = {"entered": int(tab.entered.sum()), "escaped": int(tab.escaped.sum()),
                           "escaped_level": int(np.isfinite(tau).sum()), "milnor_starts": int(milnor.sum()),
                           "milnor_starts_escaped": escaped_milnor[a],
                           "length": summarize(tab.length), "longest": summarize(tab.longest)}
    arrays["t"] = t
    fig = plot_loss_bands(t, ens, L_s=sym.L_STAR, quantiles=(0.25, 0.75), ymin=1e-8,
                          title=f"starts on the overlap line, "
                                f"z ∈ [{config.z_range[0]:g}, {config.z_range[1]:g}], "
                                f"|u| = {config.eps:g}")
    figures = save_figure(fig, out_dir, "loss_curves")
    preds = []
    if 0.0 in escaped_milnor and milnor.any():
        preds.append(exact_check(
            "Milnor starts stay at alpha = 0", escaped_milnor[0.0], 0.0, 0.5,
            f"at alpha = 0 none of the {int(milnor.sum())} starts with |z0| > 1 (the Milnor segment) falls "
            f"below L*/2 by t = {config.t_end:g}"))
    for a in (a for a in config.alphas if a > 0 and milnor.any()):
        preds.append(exact_check(
            f"Milnor starts escape at alpha = {a:g}", escaped_milnor[a], float(milnor.sum()), 0.5,
            f"with skips of strength {a:g} every start with |z0| > 1 passes the ghost and falls below L*/2 "
            f"by "
            f"t = {config.t_end:g}"))
    summary = {"escape_level": sym.L_STAR / 2,
               "plateau_definition": {"L_s": sym.L_STAR, "delta": band.delta, "g_tol": config.g_tol},
               "plateaus": stats}
    return ExperimentOutput(tuple(preds), figures, arrays, summary)


# ------------------------------------------------------------------------------------------ SGD vs ODE
@dataclass(frozen=True)
class SgdVsOdeConfig:
    """K = M = 2 erf, second layer fixed; ``n`` seeds of on-line SGD at input dimension ``N`` and rate
    ``lr`` up to SGD time ``time_max`` (steps / N); ``gap_tol``: the largest allowed gap between the mean
    SGD error and the mean ODE curve."""

    n: int = 4
    N: int = 500
    lr: float = 0.5
    time_max: float = 500.0
    init_std: float = 0.3
    gap_tol: float = 0.005
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("n", self.n, 1)
        check_int("N", self.N, 2)
        check_float("lr", self.lr, 0.0, low_open=True)
        check_float("time_max", self.time_max, 0.0, low_open=True)
        check_float("init_std", self.init_std, 0.0, low_open=True)
        check_float("gap_tol", self.gap_tol, 0.0, low_open=True)
        check_int("seed", self.seed, 0)


def run_sgd_vs_ode(config: SgdVsOdeConfig, out_dir: Path, *, resume: bool = False,
                   progress: bool = True) -> ExperimentOutput:
    """On-line SGD at finite N (``n`` seeds) against the order-parameter ODE integrated from each seed's own
    initial order parameters; both sit on the ODE's plateau at this rate (its own fixed point near the
    symmetric one; the lr^2 terms shift it from the small-lr plateau eps* = 0.011611, drawn for reference)."""
    from ghostsing.analytic.order_params import find_fixed_point, order_parameter_ode, symmetric_fixed_point
    from ghostsing.plots import plot_sgd_vs_ode, save_figure
    from ghostsing.simulate.sgd import online_sgd

    times = np.linspace(0.0, config.time_max, 501)
    seeds = tuple(range(config.seed, config.seed + config.n))
    B = math.sqrt(config.N) * np.eye(2, config.N)
    res = online_sgd(2, 2, config.N, times, activation="erf", lr=config.lr, seeds=seeds,
                     init_std=config.init_std, train_second_layer=False, B=B)
    t_sgd = res.t  # SGD time steps / N
    ode = order_parameter_ode(2, 2, "erf", lr=config.lr, train_second_layer=False)
    y0 = res.states(ode)[:, 0]
    eg_ode = np.mean([[ode.generalisation_error(y) for y in ode.integrate(y0[k], t_sgd)]
                      for k in range(config.n)], axis=0)
    eps_lr = float(ode.generalisation_error(find_fixed_point(ode, symmetric_fixed_point(ode))))
    fig = plot_sgd_vs_ode(t_sgd, res.eg, t_sgd, eg_ode,
                          label_ode="order-parameter ODE (N → ∞), mean over seeds' starts",
                          extra=[(t_sgd, np.full_like(t_sgd, eps_lr),
                                  f"plateau of the η = {config.lr:g} ODE: ε = {eps_lr:.6f}"),
                                 (t_sgd, np.full_like(t_sgd, sym.L_STAR),
                                  f"small-η plateau ε* = {sym.L_STAR:.6f}")],
                          title=f"K = M = 2 erf, N = {config.N}, η = {config.lr:g}, second layer fixed")
    figures = save_figure(fig, out_dir, "sgd_vs_ode")
    gap = np.abs(res.eg.mean(axis=0) - eg_ode)
    summary = {"sgd_config": res.config, "eps_star": sym.L_STAR, "eps_plateau_at_lr": eps_lr,
               "max_abs_gap": float(np.nanmax(gap))}
    per_seed_gap = np.nanmax(np.abs(res.eg - eg_ode[None, :]), axis=1)
    preds = (agreement_prediction(
        "SGD follows the ODE", per_seed_gap, 0.0, config.gap_tol,
        f"the largest gap between one seed's SGD error and the ODE mean is below {config.gap_tol:g} "
        "(finite-N "
        "fluctuations are O(1/sqrt N)); bootstrap over seeds", relative=False, seed=config.seed),)
    return ExperimentOutput(preds, figures, {"time_sgd": t_sgd, "eg_sgd": res.eg, "eg_ode_mean": eg_ode},
                            summary)


EXPERIMENTS: tuple[Experiment, ...] = (
    Experiment("portraits", "Overlap phase portraits, plain vs skip", "simulation", PortraitsConfig,
               run_portraits,
               {"default": PortraitsConfig(),
                "small": PortraitsConfig(alphas=(0.5,), parallel_alphas=(), grid=7, line_points=31)}),
    Experiment("elimination-portraits", "Elimination phase portraits of unit 2, plain vs skip", "simulation",
               EliminationPortraitsConfig, run_elimination_portraits,
               {"default": EliminationPortraitsConfig(),
                "small": EliminationPortraitsConfig(alpha=0.5, grid=7, line_points=9)}),
    Experiment("plateau-vs-epsilon", "Plateau length against the distance from the overlap line",
               "simulation",
               PlateauVsEpsilonConfig, run_plateau_vs_epsilon,
               {"default": PlateauVsEpsilonConfig(),
                "small": PlateauVsEpsilonConfig(n=3, eps=(1e-2, 1e-4, 1e-6), n_boot=50, slope_tol=0.1)}),
    Experiment("loss-curves", "Ensemble loss curves near the overlap line, plain vs skips", "simulation",
               LossCurvesConfig, run_loss_curves,
               {"default": LossCurvesConfig(),
                "small": LossCurvesConfig(n=4, alphas=(0.0, 0.08), t_end=5e3)}),
    Experiment("sgd-vs-ode", "On-line SGD against the order-parameter ODE", "simulation", SgdVsOdeConfig,
               run_sgd_vs_ode,
               {"default": SgdVsOdeConfig(),
                "small": SgdVsOdeConfig(n=2, N=60, time_max=20.0, gap_tol=0.05)}),
)
