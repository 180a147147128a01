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

The elimination sets are :mod:`ghostsing.analytic.elimination_fate`; the linear-dependence set is
:mod:`ghostsing.analytic.linear_dependence_fate`.
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
from ghostsing.analytic.manifold_fit import ALPHA, is_identically_zero
from ghostsing.analytic.milnor import milnor_interval
from ghostsing.analytic.minima import BestFit, best_fit, global_minimum, local_minimum, loss_functions
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
