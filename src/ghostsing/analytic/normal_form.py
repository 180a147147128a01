r"""Normal forms of the flow near the singular sets: Taylor coefficients in the transverse coordinates, alpha.

One idea: the normal form of the flow near a singular set, i.e. its Taylor coefficients in the transverse
coordinates and ``alpha``, derived exactly and held in one :class:`NormalForm` record.

Setting: a chart ``xi = (p, f, t)`` of :mod:`ghostsing.analytic.manifold_coords` (``p`` the parent
(K-1)-unit parameter, ``f`` the free coordinates along the set, ``t`` the transverse ones; the set is
``{t = 0}``) with the parent coordinates held at the best plain (K-1)-unit fit ``theta'*``
(:func:`ghostsing.analytic.minima.best_fit`).  The loss is exactly quadratic in the skip strength,
``L = L_0 + alpha L_1 + alpha^2 L_2``, so the chart flow ``d xi/dt = D phi . (-grad_theta L)(psi(xi))`` is
analytic in ``(t, alpha)`` (erf and linear units) and, with multi-indices ``m`` over the ``n_t`` transverse
coordinates,

.. math::

    \dot\xi_k = \sum_{|m| + b \le n} c^{(k)}_{m b}(f)\, t^m \alpha^b + O(|t, \alpha|^{n+1}),
    \qquad c^{(k)}_{m b}(f) = \frac{1}{m!\, b!}\,
    \partial_t^m \partial_\alpha^b \dot\xi_k \Big|_{t = 0,\ \alpha = 0}

(``m! = prod_l m_l!``, ``t^m = prod_l t_l^{m_l}``), kept for the free and transverse components ``k``
(the parent components relax at the fast rate ``|Hess'|`` and are not expanded).  Every coefficient is
derived exactly in SymPy by differentiating the closed-form flow; the fit's numbers enter as 30-digit
Floats and the coefficients are then rounded to 20 digits, so they are *closed forms in the free
coordinates with numeric constants* (not exact rationals).

Overlap ``O_ij`` (``t = u = J_i - J_j``, N components; ``f = z = (w_i - w_j)/w``).  At ``u = 0`` both units
share ``Jbar``, every Gaussian kernel is a number and each coefficient is a polynomial in ``z``:

* ``du/dt = A(z) u + ...`` with the N x N matrix ``A(z) = 2 (1 - z^2) Kmat`` (Amari's
  ``Kmat = (w/4) E[r* g''(Jbar.x) x x^T]`` of :func:`ghostsing.analytic.milnor.amari_K`; a number ``K``
  for ``N = 1``), the rate with ``(w, Jbar)`` held at the fit; the transverse *eigenvalue* is
  ``mu(z) = 2 (1 - z^2) K / (1 + z^2) + O(K^2/|Hess'|)`` (exact values:
  :func:`ghostsing.analytic.milnor.transverse_eigenvalues`);
* ``dz/dt = c_01(z) alpha + u^T C(z) u + ...``: ``c_00 = 0`` and no term linear in ``u`` (the line is
  critical at ``alpha = 0``), the quadratic form ``C(z)`` (coefficients ``c_{e_k + e_l, 0}``) is the
  second-order push along the line, and ``c_01`` the skip term.  With the parent free to relax the drift
  *on the slow manifold* is ``dz/dt = alpha v1 + O(alpha^2)``, ``v1`` from
  :func:`ghostsing.analytic.slow_drift.slow_drift`; ``c_01(z)`` is the instantaneous value at the fit
  (``c_01 = v1 - z (F1_{w_i} + F1_{w_j}) / w``, ``F1 = -grad L_1``), equal to ``v1`` at ``z = 0``.

Elimination ``{w_i = 0}`` (``t = w_i``; ``f = J_i``, N components).  With ``r* = y - f'*(x)`` the residual of
the fit and ``F(J) = E[r* g(J.x)]`` (closed form, arcsines for erf), ``dw_i/dt = F(J_i) + c_10(J_i) w_i +
c_01(J_i) alpha + ...`` and ``dJ_i/dt = w_i E[r* g'(J_i.x) x] + ...`` (``c_00 = 0`` for ``J_i``: the free
coordinate does not move on the set).  Only the points with ``F(J_i) = 0`` are critical at ``alpha = 0``;
the coefficients are closed forms in ``J_i`` (erf: arcsines and square roots of ``J_i.J_i`` and
``J_i.B_m``).  ``v1 = 0`` identically (a unit with ``w_i = 0`` contributes nothing, its skip included).

Elimination ``{J_i = 0}`` (``t = J_i``, N components; ``f = w_i``; erf or linear, ``g(0) = 0``).  The loss is
quadratic in ``w_i``, so every coefficient is a polynomial in ``w_i``:
``dJ_i/dt = g'(0) w_i E[r* x] - g'(0)^2 w_i^2 J_i + ...`` (``g''(0) = 0``; erf: ``g'(0)^2 = 2/pi``) and
``dw_i/dt = g'(0) E[r* x].J_i + ...``.  The set is a line of critical points only when ``E[r* x] = 0``;
then ``v1 = s_i . E[r* x] = 0`` too.

Linear dependence of three ``linear`` units in N = 3 (``t = rho``; ``f = (w_3, a, b)``; parent
``(w_1', w_2', J_1, J_2)``, chart ``J_3 = a J_1 + b J_2 + rho n`` with ``n = J_1 x J_2 / |J_1 x J_2|``).
The loss ``L = |W|^2 / 2``, ``W = sum_i w_i (J_i + alpha s_i) - beta_T``, is a polynomial, and with the
parent fixed ``J_1, J_2`` and hence ``n`` are numbers, so every coefficient is a polynomial in
``(w_3, a, b)``.  The best 2-unit fit of linear units is known in closed form
(:func:`ghostsing.analytic.minima.exact_best_fit`); its exact numbers are substituted, so the
coefficients are exact, with rationals and the one square root ``|J_1 x J_2|`` (a numeric fit passed in
gives 20-digit Floats instead).  The fit is exact (``W = 0`` at ``rho = 0``), so ``c_00 = 0`` for every
component, and with ``W_rho = w_3 - a w_1 - b w_2``
(``w_1 = w_1' - a w_3``, ``w_2 = w_2' - b w_3``)::

    d rho/dt = -W_rho (w_3 rho + alpha n.(w_1 s_1 + w_2 s_2 + w_3 s_3)) + O(rho^2, rho alpha, alpha^2)

(``H_rho,rho = w_3^2`` is the transverse Hessian, so the rate is ``-(H_rho,rho / w_3) W_rho``).
:func:`ghostsing.analytic.slow_drift.slow_drift` does not cover this set, so ``v1`` is None here; the
alpha-order drift of ``(w_3, a, b)`` is taken from the expansion itself, ``c^{(f)}_{0,1}``
(:meth:`NormalForm.alpha_drift`), the instantaneous value with the parent held at the fit (not relaxed).

Cost: the number of coefficients grows like ``C(n_t + n, n)``; the sizes allowed (:data:`MAX_N`) keep one
normal form within seconds to a minute.  relu is refused (its closed form is not smooth on the sets).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from math import factorial, prod

import numpy as np
import sympy as sp

from ghostsing.analytic.loss import population_loss
from ghostsing.analytic.manifold_coords import Chart, elimination, linear_dependence, overlap
from ghostsing.analytic.manifold_fit import ALPHA
from ghostsing.analytic.minima import BestFit, best_fit
from ghostsing.models import ModelSpec

MAX_ORDER = 3
KINDS = ("overlap", "elimination-w", "elimination-J", "linear-dependence")
#: the largest input dimension N per kind and total order (the symbolic cost grows fast with both)
#: (measured, K = 2: overlap N = 2 order 2 about 10 s, N = 3 order 2 about 17 s, N = 2 order 3 about 40 s;
#: elimination at most a few seconds; linear dependence order 3 about 1 s)
MAX_N = {"overlap": {1: 3, 2: 3, 3: 2}, "elimination-w": {1: 3, 2: 3, 3: 3},
         "elimination-J": {1: 3, 2: 3, 3: 2}, "linear-dependence": {1: 3, 2: 3, 3: 3}}

Index = tuple[int, ...]


@dataclass(frozen=True, eq=False)
class NormalForm:
    """Taylor coefficients of the chart flow in ``(t, alpha)`` at the embedded fit (module docstring).

    Attributes
    ----------
    spec, chart, fit : the model (its skip directions; ``spec.alpha`` is not used), the chart and the
        parent fit at which the coefficients are taken.
    kind : ``"overlap"``, ``"elimination-w"``, ``"elimination-J"`` or ``"linear-dependence"``.
    order : the largest total degree ``|m| + b`` kept.
    free, transverse : the chart's free and transverse symbols.
    coefficients : ``{(name, m, b): expr}`` with ``name`` the symbol name of a free or transverse
        coordinate, ``m`` the multi-index of the transverse powers (a tuple of ``len(transverse)`` ints)
        and ``b`` the power of alpha: ``c^{(name)}_{m b}`` as a closed form in the free coordinates.
    K : Amari's K (overlap, N = 1) else None; Kmat : Amari's N x N matrix (overlap) else None.
    v1 : the first-order drift on the slow manifold (``slow_drift``; a float, or an array for several
        free coordinates), or None when it is not defined or not covered (linear dependence: use
        :meth:`alpha_drift`; then ``v1_error`` says why);
        degenerate : ``v1`` vanishes.
    """

    spec: ModelSpec
    chart: Chart
    fit: BestFit
    order: int
    free: tuple[sp.Symbol, ...]
    transverse: tuple[sp.Symbol, ...]
    coefficients: dict[tuple[str, Index, int], sp.Expr]
    K: float | None
    v1: float | np.ndarray | None
    degenerate: bool | None
    v1_error: str | None = None
    Kmat: np.ndarray | None = None

    @property
    def kind(self) -> str:
        return self.chart.kind

    @property
    def z(self) -> sp.Symbol:
        """The single free coordinate (``z`` of the overlap, ``w_i`` of ``{J_i = 0}``)."""
        if len(self.free) != 1:
            raise ValueError(f"{self.kind} has {len(self.free)} free coordinates; use .free")
        return self.free[0]

    @property
    def u(self) -> sp.Symbol:
        """The single transverse coordinate (overlap with N = 1, ``w_i`` of ``{w_i = 0}``)."""
        if len(self.transverse) != 1:
            raise ValueError(f"{self.kind} has {len(self.transverse)} transverse coordinates; "
                             "use .transverse")
        return self.transverse[0]

    @property
    def names(self) -> tuple[str, ...]:
        """The expanded components: the transverse, then the free coordinates (symbol names)."""
        return tuple(s.name for s in (*self.transverse, *self.free))

    def _key(self, name: str | sp.Symbol, m: int | Index, b: int) -> tuple[str, Index, int]:
        name = name.name if isinstance(name, sp.Symbol) else name
        if isinstance(m, int | np.integer):
            m = (int(m),) if len(self.transverse) == 1 else None
        key = (name, tuple(int(x) for x in m) if m is not None else None, b)
        if key not in self.coefficients:
            raise ValueError(f"coefficient ({name!r}, {m!r}, {b}) is not kept; allowed: name in "
                             f"{self.names}, m a tuple of {len(self.transverse)} powers (an int when there "
                             f"is one transverse coordinate), |m| + b <= {self.order}")
        return key

    def coefficient(self, name: str | sp.Symbol, m: int | Index, b: int) -> sp.Expr:
        """``c^{(name)}_{m b}``: the coefficient of ``t^m alpha^b`` in ``d name/dt``."""
        return self.coefficients[self._key(name, m, b)]

    def monomial(self, m: Index) -> sp.Expr:
        return sp.Mul(*[s**k for s, k in zip(self.transverse, m, strict=True)])

    def truncated(self, name: str | sp.Symbol) -> sp.Expr:
        """The truncated right-hand side ``sum c_mb(f) t^m alpha^b`` of ``d name/dt``."""
        name = name.name if isinstance(name, sp.Symbol) else name
        return sp.Add(*[c * self.monomial(m) * ALPHA**b for (n, m, b), c in self.coefficients.items()
                        if n == name])

    def evaluate(self, name: str | sp.Symbol, m: int | Index, b: int, at: float | np.ndarray) -> float:
        """``c_mb`` as a float at the free coordinates ``at`` (a float for one free coordinate)."""
        at = np.atleast_1d(np.asarray(at, dtype=np.float64))
        if at.shape != (len(self.free),):
            raise ValueError(f"at has shape {at.shape}; allowed: ({len(self.free)},) free coordinates")
        sub = {s: sp.Float(float(x), 30) for s, x in zip(self.free, at, strict=True)}
        return float(sp.N(self.coefficient(name, m, b).xreplace(sub), 20))

    def linear_matrix(self, at: float | np.ndarray) -> np.ndarray:
        """``[c^{(t_k)}_{e_l, 0}]``: the n_t x n_t linear part of ``dt/dt`` in ``t`` at the free values ``at``
        (overlap: ``2 (1 - z^2) Kmat``)."""
        nt = len(self.transverse)
        e = [tuple(int(k == l) for k in range(nt)) for l in range(nt)]
        return np.array([[self.evaluate(s, e[l], 0, at) for l in range(nt)] for s in self.transverse])

    def alpha_drift(self, at: float | np.ndarray) -> np.ndarray:
        """``[c^{(f)}_{0,1}(at)]``: the alpha-order drift of the free coordinates with the parent held at the
        fit (on the set ``t = 0``), one entry per free coordinate."""
        zero = (0,) * len(self.transverse)
        return np.array([self.evaluate(s, zero, 1, at) for s in self.free])

    def _title(self) -> str:
        u = self.chart.units
        if self.kind == "overlap":
            return f"overlap line of units {u[0] + 1} and {u[1] + 1}"
        if self.kind == "linear-dependence":
            return "linear-dependence set J_3 = a J_1 + b J_2 (rho = 0)"
        return f"elimination set {self.chart.description.split(':')[0]}"

    def _notes(self) -> list[str]:
        out = []
        if self.kind == "overlap":
            if self.K is not None:
                out.append(f"Amari K = {self.K:.12g}; du/dt = 2 (1 - z^2) K u + ..., transverse eigenvalue "
                           "mu(z) ~ 2 (1 - z^2) K / (1 + z^2)")
            elif self.Kmat is not None:
                out.append(f"Amari Kmat = {np.round(self.Kmat, 12).tolist()}; "
                           "du/dt = 2 (1 - z^2) Kmat u + ...")
        if self.v1 is not None:
            v1 = np.round(np.asarray(self.v1, dtype=float), 12).tolist()
            out.append(f"slow-manifold drift: d{','.join(s.name for s in self.free)}/dt = alpha v1, v1 = {v1}"
                       + (" (degenerate: the fate is decided at second order)" if self.degenerate else ""))
        elif self.v1_error:
            out.append(f"slow-manifold drift v1 not available: {self.v1_error}")
        return out

    def sections(self) -> dict[str, dict[str, object]]:
        """Sections for :func:`ghostsing.analytic.latex.latex_document` / ``markdown_note``."""
        trans = ", ".join(f"${sp.latex(s)}$" for s in self.transverse)
        intro = (f"The {self._title()}: parent coordinates at the best plain fit "
                 f"{np.round(self.fit.theta, 8).tolist()}, expanded in {trans} and $\\alpha$ to total order "
                 f"{self.order}.")
        out: dict[str, object] = {"": intro}
        for s in (*self.transverse, *self.free):
            out[rf"\frac{{d {sp.latex(s)}}}{{dt}}"] = self.truncated(s)
        if self.kind == "overlap" and self.K is not None:
            z, Kf = self.z, sp.Float(self.K, 15)
            out[r"c^{(u)}_{10}(z) \;\text{vs}\; 2(1 - z^2) K"] = 2 * (1 - z**2) * Kf
            out[r"\mu(z) \approx 2 (1 - z^2) K / (1 + z^2)"] = 2 * (1 - z**2) * Kf / (1 + z**2)
        for k, note in enumerate(self._notes()):
            out[f"%text-note{k}"] = note + "."
        return {f"Normal form near the {self._title()}": out}

    def text(self) -> str:
        """Plain-text normal form (the truncated flow, then one line per nonzero coefficient)."""
        tr = ", ".join(s.name for s in self.transverse)
        lines = [f"normal form near the {self._title()} (parent at the fit {self.fit.theta.tolist()}), "
                 f"order {self.order} in ({tr}, alpha)"]
        lines += [f"  {n}" for n in self._notes()]
        mono = " ".join(f"{s.name}^m{k + 1}" for k, s in enumerate(self.transverse))
        lines.append(f"  c[x]_m,b: the coefficient of {mono} alpha^b in dx/dt, a closed form in "
                     + ", ".join(s.name for s in self.free))
        for s in (*self.transverse, *self.free):
            lines.append(f"  d{s.name}/dt = {self.truncated(s)}".replace("\\alpha", "alpha"))
        for (name, m, b), c in self.coefficients.items():
            if c != 0:
                idx = str(m[0]) if len(m) == 1 else "(" + ",".join(map(str, m)) + ")"
                lines.append(f"  c[{name}]_{idx},{b} = {c}")
        return "\n".join(lines) + "\n"


def _flow_with_alpha(chart: Chart, rows: list[int]) -> list[sp.Expr]:
    """Rows ``rows`` of ``d xi/dt`` in the chart with the skip strength as the symbol :data:`ALPHA`."""
    spec = chart.spec
    K, N = spec.K, spec.N
    w = list(chart.theta[:K])
    J = sp.Matrix(K, N, list(chart.theta[K:]))
    L = population_loss(spec, w, J, alpha=ALPHA)
    sub = dict(zip(chart.theta, chart.psi, strict=True))
    D = chart.dphi
    out = []
    grads: dict[int, sp.Expr] = {}
    for r in rows:
        e = sp.Integer(0)
        for c in range(D.cols):
            if D[r, c] != 0:
                if c not in grads:
                    grads[c] = -sp.diff(L, chart.theta[c]).xreplace(sub)
                e += D[r, c] * grads[c]
        out.append(e)
    return out


def _indices(n_t: int, order: int) -> list[tuple[Index, int]]:
    """``(m, b)`` with ``|m| + b <= order``, by total degree, then lexicographically."""
    out = [(m, b) for b in range(order + 1) for m in itertools.product(range(order + 1), repeat=n_t)
           if sum(m) + b <= order]
    return sorted(out, key=lambda mb: (sum(mb[0]) + mb[1], mb[1], tuple(-x for x in mb[0])))


def _check(spec: ModelSpec, kind: str, order: int) -> None:
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"spec must be a ModelSpec, got {type(spec).__name__}")
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} is not known; allowed: {', '.join(KINDS)}")
    if isinstance(order, bool) or not isinstance(order, int) or not 1 <= order <= MAX_ORDER:
        raise ValueError(f"order={order!r} is not allowed; allowed: an int in 1..{MAX_ORDER}")
    if spec.activation == "relu":
        raise ValueError(f"the normal form of {kind} needs a smooth activation; allowed: erf, linear "
                         "(got relu)")
    nmax = MAX_N[kind][order]
    if spec.N > nmax:
        raise ValueError(f"N={spec.N} is too large for the normal form of {kind} at order {order} (the "
                         f"symbolic cost grows like C(N + order, order)); allowed: N <= {nmax} at this "
                         f"order (limits per order: {MAX_N[kind]})")


def normal_form(spec: ModelSpec, kind: str = "overlap", order: int = 2, units: tuple[int, ...] | None = None,
                fit: BestFit | None = None) -> NormalForm:
    """The normal form of the flow near the singular set ``kind`` (module docstring).

    Parameters
    ----------
    spec : the K-unit model (erf or linear units, ``N <= MAX_N[kind][order]``; linear dependence: K = 3,
        N = 3, linear units); its skip directions are used, ``spec.alpha`` is not (``alpha`` is the
        expansion variable).
    kind : ``"overlap"``, ``"elimination-w"``, ``"elimination-J"`` or ``"linear-dependence"``.
    order : the total degree in ``(t, alpha)`` kept, ``1..3``.
    units : ``(i, j)`` for the overlap (default ``(0, 1)``), ``(i,)`` for elimination (default ``(0,)``);
        linear dependence involves all three units (None or ``(0, 1, 2)``).
    fit : the best (K-1)-unit plain fit (found with :func:`best_fit` when omitted; linear dependence uses
        its exact numbers when ``fit.exact`` is set).
    """
    _check(spec, kind, order)
    if kind == "overlap":
        units = tuple(units) if units is not None else (0, 1)
        if len(units) != 2:
            raise ValueError(f"units={units!r}: the overlap needs two unit indices (i, j), i < j")
        chart = overlap(spec, *units)
    elif kind == "linear-dependence":
        if units is not None and tuple(units) != (0, 1, 2):
            raise ValueError(f"units={units!r}: linear dependence involves all three units; allowed: None "
                             "or (0, 1, 2)")
        units = (0, 1, 2)
        chart = linear_dependence(spec)
    else:
        units = tuple(units) if units is not None else (0,)
        if len(units) != 1:
            raise ValueError(f"units={units!r}: elimination needs one unit index (i,)")
        chart = elimination(spec, units[0], which=kind[-1])
    fit = fit if fit is not None else best_fit(chart.parent_spec)
    trans, free = chart.transverse, chart.free
    comps = [*trans, *free]
    # linear dependence with a closed-form fit: the parent numbers enter exactly (rationals, one square root)
    exact = kind == "linear-dependence" and fit.exact is not None
    at_fit = {p: (sp.nsimplify(v) if exact else sp.Float(v, 30))
              for p, v in zip(chart.parent, fit.exact if exact else fit.theta, strict=True)}
    flows = [e.xreplace(at_fit) for e in _flow_with_alpha(chart, [chart.coords.index(s) for s in comps])]
    zero = {**{s: 0 for s in trans}, ALPHA: 0}
    simplify = {"overlap": sp.cancel, "elimination-J": sp.expand,
                "linear-dependence": sp.expand}.get(kind, lambda e: e)
    coefficients: dict[tuple[str, Index, int], sp.Expr] = {}
    for s, e in zip(comps, flows, strict=True):
        # alpha first (L is a quadratic polynomial in alpha, so the alpha-derivatives are small), then t
        by_alpha = [e.xreplace({ALPHA: 0})]
        for _ in range(order):
            e = sp.diff(e, ALPHA)
            by_alpha.append(e.xreplace({ALPHA: 0}))
        cache: dict[tuple[Index, int], sp.Expr] = {((0,) * len(trans), b): x for b, x in enumerate(by_alpha)}
        for m, b in _indices(len(trans), order):
            c = _derivative(cache, trans, m, b).xreplace(zero)
            c = c / (prod(factorial(x) for x in m) * factorial(b))
            if exact:  # a polynomial in f with coefficients in Q(sqrt(q)), q = |J_1 x J_2|^2
                c = sp.collect(sp.expand(sp.radsimp(sp.expand(c))), free)
            else:
                c = _chop(_half_exponents(simplify(sp.N(c, 20))))
            coefficients[(s.name, m, b)] = sp.Integer(0) if not exact and _negligible(c, free) else c
    K = Kmat = None
    if kind == "overlap":
        from ghostsing.analytic.milnor import amari_K

        ak = amari_K(spec.replace(alpha=0.0), fit=fit, pair=units)
        Kmat = np.asarray(ak.matrix, dtype=np.float64)
        K = float(ak.value) if ak.value is not None else None
    v1 = degenerate = err = None
    if kind == "linear-dependence":
        err = ("slow_drift covers overlap and elimination only; the alpha-order drift of the free "
               "coordinates with the parent held at the fit is c[f]_0,1(w_3, a, b) of this expansion "
               "(NormalForm.alpha_drift)")
    else:
        try:
            from ghostsing.analytic.slow_drift import slow_drift

            sd = slow_drift(spec, kind=kind, pair=units, fit=fit)
            v1, degenerate = sd.v1, bool(sd.degenerate)
            v1 = float(v1) if np.ndim(v1) == 0 else np.asarray(v1, dtype=np.float64)
        except (ImportError, ValueError) as exc:  # e.g. an elimination set that is not a critical line
            err = str(exc)
    return NormalForm(spec, chart, fit, order, tuple(free), tuple(trans), coefficients, K, v1, degenerate,
                      err, Kmat)


def _derivative(cache: dict[tuple[Index, int], sp.Expr], trans: tuple[sp.Symbol, ...], m: Index,
                b: int) -> sp.Expr:
    """``d^m_t d^b_alpha`` of the flow at ``alpha = 0`` (before ``t = 0``), built from a cached lower one;
    ``cache`` holds the ``m = 0`` entries."""
    if (m, b) not in cache:
        k = max(range(len(m)), key=lambda q: m[q])
        lower = tuple(x - (q == k) for q, x in enumerate(m))
        cache[(m, b)] = sp.diff(_derivative(cache, trans, lower, b), trans[k])
    return cache[(m, b)]


def overlap_normal_form(spec: ModelSpec, order: int = 2, pair: tuple[int, int] = (0, 1),
                        fit: BestFit | None = None) -> NormalForm:
    """The normal form near the overlap line ``O_pair``: :func:`normal_form` with ``kind="overlap"``."""
    return normal_form(spec, "overlap", order, units=pair, fit=fit)


def _half_exponents(c: sp.Expr) -> sp.Expr:
    """Float exponents left by ``sympy.N`` (``x**0.5``) written back as rationals (``sqrt(x)``)."""
    return c.replace(lambda q: q.is_Pow and isinstance(q.exp, sp.Float) and float(2 * q.exp).is_integer(),
                     lambda q: sp.Pow(q.base, sp.Rational(int(2 * q.exp), 2)))


def _chop(c: sp.Expr, tol: float = 1e-15) -> sp.Expr:
    """Numbers below ``tol`` in absolute value set to 0 (rounding of the fit's residual gradient)."""
    return c.xreplace({f: sp.Integer(0) for f in c.atoms(sp.Float) if abs(f) < tol})


_PROBES = (-3, -1.5, -0.5, 0, 0.7, 2, 3)


def _negligible(c: sp.Expr, free: tuple[sp.Symbol, ...], tol: float = 1e-12) -> bool:
    """True when ``c(f)`` is 0, or below ``tol`` in absolute value at seven probe points of the free
    coordinates (rounding left from the fit's 1e-15-level residual gradient)."""
    if c == 0:
        return True
    if not (c.free_symbols & set(free)):
        return abs(complex(sp.N(c, 20))) < tol
    vals = []
    for k, x in enumerate(_PROBES):
        sub = {s: sp.Float(_PROBES[(k + 3 * q) % len(_PROBES)] if q else x, 20) for q, s in enumerate(free)}
        vals.append(complex(sp.N(c.xreplace(sub), 20)))
    return max(abs(v) for v in vals) < tol


__all__ = ["KINDS", "MAX_N", "MAX_ORDER", "NormalForm", "normal_form", "overlap_normal_form"]
