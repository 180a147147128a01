r"""Gaussian averages I2, I3, I4 (and J2) of the order-parameter ODEs, as SymPy closed forms.

Let ``u = (u_1, ..., u_n)`` be a zero-mean Gaussian vector with covariance matrix ``C`` (entries
``C_ab``).  On-line SGD of a two-layer network in the large-N limit (Saad & Solla 1995; Goldt et al.
2019) needs, for an activation ``g``:

* ``I2(C) = E[g(u_1) g(u_2)]``                       (2 x 2 covariance),
* ``I3(C) = E[g'(u_1) u_2 g(u_3)]``                  (3 x 3 covariance),
* ``I4(C) = E[g'(u_1) g'(u_2) g(u_3) g(u_4)]``       (4 x 4 covariance),
* ``J2(C) = E[g'(u_1) g'(u_2)]``                     (2 x 2; the output-noise term).

Two activations are supported here: ``"erf"`` (``g(x) = erf(x / sqrt 2)``, ``g'(x) = sqrt(2/pi)
exp(-x^2/2)``) and ``"linear"`` (``g(x) = x``, ``g' = 1``).

Derivation (erf), done in SymPy by :func:`derive_i3` and :func:`derive_i4` below:

* ``I2 = (2/pi) asin(C12 / sqrt((1 + C11)(1 + C22)))`` (taken from :mod:`ghostsing.analytic.gaussian`).
* ``I3``: Stein's lemma on the linear factor ``u_2`` gives
  ``E[g'(u_1) u_2 g(u_3)] = C12 E[g''(u_1) g(u_3)] + C23 E[g'(u_1) g'(u_3)]``, and Price's theorem
  turns both averages into derivatives of I2:
  ``E[g''(u_1) g(u_3)] = 2 dI2/dC11``, ``E[g'(u_1) g'(u_3)] = dI2/dC13``.  Result (Saad & Solla 1995)::

      I3 = (2/pi) (C23 (1 + C11) - C12 C13) / ((1 + C11) sqrt(Lambda3)),
      Lambda3 = (1 + C11)(1 + C33) - C13^2.

* ``I4`` and ``J2``: ``g'(u_1) g'(u_2) = (2/pi) exp(-(u_1^2 + u_2^2)/2)`` is an unnormalised Gaussian
  factor; integrating out ``a = (u_1, u_2)`` gives ``det(1 + C_aa)^(-1/2)`` times a Gaussian average
  over ``b = (u_3, u_4)`` with the covariance ``C'_bb = C_bb - C_ba (1 + C_aa)^(-1) C_ab``::

      J2 = (2/pi) / sqrt(Lambda4),     Lambda4 = (1 + C11)(1 + C22) - C12^2,
      I4 = (2/pi) Lambda4^(-1/2) I2(C'_bb) = 4 / (pi^2 sqrt(Lambda4)) asin(Lambda0 / sqrt(Lambda1 Lambda2)),

  with (Saad & Solla 1995)
  ``Lambda0 = Lambda4 C34 - C23 C24 (1 + C11) - C13 C14 (1 + C22) + C12 C13 C24 + C12 C14 C23``,
  ``Lambda1 = Lambda4 (1 + C33) - C23^2 (1 + C11) - C13^2 (1 + C22) + 2 C12 C13 C23``,
  ``Lambda2 = Lambda4 (1 + C44) - C24^2 (1 + C11) - C14^2 (1 + C22) + 2 C12 C14 C24``.

For ``linear``: ``I2 = C12``, ``I3 = C23``, ``I4 = C34``, ``J2 = 1`` (Isserlis / Stein).

The compact forms (``i2``, ``i3``, ``i4``, ``j2``) are the ones the ODEs use; :func:`derive_i3` and
:func:`derive_i4` are the independent derivations, and the tests check that both agree with each other
and with Monte Carlo.  Coinciding indices (e.g. ``u_1 = u_3``) are allowed: the formulas stay valid for
the degenerate covariance.
"""

from __future__ import annotations

import sympy as sp

from ghostsing.analytic.gaussian import pair_average, self_average

ODE_ACTIVATIONS: tuple[str, ...] = ("erf", "linear")


def _check(activation: str) -> None:
    if activation not in ODE_ACTIVATIONS:
        raise ValueError(
            f"activation={activation!r} has no order-parameter averages here; "
            f"allowed: {', '.join(ODE_ACTIVATIONS)}"
        )


def _entry(C, a: int, b: int) -> sp.Expr:
    return sp.sympify(C[a][b] if isinstance(C, list | tuple) else C[a, b])


def i2(activation: str, C) -> sp.Expr:
    """``I2 = E[g(u_1) g(u_2)]`` for a 2 x 2 covariance ``C`` (``C[0,1]`` is the covariance).

    When ``C`` is the covariance of one variable with itself (all entries the same SymPy object) the
    simplified diagonal form ``(2/pi) asin(C11 / (1 + C11))`` is returned.
    """
    _check(activation)
    a, b, c = _entry(C, 0, 0), _entry(C, 1, 1), _entry(C, 0, 1)
    if a == b == c:
        return self_average(activation, a)
    return pair_average(activation, a, b, c)


def j2(activation: str, C) -> sp.Expr:
    """``J2 = E[g'(u_1) g'(u_2)] = (2/pi) / sqrt((1 + C11)(1 + C22) - C12^2)`` (erf); 1 (linear)."""
    _check(activation)
    if activation == "linear":
        return sp.Integer(1)
    c11, c22, c12 = _entry(C, 0, 0), _entry(C, 1, 1), _entry(C, 0, 1)
    return 2 / sp.pi / sp.sqrt((1 + c11) * (1 + c22) - c12**2)


def i3(activation: str, C) -> sp.Expr:
    """``I3 = E[g'(u_1) u_2 g(u_3)]`` for a 3 x 3 covariance ``C`` (closed form of the module docstring)."""
    _check(activation)
    c = [[_entry(C, i, j) for j in range(3)] for i in range(3)]
    if activation == "linear":
        return c[1][2]
    lam3 = (1 + c[0][0]) * (1 + c[2][2]) - c[0][2] ** 2
    return 2 / sp.pi * (c[1][2] * (1 + c[0][0]) - c[0][1] * c[0][2]) / ((1 + c[0][0]) * sp.sqrt(lam3))


def i4(activation: str, C) -> sp.Expr:
    """``I4 = E[g'(u_1) g'(u_2) g(u_3) g(u_4)]`` for a 4 x 4 covariance ``C`` (module docstring)."""
    _check(activation)
    c = [[_entry(C, i, j) for j in range(4)] for i in range(4)]
    if activation == "linear":
        return c[2][3]
    c11, c22, c33, c44 = c[0][0], c[1][1], c[2][2], c[3][3]
    c12, c13, c14, c23, c24, c34 = c[0][1], c[0][2], c[0][3], c[1][2], c[1][3], c[2][3]
    lam4 = (1 + c11) * (1 + c22) - c12**2
    lam0 = lam4 * c34 - c23 * c24 * (1 + c11) - c13 * c14 * (1 + c22) + c12 * c13 * c24 + c12 * c14 * c23
    lam1 = lam4 * (1 + c33) - c23**2 * (1 + c11) - c13**2 * (1 + c22) + 2 * c12 * c13 * c23
    lam2 = lam4 * (1 + c44) - c24**2 * (1 + c11) - c14**2 * (1 + c22) + 2 * c12 * c14 * c24
    return 4 / (sp.pi**2 * sp.sqrt(lam4)) * sp.asin(lam0 / sp.sqrt(lam1 * lam2))


# ----------------------------------------------------------------------------------------- derivations
def derive_i3(activation: str, C) -> sp.Expr:
    """I3 derived from I2 by Stein's lemma and Price's theorem (independent of :func:`i3`).

    ``E[g'(u_1) u_2 g(u_3)] = C12 * 2 dI2(a, b, c)/da + C23 * dI2(a, b, c)/dc`` evaluated at
    ``a = C11``, ``b = C33``, ``c = C13``, with ``I2(a, b, c) = E[g(u) g(w)]`` for ``Var u = a``,
    ``Var w = b``, ``Cov = c``.
    """
    _check(activation)
    a, b, c = sp.symbols("a b c", real=True)
    pair = pair_average(activation, a, b, c)
    at = {a: _entry(C, 0, 0), b: _entry(C, 2, 2), c: _entry(C, 0, 2)}
    return (_entry(C, 0, 1) * 2 * sp.diff(pair, a) + _entry(C, 1, 2) * sp.diff(pair, c)).subs(at)


def derive_i4(activation: str, C) -> sp.Expr:
    """I4 derived by integrating out the Gaussian factor ``g'(u_1) g'(u_2)`` (erf only; linear: C34).

    ``I4 = (2/pi) det(1 + C_aa)^(-1/2) I2(C'_bb)``, ``C'_bb = C_bb - C_ba (1 + C_aa)^(-1) C_ab``,
    ``a = (1, 2)``, ``b = (3, 4)``: the product ``exp(-u_a^T u_a / 2) N(u; 0, C)`` is, up to the factor
    ``det(1 + C_aa)^(-1/2)``, a Gaussian density whose ``b``-marginal has covariance ``C'_bb``
    (Woodbury identity for ``(C^-1 + P_a)^-1``).
    """
    _check(activation)
    Cm = sp.Matrix(4, 4, lambda i, j: _entry(C, i, j))
    if activation == "linear":
        return Cm[2, 3]
    Caa, Cab, Cbb = Cm[:2, :2], Cm[:2, 2:], Cm[2:, 2:]
    inner = sp.eye(2) + Caa
    Cp = Cbb - Cab.T * inner.inv() * Cab
    return 2 / sp.pi / sp.sqrt(inner.det()) * pair_average(activation, Cp[0, 0], Cp[1, 1], Cp[0, 1])


def derive_j2(activation: str, C) -> sp.Expr:
    """J2 from Price's theorem: ``E[g'(u_1) g'(u_2)] = dI2/dC12`` (independent of :func:`j2`)."""
    _check(activation)
    a, b, c = sp.symbols("a b c", real=True)
    pair = pair_average(activation, a, b, c)
    return sp.diff(pair, c).subs({a: _entry(C, 0, 0), b: _entry(C, 1, 1), c: _entry(C, 0, 1)})
