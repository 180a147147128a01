r"""Passages through the ghost of the overlap line, arrivals at traps, and where typical starts end.

Geometric definitions (no loss thresholds, which depend on the teacher):

* **passage times** from a start on the line at ``z0`` displaced by ``|u0| = eps``: ``tau_line``, the
  first time ``z`` reaches the boundary ``z_b`` of the segment, and ``tau_tube``, the first time
  ``|u| = |J_i - J_j|`` exceeds a tube radius ``delta > eps``.  On a passable ghost segment the
  first-order law is ``alpha tau_line -> (z_b - z0) / v1`` (:mod:`ghostsing.analytic.ghost_fate`); the
  exit from the tube after ``z_b`` adds ``~ (2 ln(delta / u_b) / (mu' v1 alpha))^(1/2)`` (``mu'`` the
  slope of the transverse rate at ``z_b``, ``u_b`` the offset of the slow manifold).
* **end state** of a trajectory at ``t_end``: ``global`` (loss within ``tol`` of the global minimum),
  ``trap`` (loss within ``tol`` of the trap's: the same function, one unit plus a linear term, reached
  as the overlap trap or with one unit's ``J_k = 0`` so that only its skip acts), ``line``
  (``|u| < delta``: still on the former line or its ghost), ``other``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit

from ghostsing.analytic.loss import derive
from ghostsing.analytic.manifold_coords import overlap
from ghostsing.analytic.minima import BestFit
from ghostsing.models import ModelSpec
from ghostsing.simulate.integrate import Event, Execution, StepControl, integrate


def tube_distance(spec: ModelSpec, pair: tuple[int, int] = (0, 1)):
    """An ``@njit`` function ``theta -> |J_i - J_j|`` for the flat parameter layout of ``spec``."""
    K, N = spec.K, spec.N
    a, b = K + pair[0] * N, K + pair[1] * N

    @njit(cache=False)
    def dist(theta):
        s = 0.0
        for n in range(N):
            d = theta[a + n] - theta[b + n]
            s += d * d
        return math.sqrt(s)

    return dist


def line_starts(spec: ModelSpec, fit: BestFit, z0: float, eps: float, n: int,
                rng: np.random.Generator, jitter: float = 1e-3, pair: tuple[int, int] = (0, 1)) -> np.ndarray:
    """``n`` independent starts near the former line: ``xi = (theta'* + jitter g, z0, eps d)``.

    ``g`` standard normal, ``d`` a uniform random unit vector (a random sign for N = 1), in the overlap
    chart of ``pair``; rows in flat ``theta`` order.
    """
    if not (eps > 0 and math.isfinite(eps)):
        raise ValueError(f"eps={eps}; allowed: a finite float > 0")
    ch = overlap(spec, *pair)
    out = np.empty((n, spec.n_params))
    for k in range(n):
        d = rng.normal(size=spec.N)
        d /= np.linalg.norm(d)
        parent = fit.theta + jitter * rng.normal(size=fit.theta.size)
        out[k] = ch.to_theta(np.concatenate([parent, [z0], eps * d]))
    return out


def free_coordinate(spec: ModelSpec, pair: tuple[int, int] = (0, 1)):
    """An ``@njit`` function ``theta -> z = (w_i - w_j)/(w_i + w_j)`` (the overlap chart's free
    coordinate)."""
    i, j = pair

    @njit(cache=False)
    def z(theta):
        return (theta[i] - theta[j]) / (theta[i] + theta[j])

    return z


@dataclass(frozen=True, eq=False)
class PassageRun:
    """Passage times for ``alphas[a]`` and independent starts ``r`` (NaN: no passage by ``t_end[a]``).

    tau_line[a, r] : first time ``z`` reaches the segment's boundary ``z_b``;
    tau_tube[a, r] : first time ``|u| = |J_i - J_j|`` exceeds ``radius`` (the trajectory leaves the line);
    C : the first-order prediction ``alpha tau_line -> C = (z_b - z0) / v1``.
    """

    alphas: np.ndarray
    tau_line: np.ndarray
    tau_tube: np.ndarray
    t_end: np.ndarray
    z0: float
    z_exit: float
    eps: float
    radius: float
    C: float


def passage_times(spec: ModelSpec, fit: BestFit, z0: float, z_exit: float, C: float,
                  alphas: Sequence[float], n_starts: int = 6, eps: float = 1e-3, radius: float = 0.1,
                  seed: int = 0, pair: tuple[int, int] = (0, 1), rtol: float = 1e-9, atol: float = 1e-12,
                  max_step: float = 2.0) -> PassageRun:
    """Passage times from starts on the former line at ``z0`` for each ``alpha`` (module docstring).

    First leg: integrate to the crossing of ``z = z_exit`` (terminal event); second leg: from there to
    the exit from the tube ``|u| = radius`` (terminal event).  ``C`` is the predicted ``alpha tau_line``
    (:meth:`~ghostsing.analytic.ghost_fate.Segment.passage_alpha_tau`); ``t_end = 10 |C| / alpha + 2000``.

    ``max_step`` must resolve the transverse instability (``max_step * mu`` of order one at most on the
    repelling part of the line): an L-stable stiff method (Rosenbrock, Rodas5P) taking steps with
    ``h mu >> 1`` damps a growing mode (its stability function tends to 0 at infinity), so a trajectory
    that follows the slow manifold into a repelling segment with large steps is carried along it instead
    of leaving — a numerical artefact that no local error estimate sees while ``|u|`` is below ``atol``.
    """
    if not 0 < eps < radius:
        raise ValueError(f"eps={eps}, radius={radius}; allowed: 0 < eps < radius")
    rng = np.random.default_rng(seed)
    dist = tube_distance(spec, pair)
    zfun = free_coordinate(spec, pair)
    direction = 1 if z_exit > z0 else -1
    al = np.asarray(alphas, dtype=np.float64)
    tau_line = np.full((al.size, n_starts), np.nan)
    tau_tube = np.full((al.size, n_starts), np.nan)
    t_end = 10 * abs(C) / al + 2000.0
    opts = {"rtol": rtol, "atol": atol, "method": "auto", "control": StepControl(max_step=max_step)}
    for k, a in enumerate(al):
        f = derive(spec.replace(alpha=float(a))).compile()
        th0 = line_starts(spec, fit, z0, eps, n_starts, rng, pair=pair)
        sol = integrate(f, th0, np.array([0.0, t_end[k]]),
                        events=[Event(levels=[z_exit], fn=zfun, direction=direction, terminal=True)], **opts)
        tau_line[k] = sol.events[0][:, 0]
        for r in np.flatnonzero(np.isfinite(tau_line[k])):
            leg = integrate(f, sol.y_stop[r], np.array([t_end[k]]), t0=float(tau_line[k, r]),
                            events=[Event(levels=[radius], fn=dist, direction=1, terminal=True)], **opts)
            tau_tube[k, r] = leg.events[0][0, 0]
    return PassageRun(al, tau_line, tau_tube, t_end, float(z0), float(z_exit), float(eps), float(radius),
                      float(C))


@dataclass(frozen=True, eq=False)
class EndStates:
    """Where trajectories are at ``t_end``: labels (n,), final loss (n,), |u| (n,) and alpha z (n,)."""

    labels: np.ndarray
    loss: np.ndarray
    u_norm: np.ndarray
    alpha_z: np.ndarray
    theta: np.ndarray

    def fractions(self) -> dict[str, float]:
        return {k: float(np.mean(self.labels == k)) for k in ("global", "trap", "line", "other")}


def classify_ends(spec: ModelSpec, theta0: np.ndarray, t_end: float, global_loss: float,
                  trap_loss: float | None, radius: float = 0.05, tol: float = 1e-6,
                  pair: tuple[int, int] = (0, 1), rtol: float = 1e-8) -> EndStates:
    """Integrate ``theta0`` (n, P) to ``t_end`` and label each end state (module docstring)."""
    f = derive(spec).compile()
    sol = integrate(f, np.ascontiguousarray(theta0), np.array([0.0, t_end]), rtol=rtol, atol=1e-10,
                    method="auto853", execution=Execution(simd=True))
    th = sol.y[:, -1]
    w, J = spec.split(th)
    i, j = pair
    u = np.linalg.norm(J[:, i] - J[:, j], axis=1)
    L = sol.loss[:, -1] if np.all(np.isfinite(sol.loss[:, -1])) else np.array([f.loss(np.ascontiguousarray(x))
                                                                                for x in th])
    with np.errstate(divide="ignore", invalid="ignore"):
        az = spec.alpha * (w[:, i] - w[:, j]) / (w[:, i] + w[:, j])
    labels = np.full(th.shape[0], "other", dtype=object)
    labels[u < radius] = "line"
    if trap_loss is not None:  # the trap's function (one unit + a linear term), as an overlap or with J_k = 0
        labels[np.abs(L - trap_loss) < tol] = "trap"
    labels[np.abs(L - global_loss) < tol] = "global"
    return EndStates(labels.astype(str), L, u, az, th)


# ====================================================================== the degenerate (symmetric) passage
def degenerate_rtol(alpha: float) -> float:
    """The relative tolerance :func:`degenerate_passage_times` uses at ``alpha`` (``3e-6``, ``1e-5`` below
    ``alpha = 8e-6``): loose, because the local error estimate is limited by rounding, not by accuracy.

    Why: on the slow manifold ``w_i ~ -w_j ~ z w*/2`` grows to ``kappa w*/(2 alpha)`` (1546 at
    ``alpha = 1e-5``), and the gradient in ``J_i`` is a sum of terms of size ``w_i^2`` that cancel to
    ``O(w_i)``, so each flow evaluation carries a rounding noise ``~ eps w_i^2`` (``eps = 2.2e-16``).  The
    error estimate of every step sees ``h eps w_i^2``; with a fixed tolerance the accepted step falls as
    ``1 / z^2`` (measured with Rodas5P at ``alpha = 1e-4``: mean step 6.8e5 at ``z = 5``, 1.1e4 at
    ``z = 68``; halving it needs a tolerance twice as tight, i.e. the step is proportional to rtol, the
    signature of noise, not of truncation error), and at ``alpha = 1e-5`` with rtol ``1e-9`` the budget
    of 10^7 steps is spent by ``t ~ 1e9`` of the ``1.8e12`` needed.  The noise does not accumulate: the
    transverse coordinate it kicks relaxes at the rate ``(w_i - w_j)^2``, so a loose tolerance gives the
    same trajectory (``tau alpha^2`` at ``alpha = 1e-4``: 115.0737 with rtol 1e-6 and 1e-7 and the 115.07
    of rtol 1e-9; at ``alpha = 1e-5``: 176.6832 with rtol 3e-6 and 176.6836 with 1e-6).
    """
    return 3e-6 if alpha >= 8e-6 else 1e-5


@dataclass(frozen=True, eq=False)
class DegenerateRun:
    """Escape times of the symmetric teacher for ``alphas[a]`` and starts ``r``.

    tau[a, r] : first time the loss falls below ``(1 - rel_band) L*`` (NaN: not by ``400 / alpha^2``);
    c_geo[a, r] : ``ln(z_2 / z_1) / (alpha^2 (t_2 - t_1))`` between the two ``z_levels`` (NaN where
    ``alpha z_2 >= 0.05``); rtol[a] : the tolerance used; tau_check[a] : the first start again at
    ``rtol / 3`` (the integration error of ``tau``); steps[a, r] : accepted steps.
    """

    alphas: np.ndarray
    tau: np.ndarray
    c_geo: np.ndarray
    rtol: np.ndarray
    tau_check: np.ndarray
    steps: np.ndarray
    z0: float
    eps: float
    z_levels: tuple[float, float]


def degenerate_passage_times(alphas: Sequence[float], n_starts: int = 4, z0: float = 2.0,
                             eps: float = 1e-3, rel_band: float = 0.5,
                             z_levels: tuple[float, float] = (4.0, 20.0), seed: int = 0, check: bool = True,
                             rtol: float | None = None) -> DegenerateRun:
    """Escape times from the former overlap line of the symmetric teacher (``v = (1, 1)``, ``B = I``,
    identity skips; the doubly degenerate case ``v1 = 0``), starts at ``z0`` with ``|u0| = eps`` and
    ``u.J* > 0`` (the escape branch), Rodas5P at :func:`degenerate_rtol` (or ``rtol``), ``atol = 1e-12``.

    ``check``: integrate the first start again at a third of the tolerance (``tau_check``).
    """
    from ghostsing.simulate import symmetric as ex
    from ghostsing.simulate.options import Stop

    if not (eps > 0 and math.isfinite(eps)):
        raise ValueError(f"eps={eps}; allowed: a finite float > 0")
    rng = np.random.default_rng(seed)
    level = ex.L_STAR * (1 - rel_band)
    zfun = free_coordinate(ex.symmetric_spec(0.0))
    al = np.asarray(alphas, dtype=np.float64)
    if np.any(al <= 0):
        raise ValueError(f"alphas={alphas!r}; allowed: floats > 0")
    tau = np.full((al.size, n_starts), np.nan)
    c_geo = np.full((al.size, n_starts), np.nan)
    steps = np.zeros((al.size, n_starts), dtype=np.int64)
    rt = np.array([rtol if rtol is not None else degenerate_rtol(float(a)) for a in al])
    tau_check = np.full(al.size, np.nan)
    for k, a in enumerate(al):
        f = ex.compiled(ex.symmetric_spec(float(a)))
        th0 = ex.overlap_starts(n_starts, eps, z0, rng)
        u = th0[:, 2:4] - th0[:, 4:6]
        flip = u @ ex.J_STAR < 0
        th0[flip, 2:] = 2 * np.tile(ex.J_STAR, 2) - th0[flip, 2:]
        events = [Event(levels=[level], direction=-1, terminal=True),
                  Event(levels=list(z_levels), fn=zfun, direction=1)]
        tt = np.array([0.0, 400.0 / a**2])
        sol = integrate(f, th0, tt, rtol=float(rt[k]), atol=1e-12, method="rodas5p",
                        stop=Stop(max_steps=200_000_000), events=events)
        tau[k] = sol.events[0][:, 0]
        steps[k] = sol.n_accepted
        if a * z_levels[1] < 0.05:
            dt = sol.events[1][:, 1] - sol.events[1][:, 0]
            c_geo[k] = np.log(z_levels[1] / z_levels[0]) / (a**2 * dt)
        if check:
            chk = integrate(f, th0[:1], tt, rtol=float(rt[k]) / 3, atol=1e-12, method="rodas5p",
                            stop=Stop(max_steps=400_000_000), events=events[:1])
            tau_check[k] = chk.events[0][0, 0]
    return DegenerateRun(al, tau, c_geo, rt, tau_check, steps, float(z0), float(eps), tuple(z_levels))
