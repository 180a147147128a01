"""Plateaus and escape times of gradient-flow trajectories and their statistics.

Definition (used everywhere in ghostsing)
-----------------------------------------
Let a trajectory be sampled at increasing times ``t_0 < t_1 < ... < t_{T-1}`` with loss ``L(t_k)`` and
(optionally) gradient norm ``G(t_k) = |grad L|(t_k)``.  Given the *saddle value* ``L_s`` (the loss on the
singular manifold: for the overlap singularity of a K-unit student the loss of the best (K-1)-unit fit
embedded in ``{J_i = J_j}``), a band half-width ``delta > 0`` and a gradient threshold ``g_tol``:

* the trajectory is *on the plateau* at time t when ``|L(t) - L_s| <= delta`` and ``G(t) < g_tol``
  (the second condition is dropped when no gradient norm is given);
* the *entry time* ``t_in`` is the first time the trajectory is on the plateau;
* the *escape time* ``t_esc`` is the first time after ``t_in`` at which ``L(t) < L_s - delta``
  (the loss has left the band downwards); it is ``nan`` (censored) when that never happens in the
  sampled window;
* the *plateau length* ``tau = t_esc - t_in`` (escaped trajectories), and the *longest plateau* is the
  length of the longest connected time interval on the plateau (also defined for censored runs; it is
  then a lower bound).

Crossing times are located by linear interpolation between the two samples that bracket the crossing
(error O(h^2 L'') on a grid of spacing h); when a callable dense output ``L(t)`` is given they are
refined by Brent's method to ``xtol``.

The scaling laws fitted to the plateau lengths are :mod:`ghostsing.simulate.scaling_fits`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

__all__ = [
    "PlateauConfig",
    "Plateau",
    "crossing_time",
    "detect_plateau",
    "detect_plateaus",
    "summarize",
    "transverse_rate",
]


# --------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class PlateauConfig:
    """Parameters of the plateau definition (module docstring).

    L_s : saddle value of the loss (loss on the singular manifold).
    delta : half-width of the band ``[L_s - delta, L_s + delta]``, > 0.
    g_tol : gradient-norm threshold (``inf`` to ignore the gradient), > 0.
    """

    L_s: float
    delta: float
    g_tol: float = math.inf

    def __post_init__(self) -> None:
        for name in ("L_s", "delta", "g_tol"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
                raise TypeError(f"{name} must be a float, got {value!r} of type {type(value).__name__}")
        if not math.isfinite(self.L_s):
            raise ValueError(f"L_s={self.L_s} is not allowed; allowed: a finite float")
        if not (math.isfinite(self.delta) and self.delta > 0):
            raise ValueError(f"delta={self.delta} is not allowed; allowed: a finite float > 0")
        if not self.g_tol > 0:
            raise ValueError(f"g_tol={self.g_tol} is not allowed; allowed: a float > 0 (inf to ignore)")

    @classmethod
    def relative(cls, L_s: float, rel: float = 0.1, g_tol: float = math.inf) -> PlateauConfig:
        """Band of half-width ``delta = rel * |L_s|`` (``rel`` in (0, 1))."""
        if not 0 < rel < 1:
            raise ValueError(f"rel={rel} is not allowed; allowed: 0 < rel < 1")
        if L_s == 0:
            raise ValueError("L_s=0 has no relative band; allowed: L_s != 0 or an absolute delta")
        return cls(L_s=float(L_s), delta=float(rel * abs(L_s)), g_tol=float(g_tol))


@dataclass(frozen=True)
class Plateau:
    """Result of :func:`detect_plateau` for one trajectory (times in gradient-flow units).

    t_in : entry time (nan if never on the plateau).  t_esc : escape time (nan if censored).
    length : ``t_esc - t_in`` (nan if censored or never entered).
    longest : length of the longest connected interval on the plateau (0 if never entered).
    escaped : whether ``t_esc`` was observed.  entered : whether the plateau was entered.
    """

    t_in: float
    t_esc: float
    length: float
    longest: float
    escaped: bool
    entered: bool


# --------------------------------------------------------------------------------------------- crossings
def _check_series(t: np.ndarray, y: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(t, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if t.ndim != 1 or t.size < 2:
        raise ValueError(f"t has shape {t.shape}; allowed: a 1-d array of >= 2 times")
    if y.shape != t.shape:
        raise ValueError(f"{name} has shape {y.shape}; allowed: the shape of t, {t.shape}")
    if not np.all(np.diff(t) > 0):
        raise ValueError("t is not strictly increasing; allowed: strictly increasing times")
    return t, y


def crossing_time(
    t: np.ndarray,
    y: np.ndarray,
    level: float,
    direction: str = "down",
    start: float = -math.inf,
    dense: Callable[[float], float] | None = None,
    xtol: float = 1e-10,
) -> float:
    """First time ``t* >= start`` at which ``y`` crosses ``level`` in ``direction``.

    ``direction="down"``: first ``t*`` with ``y(t*) = level`` after which ``y < level``
    (``y(t_k) >= level > y(t_{k+1})``); ``"up"`` the mirror image.  The crossing is located by linear
    interpolation between the bracketing samples,
    ``t* = t_k + (level - y_k) (t_{k+1} - t_k) / (y_{k+1} - y_k)``, and refined by Brent's method on
    ``dense(t) - level`` when ``dense`` is given.  Returns ``nan`` when there is no crossing.
    """
    t, y = _check_series(t, y, "y")
    if direction not in ("down", "up"):
        raise ValueError(f"direction={direction!r} is not known; allowed: 'down', 'up'")
    s = 1.0 if direction == "down" else -1.0
    d = s * (y - level)  # crossing "down" in d: d_k >= 0 > d_{k+1}
    ok = (d[:-1] >= 0) & (d[1:] < 0) & (t[1:] >= start)
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return math.nan
    k = int(idx[0])
    t0, t1, y0, y1 = t[k], t[k + 1], y[k], y[k + 1]
    tc = t0 + (level - y0) * (t1 - t0) / (y1 - y0)
    if dense is not None:
        g = lambda tt: float(dense(tt)) - level
        if g(t0) * g(t1) <= 0:
            tc = brentq(g, t0, t1, xtol=xtol)
    return float(max(tc, start))


# --------------------------------------------------------------------------------------------- detection
def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of True in ``mask`` as (first, last) index pairs (inclusive)."""
    if not mask.any():
        return []
    m = np.concatenate([[False], mask, [False]]).astype(np.int8)
    dm = np.diff(m)
    starts = np.flatnonzero(dm == 1)
    ends = np.flatnonzero(dm == -1) - 1
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def _interp_edge(t: np.ndarray, f: np.ndarray, i_out: int, i_in: int) -> float:
    """Time between samples ``i_out`` (f < 0, off the plateau) and ``i_in`` (f >= 0) where f = 0."""
    f0, f1 = f[i_out], f[i_in]
    if not (np.isfinite(f0) and np.isfinite(f1)) or f1 == f0:
        return float(t[i_in])
    return float(t[i_out] + (0.0 - f0) * (t[i_in] - t[i_out]) / (f1 - f0))


def detect_plateau(
    t: np.ndarray,
    L: np.ndarray,
    config: PlateauConfig,
    grad_norm: np.ndarray | None = None,
    dense_loss: Callable[[float], float] | None = None,
) -> Plateau:
    """Plateau entry, escape and lengths of one trajectory (definition in the module docstring).

    The plateau indicator is ``f(t) = min(delta - |L - L_s|, g_tol - G) >= 0``; run edges are located
    where ``f`` changes sign by linear interpolation of ``f`` (samples at the ends of the window are
    taken as the edges).  The escape time is :func:`crossing_time` of ``L`` through ``L_s - delta``
    downwards, after ``t_in`` (refined on ``dense_loss`` if given).
    """
    if not isinstance(config, PlateauConfig):
        raise TypeError(f"config must be a PlateauConfig, got {type(config).__name__}")
    t, L = _check_series(t, L, "L")
    f = config.delta - np.abs(L - config.L_s)
    if grad_norm is not None:
        _, G = _check_series(t, grad_norm, "grad_norm")
        if math.isfinite(config.g_tol):
            f = np.minimum(f, config.g_tol - G)
    f = np.where(np.isfinite(f), f, -np.inf)
    mask = f >= 0
    runs = _runs(mask)
    if not runs:
        return Plateau(math.nan, math.nan, math.nan, 0.0, False, False)
    edges = []
    for a, b in runs:
        lo = float(t[a]) if a == 0 else _interp_edge(t, f, a - 1, a)
        hi = float(t[b]) if b == t.size - 1 else _interp_edge(t, f, b + 1, b)
        edges.append((lo, hi))
    t_in = edges[0][0]
    longest = max(hi - lo for lo, hi in edges)
    t_esc = crossing_time(t, L, config.L_s - config.delta, "down", start=t_in, dense=dense_loss)
    escaped = math.isfinite(t_esc)
    return Plateau(t_in, t_esc, (t_esc - t_in) if escaped else math.nan, longest, escaped, True)


@dataclass(frozen=True)
class PlateauTable:
    """Plateaus of an ensemble: arrays of length n (one entry per trajectory)."""

    t_in: np.ndarray
    t_esc: np.ndarray
    length: np.ndarray
    longest: np.ndarray
    escaped: np.ndarray
    entered: np.ndarray


def detect_plateaus(
    t: np.ndarray,
    L: np.ndarray,
    config: PlateauConfig,
    grad_norm: np.ndarray | None = None,
) -> PlateauTable:
    """:func:`detect_plateau` for each row of ``L`` (shape (n, T)) on the common time grid ``t``."""
    L = np.asarray(L, dtype=np.float64)
    if L.ndim != 2:
        raise ValueError(f"L has shape {L.shape}; allowed: (n, T)")
    G = None if grad_norm is None else np.asarray(grad_norm, dtype=np.float64)
    if G is not None and G.shape != L.shape:
        raise ValueError(f"grad_norm has shape {G.shape}; allowed: the shape of L, {L.shape}")
    rows = [detect_plateau(t, L[i], config, None if G is None else G[i]) for i in range(L.shape[0])]
    col = lambda name, dt=np.float64: np.array([getattr(r, name) for r in rows], dtype=dt)
    return PlateauTable(col("t_in"), col("t_esc"), col("length"), col("longest"),
                        col("escaped", bool), col("entered", bool))


# --------------------------------------------------------------------------------------------- statistics
def summarize(values: Sequence[float], quantiles: Sequence[float] = (0.1, 0.25, 0.5, 0.75, 0.9)) -> dict:
    """Count, escaped fraction, mean, standard deviation and quantiles of the finite entries of ``values``.

    Non-finite entries (censored runs) are counted in ``n`` but not in the moments.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    fin = v[np.isfinite(v)]
    out: dict = {"n": int(v.size), "n_finite": int(fin.size),
                 "fraction_finite": float(fin.size / v.size) if v.size else math.nan}
    out["mean"] = float(fin.mean()) if fin.size else math.nan
    out["std"] = float(fin.std(ddof=1)) if fin.size > 1 else math.nan
    for q in quantiles:
        out[f"q{int(round(100 * q)):02d}"] = float(np.quantile(fin, q)) if fin.size else math.nan
    return out


# --------------------------------------------------------------------------------------------- theory
def transverse_rate(jacobian: np.ndarray) -> float:
    """The largest real part among the eigenvalues of the flow's Jacobian ``J = -Hess L`` at a point.

    On a line of critical points (overlap singularity), the Jacobian has a zero eigenvalue along the
    line, negative ones for the directions inside the best-fit basin, and the transverse ones; the
    escape rate ``lambda_u`` is the largest eigenvalue when it is > 0 (the line repels there); where the
    line attracts the largest eigenvalue is ~0 (the direction along the line) and is returned as is.
    """
    Jm = np.asarray(jacobian, dtype=np.float64)
    if Jm.ndim != 2 or Jm.shape[0] != Jm.shape[1]:
        raise ValueError(f"jacobian has shape {Jm.shape}; allowed: a square matrix")
    ev = np.linalg.eigvals(Jm)
    return float(np.max(ev.real))
