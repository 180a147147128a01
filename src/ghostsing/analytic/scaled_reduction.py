r"""The scaled reduction of a degenerate overlap line (``v1 = 0``): growth rate, fold and passage law.

Coordinates.  For the overlap of units ``i, j`` write (exactly)::

    w = w_i + w_j,   m = (J_i + J_j)/2,   beta = alpha (w_i - w_j)/2,   gamma = (w_i - w_j)(J_i - J_j)/2,

so that ``beta = w zeta / 2`` with ``zeta = alpha z`` and ``gamma = beta U`` with ``U = u / alpha``.  With
``J_{i,j} = m +- u/2`` the two units and their skips are::

    w_i g(J_i.x) + w_j g(J_j.x) + alpha (w_i s_i + w_j s_j).x
        = w g(m.x) + g'(m.x) gamma.x + beta d.x + (alpha w / 2)(s_i + s_j).x + O(alpha^2),

``d = s_i - s_j``: as ``alpha -> 0`` at fixed ``(beta, gamma)`` the loss tends to the *scaled loss*

.. math::

    L_s(\theta', \beta, \gamma)
      = \tfrac12 E\big[(y - f'(x) - g'(m\cdot x)\,\gamma\cdot x - \beta\, d\cdot x)^2\big],

with ``f'`` the (K-1)-unit network (the merged unit ``(w, m)`` included), a closed form: every average is
the pair average ``I2`` or the linear average of :mod:`ghostsing.analytic.gaussian`, or a directional
derivative of them in ``m`` (``E[g'(m.x)(gamma.x) h(x)] = gamma . grad_m E[g(m.x) h(x)]``).

Dynamics.  By the chain rule the gradient flow gives
``dbeta/dt = -(alpha^2/2)(dL/dbeta + (gamma/beta).dL/dgamma)`` while ``gamma`` relaxes at a rate
``~ (w_i - w_j)^2 = (2 beta / alpha)^2`` and ``(w, m)`` and
the other units at rates O(1): on the slow time ``T = alpha^2 t`` the state follows the branch of minima
``L*(beta) = min_{theta', gamma} L_s`` and::

    d beta / dT = -(1/2) dL*/dbeta.

Near ``beta = 0`` (``dL*/dbeta = 0`` there when ``v1 = 0``) this is ``d beta/dT = c beta``, i.e.
``dz/dt = c alpha^2 z`` with::

    c = -(1/2) lim_{beta -> 0} L*'(beta) / beta,

and the branch ends at a fold ``beta_f`` (the minimiser jumps; the state leaves the former line), at
``kappa = zeta_f = 2 beta_f / w``.  The passage time from ``z0`` is then, to leading order in alpha::

    tau alpha^2 = T(beta_0) = int_{beta_0}^{beta_f} 2 d beta / (-L*'(beta)),   beta_0 = alpha w* z0 / 2,
                = c^-1 ln(kappa / (alpha z0)) + T0 + o(1),

``T0`` the correction from ``c(beta) = -L*'/(2 beta)`` not being constant along the branch (the jump after
the fold is fast).  The branch through ``gamma = 0`` is picked by starting ``gamma`` along the given
direction (default: the eigenvector of Amari's ``Kmat`` with the smallest ``|eigenvalue|``, the direction
neutral at second order).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import sympy as sp
from scipy import optimize

from ghostsing.analytic import gaussian
from ghostsing.analytic.loss import exact, population_loss, student_symbols
from ghostsing.analytic.milnor import amari_K
from ghostsing.analytic.minima import BestFit, best_fit
from ghostsing.models import ModelSpec


def _dot(p, q) -> sp.Expr:
    return sp.Add(*[a * b for a, b in zip(p, q, strict=True)])


def scaled_loss(spec: ModelSpec, pair: tuple[int, int] = (0, 1)) -> tuple[sp.Expr, tuple[sp.Symbol, ...],
                                                                         sp.Symbol, int]:
    """``L_s(theta', beta, gamma)`` of the module docstring, exact.

    Returns ``(expr, variables, beta, merged)``: ``variables = (theta'..., gamma_1..gamma_N)`` (the
    parent in flat order), ``beta`` the symbol of ``beta`` and ``merged`` the index of the merged unit
    among the parent units.
    """
    i, j = pair
    g = spec.activation
    if g == "relu":
        raise ValueError("scaled_loss needs a smooth activation; allowed: erf, linear (got relu)")
    pspec = spec.replace(K=spec.K - 1, alpha=0.0, skip_directions=None)
    Kp, N = pspec.K, spec.N
    merged = sorted([i, *[k for k in range(spec.K) if k not in pair]]).index(i)
    pw, pJ = student_symbols(Kp, N)
    rows = [list(pJ.row(k)) for k in range(Kp)]
    m = rows[merged]
    mp = [sp.Dummy(f"mp{n}", real=True) for n in range(N)]
    mpp = [sp.Dummy(f"mpp{n}", real=True) for n in range(N)]
    gam = tuple(sp.Symbol(f"gamma_{n + 1}", real=True) for n in range(N))
    beta = sp.Symbol("beta", real=True)
    d = [exact(spec.skip_directions[i, n]) - exact(spec.skip_directions[j, n]) for n in range(N)]
    v = [exact(x) for x in spec.v]
    B = [[exact(x) for x in row] for row in spec.B]

    def I2(P, Q):
        return gaussian.pair_average(g, _dot(P, P), _dot(Q, Q), _dot(P, Q))

    def lin(P, s):
        return gaussian.linear_average(g, _dot(P, P), _dot(P, s))

    def D(expr, M):  # directional derivative gamma . grad_M
        return sp.Add(*[gam[n] * sp.diff(expr, M[n]) for n in range(N)])

    Lp = population_loss(pspec, list(pw), pJ)
    # E[r' g(mp.x)] with r' = y - f' (mp independent of the parent's m), then D_gamma at mp = m
    Er_g = (sp.Add(*[v[a] * I2(B[a], mp) for a in range(spec.M)])
            - sp.Add(*[pw[k] * I2(rows[k], mp) for k in range(Kp)]))
    Er_d = (sp.Add(*[v[a] * lin(B[a], d) for a in range(spec.M)])
            - sp.Add(*[pw[k] * lin(rows[k], d) for k in range(Kp)]))
    at_m = dict(zip(mp, m, strict=True))
    at_mm = {**at_m, **dict(zip(mpp, m, strict=True))}
    cross_r = D(Er_g, mp).xreplace(at_m) + beta * Er_d
    square = (D(D(I2(mp, mpp), mp), mpp).xreplace(at_mm)
              + 2 * beta * D(lin(mp, d), mp).xreplace(at_m) + beta**2 * _dot(d, d))
    L = Lp - cross_r + square / 2
    return L, (*pw, *list(pJ), *gam), beta, merged


@dataclass(frozen=True, eq=False)
class ScaledBranch:
    """The branch of minima ``L*(beta)`` of the scaled loss (module docstring).

    beta, zeta, loss, slope : along the branch (``slope = -L*'(beta)/2 = d beta/dT``); states : the
    minimisers ``(theta', gamma)``; c : the growth rate ``lim slope/beta``; beta_fold, kappa : the end
    of the branch (``kappa = 2 beta_fold / w``); w : the merged unit's weight at the smallest beta;
    fold_eigenvalue : the smallest Hessian eigenvalue of ``L_s`` in ``(theta', gamma)`` at ``beta_fold``
    (near 0: a fold, not a grid artefact).
    """

    spec: ModelSpec
    pair: tuple[int, int]
    beta: np.ndarray
    zeta: np.ndarray
    loss: np.ndarray
    slope: np.ndarray
    states: np.ndarray
    c: float
    beta_fold: float
    kappa: float
    w: float
    fold_eigenvalue: float

    def passage_time(self, alpha: float, z0: float) -> float:
        """``tau alpha^2 = int_{beta_0}^{beta_fold} d beta / slope(beta)``, ``beta_0 = alpha w z0 / 2``
        (``slope = c beta`` below the first grid point)."""
        b0 = alpha * self.w * z0 / 2
        if not 0 < b0 < self.beta_fold:
            raise ValueError(f"alpha z0 = {alpha * z0:g} is outside the branch (0, kappa = {self.kappa:g})")
        # int d beta / slope = int (beta / slope) d ln beta, trapezoids on the branch's geometric grid
        # (slope = c beta below its first point)
        if b0 <= self.beta[0]:
            head = np.log(self.beta[0] / b0) / self.c
            lb, y = np.log(self.beta), self.beta / self.slope
        else:
            head = 0.0
            k = int(np.searchsorted(self.beta, b0))
            s0 = np.exp(np.interp(np.log(b0), np.log(self.beta), np.log(self.slope)))
            lb = np.concatenate([[np.log(b0)], np.log(self.beta[k:])])
            y = np.concatenate([[b0 / s0], self.beta[k:] / self.slope[k:]])
        return float(head + np.trapezoid(y, lb))

    def leading_law(self, alpha: float, z0: float) -> float:
        """``c^-1 ln(kappa / (alpha z0))`` (the passage time without ``T0``)."""
        return float(np.log(self.kappa / (alpha * z0)) / self.c)


def scaled_branch(spec: ModelSpec, pair: tuple[int, int] = (0, 1), fit: BestFit | None = None,
                  direction: Sequence[float] | None = None, beta_min: float = 1e-5, beta_max: float = 1.0,
                  n_steps: int = 400, jump_tol: float = 0.05, fold_rtol: float = 1e-10) -> ScaledBranch:
    """Trace ``L*(beta)`` by continuation from the fit (``gamma`` started along ``direction``) on a
    geometric grid of ``beta`` until the minimiser jumps by more than ``jump_tol``, then locate the fold
    ``beta_fold`` by bisection to a relative width ``fold_rtol``.

    Locating the fold matters: near it the branch is still traversed at a finite rate
    (``slope(beta_fold) > 0``), so stopping the integral one grid step early (2.9 % of ``beta`` at 400
    steps per five decades) loses ``Delta beta / slope`` of order 1 in ``T``.  At the fold the smallest
    Hessian eigenvalue of ``L_s`` in ``(theta', gamma)`` vanishes (as ``sqrt(beta_fold - beta)``);
    :attr:`ScaledBranch.fold_eigenvalue` records it at the last point kept."""
    if spec.N < 1:
        raise ValueError(f"N={spec.N}; allowed: N >= 1")
    from ghostsing.analytic.manifold_coords import overlap

    ch = overlap(spec.replace(alpha=0.0), *pair)
    fit = fit if fit is not None else best_fit(ch.parent_spec)
    L, xs, beta, merged = scaled_loss(spec, pair)
    fL = sp.lambdify([xs, beta], L, "numpy")
    fg = sp.lambdify([xs, beta], [sp.diff(L, s) for s in xs], "numpy")
    fh = sp.lambdify([xs, beta], sp.hessian(L, xs), "numpy")
    fb = sp.lambdify([xs, beta], sp.diff(L, beta), "numpy")
    if direction is None:
        K = amari_K(spec.replace(alpha=0.0), fit=fit, pair=pair)
        ev, vec = np.linalg.eigh(np.atleast_2d(K.matrix))
        direction = vec[:, int(np.argmin(np.abs(ev)))]
    u = np.asarray(direction, dtype=np.float64)
    u = u / np.linalg.norm(u)

    def minimise(b: float, start: np.ndarray) -> np.ndarray:
        return optimize.minimize(lambda q: float(fL(q, b)), start,
                                 jac=lambda q: np.asarray(fg(q, b), dtype=np.float64),
                                 hess=lambda q: np.asarray(fh(q, b), dtype=np.float64),
                                 method="trust-exact", options={"gtol": 1e-14, "maxiter": 500}).x

    def row(b: float, q: np.ndarray) -> tuple:
        return b, float(fL(q, b)), -0.5 * float(fb(q, b)), q.copy()

    x = np.concatenate([fit.theta, beta_min * 5.0 * u])
    rows, upper = [], None
    for b in np.geomspace(beta_min, beta_max, n_steps):
        q = minimise(float(b), x)
        if np.max(np.abs(q - x)) > jump_tol:
            upper = float(b)
            break
        x = q
        rows.append(row(float(b), x))
    else:
        raise ValueError(f"no fold below beta_max={beta_max}; allowed: a larger beta_max")
    # The jump lies between the last grid point kept and ``upper``: close in on the fold by bisection
    # (the minimiser moves as sqrt(beta_fold - beta) there, so each kept step stays below jump_tol).
    lower = rows[-1][0] if rows else beta_min
    while rows and (upper - lower) > fold_rtol * lower:
        b = 0.5 * (lower + upper)
        q = minimise(b, x)
        if np.max(np.abs(q - x)) > jump_tol:
            upper = b
        else:
            lower, x = b, q
            rows.append(row(b, x))
    if len(rows) < 10:
        raise ValueError(f"the branch ends after {len(rows)} steps; allowed: a smaller beta_min")
    b = np.array([r[0] for r in rows])
    slope = np.array([r[2] for r in rows])
    states = np.array([r[3] for r in rows])
    w = states[:, merged]
    c = float(slope[0] / b[0])
    if np.any(slope <= 0):
        raise ValueError("the drift along the branch is not outward (L*' >= 0): no escape branch here")
    fold_eig = float(np.linalg.eigvalsh(np.asarray(fh(states[-1], b[-1]), dtype=np.float64))[0])
    return ScaledBranch(spec, tuple(pair), b, 2 * b / w, np.array([r[1] for r in rows]), slope, states, c,
                        float(b[-1]), float(2 * b[-1] / w[-1]), float(w[0]), fold_eig)
