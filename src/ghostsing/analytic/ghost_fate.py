r"""The fate of the overlap line of critical points when skips are switched on: ghost, trap or persistent.

At ``alpha = 0`` the best (K-1)-unit fit embedded into ``O_ij`` is a line of critical points in the
free coordinate ``z = (w_i - w_j)/w``; part of it attracts (the Milnor segment, :mod:`milnor`).  For small
``alpha > 0`` the line becomes a slow manifold on which ``z`` moves at the constant speed
``alpha v1``, ``v1 = (s_i - s_j) . E[r* x] / w*`` (:mod:`slow_drift`).  Segment by segment:

* **passable ghost** — an attracting segment on which the drift points toward a boundary ``|z| = 1``
  (where the transverse eigenvalue changes sign): the trajectory crosses the segment and leaves.  Passage
  time from ``z0`` to the boundary ``z_b``::

      alpha tau -> (z_b - z0) / v1        (alpha -> 0; corrections O(alpha ln(1/alpha)))

* **trap** — an attracting segment ``|z| > 1`` on which the drift points away from ``|z| = 1``: ``z``
  grows until ``alpha z`` is of order one.  Write ``beta = alpha (w_i s_i + w_j s_j) . d / |d|^2`` with
  ``d = s_i - s_j``; on the line ``alpha (w_i s_i + w_j s_j) = (w alpha/2)(s_i + s_j) + (w zeta / 2) d``
  with ``zeta = alpha z``, so as ``alpha -> 0`` at fixed ``zeta`` the network becomes the (K-1)-unit
  network plus a linear term ``b d.x``, ``b = w zeta / 2``, and the loss tends to::

      L_eff(theta', b) = L'(theta') - b d . E[r'(x) x] + b^2 |d|^2 / 2

  (``r' = y - f'`` the residual of the (K-1)-unit network ``theta'``).  A strict minimum
  ``(theta'_b, b*)`` of ``L_eff`` with ``b* v1 > 0`` is the limit of a spurious minimum of the
  ``alpha``-model at ``zeta* = lim alpha z* = 2 b* / w_b`` (two overlapping units with large opposite
  output weights that use their skips to add a linear term): :func:`find_trap` locates it at finite
  ``alpha`` by Newton's method from that limit and certifies it (gradient norm, positive-definite Hessian,
  loss gap above the global minimum).
* **persistent singularity** — equal skips ``s_i = s_j``: the permutation symmetry of the two units
  survives, the loss on the line does not depend on ``z`` for any ``alpha`` (proved symbolically) and the
  line stays a line of critical points.
* **degenerate** — ``v1 = 0`` with unequal skips (e.g. the symmetric teacher with identity skips): the
  drift is of order ``alpha^2`` and its law comes from a second-order (scaled) reduction.
* **repelling** — a segment that repels at ``alpha = 0`` stays a saddle: trajectories leave it at the
  transverse rate, as without skips.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import sympy as sp
from scipy import optimize

from ghostsing.analytic import gaussian
from ghostsing.analytic.loss import derive, exact, population_loss, student_symbols
from ghostsing.analytic.manifold_coords import overlap
from ghostsing.analytic.manifold_fit import (
    ALPHA,
    BestFit,
    best_fit,
    global_minimum,
    is_identically_zero,
    local_minimum,
    loss_functions,
)
from ghostsing.analytic.milnor import milnor_interval
from ghostsing.analytic.slow_drift import SlowDrift, slow_drift
from ghostsing.models import ModelSpec

FATES = ("passable ghost", "trap", "persistent singularity", "degenerate", "repelling", "saddle")


# ====================================================================== the alpha -> 0 limit of a trap
@dataclass(frozen=True, eq=False)
class ScaledTrap:
    """The minimum of ``L_eff(theta', b)`` (module docstring): the ``alpha -> 0`` limit of a trap.

    parent : the (K-1)-unit parameter ``theta'_b`` (parent order of the overlap chart); b : ``b*``;
    zeta : ``lim alpha z* = 2 b* / w_b`` (``w_b`` the merged unit's output weight); loss : ``L_eff``;
    hessian_eigenvalues : of ``L_eff`` in ``(theta', b)`` (all > 0: a strict minimum of the limit
    problem); grad_norm : of ``L_eff`` at the minimum.
    """

    parent: np.ndarray
    b: float
    zeta: float
    loss: float
    hessian_eigenvalues: np.ndarray
    grad_norm: float


def effective_loss(spec: ModelSpec, pair: tuple[int, int] = (0, 1)) -> tuple[sp.Expr, tuple[sp.Symbol, ...]]:
    """``L_eff(theta', b) = L'(theta') - b d . E[r' x] + b^2 |d|^2 / 2`` with ``d = s_i - s_j`` (exact SymPy).

    Returns the expression and its variables ``(theta'..., b)`` (parent in flat order).
    """
    i, j = pair
    pspec = spec.replace(K=spec.K - 1, alpha=0.0, skip_directions=None)
    Kp, N = pspec.K, spec.N
    w, J = student_symbols(Kp, N)
    b = sp.Symbol("b", real=True)
    Lp = population_loss(pspec, list(w), J)
    d = [exact(spec.skip_directions[i, n]) - exact(spec.skip_directions[j, n]) for n in range(N)]
    v = [exact(x) for x in spec.v]
    B = [[exact(x) for x in row] for row in spec.B]
    g = spec.activation

    def lin(P, n):
        return gaussian.linear_average(g, sum(p * p for p in P), P[n])

    c = [sum(v[m] * lin(B[m], n) for m in range(spec.M))
         - sum(w[k] * lin(list(J.row(k)), n) for k in range(Kp)) for n in range(N)]
    L = Lp - b * sum(dn * cn for dn, cn in zip(d, c, strict=True)) + b**2 * sum(dn**2 for dn in d) / 2
    return L, (*w, *list(J), b)


def scaled_trap(spec: ModelSpec, pair: tuple[int, int] = (0, 1), fit: BestFit | None = None) -> ScaledTrap:
    """Minimise ``L_eff`` (module docstring) from the fit with ``b0 = d . E[r* x] / |d|^2``.

    ``scipy.optimize.minimize(method="trust-exact")`` with the exact gradient and Hessian of
    :func:`effective_loss`, then Newton polishing.
    """
    ch = overlap(spec, *pair)
    fit = fit if fit is not None else best_fit(ch.parent_spec)
    L, xs = effective_loss(spec, pair)
    fL = sp.lambdify([xs], L, "numpy")
    fg = sp.lambdify([xs], [sp.diff(L, s) for s in xs], "numpy")
    fh = sp.lambdify([xs], sp.hessian(L, xs), "numpy")
    d = spec.skip_directions[pair[0]] - spec.skip_directions[pair[1]]
    drift = slow_drift(spec, "overlap", pair, fit=fit)
    b0 = float(d @ drift.correlation / (d @ d)) if d @ d > 0 else 0.0
    x0 = np.concatenate([fit.theta, [b0]])

    def grad(x):
        return np.asarray(fg(x), dtype=np.float64)

    def hess(x):
        return np.asarray(fh(x), dtype=np.float64)

    res = optimize.minimize(lambda x: float(fL(x)), x0, jac=grad, hess=hess, method="trust-exact",
                            options={"gtol": 1e-13, "maxiter": 2000})
    x = res.x
    for _ in range(10):
        g = grad(x)
        if np.linalg.norm(g) < 1e-14:
            break
        x = x - np.linalg.solve(hess(x), g)
    merged = sorted([pair[0], *[k for k in range(spec.K) if k not in pair]]).index(pair[0])
    wb = float(x[merged])
    return ScaledTrap(x[:-1].copy(), float(x[-1]), 2 * float(x[-1]) / wb, float(fL(x)),
                      np.linalg.eigvalsh(hess(x)), float(np.linalg.norm(grad(x))))


# ====================================================================== the trap at finite alpha
@dataclass(frozen=True, eq=False)
class Trap:
    """A spurious minimum of the ``alpha``-model near the former overlap line, with its certificate.

    theta : the minimum (flat order); z : ``(w_i - w_j)/(w_i + w_j)`` there; alpha_z : ``alpha z``;
    u_norm : ``|J_i - J_j|``; loss; grad_norm : ``|grad L|``; hessian_eigenvalues : ascending;
    global_loss : the lowest loss found by :func:`global_minimum` (``nan`` when not searched);
    certified : ``grad_norm < grad_tol``, the smallest Hessian eigenvalue > 0 and
    ``loss > global_loss + gap_tol``.
    """

    spec: ModelSpec
    pair: tuple[int, int]
    theta: np.ndarray
    z: float
    alpha_z: float
    u_norm: float
    loss: float
    grad_norm: float
    hessian_eigenvalues: np.ndarray
    global_loss: float
    certified: bool
    global_theta: np.ndarray | None = None


def find_trap(spec: ModelSpec, pair: tuple[int, int] = (0, 1), fit: BestFit | None = None,
              scaled: ScaledTrap | None = None, start: np.ndarray | None = None,
              search_global: bool = True, grad_tol: float = 1e-10, gap_tol: float = 1e-8,
              seed: int = 0) -> Trap:
    """Locate and certify the trap of ``spec`` (``alpha > 0``) near ``O_pair``.

    Start: ``start`` when given (e.g. the end of a trajectory), else the embedding of the scaled limit,
    ``theta'_b`` on the line at ``z = zeta* / alpha`` with ``u = 0``.  Then trust-region Newton on the
    exact generated loss, gradient and Hessian of the ``alpha``-model, polished by Newton steps in
    ``float64``.  The loss gap is measured against :func:`global_minimum` (a multi-start search that
    includes the trap's own neighbourhood excluded: it returns the lowest minimum found).
    """
    if spec.alpha <= 0:
        raise ValueError(f"find_trap needs alpha > 0, got alpha={spec.alpha}")
    ch = overlap(spec, *pair)
    if start is None:
        scaled = scaled if scaled is not None else scaled_trap(spec, pair, fit)
        start = ch.embed(scaled.parent, [scaled.zeta / spec.alpha])
    model = derive(spec).compile()
    x = local_minimum(model, start, gtol=grad_tol / 100, maxiter=5000)
    fun, jac, hess = loss_functions(model)
    i, j = pair
    w, J = spec.split(x)
    z = float((w[i] - w[j]) / (w[i] + w[j]))
    ev = np.linalg.eigvalsh(hess(x))
    glob_loss, glob_theta = float("nan"), None
    if search_global:
        g = global_minimum(spec, seed=seed)
        glob_loss, glob_theta = g.loss, g.theta
    gn = float(np.linalg.norm(jac(x)))
    loss = float(fun(x))
    certified = bool(gn < grad_tol and ev[0] > 0 and (not search_global or loss > glob_loss + gap_tol))
    return Trap(spec, tuple(pair), x, z, spec.alpha * z, float(np.linalg.norm(J[i] - J[j])), loss, gn, ev,
                glob_loss, certified, glob_theta)


# ====================================================================== the fate of each segment
@dataclass(frozen=True)
class Segment:
    """One segment ``z in (lo, hi)`` of the former overlap line and its fate for small ``alpha > 0``.

    stability : at ``alpha = 0``: ``"attracting"`` (Milnor), ``"repelling"`` or ``"saddle"``.
    fate : one of :data:`FATES`.  law : the passage law in words (``""`` where none applies).
    exit : the boundary ``z_b`` the drift carries the trajectory to (passable ghost), else ``nan``.
    """

    lo: float
    hi: float
    stability: str
    fate: str
    law: str = ""
    exit: float = float("nan")

    def passage_alpha_tau(self, z0: float, v1: float) -> float:
        """Leading-order ``alpha tau = (z_b - z0)/v1`` from ``z0`` in this segment (passable ghosts)."""
        if self.fate != "passable ghost":
            raise ValueError(f"no passage law on a {self.fate!r} segment")
        if not self.lo <= z0 <= self.hi:
            raise ValueError(f"z0={z0} is outside the segment ({self.lo}, {self.hi})")
        return (self.exit - z0) / v1


@dataclass(frozen=True, eq=False)
class OverlapFate:
    """The fate of ``O_pair`` under the skips of ``spec`` (module docstring), segment by segment."""

    spec: ModelSpec
    pair: tuple[int, int]
    drift: SlowDrift
    milnor_rule: str
    segments: tuple[Segment, ...]
    scaled_trap: ScaledTrap | None = None
    persistent_proof: bool = False
    notes: tuple[str, ...] = field(default=())

    def table(self) -> list[dict]:
        """Rows ``{segment, stability, fate, law}`` for reports."""
        return [{"segment": f"({s.lo:g}, {s.hi:g})", "stability": s.stability, "fate": s.fate,
                 "law": s.law} for s in self.segments]


def line_is_persistent(spec: ModelSpec, pair: tuple[int, int] = (0, 1)) -> bool:
    """Exact test that the loss on ``O_pair`` (``u = 0``) does not depend on ``z`` for every ``alpha``.

    Builds ``L(psi(p, z, 0))`` with a symbolic ``alpha`` and proves ``dL/dz = 0`` identically
    (:func:`is_identically_zero`): then every embedded critical point of the (K-1)-unit model with the
    same skips stays a line of critical points.
    """
    ch = overlap(spec, *pair)
    L = ch.loss(alpha=ALPHA).xreplace({s: 0 for s in ch.transverse})
    return is_identically_zero(sp.expand(sp.diff(L, ch.free[0])))


def overlap_fate(spec: ModelSpec, pair: tuple[int, int] = (0, 1), fit: BestFit | None = None,
                 seed: int = 0) -> OverlapFate:
    """Classify each segment of the former overlap line ``O_pair`` (module docstring).

    ``spec.skip_directions`` gives the skip directions (``spec.alpha`` is not used: the classification is for
    small ``alpha > 0``).  Uses :func:`milnor_interval` (stability at ``alpha = 0``), :func:`slow_drift`
    (``v1``), :func:`line_is_persistent` and, for outward drift on ``|z| > 1``, :func:`scaled_trap`.
    """
    plain = spec.replace(alpha=0.0)
    ch = overlap(plain, *pair)
    fit = fit if fit is not None else best_fit(ch.parent_spec, seed=seed)
    mil = milnor_interval(plain, pair, fit)
    drift = slow_drift(spec, "overlap", pair, fit=fit)
    inf = float("inf")
    notes: list[str] = []
    persistent = False
    if np.array_equal(spec.skip_directions[pair[0]], spec.skip_directions[pair[1]]):
        persistent = line_is_persistent(spec.replace(alpha=0.0), pair)
        notes.append(f"equal skips s_{pair[0] + 1} = s_{pair[1] + 1}: the line persists for every alpha "
                     f"(proved: {persistent})")
    rule = mil.rule
    segs: list[Segment] = []
    trap = None
    if rule in ("none", "degenerate"):
        segs.append(Segment(-inf, inf, "saddle" if rule == "none" else "degenerate",
                            "persistent singularity" if persistent else "saddle"))
        return OverlapFate(spec, tuple(pair), drift, rule, tuple(segs), None, persistent, tuple(notes))
    for lo, hi in mil.repelling:
        segs.append(Segment(lo, hi, "repelling",
                            "persistent singularity" if persistent else "repelling",
                            "" if persistent else "escape at the transverse rate, as at alpha = 0"))
    v1 = drift.v1
    for lo, hi in mil.attracting:
        if persistent:
            segs.append(Segment(lo, hi, "attracting", "persistent singularity",
                                "Milnor attractor at every alpha: no escape without noise"))
            continue
        if drift.degenerate:
            segs.append(Segment(lo, hi, "attracting", "degenerate",
                                "v1 = 0: drift O(alpha^2), passage ~ alpha^-2 (second-order reduction)"))
            continue
        target = hi if v1 > 0 else lo
        if np.isfinite(target):
            segs.append(Segment(lo, hi, "attracting", "passable ghost",
                                f"alpha tau -> ({target:g} - z0) / v1, v1 = {v1:.6g}", float(target)))
        else:
            if trap is None:
                trap = scaled_trap(spec, pair, fit)
            ok = trap.b * v1 > 0 and trap.hessian_eigenvalues[0] > 0
            segs.append(Segment(lo, hi, "attracting", "trap" if ok else "saddle",
                                f"alpha z -> zeta* = {trap.zeta:.6g} (spurious minimum, loss "
                                f"{trap.loss:.6g})" if ok else "outward drift without a limit minimum"))
    segs.sort(key=lambda s: s.lo)
    return OverlapFate(spec, tuple(pair), drift, rule, tuple(segs), trap, persistent, tuple(notes))


def overlap_line_start(fate: OverlapFate, z0: float, eps: float, direction: Sequence[float] | None = None,
                       rng: np.random.Generator | None = None) -> np.ndarray:
    """A start on the former line at ``z0`` displaced by ``|u| = eps`` (random or given unit direction)."""
    ch = overlap(fate.spec, *fate.pair)
    N = fate.spec.N
    if direction is None:
        rng = rng if rng is not None else np.random.default_rng(0)
        d = rng.normal(size=N)
    else:
        d = np.asarray(direction, dtype=np.float64)
    d = d / np.linalg.norm(d)
    xi = np.concatenate([fate.drift.fit.theta, [z0], eps * d])
    return ch.to_theta(xi)


# ====================================================================== the elimination sets
#: what a critical point near an elimination set is (:func:`classify_critical_point`)
POINT_KINDS = ("saddle", "trap", "global minimum", "degenerate minimum", "degenerate saddle",
               "degenerate (probe failed)", "not critical")


@dataclass(frozen=True, eq=False)
class CriticalPoint:
    """A critical point of the ``alpha``-model on or near an elimination set, with its certificate.

    free : the free coordinate(s) of the set there (``J_i`` for ``{w_i = 0}``, ``w_i`` for ``{J_i = 0}``);
    offset : the transverse coordinate(s) (``w_i`` resp. ``J_i``: 0 on the set); kind : one of
    :data:`POINT_KINDS`; null_probe : for a degenerate point, ``L_red(+d) - L``, ``L_red(-d) - L`` along the
    Hessian's null direction (every other coordinate relaxed), else empty.
    """

    theta: np.ndarray
    free: np.ndarray
    offset: np.ndarray
    loss: float
    grad_norm: float
    hessian_eigenvalues: np.ndarray
    kind: str
    loss_gap: float
    null_probe: tuple[float, ...] = ()


def constrained_minimum(model, x0: np.ndarray, fixed: Sequence[int], gtol: float = 1e-12,
                        maxiter: int = 500) -> np.ndarray:
    """Minimise ``model.loss`` over every coordinate except ``fixed`` (held at their values in ``x0``):
    trust-region Newton with the generated gradient and Hessian restricted to the free coordinates, then
    Newton polishing."""
    fun, jac, hess = loss_functions(model)
    x0 = np.asarray(x0, dtype=np.float64)
    keep = np.array([k for k in range(x0.size) if k not in set(int(f) for f in fixed)])

    def full(y):
        x = x0.copy()
        x[keep] = y
        return x

    res = optimize.minimize(lambda y: fun(full(y)), x0[keep], jac=lambda y: jac(full(y))[keep],
                            hess=lambda y: hess(full(y))[np.ix_(keep, keep)], method="trust-exact",
                            options={"gtol": gtol, "maxiter": maxiter})
    y = res.x
    for _ in range(20):
        g = jac(full(y))[keep]
        if np.linalg.norm(g) < gtol:
            break
        yn = y + np.linalg.lstsq(hess(full(y))[np.ix_(keep, keep)], -g, rcond=1e-15)[0]
        if np.linalg.norm(jac(full(yn))[keep]) >= np.linalg.norm(g):
            break
        y = yn
    return full(y)


def classify_critical_point(model, theta: np.ndarray, global_loss: float, grad_tol: float = 1e-9,
                            eig_tol: float = 1e-9, gap_tol: float = 1e-8, probe: float = 1e-2
                            ) -> tuple[str, float, np.ndarray, tuple[float, ...]]:
    """``(kind, |grad L|, Hessian eigenvalues, null_probe)`` of a point of the ``alpha``-model.

    ``saddle``: a Hessian eigenvalue below ``-eig_tol``; ``trap``: all above ``eig_tol`` and the loss
    above ``global_loss + gap_tol`` (certified); ``global minimum``: within ``gap_tol`` of it; for a
    smallest eigenvalue in ``[-eig_tol, eig_tol]`` the loss is probed at ``+-t`` along the null
    eigenvector with every coordinate orthogonal to it relaxed, ``t = probe, 10 probe, ...`` until the change
    exceeds ``1e-9`` (the relaxation's own noise is ~1e-10; a null direction that is mostly a large output
    weight needs a large ``t``): ``degenerate minimum`` when both sides rise, ``degenerate saddle`` when
    one falls (an odd, e.g. cubic, term).  ``not critical`` when ``|grad L| >= grad_tol``.
    """
    fun, jac, hess = loss_functions(model)
    gn = float(np.linalg.norm(jac(theta)))
    H = hess(theta)
    ev, vec = np.linalg.eigh(H)
    L0 = float(fun(theta))
    if gn >= grad_tol:
        return "not critical", gn, ev, ()
    if ev[0] < -eig_tol:
        return "saddle", gn, ev, ()
    if ev[0] > eig_tol:
        return ("trap" if L0 > global_loss + gap_tol else "global minimum"), gn, ev, ()
    n = vec[:, 0]
    Q = np.linalg.svd(n[None, :])[2][1:].T  # orthonormal complement of n

    def relaxed(s):
        base = theta + s * n

        def f(y):
            return float(fun(base + Q @ y))

        try:
            r = optimize.minimize(f, np.zeros(Q.shape[1]), jac=lambda y: Q.T @ jac(base + Q @ y),
                                  hess=lambda y: Q.T @ hess(base + Q @ y) @ Q, method="trust-exact",
                                  options={"gtol": 1e-13, "maxiter": 500})
        except (ValueError, np.linalg.LinAlgError):
            return float("nan")
        return float(r.fun) - L0

    # the null direction may be badly scaled (e.g. mostly a large output weight): grow the step until the
    # relaxed loss changes by more than rounding
    for t in (probe, 10 * probe, 100 * probe, 1e3 * probe, 1e4 * probe):
        pr = (relaxed(t), relaxed(-t))
        if max(abs(pr[0]), abs(pr[1])) > 1e-9 * max(1.0, abs(L0)):  # above the relaxation's noise (~1e-10)
            break
    if not np.all(np.isfinite(pr)):
        return "degenerate (probe failed)", gn, ev, pr
    kind = "degenerate minimum" if min(pr) > -1e-12 else "degenerate saddle"
    if kind == "degenerate minimum" and L0 <= global_loss + gap_tol:
        kind = "global minimum"
    return kind, gn, ev, pr


@dataclass(frozen=True)
class SetSegment:
    """A piece of an elimination set (free-coordinate interval along a ray) and its fate.

    fate : ``"passable ghost"`` (slow O(alpha^2) drift to the global minimum), ``"trap"`` (slow drift to a
    certified spurious minimum), ``"persistent singularity"`` (critical points on the set for every
    alpha), ``"left at O(1) rate"`` (not critical at alpha = 0: the flow leaves the set at once);
    law : the passage law or the location; target : the free coordinate the drift ends at (nan if none).
    """

    lo: float
    hi: float
    fate: str
    law: str = ""
    target: float = float("nan")


@dataclass(frozen=True, eq=False)
class EliminationFate:
    """The fate of ``{w_i = 0}`` or ``{J_i = 0}`` under the skips of ``spec`` at skip strength ``alpha``
    (:func:`elimination_fate`)."""

    spec: ModelSpec
    unit: int
    which: str
    alpha: float
    whole_set_critical: bool
    critical_points: tuple[CriticalPoint, ...]
    segments: tuple[SetSegment, ...]
    global_loss: float
    profile: dict = field(default_factory=dict)
    notes: tuple[str, ...] = field(default=())

    def table(self) -> list[dict]:
        """Rows ``{segment, fate, law}`` and ``{point, kind, loss gap, lambda_min}`` for reports."""
        rows = [{"segment": f"({s.lo:.4g}, {s.hi:.4g})", "fate": s.fate, "law": s.law} for s in self.segments]
        rows += [{"point": np.round(p.free, 6).tolist(), "kind": p.kind, "loss_gap": p.loss_gap,
                  "grad_norm": p.grad_norm, "lambda_min": float(p.hessian_eigenvalues[0])}
                 for p in self.critical_points]
        return rows


def _directions(N: int, n_dirs: int, seed: int) -> np.ndarray:
    if N == 1:
        return np.array([[1.0], [-1.0]])
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n_dirs, N))
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def elimination_fate(spec: ModelSpec, unit: int = 0, which: str = "w", alpha: float = 0.01,
                     r_max: float = 6.0, n_grid: int = 121, n_dirs: int = 3, seed: int = 0,
                     global_loss: float | None = None) -> EliminationFate:
    r"""Classify the elimination set ``{w_i = 0}`` (``which="w"``) or ``{J_i = 0}`` (``"J"``) of unit
    ``unit`` under the skips ``spec.skip_directions`` at skip strength ``alpha > 0``.

    ``{w_i = 0}`` (free ``J_i``).  With ``w_i = 0`` the unit is off, its skip included, so on the set
    ``dL/dJ_i = 0`` and ``dL/dw_i = -h_alpha(J_i)``, ``h_alpha(J) = E[r_alpha (g(J.x) + alpha s_i.x)]``
    (``r_alpha`` the residual of the other units at their own best fit with skips, ``theta'_alpha``).
    Critical points on the set are the zeros of ``h_alpha`` (isolated for N = 1, an (N-1)-dimensional
    surface for N >= 2), found along ``n_dirs`` rays ``J = r e`` (``e = +-1`` for N = 1); in the
    ``(w_i, J_i)`` block the Hessian is ``[[E[g^2], -h'], [-h', 0]]``, so each is a saddle unless
    ``h_alpha' = 0`` there.  When the whole set is critical at ``alpha = 0`` (a realisable parent,
    ``r* = 0``) it is a line of minima; skips make it a slow manifold with ``w_i = O(alpha)`` and the
    reduced flow ``dJ_i/dt = -L_red'(J_i)`` (``L_red`` the loss minimised over every coordinate but
    ``J_i``: envelope theorem), ``L_red = L_min + O(alpha^2)``: an ``O(alpha^2)`` drift along the set to
    the minima of ``L_red``, each certified (:func:`classify_critical_point`) as the global minimum or a
    trap; passage ``alpha^2 tau = int dJ / Phi'(J)``, ``Phi = -(L_red - L_red(0)) / alpha^2``.

    ``{J_i = 0}`` (free ``w_i``; odd g).  On the set the unit is a pure skip unit ``alpha w_i s_i.x``:
    ``dL/dJ_i = -w_i g'(0) E[r x]``, ``dL/dw_i = -alpha s_i.E[r x]``.  The point is the constrained minimum
    over everything but ``J_i`` (``J_i = 0`` held); it is critical when ``E[r x] = 0`` there (for N = 1 the
    free ``w_i`` sets the linear read-out, so it always is), and degenerate (the exchange
    ``w_i g'(0) dJ_i + alpha s_i dw_i = 0`` between the two linear read-outs is a null direction); the
    probe along that direction decides minimum or saddle.

    Returns an :class:`EliminationFate` (``profile``: the ray grid, ``h_alpha`` and, for a whole-set-
    critical ``{w_i = 0}``, ``L_red`` and the offset ``w_i``).
    """
    from ghostsing.analytic.manifold_coords import elimination
    from ghostsing.analytic.manifold_fit import elimination_critical_set

    if not isinstance(spec, ModelSpec):
        raise TypeError(f"spec must be a ModelSpec, got {type(spec).__name__}")
    if which not in ("w", "J"):
        raise ValueError(f"which={which!r}; allowed: 'w' ({{w_i = 0}}) or 'J' ({{J_i = 0}})")
    if not (np.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha={alpha!r}; allowed: a finite float > 0")
    if spec.activation not in ("erf", "linear"):
        raise ValueError(f"activation={spec.activation!r}; allowed: erf, linear")
    K, N = spec.K, spec.N
    i = int(unit)
    plain = spec.replace(alpha=0.0)
    ch = elimination(plain, i, which)
    fit = best_fit(ch.parent_spec, seed=seed)
    aspec = spec.replace(alpha=float(alpha))
    model = derive(aspec).compile()
    fun, jac, hess = loss_functions(model)
    if global_loss is None:
        global_loss = global_minimum(aspec, seed=seed).loss
    others = [k for k in range(K) if k != i]
    wi = i
    Ji = [K + i * N + n for n in range(N)]

    def embed(parent: np.ndarray, w_i: float, J_i: np.ndarray) -> np.ndarray:
        pw, pJ = parent[:K - 1], parent[K - 1:].reshape(K - 1, N)
        w = np.zeros(K)
        J = np.zeros((K, N))
        w[others], J[others] = pw, pJ
        w[i], J[i] = w_i, J_i
        return aspec.pack(w, J)

    notes: list[str] = []
    points: list[CriticalPoint] = []
    segs: list[SetSegment] = []
    profile: dict = {}

    def certify(th: np.ndarray) -> CriticalPoint:
        kind, gn, ev, pr = classify_critical_point(model, th, global_loss)
        w, J = aspec.split(th)
        free = J[i].copy() if which == "w" else np.array([w[i]])
        off = np.array([w[i]]) if which == "w" else J[i].copy()
        return CriticalPoint(th, free, off, float(fun(th)), gn, ev, kind, float(fun(th)) - global_loss, pr)

    if which == "w":
        if N == 1:
            whole = elimination_critical_set(ch, fit).whole_line
        else:
            whole = bool(fit.loss - spec.sigma**2 / 2 < 1e-12)
        # the parent at its own best fit with skips (unit i off: its J_i does not matter)
        th0 = constrained_minimum(model, embed(fit.theta, 0.0, np.full(N, 0.5)), [wi, *Ji])
        parent_a = np.delete(th0, [wi, *Ji])
        rs = np.concatenate([np.geomspace(1e-4, 0.9 * r_max / n_grid, 25), np.linspace(r_max / n_grid, r_max,
                                                                                          n_grid)])
        dirs = _directions(N, n_dirs, seed)
        h = np.zeros((len(dirs), rs.size))
        for d, e in enumerate(dirs):
            for k, r in enumerate(rs):
                h[d, k] = -jac(embed(parent_a, 0.0, r * e))[wi]
        profile.update({"r": rs, "directions": dirs, "h_alpha": h})
        roots = []
        for d, e in enumerate(dirs):
            for k in np.flatnonzero(np.sign(h[d, :-1]) * np.sign(h[d, 1:]) < 0):
                r = optimize.brentq(lambda s, e=e: -jac(embed(parent_a, 0.0, s * e))[wi], rs[k], rs[k + 1],
                                    xtol=1e-14)
                roots.append(r * e)
        for J in roots:
            th = local_newton(model, embed(parent_a, 0.0, J))
            points.append(certify(th))
        if not whole:
            notes.append("not a set of critical points at alpha = 0 (the parent is not realisable): the flow "
                         "leaves it at the O(1) rate dw_i/dt = h_0(J_i) except at the zeros of h_alpha")
            for e in dirs:
                segs.append(SetSegment(0.0, float(r_max), "left at O(1) rate",
                                       f"direction {np.round(e, 3).tolist()}: w_i' = h_alpha(J_i) != 0 "
                                       "off the critical points"))
            if points:
                segs.append(SetSegment(float("nan"), float("nan"), "persistent singularity",
                                       f"{len(points)} critical point(s) on the set at the zeros of h_alpha "
                                       f"({', '.join(sorted({p.kind for p in points}))}); they move by "
                                       "O(alpha) and persist"))
        elif N == 1:
            # slow manifold near the set: L_red(J) = min over everything but J_i, kept where w_i = O(alpha)
            grid = np.linspace(-r_max, r_max, 2 * n_grid + 1)
            Lr = np.full(grid.size, np.nan)
            off = np.full(grid.size, np.nan)
            for half in (range(n_grid, grid.size), range(n_grid, -1, -1)):
                y = embed(parent_a, 0.0, np.array([grid[n_grid]]))
                for k in half:
                    y = y.copy()
                    y[Ji[0]] = grid[k]
                    y = constrained_minimum(model, y, Ji)
                    Lr[k], off[k] = fun(y), y[wi]
            near = np.abs(off) <= 10 * alpha
            Phi = -(Lr - Lr[n_grid]) / alpha**2
            profile.update({"J": grid, "L_red": Lr, "w_offset": off, "Phi": Phi, "on_slow_manifold": near})
            dL = Lr - Lr[n_grid]
            law = (f"line of global minima at alpha = 0 (realisable parent), v1 = 0; skips lift it by "
                   f"O(alpha^2): L_red - L_red(0) in [{np.nanmin(dL):.3g}, {np.nanmax(dL):.3g}] at alpha = "
                   f"{alpha:g}; w_i = O(alpha) on {near.mean():.0%} of the scanned J; {len(points)} critical "
                   "point(s) stay on the set (zeros of h_alpha)")
            segs.append(SetSegment(-r_max, r_max, "persistent singularity" if points else "slow drift", law))
            notes.append("whole set critical at alpha = 0 (realisable parent): v1 = 0, drift along the set "
                         "O(alpha^2)")
        else:
            notes.append("whole set critical at alpha = 0 with N >= 2: the reduced flow is not scanned")
    else:
        if spec.activation == "linear":
            raise ValueError("{J_i = 0} of a linear unit: the unit is linear for every J_i; allowed: erf")
        x = embed(fit.theta, 0.0, np.zeros(N))
        y = None
        best = None
        for w0 in (-3.0, -1.0, 1.0, 3.0):
            x[wi] = w0
            cand = constrained_minimum(model, x, Ji)
            if best is None or fun(cand) < best:
                y, best = cand, fun(cand)
        cp = certify(y)
        points.append(cp)
        c = -jac(y)[Ji]
        corr_zero = bool(np.linalg.norm(c) < 1e-9)
        whole = False
        if cp.kind == "not critical":
            segs.append(SetSegment(-np.inf, np.inf, "left at O(1) rate",
                                   f"no critical point found on the set: |dL/dJ_i| = "
                                   f"{np.linalg.norm(c):.3g} at the best w_i = {y[wi]:.4g} (for N >= 2 "
                                   "one w_i cannot zero the N components of E[r x])"))
        else:
            wstar = float(y[wi])
            fate = {"degenerate minimum": "trap (degenerate)", "trap": "trap",
                    "global minimum": "global minimum", "degenerate saddle": "persistent singularity",
                    "saddle": "persistent singularity", "degenerate (probe failed)": "persistent singularity"}
            segs.append(SetSegment(-np.inf, np.inf, fate[cp.kind],
                                   f"one critical point at w_i = {wstar:.6g} ({cp.kind}, loss gap "
                                   f"{cp.loss_gap:.3g}); elsewhere dL/dJ_i = -w_i g'(0) E[r x] != 0", wstar))
        notes.append(f"E[r x] at the constrained minimum is {'0' if corr_zero else 'non-zero'}")
    return EliminationFate(spec, i, which, float(alpha), bool(whole), tuple(points), tuple(segs),
                           float(global_loss), profile, tuple(notes))


def local_newton(model, x0: np.ndarray, gtol: float = 1e-13, iters: int = 30) -> np.ndarray:
    """Newton's method on ``grad L = 0`` (any critical point, saddles included) from ``x0``, least-squares
    steps, stopped when ``|grad L|`` stops decreasing."""
    _, jac, hess = loss_functions(model)
    x = np.asarray(x0, dtype=np.float64).copy()
    for _ in range(iters):
        g = jac(x)
        if np.linalg.norm(g) < gtol:
            break
        xn = x + np.linalg.lstsq(hess(x), -g, rcond=1e-14)[0]
        if not np.all(np.isfinite(xn)) or np.linalg.norm(jac(xn)) >= np.linalg.norm(g):
            break
        x = xn
    return x


# ====================================================================== the linear-dependence set
@dataclass(frozen=True, eq=False)
class LinearDependenceFate:
    """The fate of the linear-dependence set ``J_3 = a J_1 + b J_2`` of three linear units (N = 3).

    shift_proof : True when ``L_alpha(w, J) = L_0(w, J + alpha S)`` was proved identically (symbolic
    ``alpha``, ``S`` the skip matrix); fate : ``"persistent singularity"`` then; moved_set : the set of the
    ``alpha``-model in words; null_dims : ``(at alpha = 0 on the set, at alpha on the shifted set)``, the
    number of Hessian eigenvalues below ``1e-9`` times the largest at a point of the set (a numerical
    check of the proof).
    """

    spec: ModelSpec
    shift_proof: bool
    fate: str
    moved_set: str
    null_dims: tuple[int, int]
    numeric_gap: float = float("nan")


def linear_dependence_fate(spec: ModelSpec, alpha: float = 0.1, seed: int = 0) -> LinearDependenceFate:
    r"""The linear-dependence set of :func:`ghostsing.analytic.manifold_coords.linear_dependence` under skips.

    With linear units the student is ``f = sum_i w_i (J_i + alpha s_i).x``: the skips enter only through
    ``Jt_i = J_i + alpha s_i``, so ``L_alpha(w, J) = L_0(w, J + alpha S)`` exactly, for every skip form
    (identity, general directions, shared, low rank).  The ``alpha``-model is the plain model in shifted
    coordinates: its singular set is ``{Jt_3 = a Jt_1 + b Jt_2}``, the old set moved by ``-alpha s_i``,
    with the same Hessian rank everywhere (a persistent singularity: no ghost, no trap).  Proved
    symbolically; checked by the Hessian null-space dimension at a random point of each set.
    """
    from ghostsing.analytic.manifold_fit import is_identically_zero

    if spec.K != 3 or spec.N != 3 or spec.activation != "linear":
        raise ValueError(f"linear_dependence_fate needs K=3, N=3, activation='linear'; got K={spec.K}, "
                         f"N={spec.N}, activation={spec.activation!r}")
    w, J = student_symbols(3, 3)
    S = sp.Matrix(3, 3, [exact(x) for x in spec.skip_directions.ravel()])
    La = population_loss(spec.replace(alpha=0.0), list(w), J + ALPHA * S, alpha=0)
    Lb = population_loss(spec, list(w), J, alpha=ALPHA)
    proof = is_identically_zero(sp.expand(La - Lb))
    rng = np.random.default_rng(seed)
    J1, J2 = rng.normal(size=3), rng.normal(size=3)
    J3 = 0.7 * J1 - 0.4 * J2
    w0 = rng.normal(size=3)
    dims = []
    for a, shift in ((0.0, 0.0), (alpha, -alpha)):
        s = spec.replace(alpha=a)
        th = s.pack(w0, np.stack([J1, J2, J3]) + shift * spec.skip_directions)
        ev = np.abs(np.linalg.eigvalsh(-derive(s).compile().jacobian(np.ascontiguousarray(th))))
        dims.append(int(np.sum(ev < 1e-9 * ev.max())))
    return LinearDependenceFate(spec, bool(proof), "persistent singularity" if proof else "not proved",
                                "{J_3 + alpha s_3 = a (J_1 + alpha s_1) + b (J_2 + alpha s_2)}", tuple(dims),
                                shift_identity_gap(spec, alpha, seed=seed))


def shift_identity_gap(spec: ModelSpec, alpha: float, n: int = 20, seed: int = 0) -> float:
    """``max |L_alpha(w, J) - L_0(w, J + alpha S)|`` over ``n`` random points, from the generated (compiled)
    losses: a numerical check of the shift identity, independent of its symbolic proof.  It is ~1e-15 for
    linear units and O(1) for erf units (the negative control)."""
    f_a = derive(spec.replace(alpha=float(alpha))).compile()
    f_0 = derive(spec.replace(alpha=0.0)).compile()
    rng = np.random.default_rng(seed)
    gap = 0.0
    for _ in range(n):
        w, J = rng.normal(size=spec.K), rng.normal(size=(spec.K, spec.N))
        a = f_a.loss(np.ascontiguousarray(spec.pack(w, J)))
        b = f_0.loss(np.ascontiguousarray(spec.pack(w, J + alpha * spec.skip_directions)))
        gap = max(gap, abs(a - b))
    return float(gap)
