r"""Ensemble integration of gradient flows :math:`\dot\theta = F(\theta)` (usually :math:`F = -\nabla L`).

:func:`integrate` takes a Numba-compiled right-hand side (for instance ``f.flow`` or ``f.flow_into`` of
``ghostsing.analytic.derive(spec).compile()``), one or ``n`` initial states and an increasing grid of
save times, and integrates all trajectories in parallel (``numba.prange``; one trajectory per
iteration). Methods:

``"dopri5"``   Dormand–Prince 5(4), PI step-size control (Hairer's form, beta = 0.04), 4th-order
               dense output (Shampine) for saves and events.
``"dop853"``   Hairer's DOP853: 8th order, 5th/3rd-order combined error estimate, 7th-order dense
               output (3 extra right-hand sides in a step that holds a save time or an event).
``"rosenbrock"`` RODAS 3(4) (Hairer & Wanner): L-stable, stiffly accurate, with the exact Jacobian;
               cubic Hermite dense output.
``"rodas5p"``  Rodas5P (Steinebach 2023): 8 stages, order 5 with an embedded order-4 error estimate,
               L-stable, stiffly accurate, with the exact Jacobian; its own 4th-order dense output. Larger
               steps than RODAS at tight tolerances (steps grow as rtol^(-1/5) instead of rtol^(-1/4)).
``"auto"``     DOPRI5, switching to a Rosenbrock method where the step is stability-limited: Hairer's test
               :math:`h\,\|k_7 - k_6\| / \|y_7 - y_6\| > 3.25` firing 15 times, or, checked every
               10 accepted steps with the exact Jacobian, :math:`h \|J\|_\infty > 2.5`; back to DOPRI5
               when :math:`h \|J\|_\infty < 1.5` for 10 RODAS steps in a row (``stiff_switch``).
               Needs ``jacobian``; without it "auto" is "dopri5". The stiff method is Rodas5P
               (``stiff_method="rodas5p"``, default) or RODAS (``stiff_method="rodas"``).
``"auto853"``  the same with DOP853 as the explicit method (thresholds times 1.8, the ratio of the
               two methods' real stability intervals); without ``jacobian`` it is "dop853".
``"rk4"``, ``"euler"``  fixed steps ``h`` (``step=``), landing exactly on every save time; ``"euler"`` is
               discrete gradient descent :math:`\theta_{k+1} = \theta_k - h \nabla L(\theta_k)`.
``dopri5`` / ``dop853`` also run with a fixed step when ``step`` is given (no error control).

``simd=True`` ("rodas5p", "auto853"; ``flow`` = a compiled model): 16 trajectories per loop iteration
in lock-step with the model's generated SIMD right-hand side and Jacobian (``simulate._lanes``); the
the scalar driver's steps up to rounding, ~2.4x faster per core on the benchmarks/ problem.

Error control: a step is accepted when the RMS over components of
:math:`e_i / (\mathrm{atol}_i + \mathrm{rtol}\max(|y_i|, |\hat y_i|))` is at most 1.

Convergence stop (``converge=(grad_tol, hold_time)``): a trajectory stops with status ``CONVERGED`` once
:math:`\|F(\theta)\|_2 < \mathrm{grad\_tol}` has held without interruption over a time ``hold_time``;
later save points repeat the last state.

Global error (``estimate_error=True``, ``error_target=``): local error control does not bound the global
error. On the two-unit erf model a trajectory that passes near a saddle of the plateau amplifies the
local errors committed before and during the passage along the saddle's unstable direction (perturbations
grow ~1e3-fold), and the escape time shifts: at rtol 1e-8 the worst of 2,000 starts has a global error of
1.7e-6 for every method tried. ``sol.error_estimate`` is :math:`2\max_{k,i}|y_i(t_k) - \tilde y_i(t_k)|`
with :math:`\tilde y` a companion run of the same method at ``rtol/10``, ``atol/10``: when the global
error scales at least linearly with the tolerance, the difference is within 10 % of the error, and the
factor 2 covers trajectories where it does not (a DOP853 step within tolerance whose error does not fall
at rtol/10). Calibrated on 2,000 starts against a DOP853 rtol-1e-13 reference (benchmarks/
study_error_estimate.py): it bounds the true error on 99.4-100 % of trajectories (auto853, rodas5p,
dopri5), its median over-estimate is 1.8-1.95x, its worst miss a factor 2.3. ``error_target`` re-integrates
each trajectory whose estimate exceeds target/3 a decade tighter until it does not.

Events: :class:`Event` s locate the first crossing of each of their levels by the loss or by a scalar
function of the state, on the dense output (Illinois root finder, to ~1e-15 of the step).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numba
import numpy as np

from ghostsing.analytic import codegen
from ghostsing.simulate import _kernels as kn
from ghostsing.simulate import _lanes
from ghostsing.simulate.status import Status

METHODS: dict[str, int] = {
    "euler": kn.M_EULER, "rk4": kn.M_RK4, "dopri5": kn.M_DOPRI5, "rk45": kn.M_DOPRI5,
    "dop853": kn.M_DOP853, "rosenbrock": kn.M_RODAS, "rodas": kn.M_RODAS, "auto": kn.M_AUTO,
    "auto853": kn.M_AUTO8, "rodas5p": kn.M_RODAS5,
}
STIFF_METHODS: dict[str, int] = {"rodas": kn.M_RODAS, "rodas5p": kn.M_RODAS5}
SIMD_METHODS = ("rodas5p", "auto853")
_FIXED_ONLY = ("euler", "rk4")


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
    error_estimate (n,) (``estimate_error=True`` or ``error_target``; else None): estimate of each
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


def _positive(name: str, value: Any, allow_inf: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}={value!r}; allowed: a positive float") from exc
    if not (v > 0) or (not allow_inf and not np.isfinite(v)) or np.isnan(v):
        raise ValueError(f"{name}={value!r}; allowed: a positive finite float")
    return v


@contextlib.contextmanager
def _threads(n: int | None):
    if n is None:
        yield
        return
    n_max = numba.config.NUMBA_NUM_THREADS
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 1 <= n <= n_max:
        raise ValueError(f"threads={n!r}; allowed: an int in 1..{numba.config.NUMBA_NUM_THREADS} "
                         "(numba.config.NUMBA_NUM_THREADS)")
    old = numba.get_num_threads()
    numba.set_num_threads(int(n))
    try:
        yield
    finally:
        numba.set_num_threads(old)


def _simd_functions(model: Any, method: str, fmode: int, events: Any, exact_saves: Any,
                    stiff_method: str) -> tuple:
    """The (flow_lanes_into, jacobian_lanes_into, jacobian_into) that simd=True needs, or a clear error."""
    if method not in SIMD_METHODS:
        raise ValueError(f"simd=True with method={method!r}; allowed: {', '.join(SIMD_METHODS)}")
    fl = getattr(model, "flow_lanes_into", None)
    jl = getattr(model, "jacobian_lanes_into", None)
    ji = getattr(model, "jacobian_into", None)
    if fl is None or jl is None or ji is None or fmode != 0:
        raise ValueError("simd=True needs a compiled model with flow_lanes_into and jacobian_lanes_into; "
                         "allowed: flow=ghostsing.analytic.derive(spec).compile()")
    if isinstance(events, Event) or len(events) > 0:
        raise ValueError("simd=True with events; allowed: events=() (use simd=False for events)")
    if method == "auto853" and stiff_method.lower() != "rodas5p":
        raise ValueError(f"simd=True, method='auto853' with stiff_method={stiff_method!r}; "
                         "allowed: stiff_method='rodas5p'")
    if method == "auto853" and exact_saves is not None and not exact_saves:
        raise ValueError("simd=True, method='auto853' with exact_saves=False; allowed: exact_saves=None or "
                         "True (the SIMD DOP853 phase lands on the save times)")
    return fl, jl, ji


def _lane_blocks(n: int, threads: int) -> np.ndarray:
    """Bounds of the blocks of trajectories that the SIMD driver hands to its threads: about four
    blocks per thread (load balance) of at least 16 lanes' worth of work each (lane refill)."""
    n_blocks = int(max(1, min(4 * threads, -(-n // (16 * _lanes.L)))))
    return np.linspace(0, n, n_blocks + 1).round().astype(np.int64)


def integrate(
    flow: Any,
    theta0: Any,
    t_eval: Any,
    *,
    rtol: float = 1e-8,
    atol: float | Sequence[float] = 1e-10,
    method: str = "dopri5",
    loss: Any = None,
    jacobian: Any = None,
    events: Sequence[Event] = (),
    converge: tuple[float, float] | None = None,
    t0: float | None = None,
    step: float | None = None,
    first_step: float | None = None,
    max_step: float = np.inf,
    max_steps: int = 10_000_000,
    max_abs: float = 1e100,
    pi_beta: float | None = None,
    threads: int | None = None,
    parallel: bool | None = None,
    stiff_switch: tuple[float, float] = (2.5, 1.5),
    stiff_method: str = "rodas5p",
    exact_saves: bool | None = None,
    simd: bool = False,
    estimate_error: bool = False,
    error_target: float | None = None,
) -> Solution:
    r"""Integrate :math:`\dot\theta = F(\theta)` from ``theta0`` and save at ``t_eval``.

    Parameters
    ----------
    flow : ``@njit`` ``F(theta) -> (P,)`` or ``F(theta, out)`` (``out[:] = F(theta)``); or a compiled
        model object with ``flow_into``/``flow``, ``loss``, ``jacobian_into``/``jacobian`` attributes.
    theta0 : (P,) or (n, P) initial states (float64; non-finite rows come back with status NON_FINITE).
    t_eval : (T,) strictly increasing save times, all >= t0.
    rtol, atol : relative (> 0) and absolute (>= 0, scalar or (P,)) tolerances of the local error.
    method : "dopri5" (default), "dop853", "rosenbrock", "rodas5p", "auto", "auto853", "rk4", "euler"
        (module doc).
    loss : ``@njit`` ``L(theta) -> float``; saved losses (else NaN) and loss events.
    jacobian : ``@njit`` ``J(theta) -> (P, P)`` or ``J(theta, out)``, :math:`J = \partial F/\partial\theta`;
        needed by "rosenbrock", "rodas5p", "auto" and "auto853".
    events : a sequence of :class:`Event` (at most one with ``fn=None`` (loss) and one with a function).
    converge : ``(grad_tol, hold_time)``: stop when :math:`\|F\|_2 <` grad_tol for a time hold_time.
    t0 : start time (default ``t_eval[0]``).
    step : fixed step size (required by "rk4"/"euler"; optional fixed-step mode for "dopri5"/"dop853").
    first_step, max_step : adaptive step limits (first_step default: Hairer's estimate).
    max_steps : attempted-step budget per trajectory (status MAX_STEPS when exhausted).
    max_abs : a state with max|theta_i| > max_abs is a blow-up (status NON_FINITE).
    pi_beta : PI-controller beta (default 0.04 for DOPRI5 / auto, 0 for DOP853 and RODAS, as in
        Hairer's codes).
    threads : number of Numba threads for this call (default: Numba's current setting).
    parallel : use the prange driver (default: when n > 1).
    stiff_switch : ("auto", "auto853") ``(up, down)``: switch DOPRI5 -> RODAS when :math:`h \|J\|_\infty >` up
        (checked every 10 accepted steps with the exact Jacobian; up = 0 disables this check and leaves
        only Hairer's test), and back when :math:`h \|J\|_\infty <` down for 10 steps in a row.
    stiff_method : ("auto", "auto853") the stiff method switched to: "rodas" (RODAS, order 4(3))
        or "rodas5p" (Rodas5P, order 5(4), default: fewer steps at tight tolerances; 1.4x faster
        than RODAS in ``auto853`` on the benchmarks/ problem at rtol 1e-8).
    exact_saves : shorten adaptive steps to land on every save time, so that saved states are step
        end points, not dense-output values (default: True for "dop853"/"auto853", whose 7th-order
        dense output is not error-controlled and can be off by tens of tolerance units on long steps;
        False otherwise). Events always use the dense output.
    simd : ("rodas5p" and "auto853") advance 16 trajectories per loop iteration in lock-step, each
        with its own step size, with the model's generated SIMD functions ``flow_lanes_into`` and
        ``jacobian_lanes_into`` (``flow`` must then be a compiled model, ``derive(spec).compile()``).
        Same methods, controller, stiffness switch and status rules as the scalar driver (results
        agree to rounding), except that "auto853" never switches back from Rodas5P to DOP853 (the
        down threshold of ``stiff_switch`` is unused); no events; "auto853" lands on the save times.
        About 2x the scalar speed per core on the benchmarks/ problem (``simulate._lanes``).
    estimate_error : also return ``sol.error_estimate`` (n,): each trajectory's largest global error over
        the saves, estimated from a companion integration of the same method at ``rtol / 10``, ``atol / 10``
        (module doc, "Global error"); costs that second integration (about 1.7x the first on the
        benchmarks/ problem).
    error_target : ask for a global error: every trajectory whose estimate exceeds ``error_target / 3``
        (a margin for the estimate's misses) is re-integrated one decade tighter (its companion becomes
        its solution, a new companion is run a decade below) until its estimate is at most that, for
        at most 6 decades below ``rtol`` and no companion below rtol 1e-14 (a ``RuntimeWarning`` says
        how many missed it). Implies ``estimate_error``; ``sol.rtol_used`` says which rtol each
        trajectory ended at.
    """
    kw = {"rtol": rtol, "atol": atol, "method": method, "loss": loss, "jacobian": jacobian, "events": events,
          "converge": converge, "t0": t0, "step": step, "first_step": first_step, "max_step": max_step,
          "max_steps": max_steps, "max_abs": max_abs, "pi_beta": pi_beta, "threads": threads,
          "parallel": parallel, "stiff_switch": stiff_switch, "stiff_method": stiff_method,
          "exact_saves": exact_saves, "simd": simd}
    if not isinstance(estimate_error, bool | np.bool_):
        raise TypeError(f"estimate_error={estimate_error!r}; allowed: True or False")
    if error_target is not None:
        error_target = _positive("error_target", error_target)
    wanted = estimate_error or error_target is not None
    if wanted and (step is not None or (isinstance(method, str) and method.lower() in _FIXED_ONLY)):
        raise ValueError(f"estimate_error / error_target with a fixed step (method={method!r}, "
                         f"step={step!r}); allowed: an adaptive method without step=")
    sol = _integrate_once(flow, theta0, t_eval, **kw)
    if not wanted:
        return sol
    return _global_error(flow, theta0, t_eval, sol, kw, error_target)


# ------------------------------------------------------------------------ global error
ESTIMATE_TIGHTEN = 10.0  # the companion run's tolerances are rtol / 10, atol / 10
ESTIMATE_SAFETY = 2.0  # error_estimate = 2 max |y - y_companion| (calibrated: module doc)
TARGET_DECADES = 6  # error_target tightens a failing trajectory by at most 6 decades
TARGET_MARGIN = 3.0  # error_target is met when the estimate is <= target / 3 (the estimate's worst miss
# on the 2,000-start calibration is a factor 2.3: module doc)
COMPANION_RTOL_FLOOR = 1e-14  # no companion below this rtol (float64 rounding)
_FAILED = (Status.MAX_STEPS, Status.STEP_TOO_SMALL, Status.NON_FINITE)


def pair_error_estimate(y: np.ndarray, y_companion: np.ndarray, status: np.ndarray) -> np.ndarray:
    r"""Global-error estimate of the states ``y`` (n, T, P) from a companion run ``y_companion`` of the
    same method at tolerances ten times tighter: :math:`2\max_{k,i}|y_{k,i} - \tilde y_{k,i}|` per trajectory.

    If the global error scales as :math:`\mathrm{rtol}^q` with :math:`q \ge 1`, the companion's error is
    at most a tenth of ``y``'s, so :math:`|y - \tilde y|` is within 10 % of ``y``'s error and the factor
    2 leaves room for trajectories where the scaling is not followed (calibrated on 2,000 starts:
    module doc). Saves where ``y`` is NaN (a stop) are skipped; NaN for a trajectory whose ``status``
    is a failure (MAX_STEPS, STEP_TOO_SMALL, NON_FINITE), inf where ``y`` is finite but the companion
    is not (the error cannot be estimated).
    """
    fin = np.isfinite(y)
    with np.errstate(invalid="ignore"):
        d = np.where(fin, np.abs(y - y_companion), 0.0)
    est = ESTIMATE_SAFETY * np.max(d, axis=(1, 2), initial=0.0)
    est[np.any(fin & ~np.isfinite(y_companion), axis=(1, 2))] = np.inf
    est[np.isin(status, np.array(_FAILED, dtype=np.int64))] = np.nan
    return est


_PER_TRAJ = ("y", "loss", "grad_norm", "status", "t_stop", "y_stop", "n_accepted", "n_rejected", "nfev",
             "njev", "nlu", "t_stiff")


def _global_error(flow: Any, theta0: Any, t_eval: Any, sol: Solution, kw: dict,
                  target: float | None) -> Solution:
    """``sol`` with ``error_estimate`` and ``rtol_used``; with a ``target``, the trajectories whose estimate
    exceeds it re-integrated a decade tighter at a time (the companion of one round is the solution of
    the next)."""
    rtol = float(kw["rtol"])
    atol = np.asarray(kw["atol"], dtype=np.float64)
    Y0 = np.atleast_2d(np.asarray(theta0, dtype=np.float64))
    n = Y0.shape[0]

    def run(rows: np.ndarray | None, scale: float) -> Solution:
        y0 = Y0 if rows is None else Y0[rows]
        return _integrate_once(flow, y0, t_eval, **{**kw, "rtol": rtol * scale, "atol": atol * scale})

    comp = run(None, 1.0 / ESTIMATE_TIGHTEN)
    est = pair_error_estimate(sol.y, comp.y, sol.status)
    rtol_used = np.full(n, rtol)
    if target is None:
        return replace(sol, error_estimate=est, rtol_used=rtol_used)

    out = {k: getattr(sol, k).copy() for k in _PER_TRAJ}
    events = [e.copy() for e in sol.events]
    goal = target / TARGET_MARGIN
    todo = np.flatnonzero(~(est <= goal) & ~np.isnan(est))
    comp_rows = np.arange(n)  # rows of Y0 that comp holds, in order
    for decade in range(1, TARGET_DECADES + 1):
        scale = ESTIMATE_TIGHTEN ** -decade
        if todo.size == 0 or rtol * scale / ESTIMATE_TIGHTEN < COMPANION_RTOL_FLOOR:
            break
        pos = np.searchsorted(comp_rows, todo)  # todo is a subset of comp_rows, both sorted
        new_comp = run(todo, scale / ESTIMATE_TIGHTEN)
        new_est = pair_error_estimate(comp.y[pos], new_comp.y, comp.status[pos])
        for k in _PER_TRAJ:
            out[k][todo] = getattr(comp, k)[pos]
        for e_out, e_c in zip(events, comp.events, strict=True):
            e_out[todo] = e_c[pos]
        est[todo] = new_est
        rtol_used[todo] = rtol * scale
        comp, comp_rows = new_comp, todo
        todo = todo[~(new_est <= goal) & ~np.isnan(new_est)]
    if todo.size:
        warnings.warn(f"error_target={target:g}: {todo.size} of {n} trajectories still have an error "
                      f"estimate above target / {TARGET_MARGIN:g} (largest {np.max(est[todo]):.3g}) at rtol "
                      f"down to "
                      f"{np.min(rtol_used[todo]):.3g}",
                      RuntimeWarning, stacklevel=3)
    return replace(sol, **out, events=tuple(events), error_estimate=est, rtol_used=rtol_used)


def _integrate_once(
    flow: Any,
    theta0: Any,
    t_eval: Any,
    *,
    rtol: float = 1e-8,
    atol: float | Sequence[float] = 1e-10,
    method: str = "dopri5",
    loss: Any = None,
    jacobian: Any = None,
    events: Sequence[Event] = (),
    converge: tuple[float, float] | None = None,
    t0: float | None = None,
    step: float | None = None,
    first_step: float | None = None,
    max_step: float = np.inf,
    max_steps: int = 10_000_000,
    max_abs: float = 1e100,
    pi_beta: float | None = None,
    threads: int | None = None,
    parallel: bool | None = None,
    stiff_switch: tuple[float, float] = (2.5, 1.5),
    stiff_method: str = "rodas5p",
    exact_saves: bool | None = None,
    simd: bool = False,
) -> Solution:
    """One integration at the given tolerances (:func:`integrate` without the global-error layer)."""
    if not isinstance(method, str) or method.lower() not in METHODS:
        raise ValueError(f"method={method!r}; allowed: {', '.join(METHODS)}")
    method = method.lower()
    model = flow
    f_into, f_ret, fmode, loss, j_into, j_ret, jmode, n_params = _resolve_callables(flow, loss, jacobian)
    meth = METHODS[method]
    if meth == kn.M_AUTO and jmode < 0:
        meth = kn.M_DOPRI5
    if meth == kn.M_AUTO8 and jmode < 0:
        meth = kn.M_DOP853
    if meth in (kn.M_RODAS, kn.M_RODAS5) and jmode < 0:
        raise ValueError(f"method={method!r} needs jacobian=...; allowed: pass the generated f.jacobian")
    if not isinstance(stiff_method, str) or stiff_method.lower() not in STIFF_METHODS:
        raise ValueError(f"stiff_method={stiff_method!r}; allowed: {', '.join(STIFF_METHODS)}")

    y0 = np.asarray(theta0, dtype=np.float64)
    single = y0.ndim == 1
    if y0.ndim not in (1, 2) or y0.shape[-1] == 0 or (y0.ndim == 2 and y0.shape[0] == 0):
        raise ValueError(f"theta0 has shape {y0.shape}; allowed: (P,) or (n, P) with n, P >= 1")
    Y0 = np.ascontiguousarray(np.atleast_2d(y0))
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

    rt = _positive("rtol", rtol)
    at = np.asarray(atol, dtype=np.float64)
    if at.ndim == 0:
        at = np.full(P, float(at))
    if at.shape != (P,) or not np.all(np.isfinite(at)) or np.any(at < 0):
        raise ValueError(f"atol={atol!r}; allowed: a float >= 0 or an array of {P} floats >= 0")
    if np.any(at == 0) and rt <= 0:
        raise ValueError("atol = 0 and rtol = 0 give no error scale")
    at = np.ascontiguousarray(at)

    fixed = step is not None
    if method in _FIXED_ONLY and not fixed:
        raise ValueError(f"method={method!r} is a fixed-step method; allowed: pass step=h > 0")
    if fixed and meth in (kn.M_RODAS, kn.M_RODAS5, kn.M_AUTO, kn.M_AUTO8):
        raise ValueError(f"step= (fixed-step mode) with method={method!r}; "
                         "allowed: euler, rk4, dopri5, dop853")
    hfix = _positive("step", step) if fixed else 0.0
    h0 = _positive("first_step", first_step) if first_step is not None else 0.0
    hmax = _positive("max_step", max_step, allow_inf=True)
    if isinstance(max_steps, bool) or not isinstance(max_steps, int | np.integer) or max_steps < 1:
        raise ValueError(f"max_steps={max_steps!r}; allowed: an int >= 1")
    mabs = _positive("max_abs", max_abs, allow_inf=True)
    if converge is None:
        ctol, chold = 0.0, 0.0
    else:
        try:
            ctol, chold = (float(v) for v in converge)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"converge={converge!r}; allowed: (grad_tol > 0, hold_time >= 0)") from exc
        if not (ctol > 0 and np.isfinite(ctol) and chold >= 0 and np.isfinite(chold)):
            raise ValueError(f"converge={converge!r}; allowed: (grad_tol > 0, hold_time >= 0)")
    if pi_beta is None:
        beta = 0.04 if meth in (kn.M_DOPRI5, kn.M_AUTO) else 0.0
    else:
        beta = float(pi_beta)
        if not 0.0 <= beta <= 0.2:
            raise ValueError(f"pi_beta={pi_beta!r}; allowed: 0 <= beta <= 0.2")

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

    iopt = np.zeros(kn.N_IOPT, dtype=np.int64)
    iopt[kn.IO_METHOD] = meth
    iopt[kn.IO_MAXSTEPS] = int(max_steps)
    iopt[kn.IO_FMODE] = fmode
    iopt[kn.IO_JMODE] = max(jmode, 0)
    iopt[kn.IO_HASLOSS] = int(loss is not None)
    iopt[kn.IO_HASEV] = int(ev_fn is not None)
    iopt[kn.IO_DIRL] = ev_loss.direction if ev_loss else 0
    iopt[kn.IO_TERML] = int(ev_loss.terminal) if ev_loss else 0
    iopt[kn.IO_DIRF] = ev_fn.direction if ev_fn else 0
    iopt[kn.IO_TERMF] = int(ev_fn.terminal) if ev_fn else 0
    iopt[kn.IO_FIXED] = int(fixed)
    if exact_saves is None:
        exact_saves = meth in (kn.M_DOP853, kn.M_AUTO8)
    iopt[kn.IO_EXACT] = int(bool(exact_saves))
    iopt[kn.IO_STIFF] = STIFF_METHODS[stiff_method.lower()]
    fopt = np.zeros(kn.N_FOPT)
    fopt[kn.FO_T0] = start
    fopt[kn.FO_RTOL] = rt
    fopt[kn.FO_H0] = h0
    fopt[kn.FO_HFIX] = hfix
    fopt[kn.FO_HMAX] = hmax
    fopt[kn.FO_CTOL] = ctol
    fopt[kn.FO_CHOLD] = chold
    fopt[kn.FO_MAXABS] = mabs
    fopt[kn.FO_BETA] = beta
    try:
        sw_up, sw_down = (float(v) for v in stiff_switch)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"stiff_switch={stiff_switch!r}; allowed: (up >= 0, down >= 0)") from exc
    if not (sw_up >= 0 and sw_down >= 0 and np.isfinite(sw_up) and np.isfinite(sw_down)):
        raise ValueError(f"stiff_switch={stiff_switch!r}; allowed: (up >= 0, down >= 0)")
    fopt[kn.FO_SWUP] = sw_up
    fopt[kn.FO_SWDOWN] = sw_down

    if not isinstance(simd, bool | np.bool_):
        raise TypeError(f"simd={simd!r}; allowed: True or False")
    lanes_fns = None
    if simd:
        lanes_fns = _simd_functions(model, method, fmode, events, exact_saves, stiff_method)

    T = te.size
    Y = np.empty((n, T, P))
    LO = np.empty((n, T))
    GN = np.empty((n, T))
    YF = np.empty((n, P))
    CNT = np.zeros((n, kn.N_STATS), dtype=np.int64)
    FOUT = np.empty((n, 2))
    EVL = np.empty((n, lev_l.size))
    EVF = np.empty((n, lev_f.size))
    use_par = (n > 1) if parallel is None else bool(parallel)
    ls = loss if loss is not None else kn.dummy_scal
    efn = ev_fn.fn if ev_fn is not None else kn.dummy_scal
    with _threads(threads):
        if lanes_fns is not None:
            bounds = _lane_blocks(n, numba.get_num_threads() if use_par else 1)
            driver = _lanes.compiled_lanes_driver(use_par)
            driver(f_into, ls, *lanes_fns, codegen.LANES, Y0, te, at, iopt, fopt, bounds, Y, LO, GN, YF, CNT,
                   FOUT)
        else:
            driver = kn.compiled_driver(use_par)
            driver(f_into, f_ret, ls, j_into, j_ret, efn, Y0, te, at, lev_l, lev_f, iopt, fopt,
                   Y, LO, GN, YF, CNT, FOUT, EVL, EVF)
    evs = tuple(EVL if k == "loss" else EVF for k in order)
    del single  # theta0 of shape (P,) still gives n = 1 (documented: sol.y is always (n, T, P))
    return Solution(
        t=te, y=Y, loss=LO, grad_norm=GN, status=CNT[:, kn.ST_STATUS].copy(), t_stop=FOUT[:, 0].copy(),
        y_stop=YF, n_accepted=CNT[:, kn.ST_ACC].copy(), n_rejected=CNT[:, kn.ST_REJ].copy(),
        nfev=CNT[:, kn.ST_NFEV].copy(), njev=CNT[:, kn.ST_NJEV].copy(), nlu=CNT[:, kn.ST_NLU].copy(),
        t_stiff=FOUT[:, 1].copy(), events=evs, method=method,
    )
