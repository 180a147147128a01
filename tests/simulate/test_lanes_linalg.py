"""The linear algebra of the SIMD driver (simulate._lanes): W_j = g_j I - J_j factorised for 16 lanes at
once without pivoting, with the pivoted scalar LU for the lanes where that is not safe, against
numpy.linalg.solve lane by lane."""

from __future__ import annotations

import numpy as np
from numba import njit

from ghostsing.simulate import _lanes

L = _lanes.L


@njit(cache=True, error_model="numpy")  # as the drivers: a zero pivot gives inf, not an exception
def _factor_and_solve(Jl, g, B, active, P):
    """Factorise and solve W_j x_j = b_j for all lanes; returns (x, bad flags)."""
    W, dinv, bad, Wp, piv, col = _lanes._linalg_workspace(P)
    mult = np.empty(L)
    nbad = _lanes._factor_lanes(Jl, g, W, dinv, bad, Wp, piv, active, P, mult)
    x = B.copy()
    _lanes._solve(W, dinv, P, x, bad, nbad, Wp, piv, col)
    return x, bad


def _pack(mats: np.ndarray) -> np.ndarray:
    """(L, P, P) -> flat lanes layout M[(r P + c) L + j]."""
    return np.ascontiguousarray(mats.transpose(1, 2, 0)).ravel()


def test_lanes_lu_matches_numpy_and_falls_back_to_pivoting() -> None:
    rng = np.random.default_rng(11)
    P = 6
    A = rng.normal(size=(L, P, P))
    J = -(A @ A.transpose(0, 2, 1)) / P  # minus a Hessian: W = g I - J is symmetric positive definite
    g = rng.uniform(0.05, 2.0, size=L)
    # lanes that need pivoting: a zero leading pivot, and a tiny one (multipliers ~1e8)
    J[3] = rng.normal(size=(P, P))
    J[3, 0, 0] = g[3]
    J[7] = rng.normal(size=(P, P))
    J[7, 0, 0] = g[7] - 1e-8
    W = g[:, None, None] * np.eye(P) - J
    b = rng.normal(size=(L, P))
    x, bad = _factor_and_solve(_pack(J), g, np.ascontiguousarray(b.T).ravel(), np.ones(L, dtype=np.bool_), P)
    x = x.reshape(P, L).T
    ref = np.linalg.solve(W, b[..., None])[..., 0]
    assert list(np.flatnonzero(bad)) == [3, 7]
    for j in range(L):
        np.testing.assert_allclose(x[j], ref[j], rtol=1e-9, atol=1e-12 * np.abs(ref[j]).max())


def test_singular_lane_gives_nan_and_leaves_the_others() -> None:
    rng = np.random.default_rng(12)
    P = 4
    J = np.stack([-np.eye(P)] * L)
    g = np.ones(L)
    J[5] = np.eye(P)  # W_5 = I - I = 0: singular
    b = rng.normal(size=(L, P))
    x, bad = _factor_and_solve(_pack(J), g, np.ascontiguousarray(b.T).ravel(), np.ones(L, dtype=np.bool_), P)
    x = x.reshape(P, L).T
    assert bad[5] == 1 and np.all(np.isnan(x[5]))
    others = np.arange(L) != 5
    np.testing.assert_allclose(x[others], b[others] / 2.0, rtol=1e-15)
