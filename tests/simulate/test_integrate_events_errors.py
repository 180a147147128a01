"""Events located on the dense output against closed-form crossing times; non-finite states and
blow-ups flagged; bad arguments rejected with clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit
from sim_flows import blowup_flow, nan_flow, quad_flow_into, quad_jac, quad_loss, radius, rot_flow

from ghostsing.simulate import Event, Status, StepControl, Stop, integrate

Y0 = np.array([1.0, 0.5])


def _quad_loss_exact(t):
    return 0.5 * (np.exp(-2 * t) + 4 * 0.25 * np.exp(-8 * t))


def _root(fun, a, b):
    from scipy.optimize import brentq

    return brentq(fun, a, b, xtol=1e-15, rtol=1e-15)


@pytest.mark.parametrize("method", ["dopri5", "dop853", "rosenbrock", "rodas5p", "auto"])
def test_loss_and_radius_events_match_closed_form(method):
    """Loss L(t) = (e^{-2t} + e^{-8t})/2 crossing 0.1 and 1e-3; radius |y(t)| crossing 0.5 (the
    exact crossing times from brentq on the closed forms); located to 1e-7 relative."""
    levels = [0.1, 1e-3]
    radii = [0.5]
    sol = integrate(quad_flow_into, Y0, [0.0, 10.0], loss=quad_loss, jacobian=quad_jac, method=method,
                    events=[Event(levels, direction=-1), Event(radii, fn=radius)], rtol=1e-9, atol=1e-12)
    assert sol.status[0] == Status.OK
    for lev, t_ev in zip(levels, sol.events[0][0], strict=True):
        t_ex = _root(lambda t, lev=lev: _quad_loss_exact(t) - lev, 0.0, 10.0)
        assert abs(t_ev - t_ex) < 1e-7 * t_ex, (method, lev, t_ev, t_ex)
    r_ex = _root(lambda t: np.hypot(np.exp(-t), 0.5 * np.exp(-4 * t)) - 0.5, 0.0, 10.0)
    assert abs(sol.events[1][0, 0] - r_ex) < 1e-7 * r_ex


def test_event_direction_and_no_crossing():
    """A level never reached gives NaN; direction=+1 ignores the falling crossing."""
    sol = integrate(quad_flow_into, Y0, [0.0, 5.0], loss=quad_loss,
                    events=[Event([0.1, 10.0]), Event([0.5], fn=radius, direction=1)])
    assert np.isfinite(sol.events[0][0, 0]) and np.isnan(sol.events[0][0, 1])
    assert np.isnan(sol.events[1][0, 0])


def test_terminal_event_stops_trajectory():
    """A terminal radius event at 0.2 stops at t* = the exact crossing, later saves are NaN, y_stop has
    radius 0.2."""
    te = np.linspace(0.0, 5.0, 51)
    sol = integrate(quad_flow_into, Y0, te, events=[Event([0.2], fn=radius, terminal=True)], rtol=1e-10,
                    atol=1e-13)
    t_ex = _root(lambda t: np.hypot(np.exp(-t), 0.5 * np.exp(-4 * t)) - 0.2, 0.0, 10.0)
    assert sol.status[0] == Status.EVENT
    assert abs(sol.t_stop[0] - t_ex) < 1e-8
    assert abs(np.hypot(*sol.y_stop[0]) - 0.2) < 1e-9
    assert np.all(np.isnan(sol.y[0, te > t_ex])) and np.all(np.isfinite(sol.y[0, te <= t_ex]))


@pytest.mark.parametrize("method", ["rk4", "euler"])
def test_events_in_fixed_step_mode(method):
    """Fixed-step methods locate events on a cubic Hermite interpolant: within the method's own error
    (RK4, h = 0.01: 1e-6; Euler is compared with its own discrete trajectory's crossing)."""
    h = 0.01
    sol = integrate(quad_flow_into, Y0, [0.0, 5.0], method=method, control=StepControl(fixed_step=h),
                    events=[Event([0.5], fn=radius)])
    t_ex = _root(lambda t: np.hypot(np.exp(-t), 0.5 * np.exp(-4 * t)) - 0.5, 0.0, 10.0)
    if method == "rk4":
        assert abs(sol.events[0][0, 0] - t_ex) < 1e-6
    else:
        k = np.arange(600)
        r = np.hypot((1 - h) ** k, 0.5 * (1 - 4 * h) ** k)
        i = int(np.argmax(r <= 0.5))
        assert k[i - 1] * h <= sol.events[0][0, 0] <= k[i] * h


def test_non_finite_initial_state_is_flagged():
    """Rows with NaN/inf come back NON_FINITE with all-NaN saves; finite rows are untouched."""
    Y = np.array([[1.0, 0.5], [np.nan, 0.0], [np.inf, 1.0], [0.2, 0.1]])
    sol = integrate(quad_flow_into, Y, [0.0, 1.0, 2.0], loss=quad_loss)
    assert sol.status.tolist() == [Status.OK, Status.NON_FINITE, Status.NON_FINITE, Status.OK]
    assert np.all(np.isnan(sol.y[1:3])) and np.all(np.isnan(sol.loss[1:3]))
    assert np.all(np.isfinite(sol.y[[0, 3]]))
    np.testing.assert_allclose(sol.y[0, 2], [np.exp(-2.0), 0.5 * np.exp(-8.0)], rtol=1e-6)


@pytest.mark.parametrize("method", ["dopri5", "dop853", "rk4"])
def test_blow_up_is_flagged(method):
    """y' = y^2, y(0) = 1 blows up at t = 1: status is NON_FINITE or STEP_TOO_SMALL (never OK), saves
    before the blow-up are 1/(1 - t), saves after it are NaN, and the stop is at t = 1 (to 2e-3)."""
    te = np.array([0.0, 0.5, 0.9, 1.5, 2.0])
    kw = {"control": StepControl(fixed_step=1e-3)} if method == "rk4" else {}
    sol = integrate(blowup_flow, np.array([1.0]), te, method=method, **kw)
    assert sol.status[0] in (Status.NON_FINITE, Status.STEP_TOO_SMALL)
    np.testing.assert_allclose(sol.y[0, :3, 0], 1 / (1 - te[:3]), rtol=1e-6)
    assert np.all(np.isnan(sol.y[0, 3:]))
    assert 0.99 < sol.t_stop[0] <= 1.0 + 2e-3


def test_nan_right_hand_side_is_flagged():
    """A right-hand side that turns NaN at y = 2 (y' = 1 from 0): NON_FINITE, stop close to t = 2."""
    sol = integrate(nan_flow, np.zeros(1), [0.0, 1.0, 3.0])
    assert sol.status[0] == Status.NON_FINITE
    assert 1.9 < sol.t_stop[0] <= 2.0
    assert np.isnan(sol.y[0, 2, 0]) and sol.y[0, 1, 0] == pytest.approx(1.0)


def test_max_steps_is_flagged():
    sol = integrate(rot_flow, Y0, [0.0, 100.0], stop=Stop(max_steps=10))
    assert sol.status[0] == Status.MAX_STEPS and np.isnan(sol.y[0, -1, 0])


def py_flow(y):
    return -y


@njit
def three_args(y, out, z):
    out[:] = z


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"t_eval": [0.0, 2.0, 1.0]}, ValueError, "strictly increasing"),
        ({"t_eval": [0.0, 1.0, 1.0]}, ValueError, "strictly increasing"),
        ({"t_eval": []}, ValueError, "t_eval"),
        ({"t_eval": [0.0, np.nan]}, ValueError, "finite"),
        ({"rtol": 0.0}, ValueError, "rtol"),
        ({"rtol": -1e-3}, ValueError, "rtol"),
        ({"atol": -1.0}, ValueError, "atol"),
        ({"atol": [1e-8, 1e-8, 1e-8]}, ValueError, "atol"),
        ({"theta0": np.zeros((2, 2, 2))}, ValueError, "theta0"),
        ({"theta0": np.zeros((0, 2))}, ValueError, "theta0"),
        ({"method": "rk23"}, ValueError, "method"),
        ({"method": "rk4"}, ValueError, "fixed_step"),
        ({"method": "rosenbrock"}, ValueError, "jacobian"),
        ({"method": "rosenbrock", "jacobian": quad_jac, "control": StepControl(fixed_step=0.1)}, ValueError,
         "fixed_step"),
        ({"method": "rodas5p"}, ValueError, "jacobian"),
        ({"method": "rodas5p", "jacobian": quad_jac, "control": StepControl(fixed_step=0.1)}, ValueError,
         "fixed_step"),
        ({"t0": 1.0, "t_eval": [0.0, 1.0]}, ValueError, "t0"),
        ({"flow": rot_flow, "theta0": np.zeros(3)}, ValueError, "returned shape"),
        ({"stop": (1e-6, 1.0)}, TypeError, "allowed: a Stop"),
        ({"converge": (1e-6, 1.0)}, TypeError, r"stop=Stop\(grad_tol"),
        ({"step": 0.1}, TypeError, r"control=StepControl\(fixed_step"),
        ({"bogus": 1}, TypeError, "unexpected keyword"),
        ({"flow": py_flow}, TypeError, "Numba"),
        ({"flow": three_args}, TypeError, "arguments"),
        ({"events": [Event([0.1])]}, ValueError, "loss"),
        ({"events": ["x"]}, TypeError, "Event"),
    ],
)
def test_bad_arguments_raise(kwargs, exc, match):
    args = {"flow": quad_flow_into, "theta0": Y0, "t_eval": [0.0, 1.0]}
    args.update(kwargs)
    flow, theta0, te = args.pop("flow"), args.pop("theta0"), args.pop("t_eval")
    with pytest.raises(exc, match=match):
        integrate(flow, theta0, te, **args)


def test_bad_event_arguments():
    with pytest.raises(ValueError, match="direction"):
        Event([0.1], direction=2)
    with pytest.raises(ValueError, match="levels"):
        Event([])
