"""Branch-free vectorisable math (ghostsing.analytic.vecmath) against the C library, and the generated
SIMD ("lanes") functions of codegen against the scalar ones."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
from numba import njit

from ghostsing.analytic import codegen, derive, vecmath
from ghostsing.models import ModelSpec


@njit(cache=True)
def _max_ulp_error(xs):
    worst = 0.0
    for x in xs:
        ref = math.asin(x)
        got = vecmath.asin(x)
        ulp = abs(np.nextafter(ref, np.inf) - ref)
        worst = max(worst, abs(got - ref) / ulp if ulp > 0 else abs(got - ref))
    return worst


def test_asin_within_three_ulp_of_libm() -> None:
    """On 2e6 uniform points of [-1, 1], a dense grid, tiny arguments and the branch point 1/2 and the
    ends, vecmath.asin is within 3 units in the last place of math.asin (the Sun/FreeBSD rational
    approximation without its hi/lo splits)."""
    rng = np.random.default_rng(0)
    xs = np.concatenate([
        rng.uniform(-1, 1, 2_000_000), np.linspace(-1, 1, 200_001), rng.uniform(-1e-6, 1e-6, 10_000),
        0.5 + np.arange(-50, 51) * 1e-16, [-1.0, -0.5, -0.0, 0.0, 0.5, 1.0, 5e-324],
    ])
    assert _max_ulp_error(xs) <= 3.0


def test_asin_outside_domain_is_nan() -> None:
    for x in (1.0 + 1e-15, -2.0, math.inf, math.nan):
        assert math.isnan(vecmath.asin(x))
    assert math.copysign(1.0, vecmath.asin(-0.0)) == -1.0


def test_product_power_printer_is_exact() -> None:
    """Small integer and half-integer powers are printed as products and square roots, and evaluate to
    the same values as ** to within 4 ulp; other powers fall back to **."""
    x = sp.Symbol("x", positive=True)
    printer = codegen._ProductPowerPrinter({"fully_qualified_modules": True, "standard": "python3"})
    for e in (2, 3, 8, -2, -8, sp.Rational(3, 2), sp.Rational(-3, 2), sp.Rational(9, 2), sp.Rational(-9, 2)):
        code = printer.doprint(x**e)
        assert "**" not in code, (e, code)
        for v in (0.37, 1.9, 12.5):
            got = eval(code, {"math": math, "x": v})  # noqa: S307 - our own printed expression
            assert got == pytest.approx(v ** float(e), rel=4 * 2.3e-16), (e, code)
    assert "**" in printer.doprint(x**12) and "**" in printer.doprint(x ** sp.Rational(1, 3))


@pytest.mark.parametrize("spec_kw", [
    {"K": 2, "M": 2, "N": 2, "activation": "erf", "alpha": 0.5},
    {"K": 2, "M": 2, "N": 2, "activation": "erf", "alpha": 0.0, "v": [0.7, -1.3], "sigma": 0.2},
    {"K": 3, "M": 3, "N": 3, "activation": "erf", "alpha": 0.3},
])
def test_lanes_functions_match_scalar_functions(spec_kw) -> None:
    """flow_lanes_into and jacobian_lanes_into on LANES random states equal flow and jacobian state by
    state, to rounding (1e-13 relative to the largest entry)."""
    f = derive(ModelSpec(**spec_kw)).compile()
    P, L = f.n_params, codegen.LANES
    states = np.random.default_rng(3).normal(scale=0.9, size=(L, P))
    X = np.ascontiguousarray(states.T).ravel()
    out = np.full(P * L, np.nan)
    f.flow_lanes_into(X, out)
    ref = np.array([f.flow(s) for s in states])
    np.testing.assert_allclose(out.reshape(P, L).T, ref, rtol=0, atol=1e-13 * np.abs(ref).max())
    jout = np.full(P * P * L, np.nan)
    f.jacobian_lanes_into(X, jout)
    jref = np.array([f.jacobian(s) for s in states])
    np.testing.assert_allclose(jout.reshape(P, P, L).transpose(2, 0, 1), jref, rtol=0,
                               atol=1e-13 * np.abs(jref).max())
