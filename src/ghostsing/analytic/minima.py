r"""Minima of the population loss: the best (K-1)-unit fit that the singular manifolds embed, the global
minimum of a model, and trust-region Newton minimisation on the generated loss, gradient and Hessian.

:func:`best_fit` is the best plain (K-1)-unit fit (exact where :func:`exact_best_fit` finds it in closed
form, else a multi-start search) that every chart of :mod:`ghostsing.analytic.manifold_coords` is
anchored at; :func:`global_minimum` the lowest minimum found for a model with its skips;
:func:`local_minimum` and :func:`loss_functions` the minimiser and the loss, gradient and Hessian they
use.  The proof that the embedded fit is critical is :mod:`ghostsing.analytic.manifold_fit`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import sympy as sp
from scipy import optimize

from ghostsing.analytic.loss import derive, exact
from ghostsing.models import ModelSpec

__all__ = ["BestFit", "best_fit", "exact_best_fit", "global_minimum", "local_minimum", "loss_functions"]


@dataclass(frozen=True, eq=False)
class BestFit:
    """The best fit of a plain student ``spec`` (usually the (K-1)-unit parent) to its teacher.

    theta : the minimiser (flat order of ``spec``; odd activations: each unit signed so that w >= 0).
    loss : ``L(theta)``; grad_norm : ``|grad L(theta)|``; hessian_eigenvalues : ascending.
    exact : the minimiser as exact SymPy numbers when known in closed form (realisable teacher,
    linear units), else None.  method : how it was found.
    """

    spec: ModelSpec
    theta: np.ndarray
    loss: float
    grad_norm: float
    hessian_eigenvalues: np.ndarray
    exact: tuple[sp.Expr, ...] | None = None
    method: str = "numeric"
    local_minima: tuple[tuple[float, ...], ...] = field(default=())


def _canonical(spec: ModelSpec, theta: np.ndarray) -> np.ndarray:
    if spec.activation == "relu":
        return theta
    w, J = spec.split(theta.copy())
    s = np.where(w < 0, -1.0, 1.0)
    return spec.pack(w * s, J * s[:, None])


def exact_best_fit(spec: ModelSpec) -> tuple[sp.Expr, ...] | None:
    """A closed-form minimiser of the plain loss of ``spec`` where one is known, else None.

    * realisable: ``K == M`` (any activation): the teacher itself, ``theta = (v, B)``, loss sigma^2/2;
    * ``linear`` units: the loss is ``1/2 |beta - beta_T|^2 + sigma^2/2`` with ``beta = sum_i w_i J_i`` and
      ``beta_T = sum_m v_m B_m``; for K = 1 the fit is ``(1, beta_T)``, for K = 2 it is ``w = (1, 1)``,
      ``J_{1,2} = beta_T/2 +- d`` with ``d`` a fixed exact vector orthogonal to ``beta_T``.
    """
    if spec.alpha != 0:
        return None
    v = [exact(x) for x in spec.v]
    B = [[exact(x) for x in row] for row in spec.B]
    if spec.K == spec.M:
        return (*v, *[b for row in B for b in row])
    if spec.activation == "linear" and spec.K in (1, 2):
        beta = sp.Matrix([sum(v[m] * B[m][n] for m in range(spec.M)) for n in range(spec.N)])
        if spec.K == 1:
            return (sp.Integer(1), *beta)
        if spec.N < 2:
            return None
        k = min(range(spec.N), key=lambda n: (abs(beta[n]), n))
        e = sp.Matrix([1 if n == k else 0 for n in range(spec.N)])
        bb = beta.dot(beta)
        d = e - (beta * beta[k] / bb if bb != 0 else sp.zeros(spec.N, 1))
        return (sp.Integer(1), sp.Integer(1), *(beta / 2 + d), *(beta / 2 - d))
    return None


def best_fit(spec: ModelSpec, seed: int | np.random.Generator = 0, n_starts: int = 12,
             gtol: float = 1e-12) -> BestFit:
    """The global minimiser of the plain loss of ``spec`` (``alpha`` must be 0).

    Exact where :func:`exact_best_fit` knows it; otherwise ``n_starts`` random starts
    (``w ~ N(0, |v|^2)``, ``J ~ N(0, (1 + max|B|)^2)``, plus the teacher units as starts) are minimised
    with ``scipy.optimize.minimize(method="trust-exact")`` on the generated loss, gradient and Hessian
    of :func:`ghostsing.analytic.derive`, then polished by Newton steps until ``|grad L| < gtol`` (or
    as small as float64 allows).  The lowest loss wins; distinct local minima are listed too.
    """
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"spec must be a ModelSpec, got {type(spec).__name__}")
    if spec.alpha != 0:
        raise ValueError(f"best_fit needs the plain model, got alpha={spec.alpha}; allowed: alpha = 0 "
                         "(global_minimum takes any alpha)")
    return _multistart_minimum(spec, seed, n_starts, gtol, plain=True)


def global_minimum(spec: ModelSpec, seed: int | np.random.Generator = 0, n_starts: int = 24,
                   gtol: float = 1e-12, extra_starts: Sequence[np.ndarray] = ()) -> BestFit:
    """The lowest minimum of the loss of ``spec`` at its own skip strength (any ``alpha >= 0``) found
    from ``n_starts`` random starts and ``extra_starts`` (the same search as :func:`best_fit`, without
    the sign canonicalisation, which the skips break).  A search, not a proof: the lowest of the
    minima found."""
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"spec must be a ModelSpec, got {type(spec).__name__}")
    return _multistart_minimum(spec, seed, n_starts, gtol, plain=spec.alpha == 0,
                               extra_starts=extra_starts)


def loss_functions(model) -> tuple:
    """``(L, grad L, Hess L)`` of a compiled model as functions of a flat ``theta`` (contiguous copies):
    ``grad L = -flow``, ``Hess L = -jacobian`` (``model = derive(spec).compile()``)."""
    def fun(x):
        return model.loss(np.ascontiguousarray(x))

    def jac(x):
        return -model.flow(np.ascontiguousarray(x))

    def hess(x):
        return -model.jacobian(np.ascontiguousarray(x))

    return fun, jac, hess


def local_minimum(model, x0: np.ndarray, gtol: float = 1e-12, maxiter: int = 2000) -> np.ndarray:
    """Minimise ``model.loss`` from ``x0``: ``scipy.optimize.minimize(method="trust-exact")`` with the
    generated gradient ``-flow`` and Hessian ``-jacobian``, then Newton steps (least-squares solves) while
    they reduce ``|grad L|`` and it is above ``gtol``.  ``model`` is ``derive(spec).compile()``."""
    fun, jac, hess = loss_functions(model)
    res = optimize.minimize(fun, np.asarray(x0, dtype=np.float64), jac=jac, hess=hess, method="trust-exact",
                            options={"gtol": gtol, "maxiter": maxiter})
    x = res.x
    if not np.all(np.isfinite(x)):
        return x
    for _ in range(30):
        g = jac(x)
        if np.linalg.norm(g) < gtol:
            break
        xn = x + np.linalg.lstsq(hess(x), -g, rcond=1e-15)[0]
        if not np.isfinite(fun(xn)) or np.linalg.norm(jac(xn)) >= np.linalg.norm(g):
            break
        x = xn
    return x


def _multistart_minimum(spec: ModelSpec, seed, n_starts: int, gtol: float, plain: bool,
                        extra_starts: Sequence[np.ndarray] = ()) -> BestFit:
    model = derive(spec).compile()
    ex = exact_best_fit(spec) if plain else None

    def canonical(theta):
        return _canonical(spec, theta) if plain else theta

    fun, jac, hess = loss_functions(model)

    def summary(theta, method, exact_val=None, minima=()):
        theta = canonical(np.asarray(theta, dtype=np.float64))
        ev = np.linalg.eigvalsh(hess(theta))
        return BestFit(spec, theta, float(fun(theta)), float(np.linalg.norm(jac(theta))), ev, exact_val,
                       method, minima)

    if ex is not None:
        return summary(np.array([float(e) for e in ex]), "exact", ex)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    K, N = spec.K, spec.N
    vs, bs = float(np.linalg.norm(spec.v)) or 1.0, 1.0 + float(np.max(np.abs(spec.B)))
    starts = [np.concatenate([rng.normal(0, vs, K), rng.normal(0, bs, K * N)]) for _ in range(n_starts)]
    for m in range(min(K, spec.M)):  # teacher-unit starts
        w0 = np.full(K, 0.1)
        w0[0] = spec.v[m]
        J0 = rng.normal(0, 0.5, (K, N))
        J0[0] = spec.B[m]
        starts.append(spec.pack(w0, J0))
    starts.extend(np.asarray(s, dtype=np.float64) for s in extra_starts)
    results = []
    for x0 in starts:
        try:
            x = local_minimum(model, x0, gtol)
        except (ValueError, np.linalg.LinAlgError):
            continue
        if np.all(np.isfinite(x)):
            results.append((fun(x), canonical(x)))
    if not results:
        raise RuntimeError(f"no start converged for {spec!r}")
    results.sort(key=lambda r: r[0])
    minima: list[tuple[float, ...]] = []
    for _val, x in results:
        if np.linalg.norm(jac(x)) < 1e-8 and np.all(np.linalg.eigvalsh(hess(x)) > -1e-9):
            if all(np.max(np.abs(x - np.array(m))) > 1e-6 for m in minima):
                minima.append(tuple(float(t) for t in x))
    return summary(results[0][1], "numeric (trust-exact + Newton)", None, tuple(minima))
