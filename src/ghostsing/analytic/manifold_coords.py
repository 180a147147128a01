"""Reduced coordinates around the singular manifolds of the plain student (SymPy, exact).

Every manifold is described by a chart ``xi = (p, f, t)`` of the full parameter space
``theta = (w_1..w_K, J_1, ..., J_K)`` (flat order of :class:`~ghostsing.models.ModelSpec`):

* ``p`` — the *parent* coordinates: exactly the parameters ``theta'`` of a (K-1)-unit student;
* ``f`` — the *free* coordinates, along the manifold but invisible to the (K-1)-unit function;
* ``t`` — the *transverse* coordinates; the manifold is ``{t = 0}``.

On ``t = 0`` (and ``alpha = 0``) the K-unit network computes the (K-1)-unit network ``theta' = p``, so
the embedding of a (K-1)-unit parameter is ``xi = (theta', f, 0)`` (Fukumizu & Amari 2000).

=====================  ===============================================  =====================  ===========
manifold               chart (``psi``: xi -> theta)                     free ``f``             transverse
=====================  ===============================================  =====================  ===========
overlap ``O_ij``       ``w_i = w(1+z)/2, w_j = w(1-z)/2,``               ``z``                  ``u`` (N)
                       ``J_i = Jbar + (1-z)/2 u, J_j = Jbar - (1+z)/2 u``
elimination ``w_i=0``  identity (reordered)                             ``J_i`` (N)            ``w_i``
elimination ``J_i=0``  identity (reordered)                             ``w_i``                ``J_i`` (N)
linear dependence      ``w_1 = w_1' - a w_3, w_2 = w_2' - b w_3,``      ``w_3, a, b``          ``rho``
(K = 3, N = 3)         ``J_3 = a J_1 + b J_2 + rho n``,
                       ``n = J_1 x J_2 / |J_1 x J_2|``
=====================  ===============================================  =====================  ===========

Overlap coordinates: ``w = w_i + w_j``, ``z = (w_i - w_j)/w``, ``u = J_i - J_j``,
``Jbar = (w_i J_i + w_j J_j)/w`` (Amari et al. use ``u = J_j - J_i``; the leading-order
flow is even in ``u``, so nothing below depends on that sign).

The gradient flow ``theta' = -grad L`` written in a chart is the chain rule through the inverse map::

    d xi / dt = D phi(theta) . (-grad_theta L)(theta),   theta = psi(xi)
              = -G(xi)^{-1} grad_xi L(psi(xi)),          G = D psi^T D psi

(the second form, with the pulled-back metric ``G``, is the independent check used in the tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import sympy as sp

from ghostsing.analytic.loss import derive, population_loss, student_symbols
from ghostsing.models import ModelSpec

KINDS = ("overlap", "elimination-w", "elimination-J", "linear-dependence")


def parent_spec(spec: ModelSpec) -> ModelSpec:
    """The (K-1)-unit plain student (``alpha = 0``) learning the same teacher as ``spec``."""
    if spec.K < 2:
        raise ValueError(f"K={spec.K}: a singular manifold needs K >= 2 student units")
    return spec.replace(K=spec.K - 1, alpha=0.0, skip_directions=None)


def _parent_symbols(spec: ModelSpec, merged: int | None) -> tuple[list[sp.Symbol], list[list[sp.Symbol]]]:
    """Symbols of the parent (K-1)-unit parameters; the merged unit of an overlap gets ``w``, ``Jbar``."""
    Kp, N = spec.K - 1, spec.N
    w: list[sp.Symbol] = []
    J: list[list[sp.Symbol]] = []
    for m in range(Kp):
        if merged is not None and m == merged:
            w.append(sp.Symbol("w", real=True))
            J.append([sp.Symbol(r"\bar{J}" if N == 1 else rf"\bar{{J}}_{{{n + 1}}}", real=True)
                      for n in range(N)])
        else:
            w.append(sp.Symbol(f"w'_{m + 1}", real=True))
            J.append([sp.Symbol(f"J'_{{{m + 1},{n + 1}}}", real=True) for n in range(N)])
    return w, J


@dataclass(frozen=True, eq=False)
class Chart:
    """A singular manifold of the plain K-unit student and its reduced coordinates ``xi = (p, f, t)``.

    Attributes
    ----------
    spec : the K-unit model.
    kind : one of ``overlap``, ``elimination-w``, ``elimination-J``, ``linear-dependence``.
    units : the student units involved (0-based; ``(i, j)`` for an overlap, ``(i,)`` for elimination).
    parent, free, transverse : the symbols of ``p`` (P' = (K-1)(N+1) of them), ``f`` and ``t``.
    psi : ``theta`` as expressions of ``xi`` (P entries, flat ``theta`` order).
    phi : ``xi`` as expressions of the student symbols ``theta`` (inverse of ``psi``).
    theta : the student symbols ``(w_1..w_K, J_{1,1}..J_{K,N})`` that ``phi`` is written in.
    description : one line of maths.
    """

    spec: ModelSpec
    kind: str
    units: tuple[int, ...]
    parent: tuple[sp.Symbol, ...]
    free: tuple[sp.Symbol, ...]
    transverse: tuple[sp.Symbol, ...]
    psi: tuple[sp.Expr, ...]
    phi: tuple[sp.Expr, ...]
    theta: tuple[sp.Symbol, ...]
    description: str

    # ------------------------------------------------------------------ coordinates
    @property
    def coords(self) -> tuple[sp.Symbol, ...]:
        """All reduced coordinates in order: ``parent + free + transverse``."""
        return (*self.parent, *self.free, *self.transverse)

    @property
    def n_parent(self) -> int:
        return len(self.parent)

    @property
    def parent_spec(self) -> ModelSpec:
        """The (K-1)-unit plain model whose parameters are the parent coordinates."""
        return parent_spec(self.spec)

    def psi_matrix(self) -> sp.Matrix:
        """``psi`` as a P x 1 Matrix."""
        return sp.Matrix(self.psi)

    @cached_property
    def dpsi(self) -> sp.Matrix:
        """``D psi = d theta / d xi`` (P x P), as expressions of ``xi``."""
        return sp.Matrix(self.psi).jacobian(sp.Matrix(self.coords))

    @cached_property
    def dphi_theta(self) -> sp.Matrix:
        """``D phi = d xi / d theta`` (P x P) as expressions of the student symbols ``theta``."""
        return sp.Matrix(self.phi).jacobian(sp.Matrix(self.theta))

    @cached_property
    def dphi(self) -> sp.Matrix:
        """``D phi`` written in ``xi`` (``theta = psi(xi)`` substituted; rational parts cancelled, except
        for linear dependence where the radicals make cancellation slow and nothing is simplified)."""
        D = self.dphi_theta.xreplace(dict(zip(self.theta, self.psi, strict=True)))
        return D if self.kind == "linear-dependence" else D.applyfunc(sp.cancel)

    # ------------------------------------------------------------------ loss and flow
    def loss(self, alpha: sp.Expr | None = None) -> sp.Expr:
        """The population loss written in the reduced coordinates, ``L(psi(xi))``."""
        K, N = self.spec.K, self.spec.N
        w = list(self.psi[:K])
        J = sp.Matrix(K, N, list(self.psi[K:]))
        return population_loss(self.spec, w, J, alpha=alpha)

    @cached_property
    def flow(self) -> sp.Matrix:
        """``d xi/dt = D phi . (-grad_theta L)`` at ``theta = psi(xi)`` (P x 1, exact, ``spec.alpha``)."""
        F = derive(self.spec).flow.xreplace(dict(zip(self.theta, self.psi, strict=True)))
        return self.dphi * F

    def embed_symbolic(self, parent: Sequence[sp.Expr], free: Sequence[sp.Expr]) -> sp.Matrix:
        """``theta = psi(parent, free, t = 0)`` as a Matrix of expressions."""
        if len(parent) != self.n_parent or len(free) != len(self.free):
            raise ValueError(f"embed needs {self.n_parent} parent and {len(self.free)} free values, got "
                             f"{len(parent)} and {len(free)}")
        sub = dict(zip(self.coords, [*parent, *free, *([0] * len(self.transverse))], strict=True))
        return sp.Matrix([sp.sympify(e).xreplace(sub) for e in self.psi])

    # ------------------------------------------------------------------ numbers
    @cached_property
    def _num(self):
        return (sp.lambdify([self.coords], list(self.psi), "numpy"),
                sp.lambdify([self.theta], list(self.phi), "numpy"),
                sp.lambdify([self.theta], self.dphi_theta, "numpy"))

    def to_theta(self, xi: Sequence[float]) -> np.ndarray:
        """Numeric ``theta = psi(xi)`` (one point)."""
        xi = self._check(xi, "xi")
        return np.asarray(self._num[0](xi), dtype=np.float64)

    def from_theta(self, theta: Sequence[float]) -> np.ndarray:
        """Numeric ``xi = phi(theta)`` (one point; needs ``theta`` off the chart's own singular set)."""
        theta = self._check(theta, "theta")
        return np.asarray(self._num[1](theta), dtype=np.float64)

    def embed(self, parent: Sequence[float], free: Sequence[float] | float) -> np.ndarray:
        """Numeric ``theta = psi(parent, free, 0)``: a (K-1)-unit parameter placed on the manifold."""
        free = np.atleast_1d(np.asarray(free, dtype=np.float64))
        parent = np.asarray(parent, dtype=np.float64)
        if parent.shape != (self.n_parent,) or free.shape != (len(self.free),):
            raise ValueError(f"embed needs parent of shape ({self.n_parent},) and free of shape "
                             f"({len(self.free)},), got {parent.shape} and {free.shape}")
        return self.to_theta(np.concatenate([parent, free, np.zeros(len(self.transverse))]))

    def reduced_flow(self, xi: Sequence[float], compiled=None) -> np.ndarray:
        """Numeric ``d xi/dt = D phi(psi(xi)) . flow(psi(xi))`` with the generated Numba flow of ``spec``.

        ``compiled`` is ``derive(spec).compile()`` (built here when omitted; pass it in loops).
        """
        xi = self._check(xi, "xi")
        model = compiled if compiled is not None else derive(self.spec).compile()
        theta = np.ascontiguousarray(self._num[0](xi), dtype=np.float64)
        D = np.asarray(self._num[2](theta), dtype=np.float64)
        return D @ model.flow(theta)

    @cached_property
    def _vec(self):
        return (sp.lambdify(list(self.coords), list(self.psi), "numpy"),
                sp.lambdify(list(self.theta), list(self.dphi_theta), "numpy"))

    @staticmethod
    def _stack(entries, n: int) -> np.ndarray:
        return np.stack([np.broadcast_to(np.asarray(e, dtype=np.float64), (n,)) for e in entries], axis=-1)

    def to_theta_many(self, xi: np.ndarray) -> np.ndarray:
        """Vectorised ``psi``: ``xi`` of shape (n, P) -> ``theta`` (n, P)."""
        xi = np.asarray(xi, dtype=np.float64)
        if xi.ndim != 2 or xi.shape[1] != self.spec.n_params:
            raise ValueError(f"xi has shape {xi.shape}; allowed: (n, {self.spec.n_params})")
        return self._stack(self._vec[0](*xi.T), xi.shape[0])

    def reduced_flow_many(self, xi: np.ndarray, compiled=None) -> np.ndarray:
        """Vectorised :meth:`reduced_flow` for ``xi`` of shape (n, P); returns (n, P)."""
        model = compiled if compiled is not None else derive(self.spec).compile()
        theta = np.ascontiguousarray(self.to_theta_many(xi))
        n, P = theta.shape
        F = np.empty((n, P))
        for k in range(n):
            model.flow_into(theta[k], F[k])
        D = self._stack(self._vec[1](*theta.T), n).reshape(n, P, P)
        return np.einsum("nij,nj->ni", D, F)

    def _check(self, x: Sequence[float], name: str) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        P = self.spec.n_params
        if x.shape != (P,):
            raise ValueError(f"{name} has shape {x.shape}; allowed: ({P},)")
        return x

    def latex(self) -> dict[str, str]:
        """LaTeX of the chart: ``theta = psi(xi)`` and ``xi = phi(theta)``, one line per coordinate."""
        out = {}
        for s, e in zip(self.theta, self.psi, strict=True):
            out[f"psi:{s.name}"] = f"{sp.latex(s)} = {sp.latex(e)}"
        for s, e in zip(self.coords, self.phi, strict=True):
            out[f"phi:{s.name}"] = f"{sp.latex(s)} = {sp.latex(e)}"
        return out


# ====================================================================== constructors
def _check_spec(spec: ModelSpec) -> None:
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"spec must be a ModelSpec, got {type(spec).__name__}")


def _check_unit(name: str, value: int, K: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not 0 <= value < K:
        raise ValueError(f"{name}={value!r} is not a unit index; allowed: 0..{K - 1} (0-based)")
    return int(value)


def overlap(spec: ModelSpec, i: int = 0, j: int = 1) -> Chart:
    """The overlap manifold ``O_ij = {J_i = J_j}`` with coordinates ``(p; z; u)``.

    ``p`` is the parent (K-1)-unit parameter in which units ``i`` and ``j`` are merged into one unit
    ``(w, Jbar)`` at position ``i`` (the other units keep their order); then::

        w = w_i + w_j,  z = (w_i - w_j)/w,  u = J_i - J_j,  Jbar = (w_i J_i + w_j J_j)/w
        w_i = w (1+z)/2,  w_j = w (1-z)/2,  J_i = Jbar + (1-z)/2 u,  J_j = Jbar - (1+z)/2 u

    The chart is singular where ``w = 0``.
    """
    _check_spec(spec)
    K, N = spec.K, spec.N
    if K < 2:
        raise ValueError(f"K={K}: an overlap needs K >= 2 student units")
    i, j = _check_unit("i", i, K), _check_unit("j", j, K)
    if i >= j:
        raise ValueError(f"overlap(i={i}, j={j}) needs i < j")
    wt, Jt = student_symbols(K, N)
    others = [k for k in range(K) if k not in (i, j)]
    # parent units: the merged unit sits at position i among the remaining units
    order = sorted([i, *others])
    merged = order.index(i)
    pw, pJ = _parent_symbols(spec, merged)
    z = sp.Symbol("z", real=True)
    u = [sp.Symbol("u" if N == 1 else f"u_{{{n + 1}}}", real=True) for n in range(N)]
    w, Jb = pw[merged], pJ[merged]

    W: dict[int, sp.Expr] = {i: w * (1 + z) / 2, j: w * (1 - z) / 2}
    JJ: dict[int, list[sp.Expr]] = {i: [Jb[n] + (1 - z) / 2 * u[n] for n in range(N)],
                                    j: [Jb[n] - (1 + z) / 2 * u[n] for n in range(N)]}
    for m, k in enumerate(order):
        if k != i:
            W[k], JJ[k] = pw[m], list(pJ[m])
    psi = tuple([W[k] for k in range(K)] + [e for k in range(K) for e in JJ[k]])

    wsum = wt[i] + wt[j]
    phi_of: dict[sp.Symbol, sp.Expr] = {w: wsum, z: (wt[i] - wt[j]) / wsum}
    for n in range(N):
        phi_of[u[n]] = Jt[i, n] - Jt[j, n]
        phi_of[Jb[n]] = (wt[i] * Jt[i, n] + wt[j] * Jt[j, n]) / wsum
    for m, k in enumerate(order):
        if k != i:
            phi_of[pw[m]] = wt[k]
            for n in range(N):
                phi_of[pJ[m][n]] = Jt[k, n]
    parent = tuple(pw) + tuple(s for row in pJ for s in row)
    coords = (*parent, z, *u)
    return Chart(spec, "overlap", (i, j), parent, (z,), tuple(u), psi,
                 tuple(phi_of[c] for c in coords), (*wt, *list(Jt)),
                 f"O_{{{i + 1}{j + 1}}} = {{J_{i + 1} = J_{j + 1}}}: w, z, u, Jbar")


def elimination(spec: ModelSpec, i: int = 0, which: str = "w") -> Chart:
    """The elimination manifold ``{w_i = 0}`` (``which="w"``) or ``{J_i = 0}`` (``which="J"``).

    The chart is a reordering of ``theta``: ``p`` = the other K-1 units (flat parent order), then
    ``f = J_i, t = w_i`` for ``{w_i = 0}`` or ``f = w_i, t = J_i`` for ``{J_i = 0}``.  ``{J_i = 0}`` is
    a manifold of unit elimination only where ``g(0) = 0`` (erf, linear; relu's closed form is not
    differentiable at ``J_i = 0``, so it is refused).
    """
    _check_spec(spec)
    K, N = spec.K, spec.N
    if K < 2:
        raise ValueError(f"K={K}: elimination needs K >= 2 student units")
    i = _check_unit("i", i, K)
    if which not in ("w", "J"):
        raise ValueError(f"which={which!r} is not known; allowed: 'w' ({{w_i = 0}}) or 'J' ({{J_i = 0}})")
    if which == "J" and spec.activation == "relu":
        raise ValueError("elimination(which='J') needs g(0) = 0 with a smooth closed form; allowed "
                         "activations: erf, linear (got relu)")
    wt, Jt = student_symbols(K, N)
    others = [k for k in range(K) if k != i]
    pw = [wt[k] for k in others]
    pJ = [Jt[k, n] for k in others for n in range(N)]
    Ji = [Jt[i, n] for n in range(N)]
    if which == "w":
        free, trans = tuple(Ji), (wt[i],)
        desc = f"{{w_{i + 1} = 0}}: J_{i + 1} free, w_{i + 1} transverse"
    else:
        free, trans = (wt[i],), tuple(Ji)
        desc = f"{{J_{i + 1} = 0}}: w_{i + 1} free, J_{i + 1} transverse"
    theta = (*wt, *list(Jt))
    return Chart(spec, f"elimination-{which}", (i,), (*pw, *pJ), free, trans, theta,
                 (*pw, *pJ, *free, *trans), theta, desc)


def linear_dependence(spec: ModelSpec) -> Chart:
    """Linear dependence of three ``linear`` units in N = 3: ``J_3 = a J_1 + b J_2 + rho n``.

    ``n = J_1 x J_2 / |J_1 x J_2|`` is the unit normal of the plane of ``J_1, J_2`` and ``rho`` the
    transverse coordinate (``rho = 0``: the three units are linearly dependent).  The parent
    coordinates are the two-unit parameter ``(w_1', w_2', J_1, J_2)`` with ``w_1' = w_1 + a w_3``,
    ``w_2' = w_2 + b w_3``, so that on ``rho = 0`` the network is ``(w_1' J_1 + w_2' J_2) . x``; the free
    coordinates are ``(w_3, a, b)``.  Inverse: ``(a, b)`` solve the Gram system
    ``[J_1.J_1, J_1.J_2; J_1.J_2, J_2.J_2] (a, b) = (J_1.J_3, J_2.J_3)``,
    ``rho = det(J_1, J_2, J_3)/|J_1 x J_2|``.
    The chart is singular where ``J_1 || J_2``.
    """
    _check_spec(spec)
    if spec.K != 3 or spec.N != 3 or spec.activation != "linear":
        raise ValueError(f"linear_dependence needs K=3, N=3, activation='linear'; got K={spec.K}, "
                         f"N={spec.N}, activation={spec.activation!r}")
    wt, Jt = student_symbols(3, 3)
    p1, p2 = sp.Symbol("w'_1", real=True), sp.Symbol("w'_2", real=True)
    a, b, w3, rho = (sp.Symbol(s, real=True) for s in ("a", "b", "w_3", r"\rho"))
    J1 = [sp.Symbol(f"J_{{1,{n + 1}}}", real=True) for n in range(3)]
    J2 = [sp.Symbol(f"J_{{2,{n + 1}}}", real=True) for n in range(3)]
    c = sp.Matrix(J1).cross(sp.Matrix(J2))
    nrm = sp.sqrt(c.dot(c))
    J3 = [a * J1[n] + b * J2[n] + rho * c[n] / nrm for n in range(3)]
    psi = (p1 - a * w3, p2 - b * w3, w3, *J1, *J2, *J3)
    # inverse map in the student symbols
    T1, T2, T3 = (sp.Matrix([Jt[k, n] for n in range(3)]) for k in range(3))
    g11, g12, g22 = T1.dot(T1), T1.dot(T2), T2.dot(T2)
    det = g11 * g22 - g12**2
    ai = (g22 * T1.dot(T3) - g12 * T2.dot(T3)) / det
    bi = (g11 * T2.dot(T3) - g12 * T1.dot(T3)) / det
    cr = T1.cross(T2)
    rhoi = cr.dot(T3) / sp.sqrt(cr.dot(cr))
    phi = (wt[0] + ai * wt[2], wt[1] + bi * wt[2], *list(T1), *list(T2), wt[2], ai, bi, rhoi)
    parent = (p1, p2, *J1, *J2)
    return Chart(spec, "linear-dependence", (0, 1, 2), parent, (w3, a, b), (rho,), psi, phi,
                 (*wt, *list(Jt)), "J_3 = a J_1 + b J_2 + rho n (three linear units, N = 3)")


def chart(spec: ModelSpec, kind: str, units: Sequence[int] | None = None) -> Chart:
    """Dispatch on ``kind`` (one of :data:`KINDS`); ``units`` as in the constructors."""
    if kind == "overlap":
        return overlap(spec, *(units or (0, 1)))
    if kind in ("elimination-w", "elimination-J"):
        return elimination(spec, *(units or (0,)), which=kind[-1])
    if kind == "linear-dependence":
        return linear_dependence(spec)
    raise ValueError(f"kind={kind!r} is not known; allowed: {', '.join(KINDS)}")
