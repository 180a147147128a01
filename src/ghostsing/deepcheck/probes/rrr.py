r"""Reduced-rank regression and its real log canonical threshold (Aoyagi & Watanabe 2005).

Model: ``y = B A x + eps`` with ``x in R^M`` (``x ~ N(0, I_M)``), ``A in R^{H x M}``, ``B in R^{N x H}``,
``eps ~ N(0, sigma^2 I_N)``; the true map ``C_0 = B_0 A_0`` has rank ``r <= H``.  The per-sample negative
log-likelihood (up to a constant) is ``l(w; x, y) = ||y - B A x||^2 / (2 sigma^2)`` and the empirical loss
``L_n(w) = (1/n) sum_i l(w; x_i, y_i)``.  Because ``l`` is quadratic in ``C = B A``, ``L_n`` depends on the
data only through ``S_xx = X^T X / n``, ``S_yx = Y^T X / n`` and ``s_yy = tr(Y^T Y) / n``:

    L_n(A, B) = [ tr(C S_xx C^T) - 2 tr(C S_yx^T) + s_yy ] / (2 sigma^2),        C = B A.

Real log canonical threshold ``lambda(M, H, N, r)`` (the four cases of Aoyagi & Watanabe 2005, Theorem 1):

* case 1 (``N + r <= M + H``, ``M + r <= N + H``, ``H + r <= M + N``):
  ``lambda = [2 (H + r)(M + N) - (M - N)^2 - (H + r)^2] / 8``, plus ``1/8`` when ``M + H + N + r`` is odd;
* case 2 (``M + H < N + r``): ``lambda = (H M - H r + N r) / 2``;
* case 3 (``N + H < M + r``): ``lambda = (H N - H r + M r) / 2``;
* case 4 (``M + N < H + r``): ``lambda = M N / 2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["aoyagi_case", "rlct_rrr", "RRRProblem", "RRRData", "make_rrr_data"]


def _check_shape(M: int, H: int, N: int, r: int) -> None:
    for name, v in (("M", M), ("H", H), ("N", N), ("r", r)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if min(M, H, N) < 1:
        raise ValueError(f"M, H, N must be >= 1, got M={M}, H={H}, N={N}")
    if not 0 <= r <= min(M, H, N):
        raise ValueError(f"true rank r must satisfy 0 <= r <= min(M, H, N)={min(M, H, N)}, got r={r}")


def aoyagi_case(M: int, H: int, N: int, r: int) -> int:
    """Which of Aoyagi & Watanabe's four cases (module docstring) the shape ``(M, H, N, r)`` falls in."""
    _check_shape(M, H, N, r)
    if M + N < H + r:
        return 4
    if M + H < N + r:
        return 2
    if N + H < M + r:
        return 3
    return 1


def rlct_rrr(M: int, H: int, N: int, r: int) -> float:
    """Aoyagi–Watanabe RLCT of reduced-rank regression with M inputs, H hidden, N outputs, true rank r."""
    case = aoyagi_case(M, H, N, r)
    if case == 4:
        return M * N / 2
    if case == 2:
        return (H * M - H * r + N * r) / 2
    if case == 3:
        return (H * N - H * r + M * r) / 2
    lam = (2 * (H + r) * (M + N) - (M - N) ** 2 - (H + r) ** 2) / 8
    if (M + H + N + r) % 2 == 1:
        lam += 1 / 8
    return lam


@dataclass(frozen=True)
class RRRData:
    """Sufficient statistics of a sample of size ``n`` and the true factors ``A0 (H, M)``, ``B0 (N, H)``."""

    n: int
    sxx: Tensor
    syx: Tensor
    syy: float
    A0: Tensor
    B0: Tensor
    sigma: float


@dataclass(frozen=True)
class RRRProblem:
    """Shape ``(M, H, N, r)`` and noise level ``sigma`` of a reduced-rank regression problem."""

    M: int
    H: int
    N: int
    r: int
    sigma: float = 1.0

    def __post_init__(self) -> None:
        _check_shape(self.M, self.H, self.N, self.r)
        if not self.sigma > 0:
            raise ValueError(f"sigma must be > 0, got {self.sigma}")

    @property
    def dim(self) -> int:
        """Number of parameters ``d = H M + N H``."""
        return self.H * self.M + self.N * self.H

    @property
    def rlct(self) -> float:
        return rlct_rrr(self.M, self.H, self.N, self.r)

    def split(self, w: Tensor) -> tuple[Tensor, Tensor]:
        """``w (..., d) -> A (..., H, M), B (..., N, H)``."""
        hm = self.H * self.M
        lead = w.shape[:-1]
        return w[..., :hm].reshape(*lead, self.H, self.M), w[..., hm:].reshape(*lead, self.N, self.H)

    def join(self, A: Tensor, B: Tensor) -> Tensor:
        lead = A.shape[:-2]
        return torch.cat([A.reshape(*lead, -1), B.reshape(*lead, -1)], dim=-1)

    def loss(self, w: Tensor, data: RRRData) -> Tensor:
        """Exact ``L_n(w)`` from the sufficient statistics; ``w`` of shape ``(..., d)``, result ``(...)``."""
        A, B = self.split(w)
        C = B @ A
        quad = torch.einsum("...ij,jk,...ik->...", C, data.sxx, C)
        lin = torch.einsum("...ij,ij->...", C, data.syx)
        return (quad - 2 * lin + data.syy) / (2 * data.sigma**2)

    def mle(self, data: RRRData) -> Tensor:
        """Global minimiser of ``L_n`` over rank-``H`` maps, factored as ``w* = (A*, B*)``.

        ``C_ols = S_yx S_xx^{-1}``; the rank-``H`` minimiser of ``tr((C - C_ols) S_xx (C - C_ols)^T)`` is
        ``C* = U_H U_H^T C_ols`` with ``U_H`` the top-``H`` eigenvectors of ``C_ols S_xx C_ols^T``; balanced
        factors ``B* = U_H D^{1/2}``, ``A* = D^{-1/2} U_H^T C*`` with ``D`` the diagonal of ``||U_H^T C*||``
        rows (any factorisation gives the same ``L_n``).
        """
        sxx = data.sxx.double()
        c_ols = torch.linalg.solve(sxx, data.syx.double().T).T
        ev, U = torch.linalg.eigh(c_ols @ sxx @ c_ols.T)
        uh = U[:, torch.argsort(ev, descending=True)[: self.H]]
        if uh.shape[1] < self.H:  # H > N: pad with zero columns
            uh = torch.cat([uh, torch.zeros(self.N, self.H - uh.shape[1], dtype=uh.dtype)], dim=1)
        rows = uh.T @ c_ols  # (H, M)
        s = torch.sqrt(rows.norm(dim=1).clamp_min(1e-12))
        A = rows / s[:, None]
        B = uh * s[None, :]
        return self.join(A, B).to(data.sxx.dtype)


def make_rrr_data(
    problem: RRRProblem,
    n: int,
    *,
    seed: int | np.random.Generator = 0,
    dtype: torch.dtype = torch.float64,
    singular_values: tuple[float, float] = (1.0, 2.0),
) -> RRRData:
    """Draw ``n`` samples ``x ~ N(0, I_M)``, ``y = B0 A0 x + sigma eps`` with a random rank-``r`` truth.

    ``C0 = B0 A0 = U diag(s) V^T`` with Haar-random orthonormal ``U (N, r)``, ``V (M, r)`` and singular values
    ``s`` evenly spaced in ``singular_values = (s_min, s_max)`` (default ``[1, 2]``; ``s_min > 0`` keeps the
    rank ``r`` at every sample size; a large ``s_max``, e.g. 12, gives the large-scale truths whose curvature
    at ``w*`` is ~``s_max`` times larger);
    ``B0 = [U diag(s)^{1/2}, 0]``, ``A0 = [diag(s)^{1/2} V^T; 0]``.
    """
    if not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n!r}")
    lo, hi = (float(v) for v in singular_values)
    if not 0 < lo <= hi:
        raise ValueError(f"singular_values must be (s_min, s_max) with 0 < s_min <= s_max, "
                         f"got {singular_values}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    p = problem
    A0 = np.zeros((p.H, p.M))
    B0 = np.zeros((p.N, p.H))
    if p.r > 0:
        U = np.linalg.qr(rng.standard_normal((p.N, p.r)))[0]
        V = np.linalg.qr(rng.standard_normal((p.M, p.r)))[0]
        sq = np.sqrt(np.linspace(lo, hi, p.r))
        A0[: p.r] = sq[:, None] * V.T
        B0[:, : p.r] = U * sq[None, :]
    X = rng.standard_normal((n, p.M))
    Y = X @ (B0 @ A0).T + p.sigma * rng.standard_normal((n, p.N))
    t = lambda a: torch.as_tensor(a, dtype=dtype)
    return RRRData(
        n=int(n),
        sxx=t(X.T @ X / n),
        syx=t(Y.T @ X / n),
        syy=float(np.sum(Y * Y) / n),
        A0=t(A0),
        B0=t(B0),
        sigma=float(p.sigma),
    )
