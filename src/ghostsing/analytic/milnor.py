"""The overlap line of critical points, its stability, and the Milnor-attractor segment.

One idea: the stability of the overlap line of critical points at ``alpha = 0``: Amari's K, the transverse
spectrum along the line and the Milnor segment they bound.

Setting (Fukumizu & Amari 2000; Amari, Park & Ozeki 2006; Wei et al. 2008).
Let ``theta'* = (..., w, Jbar, ...)`` be the best (K-1)-unit fit and embed it into ``O_ij`` with the
chart of :func:`ghostsing.analytic.manifold_coords.overlap` (``u = J_i - J_j`` transverse, ``z`` free).
With ``r* = y - f'(x)`` the residual of the fit, expand the loss in ``u`` at fixed ``(w, z, Jbar)``::

    f = w g(Jbar.x) + (w (1 - z^2)/8) g''(Jbar.x) (u.x)^2 + O(u^3)   (the O(u) terms cancel)
    L = L'* - (1 - z^2)/2 u^T Kmat u + O(u^3),   Kmat = (w/4) E[r* g''(Jbar.x) x x^T]

``Kmat`` is Amari's ``K`` (a number for N = 1).  It is exact in closed form: with
``F(J) = E[r* g(J.x)] = sum_m v_m I2(B_m, J) - sum_k w'_k I2(J'_k, J)`` (closed-form ``I2``),
``Kmat = (w/4) Hess_J F(J)`` at ``J = Jbar``.  In the chart the Hessian of ``L`` at a point of the line
is block diagonal, ``Hess' (+) 0_z (+) H_uu`` with ``H_uu = -(1 - z^2) Kmat`` (because ``dL/du = 0`` on the
whole of ``{u = 0}`` and ``d^2 L / dz du = 0`` at the fit).  The gradient flow in the chart has the metric
``G = D psi^T D psi`` with ``(G^-1)_uu = 2``, ``(G^-1)_{Jbar u} = z``, ``G_uu = (1 + z^2)/2``.  Hence, with
``(w, Jbar)`` held at the fit (the instantaneous rates, checked numerically in the tests)::

    du/dt    = 2 (1 - z^2) Kmat u + O(u^2)
    dJbar/dt = z (1 - z^2) Kmat u + O(u^2)
    dz/dt    = -z (z^2 + 3) K u^2 / w^2 + z (1 - z^2) P u^2 / 4 + O(u^3),   P = E[g g''(Jbar x) x^2]  (N = 1)

(the ``P`` term comes from the change of the network output at second order in ``u``; it is absent from
the form that assumes ``w`` re-adjusted).  Because ``Jbar`` moves at first order too, the
*eigenvalue* of the linearised flow (the growth rate of a perturbation that keeps its shape) is not
``2 (1 - z^2) K`` but, to leading order in ``K / |Hess'|``, the Rayleigh quotient of ``H_uu`` along
``d psi/du``::

    mu(z) = -H_uu / G_uu = 2 (1 - z^2) K / (1 + z^2) + O(K^2 / |Hess'|)      (exact at z = 0: mu = 2K)

and, exactly, the spectrum of the flow Jacobian at ``embed(z)`` is that of
``-G^{-1} (Hess' (+) 0 (+) -(1 - z^2) Kmat)`` (:func:`block_spectrum`).

**Certificate.**  ``Hess_theta L = D phi^T (Hess' (+) 0 (+) H_uu) D phi`` is congruent to the block matrix, so
by Sylvester's law of inertia the exact flow Jacobian ``-Hess_theta L`` at ``embed(z)`` has exactly as many
positive eigenvalues as ``H_uu(z)`` has negative ones (when ``Hess'`` is positive definite).  Hence, for
``N = 1``: ``K > 0`` => ``|z| > 1`` attracts, ``|z| < 1`` repels; ``K < 0`` => ``|z| < 1`` attracts; the
transverse eigenvalue vanishes exactly at ``z = +-1`` (where one of ``w_i, w_j`` is 0).  The exact
transverse eigenvalue (numerical, from the generated Jacobian) agrees with ``2 (1 - z^2) K / (1 + z^2)``
to leading order in ``K / |Hess'|`` (the ``u``-``Jbar`` coupling of ``G`` mixes
it with the parallel modes).
In the weights: ``|z| > 1`` <=> ``w_i w_j < 0``; ``|z| < 1`` <=> ``w_i, w_j`` of the sign of ``w``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import sympy as sp
from scipy import integrate, optimize, special

from ghostsing.analytic import gaussian
from ghostsing.analytic.loss import derive, exact
from ghostsing.analytic.manifold_coords import Chart, overlap, parent_spec
from ghostsing.analytic.minima import BestFit, best_fit
from ghostsing.models import ModelSpec


# ====================================================================== Amari's K
@dataclass(frozen=True, eq=False)
class AmariK:
    """Amari's ``Kmat = (w/4) E[r* g''(Jbar.x) x x^T]`` at the merged unit of the best (K-1)-unit fit.

    matrix : N x N (float); value : ``matrix[0, 0]`` when N = 1 else None; eigenvalues : ascending.
    expr : the closed form as a SymPy matrix in the parent symbols (chart ``parent``).
    quad : for N = 1, the same number by ``scipy.integrate.quad`` of the 1-D Gaussian integral
    (independent check), else None.
    """

    matrix: np.ndarray
    value: float | None
    eigenvalues: np.ndarray
    expr: sp.Matrix
    quad: float | None


def amari_K_expr(chart: Chart) -> sp.Matrix:
    """``Kmat`` in closed form, as a function of the parent coordinates of an overlap chart."""
    if chart.kind != "overlap":
        raise ValueError(f"amari_K needs an overlap chart, got {chart.kind!r}")
    spec, N = chart.spec, chart.spec.N
    Kp = spec.K - 1
    i = chart.units[0]
    order = sorted([i, *[k for k in range(spec.K) if k not in chart.units]])
    m0 = order.index(i)
    pw = list(chart.parent[:Kp])
    pJ = [list(chart.parent[Kp + m * N: Kp + (m + 1) * N]) for m in range(Kp)]
    x = [sp.Dummy(f"x{n}", real=True) for n in range(N)]
    g = spec.activation
    v = [exact(t) for t in spec.v]
    B = [[exact(t) for t in row] for row in spec.B]

    def dot(p, q):
        return sp.Add(*[a * b for a, b in zip(p, q, strict=True)])

    def i2(P):
        return gaussian.pair_average(g, dot(P, P), dot(x, x), dot(P, x))

    F = sum((v[m] * i2(B[m]) for m in range(spec.M)), sp.Integer(0))
    F -= sum((pw[k] * i2(pJ[k]) for k in range(Kp)), sp.Integer(0))
    H = sp.hessian(F, x).xreplace(dict(zip(x, pJ[m0], strict=True)))
    out = pw[m0] / 4 * H
    return out.applyfunc(sp.simplify) if N == 1 else out


def _g2(activation: str, s: np.ndarray) -> np.ndarray:
    if activation == "erf":
        return -s * np.sqrt(2 / np.pi) * np.exp(-s * s / 2)
    if activation == "linear":
        return np.zeros_like(s)
    raise ValueError(f"activation={activation!r} has no smooth g''; allowed: erf, linear")


def _g(activation: str, s):
    return special.erf(s / np.sqrt(2)) if activation == "erf" else s


def amari_K(spec: ModelSpec, fit: BestFit | None = None, pair: tuple[int, int] = (0, 1)) -> AmariK:
    """Amari's K for the overlap ``O_pair`` of ``spec`` at the best (K-1)-unit fit (see module docstring).

    For N = 1 also computes ``K = (w/4) int (y(x) - f'(x)) g''(Jbar x) x^2 phi(x) dx`` by quadrature
    (``epsabs = 1e-14``), an independent check of the closed form.
    """
    chart = overlap(spec, *pair)
    if spec.activation == "relu":
        raise ValueError("amari_K needs a smooth activation; allowed: erf, linear (got relu)")
    fit = fit if fit is not None else best_fit(chart.parent_spec)
    expr = amari_K_expr(chart)
    vals = dict(zip(chart.parent, fit.theta, strict=True))
    Kmat = np.array(expr.xreplace({s: sp.Float(v, 30) for s, v in vals.items()}).evalf(20), dtype=np.float64)
    quad = None
    if spec.N == 1:
        Kp = spec.K - 1
        pw, pJ = fit.spec.split(fit.theta)
        m0 = sorted([pair[0], *[k for k in range(spec.K) if k not in pair]]).index(pair[0])
        w, Jb = pw[m0], pJ[m0, 0]
        g = spec.activation

        def integrand(x):
            y = sum(spec.v[m] * _g(g, spec.B[m, 0] * x) for m in range(spec.M))
            f = sum(pw[k] * _g(g, pJ[k, 0] * x) for k in range(Kp))
            return (y - f) * _g2(g, np.asarray(Jb * x)) * x * x * np.exp(-x * x / 2) / np.sqrt(2 * np.pi)

        quad = float(w / 4 * integrate.quad(integrand, -np.inf, np.inf, epsabs=1e-14, epsrel=1e-13,
                                            limit=400)[0])
    return AmariK(Kmat, float(Kmat[0, 0]) if spec.N == 1 else None, np.linalg.eigvalsh(Kmat), expr, quad)


# ====================================================================== the line of critical points
@dataclass(frozen=True, eq=False)
class CriticalLine:
    """The best (K-1)-unit fit embedded into ``O_ij`` for each ``z`` of a grid.

    chart : the overlap chart; fit : the parent fit; z : (n,) grid; theta : (n, P) points;
    loss : (n,) ``L_K`` (equal to ``fit.loss`` for every z at alpha = 0); grad_norm : (n,);
    hessian_eigenvalues : (n, P) ascending; realisable : the teacher is a (K-1)-unit network, so the
    line is a line of global minima with loss ``sigma^2/2``.
    """

    chart: Chart
    fit: BestFit
    z: np.ndarray
    theta: np.ndarray
    loss: np.ndarray
    grad_norm: np.ndarray
    hessian_eigenvalues: np.ndarray
    realisable: bool

    def point(self, z: float) -> np.ndarray:
        """``theta`` of the line at free coordinate ``z``."""
        return self.chart.embed(self.fit.theta, [z])


def critical_line(spec: ModelSpec, z: Sequence[float] | np.ndarray | None = None,
                  pair: tuple[int, int] = (0, 1), fit: BestFit | None = None, seed: int = 0) -> CriticalLine:
    """The line ``{embed(theta'*, z)}`` in ``O_pair`` with loss, gradient and Hessian at each ``z``.

    ``spec.alpha`` is used for the K-unit loss (at alpha > 0 the points stop being critical: the
    gradient there is the ghost of :mod:`manifold_fit`); the fit is always the plain (K-1)-unit one.
    """
    chart = overlap(spec, *pair)
    fit = fit if fit is not None else best_fit(chart.parent_spec, seed=seed)
    zs = np.linspace(-3, 3, 61) if z is None else np.asarray(z, dtype=np.float64).ravel()
    model = derive(spec).compile()
    th = np.array([chart.embed(fit.theta, [zz]) for zz in zs])
    loss = np.array([model.loss(t) for t in th])
    gn = np.array([np.linalg.norm(model.flow(t)) for t in th])
    ev = np.array([np.linalg.eigvalsh(-model.jacobian(t)) for t in th])
    realisable = spec.M <= spec.K - 1 and fit.loss - spec.sigma**2 / 2 < 1e-12
    return CriticalLine(chart, fit, zs, th, loss, gn, ev, bool(realisable))


# ====================================================================== transverse eigenvalues
def transverse_eigenvalues(chart: Chart, fit: BestFit, z: Sequence[float] | np.ndarray,
                           compiled=None) -> tuple[np.ndarray, np.ndarray]:
    """Exact transverse eigenvalues of the flow Jacobian ``-Hess L`` at ``embed(theta'*, z)``.

    For each ``z`` the eigenvectors ``e`` of ``-Hess_theta L`` are written in the chart, ``D phi e``, and the
    N eigenvalues with the largest share of their (normalised) chart vector on the ``u`` coordinates are
    returned (sorted), together with the count of positive eigenvalues of the whole Jacobian (the
    unstable directions; Sylvester's law of inertia ties it to the sign of ``-(1 - z^2) Kmat``).
    Returns ``(mu (n, N), n_unstable (n,))``.
    """
    model = compiled if compiled is not None else derive(chart.spec).compile()
    N = len(chart.transverse)
    tidx = [chart.coords.index(s) for s in chart.transverse]
    zs = np.atleast_1d(np.asarray(z, dtype=np.float64))
    mus = np.empty((zs.size, N))
    nun = np.empty(zs.size, dtype=np.int64)
    dphi = chart._num[2]
    for k, zz in enumerate(zs):
        th = np.ascontiguousarray(chart.embed(fit.theta, [zz]))
        A = model.jacobian(th)
        A = (A + A.T) / 2
        lam, vec = np.linalg.eigh(A)
        D = np.asarray(dphi(th), dtype=np.float64)
        X = D @ vec
        X /= np.linalg.norm(X, axis=0, keepdims=True)
        share = np.sum(X[tidx] ** 2, axis=0)
        pick = np.argsort(share)[-N:]
        mus[k] = np.sort(lam[pick])
        scale = max(1.0, float(np.max(np.abs(lam))))
        nun[k] = int(np.sum(lam > 1e-9 * scale))
    return mus, nun


def block_spectrum(chart: Chart, fit: BestFit, Kmat: np.ndarray,
                   z: Sequence[float] | np.ndarray) -> np.ndarray:
    """Eigenvalues (ascending, (n, P)) of ``-G(z)^{-1} (Hess' (+) 0_z (+) -(1 - z^2) Kmat)`` at ``embed(z)``.

    Built only from the parent fit's Hessian, Amari's ``Kmat`` and the chart metric
    ``G = D psi^T D psi``; equal to the spectrum of the K-unit flow Jacobian ``-Hess L`` at the embedded
    point (module docstring), which the tests check against the generated Jacobian.
    """
    if chart.kind != "overlap":
        raise ValueError(f"block_spectrum needs an overlap chart, got {chart.kind!r}")
    pmodel = derive(chart.parent_spec).compile()
    Hp = -pmodel.jacobian(np.ascontiguousarray(fit.theta))
    n_p, N = chart.n_parent, len(chart.transverse)
    dpsi = sp.lambdify([chart.coords], chart.dpsi, "numpy")
    out = []
    for zz in np.atleast_1d(np.asarray(z, dtype=np.float64)):
        Ht = np.zeros((n_p + 1 + N, n_p + 1 + N))
        Ht[:n_p, :n_p] = Hp
        Ht[n_p + 1:, n_p + 1:] = -(1 - zz**2) * np.asarray(Kmat, dtype=np.float64)
        D = np.asarray(dpsi(np.concatenate([fit.theta, [zz], np.zeros(N)])), dtype=np.float64)
        out.append(np.sort(np.linalg.eigvals(-np.linalg.solve(D.T @ D, Ht)).real))
    return np.array(out)


@dataclass(frozen=True, eq=False)
class MilnorInterval:
    """The attracting part of the overlap line of critical points (the Milnor-attractor segment).

    Attributes
    ----------
    spec, pair, fit : the model, the overlapping units, the best (K-1)-unit fit.
    K : Amari's K (:class:`AmariK`).
    rule : ``"|z| > 1"``, ``"|z| < 1"``, ``"none"`` (Kmat indefinite: a saddle for every z) or
        ``"degenerate"`` (Kmat = 0, e.g. the realisable case: no transverse curvature at second order).
    attracting, repelling : tuples of closed-form intervals ``(lo, hi)`` of z (``+-inf`` allowed).
    boundaries : the exact boundaries ``(-1.0, 1.0)`` where the transverse eigenvalue vanishes.
    boundaries_numeric : the sign changes of the exact transverse eigenvalue, located by ``brentq``.
    z, mu, mu_leading, mu_eigen_leading, n_unstable : the certificate grid, the exact transverse
        eigenvalues (n, N), Amari's instantaneous rate ``2 (1 - z^2) eig(Kmat)`` (n, N), the leading order of
        the eigenvalue ``2 (1 - z^2) eig(Kmat) / (1 + z^2)`` (n, N) and the number of unstable directions of
        the exact Jacobian at each z.
    parent_is_minimum : the Hessian of the (K-1)-unit fit is positive definite.
    certified : parent_is_minimum, the inertia count matches ``-(1 - z^2) Kmat`` at every grid point, the
        numeric boundaries are within 1e-7 of +-1, and (N = 1, P <= 8) the real roots of the
        pseudo-determinant polynomial are +-1 to 1e-9.
    pdet, pdet_roots : :func:`pseudo_determinant` ``c_1(z)`` of the exact Jacobian on the line and its real
        roots (None / () when not computed).
    """

    spec: ModelSpec
    pair: tuple[int, int]
    fit: BestFit
    K: AmariK
    rule: str
    attracting: tuple[tuple[float, float], ...]
    repelling: tuple[tuple[float, float], ...]
    boundaries: tuple[float, ...]
    boundaries_numeric: tuple[float, ...]
    z: np.ndarray
    mu: np.ndarray
    mu_leading: np.ndarray
    mu_eigen_leading: np.ndarray
    n_unstable: np.ndarray
    parent_is_minimum: bool
    certified: bool
    pdet: sp.Expr | None = None
    pdet_roots: tuple[float, ...] = ()

    def describe(self) -> str:
        """One paragraph of text for scripts and reports."""
        kv = self.K.value if self.K.value is not None else self.K.eigenvalues.tolist()
        i, j = self.pair[0] + 1, self.pair[1] + 1
        weights = {"|z| > 1": f"w_{i} w_{j} < 0", "|z| < 1": f"w_{i} w_{j} > 0"}.get(self.rule, "")
        return (f"Amari K = {kv} (quad check: {self.K.quad}); Milnor-attractor segment of O_{i}{j}: "
                f"{self.rule}{' (' + weights + ')' if weights else ''}; "
                f"attracting z in {list(self.attracting)}; "
                f"boundaries {list(self.boundaries_numeric)}; "
                f"pseudo-determinant roots {list(self.pdet_roots)}; "
                f"certified = {self.certified}")


def _sign_rule(eig: np.ndarray, scale: float) -> str:
    tol = 1e-9 * max(1.0, scale)
    if np.all(np.abs(eig) < tol):
        return "degenerate"
    if np.all(eig > tol):
        return "|z| > 1"
    if np.all(eig < -tol):
        return "|z| < 1"
    return "none"


def milnor_interval(spec: ModelSpec, pair: tuple[int, int] = (0, 1), fit: BestFit | None = None,
                    z: Sequence[float] | np.ndarray | None = None, seed: int = 0) -> MilnorInterval:
    """The z-interval of the overlap line that attracts (closed form from the sign of Amari's K,
    certified by the exact eigenvalues of the generated flow Jacobian; see the module docstring).

    ``spec`` must be plain (``alpha = 0``): at ``alpha > 0`` there is no line of critical points.
    """
    if spec.alpha != 0:
        raise ValueError(f"milnor_interval needs alpha = 0 (the line exists only there), "
                         f"got alpha={spec.alpha}")
    chart = overlap(spec, *pair)
    fit = fit if fit is not None else best_fit(chart.parent_spec, seed=seed)
    Kobj = amari_K(spec, fit, pair)
    hscale = float(np.max(np.abs(fit.hessian_eigenvalues)))
    rule = _sign_rule(Kobj.eigenvalues, hscale)
    inf = float("inf")
    attracting, repelling = {
        "|z| > 1": (((-inf, -1.0), (1.0, inf)), ((-1.0, 1.0),)),
        "|z| < 1": (((-1.0, 1.0),), ((-inf, -1.0), (1.0, inf))),
        "none": ((), ((-inf, inf),)),
        "degenerate": ((), ()),
    }[rule]
    zs = np.linspace(-3.0, 3.0, 49) if z is None else np.asarray(z, dtype=np.float64).ravel()
    model = derive(spec).compile()
    mu, nun = transverse_eigenvalues(chart, fit, zs, model)
    lead = 2 * (1 - zs[:, None] ** 2) * Kobj.eigenvalues[None, :]
    parent_min = bool(np.all(fit.hessian_eigenvalues > 1e-9 * max(1.0, hscale)))
    # predicted unstable count: eigenvalues of -H_uu = (1 - z^2) Kmat that are > 0
    pred = np.array([int(np.sum((1 - zz**2) * Kobj.eigenvalues > 0)) for zz in zs])
    off = np.abs(np.abs(zs) - 1) > 1e-6
    inertia_ok = bool(np.all(pred[off] == nun[off]))
    bnum: list[float] = []
    if rule in ("|z| > 1", "|z| < 1") and spec.N == 1:
        def mu_of(t):
            return transverse_eigenvalues(chart, fit, [t], model)[0][0, 0]
        for lo, hi in ((-1.5, -0.5), (0.5, 1.5)):
            if np.sign(mu_of(lo)) != np.sign(mu_of(hi)):
                bnum.append(float(optimize.brentq(mu_of, lo, hi, xtol=1e-13, rtol=1e-13)))
    pdet, proots = None, ()
    if spec.N == 1 and spec.n_params <= 8 and rule in ("|z| > 1", "|z| < 1"):
        pdet = pseudo_determinant(spec, fit, pair)
        proots = pseudo_determinant_roots(pdet, chart.free[0])
    certified = parent_min and inertia_ok and (
        rule not in ("|z| > 1", "|z| < 1") or spec.N > 1
        or (len(bnum) == 2 and max(abs(abs(b) - 1) for b in bnum) < 1e-7)) and (
        pdet is None or (len(proots) == 2 and max(abs(abs(r) - 1) for r in proots) < 1e-9))
    return MilnorInterval(spec, tuple(pair), fit, Kobj, rule, attracting, repelling, (-1.0, 1.0),
                          tuple(bnum), zs, mu, lead, lead / (1 + zs[:, None] ** 2), nun, parent_min,
                          bool(certified), pdet, proots)


def line_jacobian(spec: ModelSpec, fit: BestFit, pair: tuple[int, int] = (0, 1)) -> sp.Matrix:
    """The exact flow Jacobian ``-Hess L`` at ``embed(theta'*, z)`` as a SymPy matrix in the symbol ``z``
    (the fit's numbers enter as 30-digit Floats); its characteristic polynomial divided by ``mu`` holds
    the parallel and the transverse eigenvalues as functions of z."""
    chart = overlap(spec, *pair)
    d = derive(spec)
    emb = chart.embed_symbolic([sp.Float(t, 30) for t in fit.theta], chart.free)
    return d.jacobian.xreplace(dict(zip(d.params, emb, strict=True)))


def pseudo_determinant(spec: ModelSpec, fit: BestFit, pair: tuple[int, int] = (0, 1)) -> sp.Expr:
    """``c_1(z)``: the coefficient of ``mu^1`` in ``det(mu I - A(z))``, ``A`` = :func:`line_jacobian`.

    ``A(z)`` has the eigenvalue 0 (the z direction) for every z, so ``c_1 = +- (product of the other
    eigenvalues)``.  By Cauchy-Binet on ``Hess_theta = D phi^T (Hess' (+) 0 (+) H_uu) D phi``,
    ``c_1(z) = +- det(Hess') det(H_uu(z)) S(z)`` with ``S(z) > 0`` a sum of squared minors of ``D phi``:
    its real roots are the zeros of ``det H_uu = det(-(1 - z^2) Kmat)``, i.e. ``z = +-1`` — the exact
    boundaries of the Milnor segment, read off a polynomial in z.  Returned as a polynomial in the chart's
    ``z`` with 30-digit Float coefficients; coefficients below 1e-10 of the largest are dropped (they come
    from the fit's residual gradient, ~1e-15, and would add spurious roots at |z| ~ 1e14).
    """
    A = line_jacobian(spec, fit, pair).applyfunc(lambda e: sp.expand(sp.N(e, 30)))
    z = overlap(spec, *pair).free[0]
    mu = sp.Dummy("mu")
    cp = sp.Poly(sp.expand((mu * sp.eye(A.rows) - A).det(method="berkowitz")), mu)
    c1 = sp.Poly(cp.coeff_monomial(mu), z)
    big = max(abs(c) for c in c1.coeffs())
    keep = [(k[0], c) for k, c in zip(c1.monoms(), c1.coeffs(), strict=True) if abs(c) > 1e-10 * big]
    return sp.Add(*[c * z**k for k, c in keep])


def pseudo_determinant_roots(poly: sp.Expr, z: sp.Symbol) -> tuple[float, ...]:
    """The real roots of :func:`pseudo_determinant` (sorted)."""
    roots = sp.Poly(poly, z).nroots(n=30)
    return tuple(sorted(float(sp.re(r)) for r in roots if abs(sp.im(r)) < 1e-12))


__all__ = ["AmariK", "CriticalLine", "MilnorInterval", "amari_K", "amari_K_expr",
           "block_spectrum", "critical_line", "line_jacobian", "milnor_interval",
           "parent_spec", "pseudo_determinant", "pseudo_determinant_roots", "transverse_eigenvalues"]
