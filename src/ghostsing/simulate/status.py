"""The one status enumeration of ghostsing's simulations: per trajectory of
:func:`ghostsing.simulate.integrate` (``Solution.status``) and per seed of on-line SGD
(``SGDResult.status``, ``SpecSGDResult.status``: ``OK`` or ``NON_FINITE``); the Numba kernels use its
members' values."""

from __future__ import annotations

from enum import IntEnum


class Status(IntEnum):
    """Why a trajectory stopped.

    * ``OK`` (0): reached the last time of ``t_eval``; every saved state is an integrated state.
    * ``CONVERGED`` (1): stopped early because ``|grad L| = |flow(theta)|_2 < grad_tol`` held for a time
      ``hold_time`` (``Stop(grad_tol=..., hold_time=...)``); the saved states after the stop time repeat
      the state at the stop (their distance to the true flow is at most ~ ``grad_tol / lambda_min`` near a
      non-degenerate minimum whose Hessian has smallest eigenvalue ``lambda_min``).
    * ``MAX_STEPS`` (2): the step budget ``Stop(max_steps=...)`` ran out; later saves are NaN.
    * ``STEP_TOO_SMALL`` (3): the adaptive step fell below ``10 * ulp(t)``; later saves are NaN.
    * ``NON_FINITE`` (4): a non-finite initial state or right-hand side, or ``max|theta| > max_abs``
      (a blow-up, ``Stop(max_abs=...)``); in SGD, non-finite weights or error.  Later saves are NaN.
    * ``EVENT`` (5): a terminal event fired; the trajectory stops at the located event time and later
      saves are NaN.
    """

    OK = 0
    CONVERGED = 1
    MAX_STEPS = 2
    STEP_TOO_SMALL = 3
    NON_FINITE = 4
    EVENT = 5
