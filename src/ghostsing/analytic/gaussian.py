"""Closed-form Gaussian averages of the activations (SymPy).

For jointly Gaussian ``(u, v)`` with ``Var u = a``, ``Var v = b``, ``Cov(u, v) = c``, and a linear
read-out ``z = s . x`` with ``Cov(u, z) = p``:

=========  =====================================================================  =====================
g          I2 = E[g(u) g(v)]                                                        E[g(u) z]
=========  =====================================================================  =====================
erf        (2/pi) asin(c / sqrt((1 + a)(1 + b)))                                    p sqrt(2/pi) / sqrt(1 + a)
relu       sqrt(ab)/(2 pi) (sin t + (pi - t) cos t),  t = acos(c / sqrt(ab))       p / 2
linear     c                                                                        p
=========  =====================================================================  =====================

``erf`` means ``g(u) = erf(u / sqrt 2)``.  On the diagonal (``u = v``, so ``a = b = c``) the formulas
are written in their simplified form (``(2/pi) asin(a/(1+a))``, ``a/2``, ``a``) so that SymPy never
differentiates ``acos`` at 1.

relu's pair average is written ``sqrt(ab)/(2 pi) h(c / sqrt(ab))`` with the arc-cosine kernel
``h(x) = sin t + (pi - t) cos t = sqrt(1 - x^2) + x (pi - acos x)`` (``t = acos x``) as a SymPy function
of its own (:class:`ArcCosKernel`) whose derivative is the short ``h'(x) = pi - acos x``
(:class:`ArcCosKernelPrime`; ``h''(x) = 1/sqrt(1 - x^2)`` is :class:`ArcCosKernelSecond`).
Differentiating the explicit formula instead
leaves ``-x/sqrt(1-x^2) + x/sqrt(1-x^2)`` in the gradient, which is 0/0 (NaN) when a student vector is
collinear with a teacher vector (at the teacher itself) and loses digits near it.  In generated code
both functions clamp ``x`` to ``[-1, 1]`` (rounding can push ``c / sqrt(ab)`` one ulp past 1).
"""

from __future__ import annotations

import sympy as sp

from ghostsing.models import ACTIVATIONS

_EPS = 2.220446049250313e-16  # double-precision machine epsilon


class _KernelFunction(sp.Function):
    """A one-argument function of ``x = cos(angle)`` with an explicit form and a clamped numerical form.

    Subclasses define two static methods (the base has none: SymPy's metaclass rules out ``abc``):
    ``explicit_of(x) -> sp.Expr`` (exact SymPy) and ``numeric(x, f) -> str`` (code, with ``f`` mapping
    ``sqrt``, ``acos``, ``pi``, ``clip``, ``fmax`` to the printer's names).  Numbers evaluate to
    the explicit form; code printers (Python/Numba, NumPy, SciPy, mpmath) print :meth:`numeric`; LaTeX
    shows the explicit form.
    """

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_Number:
            return cls.explicit_of(x)
        return None

    def explicit(self) -> sp.Expr:
        return self.explicit_of(self.args[0])

    def _eval_rewrite_as_acos(self, x, **kwargs):
        return self.explicit_of(x)

    def _eval_evalf(self, prec):
        return self.explicit()._eval_evalf(prec)

    def _pythoncode(self, printer, *args, **kwargs):
        f = {"sqrt": printer._module_format("math.sqrt"), "acos": printer._module_format("math.acos"),
             "pi": printer._module_format("math.pi"), "clip": "min(1.0, max(-1.0, {}))", "fmax": "max"}
        return "(" + self.numeric(printer._print(self.args[0]), f) + ")"

    def _numpycode(self, printer, *args, **kwargs):
        np_ = printer._module
        f = {k: printer._module_format(f"{np_}.{v}") for k, v in
             (("sqrt", "sqrt"), ("acos", "arccos"), ("pi", "pi"), ("fmax", "maximum"))}
        f["clip"] = printer._module_format(f"{np_}.clip") + "({}, -1.0, 1.0)"
        return "(" + self.numeric(printer._print(self.args[0]), f) + ")"

    _lambdacode = _pythoncode
    _scipycode = _numpycode

    def _mpmathcode(self, printer, *args, **kwargs):
        return "(" + printer._print(self.explicit()) + ")"

    def _latex(self, printer, *args, **kwargs):
        return r"\left(" + printer._print(self.explicit()) + r"\right)"


class ArcCosKernel(_KernelFunction):
    """``h(x) = sqrt(1 - x^2) + x (pi - acos x)`` for ``|x| <= 1``; ``h' =`` :class:`ArcCosKernelPrime`.

    ``E[relu(u) relu(v)] = sqrt(ab)/(2 pi) h(c/sqrt(ab))`` (Cho & Saul 2009, arc-cosine kernel of degree 1).
    Numerically ``x`` is clamped to ``[-1, 1]``.
    """

    @staticmethod
    def explicit_of(x):
        return sp.sqrt(1 - x**2) + x * (sp.pi - sp.acos(x))

    @staticmethod
    def numeric(x, f):
        return (f"{f['sqrt']}({f['fmax']}(0.0, 1.0 - ({x})**2)) + ({x})*({f['pi']} - "
                f"{f['acos']}({f['clip'].format(x)}))")

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return ArcCosKernelPrime(self.args[0])


class ArcCosKernelPrime(_KernelFunction):
    """``h'(x) = pi - acos x`` (:class:`ArcCosKernel`); ``h'' =`` :class:`ArcCosKernelSecond`."""

    @staticmethod
    def explicit_of(x):
        return sp.pi - sp.acos(x)

    @staticmethod
    def numeric(x, f):
        return f"{f['pi']} - {f['acos']}({f['clip'].format(x)})"

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return ArcCosKernelSecond(self.args[0])


class ArcCosKernelSecond(_KernelFunction):
    """``h''(x) = 1/sqrt(1 - x^2)``; numerically ``1 - x^2`` is floored at machine epsilon.

    It diverges at ``x = 1`` (collinear vectors), but in the Hessian of the loss it is multiplied by
    ``|dx/dJ|^2``, which vanishes there faster (``h'' sin^2(t) = sin t -> 0``); the floor turns the
    0 * inf of the exact formula into the correct limit 0 instead of NaN or a ZeroDivisionError.
    """

    @staticmethod
    def explicit_of(x):
        return 1 / sp.sqrt(1 - x**2)

    @staticmethod
    def numeric(x, f):
        return f"1.0/{f['sqrt']}({f['fmax']}({_EPS!r}, 1.0 - ({x})**2))"

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        x = self.args[0]
        return x / (1 - x**2) ** sp.Rational(3, 2)


def _check(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation={activation!r} is not known; allowed: {', '.join(ACTIVATIONS)}")


def activation_function(activation: str, u: sp.Expr) -> sp.Expr:
    """The activation ``g(u)`` itself as a SymPy expression (erf means erf(u/sqrt 2))."""
    _check(activation)
    if activation == "erf":
        return sp.erf(u / sp.sqrt(2))
    if activation == "relu":
        return sp.Max(u, 0)
    return u


def pair_average(activation: str, a: sp.Expr, b: sp.Expr, c: sp.Expr) -> sp.Expr:
    """``I2 = E[g(u) g(v)]`` for ``Var u = a``, ``Var v = b``, ``Cov(u, v) = c`` (table above)."""
    _check(activation)
    if activation == "erf":
        return 2 / sp.pi * sp.asin(c / sp.sqrt((1 + a) * (1 + b)))
    if activation == "relu":
        return sp.sqrt(a * b) / (2 * sp.pi) * ArcCosKernel(c / sp.sqrt(a * b))
    return c


def self_average(activation: str, a: sp.Expr) -> sp.Expr:
    """``E[g(u)^2]`` for ``Var u = a``: the diagonal of :func:`pair_average`, simplified."""
    _check(activation)
    if activation == "erf":
        return 2 / sp.pi * sp.asin(a / (1 + a))
    if activation == "relu":
        return a / 2
    return a


def linear_average(activation: str, a: sp.Expr, p: sp.Expr) -> sp.Expr:
    """``E[g(u) z]`` for ``Var u = a`` and ``Cov(u, z) = p`` with ``z`` a linear read-out of ``x``.

    By Stein's lemma ``E[g(u) z] = p E[g'(u)]``; ``E[g'(u)]`` is ``sqrt(2/pi)/sqrt(1+a)`` for erf,
    ``1/2`` for relu and ``1`` for linear.
    """
    _check(activation)
    if activation == "erf":
        return p * sp.sqrt(2 / sp.pi) / sp.sqrt(1 + a)
    if activation == "relu":
        return p / 2
    return p
