r"""Normal form of the flow near the overlap line: Taylor coefficients in the transverse coordinate and alpha.

Setting: the overlap chart ``xi = (w, Jbar, ...; z; u)`` of :func:`ghostsing.analytic.manifold_coords.overlap`
(``u = J_i - J_j`` transverse, ``z = (w_i - w_j)/w`` free) with the parent coordinates held at the best
plain (K-1)-unit fit ``theta'*``, one input dimension (``N = 1``: ``u`` is a number).  The loss is exactly
quadratic in the skip strength, ``L = L_0 + alpha L_1 + alpha^2 L_2``, so the chart flow
``d xi/dt = D phi . (-grad_theta L)(psi(xi))`` is analytic in ``(u, alpha)`` and

.. math::

    \dot\xi_k = \sum_{a + b \le n} c^{(k)}_{ab}(z)\, u^a \alpha^b + O(|u, \alpha|^{n+1}),
    \qquad c^{(k)}_{ab}(z) = \frac{1}{a!\, b!}\,
    \partial_u^a \partial_\alpha^b \dot\xi_k \Big|_{u = 0,\ \alpha = 0}.

Each coefficient is derived exactly in SymPy (the fit's numbers enter as 30-digit Floats) and is a closed
form in ``z``: at ``u = 0`` both units have ``J_i = J_j = Jbar``, so every Gaussian kernel is a number and
the ``z``-dependence is rational.  The terms that decide the dynamics near the line:

* ``du/dt = c_10(z) u + ...`` with ``c_10(z) = 2 (1 - z^2) K`` (Amari's ``K`` of
  :func:`ghostsing.analytic.milnor.amari_K`, the rate with ``(w, Jbar)`` held at the fit); the growth rate
  of a perturbation that keeps its shape is the transverse *eigenvalue*
  ``mu(z) = 2 (1 - z^2) K / (1 + z^2) + O(K^2/|Hess'|)`` (exact values:
  :func:`ghostsing.analytic.milnor.transverse_eigenvalues`);
* ``dz/dt = c_01(z) alpha + c_20(z) u^2 + ...``: ``c_00 = c_10 = 0`` (the line is critical at
  ``alpha = 0``), ``c_20`` is the second-order push along the line, and ``c_01`` the skip term.  With the
  parent coordinates free to relax (they are attracted at rate ``|Hess'|``) the drift *on the slow
  manifold* is the projection ``v1`` of :func:`ghostsing.analytic.slow_drift.slow_drift`,
  ``dz/dt = alpha v1 + O(alpha^2)``; ``c_01(z)`` is the instantaneous value at the fit
  (``c_01(z) = v1 - z (F1_{w_i} + F1_{w_j}) / w``, ``F1 = -grad L_1``), equal to ``v1`` at ``z = 0``.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import factorial

import numpy as np
import sympy as sp

from ghostsing.analytic.loss import population_loss
from ghostsing.analytic.manifold_coords import Chart, overlap
from ghostsing.analytic.manifold_fit import ALPHA, BestFit, best_fit
from ghostsing.models import ModelSpec

MAX_ORDER = 3


@dataclass(frozen=True, eq=False)
class NormalForm:
    """Taylor coefficients of the overlap-chart flow in ``(u, alpha)`` at the fit (module docstring).

    Attributes
    ----------
    spec, chart, fit : the model (its skip directions; ``spec.alpha`` is not used), the overlap chart and
        the parent fit at which the coefficients are taken.
    order : the largest total degree ``a + b`` kept.
    z, u : the chart's free and transverse symbols.
    coefficients : ``{(name, a, b): expr}`` for ``name`` in ``("u", "z")``: ``c_ab(z)`` as closed forms in
        ``z`` (the coefficient of ``u^a alpha^b`` in ``du/dt`` resp. ``dz/dt``).
    K : Amari's K at the fit; v1 : the first-order drift on the slow manifold (``slow_drift``), or None
        when it could not be computed (then ``v1_error`` says why); degenerate : ``v1`` vanishes.
    """

    spec: ModelSpec
    chart: Chart
    fit: BestFit
    order: int
    z: sp.Symbol
    u: sp.Symbol
    coefficients: dict[tuple[str, int, int], sp.Expr]
    K: float
    v1: float | None
    degenerate: bool | None
    v1_error: str | None = None

    def coefficient(self, name: str, a: int, b: int) -> sp.Expr:
        """``c_ab(z)`` of ``du/dt`` (``name="u"``) or ``dz/dt`` (``name="z"``)."""
        if (name, a, b) not in self.coefficients:
            raise ValueError(f"coefficient ({name!r}, {a}, {b}) is not kept; allowed: name in ('u', 'z'), "
                             f"a + b <= {self.order}")
        return self.coefficients[(name, a, b)]

    def truncated(self, name: str) -> sp.Expr:
        """The truncated right-hand side ``sum c_ab(z) u^a alpha^b`` of ``du/dt`` or ``dz/dt``."""
        return sp.Add(*[c * self.u**a * ALPHA**b for (n, a, b), c in self.coefficients.items() if n == name])

    def evaluate(self, name: str, a: int, b: int, z: float) -> float:
        """``c_ab(z)`` as a float."""
        return float(self.coefficient(name, a, b).xreplace({self.z: sp.Float(z, 30)}))

    def sections(self) -> dict[str, dict[str, object]]:
        """Sections for :func:`ghostsing.analytic.latex.latex_document` / ``markdown_note``."""
        z = self.z
        intro = (f"Overlap line of units {self.chart.units[0] + 1} and {self.chart.units[1] + 1}: parent "
                 f"coordinates at the best plain fit {np.round(self.fit.theta, 8).tolist()}, expanded in "
                 f"$u$ and $\\alpha$ to total order {self.order}. Amari's K = {self.K:.10g}.")
        out: dict[str, object] = {"": intro,
                                  r"\frac{du}{dt}": self.truncated("u"),
                                  r"\frac{dz}{dt}": self.truncated("z")}
        Kf = sp.Float(self.K, 15)
        lead = {r"c^{(u)}_{10}(z) \;\text{vs}\; 2(1 - z^2) K": 2 * (1 - z**2) * Kf,
                r"\mu(z) \approx 2 (1 - z^2) K / (1 + z^2)": 2 * (1 - z**2) * Kf / (1 + z**2)}
        out.update(lead)
        if self.v1 is not None:
            out["%text-v1"] = (f"Drift on the slow manifold (first order in alpha): dz/dt = alpha v1, v1 = "
                               f"{self.v1:.10g}" + (" (degenerate: the fate is decided at second order)"
                                                   if self.degenerate else "") + ".")
        elif self.v1_error:
            out["%text-v1"] = f"Slow-manifold drift v1 not available: {self.v1_error}."
        return {"Normal form near the overlap line": out}

    def text(self) -> str:
        """Plain-text normal form (one line per kept coefficient)."""
        lines = [f"normal form near the overlap line (parent at the fit {self.fit.theta.tolist()}), order "
                 f"{self.order} in (u, alpha); Amari K = {self.K:.12g}"]
        for name in ("u", "z"):
            lines.append(f"  d{name}/dt = {self.truncated(name)}".replace("\\alpha", "alpha"))
        for (name, a, b), c in self.coefficients.items():
            if c != 0:
                lines.append(f"  c[{name}]_{a}{b}(z) = {c}")
        if self.v1 is not None:
            lines.append(f"  slow-manifold drift: dz/dt = alpha v1, v1 = {self.v1:.12g}"
                         + (" (degenerate)" if self.degenerate else ""))
        elif self.v1_error:
            lines.append(f"  slow-manifold drift v1 not available: {self.v1_error}")
        return "\n".join(lines) + "\n"


def _flow_with_alpha(chart: Chart) -> sp.Matrix:
    """``d xi/dt`` in the chart with the skip strength as the symbol :data:`ALPHA`."""
    spec = chart.spec
    K, N = spec.K, spec.N
    w = list(chart.theta[:K])
    J = sp.Matrix(K, N, list(chart.theta[K:]))
    L = population_loss(spec, w, J, alpha=ALPHA)
    sub = dict(zip(chart.theta, chart.psi, strict=True))
    F = sp.Matrix([-sp.diff(L, p).xreplace(sub) for p in chart.theta])
    return chart.dphi * F


def overlap_normal_form(spec: ModelSpec, order: int = 2, pair: tuple[int, int] = (0, 1),
                        fit: BestFit | None = None) -> NormalForm:
    """The normal form of the flow near the overlap line ``O_pair`` (module docstring).

    ``spec`` needs ``N = 1`` and a smooth activation (erf or linear); its skip directions are used,
    ``spec.alpha`` is not (``alpha`` is the expansion variable).  ``order`` in ``1..3``.
    """
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"spec must be a ModelSpec, got {type(spec).__name__}")
    if isinstance(order, bool) or not isinstance(order, int) or not 1 <= order <= MAX_ORDER:
        raise ValueError(f"order={order!r} is not allowed; allowed: an int in 1..{MAX_ORDER}")
    if spec.N != 1:
        raise ValueError(f"overlap_normal_form needs N = 1 (u a number); got N={spec.N}; allowed: N = 1")
    if spec.activation == "relu":
        raise ValueError("overlap_normal_form needs a smooth activation; allowed: erf, linear (got relu)")
    from ghostsing.analytic.milnor import amari_K

    chart = overlap(spec, *pair)
    fit = fit if fit is not None else best_fit(chart.parent_spec)
    z, u = chart.free[0], chart.transverse[0]
    flow = _flow_with_alpha(chart)
    at_fit = {p: sp.Float(v, 30) for p, v in zip(chart.parent, fit.theta, strict=True)}
    comps = {"u": flow[chart.coords.index(u)].xreplace(at_fit),
             "z": flow[chart.coords.index(z)].xreplace(at_fit)}
    coefficients: dict[tuple[str, int, int], sp.Expr] = {}
    for name, e in comps.items():
        for a in range(order + 1):
            da = sp.diff(e, u, a) if a else e
            for b in range(order + 1 - a):
                d = sp.diff(da, ALPHA, b) if b else da
                c = d.xreplace({u: 0, ALPHA: 0}) / (factorial(a) * factorial(b))
                c = _chop(sp.cancel(sp.N(c, 20)))
                coefficients[(name, a, b)] = sp.Integer(0) if _negligible(c, z) else c
    K = amari_K(spec.replace(alpha=0.0), fit=fit, pair=pair).value
    v1 = degenerate = err = None
    try:
        from ghostsing.analytic.slow_drift import slow_drift

        sd = slow_drift(spec, kind="overlap", pair=pair, fit=fit)
        v1, degenerate = float(sd.v1), bool(sd.degenerate)
    except (ImportError, ValueError) as exc:  # the slow-drift module is optional here
        err = str(exc)
    return NormalForm(spec, chart, fit, order, z, u, coefficients, float(K), v1, degenerate, err)


def _chop(c: sp.Expr, tol: float = 1e-15) -> sp.Expr:
    """Numbers below ``tol`` in absolute value set to 0 (rounding of the fit's residual gradient)."""
    return c.xreplace({f: sp.Integer(0) for f in c.atoms(sp.Float) if abs(f) < tol})


def _negligible(c: sp.Expr, z: sp.Symbol, tol: float = 1e-12) -> bool:
    """True when ``c(z)`` is 0, or below ``tol`` in absolute value at z in {-3, -1.5, -0.5, 0, 0.7, 2, 3}
    (rounding left from the fit's 1e-15-level residual gradient)."""
    if c == 0:
        return True
    vals = [complex(c.xreplace({z: sp.Float(x, 20)}).evalf(20)) for x in (-3, -1.5, -0.5, 0, 0.7, 2, 3)]
    return max(abs(v) for v in vals) < tol


__all__ = ["MAX_ORDER", "NormalForm", "overlap_normal_form"]
