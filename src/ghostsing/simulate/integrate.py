r"""Ensemble integration of gradient flows :math:`\dot\theta = F(\theta)` (usually :math:`F = -\nabla L`).

One idea: the one public entry point of the integrators, :func:`integrate`: its validated inputs, the
records it returns (:class:`Solution`, :class:`Event`) and the dispatch to the scalar or SIMD Numba drivers.

:func:`integrate` takes a Numba-compiled right-hand side (for instance ``f.flow`` or ``f.flow_into`` of
``ghostsing.analytic.derive(spec).compile()``), one or ``n`` initial states and an increasing grid of
save times, and integrates all trajectories in parallel (``numba.prange``; one trajectory per
iteration)::

    sol = integrate(f, theta0, t_eval, method="auto853", rtol=1e-8, atol=1e-10,
                    stop=Stop(grad_tol=1e-9, hold_time=50.0), execution=Execution(simd=True))

The methods, their orders, Jacobian needs and default tolerances are the records of the method table
:data:`ghostsing.simulate.methods.METHODS`; the solver's options come in the validated option groups of
:mod:`ghostsing.simulate.options` (:class:`StepControl`, :class:`Stop`, :class:`StiffnessSwitch`,
:class:`Saves`, :class:`Execution`).  Methods:

``"dopri5"``   Dormand–Prince 5(4), PI step-size control (Hairer's form, beta = 0.04), 4th-order
               dense output (Shampine) for saves and events.
``"dop853"``   Hairer's DOP853: 8th order, 5th/3rd-order combined error estimate, 7th-order dense
               output (3 extra right-hand sides in a step that holds a save time or an event).
``"rodas"``    (alias ``"rosenbrock"``) RODAS 3(4) (Hairer & Wanner): L-stable, stiffly accurate, with
               the exact Jacobian; cubic Hermite dense output.
``"rodas5p"``  Rodas5P (Steinebach 2023): 8 stages, order 5 with an embedded order-4 error estimate,
               L-stable, stiffly accurate, with the exact Jacobian; its own 4th-order dense output. Larger
               steps than RODAS at tight tolerances (steps grow as rtol^(-1/5) instead of rtol^(-1/4)).
``"auto"``     DOPRI5, switching to a Rosenbrock method where the step is stability-limited: Hairer's test
               :math:`h\,\|k_7 - k_6\| / \|y_7 - y_6\| > 3.25` firing 15 times, or, checked every
               10 accepted steps with the exact Jacobian, :math:`h \|J\|_\infty > 2.5`; back to DOPRI5
               when :math:`h \|J\|_\infty < 1.5` for 10 RODAS steps in a row (:class:`StiffnessSwitch`
               ``up``, ``down``). Uses ``jacobian``; without it "auto" is "dopri5". The stiff method is
               Rodas5P (``StiffnessSwitch(method="rodas5p")``, default) or RODAS (``method="rodas"``).
``"auto853"``  the same with DOP853 as the explicit method (thresholds times 1.8, the ratio of the
               two methods' real stability intervals); without ``jacobian`` it is "dop853".
``"rk4"``, ``"euler"``  fixed steps ``h`` (``StepControl(fixed_step=h)``), landing exactly on every save
               time; ``"euler"`` is discrete gradient descent
               :math:`\theta_{k+1} = \theta_k - h \nabla L(\theta_k)`.
``dopri5`` / ``dop853`` also run with a fixed step when ``fixed_step`` is given (no error control).

``Execution(simd=True)`` ("rodas5p", "auto853"; ``flow`` = a compiled model): 16 trajectories per loop
iteration in lock-step with the model's generated SIMD right-hand side and Jacobian
(``simulate._lanes``); the scalar driver's steps up to rounding, ~2.4x faster per core on the
benchmarks/ problem.

Error control: a step is accepted when the RMS over components of
:math:`e_i / (\mathrm{atol}_i + \mathrm{rtol}\max(|y_i|, |\hat y_i|))` is at most 1.

Convergence stop (``Stop(grad_tol=..., hold_time=...)``): a trajectory stops with status ``CONVERGED`` once
:math:`\|F(\theta)\|_2 < \mathrm{grad\_tol}` has held without interruption over a time ``hold_time``;
later save points repeat the last state.

Global error (``Saves(estimate_error=True)``, ``Saves(error_target=...)``): local error control does not
bound the global error. On the two-unit erf model a trajectory that passes near a saddle of the plateau
amplifies the local errors committed before and during the passage along the saddle's unstable direction
(perturbations grow ~1e3-fold), and the escape time shifts: at rtol 1e-8 the worst of 2,000 starts has a
global error of 1.7e-6 for every method tried. ``sol.error_estimate`` is :math:`2\max_{k,i}|y_i(t_k) -
\tilde y_i(t_k)|` with :math:`\tilde y` a companion run of the same method at ``rtol/10``, ``atol/10``: when
the global error scales at least linearly with the tolerance, the difference is within 10 % of the error,
and the factor 2 covers trajectories where it does not (a DOP853 step within tolerance whose error does not
fall at rtol/10). Calibrated on 2,000 starts against a DOP853 rtol-1e-13 reference (benchmarks/
study_error_estimate.py): it bounds the true error on 99.4-100 % of trajectories (auto853, rodas5p, dopri5),
its median over-estimate is 1.8-1.95x, its worst miss a factor 2.3. ``error_target`` re-integrates each
trajectory whose estimate exceeds target/3 a decade tighter until it does not.

Events: :class:`Event` s locate the first crossing of each of their levels by the loss or by a scalar
function of the state, on the dense output (Illinois root finder, to ~1e-15 of the step).

This module is one idea, the entry point: it resolves the arguments (functions, shapes, events, option
groups) into one options record and hands it to the kernels (``_kernels``, ``_lanes``); the method table
is :mod:`ghostsing.simulate.methods`, the option groups :mod:`ghostsing.simulate.options`, the
global-error layer :mod:`ghostsing.simulate.global_error`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np

from ghostsing.analytic import codegen
from ghostsing.simulate import _kernels as kn
from ghostsing.simulate import _lanes
from ghostsing.simulate.global_error import pair_error_estimate, with_global_error
from ghostsing.simulate.methods import METHODS, SIMD_METHODS, MethodInfo, method_info
from ghostsing.simulate.options import Execution, Saves, StepControl, StiffnessSwitch, Stop, Tolerances, group
from ghostsing.simulate.status import Status

__all__ = ["integrate", "Event", "Solution", "linear_grid", "log_grid", "pair_error_estimate", "METHODS",
           "Tolerances", "StepControl", "Stop", "StiffnessSwitch", "Saves", "Execution"]

# where each keyword of the earlier flat signature went (a clear TypeError instead of "unexpected keyword")
_MOVED = {
    "step": "control=StepControl(fixed_step=...)", "first_step": "control=StepControl(first_step=...)",
    "max_step": "control=StepControl(max_step=...)", "pi_beta": "control=StepControl(pi_beta=...)",
    "max_steps": "stop=Stop(max_steps=...)", "max_abs": "stop=Stop(max_abs=...)",
    "converge": "stop=Stop(grad_tol=..., hold_time=...)",
    "stiff_switch": "stiffness=StiffnessSwitch(up=..., down=...)",
    "stiff_method": "stiffness=StiffnessSwitch(method=...)", "exact_saves": "saves=Saves(exact=...)",
    "estimate_error": "saves=Saves(estimate_error=...)", "error_target": "saves=Saves(error_target=...)",
    "threads": "execution=Execution(threads=...)", "parallel": "execution=Execution(parallel=...)",
    "simd": "execution=Execution(simd=...)",
}


@dataclass(frozen=True)
class Event:
    """Crossings of ``levels`` by a scalar ``g(theta)`` along each trajectory.

    ``fn=None`` means the loss (then ``integrate`` needs ``loss=``); otherwise ``fn`` is an ``@njit``
    function ``fn(theta) -> float``, e.g. the distance to a singular manifold. ``direction``: -1 only
    downward crossings (g falls through the level), +1 only upward, 0 both. The *first* crossing time of
    each level is returned (NaN if none). ``terminal=True`` stops the trajectory (status ``EVENT``) at
    the first crossing of any of its levels. A sign change of g - level between the two ends of a step is
    what is detected: two crossings inside one step are missed.
    """

    levels: Sequence[float]
    fn: Callable[..., float] | None = None
    direction: int = 0
    terminal: bool = False

    def __post_init__(self) -> None:
        lv = np.atleast_1d(np.asarray(self.levels, dtype=np.float64))
        if lv.ndim != 1 or lv.size == 0 or not np.all(np.isfinite(lv)):
            raise ValueError(f"Event levels={self.levels!r}; "
                             "allowed: a non-empty 1-D sequence of finite floats")
        if self.direction not in (-1, 0, 1):
            raise ValueError(f"Event direction={self.direction!r}; allowed: -1, 0, 1")
        object.__setattr__(self, "levels", tuple(float(x) for x in lv))


@dataclass(frozen=True, eq=False)
class Solution:
    """Result of :func:`integrate` for ``n`` trajectories saved at ``T`` times, ``P`` parameters.

    t (T,) save times; y (n, T, P) states; loss (n, T) (NaN without ``loss=``); grad_norm (n, T)
    :math:`\\|F(\\theta)\\|_2` at the saves; status (n,) :class:`Status` codes (0 = ok); t_stop (n,) time
    at which each trajectory stopped; y_stop (n, P) state there; n_accepted, n_rejected, nfev, njev,
    nlu (n,) work counters; t_stiff (n,) first switch to the stiff method ("auto"; NaN if none);
    events: one (n, levels) array of first crossing times per :class:`Event`, in the order given.
    error_estimate (n,) (``Saves(estimate_error=True)`` or ``error_target``; else None): estimate of each
    trajectory's largest global error over the saves, :math:`\\max_{k,i} |y_i(t_k) - \\theta_i(t_k)|`
    (module doc; NaN for a trajectory that failed, inf where only its companion run failed);
    rtol_used (n,): the rtol each trajectory's returned states were computed with (``rtol``, or tighter
    where ``error_target`` asked for it).
    """

    t: np.ndarray
    y: np.ndarray
    loss: np.ndarray
    grad_norm: np.ndarray
    status: np.ndarray
    t_stop: np.ndarray
    y_stop: np.ndarray
    n_accepted: np.ndarray
    n_rejected: np.ndarray
    nfev: np.ndarray
    njev: np.ndarray
    nlu: np.ndarray
    t_stiff: np.ndarray
    events: tuple[np.ndarray, ...] = field(default_factory=tuple)
    method: str = "dopri5"
    error_estimate: np.ndarray | None = None
    rtol_used: np.ndarray | None = None

    @property
    def ok(self) -> np.ndarray:
        """Boolean (n,): trajectories that reached the end or converged."""
        return (self.status == Status.OK) | (self.status == Status.CONVERGED)

    def status_counts(self) -> dict[str, int]:
        """How many trajectories ended with each status."""
        return {s.name: int(np.sum(self.status == s)) for s in Status}


def linear_grid(t_end: float, n: int, t0: float = 0.0) -> np.ndarray:
    """n equally spaced save times from t0 to t_end (both included)."""
    if not (np.isfinite(t_end) and t_end > t0) or n < 2:
        raise ValueError(f"linear_grid(t_end={t_end}, n={n}, t0={t0}); allowed: t_end > t0, n >= 2")
    return np.linspace(t0, t_end, int(n))


def log_grid(t_end: float, n: int, t_first: float = 1e-2, include_zero: bool = True) -> np.ndarray:
    """Save times log-spaced from t_first to t_end (n of them), preceded by 0 if include_zero."""
    if not (0 < t_first < t_end and np.isfinite(t_end)) or n < 2:
        raise ValueError(f"log_grid(t_end={t_end}, n={n}, t_first={t_first}); "
                         "allowed: 0 < t_first < t_end, n >= 2")
    g = np.geomspace(t_first, t_end, int(n))
    return np.concatenate([[0.0], g]) if include_zero else g


# ------------------------------------------------------------------------ argument handling
def _is_dispatcher(f: Any) -> bool:
    return isinstance(f, numba.core.registry.CPUDispatcher)


def _nargs(f: Any, what: str) -> int:
    if not _is_dispatcher(f):
        raise TypeError(f"{what}={f!r} is a {type(f).__name__}; allowed: a Numba @njit function "
                        "(for instance f.flow of ghostsing.analytic.derive(spec).compile())")
    return f.py_func.__code__.co_argcount


def _resolve_callables(flow: Any, loss: Any, jacobian: Any) -> tuple[Any, ...]:
    # a compiled-model object: take its fast in-place functions
    n_params = None
    if not _is_dispatcher(flow) and hasattr(flow, "flow"):
        model = flow
        n_params = getattr(model, "n_params", None)
        flow = getattr(model, "flow_into", None) or model.flow
        if loss is None:
            loss = getattr(model, "loss", None)
        if jacobian is None:
            jacobian = getattr(model, "jacobian_into", None) or getattr(model, "jacobian", None)
    nf = _nargs(flow, "flow")
    if nf == 2:
        f_into, f_ret, fmode = flow, kn.dummy_ret, 0
    elif nf == 1:
        f_into, f_ret, fmode = kn.dummy_into, flow, 1
    else:
        raise TypeError(f"flow takes {nf} arguments; allowed: flow(theta) -> array or flow(theta, out)")
    if jacobian is None:
        j_into, j_ret, jmode = kn.dummy_jinto, kn.dummy_jret, -1
    else:
        nj = _nargs(jacobian, "jacobian")
        if nj == 2:
            j_into, j_ret, jmode = jacobian, kn.dummy_jret, 0
        elif nj == 1:
            j_into, j_ret, jmode = kn.dummy_jinto, jacobian, 1
        else:
            raise TypeError(f"jacobian takes {nj} arguments; allowed: jac(theta) or jac(theta, out)")
    if loss is not None and _nargs(loss, "loss") != 1:
        raise TypeError("loss must take one argument: loss(theta) -> float")
    return f_into, f_ret, fmode, loss, j_into, j_ret, jmode, n_params


@contextlib.contextmanager
def _threads(n: int | None):
    if n is None:
        yield
        return
    old = numba.get_num_threads()
    numba.set_num_threads(int(n))
    try:
        yield
    finally:
        numba.set_num_threads(old)


def _simd_functions(model: Any, info: MethodInfo, fmode: int, n_events: int, saves: Saves,
                    stiffness: StiffnessSwitch) -> tuple:
    """The (flow_lanes_into, jacobian_lanes_into, jacobian_into) that simd=True needs, or a clear error."""
    if not info.simd:
        raise ValueError(f"Execution(simd=True) with method={info.name!r}; "
                         f"allowed: {', '.join(SIMD_METHODS)}")
    fl = getattr(model, "flow_lanes_into", None)
    jl = getattr(model, "jacobian_lanes_into", None)
    ji = getattr(model, "jacobian_into", None)
    if fl is None or jl is None or ji is None or fmode != 0:
        raise ValueError("Execution(simd=True) needs a compiled model with flow_lanes_into and "
                         "jacobian_lanes_into; allowed: flow=ghostsing.analytic.derive(spec).compile()")
    if n_events > 0:
        raise ValueError("Execution(simd=True) with events; allowed: events=() (use simd=False for events)")
    if info.name == "auto853" and stiffness.method != "rodas5p":
        raise ValueError(f"Execution(simd=True), method='auto853' with StiffnessSwitch(method="
                         f"{stiffness.method!r}); allowed: method='rodas5p'")
    if info.name == "auto853" and saves.exact is False:
        raise ValueError("Execution(simd=True), method='auto853' with Saves(exact=False); allowed: "
                         "exact=None or True (the SIMD DOP853 phase lands on the save times)")
    return fl, jl, ji


def _lane_blocks(n: int, threads: int) -> np.ndarray:
    """Bounds of the blocks of trajectories that the SIMD driver hands to its threads: about four
    blocks per thread (load balance) of at least 16 lanes' worth of work each (lane refill)."""
    n_blocks = int(max(1, min(4 * threads, -(-n // (16 * _lanes.L)))))
    return np.linspace(0, n, n_blocks + 1).round().astype(np.int64)


def _tolerances(info: MethodInfo, rtol: Any, atol: Any) -> Tolerances:
    """The validated tolerances: the given ones, else the method table's defaults (1e-8, 1e-10 for every
    adaptive method; fixed-step methods ignore them)."""
    rt = info.rtol if rtol is None else rtol
    at = info.atol if atol is None else atol
    return Tolerances(1e-8 if rt is None else rt, 1e-10 if at is None else at)


def integrate(
    flow: Any,
    theta0: Any,
    t_eval: Any,
    *,
    method: str = "dopri5",
    rtol: float | None = None,
    atol: float | Sequence[float] | None = None,
    loss: Any = None,
    jacobian: Any = None,
    t0: float | None = None,
    events: Sequence[Event] | Event = (),
    control: StepControl | None = None,
    stop: Stop | None = None,
    stiffness: StiffnessSwitch | None = None,
    saves: Saves | None = None,
    execution: Execution | None = None,
    **moved: Any,
) -> Solution:
    r"""Integrate :math:`\dot\theta = F(\theta)` from ``theta0`` and save at ``t_eval``.

    What nearly every call sets is a keyword of its own: the method, the two tolerances (a study varies
    them more than anything else, and the global-error layer scales them), the functions (loss,
    Jacobian, events: what the problem is, not how to solve it) and the start time.  Everything that
    tunes the solver comes in a validated, frozen option group (:mod:`ghostsing.simulate.options`), so
    the common call stays short (``integrate(f, theta0, t_eval, method="auto853")``) and a group can be
    built once and reused across calls.  A keyword of the earlier flat signature (``max_step=``,
    ``converge=``, ``simd=`` ...) raises a TypeError naming the group it moved to.

    Parameters
    ----------
    flow : ``@njit`` ``F(theta) -> (P,)`` or ``F(theta, out)`` (``out[:] = F(theta)``); or a compiled
        model object with ``flow_into``/``flow``, ``loss``, ``jacobian_into``/``jacobian`` attributes.
    theta0 : (P,) or (n, P) initial states (float64; non-finite rows come back with status NON_FINITE).
    t_eval : (T,) strictly increasing save times, all >= t0.
    method : a name of the method table :data:`ghostsing.simulate.methods.METHODS` ("dopri5" default,
        "dop853", "rodas" (alias "rosenbrock"), "rodas5p", "auto", "auto853", "rk4", "euler"; module doc).
    rtol, atol : relative (> 0) and absolute (>= 0, scalar or (P,)) tolerances of the local error
        (None: the method's defaults in the table, 1e-8 and 1e-10).
    loss : ``@njit`` ``L(theta) -> float``; saved losses (else NaN) and loss events.
    jacobian : ``@njit`` ``J(theta) -> (P, P)`` or ``J(theta, out)``, :math:`J = \partial F/\partial\theta`;
        needed by the methods whose table entry says ``jacobian="required"`` ("rodas", "rodas5p") and
        used by the switching ones ("auto", "auto853"; without it they run their explicit method alone).
    t0 : start time (default ``t_eval[0]``).
    events : an :class:`Event` or a sequence of them (at most one with ``fn=None`` (the loss) and one
        with a function).
    control : :class:`StepControl` (fixed step, first and largest step, PI beta).
    stop : :class:`Stop` (convergence stop ``grad_tol`` / ``hold_time``, ``max_steps``, ``max_abs``).
    stiffness : :class:`StiffnessSwitch` ("auto"/"auto853": thresholds ``up``/``down`` and the stiff
        ``method``, "rodas5p" by default).
    saves : :class:`Saves` (``exact`` saves, ``estimate_error``, ``error_target``; module doc, "Global
        error").  With an estimate, ``sol.error_estimate`` is each trajectory's largest global error over
        the saves from a companion run at ``rtol / 10``, ``atol / 10`` (about 1.7x the cost of the first
        run on the benchmarks/ problem); with a target, every trajectory whose estimate exceeds
        ``error_target / 3`` is re-integrated a decade tighter until it does not (at most 6 decades, no
        companion below rtol 1e-14; a RuntimeWarning says how many missed it) and ``sol.rtol_used`` says
        which rtol each trajectory ended at.
    execution : :class:`Execution` (``threads``, ``parallel``, ``simd``).  ``simd=True`` ("rodas5p",
        "auto853", ``flow`` a compiled model, no events): 16 trajectories per loop iteration in
        lock-step with the model's generated SIMD functions; same methods, controller, stiffness switch
        and status rules (results agree to rounding), except that "auto853" never switches back from
        Rodas5P and lands on the save times; about 2x the scalar speed per core.
    """
    if moved:
        k = next(iter(moved))
        where = _MOVED.get(k)
        if where is None:
            raise TypeError(f"integrate() got an unexpected keyword argument {k!r}")
        raise TypeError(f"integrate({k}=...) is not a keyword any more; allowed: {where}")
    info = method_info(method)
    tol = _tolerances(info, rtol, atol)
    control = group("control", control, StepControl)
    stop = group("stop", stop, Stop)
    stiffness = group("stiffness", stiffness, StiffnessSwitch)
    saves = group("saves", saves, Saves)
    execution = group("execution", execution, Execution)
    if saves.global_error and (control.fixed_step is not None or not info.adaptive):
        raise ValueError(f"Saves(estimate_error / error_target) with a fixed step (method={info.name!r}, "
                         f"fixed_step={control.fixed_step!r}); "
                         "allowed: an adaptive method without fixed_step")
    args = (flow, theta0, t_eval)
    kw = {"info": info, "tol": tol, "loss": loss, "jacobian": jacobian, "t0": t0, "events": events,
          "control": control, "stop": stop, "stiffness": stiffness, "saves": saves, "execution": execution}
    sol = _integrate_once(*args, **kw)
    if not saves.global_error:
        return sol
    return with_global_error(_integrate_once, args, kw, sol, saves.error_target)


def _integrate_once(flow: Any, theta0: Any, t_eval: Any, *, info: MethodInfo, tol: Tolerances, loss: Any,
                    jacobian: Any, t0: float | None, events: Sequence[Event] | Event, control: StepControl,
                    stop: Stop, stiffness: StiffnessSwitch, saves: Saves, execution: Execution) -> Solution:
    """One integration at the given tolerances (:func:`integrate` without the global-error layer); the
    option groups arrive validated, what depends on the problem (shapes, functions) is checked here."""
    model = flow
    f_into, f_ret, fmode, loss, j_into, j_ret, jmode, n_params = _resolve_callables(flow, loss, jacobian)
    meth = info.code
    if info.jacobian == "optional" and jmode < 0:
        meth = METHODS[info.explicit].code
    if info.jacobian == "required" and jmode < 0:
        raise ValueError(f"method={info.name!r} needs jacobian=...; allowed: pass the generated f.jacobian")

    y0 = np.asarray(theta0, dtype=np.float64)
    if y0.ndim not in (1, 2) or y0.shape[-1] == 0 or (y0.ndim == 2 and y0.shape[0] == 0):
        raise ValueError(f"theta0 has shape {y0.shape}; allowed: (P,) or (n, P) with n, P >= 1")
    Y0 = np.ascontiguousarray(np.atleast_2d(y0))  # theta0 of shape (P,) gives n = 1: sol.y is (n, T, P)
    n, P = Y0.shape
    if n_params is not None and P != int(n_params):
        raise ValueError(f"theta0 has {P} parameters per state; allowed: the model's n_params = {n_params}")
    if fmode == 1:  # a returning flow: check the length it returns (Numba does not bounds-check)
        probe = np.ascontiguousarray(np.nan_to_num(Y0[0]))
        got = np.shape(f_ret(probe))
        if got != (P,):
            raise ValueError(f"flow(theta) returned shape {got} for theta of shape ({P},); "
                             f"allowed: a flow whose output has the shape of theta")

    te = np.ascontiguousarray(np.asarray(t_eval, dtype=np.float64).ravel())
    if te.size == 0 or not np.all(np.isfinite(te)):
        raise ValueError(f"t_eval={np.asarray(t_eval)!r}; allowed: a non-empty 1-D array of finite times")
    if te.size > 1 and not np.all(np.diff(te) > 0):
        bad = int(np.argmin(np.diff(te) > 0))
        raise ValueError(f"t_eval is not strictly increasing (t_eval[{bad}]={te[bad]}, "
                         f"t_eval[{bad + 1}]={te[bad + 1]}); allowed: strictly increasing times")
    start = float(te[0]) if t0 is None else float(t0)
    if not np.isfinite(start) or start > te[0]:
        raise ValueError(f"t0={t0!r} with t_eval[0]={te[0]}; allowed: a finite t0 <= t_eval[0]")
    at = tol.atol_array(P)

    fixed = control.fixed_step is not None
    if not info.adaptive and not fixed:
        raise ValueError(f"method={info.name!r} is a fixed-step method; allowed: "
                         "control=StepControl(fixed_step=h) with h > 0")
    if fixed and not info.fixed_step_ok:
        allowed = ", ".join(m.name for m in METHODS.values() if m.fixed_step_ok)
        raise ValueError(f"StepControl(fixed_step=...) with method={info.name!r}; allowed: {allowed}")
    beta = METHODS_BY_CODE[meth].pi_beta if control.pi_beta is None else control.pi_beta
    exact = info.exact_saves if saves.exact is None else saves.exact

    # events
    ev_loss: Event | None = None
    ev_fn: Event | None = None
    order: list[str] = []
    if isinstance(events, Event):
        events = (events,)
    for ev in events:
        if not isinstance(ev, Event):
            raise TypeError(f"events contains {ev!r}; allowed: ghostsing.simulate.Event objects")
        if ev.fn is None:
            if ev_loss is not None:
                raise ValueError("two loss events; allowed: at most one Event(fn=None) "
                                 "(give it several levels)")
            if loss is None:
                raise ValueError("a loss event (Event with fn=None) needs loss=...")
            ev_loss = ev
            order.append("loss")
        else:
            if ev_fn is not None:
                raise ValueError("two state-function events; allowed: at most one Event with fn")
            if _nargs(ev.fn, "Event.fn") != 1:
                raise TypeError("Event.fn must take one argument: fn(theta) -> float")
            ev_fn = ev
            order.append("fn")
    lev_l = np.asarray(ev_loss.levels if ev_loss else (), dtype=np.float64)
    lev_f = np.asarray(ev_fn.levels if ev_fn else (), dtype=np.float64)

    opts = kn.options_record(
        method=meth, stiff_method=METHODS[stiffness.method].code, max_steps=stop.max_steps, fmode=fmode,
        jmode=max(jmode, 0), has_loss=int(loss is not None), has_event_fn=int(ev_fn is not None),
        dir_loss=ev_loss.direction if ev_loss else 0, terminal_loss=int(ev_loss.terminal) if ev_loss else 0,
        dir_fn=ev_fn.direction if ev_fn else 0, terminal_fn=int(ev_fn.terminal) if ev_fn else 0,
        fixed=int(fixed), exact_saves=int(exact), t0=start, rtol=tol.rtol,
        first_step=control.first_step or 0.0, fixed_step=control.fixed_step or 0.0,
        max_step=control.max_step,
        grad_tol=stop.grad_tol or 0.0, hold_time=stop.hold_time if stop.grad_tol else 0.0,
        max_abs=stop.max_abs, pi_beta=beta, switch_up=stiffness.up, switch_down=stiffness.down,
    )

    lanes_fns = None
    if execution.simd:
        lanes_fns = _simd_functions(model, info, fmode, len(order), saves, stiffness)

    T = te.size
    Y = np.empty((n, T, P))
    LO = np.empty((n, T))
    GN = np.empty((n, T))
    YF = np.empty((n, P))
    CNT = np.zeros((n, kn.N_STATS), dtype=np.int64)
    FOUT = np.empty((n, 2))
    EVL = np.empty((n, lev_l.size))
    EVF = np.empty((n, lev_f.size))
    use_par = (n > 1) if execution.parallel is None else execution.parallel
    ls = loss if loss is not None else kn.dummy_scal
    efn = ev_fn.fn if ev_fn is not None else kn.dummy_scal
    with _threads(execution.threads):
        if lanes_fns is not None:
            bounds = _lane_blocks(n, numba.get_num_threads() if use_par else 1)
            driver = _lanes.compiled_lanes_driver(use_par)
            driver(f_into, ls, *lanes_fns, codegen.LANES, Y0, te, at, opts, bounds, Y, LO, GN, YF, CNT, FOUT)
        else:
            driver = kn.compiled_driver(use_par)
            driver(f_into, f_ret, ls, j_into, j_ret, efn, Y0, te, at, lev_l, lev_f, opts,
                   Y, LO, GN, YF, CNT, FOUT, EVL, EVF)
    evs = tuple(EVL if k == "loss" else EVF for k in order)
    return Solution(
        t=te, y=Y, loss=LO, grad_norm=GN, status=CNT[:, kn.ST_STATUS].copy(), t_stop=FOUT[:, 0].copy(),
        y_stop=YF, n_accepted=CNT[:, kn.ST_ACC].copy(), n_rejected=CNT[:, kn.ST_REJ].copy(),
        nfev=CNT[:, kn.ST_NFEV].copy(), njev=CNT[:, kn.ST_NJEV].copy(), nlu=CNT[:, kn.ST_NLU].copy(),
        t_stiff=FOUT[:, 1].copy(), events=evs, method=info.name,
    )


METHODS_BY_CODE = {m.code: m for m in METHODS.values()}
