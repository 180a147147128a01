r"""The population loss and its gradient flow written in order parameters (the field's notation).

One idea: the population loss and its gradient flow written in order parameters, with the named Gaussian
kernels that this notation needs.

The loss of :mod:`ghostsing.analytic.loss` depends on the weights only through dot products.  With the
*order parameters*

=============================  =========================================  ===========
symbol                         definition                                 kind
=============================  =========================================  ===========
``Q_ik`` (``i <= k``)          ``J_i . J_k``                              student
``R_in``                       ``J_i . B_n``                              student-teacher
``T_nm`` (``n <= m``)          ``B_n . B_m``                              teacher (constant)
``C_ij``                       ``J_i . s_j``                              student-skip
``D_nj``                       ``B_n . s_j``                              teacher-skip (constant)
``G_ij`` (``i <= j``)          ``s_i . s_j``                              skip-skip (constant)
=============================  =========================================  ===========

and the activation's Gaussian kernels as named SymPy functions

* ``I2(a, b, c) = E[g(u) g(v)]`` for ``Var u = a, Var v = b, Cov(u, v) = c``
  (:class:`I2Erf`: ``(2/pi) asin(c / sqrt((1 + a)(1 + b)))``; :class:`I2Relu`:
  ``sqrt(ab)/(2 pi) h(c / sqrt(ab))`` with the arc-cosine kernel ``h``; :class:`I2Linear`: ``c``),
* ``I1(a, p) = E[g(u) z]`` for a linear read-out ``z`` with ``Cov(u, z) = p``
  (:class:`I1Erf`: ``p sqrt(2/pi)/sqrt(1 + a)``; :class:`I1Relu`: ``p/2``; :class:`I1Linear`: ``p``),

the loss of ``f(x) = sum_i w_i [g(J_i.x) + alpha s_i.x]`` against ``y = sum_n v_n g(B_n.x) + sigma xi`` is::

    2 L = sum_{n,m} v_n v_m I2(T_nn, T_mm, T_nm) + sigma^2
          - 2 sum_{n,i} v_n w_i [ I2(T_nn, Q_ii, R_in) + alpha I1(T_nn, D_ni) ]
          + sum_{i,k} w_i w_k [ I2(Q_ii, Q_kk, Q_ik) + alpha I1(Q_ii, C_ik) + alpha I1(Q_kk, C_ki)
                                + alpha^2 G_ik ]

Gradient flow.  By the chain rule through the order parameters (``Q`` symmetric, one symbol per pair)::

    dw_i/dt = -dL/dw_i
    dJ_i/dt = -( 2 dL/dQ_ii J_i + sum_{k != i} dL/dQ_ik J_k + sum_n dL/dR_in B_n + sum_j dL/dC_ij s_j )

so ``dJ_i/dt`` is a combination of the vectors ``J_k, B_n, s_j``, and the flow *closes* on the order
parameters: with ``dJ_i/dt = sum_k a_ik J_k + sum_n b_in B_n + sum_j c_ij s_j``::

    dQ_ik/dt = sum_l (a_il Q_lk + a_kl Q_li) + sum_n (b_in R_kn + b_kn R_in) + sum_j (c_ij C_kj + c_kj C_ij)
    dR_in/dt = sum_l a_il R_ln + sum_m b_im T_mn + sum_j c_ij D_nj
    dC_ij/dt = sum_l a_il C_lj + sum_m b_im D_mj + sum_l c_il G_lj

(``Q_lk`` means ``Q_kl`` when ``l > k``, likewise for ``T`` and ``G``).  This is the ``K + K(K+1)/2 + KM
(+ K^2)``-dimensional ODE of the gradient flow, exact for every ``N``.  For ``alpha = 0`` (plain
network) the skip overlaps ``C, D, G`` do not enter and are left out.

The kernels' derivatives are written in short closed forms (:meth:`I2Erf.fdiff` etc.), e.g. for erf
``dI2/dc = 2 / (pi sqrt((1+a)(1+b) - c^2))``, ``dI2/da = -c / (pi (1+a) sqrt((1+a)(1+b) - c^2))`` and
for relu ``dI2/dc = h'(c/sqrt(ab))/(2 pi)``, ``dI2/da = sqrt(ab - c^2)/(4 pi a)`` (no 0/0 on the
diagonal ``a = b = c``).  ``I2(a, a, a)`` is the self-average, whose explicit form is the simplified
one of :func:`ghostsing.analytic.gaussian.self_average`.

Teacher numbers ``v, T, D, G``, ``sigma`` and ``alpha`` are kept as symbols in the printed form;
:attr:`OrderParameterForm.constants` holds their exact values and :meth:`OrderParameterForm.to_weights`
substitutes them together with the dot products of the weight symbols of
:func:`ghostsing.analytic.loss.student_symbols` (the inverse of the definitions above).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import sympy as sp

from ghostsing.analytic import gaussian
from ghostsing.analytic.loss import derive, exact, student_symbols
from ghostsing.models import ACTIVATIONS, ModelSpec

FORMS = ("order-parameters", "weights")


# ====================================================================== named kernels
class _NamedKernel(sp.Function):
    """Base of the named Gaussian kernels: prints as ``I2(a, b, c)`` / ``I_2(a, b, c)``.

    Subclasses set ``activation`` (one of :data:`ghostsing.models.ACTIVATIONS`), ``text_name``,
    ``latex_name`` and define ``explicit_of(*args)`` and ``fdiff``.  Numbers evaluate to the explicit
    form; :meth:`doit` (and ``rewrite("explicit")``) replace the name by the explicit form everywhere.
    """

    activation: ClassVar[str] = ""
    text_name: ClassVar[str] = ""
    latex_name: ClassVar[str] = ""

    @classmethod
    def explicit_of(cls, *args: sp.Expr) -> sp.Expr:  # pragma: no cover - every subclass overrides it
        raise TypeError(f"{cls.__name__} has no explicit form")

    def explicit(self) -> sp.Expr:
        """The explicit closed form of this kernel (no named functions left)."""
        return self.explicit_of(*self.args)

    def doit(self, **hints: Any) -> sp.Expr:
        args = [a.doit(**hints) if hints.get("deep", True) else a for a in self.args]
        return self.explicit_of(*args)

    def _eval_rewrite_as_explicit(self, *args: sp.Expr, **kwargs: Any) -> sp.Expr:
        return self.explicit_of(*args)

    def _eval_evalf(self, prec: int) -> sp.Expr:
        return self.explicit()._eval_evalf(prec)

    def _sympystr(self, printer: Any, *args: Any) -> str:
        return f"{self.text_name}({', '.join(printer._print(a) for a in self.args)})"

    def _latex(self, printer: Any, *args: Any) -> str:
        return rf"{self.latex_name}\left({', '.join(printer._print(a) for a in self.args)}\right)"

    def _pythoncode(self, printer: Any, *args: Any) -> str:
        return printer._print(self.explicit())

    _numpycode = _lambdacode = _scipycode = _mpmathcode = _pythoncode


class _I2(_NamedKernel):
    """``I2(a, b, c) = E[g(u) g(v)]``, ``Var u = a``, ``Var v = b``, ``Cov(u, v) = c`` (symmetric in a, b)."""

    nargs = 3
    text_name = "I2"
    latex_name = r"I_{2}"

    @classmethod
    def eval(cls, a: sp.Expr, b: sp.Expr, c: sp.Expr) -> sp.Expr | None:
        if a.is_Number and b.is_Number and c.is_Number:
            return cls.explicit_of(a, b, c)
        if sp.default_sort_key(a) > sp.default_sort_key(b):  # canonical order: I2(a, b, c) = I2(b, a, c)
            return cls(b, a, c)
        return None

    @classmethod
    def explicit_of(cls, a: sp.Expr, b: sp.Expr, c: sp.Expr) -> sp.Expr:
        if a == b == c:
            return gaussian.self_average(cls.activation, a)
        return gaussian.pair_average(cls.activation, a, b, c)


class I2Erf(_I2):
    """``I2(a, b, c) = (2/pi) asin(c / sqrt((1+a)(1+b)))`` for ``g(u) = erf(u/sqrt 2)``.

    Derivatives: ``dI2/dc = 2 / (pi S)``, ``dI2/da = -c / (pi (1+a) S)``, ``S = sqrt((1+a)(1+b) - c^2)``.
    """

    activation = "erf"

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        a, b, c = self.args
        # on the diagonal a = b = c (a unit with itself): (1 + a)^2 - a^2 = 1 + 2a
        S = sp.sqrt(1 + 2 * a) if a == b == c else sp.sqrt((1 + a) * (1 + b) - c**2)
        if argindex == 3:
            return 2 / (sp.pi * S)
        mine = a if argindex == 1 else b
        return -c / (sp.pi * (1 + mine) * S)


class I2Relu(_I2):
    """``I2(a, b, c) = sqrt(ab)/(2 pi) h(c/sqrt(ab))``, ``h(x) = sqrt(1 - x^2) + x (pi - acos x)``.

    Derivatives: ``dI2/dc = h'(c/sqrt(ab))/(2 pi)`` with ``h'(x) = pi - acos x``, and
    ``dI2/da = sqrt(ab - c^2)/(4 pi a)`` (because ``h - x h' = sqrt(1 - x^2)``).
    """

    activation = "relu"

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        a, b, c = self.args
        if argindex == 3:
            return gaussian.ArcCosKernelPrime(c / sp.sqrt(a * b)) / (2 * sp.pi)
        mine = a if argindex == 1 else b
        return sp.sqrt(a * b - c**2) / (4 * sp.pi * mine)


class I2Linear(_I2):
    """``I2(a, b, c) = c`` for ``g(u) = u``; ``dI2/dc = 1``, ``dI2/da = dI2/db = 0``."""

    activation = "linear"

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.Integer(1 if argindex == 3 else 0)


class _I1(_NamedKernel):
    """``I1(a, p) = E[g(u) z]`` for ``Var u = a`` and a linear read-out ``z`` with ``Cov(u, z) = p``."""

    nargs = 2
    text_name = "I1"
    latex_name = r"I_{1}"

    @classmethod
    def eval(cls, a: sp.Expr, p: sp.Expr) -> sp.Expr | None:
        if (a.is_Number and p.is_Number) or p == 0:
            return cls.explicit_of(a, p)
        return None

    @classmethod
    def explicit_of(cls, a: sp.Expr, p: sp.Expr) -> sp.Expr:
        return gaussian.linear_average(cls.activation, a, p)


class I1Erf(_I1):
    """``I1(a, p) = p sqrt(2/pi) / sqrt(1 + a)`` (Stein: ``p E[g'(u)]``)."""

    activation = "erf"

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        a, p = self.args
        if argindex == 2:
            return sp.sqrt(2 / sp.pi) / sp.sqrt(1 + a)
        return -p * sp.sqrt(2 / sp.pi) / (2 * (1 + a) ** sp.Rational(3, 2))


class I1Relu(_I1):
    """``I1(a, p) = p / 2``."""

    activation = "relu"

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.Rational(1, 2) if argindex == 2 else sp.Integer(0)


class I1Linear(_I1):
    """``I1(a, p) = p``."""

    activation = "linear"

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.Integer(1 if argindex == 2 else 0)


KERNELS: dict[str, tuple[type[_I2], type[_I1]]] = {
    "erf": (I2Erf, I1Erf), "relu": (I2Relu, I1Relu), "linear": (I2Linear, I1Linear)}
NAMED_FUNCTIONS: tuple[type[_NamedKernel], ...] = (I2Erf, I2Relu, I2Linear, I1Erf, I1Relu, I1Linear)


def kernels(activation: str) -> tuple[type[_I2], type[_I1]]:
    """The named kernel classes ``(I2, I1)`` of an activation (``erf``, ``relu``, ``linear``)."""
    if activation not in KERNELS:
        raise ValueError(f"activation={activation!r} is not known; allowed: {', '.join(ACTIVATIONS)}")
    return KERNELS[activation]


def kernel_definitions(activation: str) -> dict[str, sp.Expr]:
    """``{"I2(a, b, c)": explicit, "I1(a, p)": explicit}`` with symbols ``a, b, c, p`` (for printing)."""
    I2, I1 = kernels(activation)
    a, b, c, p = sp.symbols("a b c p", positive=True)
    return {"I2(a, b, c)": I2.explicit_of(a, b, c), "I1(a, p)": I1.explicit_of(a, p)}


def explicit(expr: Any) -> Any:
    """``expr`` with every named kernel replaced by its explicit closed form (Matrix, dict or expr)."""
    if isinstance(expr, Mapping):
        return {k: explicit(v) for k, v in expr.items()}
    if isinstance(expr, sp.MatrixBase):
        return expr.applyfunc(explicit)
    expr = sp.sympify(expr)
    reps = {f: f.explicit() for f in expr.atoms(*NAMED_FUNCTIONS)}
    return expr.xreplace(reps) if reps else expr


# ====================================================================== symbols
def _sym(name: str, i: int, k: int | None = None) -> sp.Symbol:
    return sp.Symbol(f"{name}_{i + 1}" + ("" if k is None else f"{k + 1}"), real=True)


def _symmetric(name: str, n: int) -> sp.Matrix:
    return sp.Matrix(n, n, lambda i, k: _sym(name, min(i, k), max(i, k)))


def _vector(name: str, i: int) -> sp.Symbol:
    return sp.Symbol(f"{name}_{i + 1}", real=True)


def vector_latex_names(K: int, M: int) -> dict[sp.Symbol, str]:
    """Bold LaTeX names of the vectors ``J_k``, ``B_n``, ``s_j`` (``sympy.latex(symbol_names=...)``)."""
    out = {_vector("J", k): rf"\mathbf{{J}}_{{{k + 1}}}" for k in range(K)}
    out.update({_vector("B", n): rf"\mathbf{{B}}_{{{n + 1}}}" for n in range(M)})
    out.update({_vector("s", j): rf"\mathbf{{s}}_{{{j + 1}}}" for j in range(K)})
    return out


# ====================================================================== the form
@dataclass(frozen=True, eq=False)
class OrderParameterForm:
    """Loss, flow and order-parameter ODE of ``spec`` written in order parameters (module docstring).

    Attributes
    ----------
    spec : the model.
    skip : whether the skip terms are kept (``spec.alpha > 0``); without them ``C, D, G`` and ``alpha``
        are absent.
    w : ``(w_1..w_K)``; Q, R, T, C, D, G : symbol matrices (``Q, T, G`` symmetric: ``Q[i, k]`` and
        ``Q[k, i]`` are the same symbol ``Q_ik``, ``i <= k``); C, D, G are ``None`` without skips.
    v, sigma, alpha : the teacher's second layer, noise and skip strength as symbols.
    J, B, s : vector symbols (``J_k``, ``B_n``, ``s_j``) in which ``dJ_i/dt`` is written.
    """

    spec: ModelSpec
    skip: bool
    w: tuple[sp.Symbol, ...]
    Q: sp.Matrix
    R: sp.Matrix
    T: sp.Matrix
    C: sp.Matrix | None
    D: sp.Matrix | None
    G: sp.Matrix | None
    v: tuple[sp.Symbol, ...]
    sigma: sp.Symbol
    alpha: sp.Symbol
    J: tuple[sp.Symbol, ...]
    B: tuple[sp.Symbol, ...]
    s: tuple[sp.Symbol, ...]

    # ------------------------------------------------------------------ symbols
    @property
    def order_parameters(self) -> tuple[sp.Symbol, ...]:
        """The dynamic variables: ``w_i``, the upper triangle of ``Q``, ``R`` row by row, ``C`` (skips)."""
        K, M = self.spec.K, self.spec.M
        out = [*self.w, *[self.Q[i, k] for i in range(K) for k in range(i, K)],
               *[self.R[i, n] for i in range(K) for n in range(M)]]
        if self.skip:
            out += [self.C[i, j] for i in range(K) for j in range(K)]
        return tuple(out)

    @cached_property
    def constants(self) -> dict[sp.Symbol, sp.Expr]:
        """Exact values of the teacher and skip constants: ``v, T, sigma`` (and ``alpha, D, G``)."""
        sp_ = self.spec
        Bx = [[exact(x) for x in row] for row in sp_.B]
        out: dict[sp.Symbol, sp.Expr] = {self.v[n]: exact(sp_.v[n]) for n in range(sp_.M)}
        out[self.sigma] = exact(sp_.sigma)
        for n in range(sp_.M):
            for m in range(n, sp_.M):
                out[self.T[n, m]] = sum((p * q for p, q in zip(Bx[n], Bx[m], strict=True)), sp.Integer(0))
        if self.skip:
            Sx = [[exact(x) for x in row] for row in sp_.skip_directions]
            out[self.alpha] = exact(sp_.alpha)
            for n in range(sp_.M):
                for j in range(sp_.K):
                    out[self.D[n, j]] = sum((p * q for p, q in zip(Bx[n], Sx[j], strict=True)), sp.Integer(0))
            for i in range(sp_.K):
                for j in range(i, sp_.K):
                    out[self.G[i, j]] = sum((p * q for p, q in zip(Sx[i], Sx[j], strict=True)), sp.Integer(0))
        return out

    def weight_substitution(self) -> dict[sp.Symbol, sp.Expr]:
        """``Q_ik -> J_i.J_k``, ``R_in -> J_i.B_n``, ``C_ij -> J_i.s_j`` in the weight symbols of
        :func:`ghostsing.analytic.loss.student_symbols`, plus :attr:`constants`."""
        sp_ = self.spec
        K, N = sp_.K, sp_.N
        _, Jw = student_symbols(K, N)
        rows = [list(Jw.row(i)) for i in range(K)]
        Bx = [[exact(x) for x in row] for row in sp_.B]

        def dot(p, q):
            return sp.Add(*[a * b for a, b in zip(p, q, strict=True)])

        out = dict(self.constants)
        for i in range(K):
            for k in range(i, K):
                out[self.Q[i, k]] = dot(rows[i], rows[k])
            for n in range(sp_.M):
                out[self.R[i, n]] = dot(rows[i], Bx[n])
            if self.skip:
                Sx = [[exact(x) for x in row] for row in sp_.skip_directions]
                for j in range(K):
                    out[self.C[i, j]] = dot(rows[i], Sx[j])
        return out

    def to_weights(self, expr: Any, named: bool = False) -> Any:
        """``expr`` (expr, Matrix or dict) in the weight symbols: order parameters and constants substituted,
        then (unless ``named``) the named kernels made explicit (:func:`explicit`)."""
        sub = self.weight_substitution()
        if isinstance(expr, Mapping):
            return {k: self.to_weights(e, named) for k, e in expr.items()}
        if isinstance(expr, sp.MatrixBase):
            return expr.applyfunc(lambda e: self.to_weights(e, named))
        out = sp.sympify(expr).xreplace(sub)
        return out if named else explicit(out)

    def weight_flow(self, named: bool = False) -> sp.Matrix:
        """The flow of this form in the flat weight order ``(w_1..w_K, J_{1,1}..J_{K,N})``: ``dJ_i/dt``
        assembled from its coefficients and the vectors ``J_k`` (weight symbols), ``B_n``, ``s_j``
        (numbers); see :meth:`to_weights` for ``named``."""
        spec = self.spec
        K, N = spec.K, spec.N
        _, Jw = student_symbols(K, N)
        vec = {self.J[k]: sp.Matrix(Jw.row(k)).T for k in range(K)}
        vec.update({self.B[n]: sp.Matrix([exact(x) for x in spec.B[n]]) for n in range(spec.M)})
        vec.update({self.s[j]: sp.Matrix([exact(x) for x in spec.skip_directions[j]]) for j in range(K)})
        out = [self.to_weights(e, named) for e in self.flow_w]
        for i in range(K):
            acc = sp.zeros(N, 1)
            for v_, c in self.flow_J[i].items():
                acc += self.to_weights(c, named) * vec[v_]
            out += list(acc)
        return sp.Matrix(out)

    # ------------------------------------------------------------------ loss and flow
    @cached_property
    def loss(self) -> sp.Expr:
        """``L`` in order parameters (module docstring), teacher constants as symbols."""
        K, M = self.spec.K, self.spec.M
        I2, I1 = kernels(self.spec.activation)
        Q, R, T, w, v, al = self.Q, self.R, self.T, self.w, self.v, self.alpha
        Eyy = sp.Add(*[v[n] * v[m] * I2(T[n, n], T[m, m], T[n, m]) for n in range(M) for m in range(M)])
        Eyf = sp.Add(*[v[n] * w[i] * I2(T[n, n], Q[i, i], R[i, n]) for n in range(M) for i in range(K)])
        Eff = sp.Add(*[w[i] * w[k] * I2(Q[i, i], Q[k, k], Q[i, k]) for i in range(K) for k in range(K)])
        if self.skip:
            C, D, G = self.C, self.D, self.G
            Eyf += al * sp.Add(*[v[n] * w[i] * I1(T[n, n], D[n, i]) for n in range(M) for i in range(K)])
            Eff += sp.Add(*[w[i] * w[k] * (al * I1(Q[i, i], C[i, k]) + al * I1(Q[k, k], C[k, i])
                                           + al**2 * G[i, k]) for i in range(K) for k in range(K)])
        return sp.Rational(1, 2) * (Eyy + self.sigma**2) - Eyf + sp.Rational(1, 2) * Eff

    @cached_property
    def flow_w(self) -> tuple[sp.Expr, ...]:
        """``dw_i/dt = -dL/dw_i`` (order parameters)."""
        return tuple(-sp.diff(self.loss, wi) for wi in self.w)

    @cached_property
    def flow_J(self) -> tuple[dict[sp.Symbol, sp.Expr], ...]:
        """``dJ_i/dt`` as ``{vector: coefficient}`` over ``J_k, B_n`` (and ``s_j``) (module docstring)."""
        K, M = self.spec.K, self.spec.M
        out = []
        for i in range(K):
            coef: dict[sp.Symbol, sp.Expr] = {}
            for k in range(K):
                factor = 2 if k == i else 1
                coef[self.J[k]] = -factor * sp.diff(self.loss, self.Q[i, k])
            for n in range(M):
                coef[self.B[n]] = -sp.diff(self.loss, self.R[i, n])
            if self.skip:
                for j in range(K):
                    coef[self.s[j]] = -sp.diff(self.loss, self.C[i, j])
            out.append(coef)
        return tuple(out)

    def flow_J_vector(self, i: int) -> sp.Expr:
        """``dJ_i/dt`` as one expression ``sum coefficient * vector`` (for printing)."""
        return sp.Add(*[c * vec for vec, c in self.flow_J[i].items()])

    @cached_property
    def ode(self) -> dict[sp.Symbol, sp.Expr]:
        """The closed ODE ``d(order parameter)/dt`` for every symbol of :attr:`order_parameters`."""
        K, M = self.spec.K, self.spec.M
        Q, R, T = self.Q, self.R, self.T
        out: dict[sp.Symbol, sp.Expr] = dict(zip(self.w, self.flow_w, strict=True))

        def dot_with(i: int, kind: str, idx: int) -> sp.Expr:
            """``(dJ_i/dt) . X`` for X = J_idx (kind "J"), B_idx ("B") or s_idx ("s")."""
            coef = self.flow_J[i]
            # X . J_k, X . B_n, X . s_j as order parameters / constants
            if kind == "J":
                withJ = [Q[k, idx] for k in range(K)]
                withB = [R[idx, n] for n in range(M)]
                withS = [self.C[idx, j] for j in range(K)] if self.skip else []
            elif kind == "B":
                withJ = [R[k, idx] for k in range(K)]
                withB = [T[n, idx] for n in range(M)]
                withS = [self.D[idx, j] for j in range(K)] if self.skip else []
            else:
                withJ = [self.C[k, idx] for k in range(K)]
                withB = [self.D[n, idx] for n in range(M)]
                withS = [self.G[j, idx] for j in range(K)]
            terms = [coef[self.J[k]] * withJ[k] for k in range(K)]
            terms += [coef[self.B[n]] * withB[n] for n in range(M)]
            terms += [coef[self.s[j]] * withS[j] for j in range(len(withS))]
            return sp.Add(*terms)

        for i in range(K):
            for k in range(i, K):
                out[Q[i, k]] = dot_with(i, "J", k) + dot_with(k, "J", i)
        for i in range(K):
            for n in range(M):
                out[R[i, n]] = dot_with(i, "B", n)
        if self.skip:
            for i in range(K):
                for j in range(K):
                    out[self.C[i, j]] = dot_with(i, "s", j)
        return out

    # ------------------------------------------------------------------ numbers
    def values(self, theta: np.ndarray) -> dict[sp.Symbol, float]:
        """Numeric order parameters (and constants) of a flat ``theta = (w, J)`` of ``spec``."""
        sp_ = self.spec
        w, Jm = sp_.split(np.asarray(theta, dtype=np.float64))
        out = {s: float(e) for s, e in self.constants.items()}
        out.update({self.w[i]: float(w[i]) for i in range(sp_.K)})
        for i in range(sp_.K):
            for k in range(i, sp_.K):
                out[self.Q[i, k]] = float(Jm[i] @ Jm[k])
            for n in range(sp_.M):
                out[self.R[i, n]] = float(Jm[i] @ sp_.B[n])
            if self.skip:
                for j in range(sp_.K):
                    out[self.C[i, j]] = float(Jm[i] @ sp_.skip_directions[j])
        return out

    @cached_property
    def _numeric(self) -> Any:
        args = sorted(set(self.order_parameters) | set(self.constants), key=sp.default_sort_key)
        flowJ = [[explicit(c[vec]) for vec in (*self.J, *self.B, *(self.s if self.skip else ()))]
                 for c in self.flow_J]
        f = sp.lambdify(args, [explicit(self.loss), [explicit(e) for e in self.flow_w], flowJ,
                               [explicit(self.ode[s]) for s in self.order_parameters]], "mpmath")
        return args, f

    def evaluate(self, theta: np.ndarray) -> dict[str, Any]:
        """Loss, flow (flat ``theta`` order) and order-parameter ODE at ``theta``, from this form only.

        Returns ``{"loss": float, "flow": (P,) array, "ode": (n,) array in the order of
        :attr:`order_parameters`}``; ``dJ_i/dt`` is assembled from its coefficients and the numeric
        vectors ``J_k, B_n, s_j``.  Evaluated with mpmath at 30 digits.
        """
        import mpmath

        sp_ = self.spec
        args, f = self._numeric
        vals = self.values(theta)
        with mpmath.workdps(30):
            loss, fw, fJ, ode = f(*[vals[a] for a in args])
            loss = float(loss)
            fw = np.array([float(x) for x in fw])
            coefs = np.array([[float(x) for x in row] for row in fJ])
            ode = np.array([float(x) for x in ode])
        w, Jm = sp_.split(np.asarray(theta, dtype=np.float64))
        vecs = np.vstack([Jm, sp_.B, *([sp_.skip_directions] if self.skip else [])])
        return {"loss": loss, "flow": np.concatenate([fw, (coefs @ vecs).ravel()]), "ode": ode}

    # ------------------------------------------------------------------ printing
    def latex_names(self) -> dict[sp.Symbol, str]:
        """``symbol_names`` for :func:`sympy.latex`: bold vectors ``\\mathbf{J}_k`` etc."""
        return vector_latex_names(self.spec.K, self.spec.M)

    def latex(self, expr: Any) -> str:
        """LaTeX of ``expr`` with the vectors in bold."""
        return sp.latex(expr, symbol_names=self.latex_names())

    def sections(self) -> dict[str, dict[str, Any]]:
        """Sections for :func:`ghostsing.analytic.latex.latex_document` / ``markdown_note``."""
        K = self.spec.K
        I2, I1 = kernels(self.spec.activation)
        a, b, c, p = sp.symbols("a b c p", positive=True)
        defs: dict[str, Any] = {
            "": "Order parameters: $Q_{ik} = J_i \\cdot J_k$, $R_{in} = J_i \\cdot B_n$, "
                "$T_{nm} = B_n \\cdot B_m$"
                + (", $C_{ij} = J_i \\cdot s_j$, $D_{nj} = B_n \\cdot s_j$, $G_{ij} = s_i \\cdot s_j$"
                   if self.skip else "")
                + f". Kernels of g = {self.spec.activation}: $I_2(a, b, c) = E[g(u) g(v)]$ with Var u = a, "
                  "Var v = b, Cov(u, v) = c"
                + (", and $I_1(a, p) = E[g(u) z]$ with Cov(u, z) = p" if self.skip else "") + ".",
            r"I_{2}\left(a, b, c\right)": I2.explicit_of(a, b, c),
        }
        if self.skip:
            defs[r"I_{1}\left(a, p\right)"] = I1.explicit_of(a, p)
        consts = {"": "Teacher" + (" and skip" if self.skip else "") + " constants (exact).",
                  **{sp.latex(s): v for s, v in self.constants.items()}}
        flow: dict[str, Any] = {}
        for i, wi in enumerate(self.w):
            flow[rf"\frac{{d {sp.latex(wi)}}}{{dt}}"] = self.flow_w[i]
        for i in range(K):
            flow[rf"\frac{{d \mathbf{{J}}_{{{i + 1}}}}}{{dt}}"] = self.latex(self.flow_J_vector(i))
        ode = {rf"\frac{{d {sp.latex(s)}}}{{dt}}": self.ode[s] for s in self.order_parameters[K:]}
        return {
            "Order parameters and kernels": defs,
            "Constants": consts,
            "Population loss in order parameters": {"L": self.loss},
            "Gradient flow in order parameters": flow,
            "Closed flow of the order parameters": {
                "": "Dot products of the flow of each J with J, B" + (", s" if self.skip else "")
                    + "; together with the flow of w these close on the order parameters.",
                **ode},
        }

    def text(self) -> str:
        """Plain-text form: definitions, constants, loss, flow, order-parameter ODE (SymPy ``str``)."""
        I2, I1 = kernels(self.spec.activation)
        a, b, c, p = sp.symbols("a b c p", positive=True)
        lines = ["order parameters: Q_ik = J_i.J_k, R_in = J_i.B_n, T_nm = B_n.B_m"
                 + (", C_ij = J_i.s_j, D_nj = B_n.s_j, G_ij = s_i.s_j" if self.skip else ""),
                 f"kernels (g = {self.spec.activation}):",
                 f"  I2(a, b, c) = E[g(u) g(v)] = {I2.explicit_of(a, b, c)}"]
        if self.skip:
            lines.append(f"  I1(a, p) = E[g(u) z] = {I1.explicit_of(a, p)}")
        lines += ["constants: " + ", ".join(f"{s} = {v}" for s, v in self.constants.items()), "",
                  "population loss L = 1/2 E[(y - f(x))^2]:", f"  L = {self.loss}", "",
                  "gradient flow:"]
        lines += [f"  d{wi}/dt = {e}" for wi, e in zip(self.w, self.flow_w, strict=True)]
        lines += [f"  dJ_{i + 1}/dt = {self.flow_J_vector(i)}" for i in range(self.spec.K)]
        lines += ["", "closed flow of the order parameters:"]
        lines += [f"  d{s}/dt = {self.ode[s]}" for s in self.order_parameters[self.spec.K:]]
        return "\n".join(lines) + "\n"


def order_parameter_form(spec: ModelSpec) -> OrderParameterForm:
    """The loss and flow of ``spec`` in order parameters (see :class:`OrderParameterForm`)."""
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"spec must be a ModelSpec, got {type(spec).__name__}")
    K, M = spec.K, spec.M
    skip = spec.alpha > 0
    w, _ = student_symbols(K, spec.N)
    Q = _symmetric("Q", K)
    R = sp.Matrix(K, M, lambda i, n: _sym("R", i, n))
    T = _symmetric("T", M)
    C = sp.Matrix(K, K, lambda i, j: _sym("C", i, j)) if skip else None
    D = sp.Matrix(M, K, lambda n, j: _sym("D", n, j)) if skip else None
    G = _symmetric("G", K) if skip else None
    v = tuple(_vector("v", n) for n in range(M))
    return OrderParameterForm(
        spec, skip, w, Q, R, T, C, D, G, v, sp.Symbol("sigma", nonnegative=True),
        sp.Symbol("alpha", nonnegative=True), tuple(_vector("J", k) for k in range(K)),
        tuple(_vector("B", n) for n in range(M)), tuple(_vector("s", j) for j in range(K)))


def weight_flow(spec: ModelSpec) -> sp.Matrix:
    """The weight-form flow ``-grad L`` of :func:`ghostsing.analytic.loss.derive` (for comparisons)."""
    return derive(spec).flow


__all__ = ["FORMS", "I1Erf", "I1Linear", "I1Relu", "I2Erf", "I2Linear", "I2Relu", "KERNELS",
           "NAMED_FUNCTIONS", "OrderParameterForm", "explicit", "kernel_definitions", "kernels",
           "order_parameter_form", "vector_latex_names", "weight_flow"]
