"""Order of accuracy, tolerance proportionality and stiff behaviour on linear ODEs with closed-form
solutions (the independent source is the exact solution)."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit
from sim_flows import quad_flow_into, quad_jac, rot_exact, rot_flow, stiff_flow, stiff_jac_into

from ghostsing.simulate import Saves, Status, StepControl, StiffnessSwitch, Stop, integrate

Y0 = np.array([1.0, 0.5])
T_END = 2.0


def _fixed_error(method: str, h: float) -> float:
    sol = integrate(rot_flow, Y0, [0.0, T_END], method=method, control=StepControl(fixed_step=h))
    assert sol.status[0] == Status.OK
    return float(np.max(np.abs(sol.y[0, -1] - rot_exact(T_END, Y0))))


@pytest.mark.parametrize(
    ("method", "order", "steps"),
    [("euler", 1, (40, 80, 160)), ("rk4", 4, (10, 20, 40)), ("dopri5", 5, (10, 20, 40)),
     ("dop853", 8, (8, 12, 16))],
)
def test_fixed_step_global_error_order(method, order, steps):
    """Global error at t = 2 falls as h^p: the slope of log(error) against log(h) is p within 0.35."""
    hs = np.array([T_END / k for k in steps])
    errs = np.array([_fixed_error(method, h) for h in hs])
    slopes = np.diff(np.log(errs)) / np.diff(np.log(hs))
    assert np.all(np.abs(slopes - order) < 0.35), (method, errs, slopes)


def test_fixed_step_counts_and_lands_on_save_times():
    """Fixed steps are clipped to hit every save time exactly: h = 0.3 with saves at 0, 1, 2 takes
    ceil(1/0.3) = 4 steps per unit interval (8 in all), 4 right-hand sides each for RK4."""
    sol = integrate(rot_flow, Y0, [0.0, 1.0, 2.0], method="rk4", control=StepControl(fixed_step=0.3))
    assert sol.n_accepted[0] == 8
    assert sol.nfev[0] == 1 + 8 * 4
    # the same step sequence (0.3, 0.3, 0.3, 0.1 twice) in a plain NumPy RK4
    from sim_flows import A_ROT

    def f(y):
        return A_ROT @ y

    y = Y0.copy()
    saved = [y.copy()]
    for _ in range(2):
        for h in (0.3, 0.3, 0.3, 0.1):
            k1 = f(y)
            k2 = f(y + h / 2 * k1)
            k3 = f(y + h / 2 * k2)
            k4 = f(y + h * k3)
            y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        saved.append(y.copy())
    np.testing.assert_allclose(sol.y[0], np.array(saved), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("method", ["dopri5", "dop853", "dop853-dense"])
def test_adaptive_tolerance_proportionality(method):
    """With atol = rtol / 100 the global error (at 21 dense-output save times; at t = 4 only for DOP853
    landing on its save times, where 21 saves would cap the step) is at most ~rtol and falls with
    rtol: fitted slope of log(err) against log(rtol) in [0.7, 1.15]."""
    te = np.array([0.0, 4.0]) if method == "dop853" else np.linspace(0.0, 4.0, 21)
    ref = np.array([rot_exact(t, Y0) for t in te])
    rtols = np.array([1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10])
    errs = []
    for rt in rtols:
        exact = False if method == "dop853-dense" else None
        sol = integrate(rot_flow, Y0, te, rtol=rt, atol=rt / 100, method=method[:6],
                        saves=Saves(exact=exact))
        assert sol.status[0] == Status.OK
        errs.append(np.max(np.abs(sol.y[0] - ref)))
    errs = np.array(errs)
    slope = np.polyfit(np.log(rtols), np.log(errs), 1)[0]
    assert 0.7 < slope < 1.15, (errs, slope)
    assert np.all(errs < 30 * rtols), errs


def test_rosenbrock_on_stiff_system_is_accurate_and_cheap():
    """y' = diag(-1, -1e4) y: RODAS (exact Jacobian) reaches t = 10 with error < 1e-6 in far fewer
    steps than DOPRI5, whose step is capped by stability at ~3.3e-4."""
    y0 = np.array([1.0, 1.0])
    te = np.array([0.0, 1.0, 10.0])
    exact = np.stack([np.exp(-te), np.exp(-1e4 * te)], axis=1)
    ro = integrate(stiff_flow, y0, te, method="rosenbrock", jacobian=stiff_jac_into, rtol=1e-8, atol=1e-10)
    dp = integrate(stiff_flow, y0, te, method="dopri5", rtol=1e-8, atol=1e-10)
    assert ro.status[0] == Status.OK and dp.status[0] == Status.OK
    assert np.max(np.abs(ro.y[0] - exact)) < 1e-6
    assert np.max(np.abs(dp.y[0] - exact)) < 1e-6
    assert ro.n_accepted[0] * 20 < dp.n_accepted[0], (ro.n_accepted, dp.n_accepted)
    assert ro.njev[0] >= ro.n_accepted[0]


# a stiff linear system with coupled slow and fast modes: y' = A3 y, y(t) = expm(A3 t) y0
A3 = np.array([[-1.0, 0.5, 0.0], [0.0, -100.0, 1.0], [0.2, 0.0, -0.01]])
Y3 = np.array([1.0, -2.0, 0.5])


@njit(cache=True)
def _lin3_flow(y, out):
    for i in range(3):
        out[i] = A3[i, 0] * y[0] + A3[i, 1] * y[1] + A3[i, 2] * y[2]


@njit(cache=True)
def _lin3_jac(y, out):
    for i in range(3):
        for j in range(3):
            out[i, j] = A3[i, j]


@pytest.mark.parametrize(("method", "est_order"), [("rosenbrock", 3), ("rodas5p", 4)])
def test_rosenbrock_tolerance_proportionality_and_order(method, est_order):
    """On y' = A3 y (eigenvalues ~ -100, -1, -0.01) the global error at 41 saves (dense output) is at
    most ~rtol and proportional to it (slope in [0.8, 1.15]), and the number of accepted steps grows
    as rtol^(-1/(q+1)) with q the order of the error estimate (3 for RODAS, 4 for Rodas5P): the fitted
    exponent is within 0.04 of 1/(q+1) (0.25 vs 0.2, so the two methods are told apart)."""
    from scipy.linalg import expm

    te = np.linspace(0.0, 20.0, 41)
    exact = np.array([expm(A3 * t) @ Y3 for t in te])
    rtols = np.array([1e-4, 1e-6, 1e-8, 1e-10])
    errs, steps = [], []
    for rt in rtols:
        sol = integrate(_lin3_flow, Y3, te, method=method, jacobian=_lin3_jac, rtol=rt, atol=rt / 100)
        assert sol.status[0] == Status.OK
        errs.append(np.max(np.abs(sol.y[0] - exact)))
        steps.append(sol.n_accepted[0])
    errs, steps = np.array(errs), np.array(steps)
    assert np.all(errs < 30 * rtols), errs
    assert 0.8 < np.polyfit(np.log(rtols), np.log(errs), 1)[0] < 1.15, errs
    expo = -np.polyfit(np.log(rtols), np.log(steps), 1)[0]
    assert abs(expo - 1.0 / (est_order + 1)) < 0.04, (steps, expo)


@pytest.mark.parametrize("method", ["auto", "auto853", "auto853+rodas5p"])
def test_auto_switches_to_stiff_method_and_stays_accurate(method):
    """'auto' starts explicit and switches to RODAS or Rodas5P (t_stiff recorded) on the stiff system."""
    method, _, stiff = method.partition("+")
    y0 = np.array([1.0, 1.0])
    te = np.linspace(0.0, 10.0, 11)
    exact = np.stack([np.exp(-te), np.exp(-1e4 * te)], axis=1)
    au = integrate(stiff_flow, y0, te, method=method, jacobian=stiff_jac_into, rtol=1e-8, atol=1e-10,
                   stiffness=StiffnessSwitch(method=stiff or "rodas"))
    dp = integrate(stiff_flow, y0, te, method="dopri5", rtol=1e-8, atol=1e-10)
    assert au.status[0] == Status.OK
    assert np.isfinite(au.t_stiff[0]) and au.t_stiff[0] < 0.1
    assert np.max(np.abs(au.y[0] - exact)) < 1e-6
    assert au.nfev[0] * 5 < dp.nfev[0]


def test_convergence_stop_time_and_state():
    """Gradient flow of L = (y0^2 + 4 y1^2)/2 from (1, 0.5): |grad L| ~ e^{-t} for large t, so with
    grad_tol = 1e-6 and hold 5 the stop comes at ln(1e6) + 5 ~ 18.8 (to within one step), status
    CONVERGED, and the later saves repeat the stop state, which is within grad_tol of the minimum."""
    te = np.linspace(0.0, 100.0, 101)
    sol = integrate(quad_flow_into, Y0, te, rtol=1e-10, atol=1e-12, stop=Stop(grad_tol=1e-6, hold_time=5.0),
                    loss=None)
    assert sol.status[0] == Status.CONVERGED
    t_cross = np.log(1e6)  # y1 term is e^{-4t}-small by then
    assert t_cross + 5.0 <= sol.t_stop[0] < t_cross + 5.0 + 1.5
    after = te > sol.t_stop[0]
    assert np.all(sol.y[0, after] == sol.y_stop[0])
    assert np.max(np.abs(sol.y_stop[0])) < 1e-6
    before = te <= 18.0
    exact = np.stack([np.exp(-te[before]), 0.5 * np.exp(-4 * te[before])], axis=1)
    assert np.max(np.abs(sol.y[0, before] - exact)) < 1e-9
    # the same run with the stiff method and the Jacobian stops at the same place
    ro = integrate(quad_flow_into, Y0, te, method="rosenbrock", jacobian=quad_jac,
                   stop=Stop(grad_tol=1e-6, hold_time=5.0))
    assert ro.status[0] == Status.CONVERGED and abs(ro.t_stop[0] - sol.t_stop[0]) < 2.0


def test_euler_is_gradient_descent():
    """Euler with step h is gradient descent with rate h: the saved states equal the explicit loop."""
    h, k = 0.05, 40
    sol = integrate(quad_flow_into, Y0, np.arange(k + 1) * h, method="euler",
                    control=StepControl(fixed_step=h))
    y = Y0.copy()
    out = [y.copy()]
    for _ in range(k):
        y = y - h * np.array([y[0], 4 * y[1]])
        out.append(y.copy())
    np.testing.assert_allclose(sol.y[0], np.array(out), rtol=1e-13, atol=1e-15)


def test_log_grid_with_separate_start_time():
    """t0 = 0 with log-spaced saves from 1e-3: every save matches the exact solution."""
    te = np.geomspace(1e-3, 10.0, 30)
    sol = integrate(rot_flow, Y0, te, t0=0.0, rtol=1e-10, atol=1e-12)
    ref = np.array([rot_exact(t, Y0) for t in te])
    assert np.max(np.abs(sol.y[0] - ref)) < 1e-9
