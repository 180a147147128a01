r"""Global-error layer of :func:`ghostsing.simulate.integrate` (``Saves(estimate_error=True)``,
``Saves(error_target=...)``): a companion integration at tolerances / 10 estimates each trajectory's
largest global error over the saves, and a target re-integrates the trajectories that miss it a decade
tighter at a time.  The calibration of the constants below is in the docstring of
:mod:`ghostsing.simulate.integrate` ("Global error") and in benchmarks/study_error_estimate.py.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from ghostsing.simulate.status import Status

if TYPE_CHECKING:
    from ghostsing.simulate.integrate import Solution
    from ghostsing.simulate.options import Tolerances

__all__ = ["pair_error_estimate", "with_global_error", "ESTIMATE_TIGHTEN", "ESTIMATE_SAFETY",
           "TARGET_DECADES", "TARGET_MARGIN", "COMPANION_RTOL_FLOOR"]

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


def with_global_error(once: Callable[..., Solution], args: tuple, kw: dict, sol: Solution,
                      target: float | None) -> Solution:
    """``sol`` with ``error_estimate`` and ``rtol_used``; with a ``target``, the trajectories whose estimate
    exceeds it re-integrated a decade tighter at a time (the companion of one round is the solution of
    the next).  ``once(flow, theta0, t_eval, **kw)`` is one integration (``integrate._integrate_once``)
    and ``kw["tol"]`` its :class:`Tolerances`, which each round scales."""
    flow, theta0, t_eval = args
    tol: Tolerances = kw["tol"]
    rtol = tol.rtol
    Y0 = np.atleast_2d(np.asarray(theta0, dtype=np.float64))
    n = Y0.shape[0]

    def run(rows: np.ndarray | None, scale: float) -> Solution:
        y0 = Y0 if rows is None else Y0[rows]
        return once(flow, y0, t_eval, **{**kw, "tol": tol.scaled(scale)})

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
