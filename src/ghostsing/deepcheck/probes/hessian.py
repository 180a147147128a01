r"""Hessian spectra of a training loss: exact, Lanczos, Hutchinson trace and stochastic Lanczos quadrature.

Notation.  ``theta in R^P`` is the flat parameter vector of a torch model, ``L(theta)`` the training loss
on a fixed batch ``(x, y)`` (the probe batch or the whole training set), ``H = nabla^2 L(theta)`` its
Hessian with eigenvalues ``lambda_1 >= ... >= lambda_P`` and eigenvectors ``u_i``.

* exact: ``H`` assembled column by column from Hessian-vector products ``H e_i`` (batched) and
  diagonalised in float64 (``numpy.linalg.eigvalsh``); for ``P`` up to ~2e4.
* HVP: ``H v = d/dt grad L(theta + t v)|_{t=0}``, forward-over-reverse (``torch.func.jvp`` of
  ``torch.func.grad``) or reverse-over-reverse (double backward through a retained graph); batched over
  several ``v`` at once.
* Lanczos: ``m`` steps of ``q_{j+1} beta_j = H q_j - alpha_j q_j - beta_{j-1} q_{j-1}`` with full
  re-orthogonalisation (two Gram-Schmidt passes against all previous ``q``), restarted with a fresh
  random vector orthogonal to the Krylov space on breakdown; the Ritz values (eigenvalues of the
  tridiagonal ``T_m``) approximate the extreme eigenvalues of ``H``.
* Hutchinson: ``tr H = E[z^T H z]`` for Rademacher ``z`` (``z_i = +-1``), estimated by the mean over
  ``n`` probes with standard error ``s / sqrt(n)``.
* SLQ: the spectral density ``phi(t) = (1/P) sum_i delta(t - lambda_i)`` is approximated, for unit
  probes ``v = z / ||z||`` (``E[v v^T] = I / P``), by the Gauss quadrature of ``v^T delta(t - H) v`` that
  ``m`` Lanczos steps from ``v`` give: nodes ``theta_k`` (Ritz values) and weights
  ``tau_k = (e_1^T s_k)^2``.  The quadrature is exact for ``v^T H^p v`` with ``p <= 2m - 1``; the density
  is broadened with Gaussians of width ``sigma``:
  ``phi_sigma(t) = (1/n_v) sum_l sum_k tau_{l,k} N(t; theta_{l,k}, sigma^2)``.
* degeneracy: ``f_deg(tau) = #{i : |lambda_i| < tau lambda_max} / P`` for several ``tau`` (a curve) and
  ``f_neg = #{i : lambda_i < 0} / P``; from the exact spectrum, or estimated from the SLQ measure as
  ``sum tau_{l,k} 1[|theta_{l,k}| < tau lambda_max] / n_v``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "FlatLoss",
    "flat_loss",
    "make_hvp",
    "exact_hessian",
    "exact_spectrum",
    "HessianOperator",
    "LanczosResult",
    "lanczos",
    "extreme_eigenvalues",
    "hutchinson_trace",
    "hutchpp_trace",
    "TraceEstimate",
    "SLQResult",
    "slq",
    "degeneracy_curve",
    "negative_fraction",
    "DEFAULT_TAUS",
]

DEFAULT_TAUS: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1)
MAX_EXACT_PARAMS = 20_000


@dataclass(frozen=True)
class FlatLoss:
    """A loss as a function of the flat parameter vector.

    ``fn(theta) = loss(model_theta(x), y)`` with ``theta`` of shape ``(P,)``; ``theta`` holds the model's
    current parameters (detached copy, in the dtype/device the closure computes in).
    """

    fn: Callable[[Tensor], Tensor]
    theta: Tensor
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    @property
    def dim(self) -> int:
        return int(self.theta.numel())

    def unflatten(self, theta: Tensor) -> dict[str, Tensor]:
        """Split a flat vector into named tensors with the model's parameter shapes."""
        out: dict[str, Tensor] = {}
        i = 0
        for name, shape in zip(self.names, self.shapes, strict=True):
            k = math.prod(shape)
            out[name] = theta[i : i + k].view(shape)
            i += k
        return out


def flat_loss(
    model: torch.nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    inputs: Tensor,
    targets: Tensor,
    *,
    dtype: torch.dtype | None = None,
    eval_mode: bool = True,
) -> FlatLoss:
    """Wrap ``L(theta) = loss_fn(model_theta(inputs), targets)`` as a function of the flat parameters.

    ``dtype`` (e.g. ``torch.float64`` for an exact spectrum) casts the parameters, buffers and floating
    inputs used by the closure; the model itself is not modified.  ``eval_mode=True`` evaluates the model
    in eval mode (dropout off, batch-norm running statistics), as PyHessian does; the model's own mode is
    restored after each call.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    names = tuple(n for n, _ in params)
    shapes = tuple(tuple(p.shape) for _, p in params)
    theta = torch.cat([p.detach().reshape(-1) for _, p in params])
    buffers = {n: b.detach() for n, b in model.named_buffers()}
    if dtype is not None:
        theta = theta.to(dtype)
        buffers = {n: (b.to(dtype) if b.is_floating_point() else b) for n, b in buffers.items()}
        if inputs.is_floating_point():
            inputs = inputs.to(dtype)
        if targets.is_floating_point():
            targets = targets.to(dtype)
    theta = theta.clone()
    fl_proto = FlatLoss(fn=lambda t: t, theta=theta, names=names, shapes=shapes)

    def fn(t: Tensor) -> Tensor:
        was_training = model.training
        model.train(not eval_mode)
        try:
            pd = fl_proto.unflatten(t)
            pd.update(buffers)
            out = torch.func.functional_call(model, pd, (inputs,))
        finally:
            model.train(was_training)
        return loss_fn(out, targets)

    return FlatLoss(fn=fn, theta=theta, names=names, shapes=shapes)


def make_hvp(
    fn: Callable[[Tensor], Tensor], theta: Tensor, *, method: str = "double_backward"
) -> Callable[[Tensor], Tensor]:
    """Return ``hvp(V)`` computing ``H V`` for ``V`` of shape ``(P,)`` or ``(b, P)`` (rows are vectors).

    ``method='jvp'``: ``H v = jvp(grad L, theta; v)`` (forward over reverse, vmapped over rows).
    ``method='double_backward'``: the graph of ``g = grad L(theta)`` is built once with
    ``create_graph=True``
    and every ``H v = grad(g . v)`` is one backward pass through it (batched with ``is_grads_batched``).
    """
    if method == "jvp":
        g = torch.func.grad(fn)

        def one(v: Tensor) -> Tensor:
            return torch.func.jvp(g, (theta,), (v,))[1]

        many = torch.func.vmap(one)

        def hvp(v: Tensor) -> Tensor:
            return one(v) if v.ndim == 1 else many(v)

        return hvp
    if method == "double_backward":
        th = theta.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(fn(th), th, create_graph=True)

        def hvp(v: Tensor) -> Tensor:
            batched = v.ndim == 2
            (out,) = torch.autograd.grad(
                grad, th, grad_outputs=v.to(grad.dtype), retain_graph=True, is_grads_batched=batched
            )
            return out.detach()

        return hvp
    raise ValueError(f"method must be 'jvp' or 'double_backward', got {method!r}")


def exact_hessian(
    fn: Callable[[Tensor], Tensor], theta: Tensor, *, chunk: int = 256, max_params: int = MAX_EXACT_PARAMS
) -> Tensor:
    """Dense Hessian ``H_ij = d^2 L / d theta_i d theta_j`` from batched HVPs with the unit vectors ``e_i``.

    Computed in the dtype of ``theta`` (pass float64 for an exact spectrum); symmetrised ``(H + H^T)/2``.
    """
    p = int(theta.numel())
    if p > max_params:
        raise ValueError(f"exact Hessian needs P <= max_params={max_params}, got P={p}; use lanczos/slq")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    hvp = make_hvp(fn, theta, method="double_backward")
    eye = torch.eye(p, dtype=theta.dtype, device=theta.device)
    cols = [hvp(eye[i : i + chunk]) for i in range(0, p, chunk)]
    h = torch.cat(cols, dim=0)
    return 0.5 * (h + h.T)


def exact_spectrum(fn: Callable[[Tensor], Tensor], theta: Tensor, **kw) -> np.ndarray:
    """Eigenvalues of the exact Hessian (float64, ascending)."""
    h = exact_hessian(fn, theta.to(torch.float64), **kw)
    return np.linalg.eigvalsh(h.cpu().numpy())


class HessianOperator:
    """``scipy.sparse.linalg.LinearOperator`` view of ``v -> H v`` (float64 numpy in and out).

    ``as_linear_operator()`` gives the scipy object, e.g. for ``scipy.sparse.linalg.eigsh``.
    """

    def __init__(self, hvp: Callable[[Tensor], Tensor], dim: int, *, dtype: torch.dtype, device="cpu"):
        self.hvp, self.dim, self.tdtype, self.device = hvp, int(dim), dtype, device
        self.n_calls = 0

    def matmat(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        one = x.ndim == 1
        v = torch.as_tensor(np.atleast_2d(x.T if not one else x), dtype=self.tdtype, device=self.device)
        self.n_calls += v.shape[0]
        out = self.hvp(v if v.shape[0] > 1 else v[0]).reshape(v.shape)
        out = out.detach().cpu().numpy().astype(np.float64)
        return out[0] if one else out.T

    def as_linear_operator(self):
        from scipy.sparse.linalg import LinearOperator

        return LinearOperator(
            (self.dim, self.dim),
            matvec=lambda x: self.matmat(np.ravel(x)),
            matmat=self.matmat,
            rmatvec=lambda x: self.matmat(np.ravel(x)),
            dtype=np.float64,
        )


@dataclass(frozen=True)
class LanczosResult:
    """``b`` independent Lanczos runs of ``m`` steps: tridiagonals ``alpha (b, m)``, ``beta (b, m-1)``.

    ``basis`` (``(b, m, P)``) holds the Lanczos vectors when requested.  ``ritz()`` returns the Ritz values
    and first components of the eigenvectors of each ``T``.
    """

    alpha: np.ndarray
    beta: np.ndarray
    basis: Tensor | None

    def ritz(self) -> tuple[np.ndarray, np.ndarray]:
        """Ritz values ``theta (b, m)`` ascending and Gauss weights ``tau = (e_1^T s_k)^2 (b, m)``."""
        b, m = self.alpha.shape
        vals = np.empty((b, m))
        w = np.empty((b, m))
        for i in range(b):
            t = np.diag(self.alpha[i]) + np.diag(self.beta[i], 1) + np.diag(self.beta[i], -1)
            ev, s = np.linalg.eigh(t)
            vals[i], w[i] = ev, s[0] ** 2
        return vals, w


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, (int, np.integer)):
        return np.random.default_rng(seed)
    raise TypeError(f"seed must be an int, None or numpy Generator, got {type(seed).__name__}")


def _rademacher(rng: np.random.Generator, shape, dtype, device) -> Tensor:
    z = rng.integers(0, 2, size=shape).astype(np.float64) * 2.0 - 1.0
    return torch.as_tensor(z, dtype=dtype, device=device)


def lanczos(
    hvp: Callable[[Tensor], Tensor],
    v0: Tensor,
    m: int,
    *,
    keep_basis: bool = False,
    seed: int | np.random.Generator | None = 0,
    breakdown_tol: float = 1e-10,
    ritz_tol: float | None = None,
    ritz_k: int = 1,
    which: str = "top",
) -> LanczosResult:
    """Run ``b`` Lanczos iterations side by side from the rows of ``v0`` (shape ``(b, P)``), ``m`` steps
    each.

    Full re-orthogonalisation (two classical Gram-Schmidt passes per step).  On breakdown
    (``beta_j < breakdown_tol * max(1, |alpha|)``) the run continues from a random unit vector orthogonal
    to its Krylov space with ``beta_j = 0``: ``T`` then splits into blocks and the Gauss weights of the new
    blocks are zero, so SLQ stays correct while Ritz values keep converging to further (also repeated)
    eigenvalues.

    Early stop (one run, ``b = 1``, ``ritz_tol`` given): after step ``j >= ritz_k`` the residual of each
    Ritz pair is ``||H y_i - theta_i y_i|| = beta_j |e_j^T s_i|``; the run stops once it is below
    ``ritz_tol * |theta_i|`` for the ``ritz_k`` wanted Ritz values (``which`` = ``'top'`` or ``'bottom'``),
    and the returned ``alpha``, ``beta`` are truncated to the steps taken.
    """
    if v0.ndim == 1:
        v0 = v0[None]
    b, p = v0.shape
    if not 1 <= m <= p:
        raise ValueError(f"m must satisfy 1 <= m <= P={p}, got {m}")
    rng = _rng(seed)
    dt = v0.dtype
    q = torch.zeros((b, m, p), dtype=dt, device=v0.device)
    alpha = np.zeros((b, m))
    beta = np.zeros((b, max(m - 1, 0)))
    v = v0 / v0.norm(dim=1, keepdim=True)
    for j in range(m):
        q[:, j] = v
        w = (hvp(v[0])[None] if b == 1 else hvp(v)).reshape(b, p)  # b = 1: no vmap overhead
        a = (w * v).sum(1)
        alpha[:, j] = a.double().cpu().numpy()
        if j == m - 1:
            break
        qj = q[:, : j + 1]
        for _ in range(2):
            w = w - torch.einsum("bk,bkp->bp", torch.einsum("bkp,bp->bk", qj, w), qj)
        nb = w.norm(dim=1)
        scale = np.maximum(1.0, np.abs(alpha[:, : j + 1]).max(1))
        bad = nb.double().cpu().numpy() < breakdown_tol * scale
        if bad.any():
            for i in np.flatnonzero(bad):
                r = torch.as_tensor(rng.standard_normal(p), dtype=dt, device=v0.device)
                for _ in range(2):
                    r = r - (qj[i] @ r) @ qj[i]
                w[i] = r / r.norm() * 1.0
                nb[i] = 0.0
        beta[:, j] = nb.double().cpu().numpy()
        if ritz_tol is not None and b == 1 and j + 1 >= ritz_k and not bad.any():
            t = np.diag(alpha[0, : j + 1]) + np.diag(beta[0, :j], 1) + np.diag(beta[0, :j], -1)
            ev, sv = np.linalg.eigh(t)
            idx = np.arange(j + 1)[::-1][:ritz_k] if which == "top" else np.arange(ritz_k)
            if np.all(beta[0, j] * np.abs(sv[-1, idx]) <= ritz_tol * np.abs(ev[idx])):
                return LanczosResult(alpha=alpha[:, : j + 1], beta=beta[:, :j],
                                     basis=q[:, : j + 1] if keep_basis else None)
        denom = torch.where(nb > 0, nb, torch.ones_like(nb))
        v = w / denom[:, None]
        if bad.any():
            v[torch.as_tensor(bad, device=v.device)] = w[torch.as_tensor(bad, device=v.device)]
    return LanczosResult(alpha=alpha, beta=beta, basis=q if keep_basis else None)


def extreme_eigenvalues(
    hvp: Callable[[Tensor], Tensor],
    dim: int,
    k: int = 5,
    *,
    which: str = "top",
    m: int | None = None,
    dtype: torch.dtype = torch.float64,
    device="cpu",
    seed: int | np.random.Generator | None = 0,
    return_vectors: bool = False,
    tol: float | None = 1e-6,
) -> tuple[np.ndarray, Tensor | None]:
    """The ``k`` largest (``which='top'``, descending) or smallest (``'bottom'``, ascending) eigenvalues.

    One Lanczos run of at most ``m`` steps (default ``min(P, max(4k, 60))``) from a Gaussian start; Ritz
    values at the requested end.  With ``return_vectors`` the Ritz vectors ``Q^T s_k`` (rows, shape
    ``(k, P)``) are returned.  ``tol``: stop once the ``k`` wanted Ritz residuals
    ``beta_j |e_j^T s_i|`` are below ``tol * |theta_i|`` (``None``: run all ``m`` steps).
    """
    if which not in ("top", "bottom"):
        raise ValueError(f"which must be 'top' or 'bottom', got {which!r}")
    if not 1 <= k <= dim:
        raise ValueError(f"k must satisfy 1 <= k <= P={dim}, got {k}")
    m = min(dim, max(4 * k, 60)) if m is None else m
    if m < k:
        raise ValueError(f"m={m} must be >= k={k}")
    rng = _rng(seed)
    v0 = torch.as_tensor(rng.standard_normal(dim), dtype=dtype, device=device)
    res = lanczos(hvp, v0, m, keep_basis=return_vectors, seed=rng, ritz_tol=tol, ritz_k=k, which=which)
    t = np.diag(res.alpha[0]) + np.diag(res.beta[0], 1) + np.diag(res.beta[0], -1)
    ev, s = np.linalg.eigh(t)
    idx = np.argsort(ev)[::-1][:k] if which == "top" else np.argsort(ev)[:k]
    vecs = None
    if return_vectors:
        s_t = torch.as_tensor(s[:, idx], dtype=dtype, device=device)
        vecs = (res.basis[0].T @ s_t).T
    return ev[idx], vecs


@dataclass(frozen=True)
class TraceEstimate:
    """Hutchinson estimate ``mean`` of ``tr H`` with standard error ``stderr = std(z^T H z) / sqrt(n)``."""

    mean: float
    stderr: float
    samples: np.ndarray


def hutchinson_trace(
    hvp: Callable[[Tensor], Tensor],
    dim: int,
    n_probes: int = 100,
    *,
    batch: int = 32,
    dtype: torch.dtype = torch.float64,
    device="cpu",
    seed: int | np.random.Generator | None = 0,
) -> TraceEstimate:
    """``tr H ~= (1/n) sum_l z_l^T H z_l`` with Rademacher ``z_l``; ``Var z^T H z = 2 sum_{i != j}
    H_ij^2``.

    The probes go through ``hvp`` in blocks of ``batch`` rows (one batched HVP ``H [z_1 ... z_b]`` per
    block; ``batch=1`` is the sequential loop).  Each probe is drawn on its own from ``seed``, so the
    samples for a given seed do not depend on ``batch`` (batched and sequential estimates agree to float
    rounding).  Memory per block: ``batch`` copies of the HVP's tangents (activations of the batch).
    """
    if n_probes < 2:
        raise ValueError(f"n_probes must be >= 2, got {n_probes}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    rng = _rng(seed)
    vals = []
    done = 0
    while done < n_probes:
        b = min(batch, n_probes - done)
        z = torch.cat([_rademacher(rng, (1, dim), dtype, device) for _ in range(b)])  # batch-invariant draws
        hz = hvp(z if b > 1 else z[0]).reshape(b, dim)
        vals.append((z * hz).sum(1).double().cpu().numpy())
        done += b
    s = np.concatenate(vals)
    return TraceEstimate(mean=float(s.mean()), stderr=float(s.std(ddof=1) / math.sqrt(len(s))), samples=s)


def hutchpp_trace(
    hvp: Callable[[Tensor], Tensor],
    dim: int,
    n_matvecs: int = 99,
    *,
    batch: int | None = None,
    dtype: torch.dtype = torch.float64,
    device="cpu",
    seed: int | np.random.Generator | None = 0,
) -> TraceEstimate:
    """Hutch++ (Meyer, Musco, Musco & Woodruff 2021): ``tr H = tr(Q^T H Q) + tr((I - QQ^T) H (I - QQ^T))``.

    With ``k = n_matvecs // 3``: ``Q`` = orthonormal basis of ``H S`` (``S`` Rademacher, ``P x k``), the first
    term exactly (``k`` HVPs), the second by Hutchinson with ``k`` Rademacher probes projected off ``Q``.
    For spectra dominated by a few large eigenvalues (deep-net Hessians) the error at ``m`` HVPs falls like
    ``1/m`` instead of ``1/sqrt(m)``.  ``stderr`` is that of the Hutchinson part given ``Q``; ``samples``
    holds its per-probe values (shifted by the exact part).  The ``k``-vector blocks go through ``hvp`` in
    sub-blocks of ``batch`` rows (``None``: whole blocks; ``1``: one vector at a time).
    """
    k = n_matvecs // 3
    if k < 2:
        raise ValueError(f"n_matvecs must be >= 6, got {n_matvecs}")
    if batch is not None and batch < 1:
        raise ValueError(f"batch must be >= 1 or None, got {batch}")
    step = k if batch is None else batch

    def hmat(v: Tensor) -> Tensor:  # H applied to the rows of v (k, P), `step` rows per call
        return torch.cat([hvp(v[i : i + step] if step > 1 else v[i]).reshape(-1, dim)
                          for i in range(0, k, step)])

    rng = _rng(seed)
    s = _rademacher(rng, (k, dim), dtype, device)
    q, _ = torch.linalg.qr(hmat(s).T)  # (P, k)
    q = q.T.contiguous()
    t_top = float((q * hmat(q)).sum())
    g = _rademacher(rng, (k, dim), dtype, device)
    g = g - (g @ q.T) @ q
    vals = (g * hmat(g)).sum(1).double().cpu().numpy()
    return TraceEstimate(mean=t_top + float(vals.mean()), stderr=float(vals.std(ddof=1) / math.sqrt(k)),
                         samples=t_top + vals)


@dataclass(frozen=True)
class SLQResult:
    """Stochastic Lanczos quadrature: nodes ``(n_v, m)`` and weights ``(n_v, m)`` (each row sums to 1)."""

    nodes: np.ndarray
    weights: np.ndarray
    dim: int

    def moment(self, p: int) -> float:
        """``(1/n_v) sum_l sum_k tau_{l,k} theta_{l,k}^p``, an estimate of ``tr(H^p) / P``."""
        return float((self.weights * self.nodes**p).sum(1).mean())

    def moment_samples(self, p: int) -> np.ndarray:
        """Per-probe quadratures ``v_l^T H^p v_l`` (exact for ``p <= 2m-1``)."""
        return (self.weights * self.nodes**p).sum(1)

    def density(self, grid: np.ndarray, sigma: float) -> np.ndarray:
        """Gaussian-broadened density ``phi_sigma(t)`` on ``grid`` (integrates to 1 over the real line)."""
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        g = np.asarray(grid, dtype=np.float64)[:, None, None]
        k = np.exp(-0.5 * ((g - self.nodes[None]) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
        return (k * self.weights[None]).sum(2).mean(1)

    @property
    def lambda_max(self) -> float:
        return float(self.nodes.max())

    def degeneracy(
        self, taus: Sequence[float] = DEFAULT_TAUS, lambda_max: float | None = None
    ) -> np.ndarray:
        """Estimated ``f_deg(tau) = P[|lambda| < tau lambda_max]`` from the quadrature measure."""
        lm = self.lambda_max if lambda_max is None else float(lambda_max)
        out = [
            float((self.weights * (np.abs(self.nodes) < t * lm)).sum(1).mean()) for t in _check_taus(taus)
        ]
        return np.array(out)

    def negative_fraction(self, tol: float = 0.0) -> float:
        """Estimated ``P[lambda < -tol]`` from the quadrature measure."""
        return float((self.weights * (self.nodes < -tol)).sum(1).mean())


def slq(
    hvp: Callable[[Tensor], Tensor],
    dim: int,
    n_probes: int = 8,
    m: int = 80,
    *,
    dtype: torch.dtype = torch.float64,
    device="cpu",
    seed: int | np.random.Generator | None = 0,
    batch: int = 8,
) -> SLQResult:
    """Stochastic Lanczos quadrature with ``n_probes`` Rademacher start vectors, ``m`` steps each.

    Runs ``batch`` Lanczos iterations in parallel (one batched HVP per step).
    """
    if n_probes < 1:
        raise ValueError(f"n_probes must be >= 1, got {n_probes}")
    m = min(m, dim)
    rng = _rng(seed)
    nodes, weights = [], []
    done = 0
    while done < n_probes:
        b = min(batch, n_probes - done)
        z = _rademacher(rng, (b, dim), dtype, device)
        th, tau = lanczos(hvp, z, m, seed=rng).ritz()
        nodes.append(th)
        weights.append(tau)
        done += b
    return SLQResult(nodes=np.concatenate(nodes), weights=np.concatenate(weights), dim=dim)


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
