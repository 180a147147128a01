r"""Ghost studies of the former overlap line under skips: passage laws, traps, basins, the degenerate case,
SGD noise.  One idea: what is left of the overlap line's Milnor segment when skips break it; so one
module of five registered experiments (kind ``simulation``; ``ghostsing run NAME``):

* ``ghost-passage`` — passage times through the ghost against alpha (three decades), several teachers:
  the derived law ``alpha tau -> C = (z_b - z0)/v1`` against fitted power and log laws (AIC on ln tau);
* ``ghost-traps`` — the certified spurious minimum of the other half of the segment, ``alpha z* -> zeta*``;
* ``ghost-basin`` — where typical random starts end, against alpha;
* ``symmetric-passage`` — the degenerate case ``v1 = 0`` (symmetric teacher): the scaled reduction's
  escape time and growth rate ``c`` against the integrator;
* ``ghost-noise`` — on-line SGD on the passable half: crossing times predicted from the derived noise
  drift ``q(z)``.

Teachers (:func:`passage_teachers`): the reference teacher ``v = (10, 5)``, ``B = (0.4, 4)`` with skip
directions ``(1, 0.5)`` (N = 1) and random N = 1 teachers with random skips (:meth:`ModelSpec.random`),
covering both Milnor rules.  Theory: the ghosts page of the documentation.  Each study has the presets
``default`` (the published size) and ``small`` (seconds); the laws it checks are predictions
(:mod:`ghostsing.experiments.laws`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ghostsing.analytic.ghost_fate import OverlapFate, find_trap, overlap_fate
from ghostsing.analytic.milnor import transverse_eigenvalues
from ghostsing.experiments.base import Experiment, ExperimentOutput
from ghostsing.experiments.laws import agreement_prediction, exact_check
from ghostsing.models import ModelSpec
from ghostsing.simulate.ghost_passage import classify_ends, line_starts, passage_times
from ghostsing.simulate.passage_laws import Law, compare_laws, inverse_law, log_law, power_law
from ghostsing.validation import check_float, check_floats, check_int

__all__ = ["REFERENCE", "EXPERIMENTS", "passage_teachers", "passable_start", "degenerate_law"]

REFERENCE = ModelSpec(K=2, M=2, N=1, activation="erf", v=(10.0, 5.0), B=[[0.4], [4.0]],
                      skip_directions=[[1.0], [0.5]])


def _teacher(name: str) -> tuple[str, ModelSpec]:
    if name == "reference":
        return name, REFERENCE
    head, _, seed = name.partition(":")
    if head == "random" and seed.isdigit():
        return f"random seed {int(seed)}", ModelSpec.random(int(seed), 2, 2, 1)
    raise ValueError(f"teacher {name!r} is not allowed; allowed: 'reference' or 'random:<seed>'")


def passage_teachers(names: tuple[str, ...] = ("reference", "random:0", "random:5", "random:8")
                     ) -> dict[str, ModelSpec]:
    """The teachers of the passage study by label (``reference`` or ``random:<seed>``)."""
    return dict(_teacher(n) for n in names)


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


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, flush=True)


# ------------------------------------------------------------------------------------------ passage
@dataclass(frozen=True)
class GhostPassageConfig:
    """``n`` independent starts per alpha at ``|u0| = eps``; tube radius ``radius``; the derived law is
    checked on the alphas ``<= law_max_alpha`` to the relative tolerance ``law_tol`` (the correction is
    O(alpha))."""

    n: int = 5
    alphas: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
    eps: float = 1e-3
    radius: float = 0.1
    n_boot: int = 300
    teachers: tuple[str, ...] = ("reference", "random:0", "random:5", "random:8")
    law_max_alpha: float = 1e-3
    law_tol: float = 0.02
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("n", self.n, 1)
        check_floats("alphas", self.alphas, 0.0, low_open=True)
        check_float("eps", self.eps, 0.0, low_open=True)
        check_float("radius", self.radius, self.eps, low_open=True)
        check_int("n_boot", self.n_boot, 0)
        if not self.teachers:
            raise ValueError("teachers=() is empty; allowed: 'reference' or 'random:<seed>' entries")
        for t in self.teachers:
            _teacher(t)
        check_float("law_max_alpha", self.law_max_alpha, min(self.alphas))
        check_float("law_tol", self.law_tol, 0.0, low_open=True)
        check_int("seed", self.seed, 0)


def run_ghost_passage(config: GhostPassageConfig, out_dir: Path, *, resume: bool = False,
                      progress: bool = True) -> ExperimentOutput:
    """Passage times through the ghost of the overlap line against alpha, for several teachers."""
    from ghostsing.plots import save_figure
    from ghostsing.plots.ghosts import plot_passage_collapse

    runs, summary, arrays, preds = [], {}, {"alphas": np.asarray(config.alphas)}, []
    for k, (label, spec) in enumerate(passage_teachers(config.teachers).items()):
        fate = overlap_fate(spec)
        z0, zb, C = passable_start(fate)
        res = passage_times(spec, fate.drift.fit, z0, zb, C, config.alphas, n_starts=config.n, eps=config.eps,
                            radius=config.radius, seed=config.seed + k)
        laws = compare_laws([inverse_law(C), _with_offset(C), power_law(), log_law()],
                            np.repeat(res.alphas, config.n), res.tau_line.ravel(), n_boot=config.n_boot,
                            seed=config.seed)
        step = 1e-3 * np.sign(fate.drift.v1)
        ch_mu = transverse_eigenvalues(fate.drift.chart, fate.drift.fit, [zb + step, zb - step])
        rel = res.alphas[:, None] * res.tau_line / C - 1
        delay = res.tau_tube - res.tau_line
        summary[label] = {
            "spec": spec.to_dict(), "fate": fate.table(), "milnor_rule": fate.milnor_rule,
            "v1": fate.drift.v1,
            "z0": z0, "z_b": zb, "C": C, "laws": {k: v.to_dict() for k, v in laws["fits"].items()},
            "aic_order": laws["order"],
            "delta_aic": laws["delta_aic"], "alpha_tau_over_C_minus_1_mean": np.nanmean(rel, axis=1),
            "alpha_tau_over_C_minus_1_std": np.nanstd(rel, axis=1, ddof=1) if config.n > 1 else None,
            "n_no_passage": int(np.sum(~np.isfinite(res.tau_line))),
            "tube_delay_mean": np.nanmean(delay, axis=1),
            "mu_prime_at_z_b": float(np.max(ch_mu[0][0]) - np.max(ch_mu[0][1])) / 2e-3,
            "tube_delay_times_sqrt_alpha": np.nanmean(delay, axis=1) * np.sqrt(res.alphas),
        }
        runs.append({"label": label, "alphas": res.alphas, "tau_line": res.tau_line, "tau_tube": res.tau_tube,
                     "C": C})
        arrays[f"{k}_tau_line"], arrays[f"{k}_tau_tube"] = res.tau_line, res.tau_tube
        sel = res.alphas <= config.law_max_alpha
        preds.append(agreement_prediction(
            f"alpha tau -> C ({label})", (res.alphas[:, None] * res.tau_line)[sel].ravel(), C, config.law_tol,
            f"the passage time of z_b = {zb:g} from z0 = {z0:g} is C/alpha with C = (z_b - z0)/v1 = {C:.6g} "
            f"computed (v1 = {fate.drift.v1:.6g}, no fit): alpha tau within {config.law_tol:g} of C, "
            f"starts at alpha <= {config.law_max_alpha:g}", seed=config.seed))
        _say(progress, f"[ghost-passage] {label}: v1 = {fate.drift.v1:.5g}, C = {C:.5g}, "
                       f"alpha tau/C - 1 = {np.round(np.nanmean(rel, axis=1), 5).tolist()}")
    fig = plot_passage_collapse(runs, title=f"ghost passage along the former overlap line: {config.n} "
                                            f"independent starts per alpha, |u0| = {config.eps:g}, "
                                            f"tube radius "
                                            f"{config.radius:g}")
    summary["criterion"] = "AIC = n ln(RSS/n) + 2k on ln tau"
    return ExperimentOutput(tuple(preds), save_figure(fig, out_dir, "ghost_passage"), arrays, summary)


# -------------------------------------------------------------------------------------------- traps
@dataclass(frozen=True)
class GhostTrapsConfig:
    """Certified traps of the reference teacher at each alpha; ``n`` trajectories from ``z0 = +-2`` per
    alpha ``>= trajectory_min_alpha`` (the arrival takes ~ zeta*/(alpha^2 v1))."""

    alphas: tuple[float, ...] = (0.3, 0.1, 0.03, 0.01, 0.003)
    n: int = 1
    trajectory_min_alpha: float = 0.01
    zeta_tol: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if len(set(check_floats("alphas", self.alphas, 0.0, low_open=True))) < 2:
            raise ValueError(f"alphas={self.alphas!r}; allowed: at least 2 distinct skip strengths > 0")
        check_int("n", self.n, 1)
        check_float("trajectory_min_alpha", self.trajectory_min_alpha, 0.0, low_open=True)
        check_float("zeta_tol", self.zeta_tol, 0.0, low_open=True)
        check_int("seed", self.seed, 0)


def run_ghost_traps(config: GhostTrapsConfig, out_dir: Path, *, resume: bool = False,
                    progress: bool = True) -> ExperimentOutput:
    """The trap of the outward-drifting half of the Milnor segment: certified minima at each alpha
    (gradient norm, Hessian, loss gap to the global minimum), ``alpha z*`` against the computed limit
    ``zeta*``, and trajectories from near the line that must end in it."""
    from ghostsing.analytic.loss import derive
    from ghostsing.plots import save_figure
    from ghostsing.plots.ghosts import plot_traps
    from ghostsing.simulate import integrate

    spec = REFERENCE
    fate = overlap_fate(spec)
    st = fate.scaled_trap
    if st is None:
        raise ValueError(f"no trap segment for this teacher: {fate.table()}")
    trap_seg = next(s for s in fate.segments if s.fate == "trap")
    z_start = 2.0 if np.isfinite(trap_seg.lo) else -2.0
    rows = []
    for a in config.alphas:
        tr = find_trap(spec.replace(alpha=a), scaled=st, seed=config.seed)
        reached, status, t_end = float("nan"), -1, float("nan")
        if a >= config.trajectory_min_alpha:
            f = derive(spec.replace(alpha=a)).compile()
            th0 = line_starts(spec, fate.drift.fit, z_start, 1e-3, config.n,
                              np.random.default_rng(config.seed))
            t_end = 30.0 / (a * a * abs(fate.drift.v1))
            sol = integrate(f, th0, np.array([0.0, t_end]), rtol=1e-10, atol=1e-12, method="auto")
            reached = float(np.max(np.abs(sol.y[:, -1] - tr.theta[None, :])) / np.max(np.abs(tr.theta)))
            status = int(np.max(sol.status))
        rows.append({"alpha": a, "alpha_z": tr.alpha_z, "u_norm": tr.u_norm, "loss": tr.loss,
                     "grad_norm": tr.grad_norm, "min_hessian_eigenvalue": float(tr.hessian_eigenvalues[0]),
                     "global_loss": tr.global_loss, "loss_gap": tr.loss - tr.global_loss,
                     "certified": tr.certified, "trajectory_t_end": t_end, "trajectory_status": status,
                     "trajectory_rel_distance_to_trap": reached})
        _say(progress, f"[ghost-traps] alpha = {a}: alpha z* = {tr.alpha_z:.6f}, "
                       f"|grad| = {tr.grad_norm:.2e}, "
                       f"certified = {tr.certified}, trajectory distance {reached:.1e}")
    col = {k: np.array([r[k] for r in rows], dtype=float) for k in
           ("alpha", "alpha_z", "loss", "min_hessian_eigenvalue", "global_loss",
            "trajectory_rel_distance_to_trap")}
    fig = plot_traps(col["alpha"], col["alpha_z"], st.zeta, col["min_hessian_eigenvalue"], col["loss"],
                     st.loss,
                     float(np.nanmin(col["global_loss"])),
                     label=f"trap of the former overlap line (v = {spec.v.tolist()}, "
                           f"B = {spec.B.ravel().tolist()}, "
                           f"skips {spec.skip_directions.ravel().tolist()})")
    slope, intercept = np.polyfit(col["alpha"], col["alpha_z"], 1)
    dist = col["trajectory_rel_distance_to_trap"]
    preds = [
        exact_check("every trap certified", float(sum(r["certified"] for r in rows)), float(len(rows)), 0.5,
                    "at every alpha the trap found from the scaled limit is a certified minimum (gradient "
                    "norm below tolerance, positive-definite Hessian, loss above the global minimum)"),
        exact_check("alpha z* -> zeta*", float(intercept), st.zeta, config.zeta_tol,
                    f"alpha z* of the trap is zeta* = {st.zeta:.6f} (computed from the effective loss) plus "
                    "an O(alpha) term: the intercept of a straight-line fit of alpha z* against alpha",
                    relative=True, details={"slope": float(slope)}),
    ]
    if np.isfinite(dist).any():
        preds.append(exact_check(
            "trajectories end in the trap", float(np.nanmax(dist)), 0.0, 1e-6,
            "trajectories from near the line on the trap's half end at the certified trap (largest relative "
            "distance below 1e-6)"))
    summary = {"spec": spec.to_dict(), "fate": fate.table(), "zeta_star": st.zeta, "limit_loss": st.loss,
               "limit_b": st.b, "z_start": z_start, "traps": rows, "alpha_z_fit": {"slope": slope,
                                                                                 "intercept": intercept}}
    return ExperimentOutput(tuple(preds), save_figure(fig, out_dir, "ghost_traps"), col, summary)


# -------------------------------------------------------------------------------------------- basin
@dataclass(frozen=True)
class GhostBasinConfig:
    """``n`` random starts (``w ~ N(0, 1)``, ``J ~ N(0, 1/N)``) per alpha, integrated to ``t_end``."""

    n: int = 200
    alphas: tuple[float, ...] = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0)
    t_end: float = 1e6
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("n", self.n, 1)
        check_floats("alphas", self.alphas, 0.0)
        check_float("t_end", self.t_end, 0.0, low_open=True)
        check_int("seed", self.seed, 0)


def run_ghost_basin(config: GhostBasinConfig, out_dir: Path, *, resume: bool = False,
                    progress: bool = True) -> ExperimentOutput:
    """Where typical starts end against alpha: global minimum / trap / on the former line / other."""
    from ghostsing.analytic.minima import global_minimum
    from ghostsing.plots import save_figure
    from ghostsing.plots.ghosts import plot_basin

    spec, n = REFERENCE, config.n
    rng = np.random.default_rng(config.seed)
    th0 = np.concatenate([rng.normal(0, 1, (n, spec.K)),
                          rng.normal(0, 1 / np.sqrt(spec.N), (n, spec.K * spec.N))], axis=1)
    fate = overlap_fate(spec)
    fr: dict[str, list[float]] = {k: [] for k in ("global", "trap", "line", "other")}
    detail = []
    for a in config.alphas:
        s = spec.replace(alpha=a)
        g = global_minimum(s, seed=config.seed)
        trap_loss = None
        if a > 0 and fate.scaled_trap is not None:
            trap_loss = find_trap(s, scaled=fate.scaled_trap, search_global=False).loss
        f = classify_ends(s, th0, config.t_end, g.loss, trap_loss).fractions()
        for k in fr:
            fr[k].append(f[k])
        detail.append({"alpha": a, "global_loss": g.loss, "trap_loss": trap_loss, "fractions": f})
        _say(progress, f"[ghost-basin] alpha = {a}: {f}")
    fractions = {k: np.asarray(v) for k, v in fr.items()}
    fig = plot_basin(np.asarray(config.alphas), fractions, n,
                     title=f"end states at t = {config.t_end:.0e} of {n} random starts (reference teacher)")
    summary = {"spec": spec.to_dict(), "per_alpha": detail, "init": "w ~ N(0, 1), J ~ N(0, 1/N)"}
    return ExperimentOutput((), save_figure(fig, out_dir, "ghost_basin"),
                            {"alpha": np.asarray(config.alphas),
                             **{f"fraction_{k}": v for k, v in fractions.items()}},
                            summary)


# ------------------------------------------------------------------------------- degenerate passage
def degenerate_law() -> Law:
    """``tau = alpha^-2 (a ln(1/alpha) + b)``: the form of the symmetric (degenerate) passage, in which
    ``z`` grows as ``exp(c alpha^2 t)`` until ``alpha z`` reaches a level ``kappa``, so that
    ``a = 1/c`` and ``b = c^-1 ln(kappa / z0) + T0``; ``a, b`` free (two parameters)."""
    return Law("alpha^-2 (a ln(1/alpha) + b)", "tau = alpha^-2 (a ln(1/alpha) + b)",
               lambda al, s, b: (s * np.log(1.0 / al) + b) / al**2, (10.0, 1.0))


@dataclass(frozen=True)
class SymmetricPassageConfig:
    """Escape time (loss below ``(1 - rel_band) L*``) from ``z0`` of ``n`` starts per alpha; growth rate of
    ``z`` between the levels ``z_levels``.  Laws fitted and checked on ``alpha <= fit_max_alpha``; the
    growth rate checked on ``alpha <= c_max_alpha`` (both levels deep in the slow phase)."""

    n: int = 6
    alphas: tuple[float, ...] = (1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 3e-2, 1e-1)
    eps: float = 1e-3
    z0: float = 2.0
    z_levels: tuple[float, float] = (4.0, 20.0)
    rel_band: float = 0.5
    fit_max_alpha: float = 1e-3
    c_max_alpha: float = 5e-4
    tol: float = 0.01
    c_tol: float = 0.02
    n_boot: int = 300
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("n", self.n, 1)
        check_floats("alphas", self.alphas, 0.0, low_open=True)
        check_float("eps", self.eps, 0.0, low_open=True)
        check_float("z0", self.z0, 1.0, low_open=True)
        lo, hi = check_floats("z_levels", self.z_levels, self.z0, low_open=True)
        if not lo < hi:
            raise ValueError(f"z_levels={self.z_levels!r}; allowed: two levels z0 < z_1 < z_2")
        check_float("rel_band", self.rel_band, 0.0, 1.0, low_open=True, high_open=True)
        check_float("fit_max_alpha", self.fit_max_alpha, min(self.alphas))
        check_float("c_max_alpha", self.c_max_alpha, 0.0, low_open=True)
        check_float("tol", self.tol, 0.0, low_open=True)
        check_float("c_tol", self.c_tol, 0.0, low_open=True)
        check_int("n_boot", self.n_boot, 0)
        check_int("seed", self.seed, 0)


def run_symmetric_passage(config: SymmetricPassageConfig, out_dir: Path, *, resume: bool = False,
                          progress: bool = True) -> ExperimentOutput:
    """The degenerate case (symmetric teacher, ``v1 = 0``): escape times and the growth rate of ``z``
    against the scaled reduction (computed ``c``, ``kappa``; no free parameter).  Starts have
    ``u.J* > 0``: with ``u.J* < 0`` a trajectory ends in a spurious minimum near the line instead."""
    from ghostsing.analytic.scaled_reduction import scaled_branch
    from ghostsing.plots import save_figure
    from ghostsing.plots.ghosts import plot_degenerate
    from ghostsing.simulate import symmetric as sym
    from ghostsing.simulate.ghost_passage import free_coordinate
    from ghostsing.simulate.integrate import Event, integrate

    c, n = config, config.n
    rng = np.random.default_rng(c.seed)
    level = sym.L_STAR * (1 - c.rel_band)
    zfun = free_coordinate(sym.symmetric_spec(0.0))
    al = np.asarray(c.alphas, dtype=np.float64)
    tau, c_geo = np.full((al.size, n), np.nan), np.full((al.size, n), np.nan)
    for k, a in enumerate(al):
        f = sym.compiled(sym.symmetric_spec(float(a)))
        th0 = sym.overlap_starts(n, c.eps, c.z0, rng)
        flip = (th0[:, 2:4] - th0[:, 4:6]) @ sym.J_STAR < 0  # keep the escape branch u.J* > 0
        th0[flip, 2:] = 2 * np.tile(sym.J_STAR, 2) - th0[flip, 2:]
        sol = integrate(f, th0, np.array([0.0, 400.0 / a**2]), rtol=1e-9, atol=1e-12, method="auto",
                        events=[Event(levels=[level], direction=-1, terminal=True),
                                Event(levels=list(c.z_levels), fn=zfun, direction=1)])
        tau[k] = sol.events[0][:, 0]
        if a * c.z_levels[1] < 0.05:  # both levels well inside the slow phase
            dt = sol.events[1][:, 1] - sol.events[1][:, 0]
            c_geo[k] = np.log(c.z_levels[1] / c.z_levels[0]) / (a**2 * dt)
        _say(progress, f"[symmetric-passage] alpha = {a:g}: "
                       f"tau alpha^2 = {np.round(tau[k] * a * a, 3).tolist()}")
    branch = scaled_branch(sym.symmetric_spec(0.0))
    inside = al * c.z0 < branch.kappa
    predicted = np.array([branch.passage_time(float(a), c.z0) if ok else np.nan for a, ok in zip(al, inside,
                                                                                                strict=True)])
    sel = al <= c.fit_max_alpha
    derived = Law("scaled reduction (computed c, kappa)",
                  "tau alpha^2 = int d beta / slope (no free parameter)",
                  lambda a: np.array([branch.passage_time(float(x), c.z0) for x in np.atleast_1d(a)]) / a**2)
    laws = compare_laws([derived, power_law(), degenerate_law()], np.repeat(al[sel], n), tau[sel].ravel(),
                        n_boot=c.n_boot, seed=c.seed)
    fig = plot_degenerate(al, tau, c_geo, laws["fits"], c.fit_max_alpha, predicted=predicted,
                          c_derived=branch.c)
    ratio = (tau * al[:, None] ** 2 / predicted[:, None])[sel & inside]
    csel = al <= c.c_max_alpha
    preds = [agreement_prediction(
        "escape time = scaled reduction", ratio.ravel(), 1.0, c.tol,
        f"tau alpha^2 of each start equals the scaled reduction's passage time (computed c = {branch.c:.6f}, "
        f"kappa = {branch.kappa:.6f}; no fit) within {c.tol:g}, alpha <= {c.fit_max_alpha:g}", seed=c.seed)]
    if csel.any():
        preds.append(agreement_prediction(
            "growth rate c = scaled reduction", c_geo[csel].ravel(), branch.c, c.c_tol,
            f"z grows as exp(c alpha^2 t) on the slow manifold with c = -L*''(0)/2 = {branch.c:.6f} of the "
            f"scaled "
            f"reduction: c measured between z = {c.z_levels[0]:g} and {c.z_levels[1]:g}, alpha <= "
            f"{c.c_max_alpha:g}", seed=c.seed))
    summary = {"escape_level": level, "laws": {k: v.to_dict() for k, v in laws["fits"].items()},
               "aic_order": laws["order"],
               "delta_aic": laws["delta_aic"], "c_derived": branch.c, "kappa_derived": branch.kappa,
               "beta_fold": branch.beta_fold, "tau_alpha2_predicted": predicted,
               "leading_law": [branch.leading_law(float(a), c.z0) if ok else None for a, ok in zip(al, inside,
                                                                                                   strict=True)],
               "tau_alpha2_mean": np.nanmean(tau * al[:, None] ** 2, axis=1),
               "c_mean": np.nanmean(c_geo, axis=1),
               "n_no_escape": int(np.sum(~np.isfinite(tau)))}
    return ExperimentOutput(tuple(preds), save_figure(fig, out_dir, "symmetric_passage"),
                            {"alphas": al, "tau": tau, "c": c_geo}, summary)


# -------------------------------------------------------------------------------------------- noise
@dataclass(frozen=True)
class GhostNoiseConfig:
    """``n`` SGD seeds per ``(eta, alpha)``; the noise drift measured once at ``eta_ref`` as a check; the
    crossing times checked against the prediction from the derived ``q`` to the relative ``tol``."""

    n: int = 6
    etas: tuple[float, ...] = (3e-3, 1e-2, 3e-2)
    alphas: tuple[float, ...] = (0.0, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
    eta_ref: float = 1e-2
    batch_alphas: tuple[float, ...] = (0.0, 1e-3, 1e-2)
    tol: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("n", self.n, 1)
        check_floats("etas", self.etas, 0.0, low_open=True)
        check_floats("alphas", self.alphas, 0.0)
        check_float("eta_ref", self.eta_ref, 0.0, low_open=True)
        check_floats("batch_alphas", self.batch_alphas, 0.0, nonempty=False)
        check_float("tol", self.tol, 0.0, low_open=True)
        check_int("seed", self.seed, 0)


def run_ghost_noise(config: GhostNoiseConfig, out_dir: Path, *, resume: bool = False,
                    progress: bool = True) -> ExperimentOutput:
    """SGD noise on the passable half of the former Milnor segment: ``eta tau`` against ``alpha v1 / eta``
    with the scaling function predicted from the derived noise drift ``q(z)``."""
    from ghostsing.plots import save_figure
    from ghostsing.plots.ghosts import plot_noise_collapse
    from ghostsing.simulate.ghost_noise import (
        noise_drift_profile,
        noise_drift_theory,
        noise_passage_grid,
        predicted_passage,
    )

    c, spec = config, REFERENCE
    fate = overlap_fate(spec)
    z0, zb, C = passable_start(fate)
    v1 = fate.drift.v1
    q = noise_drift_theory(spec, fate.drift.fit, z0 - 0.1, zb - 0.02 * np.sign(zb - z0))
    q_meas = noise_drift_profile(spec, fate.drift.fit, z0 - 0.2, zb + 0.02, c.eta_ref,
                                 t_end=1.5 / (c.eta_ref * 0.01), n_seeds=2 * c.n, seed=c.seed)
    zs = np.linspace(min(z0, zb), max(z0, zb), 11)
    run = noise_passage_grid(spec, fate.drift.fit, v1, q, z0, zb, c.etas, c.alphas, n_seeds=c.n,
                             seed=c.seed + 100)
    ratio = np.nanmean(run.tau, axis=2) / run.pred
    pred_meas = np.array([[predicted_passage(q_meas, v1, z0, zb, a, e) for a in run.alphas]
                          for e in run.etas])
    summary = {"spec": spec.to_dict(), "z0": z0, "z_b": zb, "v1": v1, "C": C, "q_derived_coef": q.coef,
               "q_measured_coef": q_meas.coef, "measured_over_predicted_minus_1": ratio - 1,
               "measured_over_predicted_with_measured_q_minus_1": np.nanmean(run.tau, axis=2) / pred_meas - 1,
               "n_no_crossing": int(np.sum(~np.isfinite(run.tau)))}
    _say(progress, f"[ghost-noise] measured / predicted - 1 (rows eta, columns alpha): "
                   f"{np.round(ratio - 1, 3).tolist()}")
    preds = [agreement_prediction(
        "SGD crossing time = derived noise law", ratio.ravel(), 1.0, c.tol,
        f"the mean crossing time of z_b over {c.n} seeds equals int dz / (alpha v1 + eta q(z)) with q "
        f"derived "
        f"from the Lyapunov covariance (no SGD input) within {c.tol:g}; one sample per (eta, alpha) cell",
        seed=c.seed)]
    if c.batch_alphas:
        batch = noise_passage_grid(spec, fate.drift.fit, v1, q, z0, zb, (c.eta_ref,), c.batch_alphas,
                                   n_seeds=c.n, seed=c.seed + 200, batch_size=4)
        summary.update({"batch4_alphas": batch.alphas, "batch4_tau": batch.tau, "batch4_pred": batch.pred,
                        "batch4_measured_over_predicted_minus_1":
                            np.nanmean(batch.tau, axis=2) / batch.pred - 1})
    r = np.geomspace(1e-5, 3.0, 200)
    G = np.array([predicted_passage(q, 1.0, z0, zb, x, 1.0) for x in r])
    fig = plot_noise_collapse(run.etas, run.alphas, run.tau, v1, r, G, C)
    arrays = {"etas": run.etas, "alphas": run.alphas, "tau": run.tau, "pred": run.pred, "r": r, "G": G,
              "z": zs,
              "q_derived": q(zs), "q_measured": q_meas(zs)}
    return ExperimentOutput(tuple(preds), save_figure(fig, out_dir, "ghost_noise"), arrays, summary)


EXPERIMENTS: tuple[Experiment, ...] = (
    Experiment("ghost-passage", "Passage through the ghost of the overlap line against alpha", "simulation",
               GhostPassageConfig, run_ghost_passage,
               {"default": GhostPassageConfig(),
                "small": GhostPassageConfig(n=2, alphas=(1e-4, 3e-4, 1e-3), teachers=("reference",),
                                            n_boot=20)}),
    Experiment("ghost-traps", "Traps of the former overlap line against alpha", "simulation",
               GhostTrapsConfig, run_ghost_traps,
               {"default": GhostTrapsConfig(), "small": GhostTrapsConfig(alphas=(0.3, 0.1))}),
    Experiment("ghost-basin", "End states of random starts against alpha", "simulation", GhostBasinConfig,
               run_ghost_basin,
               {"default": GhostBasinConfig(), "small": GhostBasinConfig(n=8, alphas=(0.0, 1.0), t_end=1e5)}),
    Experiment("symmetric-passage", "The degenerate passage of the symmetric teacher (v1 = 0)", "simulation",
               SymmetricPassageConfig, run_symmetric_passage,
               {"default": SymmetricPassageConfig(),
                "small": SymmetricPassageConfig(n=3, alphas=(2e-4, 5e-4, 1e-3, 2e-3), n_boot=0)}),
    Experiment("ghost-noise", "SGD noise on the passable half of the former Milnor segment", "simulation",
               GhostNoiseConfig, run_ghost_noise,
               {"default": GhostNoiseConfig(),
                "small": GhostNoiseConfig(n=3, etas=(3e-2,), alphas=(0.0, 1e-2), eta_ref=3e-2,
                                          batch_alphas=())}),
)
