"""Finite-N on-line / mini-batch SGD (Numba) against the order-parameter ODEs and the gradient flow.

Agreement criterion (ODE vs SGD): each seed's ODE starts from that seed's exact initial order
parameters; with ``d_s(t) = eps_SGD - eps_ODE`` (SGD time t = steps / N) for seed ``s``, the mean over the
S seeds must lie in the band ``4 sd(d) / sqrt(S) + eps_ODE / sqrt(N)`` (seed spread plus an O(1/sqrt N)
finite-size allowance) at every grid time.  Negative controls show the band is tight enough to fail: the
ODE without its ``lr^2`` terms, or with a 20% wrong rate, falls outside it.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from ghostsing.analytic.order_params import order_parameter_ode
from ghostsing.models import ModelSpec
from ghostsing.simulate import Status
from ghostsing.simulate.sgd import online_sgd, online_sgd_spec

N = 500
SEEDS = range(8)


def _ode_errors(ode, res, times, drop_lr2: bool = False) -> np.ndarray:
    p = ode.params
    if drop_lr2:
        p[2] = 0.0
    Y = res.states(ode)
    out = []
    for s in range(Y.shape[0]):
        sol = solve_ivp(
            lambda t, y: ode.numba_rhs(np.concatenate((y, p))),
            (times[0], times[-1]),
            Y[s, 0],
            t_eval=times,
            method="DOP853",
            rtol=1e-9,
            atol=1e-12,
        )
        assert sol.success
        out.append([ode.generalisation_error(y) for y in sol.y.T])
    return np.array(out)


def _worst_ratio(res, eg_ode) -> float:
    d = res.eg - eg_ode
    band = 4 * d.std(0, ddof=1) / np.sqrt(d.shape[0]) + eg_ode.mean(0) / np.sqrt(res.config["N"])
    return float(np.max(np.abs(d.mean(0)) / band))


CASES = {
    # K, M, activation, lr, batch, sigma, A, v0, t_max
    "erf_K3_M2_both_layers": (3, 2, "erf", 0.5, 1, 0.0, (1.5, 0.7), (0.3, 0.3, 0.3), 20.0),
    "linear_K2_M2_noise": (2, 2, "linear", 0.5, 1, 0.3, (1.0, 1.0), (1.0, 1.0), 12.0),
    "linear_K2_M2_minibatch4": (2, 2, "linear", 0.8, 4, 0.0, (1.0, 1.0), (1.0, 1.0), 6.0),
}


@pytest.mark.parametrize("case", list(CASES))
def test_sgd_follows_order_parameter_ode(case):
    K, M, act, lr, batch, sigma, A, v0, t_max = CASES[case]
    times = np.linspace(0.0, t_max, 13)
    res = online_sgd(
        K,
        M,
        N,
        times,
        activation=act,
        lr=lr,
        sigma=sigma,
        A=A,
        v0=v0,
        seeds=SEEDS,
        batch_size=batch,
        init_std=0.5,
    )
    assert np.all(res.status == Status.OK)
    ode = order_parameter_ode(K, M, act, lr=lr, sigma=sigma, A=A, batch_size=batch)
    eg_ode = _ode_errors(ode, res, times)
    assert _worst_ratio(res, eg_ode) <= 1.0
    assert res.eg.mean(0)[-1] < 0.2 * res.eg.mean(0)[0]  # it learns
    # negative control: without the lr^2 terms the ODE misses the SGD curve
    assert _worst_ratio(res, _ode_errors(ode, res, times, drop_lr2=True)) > 2.0
    if act == "erf":
        wrong = order_parameter_ode(K, M, act, lr=0.8 * lr, lr2=lr, sigma=sigma, A=A, batch_size=batch)
        assert _worst_ratio(res, _ode_errors(wrong, res, times)) > 2.0


def test_recorded_order_parameters_and_teacher():
    """Q, R, T, v at t = 0 are those of the given initial weights and teacher; eps_g of a student
    that copies the teacher is 0."""
    rng = np.random.default_rng(0)
    J0, B = rng.standard_normal((3, 40)), rng.standard_normal((2, 40))
    v0 = (0.5, -0.5, 0.2)
    res = online_sgd(3, 2, 40, [0.0, 1.0], activation="erf", lr=0.3, J0=J0, B=B, v0=v0, seeds=[4, 9])
    np.testing.assert_allclose(res.Q[:, 0], np.broadcast_to(J0 @ J0.T / 40, (2, 3, 3)), rtol=1e-12)
    np.testing.assert_allclose(res.R[:, 0], np.broadcast_to(J0 @ B.T / 40, (2, 3, 2)), rtol=1e-12)
    np.testing.assert_allclose(res.T, np.broadcast_to(B @ B.T / 40, (2, 2, 2)), rtol=1e-12)
    np.testing.assert_array_equal(res.v[:, 0], [v0] * 2)
    np.testing.assert_allclose(res.t, [0.0, 1.0])  # SGD time steps / N (not alpha: the skip strength)
    assert not hasattr(res, "alpha")
    assert not np.allclose(res.Q[0, 1], res.Q[1, 1])  # different seeds, different sample streams
    copy = online_sgd(
        3,
        2,
        40,
        [0.0],
        activation="erf",
        lr=0.3,
        J0=np.vstack([B, np.zeros((1, 40))]),
        B=B,
        v0=(1.0, 1.0, 0.0),
        seeds=[0],
    )
    assert copy.eg[0, 0] == pytest.approx(0.0, abs=1e-14)


def test_seeds_are_reproducible_and_independent_of_each_other():
    a = online_sgd(2, 2, 60, [0, 2, 4], activation="linear", lr=0.2, seeds=[3, 5])
    b = online_sgd(2, 2, 60, [0, 2, 4], activation="linear", lr=0.2, seeds=[5])
    c = online_sgd(2, 2, 60, [0, 2, 4], activation="linear", lr=0.2, seeds=[3, 5])
    np.testing.assert_array_equal(a.Q[1], b.Q[0])
    np.testing.assert_array_equal(a.eg, c.eg)


def _numpy_replay(J, v, B, A, lr, lr2, sigma, batch, steps, seed, act):
    """Plain NumPy SGD with the same sample stream (``numpy.random.default_rng(seed)``, as in the kernel)."""
    from scipy.special import erf

    g = (lambda u: erf(u / np.sqrt(2))) if act == "erf" else (lambda u: u)
    gp = (lambda u: np.sqrt(2 / np.pi) * np.exp(-u * u / 2)) if act == "erf" else np.ones_like
    rs = np.random.default_rng(seed)
    J, v = J.copy(), v.copy()
    n = J.shape[1]
    for _ in range(steps):
        dJ, dv = np.zeros_like(J), np.zeros_like(v)
        for _ in range(batch):
            x = rs.standard_normal(n)
            lam, nu = J @ x / np.sqrt(n), B @ x / np.sqrt(n)
            delta = v @ g(lam) - A @ g(nu)
            if sigma > 0:
                delta -= sigma * rs.standard_normal()
            dJ += lr / np.sqrt(n) * np.outer(v * gp(lam) * delta, x)
            dv += lr2 / n * g(lam) * delta
        J, v = J - dJ / batch, v - dv / batch
    return J, v


@pytest.mark.parametrize("act,batch,sigma", [("erf", 1, 0.0), ("erf", 3, 0.2), ("linear", 2, 0.5)])
def test_kernel_matches_numpy_replay(act, batch, sigma):
    """The Numba update equals a plain NumPy implementation of the module-docstring rule, step by step."""
    rng = np.random.default_rng(1)
    K, M, n, lr, lr2, steps = 3, 2, 30, 0.7, 0.4, 5
    J0, B = rng.standard_normal((K, n)), rng.standard_normal((M, n))
    v0, A = np.array([0.8, 1.2, -0.5]), np.array([1.0, 0.5])
    res = online_sgd(
        K,
        M,
        n,
        [0.0, steps / n],
        activation=act,
        lr=lr,
        lr2=lr2,
        sigma=sigma,
        J0=J0,
        B=B,
        v0=v0,
        A=A,
        seeds=[7],
        batch_size=batch,
    )
    J, v = _numpy_replay(J0, v0, B, A, lr, lr2, sigma, batch, steps, 7, act)
    np.testing.assert_allclose(res.Q[0, 1], J @ J.T / n, rtol=1e-11)
    np.testing.assert_allclose(res.R[0, 1], J @ B.T / n, rtol=1e-11)
    np.testing.assert_allclose(res.v[0, 1], v, rtol=1e-11)
    assert not np.allclose(v, v0)


def test_nonfinite_run_is_flagged():
    """A diverging run ends with Status.NON_FINITE, the code the integrators use for a blow-up (one
    enumeration: 1 means CONVERGED everywhere, never "non-finite")."""
    res = online_sgd(2, 2, 50, np.linspace(0, 40, 5), activation="linear", lr=30.0, seeds=[0, 1])
    assert np.all(res.status == Status.NON_FINITE) and Status.NON_FINITE != Status.CONVERGED
    assert np.isnan(res.eg[:, -1]).all()
    spec = ModelSpec(K=2, M=2, N=3, activation="linear", alpha=0.5)
    blown = online_sgd_spec(spec, 3.0 * np.ones(spec.n_params), [0.0, 5e3], lr=5.0, seeds=[0])
    assert blown.status.tolist() == [Status.NON_FINITE] and np.isnan(blown.theta[0, -1]).all()


@pytest.mark.parametrize(
    "kwargs, exc, word",
    [
        ({"lr": 0.0}, ValueError, "lr"),
        ({"lr": -0.5}, ValueError, "lr"),
        ({"lr": float("nan")}, ValueError, "lr"),
        ({"N": 0}, ValueError, "N"),
        ({"N": 10.5}, TypeError, "N"),
        ({"K": 5}, ValueError, "K"),
        ({"sigma": -1.0}, ValueError, "sigma"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"activation": "relu"}, ValueError, "relu"),
        ({"seeds": []}, ValueError, "seeds"),
        ({"seeds": [-1]}, ValueError, "seeds"),
        ({"times": [0.0, float("inf")]}, ValueError, "grid"),
        ({"times": [0.0, 1.0, 1.0]}, ValueError, "grid"),
        ({"A": (1.0, np.nan)}, ValueError, "A"),
        ({"J0": np.zeros((3, 20))}, ValueError, "J0"),
        ({"B": np.ones((2, 19))}, ValueError, "B"),
        ({"v0": (1.0, np.inf)}, ValueError, "v0"),
    ],
)
def test_bad_arguments(kwargs, exc, word):
    args = {"K": 2, "M": 2, "N": 20, "times": [0.0, 1.0], "activation": "linear", "lr": 0.1}
    args.update(kwargs)
    with pytest.raises(exc, match=word):
        online_sgd(**args)


# ----------------------------------------------------------------------------- ModelSpec convention
def test_spec_sgd_follows_gradient_flow():
    """Small-lr SGD on the ModelSpec student (skip alpha = 0.5), averaged over seeds, follows
    d theta/dt = -grad L of the generated population loss (independent SymPy path)."""
    from ghostsing.analytic import derive

    spec = ModelSpec(K=2, M=2, N=3, activation="erf", alpha=0.5)
    flow = derive(spec).compile().flow
    theta0 = np.array([0.6, 0.4, 0.5, -0.3, 0.2, -0.4, 0.6, 0.1])
    times = np.linspace(0.0, 2.0, 5)
    res = online_sgd_spec(spec, theta0, times, lr=2e-3, seeds=range(16))
    assert np.all(res.status == Status.OK)
    ref = solve_ivp(lambda t, y: flow(y), (0, 2.0), theta0, t_eval=times, rtol=1e-10, atol=1e-12).y.T
    mean = res.theta.mean(0)
    se = res.theta.std(0, ddof=1) / np.sqrt(16)
    assert np.all(np.abs(mean - ref) <= 4 * se + 0.01)
    assert np.max(np.abs(ref[-1] - theta0)) > 0.1  # the flow actually moves
    # negative control: the flow run at half speed is rejected
    slow = solve_ivp(lambda t, y: 0.5 * flow(y), (0, 2.0), theta0, t_eval=times, rtol=1e-10).y.T
    assert np.any(np.abs(mean - slow) > 4 * se + 0.01)


def test_spec_sgd_bad_arguments():
    spec = ModelSpec(K=2, M=2, N=3)
    with pytest.raises(TypeError, match="ModelSpec"):
        online_sgd_spec("spec", np.zeros(8), [0, 1])
    with pytest.raises(ValueError, match="theta0"):
        online_sgd_spec(spec, np.zeros(7), [0, 1])
    with pytest.raises(ValueError, match="lr"):
        online_sgd_spec(spec, np.zeros(8), [0, 1], lr=-1.0)


def test_results_do_not_depend_on_thread_count():
    import numba

    kw = dict(activation="erf", lr=0.4, seeds=[0, 1, 2], init_std=0.5)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = online_sgd(2, 2, 50, [0.0, 2.0], **kw)
    finally:
        numba.set_num_threads(before)
    many = online_sgd(2, 2, 50, [0.0, 2.0], **kw)
    np.testing.assert_array_equal(one.Q, many.Q)
    np.testing.assert_array_equal(one.v, many.v)


@pytest.mark.parametrize("act,alpha,batch", [("relu", 0.7, 1), ("linear", 0.0, 3), ("erf", 1.0, 2)])
def test_spec_kernel_matches_numpy_replay(act, alpha, batch):
    """ModelSpec-convention SGD equals a plain NumPy update with the same samples (default_rng(seed))."""
    from scipy.special import erf

    spec = ModelSpec(
        K=2,
        M=3,
        N=4,
        activation=act,
        alpha=alpha,
        sigma=0.3,
        v=(1.0, -0.5, 0.8),
        B=np.random.default_rng(3).standard_normal((3, 4)),
    )
    theta0 = np.random.default_rng(4).standard_normal(spec.n_params)
    lr, steps = 0.05, 6
    res = online_sgd_spec(spec, theta0, [0.0, steps * lr], lr=lr, seeds=[11], batch_size=batch)
    g = {"erf": lambda u: erf(u / np.sqrt(2)), "relu": lambda u: np.maximum(u, 0), "linear": lambda u: u}[act]
    gp = {
        "erf": lambda u: np.sqrt(2 / np.pi) * np.exp(-u * u / 2),
        "relu": lambda u: (u > 0) * 1.0,
        "linear": np.ones_like,
    }[act]
    w, J = (a.copy() for a in spec.split(theta0))
    rng = np.random.default_rng(11)
    for _ in range(steps):
        gw, gJ = np.zeros_like(w), np.zeros_like(J)
        for _ in range(batch):
            x = rng.standard_normal(spec.N)
            y = spec.v @ g(spec.B @ x) + spec.sigma * rng.standard_normal()
            h = g(J @ x) + alpha * spec.skip_directions @ x
            delta = w @ h - y
            gw += delta * h
            gJ += np.outer(delta * w * gp(J @ x), x)
        w, J = w - lr / batch * gw, J - lr / batch * gJ
    np.testing.assert_allclose(res.theta[0, 1], spec.pack(w, J), rtol=1e-11, atol=1e-13)
    assert res.t[-1] == pytest.approx(steps * lr)
