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
from ghostsing.analytic.manifold_fit import BestFit
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
