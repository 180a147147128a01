r"""Gradient probes near singularities (Lowell 2022; Gur-Ari, Roberts & Dyer 2018; Song, Ahn & Yun 2024;
Cohen et al. 2021).

For a loss ``L(theta)`` with gradient ``g = grad L`` and Hessian ``H`` with top-``k`` orthonormal
eigenvectors ``U_k`` (rows), ``P_k = U_k^T U_k`` projects on the top subspace:

* gradient concentration: ``c_k = ||P_k g||^2 / ||g||^2`` (Gur-Ari et al.: ``c_k`` close to 1 for ``k`` about
  the number of classes);
* loss decrease by parts of a step ``s`` (e.g. ``s = -eta g``): ``dL_full = L(theta) - L(theta + s)``,
  ``dL_top = L(theta) - L(theta + P_k s)``, ``dL_bulk = L(theta) - L(theta + (I - P_k) s)``; the share of the
  top part is ``dL_top / dL_full`` (Song et al.: near 0 though ``c_k`` is near 1, the bulk part doing the
  work);
  to second order ``dL_top ~= eta ||P_k g||^2 - (eta^2/2) g^T P_k H P_k g``, which is ``<= 0`` once
  ``lambda_i >= 2/eta`` on the top subspace;
* projected descent (Song et al.'s Dom-GD / Bulk-GD): ``theta <- theta - eta P g`` with ``P = P_k`` (top) or
  ``P = I - P_k`` (bulk), ``U_k`` recomputed every ``refresh`` steps, against plain GD from the same point;
* sharpness ``lambda_max(H)`` against ``2 / eta`` along full-batch gradient descent ``theta <- theta - eta g``
  (edge of stability: ``lambda_max`` rises to about ``2/eta`` and hovers there).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from ghostsing.deepcheck.operators import (
    CurvatureOperator,
    FlatLoss,
    FunctionOperator,
    HessianOperator,
    _make_hvp,
)

from .hessian import extreme_eigenvalues

#: a loss: a :class:`FlatLoss` or a bare function of the flat parameters
LossLike = FlatLoss | Callable[[Tensor], Tensor]

__all__ = [
    "gradient_norm",
    "top_subspace_share",
    "StepSplit",
    "step_split",
    "top_eigenspace",
    "hessian_at",
    "GDTrace",
    "gradient_descent_probe",
    "projected_gd",
]


def _fn(loss: LossLike) -> Callable[[Tensor], Tensor]:
    if isinstance(loss, FlatLoss):
        return loss.fn
    if not callable(loss):
        raise TypeError(f"loss must be a FlatLoss or a callable of the flat parameters, "
                        f"got {type(loss).__name__}")
    return loss


def hessian_at(loss: LossLike, theta: Tensor) -> CurvatureOperator:
    """The Hessian of ``loss`` at ``theta`` as an operator: a :class:`HessianOperator` of the
    :class:`FlatLoss` moved to ``theta``, or ``torch.func`` HVPs of a bare function wrapped in a
    :class:`FunctionOperator`."""
    if isinstance(loss, FlatLoss):
        return HessianOperator(replace(loss, theta=theta.detach()))
    return FunctionOperator(_make_hvp(_fn(loss), theta.detach(), "jvp"), int(theta.numel()),
                            dtype=theta.dtype,
                            device=theta.device)


def _grad_and_value(fn: Callable[[Tensor], Tensor], theta: Tensor) -> tuple[Tensor, float]:
    th = theta.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        val = fn(th)
        (g,) = torch.autograd.grad(val, th)
    return g.detach(), float(val.detach())


def gradient_norm(loss: LossLike, theta: Tensor) -> float:
    """``||grad L(theta)||_2``."""
    return float(_grad_and_value(_fn(loss), theta)[0].norm())


def top_subspace_share(g: Tensor, basis: Tensor) -> float:
    """``||U g||^2 / ||g||^2`` for orthonormal rows ``U`` (shape ``(k, P)``)."""
    if basis.ndim != 2 or basis.shape[1] != g.numel():
        raise ValueError(f"basis must have shape (k, {g.numel()}), got {tuple(basis.shape)}")
    gg = float(g @ g)
    if gg == 0:
        return float("nan")
    c = basis @ g
    return float(c @ c) / gg


def top_eigenspace(
    op: CurvatureOperator,
    k: int,
    *,
    m: int | None = None,
    seed: int = 0,
    tol: float | None = 1e-9,
) -> tuple[np.ndarray, Tensor]:
    """Top-``k`` eigenvalues (descending) and orthonormal eigenvectors ``U_k (k, P)`` of the operator ``op``
    by Lanczos (stopped once the Ritz residuals are below ``tol max|theta|``, else after ``m`` steps, with a
    :class:`~ghostsing.deepcheck.probes.hessian.ConvergenceWarning`)."""
    res = extreme_eigenvalues(op, k, m=m, seed=seed, return_vectors=True, tol=tol)
    q, _ = torch.linalg.qr(res.vectors.T)  # re-orthonormalise (Ritz vectors are orthonormal up to rounding)
    return res.values, q.T


@dataclass(frozen=True)
class StepSplit:
    """Loss decreases of a step and of its top-subspace / bulk parts, and the gradient concentration."""

    d_full: float
    d_top: float
    d_bulk: float
    grad_share_top: float

    @property
    def top_share_of_decrease(self) -> float:
        """``dL_top / dL_full``."""
        return self.d_top / self.d_full if self.d_full != 0 else float("nan")


def step_split(loss: LossLike, theta: Tensor, step: Tensor, basis: Tensor) -> StepSplit:
    """Split ``step`` into ``P_k step`` and ``(I - P_k) step`` and measure the loss decrease of each."""
    fn = _fn(loss)
    with torch.no_grad():
        l0 = float(fn(theta))
        top = basis.T @ (basis @ step)
        d_full = l0 - float(fn(theta + step))
        d_top = l0 - float(fn(theta + top))
        d_bulk = l0 - float(fn(theta + step - top))
    g = _grad_and_value(fn, theta)[0]
    return StepSplit(d_full, d_top, d_bulk, top_subspace_share(g, basis))


@dataclass(frozen=True)
class GDTrace:
    """Full-batch GD record: ``steps``, ``loss``, ``grad_norm`` (every step) and, at ``probe_steps``, the
    sharpness ``lambda_max``, gradient concentration ``c_k`` and step split shares."""

    lr: float
    loss: np.ndarray
    grad_norm: np.ndarray
    probe_steps: np.ndarray
    sharpness: np.ndarray
    grad_share_top: np.ndarray
    top_share_of_decrease: np.ndarray
    bulk_share_of_decrease: np.ndarray
    theta: Tensor

    def to_dict(self) -> dict:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()
                if k != "theta"}


def gradient_descent_probe(
    loss: LossLike,
    theta0: Tensor,
    lr: float,
    steps: int,
    *,
    probe_every: int = 50,
    k: int = 10,
    lanczos_m: int = 30,
    seed: int = 0,
    stop_loss: float | None = None,
    curvature: Callable[[Tensor], CurvatureOperator] | None = None,
) -> GDTrace:
    """Full-batch gradient descent ``theta <- theta - lr grad L(theta)``, probed every ``probe_every`` steps.

    At each probe: ``lambda_max`` and ``U_k`` by Lanczos (``lanczos_m`` steps), ``c_k`` and the split of the
    actual GD step ``s = -lr g`` into top / bulk parts.  Stops early when the loss falls below ``stop_loss``
    or is not finite.  ``loss``: a :class:`FlatLoss` or a function of the flat parameters;
    ``curvature(theta)`` gives the operator whose top eigenspace is probed (default :func:`hessian_at`; e.g.
    a GGN instead).
    """
    fn = _fn(loss)
    curv = (lambda th: hessian_at(loss, th)) if curvature is None else curvature
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if steps < 1 or probe_every < 1:
        raise ValueError(f"steps and probe_every must be >= 1, got {steps}, {probe_every}")
    theta = theta0.detach().clone()
    losses, gnorms, ps, sharp, share, top_dec, bulk_dec = [], [], [], [], [], [], []
    for t in range(steps + 1):
        g, lv = _grad_and_value(fn, theta)
        losses.append(lv)
        gnorms.append(float(g.norm()))
        if not np.isfinite(lv):
            break
        if t % probe_every == 0 or t == steps:
            kk = min(k, theta.numel())
            vals, basis = top_eigenspace(curv(theta), kk, m=min(theta.numel(), max(lanczos_m, 2 * kk)),
                                         seed=seed + t)
            sp = step_split(fn, theta, -lr * g, basis)
            ps.append(t)
            sharp.append(float(vals[0]))
            share.append(sp.grad_share_top)
            top_dec.append(sp.top_share_of_decrease)
            bulk_dec.append(sp.d_bulk / sp.d_full if sp.d_full != 0 else float("nan"))
        if t == steps or (stop_loss is not None and lv < stop_loss):
            break
        theta = theta - lr * g
    a = np.asarray
    return GDTrace(lr, a(losses), a(gnorms), a(ps), a(sharp), a(share), a(top_dec), a(bulk_dec), theta)


def projected_gd(
    loss: LossLike,
    theta0: Tensor,
    lr: float,
    steps: int,
    *,
    mode: str = "full",
    k: int = 10,
    refresh: int = 10,
    lanczos_m: int = 30,
    seed: int = 0,
    curvature: Callable[[Tensor], CurvatureOperator] | None = None,
) -> np.ndarray:
    """Loss trace (``steps + 1`` values) of GD whose step is projected: ``mode`` = ``'full'`` (plain GD),
    ``'top'`` (``-lr P_k g``) or ``'bulk'`` (``-lr (I - P_k) g``), ``U_k`` recomputed every ``refresh``
    steps (``loss`` and ``curvature`` as :func:`gradient_descent_probe`)."""
    fn = _fn(loss)
    curv = (lambda th: hessian_at(loss, th)) if curvature is None else curvature
    if mode not in ("full", "top", "bulk"):
        raise ValueError(f"mode must be 'full', 'top' or 'bulk', got {mode!r}")
    if not lr > 0 or steps < 1 or refresh < 1:
        raise ValueError(f"need lr > 0, steps >= 1, refresh >= 1; got {lr}, {steps}, {refresh}")
    theta = theta0.detach().clone()
    kk = min(k, theta.numel())
    basis = None
    out = []
    for t in range(steps + 1):
        g, lv = _grad_and_value(fn, theta)
        out.append(lv)
        if t == steps or not np.isfinite(lv):
            break
        if mode != "full":
            if t % refresh == 0:
                _, basis = top_eigenspace(curv(theta), kk, m=min(theta.numel(), max(lanczos_m, 2 * kk)),
                                          seed=seed + t)
            top = basis.T @ (basis @ g)
            g = top if mode == "top" else g - top
        theta = theta - lr * g
    return np.asarray(out)
