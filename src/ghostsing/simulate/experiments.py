r"""Runnable simulation experiments: phase portraits, plateau statistics, loss curves, SGD vs ODE.

Each ``run_*`` function builds its data from scratch (generated Numba flows of
:mod:`ghostsing.analytic`, integrated by :func:`ghostsing.simulate.integrate`), draws its figure with
:mod:`ghostsing.plots`, writes PNG + data (NPZ/CSV) + JSON metadata (spec, seed, version) atomically into
``out_dir`` and returns the list of written paths.  :data:`EXPERIMENTS` maps the names used by
``ghostsing simulate --experiment NAME`` to these functions (all take ``out_dir``, ``seed`` and ``n``).

The model (unless stated otherwise) is the two-unit erf student learning the symmetric two-unit teacher
``y = g(x_1) + g(x_2)`` (``K = M = N = 2``, ``v = (1, 1)``, ``B = I``), with identity skips
``s_i = e_i`` of strength alpha.  Its best one-unit fit is ``w* = 2``, ``J* = (1, 1)/sqrt 6`` with loss
``L_s = 1/3 - (4/pi) arcsin(1/4) = 0.0116108`` (the symmetric plateau of Saad & Solla).

Reduced planes and the relaxed slice
------------------------------------
Overlap of units 1, 2 (chart of :mod:`ghostsing.analytic.manifold_coords`)::

    w_1 = w (1 + z)/2,  w_2 = w (1 - z)/2,  J_1 = Jbar + (1 - z)/2 u,  J_2 = Jbar - (1 + z)/2 u,

with ``u = r e`` along a fixed unit vector ``e`` (``r = |u|``).  Elimination of unit 2: the plane
``(w_2, |J_2|)`` with ``J_2 = r e`` and unit 1 ``q = (w_1, J_1)``.  The *fast* coordinates ``q``
(``(w, Jbar)`` for the overlap, ``(w_1, J_1)`` for elimination) relax on a time scale ~1, much faster
than the slow ones; each point ``(a, b)`` of the plane is therefore drawn at the *relaxed slice*
``q*(a, b) = argmin_q L(theta(q, a, b))`` (adiabatic elimination; found by BFGS with continuation along
the grid).  There the projected velocity is, by the chain rule,

    dz/dt = ((w_1' - w_2') - z (w_1' + w_2')) / w,   d|u|/dt = e . (J_1' - J_2'),
    dw_2/dt = w_2',                                  d|J_2|/dt = e . J_2',

with ``theta' = -grad L(theta)`` the full flow, and the colour is ``|theta'|``.  At alpha = 0 the line
``{r = 0}`` of the overlap plane is a line of critical points (``|theta'| = 0``); its Milnor-attractor
segment is where the largest eigenvalue of the flow's Jacobian is ``<= tol`` (all transverse directions
attract).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp
from scipy.optimize import minimize

from ghostsing.analytic import manifold_coords
from ghostsing.experiments import ghosts as ghost_experiments
from ghostsing.models import ModelSpec
from ghostsing.simulate.plateau import (
    PlateauConfig,
    detect_plateaus,
    fit_log_law,
    summarize,
    transverse_rate,
)

__all__ = [
    "EXPERIMENTS", "OverlapPlane", "EliminationPlane", "symmetric_spec", "one_unit_fit", "compiled",
    "relaxed_grid", "attracting_segments", "overlap_portrait_data", "elimination_portrait_data",
    "escape_times", "run_portraits", "run_elimination_portraits", "run_plateau_vs_epsilon",
    "run_loss_curves", "run_sgd_vs_ode",
]

#: Best one-unit fit of the symmetric teacher (closed form, see the module docstring).
W_STAR = 2.0
J_STAR = np.array([1.0, 1.0]) / math.sqrt(6.0)
L_STAR = 1.0 / 3.0 - (4.0 / math.pi) * math.asin(0.25)


def _progress(iterable, desc: str, total: int | None = None, enabled: bool = True):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False)


def symmetric_spec(alpha: float = 0.0) -> ModelSpec:
    """The two-unit erf student of the symmetric two-unit teacher, identity skips of strength alpha."""
    return ModelSpec(K=2, M=2, N=2, activation="erf", alpha=alpha)


def compiled(spec: ModelSpec):
    """``derive(spec).compile()`` (generated Numba loss, flow, Jacobian; cached on disk)."""
    from ghostsing.analytic import derive

    return derive(spec).compile()


def one_unit_fit(spec: ModelSpec, seed: int = 0) -> tuple[float, np.ndarray, float]:
    """Best one-unit plain fit ``(w*, J*, L*) = argmin L_1`` of ``spec``'s teacher (K = 2 students), from
    :func:`ghostsing.analytic.manifold_fit.best_fit` on the parent spec (odd g: signed so w* >= 0)."""
    from ghostsing.analytic.manifold_coords import parent_spec
    from ghostsing.analytic.manifold_fit import best_fit

    if spec.K != 2:
        raise ValueError(f"one_unit_fit needs a K=2 student, got K={spec.K}; allowed: K=2")
    fit = best_fit(parent_spec(spec), seed=seed)
    return float(fit.theta[0]), np.array(fit.theta[1:]), float(fit.loss)


# ------------------------------------------------------------------------------------------ planes
def _unit(e: Sequence[float], N: int) -> np.ndarray:
    e = np.asarray(e, dtype=np.float64)
    if e.shape != (N,) or not np.all(np.isfinite(e)) or np.linalg.norm(e) == 0:
        raise ValueError(f"direction e={e.tolist()} is not allowed; allowed: a non-zero vector of length {N}")
    return e / np.linalg.norm(e)


def _parent_maps(chart: manifold_coords.Chart) -> tuple[Callable, Callable]:
    """Numeric ``theta = psi(xi)`` and ``d theta / d parent`` of a chart (lambdified from its SymPy maps)."""
    coords = list(chart.coords)
    return (sp.lambdify(coords, list(chart.psi), "numpy"),
            sp.lambdify(coords, chart.dpsi[:, : chart.n_parent], "numpy"))


@dataclass(frozen=True)
class OverlapPlane:
    """The ``(z, |u|)`` plane of the overlap of units 1 and 2 of a K = 2 student (module docstring).

    ``q = (w, Jbar)`` (1 + N fast coordinates); ``e`` the direction of ``u = J_1 - J_2``.
    """

    spec: ModelSpec
    e: np.ndarray
    xlabel: str = r"$z = (w_1 - w_2)/(w_1 + w_2)$"
    ylabel: str = r"$|u| = |J_1 - J_2|$"

    def __post_init__(self) -> None:
        if self.spec.K != 2:
            raise ValueError(f"OverlapPlane needs K=2, got K={self.spec.K}; allowed: K=2")
        object.__setattr__(self, "e", _unit(self.e, self.spec.N))

    @property
    def n_fast(self) -> int:
        return 1 + self.spec.N

    @cached_property
    def _maps(self) -> tuple[Callable, Callable]:
        return _parent_maps(manifold_coords.overlap(self.spec, 0, 1))

    def _xi(self, q: np.ndarray, a: float, b: float) -> np.ndarray:
        # the overlap chart's coordinates: parent (w, Jbar), free z, transverse u
        return np.concatenate([q, [a], b * self.e])

    def theta(self, q: np.ndarray, a: float, b: float) -> np.ndarray:
        """``theta(q, z=a, |u|=b)`` (flat ModelSpec order), by the overlap chart's map ``psi``."""
        return np.asarray(self._maps[0](*self._xi(q, a, b)), dtype=np.float64)

    def dtheta_dq(self, a: float, b: float) -> np.ndarray:
        """``d theta / d q`` (P x (1 + N)); theta is affine in q at fixed (a, b)."""
        return np.asarray(self._maps[1](*self._xi(np.zeros(self.n_fast), a, b)), dtype=np.float64)

    def coords(self, theta: np.ndarray) -> np.ndarray:
        """``(z, |u|)`` of states ``theta`` (..., P) -> (..., 2)."""
        theta = np.asarray(theta)
        N = self.spec.N
        w1, w2 = theta[..., 0], theta[..., 1]
        u = theta[..., 2:2 + N] - theta[..., 2 + N:]
        with np.errstate(all="ignore"):
            z = (w1 - w2) / (w1 + w2)
        return np.stack([z, np.linalg.norm(u, axis=-1)], axis=-1)

    def velocity(self, theta: np.ndarray, F: np.ndarray) -> tuple[float, float]:
        """``(dz/dt, d|u|/dt)`` from the full flow ``F = theta'`` at ``theta`` (along ``e``)."""
        N = self.spec.N
        w1, w2 = theta[0], theta[1]
        w = w1 + w2
        z = (w1 - w2) / w
        zdot = ((F[0] - F[1]) - z * (F[0] + F[1])) / w
        rdot = float(self.e @ (F[2:2 + N] - F[2 + N:]))
        return float(zdot), rdot


@dataclass(frozen=True)
class EliminationPlane:
    """The ``(w_2, |J_2|)`` plane of unit 2 of a K = 2 student; ``q = (w_1, J_1)``, ``J_2 = r e``."""

    spec: ModelSpec
    e: np.ndarray
    xlabel: str = r"$w_2$"
    ylabel: str = r"$|J_2|$"

    def __post_init__(self) -> None:
        if self.spec.K != 2:
            raise ValueError(f"EliminationPlane needs K=2, got K={self.spec.K}; allowed: K=2")
        object.__setattr__(self, "e", _unit(self.e, self.spec.N))

    @property
    def n_fast(self) -> int:
        return 1 + self.spec.N

    @cached_property
    def _maps(self) -> tuple[Callable, Callable]:
        return _parent_maps(manifold_coords.elimination(self.spec, 1, "w"))

    def _xi(self, q: np.ndarray, a: float, b: float) -> np.ndarray:
        # the {w_2 = 0} chart's coordinates: parent (w_1, J_1), free J_2, transverse w_2
        return np.concatenate([q, b * self.e, [a]])

    def theta(self, q: np.ndarray, a: float, b: float) -> np.ndarray:
        """``theta(q, w_2=a, |J_2|=b)`` (flat ModelSpec order), by the elimination chart's map ``psi``."""
        return np.asarray(self._maps[0](*self._xi(q, a, b)), dtype=np.float64)

    def dtheta_dq(self, a: float, b: float) -> np.ndarray:
        """``d theta / d q`` (P x (1 + N)); theta is affine in q at fixed (a, b)."""
        return np.asarray(self._maps[1](*self._xi(np.zeros(self.n_fast), a, b)), dtype=np.float64)

    def coords(self, theta: np.ndarray) -> np.ndarray:
        theta = np.asarray(theta)
        N = self.spec.N
        return np.stack([theta[..., 1], np.linalg.norm(theta[..., 2 + N:], axis=-1)], axis=-1)

    def velocity(self, theta: np.ndarray, F: np.ndarray) -> tuple[float, float]:
        N = self.spec.N
        return float(F[1]), float(self.e @ F[2 + N:])


def _relax(plane, f, a: float, b: float, q0: np.ndarray, gtol: float) -> np.ndarray:
    M = plane.dtheta_dq(a, b)

    def fun(q):
        th = np.ascontiguousarray(plane.theta(q, a, b))
        return f.loss(th), -(M.T @ f.flow(th))

    r = minimize(fun, q0, jac=True, method="BFGS", options={"gtol": gtol, "maxiter": 500})
    return np.asarray(r.x)


def relaxed_grid(
    plane, f, xs: np.ndarray, ys: np.ndarray, q0: np.ndarray, gtol: float = 1e-11, progress: bool = False,
) -> dict[str, np.ndarray]:
    """Velocities and speed on the relaxed slice over the grid ``xs`` x ``ys`` (module docstring).

    Returns arrays ``vx, vy, speed`` of shape (ny, nx), ``q`` (ny, nx, n_fast) and ``theta`` (ny, nx, P).
    Continuation: columns are swept outwards from the one nearest to x = 0; the first row of a column
    starts from its neighbour's first row, every other point from the point below it.
    """
    xs = np.asarray(xs, dtype=np.float64)
    ys = np.asarray(ys, dtype=np.float64)
    ny, nx = ys.size, xs.size
    P = plane.spec.n_params
    out = {"vx": np.empty((ny, nx)), "vy": np.empty((ny, nx)), "speed": np.empty((ny, nx)),
           "q": np.empty((ny, nx, plane.n_fast)), "theta": np.empty((ny, nx, P))}
    # continuation: sweep the columns from the one nearest to x = 0 outwards, on each side
    start = int(np.argmin(np.abs(xs)))
    columns = list(range(start, nx)) + list(range(start - 1, -1, -1))
    q_col0: dict[int, np.ndarray] = {}
    for ci in _progress(columns, "relaxed slice", enabled=progress):
        neighbour = ci - 1 if ci > start else ci + 1
        q = q_col0.get(neighbour, np.asarray(q0, dtype=np.float64))
        for ri in range(ny):
            q = _relax(plane, f, xs[ci], ys[ri], q, gtol)
            if ri == 0:
                q_col0[ci] = q
            th = np.ascontiguousarray(plane.theta(q, xs[ci], ys[ri]))
            F = f.flow(th)
            out["vx"][ri, ci], out["vy"][ri, ci] = plane.velocity(th, F)
            out["speed"][ri, ci] = float(np.linalg.norm(F))
            out["q"][ri, ci] = q
            out["theta"][ri, ci] = th
    return out


def fixed_grid(kind: str, spec: ModelSpec, f, xs: np.ndarray, ys: np.ndarray, e: np.ndarray) -> dict:
    """The *fixed* slice (fast coordinates held at the plain best one-unit fit) from the manifolds
    module: :func:`ghostsing.analytic.milnor.overlap_plane_flow` / ``elimination_plane_flow`` (unit 2).
    Returns ``vx, vy, speed`` (ny, nx) like :func:`relaxed_grid`."""
    from ghostsing.analytic import milnor

    if kind == "overlap":
        pf = milnor.overlap_plane_flow(spec, xs, ys, direction=e, compiled=f)
    else:
        pf = milnor.elimination_plane_flow(spec, xs, ys, unit=1, direction=e, compiled=f)
    return {"vx": pf.dx, "vy": pf.dy, "speed": pf.speed, "q_fixed": pf.theta_fixed}


def attracting_segments(xs: np.ndarray, ys: np.ndarray, rates: np.ndarray, tol: float) -> list[np.ndarray]:
    """Polylines of the points ``(xs[k], ys[k])`` whose largest Jacobian eigenvalue ``rates[k] <= tol``."""
    mask = np.asarray(rates) <= tol
    segs, k = [], 0
    while k < mask.size:
        if mask[k]:
            j = k
            while j + 1 < mask.size and mask[j + 1]:
                j += 1
            if j > k:
                segs.append(np.stack([xs[k:j + 1], ys[k:j + 1]], axis=1))
            k = j + 1
        else:
            k += 1
    return segs


def _trajectories(plane, f, starts: np.ndarray, t_end: float, rtol: float = 1e-8) -> list[np.ndarray]:
    from ghostsing.simulate import integrate, log_grid

    sol = integrate(f, np.atleast_2d(starts), log_grid(t_end, 400, t_first=1e-2), rtol=rtol, atol=1e-11,
                    method="auto")
    return [plane.coords(sol.y[k]) for k in range(sol.y.shape[0])]


def _grid(slice_: Any, kind: str, plane, spec: ModelSpec, f, xs, ys, q0, progress: bool) -> dict:
    if slice_ == "relaxed":
        return relaxed_grid(plane, f, xs, ys, q0, progress=progress)
    if slice_ == "fixed":
        g = fixed_grid(kind, spec, f, xs, ys, plane.e)
        g["q"] = np.broadcast_to(g["q_fixed"], (ys.size, xs.size, g["q_fixed"].size))
        return g
    raise ValueError(f"slice_={slice_!r} is not known; allowed: 'relaxed', 'fixed'")


def overlap_portrait_data(
    alpha: float,
    grid: int = 41,
    z_range: tuple[float, float] = (-3.0, 3.0),
    r_max: float = 0.8,
    e: Sequence[float] = (1.0, -1.0),
    traj_starts: Sequence[tuple[float, float]] = ((2.5, 0.05), (1.6, 0.3), (-2.2, 0.15), (0.3, 0.02),
                                                   (-0.6, 0.02)),
    t_end: float = 3000.0,
    milnor_tol: float = 1e-7,
    line_points: int = 241,
    slice_: str = "relaxed",
    progress: bool = False,
):
    """Arrays of the overlap portrait of the symmetric model at skip strength ``alpha``.

    ``slice_="relaxed"`` (default): fast coordinates ``(w, Jbar)`` minimised at each point;
    ``"fixed"``: held at the plain best one-unit fit (the manifolds module's slice).

    Returns ``(PortraitData, extra)`` where ``extra`` holds the grid arrays, the Milnor interval (at
    alpha = 0) and the largest Jacobian eigenvalue along ``|u| = 0``.
    """
    from ghostsing.plots.portraits import PortraitData

    spec = symmetric_spec(alpha)
    f = compiled(spec)
    plane = OverlapPlane(spec, np.asarray(e, dtype=np.float64))
    xs = np.linspace(*z_range, grid)
    ys = np.linspace(0.0, r_max, max(grid * 2 // 3, 3))
    g = _grid(slice_, "overlap", plane, spec, f, xs, ys, np.concatenate([[W_STAR], J_STAR]), progress)
    # largest eigenvalue along the line r = 0 (on a finer z grid, relaxed)
    zf = np.linspace(*z_range, line_points)
    line = relaxed_grid(plane, f, zf, np.array([0.0]), np.concatenate([[W_STAR], J_STAR]))
    rates = np.array([transverse_rate(f.jacobian(np.ascontiguousarray(th))) for th in line["theta"][0]])
    line_speed = line["speed"][0]
    singular, milnor, interval = [], [], []
    if alpha == 0.0:
        singular = [np.stack([zf, np.zeros_like(zf)], axis=1)]
        milnor = attracting_segments(zf, np.zeros_like(zf), rates, milnor_tol)
        interval = [(float(s[0, 0]), float(s[-1, 0])) for s in milnor]
    starts = []
    for a, b in traj_starts:
        k = int(np.argmin(np.abs(xs - a)))
        q = _relax(plane, f, a, b, g["q"][0, k], 1e-11) if slice_ == "relaxed" else g["q"][0, k]
        starts.append(plane.theta(q, a, b))
    trajs = _trajectories(plane, f, np.array(starts), t_end)
    title = "plain network (α = 0)" if alpha == 0 else f"with skips (α = {alpha:g})"
    data = PortraitData(xs, ys, g["vx"], g["vy"], g["speed"], title=title, xlabel=plane.xlabel,
                        ylabel=plane.ylabel, singular=singular, milnor=milnor, trajectories=trajs)
    extra = {"z_line": zf, "rate_line": rates, "speed_line": line_speed, "milnor_interval": interval,
             "spec": spec.to_dict(), "e": plane.e, "starts": np.array(starts)}
    return data, extra


def elimination_portrait_data(
    alpha: float,
    grid: int = 41,
    w_range: tuple[float, float] = (-1.5, 1.5),
    r_max: float = 1.5,
    e: Sequence[float] = (1.0, -1.0),
    traj_starts: Sequence[tuple[float, float]] = ((1.2, 0.1), (-1.0, 0.3), (0.05, 1.3), (-0.1, 0.8),
                                                   (0.8, 1.2)),
    t_end: float = 3000.0,
    milnor_tol: float = 1e-7,
    speed_tol: float = 1e-6,
    slice_: str = "relaxed",
    line_points: int = 121,
    progress: bool = False,
):
    """Arrays of the elimination portrait ``(w_2, |J_2|)`` of the symmetric model at skip ``alpha``.

    The singular manifolds drawn at alpha = 0 are ``{w_2 = 0}`` and ``{J_2 = 0}``; the Milnor segments are
    the parts where the relaxed flow is critical (``|theta'| < speed_tol``) and the largest Jacobian
    eigenvalue is ``<= milnor_tol``.
    """
    from ghostsing.plots.portraits import PortraitData

    spec = symmetric_spec(alpha)
    f = compiled(spec)
    plane = EliminationPlane(spec, np.asarray(e, dtype=np.float64))
    xs = np.linspace(*w_range, grid)
    ys = np.linspace(0.0, r_max, max(grid * 2 // 3, 3))
    q0 = np.concatenate([[W_STAR], J_STAR])
    g = _grid(slice_, "elimination", plane, spec, f, xs, ys, q0, progress)
    singular, milnor = [], []
    lines = {}
    if alpha == 0.0:
        rf = np.linspace(0.0, r_max, line_points)
        wf = np.linspace(*w_range, line_points)
        vert = relaxed_grid(plane, f, np.array([0.0]), rf, q0)
        horiz = relaxed_grid(plane, f, wf, np.array([0.0]), q0)
        for name, (px, py, th, sp_) in {
            "w2=0": (np.zeros_like(rf), rf, vert["theta"][:, 0], vert["speed"][:, 0]),
            "J2=0": (wf, np.zeros_like(wf), horiz["theta"][0], horiz["speed"][0]),
        }.items():
            rates = np.array([transverse_rate(f.jacobian(np.ascontiguousarray(t))) for t in th])
            eff = np.where(sp_ < speed_tol, rates, np.inf)
            singular.append(np.stack([px, py], axis=1))
            milnor += attracting_segments(px, py, eff, milnor_tol)
            lines[name] = {"x": px, "y": py, "rate": rates, "speed": sp_}
    starts = []
    for a, b in traj_starts:
        k = int(np.argmin(np.abs(xs - a)))
        kk = int(np.argmin(np.abs(ys - b)))
        q = _relax(plane, f, a, b, g["q"][kk, k], 1e-11) if slice_ == "relaxed" else g["q"][kk, k]
        starts.append(plane.theta(q, a, b))
    trajs = _trajectories(plane, f, np.array(starts), t_end)
    title = "plain network (α = 0)" if alpha == 0 else f"with skips (α = {alpha:g})"
    data = PortraitData(xs, ys, g["vx"], g["vy"], g["speed"], title=title, xlabel=plane.xlabel,
                        ylabel=plane.ylabel, singular=singular, milnor=milnor, trajectories=trajs)
    return data, {"lines": lines, "spec": spec.to_dict(), "e": plane.e, "starts": np.array(starts)}


# ------------------------------------------------------------------------------------------ plateaus
def overlap_starts(
    n: int, eps: float, z0: float | np.ndarray, rng: np.random.Generator, w: float = W_STAR,
    Jbar: np.ndarray = J_STAR,
) -> np.ndarray:
    """``n`` starts on the overlap line at ``z0`` (a float or ``n`` floats; ``(w, Jbar)`` = best one-unit
    fit) plus a transverse ``u = eps d``, ``d`` uniform on the unit sphere (``theta`` rows, ModelSpec
    order): ``w_1 = w(1+z)/2, w_2 = w(1-z)/2, J_1 = Jbar + (1-z)/2 u, J_2 = Jbar - (1+z)/2 u``."""
    if not (eps > 0 and math.isfinite(eps)):
        raise ValueError(f"eps={eps} is not allowed; allowed: a finite float > 0")
    N = Jbar.size
    d = rng.normal(size=(n, N))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    u = eps * d
    z = np.broadcast_to(np.asarray(z0, dtype=np.float64), (n,))[:, None]
    w1, w2 = w * (1 + z) / 2, w * (1 - z) / 2
    J1 = Jbar[None, :] + (1 - z) / 2 * u
    J2 = Jbar[None, :] - (1 + z) / 2 * u
    return np.concatenate([w1, w2, J1, J2], axis=1)


def escape_times(f, theta0: np.ndarray, level: float, t_end: float, rtol: float = 1e-9,
                 atol: float = 1e-12, n_save: int = 200):
    """First times at which ``L`` falls below ``level`` (event on the dense output; nan if never before
    ``t_end``), with the saved ensemble (log-spaced grid of ``n_save`` points plus t = 0)."""
    from ghostsing.simulate import Event, integrate, log_grid

    sol = integrate(f, theta0, log_grid(t_end, n_save, t_first=1e-2), rtol=rtol, atol=atol, method="auto",
                    events=[Event(levels=[level], direction=-1)])
    return sol.events[0][:, 0], sol


def _meta(spec: ModelSpec | None, seed: Any, **kw) -> dict:
    out = {"seed": seed, "created_unix": time.time(), **kw}
    if spec is not None:
        out["spec"] = spec.to_dict()
    return out


def run_plateau_vs_epsilon(
    out_dir: str | Path = "simulations/figures",
    seed: int = 0,
    n: int = 24,
    eps: Sequence[float] = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7),
    z0: float = 0.0,
    rel_band: float = 0.1,
    n_boot: int = 1000,
    progress: bool = True,
) -> list[Path]:
    """Plateau length vs distance eps from the overlap line at alpha = 0 (log-law fit vs 1/lambda_u).

    Starts: ``z = z0`` (repelling part of the line), ``(w, Jbar)`` = best one-unit fit, ``u = eps d`` with
    random unit ``d``.  Plateau: band ``L_s (1 +- rel_band)``; tau = escape time (entry at t = 0).
    Fit ``tau = a ln(1/eps) + c`` with bootstrap CIs; theory ``a = 1/lambda_u``, lambda_u the largest
    eigenvalue of the flow's Jacobian at the start's base point.
    """
    from ghostsing.plots import plot_histograms, plot_scaling, save_figure

    rng = np.random.default_rng(seed)
    spec = symmetric_spec(0.0)
    f = compiled(spec)
    base = overlap_starts(1, 1e-300, z0, rng)[0]  # the point on the line
    lam = transverse_rate(f.jacobian(np.ascontiguousarray(base)))
    L_s = float(f.loss(np.ascontiguousarray(base)))
    level = L_s * (1 - rel_band)
    t_end = 40.0 + 3.0 * math.log(1.0 / min(eps)) / max(lam, 1e-3)
    xs, taus = [], []
    for e_ in _progress(eps, "plateau vs epsilon", enabled=progress):
        th0 = overlap_starts(n, e_, z0, rng)
        tau, _ = escape_times(f, th0, level, t_end)
        xs.append(np.full(n, e_))
        taus.append(tau)
    x, tau = np.concatenate(xs), np.concatenate(taus)
    fit = fit_log_law(x, tau, n_boot=n_boot, seed=seed)
    ref_x = np.geomspace(min(eps), max(eps), 50)
    ref_y = np.log(1 / ref_x) / lam + (fit.params["c"])
    fig = plot_scaling(
        x, tau, {f"fit a ln(1/ε) + c: a = {fit.params['a']:.3f} "
                 f"[{fit.ci['a'][0]:.3f}, {fit.ci['a'][1]:.3f}]": fit},
        reference=(ref_x, ref_y, f"slope 1/λ_u = {1 / lam:.3f} (Jacobian)"),
        title=f"overlap, α = 0, start z = {z0:g}: escape time vs distance ε", logx=True)
    paths = save_figure(fig, out_dir, "plateau_vs_epsilon", table={"eps": x, "tau": tau},
                        meta=_meta(spec, seed, n=n, z0=z0, rel_band=rel_band, L_s=L_s, lambda_u=lam,
                                   inv_lambda_u=1 / lam, fit=fit, escape_level=level,
                                   slope_rel_error=(fit.params["a"] * lam - 1)))
    fig2 = plot_histograms({f"ε = {e_:g}": tau[x == e_] for e_ in eps[::2]},
                           title="overlap, α = 0: escape-time histograms (random directions of u)")
    p2 = save_figure(fig2, out_dir, "plateau_histograms", table={"eps": x, "tau": tau},
                     meta=_meta(spec, seed, n=n, z0=z0,
                                summary={str(e_): summarize(tau[x == e_]) for e_ in eps}))
    import matplotlib.pyplot as plt

    plt.close(fig)
    plt.close(fig2)
    return [paths["png"], paths["csv"], paths["json"], p2["png"]]


def run_loss_curves(
    out_dir: str | Path = "simulations/figures",
    seed: int = 0,
    n: int = 32,
    alphas: Sequence[float] = (0.0, 0.02, 0.1),
    eps: float = 1e-3,
    z_range: tuple[float, float] = (-3.0, 3.0),
    t_end: float = 1e5,
    rel_band: float = 0.1,
    g_tol: float = 1e-3,
    progress: bool = True,
) -> list[Path]:
    """Ensemble loss curves (median, 25–75% band) from starts near the overlap line, plain vs skips.

    The JSON also holds the plateau statistics of each ensemble by the package definition
    (:func:`ghostsing.simulate.plateau.detect_plateaus`: band ``L_s (1 +- rel_band)``, ``|grad L| < g_tol``).

    Starts: z uniform in ``z_range`` (covering the repelling part |z| < 1 and the Milnor segment), ``(w,
    Jbar)`` = best one-unit fit, ``|u| = eps`` in a random direction; the same starts for every alpha.
    At alpha = 0 the runs started on the Milnor segment stay on the plateau for ever.
    """
    from ghostsing.plots import plot_loss_bands, save_figure

    rng = np.random.default_rng(seed)
    ens, arrays, t, stats = {}, {}, None, {}
    band = PlateauConfig.relative(L_STAR, rel_band, g_tol=g_tol)
    z0 = rng.uniform(*z_range, n)
    th0 = overlap_starts(n, eps, z0, rng)
    for a in _progress(alphas, "loss curves", enabled=progress):
        f = compiled(symmetric_spec(a))
        tau, sol = escape_times(f, th0, L_STAR / 2, t_end)
        t = sol.t
        ens[f"α = {a:g}, escaped {int(np.isfinite(tau).sum())}/{n}"] = sol.loss
        arrays[f"loss_alpha_{a:g}"] = sol.loss
        arrays[f"tau_alpha_{a:g}"] = tau
        tab = detect_plateaus(t, sol.loss, band, grad_norm=sol.grad_norm)
        stats[f"{a:g}"] = {"entered": int(tab.entered.sum()), "escaped": int(tab.escaped.sum()),
                           "length": summarize(tab.length), "longest": summarize(tab.longest)}
    fig = plot_loss_bands(t, ens, L_s=L_STAR, quantiles=(0.25, 0.75), ymin=1e-8,
                          title=f"starts on the overlap line, z ∈ [{z_range[0]:g}, {z_range[1]:g}], "
                                f"|u| = {eps:g}")
    arrays["t"] = t
    arrays["z0"] = z0
    paths = save_figure(fig, out_dir, "loss_curves", arrays=arrays,
                        meta=_meta(symmetric_spec(0.0), seed, n=n, alphas=list(alphas), eps=eps,
                                   z_range=list(z_range), escape_level=L_STAR / 2,
                                   plateau_definition={"L_s": L_STAR, "delta": band.delta, "g_tol": g_tol},
                                   plateaus=stats))
    import matplotlib.pyplot as plt

    plt.close(fig)
    return [paths["png"], paths["npz"], paths["json"]]


MILNOR_NOTE = (
    "Milnor segment marked where the largest eigenvalue of the generated flow Jacobian at the point of the "
    "line is <= 1e-7. For this teacher with N = 2, Amari's Kmat has eigenvalues (0, 0.0329): along "
    "u parallel to J* the second-order transverse curvature vanishes, so that direction is neutral at "
    "second order and attracts only at higher order (ghostsing.analytic.milnor.milnor_interval reports "
    "rule 'none' for that reason); runs from random u-directions at |z| > 1 stay on the plateau "
    "(loss_curves alpha = 0 control).")


def _check_portrait_args(alpha_skip: Any, grid: Any) -> None:
    if isinstance(alpha_skip, bool) or not isinstance(alpha_skip, int | float | np.floating) \
            or not (alpha_skip > 0 and math.isfinite(alpha_skip)):
        raise ValueError(f"alpha_skip={alpha_skip!r} is not allowed; allowed: a finite float > 0")
    if isinstance(grid, bool) or not isinstance(grid, int | np.integer) or grid < 5:
        raise ValueError(f"grid={grid!r} is not allowed; allowed: an int >= 5")


def run_portraits(
    out_dir: str | Path = "simulations/figures",
    alpha_skip: float = 0.5,
    grid: int = 41,
    seed: int = 0,
    n: int | None = None,
    pdf: bool = False,
    progress: bool = True,
    stem: str | None = None,
    line_points: int = 241,
    slice_: str = "relaxed",
    e: Sequence[float] = (1.0, -1.0),
) -> list[Path]:
    """Overlap phase portraits in the (z, |u|) plane: plain (alpha = 0) vs skip (alpha = alpha_skip).

    Writes ``overlap_portraits.png`` (or ``<stem>.png``; + ``.pdf`` if asked), ``.npz`` (grids,
    velocities, speeds, trajectories, eigenvalues along the line) and ``.json``; returns the paths.
    ``seed`` and ``n`` are accepted for a uniform experiment signature (the portrait is deterministic).
    ``e`` is the direction of ``u = J_1 - J_2`` in the plane: ``(1, -1)`` (default) is the unstable
    direction at z = 0; ``(1, 1)`` (parallel to J*) is neutral at second order and is where the slow
    passage near the Milnor segment happens.
    """
    from ghostsing.plots import portrait_pair, save_figure

    _check_portrait_args(alpha_skip, grid)
    kw = {"grid": grid, "progress": progress, "line_points": line_points, "slice_": slice_, "e": e}
    plain, ex0 = overlap_portrait_data(0.0, **kw)
    skip, ex1 = overlap_portrait_data(float(alpha_skip), **kw)
    fig = portrait_pair(plain, skip, floor=1e-5,
                        suptitle=f"Overlap singularity of a two-unit erf student: {slice_} (z, |u|) plane, "
                                 f"u ∥ ({e[0]:g}, {e[1]:g})")
    arrays = {"z": plain.x, "r": plain.y, "vz_plain": plain.vx, "vr_plain": plain.vy,
              "speed_plain": plain.speed, "vz_skip": skip.vx, "vr_skip": skip.vy, "speed_skip": skip.speed,
              "z_line": ex0["z_line"], "rate_line_plain": ex0["rate_line"],
              "rate_line_skip": ex1["rate_line"],
              "speed_line_skip": ex1["speed_line"]}
    for k, tr in enumerate(plain.trajectories):
        arrays[f"traj_plain_{k}"] = tr
    for k, tr in enumerate(skip.trajectories):
        arrays[f"traj_skip_{k}"] = tr
    paths = save_figure(fig, out_dir, stem or "overlap_portraits", arrays=arrays, pdf=pdf, dpi=90,
                        meta=_meta(symmetric_spec(0.0), seed, alpha_skip=alpha_skip, grid=grid, slice=slice_,
                                   milnor_interval_plain=ex0["milnor_interval"], e=ex0["e"],
                                   milnor_note=MILNOR_NOTE,
                                   ghost_min_speed=float(np.min(ex1["speed_line"]))))
    import matplotlib.pyplot as plt

    plt.close(fig)
    return [p for k, p in paths.items() if k in ("png", "pdf", "npz", "json")]


def run_elimination_portraits(
    out_dir: str | Path = "simulations/figures",
    alpha_skip: float = 0.5,
    grid: int = 41,
    seed: int = 0,
    n: int | None = None,
    pdf: bool = False,
    progress: bool = True,
    stem: str | None = None,
    slice_: str = "relaxed",
    line_points: int = 121,
) -> list[Path]:
    """Elimination phase portraits in the (w_2, |J_2|) plane: plain vs skip (alpha = alpha_skip)."""
    from ghostsing.plots import portrait_pair, save_figure

    _check_portrait_args(alpha_skip, grid)

    kw = {"grid": grid, "progress": progress, "slice_": slice_, "line_points": line_points}
    plain, ex0 = elimination_portrait_data(0.0, **kw)
    skip, _ = elimination_portrait_data(float(alpha_skip), **kw)
    fig = portrait_pair(plain, skip, floor=1e-5,
                        suptitle=f"Elimination singularity of unit 2: {slice_} (w₂, |J₂|) plane")
    arrays = {"w2": plain.x, "r": plain.y, "vw_plain": plain.vx, "vr_plain": plain.vy,
              "speed_plain": plain.speed, "vw_skip": skip.vx, "vr_skip": skip.vy, "speed_skip": skip.speed}
    for name, d in ex0["lines"].items():
        for k, v in d.items():
            arrays[f"line_{name}_{k}"] = v
    paths = save_figure(fig, out_dir, stem or "elimination_portraits", arrays=arrays, pdf=pdf, dpi=90,
                        meta=_meta(symmetric_spec(0.0), seed, alpha_skip=alpha_skip, grid=grid, e=ex0["e"],
                                   slice=slice_))
    import matplotlib.pyplot as plt

    plt.close(fig)
    return [p for k, p in paths.items() if k in ("png", "pdf", "npz", "json")]


def run_sgd_vs_ode(
    out_dir: str | Path = "simulations/figures",
    seed: int = 0,
    n: int = 4,
    N: int = 500,
    lr: float = 0.5,
    alpha_max: float = 500.0,
    init_std: float = 0.3,
    progress: bool = True,
) -> list[Path]:
    """On-line SGD at finite N (``n`` seeds) against the large-N order-parameter ODE.

    K = M = 2 erf, Goldt/Saad–Solla conventions (pre-activations J.x/sqrt N), second layer fixed to 1,
    teacher ``B = sqrt(N) (e_1, e_2)`` (so T = I), J0 i.i.d. N(0, init_std^2).  The ODE is integrated from
    each seed's own initial order parameters; the dashed curve is the mean of those ODE curves.  Both
    sit on the plateau of the ODE at this learning rate: its own fixed point near the symmetric one
    (:func:`~ghostsing.analytic.order_params.find_fixed_point`; the lr^2 terms shift it from the small-lr
    plateau eps* = 1/3 - (4/pi) asin(1/4) = 0.011611 of Saad & Solla, which is drawn for reference).
    """
    from ghostsing.analytic.order_params import find_fixed_point, order_parameter_ode, symmetric_fixed_point
    from ghostsing.plots import plot_sgd_vs_ode, save_figure
    from ghostsing.simulate.sgd import online_sgd

    alphas = np.linspace(0.0, alpha_max, 501)
    seeds = tuple(range(seed, seed + n))
    B = math.sqrt(N) * np.eye(2, N)
    res = online_sgd(2, 2, N, alphas, activation="erf", lr=lr, seeds=seeds, init_std=init_std,
                     train_second_layer=False, B=B)
    ode = order_parameter_ode(2, 2, "erf", lr=lr, train_second_layer=False)
    y0 = res.states(ode)[:, 0]
    curves = []
    for k in _progress(range(n), "order-parameter ODE", enabled=progress):
        ys = ode.integrate(y0[k], res.alpha)
        curves.append([ode.generalisation_error(y) for y in ys])
    eg_ode = np.mean(np.array(curves), axis=0)
    eps_star = 1.0 / 3.0 - (4.0 / math.pi) * math.asin(0.25)
    eps_lr = float(ode.generalisation_error(find_fixed_point(ode, symmetric_fixed_point(ode))))
    fig = plot_sgd_vs_ode(res.alpha, res.eg, res.alpha, eg_ode,
                          label_ode="order-parameter ODE (N → ∞), mean over seeds' starts",
                          extra=[(res.alpha, np.full_like(res.alpha, eps_lr),
                                  f"plateau of the η = {lr:g} ODE: ε = {eps_lr:.6f}"),
                                 (res.alpha, np.full_like(res.alpha, eps_star),
                                  f"small-η plateau ε* = {eps_star:.6f}")],
                          title=f"K = M = 2 erf, N = {N}, η = {lr:g}, second layer fixed")
    table = {"alpha_sgd": res.alpha, **{f"eg_sgd_seed{s}": res.eg[k] for k, s in enumerate(res.seeds)},
             "eg_ode_mean": eg_ode}
    paths = save_figure(fig, out_dir, "sgd_vs_ode", table=table,
                        meta=_meta(None, seed, n=n, config=res.config, eps_star=eps_star,
                                   eps_plateau_at_lr=eps_lr,
                                   max_abs_gap=float(np.nanmax(np.abs(res.eg.mean(axis=0) - eg_ode)))))
    import matplotlib.pyplot as plt

    plt.close(fig)
    return [paths["png"], paths["csv"], paths["json"]]


EXPERIMENTS: dict[str, Callable[..., list[Path]]] = {
    "portraits": run_portraits,
    "elimination-portraits": run_elimination_portraits,
    "plateau-vs-epsilon": run_plateau_vs_epsilon,
    "loss-curves": run_loss_curves,
    "sgd-vs-ode": run_sgd_vs_ode,
    "ghost-passage": ghost_experiments.run_ghost_passage,
    "ghost-traps": ghost_experiments.run_ghost_traps,
    "ghost-basin": ghost_experiments.run_ghost_basin,
    "symmetric-passage": ghost_experiments.run_symmetric_passage,
    "ghost-noise": ghost_experiments.run_ghost_noise,
}
