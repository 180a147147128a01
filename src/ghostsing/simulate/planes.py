r"""Two-dimensional planes of a singular manifold's chart, the relaxed slice, and portrait arrays.

A :class:`ChartPlane` is a plane ``(a, |b|)`` of the reduced coordinates ``xi = (p, f, t)`` of a
:class:`~ghostsing.analytic.manifold_coords.Chart`: ``a`` one scalar coordinate, ``b = |b| e`` a vector
block along a fixed unit vector ``e``, and the parent coordinates ``q = p`` the *fast* ones.  Every map
comes from the chart (``theta = psi(xi)``, ``xi = phi(theta)``, ``D phi``); nothing is re-derived here.

* overlap of units 1, 2 (:func:`overlap_plane`): ``(z, |u|)``, ``q = (w, Jbar)``;
* elimination of unit 2 (:func:`elimination_plane`): ``(w_2, |J_2|)``, ``q = (w_1, J_1)``.

The fast coordinates relax on a time scale ~1, much faster than the slow ones; each point ``(a, b)`` is
therefore drawn at the *relaxed slice* ``q*(a, b) = argmin_q L(psi(q, a, b))`` (adiabatic elimination;
BFGS with continuation along the grid, :func:`relaxed_grid`).  There the projected velocity is the chain
rule ``d xi/dt = D phi(theta) . theta'`` with ``theta' = -grad L`` the full flow, read off at ``a`` and
``e . b``; the colour of a portrait is ``|theta'|``.  The *fixed* slice (``q`` held at the plain best
one-unit fit) is :func:`ghostsing.analytic.plane_flows.overlap_plane_flow` / ``elimination_plane_flow``
(:func:`fixed_grid`).  At alpha = 0 the line ``{|u| = 0}`` of the overlap plane is a line of critical
points; its Milnor-attractor segment is where the largest eigenvalue of the flow's Jacobian is
``<= tol`` (:func:`attracting_segments`).

:func:`overlap_portrait` and :func:`elimination_portrait` return the arrays of one portrait panel of the
symmetric model (:mod:`ghostsing.simulate.symmetric`) as a :class:`PlanePortrait`; drawing is left to
:mod:`ghostsing.plots` (through :mod:`ghostsing.experiments.simulations`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import sympy as sp
from scipy.optimize import minimize

from ghostsing.analytic import manifold_coords
from ghostsing.models import ModelSpec
from ghostsing.simulate.plateau import transverse_rate
from ghostsing.simulate.symmetric import J_STAR, W_STAR, compiled, symmetric_spec

__all__ = ["ChartPlane", "overlap_plane", "elimination_plane", "relaxed_grid", "fixed_grid",
           "attracting_segments", "plane_trajectories", "PlanePortrait", "overlap_portrait",
           "elimination_portrait"]


def _unit(e: Sequence[float], N: int) -> np.ndarray:
    e = np.asarray(e, dtype=np.float64)
    if e.shape != (N,) or not np.all(np.isfinite(e)) or np.linalg.norm(e) == 0:
        raise ValueError(f"direction e={e.tolist()} is not allowed; allowed: a non-zero vector of length {N}")
    return e / np.linalg.norm(e)


@dataclass(frozen=True, eq=False)
class ChartPlane:
    """The plane ``(a, |b|)`` of ``chart``: ``a`` the coordinate ``a_coord``, ``b`` the block
    ``b_coords`` along the unit vector ``e``; the parent coordinates are the fast ones ``q``."""

    chart: manifold_coords.Chart
    a_coord: sp.Symbol
    b_coords: tuple[sp.Symbol, ...]
    e: np.ndarray
    xlabel: str
    ylabel: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "e", _unit(self.e, len(self.b_coords)))

    @property
    def spec(self) -> ModelSpec:
        return self.chart.spec

    @property
    def n_fast(self) -> int:
        return self.chart.n_parent

    @cached_property
    def _index(self) -> tuple[int, list[int]]:
        coords = list(self.chart.coords)
        return coords.index(self.a_coord), [coords.index(s) for s in self.b_coords]

    @cached_property
    def _maps(self):
        ch = self.chart
        return (sp.lambdify([ch.coords], ch.dpsi[:, : ch.n_parent], "numpy"),
                sp.lambdify(list(ch.theta), list(ch.phi), "numpy"),
                sp.lambdify([ch.theta], ch.dphi_theta, "numpy"))

    def xi(self, q: np.ndarray, a: float, b: float) -> np.ndarray:
        """Chart coordinates of the point ``(q, a, |b| = b)``."""
        ia, ib = self._index
        out = np.zeros(self.spec.n_params)
        out[: self.n_fast] = q
        out[ia] = a
        out[ib] = b * self.e
        return out

    def theta(self, q: np.ndarray, a: float, b: float) -> np.ndarray:
        """``theta = psi(q, a, b e)`` (flat ModelSpec order)."""
        return self.chart.to_theta(self.xi(q, a, b))

    def dtheta_dq(self, a: float, b: float) -> np.ndarray:
        """``d theta / d q`` (P x n_fast) at ``(a, b)`` (the parent columns of ``D psi``)."""
        return np.asarray(self._maps[0](self.xi(np.zeros(self.n_fast), a, b)), dtype=np.float64)

    def coords(self, theta: np.ndarray) -> np.ndarray:
        """``(a, |b|)`` of states ``theta`` (..., P) -> (..., 2), by the chart's ``phi``."""
        theta = np.asarray(theta, dtype=np.float64)
        with np.errstate(all="ignore"):
            xi = [np.broadcast_to(v, theta.shape[:-1]) for v in self._maps[1](*np.moveaxis(theta, -1, 0))]
        ia, ib = self._index
        return np.stack([xi[ia], np.linalg.norm(np.stack([xi[k] for k in ib], axis=-1), axis=-1)], axis=-1)

    def velocity(self, theta: np.ndarray, F: np.ndarray) -> tuple[float, float]:
        """``(da/dt, e . db/dt)`` from the full flow ``F = theta'`` at ``theta``: ``D phi(theta) . F``."""
        d = np.asarray(self._maps[2](np.asarray(theta, dtype=np.float64)), dtype=np.float64) @ F
        ia, ib = self._index
        return float(d[ia]), float(self.e @ d[ib])


def overlap_plane(spec: ModelSpec, e: Sequence[float]) -> ChartPlane:
    """The ``(z, |u|)`` plane of the overlap of units 1, 2 (``q = (w, Jbar)``, ``u = |u| e``)."""
    if spec.K != 2:
        raise ValueError(f"overlap_plane needs K=2, got K={spec.K}; allowed: K=2")
    ch = manifold_coords.overlap(spec, 0, 1)
    return ChartPlane(ch, ch.free[0], ch.transverse, np.asarray(e, dtype=np.float64),
                      r"$z = (w_1 - w_2)/(w_1 + w_2)$", r"$|u| = |J_1 - J_2|$")


def elimination_plane(spec: ModelSpec, e: Sequence[float]) -> ChartPlane:
    """The ``(w_2, |J_2|)`` plane of the elimination chart ``{w_2 = 0}`` (``q = (w_1, J_1)``)."""
    if spec.K != 2:
        raise ValueError(f"elimination_plane needs K=2, got K={spec.K}; allowed: K=2")
    ch = manifold_coords.elimination(spec, 1, "w")
    return ChartPlane(ch, ch.transverse[0], ch.free, np.asarray(e, dtype=np.float64), r"$w_2$", r"$|J_2|$")


def _relax(plane: ChartPlane, f, a: float, b: float, q0: np.ndarray, gtol: float) -> np.ndarray:
    M = plane.dtheta_dq(a, b)

    def fun(q):
        th = np.ascontiguousarray(plane.theta(q, a, b))
        return f.loss(th), -(M.T @ f.flow(th))

    r = minimize(fun, q0, jac=True, method="BFGS", options={"gtol": gtol, "maxiter": 500})
    return np.asarray(r.x)


def _progress(iterable, desc: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, leave=False)


def relaxed_grid(plane: ChartPlane, f, xs: np.ndarray, ys: np.ndarray, q0: np.ndarray, gtol: float = 1e-11,
                 progress: bool = False) -> dict[str, np.ndarray]:
    """Velocities and speed on the relaxed slice over the grid ``xs`` x ``ys`` (module docstring).

    Returns arrays ``vx, vy, speed`` of shape (ny, nx), ``q`` (ny, nx, n_fast) and ``theta`` (ny, nx, P).
    Continuation: columns are swept outwards from the one nearest to x = 0; the first row of a column
    starts from its neighbour's first row, every other point from the point below it.
    """
    xs = np.asarray(xs, dtype=np.float64)
    ys = np.asarray(ys, dtype=np.float64)
    ny, nx = ys.size, xs.size
    out = {"vx": np.empty((ny, nx)), "vy": np.empty((ny, nx)), "speed": np.empty((ny, nx)),
           "q": np.empty((ny, nx, plane.n_fast)), "theta": np.empty((ny, nx, plane.spec.n_params))}
    start = int(np.argmin(np.abs(xs)))
    columns = list(range(start, nx)) + list(range(start - 1, -1, -1))
    q_col0: dict[int, np.ndarray] = {}
    for ci in _progress(columns, "relaxed slice", progress):
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
    """The *fixed* slice (fast coordinates held at the plain best one-unit fit):
    :func:`ghostsing.analytic.plane_flows.overlap_plane_flow` / ``elimination_plane_flow`` (unit 2).
    Returns ``vx, vy, speed`` (ny, nx) like :func:`relaxed_grid` and ``q_fixed``."""
    from ghostsing.analytic import plane_flows

    if kind == "overlap":
        pf = plane_flows.overlap_plane_flow(spec, xs, ys, direction=e, compiled=f)
    elif kind == "elimination":
        pf = plane_flows.elimination_plane_flow(spec, xs, ys, unit=1, direction=e, compiled=f)
    else:
        raise ValueError(f"kind={kind!r} is not allowed; allowed: 'overlap', 'elimination'")
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


def plane_trajectories(plane: ChartPlane, f, starts: np.ndarray, t_end: float,
                       rtol: float = 1e-8) -> list[np.ndarray]:
    """Trajectories of the full flow from ``starts`` (n, P), projected on the plane ((400, 2) each)."""
    from ghostsing.simulate import integrate, log_grid

    sol = integrate(f, np.atleast_2d(starts), log_grid(t_end, 400, t_first=1e-2), rtol=rtol, atol=1e-11,
                    method="auto")
    return [plane.coords(sol.y[k]) for k in range(sol.y.shape[0])]


@dataclass(frozen=True)
class PlanePortrait:
    """The arrays of one portrait panel: grid ``x`` (nx,), ``y`` (ny,), reduced velocity ``vx, vy`` and
    full speed ``speed`` (ny, nx); polylines of the singular manifold and its Milnor segment; projected
    trajectories; ``line`` (the largest Jacobian eigenvalue and the speed along the singular line),
    ``milnor_interval`` (the a-intervals of the Milnor segments), ``starts`` (n, P) and the plane."""

    x: np.ndarray
    y: np.ndarray
    vx: np.ndarray
    vy: np.ndarray
    speed: np.ndarray
    plane: ChartPlane
    singular: tuple[np.ndarray, ...] = ()
    milnor: tuple[np.ndarray, ...] = ()
    trajectories: tuple[np.ndarray, ...] = ()
    line: dict = field(default_factory=dict)
    milnor_interval: tuple[tuple[float, float], ...] = ()
    starts: np.ndarray | None = None


def _grid(slice_: str, kind: str, plane: ChartPlane, f, xs, ys, q0, progress: bool) -> dict:
    if slice_ == "relaxed":
        return relaxed_grid(plane, f, xs, ys, q0, progress=progress)
    if slice_ == "fixed":
        g = fixed_grid(kind, plane.spec, f, xs, ys, plane.e)
        g["q"] = np.broadcast_to(g["q_fixed"], (ys.size, xs.size, g["q_fixed"].size))
        return g
    raise ValueError(f"slice_={slice_!r} is not known; allowed: 'relaxed', 'fixed'")


def _starts(plane: ChartPlane, f, g: dict, xs, ys, traj_starts, slice_: str, use_row: bool) -> np.ndarray:
    starts = []
    for a, b in traj_starts:
        k = int(np.argmin(np.abs(xs - a)))
        kk = int(np.argmin(np.abs(ys - b))) if use_row else 0
        q = _relax(plane, f, a, b, g["q"][kk, k], 1e-11) if slice_ == "relaxed" else g["q"][kk, k]
        starts.append(plane.theta(q, a, b))
    return np.array(starts)


def overlap_portrait(alpha: float, grid: int = 41, z_range: tuple[float, float] = (-3.0, 3.0),
                     r_max: float = 0.8, e: Sequence[float] = (1.0, -1.0),
                     traj_starts: Sequence[tuple[float, float]] = ((2.5, 0.05), (1.6, 0.3), (-2.2, 0.15),
                                                                   (0.3, 0.02), (-0.6, 0.02)),
                     t_end: float = 3000.0, milnor_tol: float = 1e-7, line_points: int = 241,
                     slice_: str = "relaxed", progress: bool = False) -> PlanePortrait:
    """The overlap portrait of the symmetric model at skip strength ``alpha`` (``slice_`` relaxed or
    fixed); ``line`` holds ``z``, ``rate`` (the largest Jacobian eigenvalue along ``|u| = 0`` at the
    relaxed fit) and ``speed`` there; the Milnor segment is drawn at alpha = 0."""
    spec = symmetric_spec(alpha)
    f = compiled(spec)
    plane = overlap_plane(spec, e)
    xs = np.linspace(*z_range, grid)
    ys = np.linspace(0.0, r_max, max(grid * 2 // 3, 3))
    q0 = np.concatenate([[W_STAR], J_STAR])
    g = _grid(slice_, "overlap", plane, f, xs, ys, q0, progress)
    zf = np.linspace(*z_range, line_points)
    line = relaxed_grid(plane, f, zf, np.array([0.0]), q0)
    rates = np.array([transverse_rate(f.jacobian(np.ascontiguousarray(th))) for th in line["theta"][0]])
    singular, milnor = [], []
    if alpha == 0.0:
        singular = [np.stack([zf, np.zeros_like(zf)], axis=1)]
        milnor = attracting_segments(zf, np.zeros_like(zf), rates, milnor_tol)
    starts = _starts(plane, f, g, xs, ys, traj_starts, slice_, use_row=False)
    return PlanePortrait(xs, ys, g["vx"], g["vy"], g["speed"], plane, tuple(singular), tuple(milnor),
                         tuple(plane_trajectories(plane, f, starts, t_end)),
                         {"z": zf, "rate": rates, "speed": line["speed"][0]},
                         tuple((float(s[0, 0]), float(s[-1, 0])) for s in milnor), starts)


def elimination_portrait(alpha: float, grid: int = 41, w_range: tuple[float, float] = (-1.5, 1.5),
                         r_max: float = 1.5, e: Sequence[float] = (1.0, -1.0),
                         traj_starts: Sequence[tuple[float, float]] = ((1.2, 0.1), (-1.0, 0.3), (0.05, 1.3),
                                                                       (-0.1, 0.8), (0.8, 1.2)),
                         t_end: float = 3000.0, milnor_tol: float = 1e-7, speed_tol: float = 1e-6,
                         slice_: str = "relaxed", line_points: int = 121,
                         progress: bool = False) -> PlanePortrait:
    """The elimination portrait ``(w_2, |J_2|)`` of the symmetric model at skip ``alpha``.  At alpha = 0
    the singular manifolds ``{w_2 = 0}`` and ``{J_2 = 0}`` are drawn; their Milnor segments are where the
    relaxed flow is critical (``|theta'| < speed_tol``) and the largest Jacobian eigenvalue is
    ``<= milnor_tol``; ``line`` holds, per manifold, ``x, y, rate, speed`` along it."""
    spec = symmetric_spec(alpha)
    f = compiled(spec)
    plane = elimination_plane(spec, e)
    xs = np.linspace(*w_range, grid)
    ys = np.linspace(0.0, r_max, max(grid * 2 // 3, 3))
    q0 = np.concatenate([[W_STAR], J_STAR])
    g = _grid(slice_, "elimination", plane, f, xs, ys, q0, progress)
    singular, milnor, lines = [], [], {}
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
    starts = _starts(plane, f, g, xs, ys, traj_starts, slice_, use_row=True)
    return PlanePortrait(xs, ys, g["vx"], g["vy"], g["speed"], plane, tuple(singular), tuple(milnor),
                         tuple(plane_trajectories(plane, f, starts, t_end)), lines,
                         tuple((float(s[0, 0]), float(s[-1, 0])) for s in milnor), starts)
