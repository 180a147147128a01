"""integrate(..., execution=Execution(simd=True)): 16 trajectories per iteration in lock-step, Rodas5P
alone or DOP853 then Rodas5P (auto853, a queue between two groups of lanes).

Independent checks: scipy's DOP853 at rtol 1e-12 (accuracy), the scalar methods (same algorithms: the
same accepted and rejected step counts, switch times and states to rounding), and the status rules."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from ghostsing.simulate import Event, Execution, Saves, Status, StiffnessSwitch, Stop, integrate

TE = np.array([0.0, 0.5, 3.0, 30.0, 300.0, 1000.0])


@pytest.fixture(scope="module")
def starts(erf_model):
    """37 states: two full blocks of 16 lanes and a partial one (lane refill and idle lanes)."""
    spec, _ = erf_model
    return np.random.default_rng(7).normal(scale=0.8, size=(37, spec.n_params))


# the scalar auto853 may switch back to DOP853 (h ||J|| < 1.5 x 1.8 for 10 steps); the SIMD driver
# does not, so the comparison turns the switch back off (down = 0)
SCALAR_KW = {"rodas5p": {"method": "rodas5p"},
             "rodas5p-exact": {"method": "rodas5p", "saves": Saves(exact=True)},
             "auto853": {"method": "auto853", "stiffness": StiffnessSwitch(up=2.5, down=0.0)}}
SIMD = Execution(simd=True)


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("method", list(SCALAR_KW))
def test_simd_is_the_scalar_method(erf_model, starts, parallel, method):
    _, f = erf_model
    a = integrate(f, starts, TE, execution=Execution(simd=True, parallel=parallel), **SCALAR_KW[method])
    b = integrate(f, starts, TE, **SCALAR_KW[method])
    assert np.all(a.status == Status.OK)
    np.testing.assert_array_equal(a.n_accepted, b.n_accepted)
    np.testing.assert_array_equal(a.n_rejected, b.n_rejected)
    np.testing.assert_allclose(a.y, b.y, rtol=0, atol=1e-11)
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-10)
    np.testing.assert_allclose(a.grad_norm, b.grad_norm, rtol=1e-8)
    np.testing.assert_allclose(a.y_stop, b.y_stop, rtol=0, atol=1e-11)
    np.testing.assert_array_equal(a.t_stop, b.t_stop)
    if method.startswith("rodas5p"):
        assert np.all(np.isnan(a.t_stiff))
    else:
        # the same switch step; its end moves a little: the error estimate of a short DOP853 step is a
        # sum with cancellation, where rounding (vecmath.asin against libm's) is 1e-6 of the estimate
        assert np.sum(np.isfinite(a.t_stiff)) >= 30
        np.testing.assert_array_equal(np.isnan(a.t_stiff), np.isnan(b.t_stiff))
        np.testing.assert_allclose(a.t_stiff, b.t_stiff, rtol=1e-4)


@pytest.mark.parametrize("method", ["rodas5p", "auto853"])
def test_simd_matches_scipy_dop853(erf_model, starts, method):
    """|y - y_ref| <= 20 (rtol |y_ref| + atol) at every save, as for the scalar methods."""
    _, f = erf_model
    rtol, atol = 1e-8, 1e-10
    sol = integrate(f, starts[:6], TE, method=method, execution=SIMD, rtol=rtol, atol=atol)
    for k, y0 in enumerate(starts[:6]):
        r = solve_ivp(lambda t, y: f.flow(y), (0.0, TE[-1]), y0, method="DOP853", t_eval=TE,
                      rtol=1e-12, atol=1e-14)
        ref = r.y.T
        assert np.all(np.abs(sol.y[k] - ref) <= 20 * (rtol * np.abs(ref) + atol))


def test_simd_statuses_and_fewer_states_than_lanes(erf_model, starts):
    """Non-finite and blown-up rows are flagged at once, the others are integrated (3 states < 16
    lanes); the step budget gives MAX_STEPS with NaN after the stop; Stop(grad_tol=...) stops as in scalar."""
    _, f = erf_model
    y0 = np.vstack([starts[:2], [np.nan] * 6, 1e120 * np.ones(6)])
    sol = integrate(f, y0, TE, method="rodas5p", execution=SIMD)
    assert list(sol.status) == [Status.OK, Status.OK, Status.NON_FINITE, Status.NON_FINITE]
    assert np.all(np.isnan(sol.y[2:, 1:]))
    ref = integrate(f, starts[:2], TE, method="rodas5p")
    np.testing.assert_allclose(sol.y[:2], ref.y, rtol=0, atol=1e-11)

    capped = integrate(f, starts[:20], TE, method="rodas5p", execution=SIMD, stop=Stop(max_steps=15))
    assert np.all(capped.status == Status.MAX_STEPS)
    assert np.all(capped.n_accepted + capped.n_rejected == 15)
    assert np.all(np.isnan(capped.y[:, -1]))

    kw = {"method": "auto853", "stiffness": StiffnessSwitch(up=2.5, down=0.0),
          "stop": Stop(grad_tol=1e-4, hold_time=5.0)}
    a = integrate(f, starts[:20], TE, execution=SIMD, **kw)
    b = integrate(f, starts[:20], TE, **kw)
    np.testing.assert_array_equal(a.status, b.status)
    assert np.any(a.status == Status.CONVERGED)
    # the stop is the first step end after the hold time: step ends move with rounding (LU order)
    # (and the repeated state after it differs by ~ grad_tol x that shift)
    np.testing.assert_allclose(a.t_stop, b.t_stop, rtol=1e-4)
    before = TE < a.t_stop.min()
    np.testing.assert_allclose(a.y[:, before], b.y[:, before], rtol=0, atol=1e-11)
    np.testing.assert_allclose(a.y, b.y, rtol=0, atol=1e-6)


def test_simd_bad_arguments(erf_model, starts):
    _, f = erf_model
    with pytest.raises(ValueError, match="allowed: auto853, rodas5p"):
        integrate(f, starts[:2], TE, method="dopri5", execution=SIMD)
    with pytest.raises(ValueError, match="StiffnessSwitch"):
        integrate(f, starts[:2], TE, method="auto853", stiffness=StiffnessSwitch(method="rodas"),
                  execution=SIMD)
    with pytest.raises(ValueError, match="exact=False"):
        integrate(f, starts[:2], TE, method="auto853", execution=SIMD, saves=Saves(exact=False))
    with pytest.raises(ValueError, match="compiled model"):
        integrate(f.flow_into, starts[:2], TE, method="rodas5p", jacobian=f.jacobian_into, execution=SIMD)
    with pytest.raises(ValueError, match="events"):
        integrate(f, starts[:2], TE, method="rodas5p", execution=SIMD, events=[Event([0.01])])
    with pytest.raises(ValueError, match="simd='yes'"):
        Execution(simd="yes")
    with pytest.raises(TypeError, match=r"execution=Execution\(simd"):
        integrate(f, starts[:2], TE, method="rodas5p", simd=True)


def test_simd_general_p_copy():
    """A model with P != 6 (K = 2, N = 3: P = 8) runs the general copy of the SIMD steps (the P = 6 copy
    has its loop bounds fixed at compile time) and is still the scalar method."""
    from ghostsing import ModelSpec
    from ghostsing.analytic import derive

    spec = ModelSpec(K=2, M=2, N=3, activation="erf", alpha=0.5)
    f = derive(spec).compile()
    assert spec.n_params == 8
    y0 = np.random.default_rng(8).normal(scale=0.8, size=(20, spec.n_params))
    te = TE[:5]
    for kw in SCALAR_KW.values():
        a = integrate(f, y0, te, execution=SIMD, **kw)
        b = integrate(f, y0, te, **kw)
        assert np.all(a.status == Status.OK)
        np.testing.assert_array_equal(a.n_accepted, b.n_accepted)
        np.testing.assert_allclose(a.y, b.y, rtol=0, atol=1e-11)
