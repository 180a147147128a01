r"""Spectra, traces and diagonals of curvature operators: exact, Lanczos, Hutchinson / Hutch++ / XTrace and
stochastic Lanczos quadrature (SLQ).

One idea: spectral and trace estimation on a curvature operator; every algorithm here (exact, Lanczos,
Hutchinson / Hutch++ / XTrace, SLQ, degeneracy fractions) uses the operator only through its products ``A
V``.

Every algorithm takes a :class:`~ghostsing.deepcheck.operators.CurvatureOperator` ``A`` (symmetric, ``P x
P``): the Hessian, the generalised Gauss-Newton matrix or the empirical Fisher of a
:class:`~ghostsing.deepcheck.operators.FlatLoss` (re-exported here), an explicit matrix or a user function.
Eigenvalues ``lambda_1 >= ... >= lambda_P``, eigenvectors ``u_i``.

* exact: ``A`` assembled from ``A e_i`` in blocks and diagonalised in float64; for ``P`` up to ~2e4.
* Lanczos: ``m`` steps of ``q_{j+1} beta_j = A q_j - alpha_j q_j - beta_{j-1} q_{j-1}`` with full
  re-orthogonalisation (two Gram-Schmidt passes), restarted from a random vector orthogonal to the Krylov
  space on breakdown.  The Ritz pairs ``(theta_i, y_i = Q s_i)`` of ``T_m`` have residuals
  ``||A y_i - theta_i y_i|| = beta_m |e_m^T s_i|`` (no extra product), and ``|lambda - theta_i| <= ||r_i||``
  for some eigenvalue ``lambda``: every result reports them, and :func:`extreme_eigenvalues` warns
  (:class:`ConvergenceWarning`) when the wanted pairs have not reached ``tol * max_i |theta_i|``.
* Hutchinson: ``tr A = E[z^T A z]`` for Rademacher ``z``, ``Var z^T A z = 2 sum_{i != j} A_ij^2``; standard
  error ``s / sqrt(n)``.  Diagonal: ``diag A = E[z * A z]`` (elementwise).
* Hutch++ (Meyer, Musco, Musco & Woodruff 2021): ``tr A = tr(Q^T A Q) + tr((I - QQ^T) A (I - QQ^T))`` with
  ``Q`` an orthonormal basis of ``A S``; the remainder by Hutchinson.
* XTrace (Epperly, Tropp & Webber 2024, with their improved normalisation): ``s = n/2`` test vectors
  ``omega_i`` uniform on the sphere of radius ``sqrt(P)``, ``Y = A Omega``; for each ``i`` the basis ``Q_(i)``
  of ``A Omega`` without column ``i``, ``u_i = (I - Q_(i) Q_(i)^T) omega_i`` and the estimate
  ``t_i = tr(Q_(i)^T A Q_(i)) + (P - s + 1) u_i^T A u_i / ||u_i||^2`` (``u_i / ||u_i||`` is uniform on the
  unit sphere of the complement of ``Q_(i)``, whose dimension is ``P - s + 1``); the estimate is
  ``mean_i t_i`` (each ``t_i`` is a Hutch++ estimate, so the mean is unbiased) and, because the ``t_i`` are
  exchangeable, ``std(t_i) / sqrt(s)`` is an error estimate.  All ``Q_(i)`` come from one QR factorisation
  ``Y = QR``: ``Q_(i) Q_(i)^T = QQ^T - q_i q_i^T`` with ``q_i = Q r_i / ||r_i||``, ``r_i`` the ``i``-th
  column of ``R^{-T}``; cost ``n`` products in two blocks.
* :func:`trace` ``method='auto'``: XTrace with Rademacher test vectors and without the normalisation (each
  ``t_i`` is then a Hutch++ estimate with ``Q_(i)`` independent of ``omega_i``, unbiased), and the Hutchinson
  estimate from the same products
  (``omega_i^T A omega_i``); the one with the smaller estimated standard error is returned (variance-aware;
  free).
* SLQ: the spectral density ``phi(t) = (1/P) sum_i delta(t - lambda_i)``; for unit probes ``v`` with
  ``E[v v^T] = I / P`` the Gauss quadrature of ``v^T delta(t - A) v`` from ``m`` Lanczos steps: nodes
  ``theta_k`` and weights ``tau_k = (e_1^T s_k)^2``, exact for ``v^T A^p v`` with ``p <= 2m - 1``.  Deflated
  SLQ (default): the first probe's Lanczos run gives the converged Ritz pairs ``(theta_i, y_i)``, ``i <= k``
  (residual below ``deflate_tol * max |theta|``); their nodes enter with weight ``1/P`` each and the other
  probes run on ``B = (I - YY^T) A (I - YY^T)`` from Gaussian starts projected off ``Y`` (uniform on the
  sphere of the complement, ``E[v v^T] = (I - YY^T)/(P - k)``), weighted ``(P - k)/P``.  Since
  ``tr A = sum_i y_i^T A y_i + tr B`` for any orthonormal ``Y``, the first moment stays unbiased and its
  variance is that of ``B``, whose Frobenius norm no longer holds the top eigenvalues (on deep-net Hessians
  most of ``||A||_F``).  Per-probe moments give the standard error of every moment.
* degeneracy: ``f_deg(tau) = #{i : |lambda_i| < tau lambda_max} / P`` and ``f_neg(tau) = #{i : lambda_i <
  -tau lambda_max} / P``; exact from a spectrum or estimated from the SLQ measure.  A Gauss quadrature with
  ``m`` nodes cannot resolve how a cluster narrower than its node spacing splits around 0, so the SLQ negative
  fraction takes a relative threshold (default ``1e-2``), never ``0``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from ghostsing.deepcheck.operators import (
    CurvatureOperator,
    DenseOperator,
    EmpiricalFisherOperator,
    FlatLoss,
    FunctionOperator,
    GGNOperator,
    HessianOperator,
    _make_hvp,
    as_operator,
    flat_loss,
)

__all__ = [
    "FlatLoss",
    "flat_loss",
    "make_hvp",
    "CurvatureOperator",
    "HessianOperator",
    "GGNOperator",
    "EmpiricalFisherOperator",
    "DenseOperator",
    "FunctionOperator",
    "as_operator",
    "ConvergenceWarning",
    "exact_hessian",
    "exact_spectrum",
    "LanczosResult",
    "lanczos",
    "EigenResult",
    "extreme_eigenvalues",
    "TraceEstimate",
    "hutchinson_trace",
    "hutchpp_trace",
    "xtrace",
    "trace",
    "DiagonalEstimate",
    "diagonal_estimate",
    "SLQResult",
    "slq",
    "degeneracy_curve",
    "negative_fraction",
    "DEFAULT_TAUS",
    "TRACE_METHODS",
]

DEFAULT_TAUS: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1)
MAX_EXACT_PARAMS = 20_000
TRACE_METHODS: tuple[str, ...] = ("auto", "hutchinson", "hutchpp", "xtrace")


class ConvergenceWarning(UserWarning):
    """An iterative method stopped before its convergence criterion was met."""


def make_hvp(fn: Callable[[Tensor], Tensor], theta: Tensor, *, method: str = "double_backward"
             ) -> Callable[[Tensor], Tensor]:
    """``hvp(V)`` computing ``H V`` of a bare function ``fn(theta)`` for ``V (P,)`` or ``(b, P)`` (rows).

    The building block of :class:`HessianOperator`; wrap it with :class:`FunctionOperator` to use it with the
    algorithms here.  ``method``: ``'jvp'`` (``torch.func.jvp`` of ``torch.func.grad``, ``vmap``-ed over rows)
    or ``'double_backward'`` (one backward pass per block through a retained gradient graph).
    """
    if method not in ("jvp", "double_backward"):
        raise ValueError(f"method must be 'jvp' or 'double_backward', got {method!r}")
    return _make_hvp(fn, theta, method)


def _check_op(op) -> CurvatureOperator:
    if not isinstance(op, CurvatureOperator):
        raise TypeError(f"expected a CurvatureOperator (HessianOperator, GGNOperator, DenseOperator, "
                        f"FunctionOperator, ...), got {type(op).__name__}; "
                        "wrap a function with as_operator(f, dim)")
    return op


def exact_hessian(op: CurvatureOperator, *, chunk: int | None = None,
                  max_params: int = MAX_EXACT_PARAMS) -> Tensor:
    """Dense ``A`` from ``A e_i`` in blocks of ``chunk`` (default: the operator's block), symmetrised.

    Computed in the operator's dtype (build it from a float64 :class:`FlatLoss` for an exact spectrum).
    """
    _check_op(op)
    if op.dim > max_params:
        raise ValueError(f"exact Hessian needs P <= max_params={max_params}, got P={op.dim}; use lanczos/slq")
    if chunk is not None and chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    return op.to_dense(chunk)


def exact_spectrum(op: CurvatureOperator, **kw) -> np.ndarray:
    """Eigenvalues of the dense operator (``numpy.linalg.eigvalsh`` in float64, ascending)."""
    return np.linalg.eigvalsh(exact_hessian(op, **kw).double().cpu().numpy())


@dataclass(frozen=True)
class LanczosResult:
    """``b`` Lanczos runs of ``m`` steps: tridiagonals ``alpha (b, m)``, ``beta (b, m-1)``, and ``beta_last
    (b,)``, the norm of the next (unused) Lanczos vector, which gives the Ritz residuals.

    ``basis`` (``(b, m, P)``) holds the Lanczos vectors when requested.
    """

    alpha: np.ndarray
    beta: np.ndarray
    basis: Tensor | None
    beta_last: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def _eig(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return _eig_tridiag(self.alpha[i], self.beta[i])

    def ritz(self) -> tuple[np.ndarray, np.ndarray]:
        """Ritz values ``theta (b, m)`` ascending and Gauss weights ``tau = (e_1^T s_k)^2 (b, m)``."""
        b, m = self.alpha.shape
        vals, w = np.empty((b, m)), np.empty((b, m))
        for i in range(b):
            ev, s = self._eig(i)
            vals[i], w[i] = ev, s[0] ** 2
        return vals, w

    def ritz_residuals(self) -> np.ndarray:
        """``||A y_k - theta_k y_k|| = beta_m |e_m^T s_k|`` for each run and Ritz value (ascending), ``(b,
        m)``."""
        b, m = self.alpha.shape
        out = np.empty((b, m))
        for i in range(b):
            _, s = self._eig(i)
            out[i] = self.beta_last[i] * np.abs(s[-1])
        return out


def _eig_tridiag(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending) and eigenvectors of the symmetric tridiagonal ``T = tridiag(beta, alpha,
    beta)`` (LAPACK's tridiagonal solver; ~10x faster than a dense ``eigh`` of ``T`` at ``m = 40``)."""
    from scipy.linalg import eigh_tridiagonal

    if len(alpha) == 1:
        return np.asarray(alpha, dtype=np.float64).copy(), np.ones((1, 1))
    return eigh_tridiagonal(np.asarray(alpha, dtype=np.float64), np.asarray(beta, dtype=np.float64))


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, (int, np.integer)):
        return np.random.default_rng(seed)
    raise TypeError(f"seed must be an int, None or numpy Generator, got {type(seed).__name__}")


def _rademacher(rng: np.random.Generator, shape, dtype, device) -> Tensor:
    z = rng.integers(0, 2, size=shape).astype(np.float64) * 2.0 - 1.0
    return torch.as_tensor(z, dtype=dtype, device=device)


def _project_out(w: Tensor, basis: Tensor | None) -> Tensor:
    """``w - (w U^T) U`` for orthonormal rows ``U``, row-wise for ``w (b, P)``."""
    if basis is None or basis.shape[0] == 0:
        return w
    return w - (w @ basis.T) @ basis


def lanczos(
    op: CurvatureOperator,
    v0: Tensor,
    m: int,
    *,
    keep_basis: bool = False,
    seed: int | np.random.Generator | None = 0,
    breakdown_tol: float = 1e-10,
    ritz_tol: float | None = None,
    ritz_k: int = 1,
    which: str = "top",
    deflate: Tensor | None = None,
) -> LanczosResult:
    """``b`` Lanczos iterations of ``op`` side by side from the rows of ``v0`` (``(b, P)``), ``m`` steps each.

    Full re-orthogonalisation (two classical Gram-Schmidt passes per step).  On breakdown
    (``beta_j < breakdown_tol * max(1, |alpha|)``) the run continues from a random unit vector orthogonal to
    its Krylov space with ``beta_j = 0``: ``T`` splits into blocks, the Gauss weights of the new blocks are
    zero (SLQ stays correct) and Ritz values keep converging to further (also repeated) eigenvalues.
    ``deflate`` (orthonormal rows ``U``): every vector is also kept orthogonal to ``U``, i.e. the iteration
    runs on ``(I - U^T U) A (I - U^T U)`` restricted to the complement of ``U``.

    Early stop (one run, ``ritz_tol`` given): after step ``j >= ritz_k`` the run stops once the ``ritz_k``
    wanted Ritz residuals (``which`` = ``'top'`` or ``'bottom'``) are below ``ritz_tol * max_i |theta_i|``.
    """
    _check_op(op)
    if v0.ndim == 1:
        v0 = v0[None]
    b, p = v0.shape
    if p != op.dim:
        raise ValueError(f"start vectors must have P={op.dim} columns, got shape {tuple(v0.shape)}")
    kdef = 0 if deflate is None else deflate.shape[0]
    if not 1 <= m <= p - kdef:
        raise ValueError(f"m must satisfy 1 <= m <= P - deflated = {p - kdef}, got {m}")
    if which not in ("top", "bottom"):
        raise ValueError(f"which must be 'top' or 'bottom', got {which!r}")
    rng = _rng(seed)
    dt, dev = op.dtype, op.device
    v0 = _project_out(v0.to(dtype=dt, device=dev), deflate)
    q = torch.zeros((b, m, p), dtype=dt, device=dev)
    alpha = np.zeros((b, m))
    beta = np.zeros((b, max(m - 1, 0)))
    v = v0 / v0.norm(dim=1, keepdim=True)

    def orth(w: Tensor, qj: Tensor) -> Tensor:
        for _ in range(2):
            w = w - torch.einsum("bk,bkp->bp", torch.einsum("bkp,bp->bk", qj, w), qj)
            w = _project_out(w, deflate)
        return w

    for j in range(m):
        q[:, j] = v
        w = op.apply_rows(v).reshape(b, p)
        a = (w * v).sum(1)
        alpha[:, j] = a.double().cpu().numpy()
        w = orth(w, q[:, : j + 1])
        nb = w.norm(dim=1)
        if j == m - 1:
            return LanczosResult(alpha=alpha, beta=beta, basis=q if keep_basis else None,
                                 beta_last=nb.double().cpu().numpy())
        qj = q[:, : j + 1]
        scale = np.maximum(1.0, np.abs(alpha[:, : j + 1]).max(1))
        bad = nb.double().cpu().numpy() < breakdown_tol * scale
        if bad.any():
            for i in np.flatnonzero(bad):
                r = torch.as_tensor(rng.standard_normal(p), dtype=dt, device=dev)
                r = _project_out(r[None], deflate)[0]
                for _ in range(2):
                    r = _project_out((r - (qj[i] @ r) @ qj[i])[None], deflate)[0]
                w[i] = r / r.norm()
                nb[i] = 0.0
        beta[:, j] = nb.double().cpu().numpy()
        if ritz_tol is not None and b == 1 and j + 1 >= ritz_k and not bad.any():
            ev, sv = _eig_tridiag(alpha[0, : j + 1], beta[0, :j])
            idx = np.arange(j + 1)[::-1][:ritz_k] if which == "top" else np.arange(ritz_k)
            if np.all(beta[0, j] * np.abs(sv[-1, idx]) <= ritz_tol * np.abs(ev).max()):
                return LanczosResult(alpha=alpha[:, : j + 1], beta=beta[:, :j],
                                     basis=q[:, : j + 1] if keep_basis else None, beta_last=beta[:, j].copy())
        denom = torch.where(nb > 0, nb, torch.ones_like(nb))
        v = w / denom[:, None]
        if bad.any():
            sel = torch.as_tensor(bad, device=v.device)
            v[sel] = w[sel]
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True)
class EigenResult:
    """Extreme eigenvalues ``values`` (``k``), Ritz vectors ``vectors`` (``(k, P)`` or ``None``), their
    residuals ``||A y - theta y||`` (an upper bound on the distance of each value to the spectrum), whether
    all are below ``tol * max |theta|`` (``converged``) and the products used.  Unpacks as ``values,
    vectors``."""

    values: np.ndarray
    vectors: Tensor | None
    residuals: np.ndarray
    converged: bool
    n_matvecs: int
    tol: float | None

    def __iter__(self):
        return iter((self.values, self.vectors))


def extreme_eigenvalues(
    op: CurvatureOperator,
    k: int = 5,
    *,
    which: str = "top",
    m: int | None = None,
    seed: int | np.random.Generator | None = 0,
    return_vectors: bool = False,
    tol: float | None = 1e-6,
) -> EigenResult:
    """The ``k`` largest (``which='top'``, descending) or smallest (``'bottom'``, ascending) eigenvalues of
    ``op``.

    One Lanczos run of at most ``m`` steps (default ``min(P, max(10 k, 150))``) from a Gaussian start, stopped
    once the ``k`` wanted Ritz residuals are below ``tol * max |theta|`` (``None``: all ``m`` steps).  Warns
    with :class:`ConvergenceWarning` when they are not (the values are then off by up to their residuals).
    """
    _check_op(op)
    dim = op.dim
    if which not in ("top", "bottom"):
        raise ValueError(f"which must be 'top' or 'bottom', got {which!r}")
    if not 1 <= k <= dim:
        raise ValueError(f"k must satisfy 1 <= k <= P={dim}, got {k}")
    m = min(dim, max(10 * k, 150)) if m is None else m
    if m < k:
        raise ValueError(f"m={m} must be >= k={k}")
    if tol is not None and not tol > 0:
        raise ValueError(f"tol must be > 0 or None, got {tol}")
    rng = _rng(seed)
    v0 = torch.as_tensor(rng.standard_normal(dim), dtype=op.dtype, device=op.device)
    res = lanczos(op, v0, m, keep_basis=return_vectors, seed=rng, ritz_tol=tol, ritz_k=k, which=which)
    ev, s = res._eig(0)
    idx = np.argsort(ev)[::-1][:k] if which == "top" else np.argsort(ev)[:k]
    resid = res.beta_last[0] * np.abs(s[-1, idx])
    steps = res.alpha.shape[1]
    converged = tol is None or bool(np.all(resid <= tol * np.abs(ev).max())) or steps == dim
    if not converged:
        warnings.warn(f"extreme_eigenvalues({which!r}, k={k}) stopped after m={steps} Lanczos steps with "
                      f"Ritz residuals up to {resid.max():.3g} "
                      f"(> tol * max|theta| = {tol * np.abs(ev).max():.3g}); "
                      "the values may be off by that much: raise m", ConvergenceWarning, stacklevel=2)
    vecs = None
    if return_vectors:
        s_t = torch.as_tensor(s[:, idx], dtype=op.dtype, device=op.device)
        vecs = (res.basis[0].T @ s_t).T
    return EigenResult(values=ev[idx], vectors=vecs, residuals=resid, converged=converged, n_matvecs=steps,
                       tol=tol)


@dataclass(frozen=True)
class TraceEstimate:
    """Estimate ``mean`` of ``tr A`` with standard error ``stderr``; ``samples`` are the per-probe
    (Hutchinson, Hutch++ remainder) or exchangeable (XTrace) estimates; ``method`` and ``n_matvecs`` say how
    it was made."""

    mean: float
    stderr: float
    samples: np.ndarray
    method: str = "hutchinson"
    n_matvecs: int = 0
    alternatives: dict = field(default_factory=dict)


def _check_batch(batch: int | None) -> None:
    if batch is not None and (not isinstance(batch, (int, np.integer)) or batch < 1):
        raise ValueError(f"batch must be an int >= 1 or None, got {batch!r}")


def _apply(op: CurvatureOperator, V: Tensor, batch: int | None) -> Tensor:
    """``op`` on the rows of ``V`` in sub-blocks of ``batch`` rows (``None``: the operator's own block)."""
    if batch is None:
        return op.apply_rows(V)
    return torch.cat([op.apply_rows(V[i : i + batch]).reshape(-1, op.dim)
                      for i in range(0, V.shape[0], batch)])


def hutchinson_trace(
    op: CurvatureOperator,
    n_probes: int = 100,
    *,
    batch: int | None = None,
    seed: int | np.random.Generator | None = 0,
) -> TraceEstimate:
    """``tr A ~= (1/n) sum_l z_l^T A z_l`` with Rademacher ``z_l``; ``Var z^T A z = 2 sum_{i != j} A_ij^2``.

    Probes go through ``op`` in blocks of ``batch`` rows (default: the operator's block size).  Each probe is
    drawn on its own from ``seed``, so the samples do not depend on the block size.
    """
    _check_op(op)
    if n_probes < 2:
        raise ValueError(f"n_probes must be >= 2, got {n_probes}")
    _check_batch(batch)
    rng = _rng(seed)
    z = torch.cat([_rademacher(rng, (1, op.dim), op.dtype, op.device) for _ in range(n_probes)])
    s = (z * _apply(op, z, batch)).sum(1).double().cpu().numpy()
    return TraceEstimate(mean=float(s.mean()), stderr=float(s.std(ddof=1) / math.sqrt(len(s))), samples=s,
                         method="hutchinson", n_matvecs=n_probes)


def hutchpp_trace(
    op: CurvatureOperator,
    n_matvecs: int = 99,
    *,
    batch: int | None = None,
    seed: int | np.random.Generator | None = 0,
) -> TraceEstimate:
    """Hutch++ with ``k = n_matvecs // 3``: ``Q`` = orthonormal basis of ``A S`` (``S`` Rademacher, ``P x
    k``), ``tr(Q^T A Q)`` exactly (``k`` products) plus Hutchinson with ``k`` Rademacher probes projected off
    ``Q``.

    ``stderr`` is that of the Hutchinson part given ``Q``; ``samples`` its per-probe values shifted by the
    exact part.  Blocks go through ``op`` in sub-blocks of ``batch`` rows.
    """
    _check_op(op)
    k = n_matvecs // 3
    if k < 2:
        raise ValueError(f"n_matvecs must be >= 6, got {n_matvecs}")
    _check_batch(batch)
    rng = _rng(seed)
    s = _rademacher(rng, (k, op.dim), op.dtype, op.device)
    q, _ = torch.linalg.qr(_apply(op, s, batch).T)
    q = q.T.contiguous()
    t_top = float((q * _apply(op, q, batch)).sum())
    g = _rademacher(rng, (k, op.dim), op.dtype, op.device)
    g = g - (g @ q.T) @ q
    vals = (g * _apply(op, g, batch)).sum(1).double().cpu().numpy()
    return TraceEstimate(mean=t_top + float(vals.mean()), stderr=float(vals.std(ddof=1) / math.sqrt(k)),
                         samples=t_top + vals, method="hutchpp", n_matvecs=3 * k)


def _xtrace_core(op: CurvatureOperator, s: int, rng: np.random.Generator, batch: int | None,
                 improved: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Exchangeable XTrace estimates ``t_i`` (``s`` of them, ``2 s`` products) and the Hutchinson samples
    ``omega_i^T A omega_i`` of the same test vectors (module docstring for the formulas)."""
    if improved:  # uniform on the sphere of radius sqrt(P)
        g = torch.as_tensor(rng.standard_normal((s, op.dim)))
        om = (g * (math.sqrt(op.dim) / g.norm(dim=1, keepdim=True))).to(dtype=op.dtype, device=op.device)
    else:  # Rademacher
        om = _rademacher(rng, (s, op.dim), op.dtype, op.device)
    y = _apply(op, om, batch)
    hutch = (om * y).sum(1).double().cpu().numpy()
    Y = y.T.double()  # (P, s): the small algebra in float64
    Om = om.T.double()
    Q, R = torch.linalg.qr(Y)
    dR = torch.diagonal(R).abs()
    Z = _apply(op, Q.T.to(op.dtype).contiguous(), batch).T.double()  # A Q
    H = Q.T @ Z
    H = 0.5 * (H + H.T)
    # rank(A) < s: range(A) lies inside range(Q), so tr A = tr(Q^T A Q) exactly
    if float(dR.min()) <= 1e-12 * float(dR.max()):
        t = float(torch.trace(H))
        return np.full(s, t), hutch
    W = Q.T @ Om  # columns W_i = Q^T omega_i
    S = torch.linalg.inv(R).T
    S = S / S.norm(dim=0, keepdim=True)  # columns s_i: q_i = Q s_i spans range(Y) minus range(Y without y_i)

    def cd(a: Tensor, b: Tensor) -> Tensor:  # column-wise inner products
        return (a * b).sum(0)

    # u_i = (I - Q_(i) Q_(i)^T) omega_i = omega_i - Q (W_i - c_i s_i), c_i = s_i^T W_i, and Q^T A omega_i =
    # R_i: u^T A u = W_i^T R_i - 2 R_i^T (W_i - c_i s_i) + (W_i - c_i s_i)^T H (W_i - c_i s_i)
    c = cd(S, W)
    HS = H @ S
    dSHS = cd(S, HS)
    rest = -cd(W, R) + 2 * c * cd(R, S) + cd(W, H @ W) - 2 * c * cd(HS, W) + c**2 * dSHS
    # ||u_i||^2 = ||omega_i||^2 - ||Q_(i)^T omega_i||^2 = P - ||W_i||^2 + c_i^2: the remainder is taken along
    # u_i / ||u_i|| (uniform on the sphere of the (P - s + 1)-dimensional complement)
    if not improved:
        return (torch.trace(H) - dSHS + rest).cpu().numpy(), hutch
    p = Om.shape[0]
    unorm2 = (Om * Om).sum(0) - cd(W, W) + c**2
    ests = torch.trace(H) - dSHS + rest * (p - s + 1) / unorm2
    return ests.cpu().numpy(), hutch


def xtrace(
    op: CurvatureOperator,
    n_matvecs: int = 100,
    *,
    batch: int | None = None,
    seed: int | np.random.Generator | None = 0,
) -> TraceEstimate:
    """XTrace (Epperly, Tropp & Webber 2024) with ``s = n_matvecs // 2`` test vectors uniform on the sphere of
    radius ``sqrt(P)``.

    ``mean`` is the average of the ``s`` leave-one-out Hutch++ estimates ``t_i`` (module docstring) and
    ``stderr = std(t_i) / sqrt(s)`` (exchangeability).  For spectra with a few dominant eigenvalues the error
    falls like ``1/n`` rather than Hutchinson's ``1/sqrt(n)``, and uses every product twice (in the low-rank
    part and in the remainder), so it needs fewer products than Hutch++ for the same error.
    """
    _check_op(op)
    s = n_matvecs // 2
    if s < 2:
        raise ValueError(f"n_matvecs must be >= 4, got {n_matvecs}")
    _check_batch(batch)
    ests, _ = _xtrace_core(op, s, _rng(seed), batch)
    return TraceEstimate(mean=float(ests.mean()), stderr=float(ests.std(ddof=1) / math.sqrt(s)), samples=ests,
                         method="xtrace", n_matvecs=2 * s)


def trace(
    op: CurvatureOperator,
    n_matvecs: int = 100,
    *,
    method: str = "auto",
    batch: int | None = None,
    seed: int | np.random.Generator | None = 0,
) -> TraceEstimate:
    """``tr A`` with ``n_matvecs`` products: ``method`` in :data:`TRACE_METHODS`.

    ``'auto'``: XTrace with Rademacher test vectors (the plain leave-one-out form, unbiased for them), plus
    the Hutchinson estimate from its ``s`` test vectors (no further products); returns whichever has the
    smaller estimated standard error (``alternatives`` holds both), so a flat spectrum, where the low-rank
    part buys nothing, is not handed the noisier estimator.
    """
    if method not in TRACE_METHODS:
        raise ValueError(f"method must be one of {TRACE_METHODS}, got {method!r}")
    if method == "hutchinson":
        return hutchinson_trace(op, n_matvecs, batch=batch, seed=seed)
    if method == "hutchpp":
        return hutchpp_trace(op, n_matvecs, batch=batch, seed=seed)
    if method == "xtrace":
        return xtrace(op, n_matvecs, batch=batch, seed=seed)
    _check_op(op)
    s = n_matvecs // 2
    if s < 2:
        raise ValueError(f"n_matvecs must be >= 4, got {n_matvecs}")
    _check_batch(batch)
    ests, hutch = _xtrace_core(op, s, _rng(seed), batch, improved=False)
    xt = (float(ests.mean()), float(ests.std(ddof=1) / math.sqrt(s)))
    hu = (float(hutch.mean()), float(hutch.std(ddof=1) / math.sqrt(s)))
    alts = {"xtrace": {"mean": xt[0], "stderr": xt[1]}, "hutchinson": {"mean": hu[0], "stderr": hu[1]}}
    if hu[1] < xt[1]:
        return TraceEstimate(mean=hu[0], stderr=hu[1], samples=hutch, method="hutchinson", n_matvecs=2 * s,
                             alternatives=alts)
    return TraceEstimate(mean=xt[0], stderr=xt[1], samples=ests, method="xtrace", n_matvecs=2 * s,
                         alternatives=alts)


@dataclass(frozen=True)
class DiagonalEstimate:
    """Estimated ``diag A`` (``mean``, shape ``(P,)``) with elementwise standard errors."""

    mean: Tensor
    stderr: Tensor
    n_matvecs: int


def diagonal_estimate(
    op: CurvatureOperator,
    n_probes: int = 100,
    *,
    batch: int | None = None,
    seed: int | np.random.Generator | None = 0,
) -> DiagonalEstimate:
    """``diag A ~= (1/n) sum_l z_l * (A z_l)`` (elementwise) with Rademacher ``z_l`` (Bekas, Kokiopoulou &
    Saad 2007); ``Var (z * A z)_i = sum_{j != i} A_ij^2``.  For the exact diagonal of a GGN (or of the
    Hessian of a piecewise-linear net) use :meth:`GGNOperator.diagonal_exact`."""
    _check_op(op)
    if n_probes < 2:
        raise ValueError(f"n_probes must be >= 2, got {n_probes}")
    _check_batch(batch)
    rng = _rng(seed)
    z = torch.cat([_rademacher(rng, (1, op.dim), op.dtype, op.device) for _ in range(n_probes)])
    s = z * _apply(op, z, batch)
    return DiagonalEstimate(mean=s.mean(0), stderr=s.std(0) / math.sqrt(n_probes), n_matvecs=n_probes)


@dataclass(frozen=True)
class SLQResult:
    """Stochastic Lanczos quadrature (module docstring).

    ``nodes``, ``weights`` ``(n_v, m)`` of the ``n_v`` quadrature probes (each row of ``weights`` sums to 1);
    ``deflated`` the ``k`` Ritz values taken out exactly (weight ``1/P`` each; empty without deflation), so
    the probes describe the remaining ``P - k`` eigenvalues.  ``ritz_residuals`` those of the deflated pairs.
    """

    nodes: np.ndarray
    weights: np.ndarray
    dim: int
    deflated: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ritz_residuals: np.ndarray = field(default_factory=lambda: np.zeros(0))
    n_matvecs: int = 0

    @property
    def _rest(self) -> float:
        return (self.dim - len(self.deflated)) / self.dim

    def moment_samples(self, p: int) -> np.ndarray:
        """Per-probe estimates of ``tr(A^p) / P``: ``(sum_i theta_i^p + (P - k) v_l^T B^p v_l) / P`` (without
        deflation ``v_l^T A^p v_l``, exact for ``p <= 2m - 1``)."""
        q = (self.weights * self.nodes**p).sum(1)
        return float((self.deflated**p).sum()) / self.dim + self._rest * q

    def moment(self, p: int) -> float:
        """Estimate of ``tr(A^p) / P`` (mean of :meth:`moment_samples`)."""
        return float(self.moment_samples(p).mean())

    def moment_stderr(self, p: int) -> float:
        """Standard error of :meth:`moment` over the probes (``nan`` with one probe)."""
        s = self.moment_samples(p)
        return float(s.std(ddof=1) / math.sqrt(len(s))) if len(s) > 1 else float("nan")

    def trace(self) -> TraceEstimate:
        """``tr A = P * moment(1)`` with its standard error."""
        s = self.dim * self.moment_samples(1)
        se = float(s.std(ddof=1) / math.sqrt(len(s))) if len(s) > 1 else float("nan")
        return TraceEstimate(mean=float(s.mean()), stderr=se, samples=s, method="slq",
                             n_matvecs=self.n_matvecs)

    def _measure(self, values_fn: Callable[[np.ndarray], np.ndarray]) -> float:
        """``(1/P) sum_i f(theta_i) + ((P - k)/P) mean_l sum_k tau_{lk} f(theta_{lk})`` for an indicator
        ``f``."""
        d = float(values_fn(self.deflated).sum()) / self.dim if len(self.deflated) else 0.0
        return d + self._rest * float((self.weights * values_fn(self.nodes)).sum(1).mean())

    def density(self, grid: np.ndarray, sigma: float) -> np.ndarray:
        """Gaussian-broadened density ``phi_sigma(t)`` on ``grid`` (integrates to 1 over the real line)."""
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        g = np.asarray(grid, dtype=np.float64)
        norm = sigma * math.sqrt(2 * math.pi)
        k = np.exp(-0.5 * ((g[:, None, None] - self.nodes[None]) / sigma) ** 2) / norm
        out = self._rest * (k * self.weights[None]).sum(2).mean(1)
        if len(self.deflated):
            kd = np.exp(-0.5 * ((g[:, None] - self.deflated[None]) / sigma) ** 2) / norm
            out = out + kd.sum(1) / self.dim
        return out

    @property
    def lambda_max(self) -> float:
        return float(max(self.nodes.max(), self.deflated.max() if len(self.deflated) else -np.inf))

    def degeneracy(self, taus: Sequence[float] = DEFAULT_TAUS, lambda_max: float | None = None) -> np.ndarray:
        """Estimated ``f_deg(tau) = P[|lambda| < tau lambda_max]`` from the quadrature measure."""
        lm = self.lambda_max if lambda_max is None else float(lambda_max)
        return np.array([self._measure(lambda v, t=t: np.abs(v) < t * lm) for t in _check_taus(taus)])

    def negative_fraction(self, rel_tol: float = 1e-2, lambda_max: float | None = None) -> float:
        """Estimated ``P[lambda < -rel_tol * lambda_max]`` from the quadrature measure.

        ``rel_tol`` must be > 0: the share of a cluster of eigenvalues at 0 that falls on either side of 0 is
        not resolved by a Gauss quadrature (at ``rel_tol = 0`` the estimate was 0.336 against an exact 0.495
        on a trained MLP); the default ``1e-2`` is within its resolution on the test problems.
        """
        if not (isinstance(rel_tol, (int, float)) and 0 < rel_tol < 1):
            raise ValueError("rel_tol must be a number in (0, 1) (a threshold relative to lambda_max; "
                             "0 is not "
                             f"resolved by a quadrature), got {rel_tol!r}")
        lm = self.lambda_max if lambda_max is None else float(lambda_max)
        return self._measure(lambda v: v < -rel_tol * lm)


def slq(
    op: CurvatureOperator,
    n_probes: int = 4,
    m: int = 40,
    *,
    seed: int | np.random.Generator | None = 0,
    batch: int = 8,
    deflate: bool = True,
    deflate_tol: float = 1e-3,
    m_rest: int | None = None,
) -> SLQResult:
    """Stochastic Lanczos quadrature with ``n_probes`` start vectors.

    ``deflate=True`` (needs ``n_probes >= 2``): the first probe's run (``m`` steps) supplies the Ritz pairs
    with residual below ``deflate_tol * max |theta|``, taken out exactly; the other ``n_probes - 1`` run
    ``m_rest`` steps (default ``m // 2``) on the deflated operator (module docstring): its spectrum lost the
    outliers, so fewer nodes describe it, and the first moment of each probe is exact after one step.  Default
    cost ``40 + 3 * 20 = 100`` products.  Without deflation every probe runs ``m`` steps.  ``batch`` Lanczos
    runs go side by side (one batched product per step).  The error of every moment is
    :meth:`SLQResult.moment_stderr`.
    """
    _check_op(op)
    if n_probes < 1:
        raise ValueError(f"n_probes must be >= 1, got {n_probes}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if not deflate_tol > 0:
        raise ValueError(f"deflate_tol must be > 0, got {deflate_tol}")
    if m_rest is not None and m_rest < 1:
        raise ValueError(f"m_rest must be >= 1 or None, got {m_rest}")
    dim = op.dim
    m = min(m, dim)
    rng = _rng(seed)
    nodes, weights = [], []
    U, defl, resid = None, np.zeros(0), np.zeros(0)
    n0 = op.n_matvecs
    done = 0
    if deflate and n_probes >= 2:
        z = _rademacher(rng, (1, dim), op.dtype, op.device)
        res = lanczos(op, z, m, seed=rng, keep_basis=True)
        ev, s = res._eig(0)
        r = res.beta_last[0] * np.abs(s[-1])
        good = np.flatnonzero(r <= deflate_tol * np.abs(ev).max())
        good = good[: max(0, min(len(good), dim - m - 1))]
        if len(good):
            y = res.basis[0].T @ torch.as_tensor(s[:, good], dtype=op.dtype, device=op.device)
            U = torch.linalg.qr(y)[0].T.contiguous()
            defl, resid = ev[good], r[good]
        else:  # nothing converged: the run is an ordinary probe
            th, tau = res.ritz()
            nodes.append(th)
            weights.append(tau)
        done = 1
    m2 = min(m if U is None else (m // 2 if m_rest is None else m_rest), dim - len(defl))
    while done < n_probes:
        b = min(batch, n_probes - done)
        if U is None:
            z = _rademacher(rng, (b, dim), op.dtype, op.device)
        else:
            z = torch.as_tensor(rng.standard_normal((b, dim)), dtype=op.dtype, device=op.device)
        th, tau = lanczos(op, z, m2, seed=rng, deflate=U).ritz()
        nodes.append(th)
        weights.append(tau)
        done += b
    return SLQResult(nodes=np.concatenate(nodes), weights=np.concatenate(weights), dim=dim, deflated=defl,
                     ritz_residuals=resid, n_matvecs=op.n_matvecs - n0)


def _check_taus(taus: Sequence[float]) -> list[float]:
    taus = [float(t) for t in taus]
    if not taus or any(not (0 < t < 1) for t in taus):
        raise ValueError(f"taus must be a non-empty sequence of numbers in (0, 1), got {taus}")
    return taus


def degeneracy_curve(eigenvalues: np.ndarray, taus: Sequence[float] = DEFAULT_TAUS) -> np.ndarray:
    """Exact ``f_deg(tau) = #{i : |lambda_i| < tau lambda_max} / P`` for each ``tau``."""
    ev = np.asarray(eigenvalues, dtype=np.float64)
    if ev.ndim != 1 or ev.size == 0:
        raise ValueError(f"eigenvalues must be a non-empty 1-d array, got shape {ev.shape}")
    lm = ev.max()
    return np.array([float(np.mean(np.abs(ev) < t * lm)) for t in _check_taus(taus)])


def negative_fraction(eigenvalues: np.ndarray, tol: float = 0.0) -> float:
    """``#{i : lambda_i < -tol} / P``."""
    ev = np.asarray(eigenvalues, dtype=np.float64)
    return float(np.mean(ev < -tol))
