"""The reduced gradient flow on 2-D slices through the singular sets, for phase portraits.

:func:`overlap_plane_flow` gives ``(dz/dt, d|u|/dt)`` on the ``(z, |u|)`` plane of the overlap chart and
:func:`elimination_plane_flow` ``(dw_i/dt, d|J_i|/dt)`` on the ``(w_i, |J_i|)`` plane of one unit, the
other units held at the best plain (K-1)-unit fit; both return a :class:`PlaneFlow`.  The stability of the
overlap line itself is :mod:`ghostsing.analytic.milnor`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ghostsing.analytic.loss import derive
from ghostsing.analytic.manifold_coords import elimination, overlap
from ghostsing.analytic.minima import BestFit, best_fit
from ghostsing.models import ModelSpec

__all__ = ["PlaneFlow", "elimination_plane_flow", "overlap_plane_flow"]


@dataclass(frozen=True, eq=False)
class PlaneFlow:
    """The reduced gradient flow on a 2-D slice.

    x, y : the two axis values (1-D); X, Y : meshgrids (``indexing="xy"``, shape (len(y), len(x)));
    dx, dy : the reduced flow components on the grid; speed : ``|grad_theta L|``; loss : ``L``;
    names : the axis symbols; slice : a sentence saying exactly which slice it is; theta_fixed : the
    parameters held fixed (the parent fit); direction : the unit vector of the transverse vector axis.
    """

    x: np.ndarray
    y: np.ndarray
    X: np.ndarray
    Y: np.ndarray
    dx: np.ndarray
    dy: np.ndarray
    speed: np.ndarray
    loss: np.ndarray
    names: tuple[str, str]
    slice: str
    theta_fixed: np.ndarray
    direction: np.ndarray


def _unit(direction, N: int, name: str) -> np.ndarray:
    d = np.zeros(N) if direction is None else np.asarray(direction, dtype=np.float64).ravel()
    if direction is None:
        d[0] = 1.0
    if d.shape != (N,) or not np.all(np.isfinite(d)) or np.linalg.norm(d) == 0:
        raise ValueError(f"{name}={direction!r} is not allowed; allowed: a nonzero vector of {N} floats")
    return d / np.linalg.norm(d)


def overlap_plane_flow(spec: ModelSpec, z: Sequence[float] | np.ndarray, u_abs: Sequence[float] | np.ndarray,
                       pair: tuple[int, int] = (0, 1), fit: BestFit | None = None, direction=None,
                       compiled=None) -> PlaneFlow:
    """``(dz/dt, d|u|/dt)`` on the ``(z, |u|)`` plane of the overlap chart ``O_pair``.

    Slice: ``u = |u| e`` with a fixed unit vector ``e`` (``direction``; default ``e_1``; for N = 1
    ``u = |u|``), the merged unit at the critical values ``w = w*``, ``Jbar = Jbar*`` of the best plain
    (K-1)-unit fit (and the other units at that fit).  The flow is the exact flow of ``spec`` (its
    ``alpha``, so plain or with skip) pushed into the chart, ``d xi/dt = D phi . flow(psi(xi))``, with
    the generated Numba flow; ``d|u|/dt`` is the projection ``e . du/dt`` (the other components of
    du/dt and dw/dt, dJbar/dt are not shown).  ``speed`` is ``|grad_theta L|``.
    """
    chart = overlap(spec, *pair)
    fit = fit if fit is not None else best_fit(chart.parent_spec)
    e = _unit(direction, spec.N, "direction")
    model = compiled if compiled is not None else derive(spec).compile()
    zs, us = np.asarray(z, dtype=np.float64).ravel(), np.asarray(u_abs, dtype=np.float64).ravel()
    iz = chart.coords.index(chart.free[0])
    tidx = [chart.coords.index(s) for s in chart.transverse]
    Zg, Ug = np.meshgrid(zs, us)
    xi = np.tile(np.concatenate([fit.theta, [0.0], np.zeros(spec.N)]), (Zg.size, 1))
    xi[:, iz] = Zg.ravel()
    xi[:, tidx] = Ug.ravel()[:, None] * e[None, :]
    d = chart.reduced_flow_many(xi, model)
    th = np.ascontiguousarray(chart.to_theta_many(xi))
    shape = Zg.shape
    dz, du = d[:, iz].reshape(shape), (d[:, tidx] @ e).reshape(shape)
    sp_ = np.array([np.linalg.norm(model.flow(t)) for t in th]).reshape(shape)
    ls = np.array([model.loss(t) for t in th]).reshape(shape)
    X, Y = np.meshgrid(zs, us)
    return PlaneFlow(zs, us, X, Y, dz, du, sp_, ls, ("z", "|u|"),
                     f"overlap O_{pair[0] + 1}{pair[1] + 1}: u = |u| e, e = {e.tolist()}, (w, Jbar) and "
                     f"other units at the plain best (K-1)-unit fit {fit.theta.tolist()}; "
                     f"alpha = {spec.alpha}",
                     fit.theta.copy(), e)


def elimination_plane_flow(spec: ModelSpec, w: Sequence[float] | np.ndarray,
                           J_abs: Sequence[float] | np.ndarray, unit: int = 0, fit: BestFit | None = None,
                           direction=None, compiled=None) -> PlaneFlow:
    """``(dw_i/dt, d|J_i|/dt)`` on the ``(w_i, |J_i|)`` plane of unit ``i = unit``.

    Slice: ``J_i = |J_i| e`` with a fixed unit vector ``e`` (``direction``; default ``e_1``), the other K-1
    units at the best plain (K-1)-unit fit.  The flow is the exact flow of ``spec`` (its ``alpha``);
    ``d|J_i|/dt = e . dJ_i/dt``.  The axes ``w_i = 0`` and ``|J_i| = 0`` are the two elimination
    manifolds; their crossing ``(0, 0)`` holds the embedded fit (critical at alpha = 0 for odd g).
    """
    chart = elimination(spec, unit, "w")
    fit = fit if fit is not None else best_fit(chart.parent_spec)
    e = _unit(direction, spec.N, "direction")
    model = compiled if compiled is not None else derive(spec).compile()
    ws, js = np.asarray(w, dtype=np.float64).ravel(), np.asarray(J_abs, dtype=np.float64).ravel()
    K, N = spec.K, spec.N
    shape = (js.size, ws.size)
    dw, dj, sp_, ls = (np.empty(shape) for _ in range(4))
    base = chart.embed(fit.theta, np.zeros(N))
    for a, jj in enumerate(js):
        for b, ww in enumerate(ws):
            th = base.copy()
            th[unit] = ww
            th[K + unit * N: K + (unit + 1) * N] = jj * e
            F = model.flow(np.ascontiguousarray(th))
            dw[a, b], dj[a, b] = F[unit], float(e @ F[K + unit * N: K + (unit + 1) * N])
            sp_[a, b], ls[a, b] = np.linalg.norm(F), model.loss(th)
    X, Y = np.meshgrid(ws, js)
    return PlaneFlow(ws, js, X, Y, dw, dj, sp_, ls, (f"w_{unit + 1}", f"|J_{unit + 1}|"),
                     f"elimination of unit {unit + 1}: J_{unit + 1} = |J| e, e = {e.tolist()}, other units "
                     f"at the plain best (K-1)-unit fit {fit.theta.tolist()}; alpha = {spec.alpha}",
                     fit.theta.copy(), e)
