r"""The slow drift along a former set of critical points when skips are switched on (first order in alpha).

At ``alpha = 0`` the best (K-1)-unit fit ``theta'*`` embedded into a singular manifold (chart
``xi = (p, f, t)`` of :mod:`ghostsing.analytic.manifold_coords`) is critical for every value of the free
coordinate ``f``: a set ``C = {psi(theta'*, f, 0)}`` of critical points.  The loss is exactly quadratic in
the skip strength, ``L = L_0 + alpha L_1 + alpha^2 L_2`` with

.. math::

    L_1(\theta) = -\sum_k w_k\, s_k\cdot E[r(x)\, x], \qquad r = y - f_0(x)
    \quad(\text{the plain residual}),

so the flow is ``F = F_0 + alpha F_1 + O(alpha^2)``, ``F_1 = -grad L_1``.  Where ``C`` is normally
hyperbolic (the Hessian of ``L_0`` on ``C`` has exactly the tangent directions ``tau = d psi / d f`` as its
null space) it persists as a slow manifold ``C_alpha`` (Fenichel), and the flow on it is, to first order,
the projection of ``F_1`` onto the null space along the range of the Jacobian.  The Jacobian
``-Hess L_0`` of a gradient flow is symmetric, so its left null vectors are ``tau`` themselves and the
projection is orthogonal:

.. math::

    \dot f = \alpha\, v_1 + O(\alpha^2), \qquad
    v_1 = G_{ff}^{-1}\, \tau^{\mathsf T} F_1 = -G_{ff}^{-1}\, \partial_f L_1(\psi(\theta'^*, f, 0)),
    \qquad G_{ff} = \tau^{\mathsf T}\tau .

Closed forms (derived here in SymPy; the tests prove them):

* overlap ``O_ij`` (``f = z = (w_i - w_j)/w``, ``tau = (w/2)(e_{w_i} - e_{w_j})``, ``G_zz = w^2/2``):
  ``v_1 = (s_i - s_j) . E[r* x] / w*`` — the same for every ``z``: the slow manifold is crossed at a
  constant speed ``alpha v_1`` in ``z``.  It vanishes when the skips of the two units are equal
  (``s_i = s_j``: the permutation symmetry of the two units survives the skips and the line stays a line
  of critical points for every ``alpha``) or when ``(s_i - s_j) . E[r* x] = 0`` (e.g. the symmetric
  teacher ``v = (1, 1), B = I`` with identity skips, where ``E[r* x_1] = E[r* x_2]`` by the symmetry
  ``x_1 <-> x_2`` of the fit).
* elimination ``{w_i = 0}`` (``f = J_i``): a unit with ``w_i = 0`` contributes nothing, its skip
  included, so the loss on the set does not depend on ``J_i`` for any ``alpha``: ``v_1 = 0`` identically.
* elimination ``{J_i = 0}`` (``g(0) = 0``; ``f = w_i``): ``v_1 = s_i . E[r* x]``.  The whole line is
  critical at ``alpha = 0`` only when ``E[r* x] = 0``, and then ``v_1 = 0``.

So the elimination sets are always degenerate at first order; a degenerate set's fate is decided at
second order (``alpha^2``, see :mod:`ghostsing.analytic.ghost_fate`).  With ``r* = y - f'*`` the residual of
the fit, ``E[r* x] = sum_m v_m E[g(B_m.x) x] - sum_k w'_k E[g(J'_k.x) x]`` in closed form
(:func:`ghostsing.analytic.gaussian.linear_average`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from ghostsing.analytic.loss import population_loss
from ghostsing.analytic.manifold_coords import Chart, elimination, overlap
from ghostsing.analytic.manifold_fit import ALPHA
from ghostsing.analytic.minima import BestFit, best_fit
from ghostsing.models import ModelSpec

DRIFT_KINDS = ("overlap", "elimination-w", "elimination-J")


@dataclass(frozen=True, eq=False)
class SlowDrift:
    """First-order drift ``df/dt = alpha v1`` along a former set of critical points.

    Attributes
    ----------
    chart : the manifold (its ``free`` symbols are the coordinates ``f`` that drift).
    kind : ``"overlap"``, ``"elimination-w"`` or ``"elimination-J"``.
    fit : the best (K-1)-unit fit the set is built on.
    expr : ``v1`` as SymPy expressions of the parent and free coordinates (a 1 x n_free Matrix;
        ``expr[0]`` for one free coordinate).
    v1 : the drift at the fit (a float for one free coordinate, else an array of ``n_free`` floats).
    degenerate : True when ``v1`` vanishes at the fit (to ``1e-12`` of the scale of its terms, or
        identically as an expression).
    whole_set_critical : True when every point of the set is critical at ``alpha = 0`` (always for the
        overlap; for elimination only when the extra term of
        :func:`~ghostsing.analytic.manifold_fit.criticality_proof` vanishes, e.g. ``r* = 0``).
    correlation : ``E[r* x]`` at the fit (N floats).
    """

    chart: Chart
    kind: str
    fit: BestFit
    expr: sp.Matrix
    v1: float | np.ndarray
    degenerate: bool
    whole_set_critical: bool
    correlation: np.ndarray

    def passage_time(self, z0: float, z_exit: float) -> float:
        """Leading-order time ``|z_exit - z0| / (alpha |v1|)`` per unit alpha, i.e. ``alpha tau``.

        ``inf`` when the drift points away from ``z_exit`` (or vanishes).  One free coordinate only.
        """
        if np.ndim(self.v1) != 0:
            raise ValueError(f"passage_time needs one free coordinate; {self.kind} has {np.size(self.v1)}")
        dz = float(z_exit) - float(z0)
        if self.v1 == 0 or np.sign(dz) != np.sign(self.v1):
            return float("inf")
        return dz / float(self.v1)


def _check_kind(kind: str) -> str:
    if kind not in DRIFT_KINDS:
        raise ValueError(f"kind={kind!r} is not known; allowed: {', '.join(DRIFT_KINDS)}")
    return kind


def drift_chart(spec: ModelSpec, kind: str, units: tuple[int, ...]) -> Chart:
    """The chart of ``kind`` for ``units`` (a pair for the overlap, one unit for elimination)."""
    _check_kind(kind)
    if kind == "overlap":
        if len(units) != 2:
            raise ValueError(f"pair={units!r}: the overlap needs two unit indices (i, j), i < j")
        return overlap(spec, *units)
    if len(units) not in (1, 2):
        raise ValueError(f"pair={units!r}: elimination needs one unit index")
    return elimination(spec, units[0], which=kind[-1])


def first_order_loss(chart: Chart) -> sp.Expr:
    """``L_1 = dL/dalpha`` at ``alpha = 0`` on the manifold ``t = 0`` (a function of ``p`` and ``f``).

    ``L`` is built with the skip directions of ``chart.spec`` and a symbolic ``alpha``; ``L_1`` is
    exact (``L`` is a polynomial of degree 2 in ``alpha``).
    """
    spec, K, N = chart.spec, chart.spec.K, chart.spec.N
    sub = {s: 0 for s in chart.transverse}
    w = [sp.sympify(e).xreplace(sub) for e in chart.psi[:K]]
    J = sp.Matrix(K, N, [sp.sympify(e).xreplace(sub) for e in chart.psi[K:]])
    L = population_loss(spec, w, J, alpha=ALPHA)
    return sp.expand(sp.diff(L, ALPHA).xreplace({ALPHA: 0}))


def drift_expression(chart: Chart) -> sp.Matrix:
    """``v1 = -G_ff^{-1} d L_1 / d f`` as exact SymPy expressions (module docstring), 1 x n_free."""
    L1 = first_order_loss(chart)
    free = list(chart.free)
    sub = {s: 0 for s in chart.transverse}
    tau = chart.dpsi[:, [chart.coords.index(f) for f in free]].xreplace(sub)
    G = (tau.T * tau).applyfunc(sp.simplify)
    dL1 = sp.Matrix([sp.diff(L1, f) for f in free])
    v = -(G.inv() * dL1)
    return v.T.applyfunc(lambda e: sp.simplify(sp.factor_terms(e)))


def _correlation(spec: ModelSpec, fit: BestFit) -> np.ndarray:
    """``E[r* x] = sum_m v_m E[g(B_m.x) x] - sum_k w'_k E[g(J'_k.x) x]`` at the fit (closed form)."""
    from ghostsing.analytic import gaussian

    a = sp.Symbol("a", nonnegative=True)
    p = sp.Symbol("p", real=True)
    lin = sp.lambdify((a, p), gaussian.linear_average(spec.activation, a, p), "numpy")
    w, J = fit.spec.split(fit.theta)
    c = np.zeros(spec.N)
    for n in range(spec.N):
        c[n] = sum(spec.v[m] * lin(spec.B[m] @ spec.B[m], spec.B[m, n]) for m in range(spec.M))
        c[n] -= sum(w[k] * lin(J[k] @ J[k], J[k, n]) for k in range(fit.spec.K))
    return c


def slow_drift(spec: ModelSpec, kind: str = "overlap", pair: tuple[int, ...] = (0, 1),
               fit: BestFit | None = None, seed: int = 0) -> SlowDrift:
    r"""The first-order drift ``df/dt = alpha v1`` along the set of critical points of ``kind``.

    Parameters
    ----------
    spec : the K-unit model; its skip directions ``spec.skip_directions`` are used (``spec.alpha`` is not: the
        drift is the coefficient of ``alpha``).
    kind : ``"overlap"`` (``f = z``), ``"elimination-w"`` (``f = J_i``) or ``"elimination-J"``
        (``f = w_i``).
    pair : the units: ``(i, j)`` for the overlap, ``(i,)`` for elimination (0-based).
    fit : the best (K-1)-unit plain fit (found with :func:`best_fit` when omitted).

    Returns
    -------
    SlowDrift with ``v1`` evaluated at the fit: ``dz/dt = alpha v1 + O(alpha^2)`` on the slow manifold
    near the line (overlap: ``v1 = (s_i - s_j) . E[r* x] / w*``).

    Raises ValueError for an elimination set that is not a set of critical points at ``alpha = 0``
    (no drift is defined there: only isolated points are critical).
    """
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"spec must be a ModelSpec, got {type(spec).__name__}")
    _check_kind(kind)
    units = tuple(int(u) for u in pair)
    ch = drift_chart(spec, kind, units)
    fit = fit if fit is not None else best_fit(ch.parent_spec, seed=seed)
    c = _correlation(spec, fit)
    scale = 1.0 + float(np.sum(np.abs(spec.v))) + float(np.sum(np.abs(fit.theta)))
    whole = True
    if kind == "elimination-J":
        whole = bool(np.max(np.abs(c)) < 1e-10 * scale)
    elif kind == "elimination-w":
        from ghostsing.analytic.manifold_fit import elimination_critical_set

        if spec.activation == "relu":
            raise ValueError("slow_drift(kind='elimination-w') needs erf or linear units (got relu)")
        if spec.N == 1:
            whole = elimination_critical_set(ch, fit).whole_line
        else:
            whole = fit.loss - spec.sigma**2 / 2 < 1e-12  # realisable parent: r* = 0
    if not whole:
        raise ValueError(
            f"kind={kind!r} on unit {units[0]}: the set is not a set of critical points at alpha = 0 "
            f"(E[r* x] = {c.tolist()}); allowed: an elimination set whose every point is critical "
            "(e.g. a realisable (K-1)-unit teacher)")
    expr = drift_expression(ch)
    vals = {s: sp.Float(x, 30) for s, x in zip(ch.parent, fit.theta, strict=True)}
    free0 = {f: 0 for f in ch.free}
    num = np.array([float(sp.N(e.xreplace(vals).xreplace(free0), 20)) for e in expr], dtype=np.float64)
    symbolic_zero = all(sp.simplify(e) == 0 for e in expr)
    degenerate = symbolic_zero or bool(np.max(np.abs(num)) < 1e-12 * scale)
    v1: float | np.ndarray = float(num[0]) if num.size == 1 else num
    return SlowDrift(ch, kind, fit, expr, v1, bool(degenerate), whole, c)
