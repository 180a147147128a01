r"""Runnable ghost studies: passage laws over three decades of alpha, traps, and basins of typical starts.

Each ``run_*`` computes its data (:mod:`ghostsing.analytic.ghost_fate`, :mod:`ghost_passage`), draws
its figure (:mod:`ghostsing.plots.ghosts`) and writes PNG + data + JSON atomically into ``out_dir``;
it returns the written paths.  Registered in :data:`ghostsing.simulate.experiments.EXPERIMENTS` as
``ghost-passage``, ``ghost-traps`` and ``ghost-basin``.

Teachers (:data:`PASSAGE_TEACHERS`): the reference teacher ``v = (10, 5)``, ``B = (0.4, 4)`` with skip
directions ``(1, 0.5)`` (N = 1) and three random N = 1 teachers with random skips
(:meth:`ModelSpec.random` seeds 0, 5, 8), covering both Milnor rules (``|z| > 1`` and ``|z| < 1``).
The symmetric teacher is not among them: its first-order drift vanishes (a degenerate case).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ghostsing.analytic.ghost_fate import OverlapFate, find_trap, overlap_fate
from ghostsing.analytic.milnor import transverse_eigenvalues
from ghostsing.models import ModelSpec
from ghostsing.simulate.ghost_passage import classify_ends, line_starts, passage_times
from ghostsing.simulate.passage_laws import Law, compare_laws, inverse_law, log_law, power_law

REFERENCE = ModelSpec(K=2, M=2, N=1, activation="erf", v=(10.0, 5.0), B=[[0.4], [4.0]], skip=[[1.0], [0.5]])


def passage_teachers() -> dict[str, ModelSpec]:
    """The teachers of the passage study (module docstring), by label."""
    return {"reference": REFERENCE, **{f"random seed {s}": ModelSpec.random(s, 2, 2, 1) for s in (0, 5, 8)}}


def passable_start(fate: OverlapFate) -> tuple[float, float, float]:
    """``(z0, z_b, C)``: a start at distance 1 from the boundary ``z_b`` of the first passable segment
    and the predicted ``alpha tau = C = (z_b - z0) / v1``."""
    seg = next((s for s in fate.segments if s.fate == "passable ghost"), None)
    if seg is None:
        raise ValueError(f"no passable ghost segment: {fate.table()}")
    v1 = fate.drift.v1
    z0 = seg.exit - np.sign(v1)
    return float(z0), float(seg.exit), seg.passage_alpha_tau(float(z0), v1)


def _with_offset(C: float) -> Law:
    return Law("derived C/alpha + b", f"tau = {C:.6g}/alpha + b", lambda a, b: C / a + b, (0.0,))


def _meta(**kw: Any) -> dict:
    return {"created_unix": time.time(), **kw}


def run_ghost_passage(out_dir: str | Path = "simulations/figures", seed: int = 0, n: int = 5,
                      alphas: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1),
                      eps: float = 1e-3, radius: float = 0.1, n_boot: int = 300,
                      teachers: dict[str, ModelSpec] | None = None, progress: bool = True) -> list[Path]:
    """Passage times through the ghost of the overlap line against alpha (three decades), for several
    teachers; the derived law ``alpha tau -> (z_b - z0)/v1`` against fitted power and log laws under
    one criterion (AIC on ln tau, :mod:`passage_laws`), uncertainties from ``n`` independent starts."""
    from ghostsing.plots import save_figure
    from ghostsing.plots.ghosts import plot_passage_collapse

    teachers = teachers if teachers is not None else passage_teachers()
    runs, summary, arrays = [], {}, {}
    for k, (label, spec) in enumerate(teachers.items()):
        fate = overlap_fate(spec)
        z0, zb, C = passable_start(fate)
        res = passage_times(spec, fate.drift.fit, z0, zb, C, alphas, n_starts=n, eps=eps, radius=radius,
                            seed=seed + k)
        a_rep = np.repeat(res.alphas, n)
        laws = compare_laws([inverse_law(C), _with_offset(C), power_law(), log_law()], a_rep,
                            res.tau_line.ravel(), n_boot=n_boot, seed=seed)
        step = 1e-3 * np.sign(fate.drift.v1)
        ch_mu = transverse_eigenvalues(fate.drift.chart, fate.drift.fit, [zb + step, zb - step])
        mu_prime = float(np.max(ch_mu[0][0]) - np.max(ch_mu[0][1])) / 2e-3
        delay = res.tau_tube - res.tau_line
        rel = res.alphas[:, None] * res.tau_line / C - 1
        summary[label] = {
            "spec": spec.to_dict(), "fate": fate.table(), "milnor_rule": fate.milnor_rule,
            "v1": fate.drift.v1, "z0": z0, "z_b": zb, "C": C, "laws": laws["fits"],
            "aic_order": laws["order"], "delta_aic": laws["delta_aic"],
            "alpha_tau_over_C_minus_1_mean": np.nanmean(rel, axis=1),
            "alpha_tau_over_C_minus_1_std": np.nanstd(rel, axis=1, ddof=1),
            "n_no_passage": int(np.sum(~np.isfinite(res.tau_line))),
            "tube_delay_mean": np.nanmean(delay, axis=1), "mu_prime_at_z_b": mu_prime,
            "tube_delay_times_sqrt_alpha": np.nanmean(delay, axis=1) * np.sqrt(res.alphas),
        }
        runs.append({"label": label, "alphas": res.alphas, "tau_line": res.tau_line,
                     "tau_tube": res.tau_tube, "C": C})
        arrays[f"{k}_tau_line"], arrays[f"{k}_tau_tube"] = res.tau_line, res.tau_tube
        if progress:
            print(f"[ghost-passage] {label}: v1 = {fate.drift.v1:.5g}, C = {C:.5g}, "
                  f"alpha tau/C - 1 = {np.round(np.nanmean(rel, axis=1), 5).tolist()}", flush=True)
    arrays["alphas"] = np.asarray(alphas)
    fig = plot_passage_collapse(runs, title=f"ghost passage along the former overlap line: {n} independent "
                                            f"starts per alpha, |u0| = {eps:g}, tube radius {radius:g}")
    paths = save_figure(fig, out_dir, "ghost_passage", arrays=arrays,
                        meta=_meta(seed=seed, n=n, alphas=list(alphas), eps=eps, radius=radius,
                                   teachers=summary, criterion="AIC = n ln(RSS/n) + 2k on ln tau"))
    import matplotlib.pyplot as plt

    plt.close(fig)
    return [paths["png"], paths["npz"], paths["json"]]


def run_ghost_traps(out_dir: str | Path = "simulations/figures", seed: int = 0, n: int = 1,
                    alphas: tuple[float, ...] = (0.3, 0.1, 0.03, 0.01, 0.003),
                    spec: ModelSpec = REFERENCE, trajectory_min_alpha: float = 0.01,
                    progress: bool = True) -> list[Path]:
    """The trap of the outward-drifting half of the Milnor segment: certified minima at each alpha
    (gradient norm, Hessian, loss gap to the global minimum), ``alpha z*`` against the computed limit
    ``zeta*``, and ``n`` trajectories from ``z0 = +-2`` near the line (random ``u``, ``|u| = 1e-3``)
    that must end in it."""
    from ghostsing.analytic.loss import derive
    from ghostsing.plots import save_figure
    from ghostsing.plots.ghosts import plot_traps
    from ghostsing.simulate import integrate

    fate = overlap_fate(spec)
    st = fate.scaled_trap
    if st is None:
        raise ValueError(f"no trap segment for this teacher: {fate.table()}")
    trap_seg = next(s for s in fate.segments if s.fate == "trap")
    z_start = 2.0 if np.isfinite(trap_seg.lo) else -2.0
    rows = []
    for a in alphas:
        tr = find_trap(spec.replace(alpha=a), scaled=st, seed=seed)
        reached, status, t_end = float("nan"), -1, float("nan")
        if a >= trajectory_min_alpha:  # the arrival takes ~ zeta*/(alpha^2 v1): long below 0.01
            f = derive(spec.replace(alpha=a)).compile()
            th0 = line_starts(spec, fate.drift.fit, z_start, 1e-3, n, np.random.default_rng(seed))
            t_end = 30.0 / (a * a * abs(fate.drift.v1))
            sol = integrate(f, th0, np.array([0.0, t_end]), rtol=1e-10, atol=1e-12, method="auto")
            reached = float(np.max(np.abs(sol.y[:, -1] - tr.theta[None, :])) / np.max(np.abs(tr.theta)))
            status = int(np.max(sol.status))
        rows.append({"alpha": a, "alpha_z": tr.alpha_z, "u_norm": tr.u_norm, "loss": tr.loss,
                     "grad_norm": tr.grad_norm, "min_hessian_eigenvalue": float(tr.hessian_eigenvalues[0]),
                     "global_loss": tr.global_loss, "loss_gap": tr.loss - tr.global_loss,
                     "certified": tr.certified, "trajectory_t_end": t_end, "trajectory_status": status,
                     "trajectory_rel_distance_to_trap": reached})
        if progress:
            print(f"[ghost-traps] alpha = {a}: alpha z* = {tr.alpha_z:.6f}, |grad| = {tr.grad_norm:.2e}, "
                  f"lambda_min = {tr.hessian_eigenvalues[0]:.3e}, gap = {tr.loss - tr.global_loss:.3e}, "
                  f"certified = {tr.certified}, trajectory distance {reached:.1e}", flush=True)
    col = {k: np.array([r[k] for r in rows], dtype=float) for k in
           ("alpha", "alpha_z", "loss", "min_hessian_eigenvalue", "global_loss")}
    fig = plot_traps(col["alpha"], col["alpha_z"], st.zeta, col["min_hessian_eigenvalue"], col["loss"],
                     st.loss, float(np.nanmin(col["global_loss"])),
                     label=f"trap of the former overlap line (v = {spec.v.tolist()}, "
                           f"B = {spec.B.ravel().tolist()}, "
                           f"skips {spec.skip.ravel().tolist()})")
    paths = save_figure(fig, out_dir, "ghost_traps", table={k: list(v) for k, v in col.items()},
                        meta=_meta(seed=seed, spec=spec.to_dict(), fate=fate.table(), zeta_star=st.zeta,
                                   limit_loss=st.loss, limit_b=st.b, z_start=z_start, traps=rows))
    import matplotlib.pyplot as plt

    plt.close(fig)
    return [paths["png"], paths["csv"], paths["json"]]


def run_ghost_basin(out_dir: str | Path = "simulations/figures", seed: int = 0, n: int = 200,
                    alphas: tuple[float, ...] = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0), t_end: float = 1e6,
                    spec: ModelSpec = REFERENCE, progress: bool = True) -> list[Path]:
    """Where typical starts end, against alpha: ``w_i ~ N(0, 1)``, ``J_i ~ N(0, 1/N)`` (LeCun), ``n``
    starts per alpha integrated to ``t_end``; end states global minimum / trap / on the former line
    (still on its ghost, or on the Milnor segment at alpha = 0) / other."""
    from ghostsing.analytic.manifold_fit import global_minimum
    from ghostsing.plots import save_figure
    from ghostsing.plots.ghosts import plot_basin

    rng = np.random.default_rng(seed)
    th0 = np.concatenate([rng.normal(0, 1, (n, spec.K)),
                          rng.normal(0, 1 / np.sqrt(spec.N), (n, spec.K * spec.N))], axis=1)
    fate = overlap_fate(spec)
    fr: dict[str, list[float]] = {k: [] for k in ("global", "trap", "line", "other")}
    detail = []
    for a in alphas:
        s = spec.replace(alpha=a)
        g = global_minimum(s, seed=seed)
        trap_loss = None
        if a > 0 and fate.scaled_trap is not None:
            trap_loss = find_trap(s, scaled=fate.scaled_trap, search_global=False).loss
        ends = classify_ends(s, th0, t_end, g.loss, trap_loss)
        f = ends.fractions()
        for k in fr:
            fr[k].append(f[k])
        detail.append({"alpha": a, "global_loss": g.loss, "trap_loss": trap_loss, "fractions": f})
        if progress:
            print(f"[ghost-basin] alpha = {a}: {f}", flush=True)
    fig = plot_basin(np.asarray(alphas), {k: np.asarray(v) for k, v in fr.items()}, n,
                     title=f"end states at t = {t_end:.0e} of {n} random starts (reference teacher)")
    paths = save_figure(fig, out_dir, "ghost_basin", table={"alpha": list(alphas), **fr},
                        meta=_meta(seed=seed, n=n, t_end=t_end, spec=spec.to_dict(), per_alpha=detail,
                                   init="w ~ N(0, 1), J ~ N(0, 1/N)"))
    import matplotlib.pyplot as plt

    plt.close(fig)
    return [paths["png"], paths["csv"], paths["json"]]


def degenerate_law() -> Law:
    """``tau = alpha^-2 (a ln(1/alpha) + b)``: the form of the symmetric (degenerate) passage, in which
    ``z`` grows as ``exp(c alpha^2 t)`` until ``alpha z`` reaches a level ``kappa``, so that
    ``a = 1/c`` and ``b = c^-1 ln(kappa / z0) + T0``; ``a, b`` free (two parameters)."""
    return Law("alpha^-2 (a ln(1/alpha) + b)", "tau = alpha^-2 (a ln(1/alpha) + b)",
               lambda al, s, b: (s * np.log(1.0 / al) + b) / al**2, (10.0, 1.0))


def run_symmetric_passage(out_dir: str | Path = "simulations/figures", seed: int = 0, n: int = 6,
                          alphas: tuple[float, ...] = (1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 3e-2, 1e-1),
                          eps: float = 1e-3, z0: float = 2.0, z_levels: tuple[float, float] = (4.0, 20.0),
                          rel_band: float = 0.5, fit_max_alpha: float = 2e-3, n_boot: int = 300,
                          progress: bool = True) -> list[Path]:
    """The degenerate case: the symmetric teacher (``v = (1, 1)``, ``B = I``, identity skips), whose
    first-order drift vanishes.  Escape time (loss below ``(1 - rel_band) L*``) from ``z0`` against alpha
    over three decades, compared under one criterion with a power law and ``alpha^-2 (a ln(1/alpha) + b)``;
    and, geometrically, the growth rate ``c = ln(z_2 / z_1) / (alpha^2 (t_2 - t_1))`` of ``z`` between two
    levels (constant when ``dz/dt = c alpha^2 z``).  The laws are fitted where ``alpha z0`` is small
    (``alpha <= fit_max_alpha``): above it the start is already near the level where the slow branch is
    lost and the escape takes ``tau alpha^2 = O(1)``, another regime.  Starts have ``u.J* > 0`` (the
    component of ``u`` along
    the fit's ``J*``, neutral at second order, decides the branch: with ``u.J* < 0`` the trajectory ends
    in a spurious minimum near the line instead, at ``alpha z* = 0.41`` for alpha = 1e-3)."""
    from ghostsing.analytic.scaled_reduction import scaled_branch
    from ghostsing.plots import save_figure
    from ghostsing.plots.ghosts import plot_degenerate
    from ghostsing.simulate import experiments as ex
    from ghostsing.simulate.ghost_passage import free_coordinate
    from ghostsing.simulate.integrate import Event, integrate

    rng = np.random.default_rng(seed)
    level = ex.L_STAR * (1 - rel_band)
    zfun = free_coordinate(ex.symmetric_spec(0.0))
    al = np.asarray(alphas, dtype=np.float64)
    tau = np.full((al.size, n), np.nan)
    c_geo = np.full((al.size, n), np.nan)
    for k, a in enumerate(al):
        f = ex.compiled(ex.symmetric_spec(float(a)))
        th0 = ex.overlap_starts(n, eps, z0, rng)
        u = th0[:, 2:4] - th0[:, 4:6]
        flip = u @ ex.J_STAR < 0  # the escape branch u.J* > 0 (u.J* < 0 ends in a trap: module doc)
        th0[flip, 2:] = 2 * np.tile(ex.J_STAR, 2) - th0[flip, 2:]
        t_end = 400.0 / a**2
        sol = integrate(f, th0, np.array([0.0, t_end]), rtol=1e-9, atol=1e-12, method="auto",
                        events=[Event(levels=[level], direction=-1, terminal=True),
                                Event(levels=list(z_levels), fn=zfun, direction=1)])
        tau[k] = sol.events[0][:, 0]
        t1, t2 = sol.events[1][:, 0], sol.events[1][:, 1]
        if a * z_levels[1] < 0.05:  # both levels well inside the slow phase
            c_geo[k] = np.log(z_levels[1] / z_levels[0]) / (a**2 * (t2 - t1))
        if progress:
            print(f"[symmetric-passage] alpha = {a:g}: tau alpha^2 = {np.round(tau[k] * a * a, 3).tolist()}, "
                  f"c = {np.round(c_geo[k], 5).tolist()}", flush=True)
    branch = scaled_branch(ex.symmetric_spec(0.0))
    inside = al * z0 < branch.kappa
    predicted = np.array([branch.passage_time(float(a), z0) if ok else np.nan for a, ok in zip(al, inside,
                                                                                              strict=True)])
    sel = al <= fit_max_alpha
    a_rep = np.repeat(al[sel], n)
    derived = Law("scaled reduction (computed c, kappa)",
                  "tau alpha^2 = int d beta / slope (no free parameter)",
                  lambda a: np.array([branch.passage_time(float(x), z0) for x in np.atleast_1d(a)]) / a**2)
    laws = compare_laws([derived, power_law(), degenerate_law()], a_rep, tau[sel].ravel(), n_boot=n_boot,
                        seed=seed)
    if progress:
        print(f"[symmetric-passage] scaled reduction: c = {branch.c:.6f}, kappa = {branch.kappa:.6f}; "
              f"predicted tau alpha^2 / measured - 1 = "
              f"{np.round(predicted / np.nanmean(tau * al[:, None] ** 2, axis=1) - 1, 4).tolist()}",
              flush=True)
    fig = plot_degenerate(al, tau, c_geo, laws["fits"], fit_max_alpha, predicted=predicted,
                          c_derived=branch.c)
    paths = save_figure(fig, out_dir, "symmetric_passage", arrays={"alphas": al, "tau": tau, "c": c_geo},
                        meta=_meta(seed=seed, n=n, eps=eps, z0=z0, z_levels=list(z_levels),
                                   escape_level=level, alphas=list(alphas), fit_max_alpha=fit_max_alpha,
                                   laws=laws["fits"], aic_order=laws["order"], c_derived=branch.c,
                                   kappa_derived=branch.kappa, beta_fold=branch.beta_fold,
                                   tau_alpha2_predicted=predicted,
                                   leading_law=[branch.leading_law(float(a), z0) if ok else None
                                                for a, ok in zip(al, inside, strict=True)],
                                   delta_aic=laws["delta_aic"],
                                   tau_alpha2_mean=np.nanmean(tau * al[:, None] ** 2, axis=1),
                                   c_mean=np.nanmean(c_geo, axis=1), c_std=np.nanstd(c_geo, axis=1, ddof=1),
                                   n_no_escape=int(np.sum(~np.isfinite(tau)))))
    import matplotlib.pyplot as plt

    plt.close(fig)
    return [paths["png"], paths["npz"], paths["json"]]


def run_ghost_noise(out_dir: str | Path = "simulations/figures", seed: int = 0, n: int = 6,
                    etas: tuple[float, ...] = (3e-3, 1e-2, 3e-2),
                    alphas: tuple[float, ...] = (0.0, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2),
                    eta_ref: float = 1e-2, spec: ModelSpec = REFERENCE, progress: bool = True) -> list[Path]:
    """SGD noise on the passable half of the former Milnor segment: the noise drift ``q(z)`` derived
    (Lyapunov covariance of the fluctuations, :func:`~ghostsing.simulate.ghost_noise.noise_drift_theory`)
    and, as a check, measured once from SGD at ``alpha = 0``, ``eta_ref``; the crossing time of ``z_b``
    predicted from the derived ``q`` and measured for every ``(eta, alpha)`` (``n`` seeds each), collapsed
    as ``eta tau`` against ``alpha v1 / eta`` (:mod:`ghostsing.simulate.ghost_noise`)."""
    from ghostsing.plots import save_figure
    from ghostsing.plots.ghosts import plot_noise_collapse
    from ghostsing.simulate.ghost_noise import (
        noise_drift_profile,
        noise_drift_theory,
        noise_passage_grid,
        predicted_passage,
    )

    fate = overlap_fate(spec)
    z0, zb, C = passable_start(fate)
    v1 = fate.drift.v1
    q = noise_drift_theory(spec, fate.drift.fit, z0 - 0.1, zb - 0.02 * np.sign(zb - z0))
    q_meas = noise_drift_profile(spec, fate.drift.fit, z0 - 0.2, zb + 0.02, eta_ref,
                                 t_end=1.5 / (eta_ref * 0.01), n_seeds=2 * n, seed=seed)
    zs = np.linspace(min(z0, zb), max(z0, zb), 11)
    if progress:
        print(f"[ghost-noise] q(z) derived {np.round(q(zs), 5).tolist()}; measured "
              f"{np.round(q_meas(zs), 5).tolist()} at z = {np.round(zs, 2).tolist()}", flush=True)
    run = noise_passage_grid(spec, fate.drift.fit, v1, q, z0, zb, etas, alphas, n_seeds=n, seed=seed + 100)
    rel = np.nanmean(run.tau, axis=2) / run.pred - 1
    pred_meas = np.array([[predicted_passage(q_meas, v1, z0, zb, a, e) for a in run.alphas]
                          for e in run.etas])
    rel_meas = np.nanmean(run.tau, axis=2) / pred_meas - 1
    if progress:
        print(f"[ghost-noise] measured / predicted (derived q) - 1 (rows eta, columns alpha): "
              f"{np.round(rel, 3).tolist()}", flush=True)
    batch = noise_passage_grid(spec, fate.drift.fit, v1, q, z0, zb, (eta_ref,), (0.0, 1e-3, 1e-2),
                               n_seeds=n, seed=seed + 200, batch_size=4)
    rel_batch = np.nanmean(batch.tau, axis=2) / batch.pred - 1
    if progress:
        print(f"[ghost-noise] batch 4 at eta = {eta_ref:g} (alpha = 0, 1e-3, 1e-2): "
              f"measured / predicted - 1 = {np.round(rel_batch, 3).tolist()}", flush=True)
    r = np.geomspace(1e-5, 3.0, 200)
    G = np.array([predicted_passage(q, 1.0, z0, zb, x, 1.0) for x in r])
    fig = plot_noise_collapse(run.etas, run.alphas, run.tau, v1, r, G, C)
    paths = save_figure(fig, out_dir, "ghost_noise",
                        arrays={"etas": run.etas, "alphas": run.alphas, "tau": run.tau, "pred": run.pred,
                                "r": r, "G": G, "z": zs, "q_derived": q(zs), "q_measured": q_meas(zs)},
                        meta=_meta(seed=seed, n=n, spec=spec.to_dict(), z0=z0, z_b=zb, v1=v1, C=C,
                                   q_derived_coef=q.coef, q_measured_coef=q_meas.coef, eta_ref=eta_ref,
                                   measured_over_predicted_minus_1=rel,
                                   measured_over_predicted_with_measured_q_minus_1=rel_meas,
                                   batch4_alphas=batch.alphas, batch4_tau=batch.tau, batch4_pred=batch.pred,
                                   batch4_measured_over_predicted_minus_1=rel_batch,
                                   n_no_crossing=int(np.sum(~np.isfinite(run.tau)))))
    import matplotlib.pyplot as plt

    plt.close(fig)
    return [paths["png"], paths["npz"], paths["json"]]
