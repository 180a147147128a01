r"""The symmetric two-unit model of the simulation studies: its constants, plateau starts and escape times.

The model is the two-unit erf student learning the symmetric two-unit teacher ``y = g(x_1) + g(x_2)``
(``K = M = N = 2``, ``v = (1, 1)``, ``B = I``), with identity skips ``s_i = e_i`` of strength alpha.  Its
best one-unit fit is ``w* = 2``, ``J* = (1, 1)/sqrt 6`` with loss
``L* = 1/3 - (4/pi) arcsin(1/4) = 0.0116108`` (the symmetric plateau of Saad & Solla).

Starts near the overlap line are placed with the overlap chart of
:mod:`ghostsing.analytic.manifold_coords` (``theta = psi(w, Jbar, z, u)``); nothing here re-derives it.
Numerics only: no figure is drawn here.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ghostsing.models import ModelSpec

__all__ = ["W_STAR", "J_STAR", "L_STAR", "symmetric_spec", "compiled", "one_unit_fit", "overlap_starts",
           "escape_times"]

#: Best one-unit fit of the symmetric teacher (closed form, see the module docstring).
W_STAR = 2.0
J_STAR = np.array([1.0, 1.0]) / math.sqrt(6.0)
L_STAR = 1.0 / 3.0 - (4.0 / math.pi) * math.asin(0.25)


def symmetric_spec(alpha: float = 0.0) -> ModelSpec:
    """The two-unit erf student of the symmetric two-unit teacher, identity skips of strength alpha."""
    return ModelSpec(K=2, M=2, N=2, activation="erf", alpha=alpha)


def compiled(spec: ModelSpec):
    """``derive(spec).compile()`` (generated Numba loss, flow, Jacobian; cached on disk)."""
    from ghostsing.analytic import derive

    return derive(spec).compile()


def one_unit_fit(spec: ModelSpec, seed: int = 0) -> tuple[float, np.ndarray, float]:
    """Best one-unit plain fit ``(w*, J*, L*) = argmin L_1`` of ``spec``'s teacher (K = 2 students), from
    :func:`ghostsing.analytic.minima.best_fit` on the parent spec (odd g: signed so w* >= 0)."""
    from ghostsing.analytic.manifold_coords import parent_spec
    from ghostsing.analytic.minima import best_fit

    if spec.K != 2:
        raise ValueError(f"one_unit_fit needs a K=2 student, got K={spec.K}; allowed: K=2")
    fit = best_fit(parent_spec(spec), seed=seed)
    return float(fit.theta[0]), np.array(fit.theta[1:]), float(fit.loss)


@lru_cache(maxsize=2)
def _overlap_chart():
    from ghostsing.analytic.manifold_coords import overlap

    return overlap(symmetric_spec(0.0), 0, 1)


def overlap_starts(n: int, eps: float, z0: float | np.ndarray, rng: np.random.Generator, w: float = W_STAR,
                   Jbar: np.ndarray = J_STAR) -> np.ndarray:
    """``n`` starts ``theta = psi(w, Jbar, z0, u)`` of the overlap chart (``theta`` rows, ModelSpec order):
    on the overlap line at ``z0`` (a float or ``n`` floats; ``(w, Jbar)`` = the best one-unit fit by
    default) plus a transverse ``u = eps d``, ``d`` uniform on the unit circle."""
    if not (eps > 0 and math.isfinite(eps)):
        raise ValueError(f"eps={eps} is not allowed; allowed: a finite float > 0")
    Jbar = np.asarray(Jbar, dtype=np.float64)
    if Jbar.shape != (2,):
        raise ValueError(f"Jbar has shape {Jbar.shape}; allowed: (2,) (the symmetric model has N = 2)")
    d = rng.normal(size=(n, 2))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    xi = np.empty((n, 6))
    xi[:, 0] = w
    xi[:, 1:3] = Jbar
    xi[:, 3] = np.broadcast_to(np.asarray(z0, dtype=np.float64), (n,))
    xi[:, 4:6] = eps * d
    return _overlap_chart().to_theta_many(xi)


def escape_times(f, theta0: np.ndarray, level: float, t_end: float, rtol: float = 1e-9,
                 atol: float = 1e-12, n_save: int = 200):
    """First times at which ``L`` falls below ``level`` (event on the dense output; nan if never before
    ``t_end``), with the saved ensemble (log-spaced grid of ``n_save`` points plus t = 0)."""
    from ghostsing.simulate import Event, integrate, log_grid

    sol = integrate(f, theta0, log_grid(t_end, n_save, t_first=1e-2), rtol=rtol, atol=atol, method="auto",
                    events=[Event(levels=[level], direction=-1)])
    return sol.events[0][:, 0], sol
