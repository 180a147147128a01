"""The I2, I3, I4, J2 closed forms of the order-parameter ODEs against Monte Carlo and their derivations.

Monte Carlo: 10^6 Gaussian samples per covariance; the closed form must lie within 4 standard
errors of the sample mean.  Covariances are random (Wishart-like), including degenerate ones where
indices coincide (u_1 = u_3 etc.), which the ODEs use on the diagonal.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from scipy.special import erf

from ghostsing.analytic import order_param_averages as av

N_MC = 1_000_000


def _g(act: str, u: np.ndarray) -> np.ndarray:
    return erf(u / np.sqrt(2)) if act == "erf" else u


def _gp(act: str, u: np.ndarray) -> np.ndarray:
    return np.sqrt(2 / np.pi) * np.exp(-u * u / 2) if act == "erf" else np.ones_like(u)


def _random_cov(rng: np.random.Generator, n: int) -> np.ndarray:
    W = rng.standard_normal((n, n + 2))
    return W @ W.T / (n + 2) * rng.uniform(0.3, 2.0)


def _expand(C: np.ndarray, idx: tuple[int, ...]) -> np.ndarray:
    return C[np.ix_(idx, idx)]


def _samples(rng: np.random.Generator, C: np.ndarray) -> np.ndarray:
    L = np.linalg.cholesky(C + 1e-300 * np.eye(len(C)))
    return rng.standard_normal((N_MC, len(C))) @ L.T


def _value(expr: sp.Expr) -> float:
    return float(sp.N(expr, 17))


def _mc_check(sample: np.ndarray, exact: float) -> None:
    mean, se = sample.mean(), sample.std(ddof=1) / np.sqrt(sample.size)
    assert abs(mean - exact) <= 4 * se + 1e-12, (mean, exact, se)


# Index patterns: which entries of a base covariance of distinct variables each argument takes.
PATTERNS_3 = [(0, 1, 2), (0, 0, 0), (0, 1, 0), (0, 0, 1)]
PATTERNS_4 = [(0, 1, 2, 3), (0, 0, 0, 0), (0, 1, 0, 1), (0, 1, 2, 2), (0, 0, 1, 2)]


@pytest.mark.parametrize("act", ["erf", "linear"])
@pytest.mark.parametrize("case", range(2))
def test_i2_j2_monte_carlo(act, case):
    rng = np.random.default_rng(100 + case)
    C = _random_cov(rng, 2)
    u = _samples(rng, C)
    _mc_check(_g(act, u[:, 0]) * _g(act, u[:, 1]), _value(av.i2(act, sp.Matrix(C))))
    _mc_check(_gp(act, u[:, 0]) * _gp(act, u[:, 1]), _value(av.j2(act, sp.Matrix(C))))
    # the diagonal form (one variable with itself)
    a = sp.Float(C[0, 0])
    _mc_check(_g(act, u[:, 0]) ** 2, _value(av.i2(act, [[a, a], [a, a]])))


@pytest.mark.parametrize("act", ["erf", "linear"])
@pytest.mark.parametrize("pattern", PATTERNS_3)
def test_i3_monte_carlo(act, pattern):
    rng = np.random.default_rng(200 + sum(p * 3**i for i, p in enumerate(pattern)))
    base = _random_cov(rng, 3)
    C = _expand(base, pattern)
    u = _samples(rng, base)[:, list(pattern)]
    exact = _value(av.i3(act, sp.Matrix(C)))
    _mc_check(_gp(act, u[:, 0]) * u[:, 1] * _g(act, u[:, 2]), exact)


@pytest.mark.parametrize("act", ["erf", "linear"])
@pytest.mark.parametrize("pattern", PATTERNS_4)
def test_i4_monte_carlo(act, pattern):
    rng = np.random.default_rng(300 + sum(p * 4**i for i, p in enumerate(pattern)))
    base = _random_cov(rng, 4)
    C = _expand(base, pattern)
    u = _samples(rng, base)[:, list(pattern)]
    exact = _value(av.i4(act, sp.Matrix(C)))
    _mc_check(_gp(act, u[:, 0]) * _gp(act, u[:, 1]) * _g(act, u[:, 2]) * _g(act, u[:, 3]), exact)


@pytest.mark.parametrize("act", ["erf", "linear"])
def test_derivations_match_closed_forms(act):
    """Stein + Price (I3, J2) and Gaussian conditioning (I4) reproduce the Saad–Solla closed forms."""
    rng = np.random.default_rng(7)
    for _ in range(5):
        C3, C4 = _random_cov(rng, 3), _random_cov(rng, 4)
        assert _value(av.derive_i3(act, sp.Matrix(C3))) == pytest.approx(
            _value(av.i3(act, sp.Matrix(C3))), rel=1e-12, abs=1e-14
        )
        assert _value(av.derive_i4(act, sp.Matrix(C4))) == pytest.approx(
            _value(av.i4(act, sp.Matrix(C4))), rel=1e-12, abs=1e-14
        )
        assert _value(av.derive_j2(act, sp.Matrix(C3[:2, :2]))) == pytest.approx(
            _value(av.j2(act, sp.Matrix(C3[:2, :2]))), rel=1e-12
        )


def test_i3_derivation_is_symbolically_equal():
    """For erf, the Stein/Price derivation of I3 simplifies to the closed form exactly."""
    c = sp.Matrix(3, 3, lambda i, j: sp.Symbol(f"c{min(i, j)}{max(i, j)}", positive=True))
    assert sp.simplify(av.derive_i3("erf", c) - av.i3("erf", c)) == 0


def test_unknown_activation_is_rejected():
    with pytest.raises(ValueError, match="relu"):
        av.i3("relu", sp.eye(3))
