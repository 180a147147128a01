"""Order-parameter ODEs: symmetric plateau (published values), Monte Carlo of the assembled rhs,
linear networks against an independent weight-space gradient flow, API and bad input."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import sympy as sp
from scipy.integrate import solve_ivp
from scipy.special import erf

from ghostsing.analytic.order_params import (
    derive_order_parameter_odes,
    find_fixed_point,
    order_parameter_ode,
    state_layout,
    symmetric_fixed_point,
)

# Saad & Solla (1995) / Goldt et al. (2019): plateau height; the escape rates recomputed to 7 digits from
# the closed-form Hessian of the symmetric fixed point (rounded to 3 figures: 0.0657, 0.0461, 0.0356).
PLATEAU_EPS = {2: 0.011611, 3: 0.020297}
PLATEAU_RATE = {2: 0.0657498, 3: 0.0461179, 4: 0.0356474}


def _random_state(rng: np.random.Generator, K: int, M: int) -> tuple[np.ndarray, ...]:
    """A valid (positive-definite) joint covariance [[Q, R], [R^T, T]] plus v and A."""
    W = rng.standard_normal((K + M, K + M + 3)) / math.sqrt(K + M + 3)
    S = W @ W.T
    return S[:K, :K], S[:K, K:], S[K:, K:], rng.uniform(0.5, 1.5, K), rng.uniform(0.5, 1.5, M)


# ----------------------------------------------------------------------------- symmetric plateau
@pytest.mark.parametrize("K", [2, 3])
def test_symmetric_plateau_height_and_fixed_point(K):
    ode = order_parameter_ode(K=K, M=K, activation="erf", lr=1e-3, train_second_layer=False)
    y = symmetric_fixed_point(ode)
    eps = ode.generalisation_error(y)
    assert eps == pytest.approx(K / 6 - K**2 / math.pi * math.asin(1 / (2 * K)), rel=1e-12)
    assert round(eps, 6) == PLATEAU_EPS[K]
    # a fixed point of the O(lr) part, but not of the full rhs (the lr^2 term pushes Q_kk up)
    assert np.max(np.abs(ode.drift(y))) < 1e-15
    lay = state_layout(K, K)
    full = ode.rhs(y)
    assert np.all(full[lay["Q"]] > 1e-10) and np.max(np.abs(full[lay["R"]])) < 1e-15


@pytest.mark.parametrize(("K", "full"), [(2, False), (2, True), (3, False), (3, True),
                                          pytest.param(4, False, marks=pytest.mark.slow)])
def test_symmetric_plateau_escape_rate(K, full):
    """Largest eigenvalue of the linearised ODE at the plateau, divided by lr, at small lr, equal to the
    7-digit reference values (tolerance: half a unit of the 7th digit; the O(lr) terms are ~1e-16 here)."""
    lr = 1e-4
    ode = order_parameter_ode(K=K, M=K, activation="erf", lr=lr, train_second_layer=False)
    y = symmetric_fixed_point(ode)
    d = ode.dynamic_indices
    jac = ode.jacobian(y, drift_only=not full)[np.ix_(d, d)] / lr
    rate = np.max(np.linalg.eigvals(jac).real)
    assert abs(rate - PLATEAU_RATE[K]) <= 0.5e-7


def test_escape_rate_exact_jacobian_k2():
    """The same eigenvalue from the exact SymPy Jacobian at 30 digits (independent of finite differences)."""
    d = derive_order_parameter_odes(2, 2, "erf")
    lr, lr2, c2, s2, *A = d.params
    fixed = {lr: 1, lr2: 0, c2: 0, s2: 0, **{a: 1 for a in A}}
    point = [sp.Rational(1, 3)] * 3 + [1 / sp.sqrt(6)] * 4 + [1, 0, 1] + [1, 1]
    dyn = d.state[:7]
    jac = sp.Matrix([e.subs(fixed) for e in d.rhs[:7]]).jacobian(dyn)
    mpmath.mp.dps = 30
    f = sp.lambdify(list(d.state), jac, "mpmath")
    jn = np.array(f(*[mpmath.mpf(sp.N(p, 30)) for p in point]).tolist(), dtype=float)
    rate = np.max(np.linalg.eigvals(jn).real)
    ode = order_parameter_ode(K=2, M=2, lr=1.0, train_second_layer=False)
    y = symmetric_fixed_point(ode)
    idx = ode.dynamic_indices
    rate_fd = np.max(np.linalg.eigvals(ode.jacobian(y, drift_only=True)[np.ix_(idx, idx)]).real)
    assert rate == pytest.approx(0.065749807, abs=2e-9)
    assert rate_fd == pytest.approx(rate, rel=1e-7)


# ----------------------------------------------------------------------------- rhs against Monte Carlo
@pytest.mark.parametrize("K,M,act", [(2, 2, "erf"), (3, 3, "erf"), (2, 2, "linear")])
def test_rhs_and_error_against_monte_carlo(K, M, act):
    """Every rhs entry and eps_g equal sample means of the single-sample update over u ~ N(0, Sigma)."""
    rng = np.random.default_rng(11 * K + M)
    Q, R, T, v, A = _random_state(rng, K, M)
    lr, lr2, sigma = 0.8, 0.6, 0.3
    ode = order_parameter_ode(K=K, M=M, activation=act, lr=lr, lr2=lr2, sigma=sigma, A=A)
    y = ode.pack(Q, R, T, v)
    Sig = np.block([[Q, R], [R.T, T]])
    n = 1_000_000
    u = rng.standard_normal((n, K + M)) @ np.linalg.cholesky(Sig).T
    lam, nu = u[:, :K], u[:, K:]
    g = (lambda x: erf(x / np.sqrt(2))) if act == "erf" else (lambda x: x)
    gp = (lambda x: np.sqrt(2 / np.pi) * np.exp(-x * x / 2)) if act == "erf" else np.ones_like
    teacher = g(nu) @ A
    delta = g(lam) @ v - teacher - sigma * rng.standard_normal(n)
    d = v * gp(lam) * delta[:, None]
    samples = []
    for k in range(K):
        for l in range(k, K):
            samples.append(-lr * (d[:, k] * lam[:, l] + d[:, l] * lam[:, k]) + lr**2 * d[:, k] * d[:, l])
    for k in range(K):
        for m in range(M):
            samples.append(-lr * d[:, k] * nu[:, m])
    samples += [np.zeros(n)] * (M * (M + 1) // 2)
    for k in range(K):
        samples.append(-lr2 * g(lam[:, k]) * delta)
    rhs = ode.rhs(y)
    for i, s in enumerate(samples):
        se = s.std() / math.sqrt(n)
        assert abs(s.mean() - rhs[i]) <= 4 * se + 1e-12, (ode.state_names[i], s.mean(), rhs[i], se)
    err = 0.5 * (g(lam) @ v - teacher) ** 2
    assert abs(err.mean() - ode.generalisation_error(y)) <= 4 * err.std() / math.sqrt(n)


# ----------------------------------------------------------------------------- linear networks
def _linear_weight_flow(Q, R, T, v, A, lr, lr2, times):
    """Independent path: gradient flow of the population loss in weight space for a linear network.

    With rows J_hat (K, d), B_hat (M, d) whose Gram matrices are Q, R, T, the student is
    w = v^T J_hat, the teacher w* = A^T B_hat, eps_g = |w - w*|^2 / 2, and the mean SGD update per unit
    of SGD time t = steps / N is dJ_k/dt = -lr v_k (w - w*), dv_k/dt = -lr2 J_k . (w - w*).
    """
    K, M = len(v), len(A)
    L = np.linalg.cholesky(np.block([[Q, R], [R.T, T]]))
    J, B = L[:K], L[K:]
    d = K + M

    def f(_, z):
        Jz, vz = z[: K * d].reshape(K, d), z[K * d :]
        r = vz @ Jz - A @ B
        return np.concatenate([(-lr * vz[:, None] * r).ravel(), -lr2 * Jz @ r])

    sol = solve_ivp(
        f,
        (times[0], times[-1]),
        np.concatenate([J.ravel(), v]),
        t_eval=times,
        method="DOP853",
        rtol=1e-11,
        atol=1e-13,
    )
    out = []
    for z in sol.y.T:
        Jz, vz = z[: K * d].reshape(K, d), z[K * d :]
        r = vz @ Jz - A @ B
        out.append((Jz @ Jz.T, Jz @ B.T, vz, 0.5 * r @ r))
    return out


@pytest.mark.parametrize("K,M", [(2, 2), (3, 2)])
def test_linear_drift_is_weight_space_gradient_flow(K, M):
    rng = np.random.default_rng(5 + K)
    Q, R, T, v, A = _random_state(rng, K, M)
    lr, lr2 = 0.3, 0.2
    ode = order_parameter_ode(K=K, M=M, activation="linear", lr=lr, lr2=lr2, A=A)
    times = np.linspace(0.0, 8.0, 9)
    p = ode.params
    p[2] = 0.0  # drop the lr^2 term: the small-lr limit is the gradient flow
    sol = solve_ivp(
        lambda t, y: ode.numba_rhs(np.concatenate((y, p))),
        (0, 8),
        ode.pack(Q, R, T, v),
        t_eval=times,
        method="DOP853",
        rtol=1e-11,
        atol=1e-13,
    )
    ref = _linear_weight_flow(Q, R, T, v, A, lr, lr2, times)
    for y, (Qr, Rr, vr, er) in zip(sol.y.T, ref, strict=True):
        Qo, Ro, To, vo = ode.unpack(y)
        np.testing.assert_allclose(Qo, Qr, atol=1e-8)
        np.testing.assert_allclose(Ro, Rr, atol=1e-8)
        np.testing.assert_allclose(vo, vr, atol=1e-8)
        np.testing.assert_allclose(To, T, atol=0)
        assert ode.generalisation_error(y) == pytest.approx(er, abs=1e-9)
    assert ref[-1][3] < 0.5 * ref[0][3]  # the run actually learns


def test_linear_lr_squared_term_closed_form():
    """For g linear, rhs - drift on Q_kl is (lr^2 / b) v_k v_l (|w - w*|^2 + sigma^2)."""
    rng = np.random.default_rng(3)
    K, M = 3, 2
    Q, R, T, v, A = _random_state(rng, K, M)
    for batch in (1, 4):
        ode = order_parameter_ode(K=K, M=M, activation="linear", lr=0.7, sigma=0.4, A=A, batch_size=batch)
        y = ode.pack(Q, R, T, v)
        diff = (ode.rhs(y) - ode.drift(y))[state_layout(K, M)["Q"]]
        err2 = v @ Q @ v - 2 * v @ R @ A + A @ T @ A
        expect = [0.49 / batch * v[k] * v[l] * (err2 + 0.16) for k in range(K) for l in range(k, K)]
        np.testing.assert_allclose(diff, expect, rtol=1e-12)


# ----------------------------------------------------------------------------- API
def test_pack_unpack_roundtrip_and_layout():
    rng = np.random.default_rng(0)
    Q, R, T, v, A = _random_state(rng, 3, 2)
    ode = order_parameter_ode(K=3, M=2, activation="linear", lr=0.5)
    y = ode.pack(Q, R, T, v)
    assert y.shape == (ode.n_state,) == (6 + 6 + 3 + 3,)
    for a, b in zip(ode.unpack(y), (Q, R, T, v), strict=True):
        np.testing.assert_array_equal(a, b)
    assert ode.state_names[0] == "Q_00" and ode.state_names[-1] == "v_2"
    assert np.all(ode.rhs(y)[state_layout(3, 2)["T"]] == 0)
    fixed = order_parameter_ode(K=3, M=2, activation="linear", lr=0.5, train_second_layer=False)
    assert np.all(fixed.rhs(y)[state_layout(3, 2)["v"]] == 0)
    assert len(fixed.dynamic_indices) == 12 and len(ode.dynamic_indices) == 15


def test_lr2_defaults_to_lr_and_scales_second_layer():
    rng = np.random.default_rng(1)
    Q, R, T, v, A = _random_state(rng, 2, 2)
    a = order_parameter_ode(K=2, M=2, activation="erf", lr=0.5, A=A)
    b = order_parameter_ode(K=2, M=2, activation="erf", lr=0.5, lr2=1.0, A=A)
    y = a.pack(Q, R, T, v)
    sv = state_layout(2, 2)["v"]
    assert a.lr2 == 0.5
    np.testing.assert_allclose(b.rhs(y)[sv], 2 * a.rhs(y)[sv], rtol=1e-14)


@pytest.mark.parametrize(
    "kwargs, exc, word",
    [
        ({"lr": 0.0}, ValueError, "lr"),
        ({"lr": -1.0}, ValueError, "lr"),
        ({"lr": float("nan")}, ValueError, "lr"),
        ({"lr": "fast"}, TypeError, "lr"),
        ({"lr2": -0.1}, ValueError, "lr2"),
        ({"sigma": float("inf")}, ValueError, "sigma"),
        ({"K": 0}, ValueError, "K"),
        ({"M": 5}, ValueError, "M"),
        ({"K": 2.0}, TypeError, "K"),
        ({"activation": "tanh"}, ValueError, "tanh"),
        ({"A": (1.0,)}, ValueError, "A"),
        ({"A": (1.0, float("nan"))}, ValueError, "A"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"train_second_layer": "yes"}, TypeError, "train_second_layer"),
    ],
)
def test_bad_arguments(kwargs, exc, word):
    args = {"K": 2, "M": 2, "activation": "linear", "lr": 0.5}
    args.update(kwargs)
    with pytest.raises(exc, match=word):
        order_parameter_ode(**args)


def test_bad_states():
    ode = order_parameter_ode(K=2, M=2, activation="linear", lr=0.5)
    with pytest.raises(ValueError, match="shape"):
        ode.rhs(np.zeros(3))
    with pytest.raises(ValueError, match="symmetric"):
        ode.pack([[1, 0.2], [0.3, 1]], np.zeros((2, 2)), np.eye(2), np.ones(2))
    with pytest.raises(ValueError, match="non-finite"):
        ode.pack(np.eye(2), np.full((2, 2), np.nan), np.eye(2), np.ones(2))
    with pytest.raises(ValueError, match="R has shape"):
        ode.pack(np.eye(2), np.zeros((2, 3)), np.eye(2), np.ones(2))


def test_latex_export_contains_equations():
    text = derive_order_parameter_odes(1, 1, "erf").latex()
    assert text.startswith("\\begin{align}") and "\\operatorname{asin}" in text and "\\epsilon_g" in text


@pytest.mark.parametrize("K", [2, 3])
def test_root_finder_recovers_symmetric_fixed_point(K):
    """From a perturbed symmetric start (symmetry kept), the O(lr) fixed point is the closed form."""
    ode = order_parameter_ode(K=K, M=K, activation="erf", lr=0.1, train_second_layer=False)
    exact = symmetric_fixed_point(ode)
    Q, R, T, v = ode.unpack(exact)
    start = ode.pack(Q * 1.3, R * 0.8, T, v)
    np.testing.assert_allclose(find_fixed_point(ode, start, drift_only=True), exact, atol=1e-6)
    # at finite lr the lr^2 terms move the plateau up (Q grows) by O(lr), with eps_g above eps*
    shifted = find_fixed_point(ode, exact)
    assert np.max(np.abs(ode.rhs(shifted))) < 1e-12
    assert 0 < shifted[0] - exact[0] < 0.1 * 1.0
    assert ode.generalisation_error(shifted) > ode.generalisation_error(exact)


def test_numba_functions_run_in_the_simulate_integrator():
    """The baked Numba flow/loss work with ghostsing.simulate.integrate and agree with scipy's DOP853."""
    from ghostsing.simulate import integrate

    rng = np.random.default_rng(0)
    Q, R, T, v, A = _random_state(rng, 2, 2)
    ode = order_parameter_ode(2, 2, "erf", lr=0.5, A=A)
    y0 = ode.pack(Q, R, T, v)
    flow, loss = ode.numba_functions()
    times = np.linspace(0.0, 20.0, 11)
    sol = integrate(flow, y0, times, rtol=1e-10, atol=1e-12, loss=loss, method="dop853")
    ref = ode.integrate(y0, times, rtol=1e-11, atol=1e-13)
    assert sol.status[0] == 0
    np.testing.assert_allclose(sol.y[0], ref, atol=1e-8)
    np.testing.assert_allclose(sol.loss[0], [ode.generalisation_error(y) for y in ref], atol=1e-9)
