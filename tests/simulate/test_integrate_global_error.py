"""integrate(..., saves=Saves(estimate_error=True)) and Saves(error_target=...): a per-trajectory estimate of
the largest global error over the saves, and re-integration of the trajectories whose estimate exceeds a
target.

Independent checks: the closed-form solution of a damped rotation, and scipy's DOP853 at rtol 1e-12 on
the generated erf model, on starts that pass near a saddle of the plateau (where the global error is
hundreds of times the local tolerance) and on ordinary starts. The 2,000-start calibration is
benchmarks/study_error_estimate.py; this is its fast version."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit
from scipy.integrate import solve_ivp
from sim_flows import rot_exact, rot_flow

from ghostsing.simulate import Execution, Saves, Status, StepControl, integrate
from ghostsing.simulate.global_error import ESTIMATE_SAFETY, pair_error_estimate

TE = np.concatenate([[0.0], np.geomspace(0.1, 1e4, 21)])
# rows of N(0, 0.8^2 I) starts, seed 7 (the calibration study's): 1009 and 1616 pass near a saddle
# (auto853 at rtol 1e-8: errors 1.7e-6 and 1.2e-8); 0 and 1 are ordinary
ROWS = [1009, 1616, 0, 1]


@njit(cache=True)
def _rot_jac(y):
    return np.array([[-1.0, 2.0], [-2.0, -1.0]])


@pytest.fixture(scope="module")
def hard_case(erf_model):
    spec, f = erf_model
    Y = np.random.default_rng(7).normal(scale=0.8, size=(2000, spec.n_params))[ROWS]
    ref = np.array([solve_ivp(lambda t, y: f.flow(y), (0.0, TE[-1]), y0, method="DOP853", t_eval=TE,
                              rtol=1e-12, atol=1e-14).y.T for y0 in Y])
    return f, Y, ref


def _true_err(y, ref):
    return np.max(np.abs(y - ref), axis=(1, 2))


def test_estimate_bounds_the_true_error_on_the_model(hard_case):
    """The estimate is at least the true error and at most 10x it, on saddle passages and ordinary
    starts alike; the saddle start's error is far above the tolerance (what local control misses)."""
    f, Y, ref = hard_case
    sol = integrate(f, Y, TE, method="auto853", saves=Saves(estimate_error=True))
    e = _true_err(sol.y, ref)
    assert e[0] > 1e-7  # 100x rtol: the case the estimate is for
    assert np.all(sol.error_estimate >= e)
    assert np.all(sol.error_estimate <= 10 * e)
    np.testing.assert_array_equal(sol.rtol_used, 1e-8)
    plain = integrate(f, Y, TE, method="auto853")
    assert plain.error_estimate is None
    np.testing.assert_array_equal(plain.y, sol.y)  # the estimate leaves the solution as it was


def test_error_target_is_met_on_the_model(hard_case):
    """error_target=1e-8: the saddle start is re-integrated tighter and every true error meets it."""
    f, Y, ref = hard_case
    sol = integrate(f, Y, TE, method="auto853", execution=Execution(simd=True),
                    saves=Saves(error_target=1e-8))
    e = _true_err(sol.y, ref)
    assert np.all(e <= 1e-8)
    assert sol.rtol_used[0] <= 1e-9  # the saddle start needed at least one decade
    assert np.all(sol.error_estimate <= 1e-8 / 3)
    assert np.all(sol.status == Status.OK)
    # a re-integrated row is the tighter run's solution, with its work counters
    tight = integrate(f, Y[:1], TE, method="auto853", execution=Execution(simd=True), rtol=sol.rtol_used[0],
                      atol=1e-10 * sol.rtol_used[0] / 1e-8)
    np.testing.assert_array_equal(sol.y[0], tight.y[0])
    assert sol.n_accepted[0] == tight.n_accepted[0]


@pytest.mark.parametrize("method", ["dopri5", "dop853", "rodas5p"])
def test_estimate_against_closed_form(method):
    """Damped rotation y' = A y (closed form): 1 <= estimate / true error <= 10 at rtol 1e-6 and 1e-9."""
    y0 = np.array([[1.0, 0.5], [-0.3, 2.0]])
    te = np.linspace(0.0, 5.0, 11)
    exact = np.array([[rot_exact(t, y) for t in te] for y in y0])
    for rtol in (1e-6, 1e-9):
        kw = {"jacobian": _rot_jac} if method == "rodas5p" else {}
        sol = integrate(rot_flow, y0, te, method=method, rtol=rtol, atol=rtol * 1e-2,
                        saves=Saves(estimate_error=True),
                        **kw)
        r = sol.error_estimate / _true_err(sol.y, exact)
        assert np.all((r >= 1.0) & (r <= 10.0)), (method, rtol, r)


def test_pair_estimate_rules():
    """2 max |y - y_companion| over finite saves; NaN for a failed trajectory, inf for a failed companion."""
    y = np.zeros((4, 3, 2))
    c = np.zeros((4, 3, 2))
    c[0, 1, 1] = 3e-9
    c[1, 2, 0] = -1e-7
    y[2, 2] = np.nan  # stopped (terminal event): the NaN save is skipped
    c[2, 2] = 5.0
    c[3, 1, 0] = np.nan  # the companion failed where y is finite
    st = np.array([Status.OK, Status.OK, Status.EVENT, Status.OK])
    est = pair_error_estimate(y, c, st)
    np.testing.assert_allclose(est[:3], ESTIMATE_SAFETY * np.array([3e-9, 1e-7, 0.0]))
    assert est[3] == np.inf
    st[1] = Status.NON_FINITE
    assert np.isnan(pair_error_estimate(y, c, st)[1])


def test_error_target_warns_when_out_of_reach():
    """A target below what float64 allows cannot be met: a RuntimeWarning says so."""
    y0 = np.array([1.0, 0.5])
    with pytest.warns(RuntimeWarning, match="error_target=1e-30"):
        sol = integrate(rot_flow, y0, [0.0, 1.0, 2.0], rtol=1e-6, saves=Saves(error_target=1e-30))
    assert sol.rtol_used[0] < 1e-6


@pytest.mark.parametrize(("kw", "exc", "match"), [
    ({"saves": Saves(estimate_error=True), "method": "rk4", "control": StepControl(fixed_step=0.1)},
     ValueError, "fixed step"),
    ({"saves": Saves(estimate_error=True), "control": StepControl(fixed_step=0.1)}, ValueError, "fixed step"),
    ({"estimate_error": True}, TypeError, r"saves=Saves\(estimate_error"),
])
def test_bad_arguments(kw, exc, match):
    with pytest.raises(exc, match=match):
        integrate(rot_flow, np.array([1.0, 0.5]), [0.0, 1.0], **kw)
