"""The population loss of a :class:`~ghostsing.models.ModelSpec`, its gradient flow and Hessian (SymPy).

With ``y = sum_m v_m g(B_m.x) + sigma xi`` and ``f(x) = sum_i w_i [g(J_i.x) + alpha s_i.x]``::

    L(theta) = 1/2 E[(y - f)^2] = 1/2 (E[y^2] - 2 E[y f] + E[f^2])
    E[y^2]  = sum_{m,n} v_m v_n I2(B_m, B_n) + sigma^2
    E[y f]  = sum_{m,i} v_m w_i ( I2(B_m, J_i) + alpha E[g(B_m.x) s_i.x] )
    E[f^2]  = sum_{i,j} w_i w_j ( I2(J_i, J_j) + alpha E[g(J_i.x) s_j.x] + alpha E[g(J_j.x) s_i.x]
                                  + alpha^2 s_i.s_j )

where ``I2(P, Q) = E[g(P.x) g(Q.x)]`` with ``a = P.P, b = Q.Q, c = P.Q`` and the linear averages use
``p = P.s`` (closed forms in :mod:`ghostsing.analytic.gaussian`).  The gradient flow is
``d theta / dt = -grad L``; its Jacobian is ``-Hess L``.

Teacher numbers are turned into exact rationals (``0.4 -> 2/5``), so that identities such as
"this point is critical" can be proved by simplification to zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import sympy as sp

from ghostsing.analytic import gaussian
from ghostsing.models import ModelSpec


def exact(x: float) -> sp.Rational:
    """The decimal value of a float as an exact SymPy rational (``0.4 -> 2/5``)."""
    return sp.Rational(repr(float(x)))


def student_symbols(K: int, N: int) -> tuple[tuple[sp.Symbol, ...], sp.Matrix]:
    """Symbols ``w_1..w_K`` and the K x N matrix of ``J_{i,n}`` (real)."""
    w = tuple(sp.Symbol(f"w_{i + 1}", real=True) for i in range(K))
    J = sp.Matrix(K, N, lambda i, n: sp.Symbol(f"J_{{{i + 1},{n + 1}}}", real=True))
    return w, J


def _dot(p: Sequence[sp.Expr], q: Sequence[sp.Expr]) -> sp.Expr:
    return sp.Add(*[a * b for a, b in zip(p, q, strict=True)])


def _rows(M: sp.Matrix) -> list[list[sp.Expr]]:
    return [list(M.row(i)) for i in range(M.rows)]


def population_loss(
    spec: ModelSpec,
    w: Sequence[sp.Expr],
    J: sp.Matrix,
    alpha: sp.Expr | None = None,
) -> sp.Expr:
    """``L = 1/2 E[(y - f(x))^2]`` in closed form (module docstring) as a SymPy expression.

    ``w`` (K entries) and ``J`` (K x N) may be any SymPy expressions (symbols, or reduced coordinates
    substituted in); ``alpha`` overrides ``spec.alpha`` (pass a Symbol to keep the skip strength free).
    """
    g = spec.activation
    K, N = spec.K, spec.N
    if len(w) != K or J.shape != (K, N):
        raise ValueError(f"w has {len(w)} entries and J shape {J.shape}; allowed: {K} and ({K}, {N})")
    a_skip = exact(spec.alpha) if alpha is None else alpha
    v = [exact(x) for x in spec.v]
    B = [[exact(x) for x in row] for row in spec.B]
    S = [[exact(x) for x in row] for row in spec.skip_directions]
    Jr = _rows(J)

    def i2(P, Q, same: bool) -> sp.Expr:
        if same:
            return gaussian.self_average(g, _dot(P, P))
        return gaussian.pair_average(g, _dot(P, P), _dot(Q, Q), _dot(P, Q))

    def lin(P, s) -> sp.Expr:
        return gaussian.linear_average(g, _dot(P, P), _dot(P, s))

    Eyy = sum((v[m] * v[n] * i2(B[m], B[n], m == n) for m in range(spec.M) for n in range(spec.M)),
              sp.Integer(0)) + exact(spec.sigma) ** 2
    Eyf = sum((v[m] * w[i] * (i2(B[m], Jr[i], False) + a_skip * lin(B[m], S[i]))
               for m in range(spec.M) for i in range(K)), sp.Integer(0))
    Eff = sum((w[i] * w[j] * (i2(Jr[i], Jr[j], i == j) + a_skip * lin(Jr[i], S[j]) + a_skip * lin(Jr[j], S[i])
                              + a_skip**2 * _dot(S[i], S[j]))
               for i in range(K) for j in range(K)), sp.Integer(0))
    return sp.Rational(1, 2) * (Eyy - 2 * Eyf + Eff)


@dataclass(frozen=True, eq=False)
class Derivation:
    """The symbolic model of a spec: loss, gradient flow and Hessian in the flat parameters.

    ``params`` is ``(w_1..w_K, J_{1,1}..J_{1,N}, ..., J_{K,N})``, the flat order of ``theta``.
    Expressions are built lazily (first access) so that :meth:`compile` from the disk cache does no
    SymPy work.
    """

    spec: ModelSpec

    @cached_property
    def symbols(self) -> tuple[tuple[sp.Symbol, ...], sp.Matrix]:
        return student_symbols(self.spec.K, self.spec.N)

    @property
    def params(self) -> tuple[sp.Symbol, ...]:
        w, J = self.symbols
        return (*w, *list(J))

    @cached_property
    def loss(self) -> sp.Expr:
        """``L(theta)``."""
        w, J = self.symbols
        return population_loss(self.spec, w, J)

    @cached_property
    def gradient(self) -> sp.Matrix:
        """``grad L`` as a P x 1 Matrix."""
        return sp.Matrix([sp.diff(self.loss, p) for p in self.params])

    @cached_property
    def flow(self) -> sp.Matrix:
        """The gradient flow ``d theta/dt = -grad L`` (P x 1)."""
        return -self.gradient

    @cached_property
    def hessian(self) -> sp.Matrix:
        """``Hess L`` (P x P, symmetric; only the upper triangle is differentiated)."""
        P = len(self.params)
        H = sp.zeros(P, P)
        for i in range(P):
            for j in range(i, P):
                H[i, j] = H[j, i] = sp.diff(self.gradient[i], self.params[j])
        return H

    @property
    def jacobian(self) -> sp.Matrix:
        """The Jacobian of the flow, ``-Hess L``."""
        return -self.hessian

    def compile(self) -> CompiledModel:
        """Numba functions of ``theta`` for loss, flow and Jacobian (cached on disk by the spec hash)."""
        return compile_spec(self.spec, self)

    def latex(self) -> dict[str, str]:
        """LaTeX of the loss and of each component of the flow."""
        out = {"loss": f"L = {sp.latex(self.loss)}"}
        for p, rhs in zip(self.params, self.flow, strict=True):
            out[f"d{p.name}/dt"] = rf"\frac{{d {sp.latex(p)}}}{{dt}} = {sp.latex(rhs)}"
        return out


def derive(spec: ModelSpec) -> Derivation:
    """The symbolic loss, gradient flow and Hessian of ``spec`` (see :class:`Derivation`)."""
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"spec must be a ModelSpec, got {type(spec).__name__}")
    return Derivation(spec)


@dataclass(frozen=True)
class CompiledModel:
    """Generated Numba functions of a flat, contiguous float64 ``theta`` of length ``P``.

    ``loss(theta) -> float``; ``flow(theta) -> (P,)`` (``-grad L``); ``flow_into(theta, out)``;
    ``jacobian(theta) -> (P, P)`` (``-Hess L``); ``jacobian_into(theta, out)``; and the SIMD forms
    ``flow_lanes_into(X, OUT)`` (X, OUT: flat (P * LANES,), state j in X[j::LANES]) and
    ``jacobian_lanes_into(X, JOUT)`` (JOUT: flat (P * P * LANES,)), see
    :mod:`ghostsing.analytic.codegen`.  All are Numba dispatchers, callable from Python and from other
    Numba code.
    """

    spec: ModelSpec
    loss: object
    flow: object
    flow_into: object
    jacobian: object
    jacobian_into: object
    source: str
    flow_lanes_into: object = None
    jacobian_lanes_into: object = None

    @property
    def n_params(self) -> int:
        return self.spec.n_params


def compile_spec(spec: ModelSpec, derivation: Derivation | None = None) -> CompiledModel:
    """Generate (or load from the disk cache) the Numba functions of ``spec``'s model."""
    from ghostsing.analytic import codegen

    key = spec.key()
    module = codegen.load_cached("model", key)
    if module is None:
        d = derivation if derivation is not None else Derivation(spec)
        module = codegen.generate_module(
            "model", d.params, {"loss": d.loss, "flow": list(d.flow), "jacobian": d.jacobian}, key,
            header=f"model of {spec!r}\nparameters: {', '.join(p.name for p in d.params)}",
        )
    return CompiledModel(spec=spec, loss=module.loss, flow=module.flow, flow_into=module.flow_into,
                         jacobian=module.jacobian, jacobian_into=module.jacobian_into,
                         source=str(module.__file__), flow_lanes_into=module.flow_lanes_into,
                         jacobian_lanes_into=module.jacobian_lanes_into)
