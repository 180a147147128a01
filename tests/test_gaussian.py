"""Closed-form Gaussian averages (ghostsing.analytic.gaussian) against Monte Carlo.

For (u, v, z) jointly Gaussian with a random (seeded) covariance matrix C:
``E[g(u) g(v)]`` (pair), ``E[g(u)^2]`` (self) and ``E[g(u) z]`` (linear read-out) are estimated from
2 * 10^6 samples and must lie within 4 standard errors of the closed forms, for every activation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
from scipy.special import erf

from ghostsing.analytic import gaussian
from ghostsing.models import ACTIVATIONS

N_SAMPLES = 2_000_000
N_SIGMA = 4.0


def g_numpy(activation: str, u: np.ndarray) -> np.ndarray:
    """The activations written independently in numpy (erf means erf(u / sqrt 2))."""
    if activation == "erf":
        return erf(u / math.sqrt(2.0))
    if activation == "relu":
        return np.maximum(u, 0.0)
    return u


def random_covariance(rng: np.random.Generator, scale: float) -> np.ndarray:
    """A random 3 x 3 covariance (full rank, random correlations, variances of order ``scale``)."""
    A = rng.normal(size=(3, 3))
    C = A @ A.T + 0.05 * np.eye(3)
    d = np.sqrt(np.diag(C))
    corr = C / np.outer(d, d)
    sd = np.sqrt(scale) * rng.uniform(0.3, 1.7, size=3)
    return corr * np.outer(sd, sd)


def mc_mean(samples: np.ndarray) -> tuple[float, float]:
    """Sample mean and its standard error."""
    return float(samples.mean()), float(samples.std(ddof=1) / math.sqrt(samples.size))


def fval(expr: sp.Expr) -> float:
    return float(sp.N(expr, 30))


COVARIANCES = ((0, 1.0), (1, 0.2), (2, 4.0), (3, 1.5))  # (seed, variance scale)
CASES = [(act, seed, scale) for act in ACTIVATIONS for seed, scale in COVARIANCES]


@pytest.mark.parametrize(("activation", "seed", "scale"), CASES)
def test_averages_match_monte_carlo(activation: str, seed: int, scale: float) -> None:
    rng = np.random.default_rng(seed)
    C = random_covariance(rng, scale)
    L = np.linalg.cholesky(C)
    uvz = rng.standard_normal((N_SAMPLES, 3)) @ L.T
    u, v, z = uvz[:, 0], uvz[:, 1], uvz[:, 2]
    gu, gv = g_numpy(activation, u), g_numpy(activation, v)
    a, b, c, p = (sp.Float(x, 30) for x in (C[0, 0], C[1, 1], C[0, 1], C[0, 2]))

    checks = {
        "pair": (gu * gv, gaussian.pair_average(activation, a, b, c)),
        "self": (gu * gu, gaussian.self_average(activation, a)),
        "linear": (gu * z, gaussian.linear_average(activation, a, p)),
    }
    for name, (samples, closed) in checks.items():
        mean, se = mc_mean(samples)
        exact = fval(closed)
        assert abs(mean - exact) < N_SIGMA * se, (
            f"{activation} {name}: Monte Carlo {mean:.6f} +- {se:.2e}, closed form {exact:.6f}, "
            f"C={C.tolist()}"
        )


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_self_average_is_the_diagonal_of_the_pair_average(activation: str) -> None:
    a = sp.Symbol("a", positive=True)
    diff = gaussian.pair_average(activation, a, a, a) - gaussian.self_average(activation, a)
    assert sp.simplify(diff) == 0


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activation_function_matches_numpy(activation: str) -> None:
    u = sp.Symbol("u", real=True)
    g = sp.lambdify(u, gaussian.activation_function(activation, u), modules=["scipy", "numpy"])
    xs = np.linspace(-3.0, 3.0, 13)
    np.testing.assert_allclose([float(g(x)) for x in xs], g_numpy(activation, xs), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("bad", ["tanh", "ReLU", "", "sigmoid"])
def test_unknown_activation_is_rejected(bad: str) -> None:
    for fn, args in ((gaussian.pair_average, (1, 1, 0)), (gaussian.self_average, (1,)),
                     (gaussian.linear_average, (1, 0)), (gaussian.activation_function, (sp.Symbol("u"),))):
        with pytest.raises(ValueError, match=r"activation=.*allowed: erf, relu, linear"):
            fn(bad, *args)


def test_relu_kernel_derivatives_and_clamping() -> None:
    """h(x) = sqrt(1-x^2) + x (pi - acos x): its SymPy derivatives are the exact ones, and the printed
    numerical forms stay finite one ulp past |x| = 1 (collinear vectors after rounding)."""
    x = sp.Symbol("x", real=True)
    h = gaussian.ArcCosKernel(x)
    explicit = sp.sqrt(1 - x**2) + x * (sp.pi - sp.acos(x))
    assert sp.simplify(sp.diff(h, x).rewrite(sp.acos) - sp.diff(explicit, x)) == 0
    assert sp.simplify(sp.diff(h, x, 2).rewrite(sp.acos) - sp.diff(explicit, x, 2)) == 0
    assert gaussian.ArcCosKernel(1) == sp.pi and gaussian.ArcCosKernel(0) == 1
    d0, d1, d2 = (sp.lambdify(x, e, modules=mod) for e, mod in ((h, "math"), (sp.diff(h, x), "math"),
                                                                 (sp.diff(h, x, 2), "math")))
    for xv in (0.3, -0.7):
        assert d0(xv) == pytest.approx(math.sqrt(1 - xv * xv) + xv * (math.pi - math.acos(xv)), rel=1e-15)
        assert d1(xv) == pytest.approx(math.pi - math.acos(xv), rel=1e-15)
        assert d2(xv) == pytest.approx(1 / math.sqrt(1 - xv * xv), rel=1e-15)
    past = np.nextafter(1.0, 2.0)
    assert d0(past) == pytest.approx(math.pi) and d1(past) == pytest.approx(math.pi)
    assert math.isfinite(d2(past)) and math.isfinite(d2(-past))
    hn = sp.lambdify(x, h, modules="numpy")
    np.testing.assert_allclose(hn(np.array([-past, 0.3, past])), [0.0, d0(0.3), math.pi], atol=1e-15)
