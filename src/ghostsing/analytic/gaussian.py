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
"""

from __future__ import annotations

import sympy as sp

from ghostsing.models import ACTIVATIONS


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
        t = sp.acos(c / sp.sqrt(a * b))
        return sp.sqrt(a * b) / (2 * sp.pi) * (sp.sin(t) + (sp.pi - t) * sp.cos(t))
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
