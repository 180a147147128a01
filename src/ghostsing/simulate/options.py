"""Option groups of :func:`ghostsing.simulate.integrate`: frozen records, each validated once.

``integrate(flow, theta0, t_eval, *, method, rtol, atol, loss, jacobian, t0, events, control, stop,
stiffness, saves, execution)``: what almost every call sets (the method, the tolerances, the functions,
the events) are keywords of their own; what tunes the solver comes in a group:

* :class:`StepControl` -- the step-size controller (first step, largest step, PI beta) or a fixed step;
* :class:`Stop` -- why a trajectory may end before ``t_eval[-1]`` other than an event: convergence
  (``grad_tol``, ``hold_time``), the step budget (``max_steps``), a blow-up (``max_abs``);
* :class:`StiffnessSwitch` -- the thresholds and the stiff method of ``"auto"`` / ``"auto853"``;
* :class:`Saves` -- what the saved states promise: step end points (``exact``), a global-error estimate
  (``estimate_error``) or a global-error target (``error_target``);
* :class:`Execution` -- threads, the parallel driver, the SIMD-lanes driver (never changes results
  beyond rounding).

Each group checks its values in ``__post_init__`` (:mod:`ghostsing.validation`); a bad value raises a
``ValueError`` naming the field, the value and what is allowed.  :class:`Tolerances` is the validated
``(rtol, atol)`` pair that ``integrate`` builds from its two keywords (and that the global-error layer
scales).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ghostsing.simulate.methods import STIFF_METHODS
from ghostsing.validation import check_choice, check_float, check_int

__all__ = ["Tolerances", "StepControl", "Stop", "StiffnessSwitch", "Saves", "Execution"]


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name}={value!r} is not allowed; allowed: True or False")
    return bool(value)


def _check_positive(name: str, value: Any, allow_inf: bool = False) -> float:
    """A float > 0 (finite unless ``allow_inf``)."""
    if allow_inf and not isinstance(value, bool):
        try:
            if float(value) == math.inf:
                return math.inf
        except (TypeError, ValueError):
            pass
    try:
        return check_float(name, value, 0.0, low_open=True)
    except ValueError as exc:
        if allow_inf:
            raise ValueError(f"{name}={value!r} is not allowed; allowed: a float > 0 or inf") from None
        raise exc


@dataclass(frozen=True)
class Tolerances:
    """Local error tolerances: a step is accepted when the RMS over components of
    ``e_i / (atol_i + rtol max(|y_i|, |y_new_i|))`` is at most 1.

    rtol: a finite float > 0; atol: a float >= 0 or a sequence of them (one per parameter; checked
    against the number of parameters by :meth:`atol_array`).
    """

    rtol: float = 1e-8
    atol: float | Sequence[float] = 1e-10

    def __post_init__(self) -> None:
        object.__setattr__(self, "rtol", check_float("rtol", self.rtol, 0.0, low_open=True))
        at = np.asarray(self.atol, dtype=np.float64) if not isinstance(self.atol, str) else None
        if at is None or at.ndim > 1 or at.size == 0 or not np.all(np.isfinite(at)) or np.any(at < 0):
            raise ValueError(f"atol={self.atol!r} is not allowed; allowed: a finite float >= 0 or a 1-D "
                             "sequence of them (one per parameter)")
        object.__setattr__(self, "atol", float(at) if at.ndim == 0 else tuple(float(x) for x in at))

    def atol_array(self, n_params: int) -> np.ndarray:
        """atol as a contiguous (n_params,) float64 array."""
        at = np.asarray(self.atol, dtype=np.float64)
        if at.ndim == 0:
            return np.full(n_params, float(at))
        if at.shape != (n_params,):
            raise ValueError(f"atol has {at.size} entries; allowed: a float or {n_params} floats (one per "
                             "parameter)")
        return np.ascontiguousarray(at)

    def scaled(self, factor: float) -> Tolerances:
        """Both tolerances times ``factor`` (the global-error layer's companion runs)."""
        at = self.atol
        at = at * factor if isinstance(at, float) else tuple(a * factor for a in at)
        return Tolerances(self.rtol * factor, at)


@dataclass(frozen=True)
class StepControl:
    """Step sizes.

    fixed_step: ``h > 0`` runs without error control, steps clipped to land on every save time
    (required by ``"euler"``/``"rk4"``, allowed for ``"dopri5"``/``"dop853"``); None: adaptive.
    first_step: first adaptive step (None: Hairer's estimate).  max_step: largest adaptive step (> 0,
    inf allowed).  pi_beta: beta of the PI controller in [0, 0.2] (None: the method's default from the
    method table, 0.04 for DOPRI5 and auto, 0 for the others, as in Hairer's codes).
    """

    fixed_step: float | None = None
    first_step: float | None = None
    max_step: float = math.inf
    pi_beta: float | None = None

    def __post_init__(self) -> None:
        if self.fixed_step is not None:
            object.__setattr__(self, "fixed_step", _check_positive("fixed_step", self.fixed_step))
        if self.first_step is not None:
            object.__setattr__(self, "first_step", _check_positive("first_step", self.first_step))
        object.__setattr__(self, "max_step", _check_positive("max_step", self.max_step, allow_inf=True))
        if self.pi_beta is not None:
            object.__setattr__(self, "pi_beta", check_float("pi_beta", self.pi_beta, 0.0, 0.2))


@dataclass(frozen=True)
class Stop:
    """Early stops other than events.

    grad_tol, hold_time: stop with status CONVERGED once ``|F(theta)|_2 < grad_tol`` has held without
    interruption for a time ``hold_time`` (grad_tol None: never; later saves repeat the last state).
    max_steps: attempted steps per trajectory (status MAX_STEPS when exhausted), an int >= 1.
    max_abs: a state with ``max_i |theta_i| > max_abs`` is a blow-up (status NON_FINITE), > 0 or inf.
    """

    grad_tol: float | None = None
    hold_time: float = 0.0
    max_steps: int = 10_000_000
    max_abs: float = 1e100

    def __post_init__(self) -> None:
        if self.grad_tol is not None:
            object.__setattr__(self, "grad_tol", _check_positive("grad_tol", self.grad_tol))
        object.__setattr__(self, "hold_time", check_float("hold_time", self.hold_time, 0.0))
        object.__setattr__(self, "max_steps", check_int("max_steps", self.max_steps, 1))
        object.__setattr__(self, "max_abs", _check_positive("max_abs", self.max_abs, allow_inf=True))


@dataclass(frozen=True)
class StiffnessSwitch:
    """The stiffness switch of ``"auto"`` / ``"auto853"``.

    up: switch to the stiff method when ``h ||J||_inf > up`` (checked every 10 accepted steps with the
    exact Jacobian; times 1.8 for DOP853; 0 disables this check and leaves only Hairer's test); down:
    back to the explicit method when ``h ||J||_inf < down`` for 10 stiff steps in a row (the SIMD driver
    never switches back).  method: the stiff method, ``"rodas5p"`` (default; order 5(4)) or ``"rodas"``
    (order 4(3)).
    """

    up: float = 2.5
    down: float = 1.5
    method: str = "rodas5p"

    def __post_init__(self) -> None:
        object.__setattr__(self, "up", check_float("up", self.up, 0.0))
        object.__setattr__(self, "down", check_float("down", self.down, 0.0))
        name = self.method.lower() if isinstance(self.method, str) else self.method
        name = {"rosenbrock": "rodas"}.get(name, name)
        object.__setattr__(self, "method", check_choice("stiff method", name, STIFF_METHODS))


@dataclass(frozen=True)
class Saves:
    """What the saved states promise.

    exact: shorten adaptive steps to land on every save time, so saved states are step end points, not
    dense-output values (None: the method table's default, True for ``"dop853"``/``"auto853"``, whose
    7th-order dense output is not error-controlled).  estimate_error: also return
    ``sol.error_estimate``, each trajectory's largest global error over the saves, from a companion run
    at tolerances / 10.  error_target: re-integrate a decade tighter every trajectory whose estimate
    exceeds ``error_target / 3`` until it does not (implies estimate_error; None: no target).
    """

    exact: bool | None = None
    estimate_error: bool = False
    error_target: float | None = None

    def __post_init__(self) -> None:
        if self.exact is not None:
            object.__setattr__(self, "exact", _check_bool("exact", self.exact))
        object.__setattr__(self, "estimate_error", _check_bool("estimate_error", self.estimate_error))
        if self.error_target is not None:
            object.__setattr__(self, "error_target", _check_positive("error_target", self.error_target))

    @property
    def global_error(self) -> bool:
        """True when a global-error estimate is asked for (estimate_error or error_target)."""
        return self.estimate_error or self.error_target is not None


@dataclass(frozen=True)
class Execution:
    """How the work is spread; results agree to rounding whatever is chosen.

    threads: Numba threads for this call (None: the current setting; else 1..NUMBA_NUM_THREADS).
    parallel: the prange driver (None: when there is more than one trajectory).  simd: 16 trajectories
    per loop iteration in lock-step (``"rodas5p"``, ``"auto853"``; ``flow`` a compiled model; no events).
    """

    threads: int | None = None
    parallel: bool | None = None
    simd: bool = False

    def __post_init__(self) -> None:
        if self.threads is not None:
            import numba

            object.__setattr__(self, "threads",
                               check_int("threads", self.threads, 1, numba.config.NUMBA_NUM_THREADS))
        if self.parallel is not None:
            object.__setattr__(self, "parallel", _check_bool("parallel", self.parallel))
        object.__setattr__(self, "simd", _check_bool("simd", self.simd))


def group(name: str, value: Any, cls: type) -> Any:
    """``value`` if it is a ``cls`` (None: the defaults); else a TypeError naming the group."""
    if value is None:
        return cls()
    if not isinstance(value, cls):
        raise TypeError(f"{name}={value!r} is a {type(value).__name__}; allowed: a {cls.__name__}(...)")
    return value

