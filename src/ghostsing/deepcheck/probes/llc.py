r"""Local learning coefficient (LLC) by Langevin sampling of the localised tempered posterior (Lau, Furman,
Wang, Murfet & Wei 2023), with step sizes set by the problem's own scale, bias control and diagnostics.

One idea: the local learning coefficient estimated by Langevin sampling: the samplers, their preconditioning
and step-size control, and the diagnostics of the sampled loss trace.

Estimator.  With ``L_n`` the empirical negative log-likelihood per sample on the **whole** training set of
size ``n``, ``w*`` a trained parameter (a local minimum of ``L_n``), inverse temperature ``beta = 1 / ln n``
and localisation ``gamma``:

    lambda_hat(w*) = n beta ( E_w[L_n(w)] - L_n(w*) ),

the expectation over ``pi(w) ∝ exp(-U(w))``, ``U(w) = n beta L_n(w) + (gamma/2) ||w - w*||^2``.  At a
non-degenerate minimum ``pi`` is close to ``N(w*, (n beta H + gamma I)^{-1})`` and ``lambda_hat -> d/2``; in
general ``0 <= lambda <= d/2`` at a local minimum, so an estimate above ``d/2`` is flagged as impossible.

Samplers (``SGLDConfig.sampler``):

* ``'mala'`` (default with full-batch losses): preconditioned Metropolis-adjusted Langevin,
  ``w' = w - (eps/2) M grad U(w) + sqrt(eps) M^{1/2} xi``, accepted with probability
  ``min(1, exp(U(w) - U(w') + log q(w | w') - log q(w' | w)))``, ``q`` the Gaussian proposal density.  The
  Metropolis step makes ``pi`` exactly stationary for any ``eps``: no step-size bias.  During burn-in ``eps``
  is adapted (Robbins-Monro on ``log eps``) to an acceptance rate of 0.574 (the optimal rate of MALA) and
  ``M`` is set twice from the burn-in draws' covariance (full for ``d <= full_cov_max``, else its diagonal,
  shrunk 10 % towards its mean), so one run adapts to any scale of curvature and of ``n beta``; both are
  frozen for the draws.  Step cap (``SGLDConfig.mala_h_max``, default 2): on a locally Gaussian ``U``
  with curvature ``a`` along a direction (in the metric of ``M``) and ``h = eps a``, the proposal mean from
  ``x`` is ``(1 - h/2) x`` and the log acceptance is exactly ``(h/8)(x^2 - x'^2)`` (``x`` in units of the
  posterior width); for ``h > 4`` the mean overshoots (``|1 - h/2| > 1``), so a state in the tail is almost
  never left: the chain sticks there for hundreds of steps and its LLC is heavy-tailed.  The
  acceptance-rate target does not prevent it: on a curved minimum set (reduced-rank regression) one fixed
  ``M`` cannot follow the
  rotating stiff direction, ``h`` varies along the chain (measured on (M,H,N,r) = (1,3,1,1): ``h = 2.1`` at
  ``w*``, median 4.2 and up to 11.6 over the draws at the adapted step; one chain stuck at ``n beta (L - L*)
  = 5.6`` for ~400 draws gave 0.998 for a true 0.5).  So at the end of the burn-in
  ``eps <= mala_h_max / a_hat``, ``a_hat`` the largest ``lambda_max(M^{1/2} grad^2 U(w) M^{1/2})`` over the
  chains' states at four times in the last 40 % of the burn-in (batched power iteration): ``h <= 2`` (the
  proposal mean lands on the mode in the stiffest direction seen), a factor 2 below the sticking threshold
  for states stiffer than those seen (measured: draws' max / burn-in max = 1.3).
* ``'sgld'`` (needed with mini-batches): ``w' = w - (eps/2) M [n beta grad L_m(w) + gamma (w - w*)] +
  sqrt(eps) M^{1/2} xi``, unadjusted, ``M`` adapted in the burn-in as for MALA.  On a quadratic ``U`` with
  curvatures ``a_i`` (in the metric of ``M``) its stationary variance is ``1/(a_i (1 - eps a_i / 4))``, so
  ``lambda_hat`` is biased upwards by about ``eps a / 4`` per stiff direction: the default step is relative,
  ``eps = step_rel / a_max`` with ``a_max = lambda_max(M^{1/2} (n beta H(w*) + gamma I) M^{1/2})`` (Lanczos at
  ``w*``, recomputed when ``M`` changes), and ``extrapolate=True`` removes the first-order bias by running the
  chains at ``eps`` and ``2 eps`` (Richardson: ``2 lambda_hat(eps) - lambda_hat(2 eps)``).

Defaults: ``gamma = gamma_rel * sqrt(n beta)``.  The posterior spread along a quartic (singular) direction is
``~ (n beta)^{-1/4}``, so a prior of precision ``gamma << sqrt(n beta)`` leaves it nearly untouched while it
still confines the non-compact flat directions (e.g. ``A -> g A``, ``B -> B g^{-1}`` in reduced-rank
regression).

Diagnostics (``LLCResult.flags``): non-finite losses; ``lambda_hat > d/2`` (impossible at a local minimum);
draws with ``n beta (L - L(w*)) > 10 d`` (the chain left the basin); negative estimates (``w*`` is not a local
minimum); a stationarity z-score per chain (first vs second half of the draws, batch-means standard errors);
chains that disagree; a MALA acceptance rate outside ``[0.3, 0.9]``; an SGLD step whose bias estimate
``eps a_max / 4`` exceeds 5 %.  ``out=`` streams the per-step losses to ``out.losses.f32`` (float32,
``chains`` values per step, appended as the run goes) and writes ``out.json`` (the summary) at the end.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "SGLDConfig",
    "LLCResult",
    "estimate_llc",
    "stationarity_z",
    "functional_batched_loss",
    "load_loss_trace",
    "SAMPLERS",
    "PRECONDITIONERS",
    "hessian_preconditioner",
    "gaussian_llc",
]

SAMPLERS: tuple[str, ...] = ("auto", "mala", "sgld")
PRECONDITIONERS: tuple[str, ...] = ("auto", "full", "diag", "none", "hessian")
MALA_TARGET = 0.574


@dataclass(frozen=True)
class SGLDConfig:
    """Sampler settings (module docstring).

    ``step_size=None``: MALA starts from ``step_rel / a_max`` and adapts; SGLD uses ``step_rel / a_max``,
    ``a_max = n beta lambda_max(H(w*)) + gamma``, and after each change of the preconditioner ``M``
    ``step_rel / lambda_max(M^{1/2} (n beta H + gamma) M^{1/2})``.  ``gamma=None``:
    ``gamma_rel * sqrt(n beta)``.  ``nbeta=None``: ``n / ln n``.  ``batch_size=None``: full-batch losses.
    ``sampler='auto'``: ``'mala'`` with full batches, ``'sgld'`` with mini-batches.  ``preconditioner``:
    ``'auto'`` (full covariance for ``d <= full_cov_max``, else diagonal), ``'full'``, ``'diag'`` or
    ``'none'``, adapted in the burn-in.  ``extrapolate``: SGLD step extrapolation.  ``mala_h_max``: MALA
    step cap ``eps * a_hat <= mala_h_max`` over the late burn-in states (module docstring; None: no cap).
    """

    step_size: float | None = None
    gamma: float | None = None
    nbeta: float | None = None
    num_chains: int = 8
    num_draws: int = 8000
    num_burnin: int = 1000
    batch_size: int | None = None
    thin: int = 1
    sampler: str = "auto"
    step_rel: float = 0.05
    gamma_rel: float = 0.05
    preconditioner: str = "auto"
    full_cov_max: int = 2000
    extrapolate: bool = False
    mala_h_max: float | None = 2.0

    def __post_init__(self) -> None:
        if self.step_size is not None and not self.step_size > 0:
            raise ValueError(f"step_size must be > 0 or None, got {self.step_size}")
        if self.gamma is not None and not self.gamma >= 0:
            raise ValueError(f"gamma must be >= 0 or None, got {self.gamma}")
        if self.nbeta is not None and not self.nbeta > 0:
            raise ValueError(f"nbeta must be > 0 or None, got {self.nbeta}")
        for name in ("num_chains", "num_draws", "thin"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_burnin < 0:
            raise ValueError(f"num_burnin must be >= 0, got {self.num_burnin}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 or None, got {self.batch_size}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.sampler == "mala" and self.batch_size is not None:
            raise ValueError("sampler='mala' needs full-batch losses (batch_size=None): the Metropolis test "
                             "compares exact values of L_n; use sampler='sgld' with mini-batches")
        if not 0 < self.step_rel < 2:
            raise ValueError(f"step_rel must be in (0, 2) (eps * a_max; >= 2 diverges), got {self.step_rel}")
        if not self.gamma_rel >= 0:
            raise ValueError(f"gamma_rel must be >= 0, got {self.gamma_rel}")
        if self.preconditioner not in PRECONDITIONERS:
            raise ValueError(f"preconditioner must be one of {PRECONDITIONERS}, got {self.preconditioner!r}")
        if self.mala_h_max is not None and not 0 < self.mala_h_max < 4:
            raise ValueError(f"mala_h_max must be in (0, 4) (eps a >= 4 overshoots: MALA sticks) or None, "
                             f"got {self.mala_h_max}")
        if self.full_cov_max < 1:
            raise ValueError(f"full_cov_max must be >= 1, got {self.full_cov_max}")


@dataclass(frozen=True)
class LLCResult:
    """LLC estimate ``llc`` (all chains pooled; Richardson-extrapolated for SGLD with ``extrapolate``), its
    standard error ``llc_stderr`` (spread of the per-chain estimates / sqrt(chains)), per-chain estimates,
    traces and diagnostics."""

    llc: float
    llc_std: float
    llc_per_chain: np.ndarray
    loss_star: float
    nbeta: float
    loss_trace: np.ndarray  # (chains, draws) post-burn-in losses
    burnin_trace: np.ndarray  # (chains, burnin)
    stationarity_z: np.ndarray  # (chains,)
    distance_trace: np.ndarray  # (chains, draws) ||w_t - w*||
    flags: tuple[str, ...] = field(default=())
    config: dict = field(default_factory=dict)
    sampler: str = "sgld"
    step_size: float = float("nan")
    gamma: float = float("nan")
    acceptance: np.ndarray = field(default_factory=lambda: np.zeros(0))
    lambda_max_star: float = float("nan")
    llc_at_step: float = float("nan")
    llc_at_double_step: float = float("nan")
    mala_curvature_max: float = float("nan")  # a_hat of the MALA step cap (nan: not measured)
    mala_step_capped: bool = False
    llc_gaussian: float = float("nan")  # gaussian_llc at w* (preconditioner='hessian' only)

    @property
    def ok(self) -> bool:
        return not self.flags

    @property
    def llc_stderr(self) -> float:
        c = len(self.llc_per_chain)
        return self.llc_std / math.sqrt(c) if c > 1 else float("nan")

    def summary(self) -> dict:
        return {
            "llc": self.llc,
            "llc_stderr": self.llc_stderr,
            "llc_std_over_chains": self.llc_std,
            "llc_per_chain": self.llc_per_chain.tolist(),
            "loss_star": self.loss_star,
            "nbeta": self.nbeta,
            "sampler": self.sampler,
            "step_size": self.step_size,
            "gamma": self.gamma,
            "acceptance": self.acceptance.tolist(),
            "lambda_max_star": self.lambda_max_star,
            "llc_at_step": self.llc_at_step,
            "llc_at_double_step": self.llc_at_double_step,
            "mala_curvature_max": self.mala_curvature_max,
            "mala_step_capped": self.mala_step_capped,
            "llc_gaussian": self.llc_gaussian,
            "stationarity_z": self.stationarity_z.tolist(),
            "flags": list(self.flags),
            "config": self.config,
        }


def stationarity_z(trace: np.ndarray, n_batches: int = 10) -> np.ndarray:
    """Geweke-like z-score per row: ``(mean_1 - mean_2) / sqrt(se_1^2 + se_2^2)`` of the two halves.

    Standard errors by batch means (``n_batches`` batches per half), so autocorrelation is accounted for.
    """
    tr = np.atleast_2d(np.asarray(trace, dtype=np.float64))
    t = tr.shape[1] // 2
    if t < 2 * n_batches:
        raise ValueError(f"trace too short for stationarity test: {tr.shape[1]} < {4 * n_batches} draws")
    out = []
    for row in tr:
        halves = [row[:t], row[t : 2 * t]]
        means, ses = [], []
        for h in halves:
            bm = h[: (len(h) // n_batches) * n_batches].reshape(n_batches, -1).mean(1)
            means.append(h.mean())
            ses.append(bm.std(ddof=1) / math.sqrt(n_batches))
        denom = math.sqrt(ses[0] ** 2 + ses[1] ** 2)
        out.append((means[0] - means[1]) / denom if denom > 0 else 0.0)
    return np.array(out)


def functional_batched_loss(
    model: torch.nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], x: Tensor, y: Tensor
) -> tuple[Callable[[Tensor, Tensor | None], Tensor], Tensor]:
    """``(loss(W, idx) -> (C,), w*)`` for an ``nn.Module``: ``loss(W, idx)[c] = loss_fn(model_{W_c}(x[idx]),
    y[idx])`` (all data when ``idx`` is None), ``vmap``-ed over the chains; from the one flattened-loss object
    (:meth:`ghostsing.deepcheck.operators.FlatLoss.batched`), in the model's current train / eval mode."""
    from ghostsing.deepcheck.operators import flat_loss

    fl = flat_loss(model, loss_fn, x, y, eval_mode=not model.training)
    return fl.batched, fl.theta


def load_loss_trace(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """Read what ``estimate_llc(..., out=path)`` wrote: the ``(steps, chains)`` float32 losses (burn-in
    included) and the summary dict."""
    with open(f"{path}.json") as fh:
        summ = json.load(fh)
    c = int(summ["config"]["num_chains"])
    return np.fromfile(f"{path}.losses.f32", dtype=np.float32).reshape(-1, c), summ


def _lambda_max(f1: Callable[[Tensor], Tensor], w0: Tensor) -> float:
    """Largest Hessian eigenvalue of ``f1`` at ``w0`` by Lanczos (tolerance 1e-2: a scale, not a result)."""
    from ghostsing.deepcheck.operators import FunctionOperator, _make_hvp

    from .hessian import ConvergenceWarning, extreme_eigenvalues

    d = int(w0.numel())
    op = FunctionOperator(_make_hvp(f1, w0.detach(), "jvp"), d, dtype=w0.dtype, device=w0.device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return float(extreme_eigenvalues(op, 1, m=min(d, 40), tol=1e-2).values[0])


class _Precond:
    """``M`` (full SPD matrix via its Cholesky factor, a diagonal, or the identity) with ``M v``,
    ``M^{1/2} xi`` and ``r^T M^{-1} r`` row-wise."""

    def __init__(self, kind: str, d: int, dtype, device):
        self.kind = kind
        self.diag = torch.ones(d, dtype=dtype, device=device)
        self.chol: Tensor | None = None
        self.full: Tensor | None = None

    def set_cov(self, cov: Tensor) -> None:
        """From a sample covariance (full ``(d, d)`` or its diagonal ``(d,)``), shrunk 10 % towards
        ``(tr / d) I``."""
        if self.kind == "none":
            return
        if self.kind == "diag":
            self.diag = (0.9 * cov + 0.1 * cov.mean()).clamp_min(1e-30)
            return
        d = cov.shape[0]
        cov = 0.5 * (cov + cov.T)
        cov = 0.9 * cov + 0.1 * (torch.trace(cov) / d) * torch.eye(d, dtype=cov.dtype, device=cov.device)
        self.full, self.chol = cov, torch.linalg.cholesky(cov)

    def set_matrix(self, m: Tensor) -> None:
        """``M`` given outright (symmetric positive definite, ``(d, d)``), not estimated from draws."""
        self.full, self.chol = m, torch.linalg.cholesky(m)

    def mv(self, g: Tensor) -> Tensor:
        return g @ self.full if self.full is not None else g * self.diag

    def sqrt_mv(self, xi: Tensor) -> Tensor:
        return xi @ self.chol.T if self.chol is not None else xi * self.diag.sqrt()

    def inv_quad(self, r: Tensor) -> Tensor:
        if self.chol is not None:
            y = torch.linalg.solve_triangular(self.chol, r.T, upper=False)
            return (y * y).sum(0)
        return (r * r / self.diag).sum(1)

    @property
    def scale(self) -> float:
        """Mean eigenvalue of ``M`` (for the first proposal after a change of ``M``)."""
        if self.full is not None:
            return float(torch.trace(self.full) / self.full.shape[0])
        return float(self.diag.mean())


class _CovAdapter:
    """Burn-in covariance windows ``[0.1 b, 0.3 b)`` and ``[0.35 b, 0.6 b)`` (running sums over all chains);
    at the end of each window ``M`` is set from the window's covariance (:meth:`_Precond.set_cov`)."""

    def __init__(self, pre: _Precond, w0: Tensor, burnin: int):
        self.pre, self.w0 = pre, w0
        self.wins = [(int(0.1 * burnin), int(0.3 * burnin)), (int(0.35 * burnin), int(0.6 * burnin))]
        d = int(w0.numel())
        full = pre.kind == "full"
        self.s1 = torch.zeros(d, dtype=w0.dtype, device=w0.device)
        self.s2 = torch.zeros((d, d) if full else d, dtype=w0.dtype, device=w0.device)
        self.cnt = 0

    def observe(self, t: int, W: Tensor) -> bool:
        """Accumulate the states ``W (C, d)`` of step ``t``; True when ``M`` was just updated."""
        if self.pre.kind in ("none", "hessian"):
            return False
        full = self.pre.kind == "full"
        for lo, hi in self.wins:
            if lo <= t < hi:
                X = W - self.w0
                self.s1 += X.sum(0)
                self.s2 += X.T @ X if full else (X * X).sum(0)
                self.cnt += X.shape[0]
            if t == hi - 1 and self.cnt > 1:
                m = self.s1 / self.cnt
                cov = (self.s2 - self.cnt * (torch.outer(m, m) if full else m * m)) / (self.cnt - 1)
                self.pre.set_cov(cov)
                self.s1.zero_()
                self.s2.zero_()
                self.cnt = 0
                return True
        return False


def hessian_preconditioner(hessian: Tensor, nbeta: float, gamma: float) -> tuple[Tensor, Tensor]:
    r"""The constant preconditioner ``M = (n beta |H| + gamma I)^{-1}`` of a dense Hessian ``H`` at ``w*``.

    With ``H = V diag(lambda) V^T``, ``|H| = V diag(|lambda_i|) V^T``, so ``M = V diag(1 / (n beta |lambda_i|
    + gamma)) V^T``: symmetric positive definite for any ``gamma > 0`` (also where ``H`` has negative
    eigenvalues).  Langevin dynamics with a constant ``M`` (``w' = w - (eps/2) M grad U + sqrt(eps) M^{1/2}
    xi``) has the same stationary law ``pi ∝ exp(-U)`` for every SPD ``M``; this one makes the curvature of
    ``U = n beta L_n + (gamma/2) |w - w*|^2`` at ``w*`` equal to 1 in every direction
    (``M^{1/2} (n beta H + gamma I) M^{1/2} = I`` when ``H >= 0``), so stiff and flat directions (curvatures
    from ``gamma`` to ``n beta lambda_max``, a ratio of ``10^4``-``10^6`` for a trained net) relax in the same
    ``~1/eps`` steps instead of ``n beta lambda_max / gamma`` of them.  Returns ``(M, eigenvalues of H)``.
    """
    if hessian.ndim != 2 or hessian.shape[0] != hessian.shape[1]:
        raise ValueError(f"hessian must be a square (d, d) matrix, got shape {tuple(hessian.shape)}")
    if not gamma > 0:
        raise ValueError(f"the Hessian preconditioner needs gamma > 0, got gamma={gamma}")
    lam, vec = torch.linalg.eigh(0.5 * (hessian + hessian.T))
    m = (vec / (nbeta * lam.abs() + gamma)) @ vec.T
    return 0.5 * (m + m.T), lam


def gaussian_llc(eigenvalues, nbeta: float, gamma: float) -> float:
    r"""The LLC estimate of a *regular* minimum: the Laplace (Gaussian) approximation of the estimator.

    If ``L_n(w) = L_n(w*) + (1/2) (w - w*)^T H (w - w*)`` exactly, ``pi = N(w*, (n beta H + gamma I)^{-1})``
    and ``lambda_hat = n beta E[L_n - L_n(w*)] = (1/2) sum_i n beta lambda_i / (n beta lambda_i + gamma)``,
    ``lambda_i`` the eigenvalues of ``H``: ``d/2`` as ``gamma -> 0``; a direction with ``n beta lambda_i <<
    gamma`` counts ~0, one with ``n beta lambda_i >> gamma`` counts 1/2.  Non-positive eigenvalues contribute
    0 (no Gaussian exists along them).  A sampled LLC below this value measures what the quadratic
    approximation misses: higher-order (singular) flatness on the scale ``(n beta)^{-1/2}``; the gamma
    dependence of this formula is the dependence a regular model would show.
    """
    lam = np.clip(np.asarray(eigenvalues, dtype=float), 0.0, None)
    if not (nbeta > 0 and gamma >= 0):
        raise ValueError(f"need nbeta > 0 and gamma >= 0, got nbeta={nbeta}, gamma={gamma}")
    a = nbeta * lam
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = np.where(a > 0, a / (a + gamma), 0.0)
    return float(0.5 * terms.sum())


def _make_precond(cfg: SGLDConfig, f1: Callable[[Tensor], Tensor], w0: Tensor, nbeta: float,
                  gamma: float) -> tuple[_Precond, np.ndarray | None]:
    """A fresh preconditioner of ``cfg``'s kind; for ``'hessian'`` set from the dense Hessian of ``f1`` at
    ``w0`` (and its eigenvalues returned)."""
    d = int(w0.numel())
    pre = _Precond(_precond_kind(cfg, d), d, w0.dtype, w0.device)
    if pre.kind != "hessian":
        return pre, None
    if d > cfg.full_cov_max:
        raise ValueError(f"preconditioner='hessian' builds a dense (d, d) Hessian: d={d} exceeds "
                         f"full_cov_max={cfg.full_cov_max}; use 'diag' or raise full_cov_max")
    h = torch.func.hessian(f1)(w0.detach())
    m, lam = hessian_preconditioner(h, nbeta, gamma)
    pre.set_matrix(m)
    return pre, lam.double().cpu().numpy()


def _precond_kind(cfg: SGLDConfig, d: int) -> str:
    if cfg.preconditioner == "auto":
        return "full" if d <= cfg.full_cov_max else "diag"
    return cfg.preconditioner


def _stream(out: str | os.PathLike | None):
    if out is None:
        return None
    path = f"{out}.losses.f32"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return open(path, "wb")


def _batched_precond_lambda_max(u_fn: Callable[[Tensor], Tensor], W: Tensor, pre: _Precond, gen,
                                iters: int = 20) -> Tensor:
    """``lambda_max(M^{1/2} grad^2 U(W_c) M^{1/2})`` for each row ``W_c`` of ``W (C, d)`` by power iteration
    (all chains at once: ``u_fn`` returns one ``U`` per row, so the Hessian of their sum is block-diagonal);
    the Rayleigh quotient of the last iterate (a lower bound, within a few % here)."""
    W = W.detach()
    with torch.enable_grad():
        Wr = W.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(u_fn(Wr).sum(), Wr, create_graph=True)

    def op(V: Tensor) -> Tensor:
        (hu,) = torch.autograd.grad(g, Wr, grad_outputs=pre.sqrt_mv(V), retain_graph=True)
        return hu @ pre.chol if pre.chol is not None else hu * pre.diag.sqrt()

    V = torch.randn(W.shape, generator=gen, dtype=W.dtype, device=W.device)
    V = V / V.norm(dim=1, keepdim=True)
    lam = torch.zeros(W.shape[0], dtype=W.dtype, device=W.device)
    with torch.enable_grad():
        for _ in range(iters):
            AV = op(V).detach()
            lam = (AV * V).sum(1).abs()
            V = AV / AV.norm(dim=1, keepdim=True).clamp_min(1e-300)
    return lam


def _run_mala(loss, w0: Tensor, nbeta: float, gamma: float, cfg: SGLDConfig, eps0: float, gen, fh,
              pre: _Precond):
    """Preconditioned MALA with burn-in adaptation (module docstring).  Returns losses, distances, the final
    step, per-chain acceptance over the draws."""
    C = cfg.num_chains
    kind = pre.kind
    total = cfg.num_burnin + cfg.num_draws * cfg.thin

    def u_and_grad(W: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        W = W.detach().requires_grad_(True)
        with torch.enable_grad():
            lv = loss(W, None)
            u = nbeta * lv + 0.5 * gamma * ((W - w0) ** 2).sum(1)
            (g,) = torch.autograd.grad(u.sum(), W)
        return u.detach(), g.detach(), lv.detach()

    W = w0.expand(C, -1).clone()
    U, G, LV = u_and_grad(W)
    log_eps = math.log(eps0)
    b = cfg.num_burnin
    adapter = _CovAdapter(pre, w0, b)
    t_adapt = 0
    acc_draws = np.zeros(C)
    log_eps_tail: list[float] = []
    losses, dists = np.empty((C, total)), np.empty((C, total))
    cap_at = {int(f * b) for f in (0.65, 0.75, 0.85)} | {b - 1} if cfg.mala_h_max is not None and b >= 10 \
        else set()
    a_hat = float("nan")
    u_only = lambda V: nbeta * loss(V, None) + 0.5 * gamma * ((V - w0) ** 2).sum(1)  # noqa: E731
    for t in range(total):
        eps = math.exp(log_eps)
        xi = torch.randn(W.shape, generator=gen, dtype=W.dtype, device=W.device)
        Wp = W - 0.5 * eps * pre.mv(G) + math.sqrt(eps) * pre.sqrt_mv(xi)
        Up, Gp, LVp = u_and_grad(Wp)
        fwd = pre.inv_quad(Wp - W + 0.5 * eps * pre.mv(G)) / (2 * eps)
        bwd = pre.inv_quad(W - Wp + 0.5 * eps * pre.mv(Gp)) / (2 * eps)
        log_a = (U - Up) + fwd - bwd
        log_a = torch.where(torch.isfinite(log_a), log_a, torch.full_like(log_a, -math.inf))
        acc = torch.log(torch.rand(C, generator=gen, dtype=W.dtype, device=W.device)) < log_a
        W = torch.where(acc[:, None], Wp, W)
        U, G, LV = (torch.where(acc, Up, U), torch.where(acc[:, None], Gp, G), torch.where(acc, LVp, LV))
        a_rate = float(torch.clamp(log_a, max=0.0).exp().mean())
        if t < b:  # adapt the step (Robbins-Monro on log eps) and, twice, the preconditioner
            log_eps += 2.0 * (a_rate - MALA_TARGET) / (1 + t - t_adapt) ** 0.6
            old = pre.scale
            if adapter.observe(t, W):
                log_eps += math.log(old / pre.scale)  # the same proposal scale in the new metric
                t_adapt = t
            if t >= int(0.8 * b):
                log_eps_tail.append(log_eps)
            if t in cap_at:  # stiffness of the states the adapted sampler visits (module docstring)
                lam = float(_batched_precond_lambda_max(u_only, W, pre, gen).max())
                a_hat = lam if not a_hat >= lam else a_hat
            if t == b - 1 and log_eps_tail:
                log_eps = float(np.mean(log_eps_tail))
            if t == b - 1 and a_hat > 0 and math.isfinite(a_hat):
                log_eps = min(log_eps, math.log(cfg.mala_h_max / a_hat))
        else:
            acc_draws += acc.double().cpu().numpy()
        losses[:, t] = LV.double().cpu().numpy()
        dists[:, t] = (W - w0).norm(dim=1).double().cpu().numpy()
        if fh is not None:
            fh.write(LV.float().cpu().numpy().tobytes())
    return losses, dists, math.exp(log_eps), acc_draws / max(1, total - b), kind, a_hat


def _precond_lambda_max(f1: Callable[[Tensor], Tensor], w0: Tensor, nbeta: float, gamma: float,
                        pre: _Precond) -> float:
    """``lambda_max(M^{1/2} (n beta H(w*) + gamma I) M^{1/2})`` by Lanczos (``M^{1/2}``: the Cholesky factor
    or the square root of the diagonal; the spectrum is that of ``M (n beta H + gamma I)``)."""
    from ghostsing.deepcheck.operators import FunctionOperator, _make_hvp

    from .hessian import ConvergenceWarning, extreme_eigenvalues

    d = int(w0.numel())
    hvp = _make_hvp(f1, w0.detach(), "jvp")

    def op(v: Tensor) -> Tensor:
        u = pre.sqrt_mv(v)  # rows: u = L v (row convention: v @ L^T)
        a = nbeta * hvp(u) + gamma * u
        return a @ pre.chol if pre.chol is not None else a * pre.diag.sqrt()

    A = FunctionOperator(op, d, dtype=w0.dtype, device=w0.device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return float(extreme_eigenvalues(A, 1, m=min(d, 40), tol=1e-2).values[0])


def _run_sgld(loss, w0: Tensor, n: int, nbeta: float, gamma: float, cfg: SGLDConfig, eps: float, gen, fh,
              relative: bool, pre: _Precond):
    """Preconditioned SGLD ``w' = w - (eps/2) M grad U_m(w) + sqrt(eps) M^{1/2} xi`` (``U_m`` with the
    mini-batch loss); ``M`` adapted in the burn-in (as for MALA) and, when ``relative``, ``eps = step_rel /
    lambda_max(M^{1/2} (n beta H + gamma) M^{1/2})`` after each change of ``M``.  Returns the losses,
    distances,
    the final step and ``eps * lambda_max / 4`` (the step-bias estimate)."""
    C = cfg.num_chains
    adapter = _CovAdapter(pre, w0, cfg.num_burnin)
    f1 = lambda w: loss(w[None], None)[0]  # noqa: E731
    lam = _precond_lambda_max(f1, w0, nbeta, gamma, pre)
    W = w0.expand(C, -1).clone()
    total = cfg.num_burnin + cfg.num_draws * cfg.thin
    losses, dists = np.empty((C, total)), np.empty((C, total))
    for t in range(total):
        idx = None
        if cfg.batch_size is not None:
            idx = torch.randint(0, n, (cfg.batch_size,), generator=gen, device=w0.device)
        W.requires_grad_(True)
        with torch.enable_grad():
            lv = loss(W, idx)
            (g,) = torch.autograd.grad(lv.sum(), W)
        with torch.no_grad():
            noise = torch.randn(W.shape, generator=gen, dtype=W.dtype, device=W.device)
            W = W - 0.5 * eps * pre.mv(nbeta * g + gamma * (W - w0)) + math.sqrt(eps) * pre.sqrt_mv(noise)
        losses[:, t] = lv.detach().double().cpu().numpy()
        dists[:, t] = (W - w0).norm(dim=1).double().cpu().numpy()
        if fh is not None:
            fh.write(lv.detach().float().cpu().numpy().tobytes())
        if t < cfg.num_burnin and adapter.observe(t, W.detach()):
            lam = _precond_lambda_max(f1, w0, nbeta, gamma, pre)
            if relative:
                eps = cfg.step_rel / lam
    return losses, dists, eps, eps * lam / 4


def estimate_llc(
    loss,
    w_star: Tensor,
    n: int,
    config: SGLDConfig = SGLDConfig(),
    *,
    seed: int = 0,
    drift_z: float = 4.0,
    spread_tol: float = 0.3,
    out: str | os.PathLike | None = None,
) -> LLCResult:
    """LLC at ``w_star`` (shape ``(P,)``) by the sampler of ``config`` (module docstring).

    ``loss(W, idx)`` returns the mean per-sample negative log-likelihood of each row of ``W (C, P)`` on the
    samples ``idx`` (a LongTensor of indices into the training set, or ``None`` for all ``n`` samples),
    differentiable in ``W``; a :class:`~ghostsing.deepcheck.operators.FlatLoss` is used through its
    ``batched`` method.  ``n`` is the training-set size (it sets ``n beta = n / ln n``, whatever the batch
    size).  ``out``: stream the per-step losses to ``out.losses.f32`` and write ``out.json`` (see
    :func:`load_loss_trace`).
    """
    from ghostsing.deepcheck.operators import FlatLoss

    if isinstance(loss, FlatLoss):
        loss = loss.batched
    if not callable(loss):
        raise TypeError(f"loss must be a callable loss(W, idx) or a FlatLoss, got {type(loss).__name__}")
    if not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n (training-set size) must be an int >= 2, got {n!r}")
    if not isinstance(w_star, Tensor) or w_star.ndim != 1:
        raise ValueError(f"w_star must be a flat (P,) tensor, "
                         f"got shape {tuple(getattr(w_star, 'shape', ()))}")
    cfg = config
    if cfg.batch_size is not None and cfg.batch_size > n:
        raise ValueError(f"batch_size={cfg.batch_size} exceeds n={n}")
    sampler = cfg.sampler if cfg.sampler != "auto" else ("mala" if cfg.batch_size is None else "sgld")
    nbeta = float(n / math.log(n)) if cfg.nbeta is None else float(cfg.nbeta)
    gamma = cfg.gamma_rel * math.sqrt(nbeta) if cfg.gamma is None else float(cfg.gamma)
    d = int(w_star.numel())
    gen = torch.Generator(device=w_star.device).manual_seed(int(seed))
    w0 = w_star.detach()
    with torch.no_grad():
        loss_star = float(loss(w0[None], None)[0])
    lam_max = float("nan")
    if cfg.step_size is None:
        lam_max = _lambda_max(lambda w: loss(w[None], None)[0], w0)
        a_max = nbeta * max(lam_max, 0.0) + gamma
        if not a_max > 0:
            raise ValueError("step_size=None needs a positive curvature scale n beta lambda_max + gamma; "
                             f"got lambda_max={lam_max:g}, gamma={gamma:g}: pass step_size or gamma > 0")
        eps = cfg.step_rel / a_max
    else:
        eps = float(cfg.step_size)
    C = cfg.num_chains
    fh = _stream(out)
    acc = np.zeros(0)
    bias = float("nan")
    llc_eps = llc_2eps = float("nan")
    a_hat, capped = float("nan"), False
    f1 = lambda w: loss(w[None], None)[0]  # noqa: E731
    pre, h_eig = _make_precond(cfg, f1, w0, nbeta, gamma)
    llc_gauss = gaussian_llc(h_eig, nbeta, gamma) if h_eig is not None else float("nan")
    if h_eig is not None and cfg.step_size is None:  # curvature 1 at w* in the metric of M
        eps = cfg.step_rel / _precond_lambda_max(f1, w0, nbeta, gamma, pre)
    try:
        if sampler == "mala":
            losses, dists, eps, acc, _, a_hat = _run_mala(loss, w0, nbeta, gamma, cfg, eps, gen, fh, pre)
            capped = bool(cfg.mala_h_max is not None and eps * a_hat <= cfg.mala_h_max * (1 + 1e-9))
        else:
            rel = cfg.step_size is None
            losses, dists, eps1, bias = _run_sgld(loss, w0, n, nbeta, gamma, cfg, eps, gen, fh, rel, pre)
            if cfg.extrapolate:
                cfg2 = replace(cfg, step_rel=min(1.9, 2 * cfg.step_rel))
                # a Hessian metric is constant (never adapted): reuse it; an adapted one starts afresh
                pre2 = pre if pre.kind == "hessian" else _make_precond(cfg, f1, w0, nbeta, gamma)[0]
                l2, _, _, _ = _run_sgld(loss, w0, n, nbeta, gamma, cfg2, 2 * eps, gen, fh, rel, pre2)
            eps = eps1
    finally:
        if fh is not None:
            fh.close()
    burn = losses[:, : cfg.num_burnin]
    draws = losses[:, cfg.num_burnin :: cfg.thin][:, : cfg.num_draws]
    dist = dists[:, cfg.num_burnin :: cfg.thin][:, : cfg.num_draws]
    per_chain = nbeta * (draws.mean(1) - loss_star)
    llc = float(nbeta * (draws.mean() - loss_star))
    if sampler == "sgld" and cfg.extrapolate:
        d2 = l2[:, cfg.num_burnin :: cfg.thin][:, : cfg.num_draws]
        llc_eps, llc_2eps = llc, float(nbeta * (d2.mean() - loss_star))
        per_chain = 2 * per_chain - nbeta * (d2.mean(1) - loss_star)
        llc = 2 * llc_eps - llc_2eps
    flags: list[str] = []
    z = np.full(C, np.nan)
    if not np.all(np.isfinite(losses)):
        flags.append("non-finite loss: step size too large")
    else:
        z = stationarity_z(draws) if cfg.num_draws >= 40 else np.zeros(C)
        if np.any(np.abs(z) > drift_z):
            k = int(np.sum(np.abs(z) > drift_z))
            flags.append(f"non-stationary chains (|z| > {drift_z} in {k} of {C}): "
                         "increase burn-in or the number of draws, or raise gamma")
        if C > 1 and np.std(per_chain, ddof=1) > spread_tol * abs(llc):
            flags.append(f"chains disagree: std/mean of per-chain LLC > {spread_tol}")
        if llc < 0:
            flags.append("negative LLC: w* is not a local minimum of L_n (train longer)")
        if llc > d / 2:
            flags.append(f"LLC {llc:.4g} above d/2 = {d / 2:g}, impossible at a local minimum: "
                         "step-size bias "
                         "(lower step_rel / use MALA) or w* is not a minimum")
        far = nbeta * (draws.max(1) - loss_star)
        if np.any(far > 10 * d):
            flags.append(f"E[L] - L(w*) too large: n beta (L - L(w*)) reached {far.max():.3g} > 10 d; "
                         "the chains "
                         "left the basin (raise gamma, lower the step)")
        # a capped step is smaller than the adapted one on purpose, so its high acceptance is expected
        high = acc.mean() > 0.9 and not capped if len(acc) else False
        if sampler == "mala" and len(acc) and (acc.mean() < 0.3 or high):
            flags.append(f"MALA acceptance {acc.mean():.2f} outside [0.3, 0.9]: "
                         "longer burn-in needed to adapt")
    if sampler == "sgld" and not cfg.extrapolate:
        if bias > 0.05:
            flags.append(f"SGLD step bias ~ eps a_max / 4 = {bias:.2g} > 5 %: "
                         "lower the step or extrapolate=True")
    res = LLCResult(
        llc=llc,
        llc_std=float(np.std(per_chain, ddof=1)) if C > 1 else float("nan"),
        llc_per_chain=per_chain,
        loss_star=loss_star,
        nbeta=nbeta,
        loss_trace=draws,
        burnin_trace=burn,
        stationarity_z=z,
        distance_trace=dist,
        flags=tuple(flags),
        config={**asdict(cfg), "n": int(n), "seed": int(seed), "d": d},
        sampler=sampler,
        step_size=float(eps),
        gamma=float(gamma),
        acceptance=acc,
        lambda_max_star=lam_max,
        llc_at_step=llc_eps,
        llc_at_double_step=llc_2eps,
        mala_curvature_max=a_hat,
        mala_step_capped=capped,
        llc_gaussian=llc_gauss,
    )
    if out is not None:
        tmp = f"{out}.json.tmp"
        with open(tmp, "w") as fh2:
            json.dump(res.summary(), fh2, indent=1)
        os.replace(tmp, f"{out}.json")
    return res
