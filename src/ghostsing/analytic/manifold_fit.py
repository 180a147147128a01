"""Critical points on the singular manifolds: the embeddings of the best (K-1)-unit fit, and the exact
proof that the embedded points are critical at ``alpha = 0`` and are not at ``alpha > 0`` (the ghost).

The fit itself (:func:`~ghostsing.analytic.minima.best_fit`) is :mod:`ghostsing.analytic.minima`.

Fukumizu & Amari (2000): if ``theta'`` is a critical point of the (K-1)-unit loss ``L'``, then every
point of its embedding into a singular manifold of the K-unit model is critical, for every value of
the free coordinate.  Written with a chart ``xi = (p, f, t)`` of :mod:`manifold_coords`::

    grad_theta L_K( psi(theta', f, 0) ) = T(theta', f) grad L'(theta') + E(theta', f)      (alpha = 0)

with ``T`` a linear map and ``E`` an extra term:

* overlap ``O_ij``:  ``T`` copies ``dL'/dw`` to ``w_i`` and ``w_j`` and sends ``dL'/dJbar`` to
  ``J_i`` with weight ``(1+z)/2`` and to ``J_j`` with weight ``(1-z)/2``; ``E = 0``;
* elimination ``{w_i = 0}``: ``T`` = identity on the other units, ``E_{w_i} = -E[r' g(J_i.x)]``
  (zero at ``J_i = 0`` for odd ``g``), with ``r' = y - f'(x)`` the residual of the (K-1)-unit fit;
* elimination ``{J_i = 0}``: ``E_{J_i} = -w_i g'(0) E[r' x]`` (zero at ``w_i = 0``, or everywhere
  when the residual is uncorrelated with x);
* linear dependence (``linear`` units): ``w_3 -> a dL'/dw_1' + b dL'/dw_2'``,
  ``J_k -> (w_k / w_k') dL'/dJ_k'`` (k = 1, 2), ``J_3 -> (w_3 / w_1') dL'/dJ_1'``; ``E = 0``.

:func:`criticality_proof` builds both sides from the closed-form loss with a *symbolic* skip strength
``alpha`` and shows by exact simplification that their difference is zero at ``alpha = 0``.  The loss
is a polynomial of degree 2 in ``alpha``, so ``grad L_K = g_0 + alpha g_1 + alpha^2 g_2`` exactly; at an
optimum ``theta'*`` the term ``g_0`` vanishes and the leading order of the gradient is ``alpha g_1``:
the ghost of the critical set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import sympy as sp
from scipy import optimize

from ghostsing.analytic import gaussian
from ghostsing.analytic.loss import exact, population_loss, student_symbols
from ghostsing.analytic.manifold_coords import Chart, parent_spec
from ghostsing.analytic.minima import BestFit, best_fit
from ghostsing.models import ModelSpec

ALPHA = sp.Symbol(r"\alpha", nonnegative=True)


# ====================================================================== exact zero test
def _split_radicals(e: sp.Expr) -> sp.Expr:
    """Rewrite ``b^(p/q)`` as a product over the positive irreducible factors of ``b``."""
    def split(q: sp.Pow) -> sp.Expr:
        base = sp.factor(sp.expand(q.base))
        factors = sp.Mul.make_args(base)
        if all(fa.is_positive for fa in factors):
            return sp.Mul(*[sp.Pow(fa, q.exp) for fa in factors])
        return sp.Pow(base, q.exp)

    return e.replace(lambda q: q.is_Pow and q.exp.is_Rational and not q.exp.is_Integer, split)


def is_identically_zero(expr: sp.Expr) -> bool:
    """Exact test ``expr == 0`` for expressions with square roots of polynomials.

    Radicands are factored into irreducible positive factors ``b``; each ``sqrt(b)`` becomes a symbol
    ``s_b`` with the relation ``s_b^2 = b``; the numerator is expanded and reduced modulo these
    relations.  A True answer is a proof (every step is an identity); False means "not shown zero".
    Expressions with other radicals fall back to ``sympy.simplify(expr) == 0``.
    """
    e = sp.sympify(expr)
    if e == 0:
        return True
    e = _split_radicals(e)
    e = e.replace(lambda q: isinstance(q, sp.asin | sp.acos), lambda q: q.func(sp.factor(q.args[0])))
    pows = [q for q in e.atoms(sp.Pow) if q.exp.is_Rational and not q.exp.is_Integer]
    if any(q.exp.q != 2 for q in pows):
        return sp.simplify(e) == 0
    bases = sorted({q.base for q in pows}, key=sp.default_sort_key)
    syms = [sp.Dummy(f"s{k}", positive=True) for k in range(len(bases))]
    rel = dict(zip(syms, bases, strict=True))
    sub = {q: syms[bases.index(q.base)] ** q.exp.p for q in pows}
    num = sp.numer(sp.together(e.xreplace(sub)))
    num = sp.expand(num)
    if not syms:
        return sp.expand(num) == 0
    poly = sp.Poly(num, *syms)
    reduced = sp.Integer(0)
    for monom, coeff in poly.terms():
        term = coeff
        for s, k in zip(syms, monom, strict=True):
            term *= rel[s] ** (k // 2) * s ** (k % 2)
        reduced += term
    reduced = sp.expand(reduced)
    if reduced == 0:
        return True
    return sp.Poly(reduced, *syms).is_zero


# ====================================================================== transfer map T and extra E
def _residual_pieces(spec: ModelSpec, pw, pJ):
    """Closed forms of ``F(J) = E[r' g(J.x)]`` and ``c = E[r' x]`` for the parent ``(pw, pJ)``."""
    g = spec.activation
    v = [exact(x) for x in spec.v]
    B = [[exact(x) for x in row] for row in spec.B]
    N = spec.N

    def dot(p, q):
        return sp.Add(*[a * b for a, b in zip(p, q, strict=True)])

    def F(J):
        out = sum((v[m] * gaussian.pair_average(g, dot(B[m], B[m]), dot(J, J), dot(B[m], J))
                   for m in range(spec.M)), sp.Integer(0))
        return out - sum((pw[k] * gaussian.pair_average(g, dot(pJ[k], pJ[k]), dot(J, J), dot(pJ[k], J))
                          for k in range(len(pw))), sp.Integer(0))

    def lin(P, n):
        return gaussian.linear_average(g, dot(P, P), P[n])

    c = [sum((v[m] * lin(B[m], n) for m in range(spec.M)), sp.Integer(0))
         - sum((pw[k] * lin(pJ[k], n) for k in range(len(pw))), sp.Integer(0)) for n in range(N)]
    return F, c


def g_prime_zero(activation: str) -> sp.Expr:
    """``g'(0)``: ``sqrt(2/pi)`` for erf (g(u) = erf(u/sqrt 2)), 1 for linear."""
    return {"erf": sp.sqrt(2 / sp.pi), "linear": sp.Integer(1)}[activation]


def expected_gradient(chart: Chart, grad_parent: Sequence[sp.Expr]) -> sp.Matrix:
    """``T(theta', f) grad L'(theta') + E(theta', f)`` in flat ``theta`` order (module docstring)."""
    spec, K, N = chart.spec, chart.spec.K, chart.spec.N
    Kp = K - 1
    gp = list(grad_parent)
    gw, gJ = gp[:Kp], [gp[Kp + m * N: Kp + (m + 1) * N] for m in range(Kp)]
    pw = list(chart.parent[:Kp])
    pJ = [list(chart.parent[Kp + m * N: Kp + (m + 1) * N]) for m in range(Kp)]
    W: dict[int, sp.Expr] = {}
    JJ: dict[int, list[sp.Expr]] = {}
    if chart.kind == "overlap":
        i, j = chart.units
        z = chart.free[0]
        order = sorted([i, *[k for k in range(K) if k not in (i, j)]])
        for m, k in enumerate(order):
            W[k], JJ[k] = gw[m], list(gJ[m])
        W[j] = gw[order.index(i)]
        JJ[i] = [(1 + z) / 2 * e for e in gJ[order.index(i)]]
        JJ[j] = [(1 - z) / 2 * e for e in gJ[order.index(i)]]
    elif chart.kind.startswith("elimination"):
        (i,) = chart.units
        others = [k for k in range(K) if k != i]
        for m, k in enumerate(others):
            W[k], JJ[k] = gw[m], list(gJ[m])
        F, c = _residual_pieces(spec, pw, pJ)
        if chart.kind == "elimination-w":
            W[i], JJ[i] = -F(list(chart.free)), [sp.Integer(0)] * N
        else:
            wi = chart.free[0]
            W[i], JJ[i] = sp.Integer(0), [-wi * g_prime_zero(spec.activation) * cn for cn in c]
    elif chart.kind == "linear-dependence":
        w3, a, b = chart.free
        p1, p2 = pw
        W = {0: gw[0], 1: gw[1], 2: a * gw[0] + b * gw[1]}
        JJ = {0: [(p1 - a * w3) / p1 * e for e in gJ[0]], 1: [(p2 - b * w3) / p2 * e for e in gJ[1]],
              2: [w3 / p1 * e for e in gJ[0]]}
    else:  # pragma: no cover - Chart kinds are fixed
        raise ValueError(f"unknown chart kind {chart.kind!r}")
    return sp.Matrix([W[k] for k in range(K)] + [e for k in range(K) for e in JJ[k]])


# ====================================================================== the proof
@dataclass(frozen=True, eq=False)
class CriticalityProof:
    """Exact statement ``grad L_K(psi(theta', f, 0)) = T grad L'(theta') + E + alpha g_1 + alpha^2 g_2``.

    Attributes
    ----------
    chart : the manifold.
    gradient : ``grad_theta L_K`` at the embedded point, exact, with symbolic ``alpha`` (:data:`ALPHA`),
        parent coordinates and free coordinates (P x 1).
    expected : ``T grad L' + E`` (P x 1, ``alpha``-free).
    extra : ``E`` alone (zero for overlap and linear dependence).
    residual_alpha0 : ``gradient - expected`` at ``alpha = 0`` (before simplification).
    proved : True when every entry of ``residual_alpha0`` is shown to be exactly 0
        (:func:`is_identically_zero`).
    ghost : ``g_1 = d gradient / d alpha`` at ``alpha = 0`` (P x 1) — the leading order of the gradient
        at an embedded optimum for small ``alpha > 0``.
    ghost2 : ``g_2`` (the gradient is exactly quadratic in ``alpha``).
    ghost_nonzero : True when ``g_1`` is not identically zero (shown exactly, entry by entry).
    """

    chart: Chart
    gradient: sp.Matrix
    expected: sp.Matrix
    extra: sp.Matrix
    residual_alpha0: sp.Matrix
    proved: bool
    ghost: sp.Matrix
    ghost2: sp.Matrix
    ghost_nonzero: bool

    @property
    def symbols(self) -> tuple[sp.Symbol, ...]:
        """The symbols the expressions depend on: parent coordinates, free coordinates, alpha."""
        return (*self.chart.parent, *self.chart.free, ALPHA)

    def ghost_at(self, parent: Sequence[float], free: Sequence[float] | float) -> np.ndarray:
        """``g_1`` at numeric ``(theta', f)``; at an embedded optimum ``grad L_K = alpha g_1 + O(alpha^2)``.
        """
        f = sp.lambdify([self.symbols], list(self.ghost), "numpy")
        return np.asarray(f([*np.asarray(parent, float), *np.atleast_1d(free), 0.0]), dtype=np.float64)

    def gradient_at(self, parent: Sequence[float], free: Sequence[float] | float, alpha: float) -> np.ndarray:
        """The exact gradient at numeric ``(theta', f, alpha)`` (independent of the compiled model)."""
        f = sp.lambdify([self.symbols], list(self.gradient), "numpy")
        return np.asarray(f([*np.asarray(parent, float), *np.atleast_1d(free), alpha]), dtype=np.float64)

    def free_ghost(self) -> sp.Matrix:
        """The drift along the free coordinates at first order in alpha: ``-(d psi/d f)^T g_1``.

        (the reduced-coordinate gradient along ``f``; for the overlap this is ``-dL/dz``, which pushes the
        embedded optimum along the line ``O_ij`` at rate ~ alpha.)
        """
        sub = {s: 0 for s in self.chart.transverse}
        cols = [self.chart.dpsi.col(self.chart.coords.index(f)).xreplace(sub) for f in self.chart.free]
        return sp.Matrix([sp.simplify(-(c.T * self.ghost)[0]) for c in cols])


def criticality_proof(chart: Chart) -> CriticalityProof:
    """Build and simplify the identity of the module docstring for ``chart`` (exact, SymPy).

    The K-unit loss is built with a symbolic ``alpha`` and the skip directions of ``chart.spec``; the
    parent loss with ``alpha = 0``.  Needs erf or linear units (relu's closed form is not
    differentiable on ``J_i = J_j``).
    """
    spec = chart.spec
    if spec.activation == "relu":
        raise ValueError("criticality_proof needs a smooth closed form; allowed activations: erf, linear "
                         "(relu's average is not differentiable at J_i = J_j or J_i = 0)")
    K, N = spec.K, spec.N
    w, J = student_symbols(K, N)
    L = population_loss(spec, w, J, alpha=ALPHA)
    theta = (*w, *list(J))
    emb = chart.embed_symbolic(chart.parent, chart.free)
    sub = dict(zip(theta, emb, strict=True))
    grad = sp.Matrix([sp.diff(L, p).xreplace(sub) for p in theta])
    pspec = parent_spec(spec)
    Kp = K - 1
    pw = list(chart.parent[:Kp])
    pJ = sp.Matrix(Kp, N, list(chart.parent[Kp:]))
    Lp = population_loss(pspec, pw, pJ)
    gpar = [sp.diff(Lp, s) for s in chart.parent]
    expected = expected_gradient(chart, gpar)
    extra = expected_gradient(chart, [0] * len(gpar))
    res0 = (grad.xreplace({ALPHA: 0}) - expected).applyfunc(sp.expand)
    proved = all(is_identically_zero(e) for e in res0)
    g1 = grad.diff(ALPHA).xreplace({ALPHA: 0})
    g2 = grad.diff(ALPHA, 2) / 2
    g1s = g1.applyfunc(lambda e: sp.simplify(_split_radicals(e)))
    ghost_nonzero = any(not is_identically_zero(e) for e in g1)
    return CriticalityProof(chart, grad, expected, extra, res0, proved, g1s,
                            g2.applyfunc(sp.simplify), ghost_nonzero)


def evaluate_extra(proof: CriticalityProof, parent: Sequence[float], free: Sequence[float] | float
                   ) -> np.ndarray:
    """The extra term ``E`` at numeric ``(theta', f)`` (zero where the embedded point is critical)."""
    f = sp.lambdify([(*proof.chart.parent, *proof.chart.free)], list(proof.extra), "numpy")
    return np.asarray(f([*np.asarray(parent, float), *np.atleast_1d(free)]), dtype=np.float64)


# ====================================================================== transverse curvature
def transverse_hessian(chart: Chart, alpha: sp.Expr | None = None) -> sp.Matrix:
    """``H_tt = d^2 L(psi(xi)) / dt dt`` on the manifold ``t = 0``, exact, as a function of the parent
    and free coordinates (``alpha`` as in :func:`ghostsing.analytic.loss.population_loss`).

    At a critical point on the manifold the chart Hessian is block diagonal (parent, free, transverse
    blocks; see :mod:`ghostsing.analytic.milnor`), so by Sylvester's law of inertia the number of
    unstable directions of the exact flow Jacobian equals the number of negative eigenvalues of
    ``Hess'`` plus that of ``H_tt``; the transverse eigenvalue of the flow is ``-H_tt / G_tt`` to leading
    order, ``G_tt = |d psi / dt|^2``.  Closed forms (proved in the tests):

    * overlap: ``H_uu = -(1 - z^2) Kmat(w, Jbar)`` on the whole of ``{u = 0}`` (Amari's K);
    * ``{J_i = 0}`` (odd g): ``H_JJ = (w_i g'(0))^2 I`` (plus ``alpha`` terms);
    * ``{w_i = 0}``: ``H_ww = E[g(J_i.x)^2]`` (plus ``alpha`` terms).
    """
    L = chart.loss(alpha=alpha)
    t = list(chart.transverse)
    H = sp.hessian(L, t).xreplace({s: 0 for s in t})
    if chart.spec.N > 1:  # simplification of the N > 1 radicals is slow; use is_identically_zero on them
        return H
    return H.applyfunc(lambda e: sp.simplify(_split_radicals(e)))


@dataclass(frozen=True, eq=False)
class EliminationCriticalSet:
    """The critical points of the plain K-unit loss on an elimination manifold at the embedded fit.

    chart, fit : the manifold and the best (K-1)-unit fit.
    whole_line : True when every value of the free coordinate is critical (``{J_i = 0}`` with
        ``E[r* x] = 0``, e.g. a realisable teacher).
    free_values : the critical values of the free coordinate found (``{w_i = 0}``, N = 1: the roots
        of ``E[r* g(J x)] = 0`` in the scanned range, ``J = 0`` included for odd g; ``{J_i = 0}``: ``w_i = 0``
        unless ``whole_line``).
    correlation : ``E[r* x]`` (N floats).
    """

    chart: Chart
    fit: BestFit
    whole_line: bool
    free_values: tuple[float, ...]
    correlation: np.ndarray


def elimination_critical_set(chart: Chart, fit: BestFit | None = None,
                             J_range: tuple[float, float] = (-10, 10), n_scan: int = 2001,
                             tol: float = 1e-12) -> EliminationCriticalSet:
    """Critical points on ``{w_i = 0}`` or ``{J_i = 0}`` through the extra term ``E`` of
    :func:`criticality_proof` (module docstring): ``{w_i = 0}`` holds the points with
    ``F(J_i) = E[r* g(J_i.x)] = 0``; ``{J_i = 0}`` the point ``w_i = 0``, or the whole line when
    ``c = E[r* x] = 0``.  For ``{w_i = 0}`` the roots are found for N = 1 by a sign scan of the closed-form
    ``F`` on ``J_range`` and ``scipy.optimize.brentq``.
    """
    if not chart.kind.startswith("elimination"):
        raise ValueError(f"elimination_critical_set needs an elimination chart, got {chart.kind!r}")
    spec = chart.spec
    if spec.activation == "relu":
        raise ValueError("elimination_critical_set needs erf or linear units (got relu)")
    fit = fit if fit is not None else best_fit(chart.parent_spec)
    Kp, N = spec.K - 1, spec.N
    vals = dict(zip(chart.parent, [sp.Float(x, 30) for x in fit.theta], strict=True))
    pw = [vals[s] for s in chart.parent[:Kp]]
    pJ = [[vals[s] for s in chart.parent[Kp + m * N: Kp + (m + 1) * N]] for m in range(Kp)]
    F, c = _residual_pieces(spec, pw, pJ)
    cnum = np.array([float(sp.N(e, 20)) for e in c])
    if chart.kind == "elimination-J":
        whole = bool(np.max(np.abs(cnum)) < tol)
        return EliminationCriticalSet(chart, fit, whole, () if whole else (0.0,), cnum)
    if N != 1:
        raise ValueError(f"elimination_critical_set on {{w_i = 0}} scans J for N = 1 only, got N={N}")
    J = sp.Dummy("J", real=True)
    Fn = sp.lambdify(J, F([J]), "numpy")
    grid = np.linspace(*J_range, n_scan)
    vals_g = np.array([Fn(x) for x in grid])
    if np.max(np.abs(vals_g)) < tol:
        return EliminationCriticalSet(chart, fit, True, (), cnum)
    roots = []
    for a, b, fa, fb in zip(grid[:-1], grid[1:], vals_g[:-1], vals_g[1:], strict=True):
        if fa == 0.0:
            roots.append(float(a))
        elif fa * fb < 0:
            roots.append(float(optimize.brentq(Fn, a, b, xtol=1e-14, rtol=1e-14)))
    if vals_g[-1] == 0.0:
        roots.append(float(grid[-1]))
    return EliminationCriticalSet(chart, fit, False, tuple(roots), cnum)
