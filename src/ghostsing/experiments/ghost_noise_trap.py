r"""``ghost-noise-trap``: SGD noise against the skip drift on the trap half of a Milnor segment.

On a generic teacher's former overlap line the skip drift is ``dz/dt = alpha v1`` at every ``z``. For
the reference teacher (``v1 > 0``) on the half ``z < -1`` it carries the state to the segment's end
``z = -1`` (a passable ghost), on the half ``z > 1`` it carries it *away* from ``z = 1``, toward the
spurious minimum at ``alpha z -> zeta*`` (a trap); below, ``z > 1`` and ``v1 > 0`` (the code takes the
trap half and the sign of ``v1`` of any ``teacher``, ``reference`` or ``random:<seed>``).  Under on-line
SGD the linear-response noise drift ``eta q(z)`` (:mod:`ghostsing.simulate.ghost_noise`, derived from the
Lyapunov covariance of the transverse fluctuations) adds to it; on the trap half ``q < 0``: the noise
pushes toward ``z = 1``.  To first order in both::

    dz/dt = alpha v1 + eta q(z).

So the noise and the skips compete, and the outcome is decided by one derived number,
``alpha_c(eta) = eta min_{1 <= z <= z0} |q(z)| / v1`` (``|q|`` is smallest at ``z = 1``):

* ``alpha < alpha_c``: the velocity points to ``z = 1`` everywhere; SGD leaves the segment through its end
  after ``tau = int_{z0}^{1} dz / (alpha v1 + eta q(z))``, which diverges as ``alpha -> alpha_c``;
* ``alpha_c < alpha < alpha_0 = eta |q(z0)| / v1``: ``z`` moves toward 1 and stalls at the noise-induced
  fixed point ``z*``, ``alpha v1 + eta q(z*) = 0``;
* ``alpha > alpha_0``: ``z`` moves away from 1 from the start, toward the trap.

Predictions (skip strengths given as ``alpha / alpha_c`` at each ``eta``): the crossing times where
``alpha <= 0.75 alpha_c`` (to ``tol``); SGD crosses ``z = 1`` below ``alpha_c`` and not above it (the
fraction of seeds that cross, below against above, by a permutation test); the stall point ``z*`` (the
mean of ``z`` over the last quarter of runs that last several relaxation times ``1/(eta |q'(z*)|)``) to
``z_tol``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ghostsing.experiments.base import Experiment, ExperimentOutput
from ghostsing.experiments.laws import agreement_prediction
from ghostsing.validation import check_float, check_floats, check_int

__all__ = ["GhostNoiseTrapConfig", "run_ghost_noise_trap", "EXPERIMENTS"]


@dataclass(frozen=True)
class GhostNoiseTrapConfig:
    """``n`` SGD seeds of ``teacher`` (``reference`` or ``random:<seed>``, N = 1) from distance ``z0 - 1``
    beyond the end of its trap half (``|z| = 1``), for every rate of ``etas`` and skip strength
    ``alpha = ratio alpha_c(eta)`` for every ratio of ``ratios``; runs last ``t_factor`` times the longest
    of the predicted crossing time at the smallest ratio and the relaxation time at the stall points."""

    teacher: str = "reference"
    etas: tuple[float, ...] = (3e-3, 1e-2)
    ratios: tuple[float, ...] = (0.25, 0.5, 0.75, 0.9, 1.1, 1.3, 1.6, 2.5)
    n: int = 8
    z0: float = 2.0
    t_factor: float = 3.0
    tol: float = 0.15
    z_tol: float = 0.15
    seed: int = 0

    def __post_init__(self) -> None:
        from ghostsing.experiments.ghosts import _teacher

        _teacher(self.teacher)  # 'reference' or 'random:<seed>'
        check_floats("etas", self.etas, 0.0, 0.1, low_open=True)
        check_floats("ratios", self.ratios, 0.0, low_open=True)
        check_int("n", self.n, 2)
        check_float("z0", self.z0, 1.0, low_open=True)
        check_float("t_factor", self.t_factor, 1.0)
        check_float("tol", self.tol, 0.0, low_open=True)
        check_float("z_tol", self.z_tol, 0.0, low_open=True)
        check_int("seed", self.seed, 0)


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, flush=True)


def run_ghost_noise_trap(config: GhostNoiseTrapConfig, out_dir: Path, *, resume: bool = False,
                         progress: bool = True) -> ExperimentOutput:
    """Noise against skip drift on the trap half (module docstring)."""
    from scipy.optimize import brentq

    from ghostsing.analytic.ghost_fate import overlap_fate
    from ghostsing.experiments.ghosts import _teacher
    from ghostsing.experiments.predictions import difference_prediction
    from ghostsing.plots import save_figure
    from ghostsing.plots.ghost_sets import plot_noise_trap
    from ghostsing.simulate.ghost_noise import (
        crossing_times,
        free_coordinate_of,
        noise_drift_theory,
        predicted_passage,
    )
    from ghostsing.simulate.ghost_passage import line_starts
    from ghostsing.simulate.sgd import online_sgd_spec

    c = config
    label, spec = _teacher(c.teacher)
    fate = overlap_fate(spec)
    fit, v1 = fate.drift.fit, fate.drift.v1
    trap = next((sg for sg in fate.segments if sg.fate == "trap"), None)
    if trap is None:
        raise ValueError(f"teacher {c.teacher!r} has no trap half on its overlap line: {fate.table()}")
    z_end = trap.lo if np.isfinite(trap.lo) else trap.hi  # the end at |z| = 1
    side = float(np.sign(v1))  # the skip drift carries z away from z_end, into the trap half
    z0 = z_end + side * (c.z0 - 1.0)
    # q on the trap half with a small margin (the transverse Lyapunov problem is singular at z_end itself)
    ends = (z_end - 0.02 * side, z0 + 0.1 * side)
    q = noise_drift_theory(spec, fit, min(ends), max(ends))
    zs = np.linspace(z_end, z0, 401)
    qz = np.array([q(z) for z in zs])
    if np.any(qz * side >= 0):
        raise ValueError("the noise drift does not point to the segment end on the whole trap half; the "
                         "competition law does not apply")
    q_min = float(np.min(np.abs(qz)))
    v1a = abs(v1)
    ratios, etas = np.asarray(c.ratios, float), np.asarray(c.etas, float)
    E, R = etas.size, ratios.size
    tau = np.full((E, R, c.n), np.nan)
    z_late = np.full((E, R, c.n), np.nan)
    pred = np.full((E, R), np.nan)
    zstar = np.full((E, R), np.nan)
    alphas = np.zeros((E, R))
    rng = np.random.default_rng(c.seed)
    for e, eta in enumerate(etas):
        a_c, a_0 = eta * q_min / v1a, eta * abs(q(z0)) / v1a
        alphas[e] = ratios * a_c
        for r, al in enumerate(alphas[e]):
            pred[e, r] = predicted_passage(q, v1, z0, z_end, float(al), float(eta))
            if a_c < al < a_0:
                zstar[e, r] = brentq(lambda z, al=al, eta=eta: al * v1 + eta * q(z), z_end, z0)
        slope = np.max(np.abs(np.gradient(qz, zs)))  # |q'|: the relaxation rate at a stall is eta |q'|
        t_end = c.t_factor * max(pred[e, 0], 2.0 / (eta * slope))
        for r, al in enumerate(alphas[e]):
            s = spec.replace(alpha=float(al))
            th0 = line_starts(s, fit, z0, 1e-3, c.n, rng)
            first = c.seed + 1000 * e + 100 * r
            res = online_sgd_spec(s, th0, np.linspace(0.0, t_end, 400), lr=float(eta),
                                  seeds=list(range(first, first + c.n)))
            z = free_coordinate_of(res.theta)
            tau[e, r] = crossing_times(res.t, z, z_end)
            z_late[e, r] = z[:, -100:].mean(axis=1)
            _say(progress, f"[ghost-noise-trap] eta = {eta:g}, alpha = {al:.4g} ({ratios[r]:g} alpha_c): "
                           f"crossed {int(np.isfinite(tau[e, r]).sum())}/{c.n}, tau = "
                           f"{np.nanmean(tau[e, r]) if np.isfinite(tau[e, r]).any() else np.nan:.4g} "
                           f"(predicted {pred[e, r]:.4g}), late z = {np.mean(z_late[e, r]):.3f} "
                           f"(z* = {zstar[e, r]:.3f})")
    preds = []
    low = ratios <= 0.75
    ratio = (tau[:, low] / pred[:, low, None]).ravel()
    preds.append(agreement_prediction(
        "crossing time below alpha_c = linear response", ratio, 1.0, c.tol,
        f"SGD crossing time of z = {z_end:g} from z0 = {z0:g} on the trap half ({label}) equals "
        f"int dz / (alpha v1 + eta q(z)) with the derived q, for alpha <= 0.75 alpha_c, eta in {c.etas}, "
        f"within {c.tol:g}",
        seed=c.seed))
    below, above = ratios < 1.0, ratios > 1.0
    if below.any() and above.any():
        crossed = np.isfinite(tau).astype(float)
        preds.append(difference_prediction(
            "SGD leaves through the segment end below alpha_c, not above", crossed[:, below].ravel(),
            crossed[:, above].ravel(), +1,
            "E = fraction of seeds crossing z = 1 (alpha < alpha_c) - (alpha > alpha_c)",
            f"alpha_c = eta min|q| / |v1| = {q_min / v1a:.4f} eta (derived, {label}); the runs last "
            f"{c.t_factor:g} times the longest predicted time scale", seed=c.seed))
    stall = np.isfinite(zstar)
    if stall.any():
        preds.append(agreement_prediction(
            "stall point z* = noise-induced fixed point", (z_late[stall] - zstar[stall][:, None]).ravel(),
            0.0, c.z_tol,
            f"for alpha_c < alpha < alpha_0 = eta |q(z0)| / |v1| the mean z over the last quarter of the run "
            f"equals z*, alpha v1 + eta q(z*) = 0, within {c.z_tol:g}", relative=False, seed=c.seed))
    fig = plot_noise_trap(ratios, etas, tau, pred, z_late, zstar,
                          title=f"{label} teacher, trap half (z0 = {z0:g}): noise eta q(z) against skip "
                                f"drift alpha v1")
    summary = {"teacher": label, "v1": v1, "z_end": z_end, "z0": z0, "q_min": q_min,
               "alpha_c_over_eta": q_min / v1a, "alpha_0_over_eta": abs(q(z0)) / v1a,
               "alphas": alphas, "predicted": pred, "z_star": zstar,
               "crossed_fraction": np.isfinite(tau).mean(axis=2),
               "tau_mean": [[float(np.nanmean(t)) if np.isfinite(t).any() else None for t in row]
                            for row in tau],
               "z_late_mean": z_late.mean(axis=2)}
    md = ["| eta | alpha / alpha_c | alpha | crossed | tau (mean) | predicted | late z (mean) | z* |",
          "|---|---|---|---|---|---|---|---|"]
    for e, eta in enumerate(etas):
        for r, rt in enumerate(ratios):
            t = tau[e, r]
            md.append(f"| {eta:g} | {rt:g} | {alphas[e, r]:.4g} | {int(np.isfinite(t).sum())}/{c.n} | "
                      f"{np.nanmean(t) if np.isfinite(t).any() else float('nan'):.4g} | {pred[e, r]:.4g} | "
                      f"{np.mean(z_late[e, r]):.3f} | {zstar[e, r]:.3f} |")
    md += ["", f"{label} teacher: alpha_c = {q_min / v1a:.4f} eta and alpha_0 = {abs(q(z0)) / v1a:.4f} eta "
               f"(derived: |q| between the segment end z = {z_end:g} and z0 = {z0:g}, over |v1| = "
               f"{v1a:.6f})."]
    return ExperimentOutput(tuple(preds), save_figure(fig, out_dir, "ghost_noise_trap"),
                            {"etas": etas, "ratios": ratios, "alphas": alphas, "tau": tau, "predicted": pred,
                             "z_late": z_late, "z_star": zstar}, summary, "\n".join(md))


EXPERIMENTS: tuple[Experiment, ...] = (
    Experiment("ghost-noise-trap", "SGD noise against the skip drift on the trap half of a Milnor segment",
               "simulation", GhostNoiseTrapConfig, run_ghost_noise_trap,
               {"default": GhostNoiseTrapConfig(),
                "small": GhostNoiseTrapConfig(etas=(1e-2,), ratios=(0.5, 1.6), n=6)}),
)
