"""The method table, the option groups and the shared status enumeration.

Independent source for the orders: scipy's DOP853 at rtol 1e-13 on a nonlinear 2-D flow without
symmetries, against which the global error at t = 1 of each method, with its step pinned to h, must
fall as h^order."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from numba import njit
from scipy.integrate import solve_ivp

from ghostsing.simulate import (
    METHODS,
    Execution,
    Saves,
    Status,
    StepControl,
    StiffnessSwitch,
    Stop,
    Tolerances,
    integrate,
)
from ghostsing.simulate import _kernels as kn
from ghostsing.simulate import _tableaus as tb
from ghostsing.simulate.methods import ALIASES, markdown_table, method_info

DOCS = Path(__file__).resolve().parents[2] / "docs" / "integrators.md"


@njit(cache=True)
def nl_flow(y):
    return np.array([-y[0] + y[1] * y[1], -2.0 * y[1] + math.sin(y[0]) + 0.3 * y[0] * y[1]])


@njit(cache=True)
def nl_jac(y):
    return np.array([[-1.0, 2.0 * y[1]], [math.cos(y[0]) + 0.3 * y[1], -2.0 + 0.3 * y[0]]])


Y0 = np.array([0.8, -0.6])
STEPS = {"euler": (40, 80, 160), "rk4": (10, 20, 40), "dopri5": (20, 40, 80), "dop853": (3, 4, 6),
         "rodas": (10, 20, 40), "rodas5p": (10, 20, 40)}


@pytest.mark.parametrize("name", [m.name for m in METHODS.values() if m.stiff != "switch"])
def test_convergence_order_matches_the_table(name):
    """Global error at t = 1 with k steps of h = 1/k (fixed steps, or adaptive steps pinned by
    first_step = max_step = h under loose tolerances): the slope of log(error) against log(h) on the
    finest pair is the table's order within 0.35 (measured: 1.01, 4.06, 5.18, 8.22, 4.00, 4.98), on the
    coarser pair within 0.5."""
    info = METHODS[name]
    ref = solve_ivp(lambda t, y: nl_flow(y), (0.0, 1.0), Y0, method="DOP853", rtol=1e-13, atol=1e-16).y[:, -1]
    errs = []
    for k in STEPS[name]:
        h = 1.0 / k
        kw: dict = {"jacobian": nl_jac} if info.jacobian == "required" else {}
        if info.adaptive:
            kw.update(rtol=1.0, atol=1.0, control=StepControl(first_step=h, max_step=h))
        else:
            kw.update(control=StepControl(fixed_step=h))
        sol = integrate(nl_flow, Y0, [0.0, 1.0], method=name, **kw)
        assert sol.status[0] == Status.OK and sol.n_accepted[0] == k and sol.n_rejected[0] == 0
        errs.append(np.max(np.abs(sol.y[0, -1] - ref)))
    slopes = np.diff(np.log(errs)) / np.diff(np.log(1.0 / np.array(STEPS[name])))
    assert abs(slopes[-1] - info.order) < 0.35 and abs(slopes[0] - info.order) < 0.5, (name, errs, slopes)


def test_table_matches_the_tableaus_and_kernels():
    """Stage counts of the tableaus and the codes and error orders that the kernels use come from the
    table."""
    assert tb.DP5_A.shape[0] == 7 and tb.D8_B.shape[0] == 12
    assert tb.RO_C.shape[0] == 6 and tb.R5_C.shape[0] == 8
    codes = {m.name: m.code for m in METHODS.values()}
    assert (kn.M_EULER, kn.M_RK4, kn.M_DOPRI5, kn.M_DOP853, kn.M_RODAS, kn.M_AUTO, kn.M_AUTO8,
            kn.M_RODAS5) == tuple(codes[k] for k in ("euler", "rk4", "dopri5", "dop853", "rodas", "auto",
                                                     "auto853", "rodas5p"))
    for m in METHODS.values():
        assert kn._err_order(m.code) == m.error_order
        if m.stiff == "switch":  # a switching method has the orders of its explicit method
            ex = METHODS[m.explicit]
            assert (m.order, m.error_order, m.pi_beta) == (ex.order, ex.error_order, ex.pi_beta)
    assert method_info("RK45") is METHODS["dopri5"] and method_info("rosenbrock") is METHODS["rodas"]
    assert set(ALIASES.values()) <= set(METHODS)
    with pytest.raises(ValueError, match="method='rk23' is not allowed; allowed: euler, rk4"):
        method_info("rk23")


def test_docs_show_the_method_table():
    """docs/integrators.md holds the table exactly as :func:`markdown_table` prints it, and the summary in
    the docstring of simulate.methods states the same orders and Jacobian needs."""
    assert markdown_table() in DOCS.read_text()
    import ghostsing.simulate.methods as mod

    rows = {ln.split()[0]: ln.split()[1:4] for ln in mod.__doc__.splitlines() if ln.startswith("    ")}
    for m in METHODS.values():
        assert rows[m.name] == [str(m.order), str(m.error_order or "-"), m.jacobian], m.name


def test_default_tolerances_come_from_the_table():
    sol = integrate(nl_flow, Y0, [0.0, 1.0], method="dopri5")
    ref = integrate(nl_flow, Y0, [0.0, 1.0], method="dopri5", rtol=METHODS["dopri5"].rtol,
                    atol=METHODS["dopri5"].atol)
    assert np.array_equal(sol.y, ref.y) and sol.n_accepted[0] == ref.n_accepted[0]


@pytest.mark.parametrize(("make", "match"), [
    (lambda: Tolerances(rtol=0.0), r"rtol=0.0 is not allowed; allowed: a finite float > 0"),
    (lambda: Tolerances(rtol="x"), r"rtol='x' is not a number"),
    (lambda: Tolerances(atol=-1.0), r"atol=-1.0 is not allowed; allowed: a finite float >= 0"),
    (lambda: Tolerances(atol=[[1.0]]), r"atol=\[\[1.0\]\] is not allowed"),
    (lambda: StepControl(fixed_step=-0.1), r"fixed_step=-0.1 is not allowed; allowed: a finite float > 0"),
    (lambda: StepControl(first_step=0), r"first_step=0 is not allowed"),
    (lambda: StepControl(max_step=-1.0), r"max_step=-1.0 is not allowed; allowed: a float > 0 or inf"),
    (lambda: StepControl(pi_beta=0.5), r"pi_beta=0.5 is not allowed; allowed: a finite float in \[0, 0.2\]"),
    (lambda: Stop(grad_tol=0.0), r"grad_tol=0.0 is not allowed; allowed: a finite float > 0"),
    (lambda: Stop(grad_tol=1e-6, hold_time=-1.0), r"hold_time=-1.0 is not allowed; allowed: a finite float "
                                                  r">= 0"),
    (lambda: Stop(max_steps=0), r"max_steps=0 is out of range; allowed: an? integer >= 1"),
    (lambda: Stop(max_steps=1.5), r"max_steps=1.5 is not an integer"),
    (lambda: Stop(max_abs=float("nan")), r"max_abs=nan is not allowed"),
    (lambda: StiffnessSwitch(up=-1.0), r"up=-1.0 is not allowed; allowed: a finite float >= 0"),
    (lambda: StiffnessSwitch(down=float("inf")), r"down=inf is not allowed"),
    (lambda: StiffnessSwitch(method="radau"), r"stiff method='radau' is not allowed; allowed: 'rodas', "
                                              r"'rodas5p'"),
    (lambda: Saves(exact="yes"), r"exact='yes' is not allowed; allowed: True or False"),
    (lambda: Saves(estimate_error=1), r"estimate_error=1 is not allowed; allowed: True or False"),
    (lambda: Saves(error_target=0.0), r"error_target=0.0 is not allowed"),
    (lambda: Saves(error_target=float("nan")), r"error_target=nan is not allowed"),
    (lambda: Execution(threads=0), r"threads=0 is out of range; allowed: an? integer in \[1, "),
    (lambda: Execution(parallel="no"), r"parallel='no' is not allowed; allowed: True or False"),
    (lambda: Execution(simd=1), r"simd=1 is not allowed; allowed: True or False"),
])
def test_option_groups_name_the_bad_value(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_option_groups_are_frozen_and_normalised():
    s = Stop(grad_tol=1, hold_time=2, max_abs=math.inf)
    assert (s.grad_tol, s.hold_time, s.max_abs) == (1.0, 2.0, math.inf)
    assert StiffnessSwitch(method="Rosenbrock").method == "rodas"
    assert Tolerances(1e-6, [1e-8, 1e-9]).scaled(0.5) == Tolerances(5e-7, (5e-9, 5e-10))
    with pytest.raises(AttributeError):
        s.max_steps = 3  # type: ignore[misc]


def test_integrate_takes_groups_not_loose_keywords():
    """Keywords of the earlier flat signature name the group they moved to; a group of the wrong type is
    refused."""
    for kw, where in [({"max_step": 1.0}, r"control=StepControl\(max_step"),
                      ({"converge": (1e-6, 1.0)}, r"stop=Stop\(grad_tol"),
                      ({"stiff_method": "rodas"}, r"stiffness=StiffnessSwitch\(method"),
                      ({"threads": 1}, r"execution=Execution\(threads")]:
        with pytest.raises(TypeError, match=where):
            integrate(nl_flow, Y0, [0.0, 1.0], **kw)
    with pytest.raises(TypeError, match=r"control=Stop\(.*allowed: a StepControl"):
        integrate(nl_flow, Y0, [0.0, 1.0], control=Stop())


def test_one_status_enumeration():
    """The kernels' status codes are the members of Status; a blow-up is NON_FINITE, the step budget
    MAX_STEPS, a convergence stop CONVERGED, in the integrators (and in SGD: tests/test_sgd.py)."""
    assert (kn.S_OK, kn.S_CONV, kn.S_MAXSTEPS, kn.S_SMALL, kn.S_NONFINITE, kn.S_EVENT) == tuple(Status)
    sol = integrate(nl_flow, np.array([[0.8, 0.3], [np.nan, 0.0]]), [0.0, 1.0],
                    stop=Stop(max_abs=10.0))
    assert sol.status.tolist() == [Status.OK, Status.NON_FINITE]
    assert integrate(nl_flow, Y0, [0.0, 10.0], stop=Stop(max_steps=2)).status[0] == Status.MAX_STEPS
    conv = integrate(nl_flow, Y0, [0.0, 1e3], stop=Stop(grad_tol=1e-2, hold_time=1.0))
    assert conv.status[0] == Status.CONVERGED
    assert conv.status_counts() == {s.name: int(s == Status.CONVERGED) for s in Status}
