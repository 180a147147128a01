r"""Local learning coefficient (LLC) by stochastic-gradient Langevin dynamics (Lau, Furman, Wang, Murfet & Wei
2023), with chain diagnostics.

Estimator.  With ``L_n`` the empirical negative log-likelihood per sample on the **whole** training set of
size ``n``, ``w*`` a trained parameter, inverse temperature ``beta = 1 / ln n`` and localisation ``gamma``:

    lambda_hat(w*) = n beta ( E_w[L_n(w)] - L_n(w*) ),

the expectation over the localised tempered posterior ``p(w) ∝ exp(-n beta L_n(w) - (gamma/2) ||w - w*||^2)``.
The expectation is approximated by SGLD chains started at ``w*``:

    w_{t+1} = w_t - (eps/2) [ n beta grad L_m(w_t) + gamma (w_t - w*) ] + N(0, eps I),

``L_m`` the mean loss on a mini-batch of ``m`` samples (or on all ``n``).  ``E_w[L_n(w)]`` is the mean over
the post-burn-in draws of all chains of ``L_m(w_t)`` (an unbiased estimate of ``L_n(w_t)``) and ``L_n(w*)`` is
computed on the whole training set.  The factor is ``n beta`` with the data-set size ``n``, not the batch
size ``m``.

Diagnostics (``LLCResult.flags``): per-chain estimates and their spread; a stationarity z-score per chain
(mean of the first vs the second half of the draws, standard errors from batch means); negative estimates
(the chain found lower loss: ``w*`` is not a local minimum); non-finite losses or a trace that keeps rising
(step size too large or ``gamma`` too small: the chain drifts out of the basin).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import Tensor

__all__ = ["SGLDConfig", "LLCResult", "estimate_llc", "stationarity_z", "functional_batched_loss"]


@dataclass(frozen=True)
class SGLDConfig:
    """SGLD settings.  ``nbeta=None`` uses ``n / ln n``; ``batch_size=None`` uses full-batch gradients."""

    step_size: float = 1e-4
    gamma: float = 100.0
    nbeta: float | None = None
    num_chains: int = 8
    num_draws: int = 1000
    num_burnin: int = 500
    batch_size: int | None = None
    thin: int = 1

    def __post_init__(self) -> None:
        if not self.step_size > 0:
            raise ValueError(f"step_size must be > 0, got {self.step_size}")
        if not self.gamma >= 0:
            raise ValueError(f"gamma must be >= 0, got {self.gamma}")
        if self.nbeta is not None and not self.nbeta > 0:
            raise ValueError(f"nbeta must be > 0 or None, got {self.nbeta}")
        for name in ("num_chains", "num_draws", "thin"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_burnin < 0:
            raise ValueError(f"num_burnin must be >= 0, got {self.num_burnin}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 or None, got {self.batch_size}")


@dataclass(frozen=True)
class LLCResult:
    """LLC estimate ``llc`` (all chains pooled), per-chain estimates, traces and diagnostics."""

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

    @property
    def ok(self) -> bool:
        return not self.flags

    def summary(self) -> dict:
        return {
            "llc": self.llc,
            "llc_std_over_chains": self.llc_std,
            "llc_per_chain": self.llc_per_chain.tolist(),
            "loss_star": self.loss_star,
            "nbeta": self.nbeta,
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
    """Turn a model and a data set into ``loss(W, idx) -> (C,)`` over stacked flat parameters ``W (C, P)``.

    ``loss(W, idx)[c] = loss_fn(model_{W_c}(x[idx]), y[idx])`` (all data when ``idx`` is None),
    vectorised over chains with ``torch.func.vmap``; returns the closure and the model's flat parameters
    ``w*``.
    """
    from ghostsing.deepcheck.operators import flat_loss

    fl = flat_loss(model, loss_fn, x, y, eval_mode=not model.training)
    return fl.batched, fl.theta


def estimate_llc(
    loss: Callable[[Tensor, Tensor | None], Tensor],
    w_star: Tensor,
    n: int,
    config: SGLDConfig = SGLDConfig(),
    *,
    seed: int = 0,
    drift_z: float = 4.0,
    spread_tol: float = 0.3,
) -> LLCResult:
    """SGLD estimate of the LLC at ``w_star`` (shape ``(P,)``).

    ``loss(W, idx)`` returns the mean per-sample negative log-likelihood of each row of ``W (C, P)`` on the
    samples ``idx`` (a LongTensor of indices into the training set, or ``None`` for all ``n`` samples); it
    must be differentiable in ``W``.  Flags are raised when ``|stationarity z| > drift_z`` for a chain, when
    the chains disagree (std / |mean| of the per-chain estimates > ``spread_tol``), when the estimate is
    negative or a loss is not finite.
    """
    if not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n (training-set size) must be an int >= 2, got {n!r}")
    if w_star.ndim != 1:
        raise ValueError(f"w_star must be a flat (P,) tensor, got shape {tuple(w_star.shape)}")
    cfg = config
    nbeta = float(n / math.log(n)) if cfg.nbeta is None else float(cfg.nbeta)
    if cfg.batch_size is not None and cfg.batch_size > n:
        raise ValueError(f"batch_size={cfg.batch_size} exceeds n={n}")
    gen = torch.Generator(device=w_star.device).manual_seed(int(seed))
    w0 = w_star.detach()
    with torch.no_grad():
        loss_star = float(loss(w0[None], None)[0])
    C = cfg.num_chains
    W = w0.expand(C, -1).clone()
    eps = cfg.step_size
    total = cfg.num_burnin + cfg.num_draws * cfg.thin
    losses = np.empty((C, total))
    dists = np.empty((C, total))
    for t in range(total):
        idx = None
        if cfg.batch_size is not None:
            idx = torch.randint(0, n, (cfg.batch_size,), generator=gen, device=w_star.device)
        W.requires_grad_(True)
        lv = loss(W, idx)
        (g,) = torch.autograd.grad(lv.sum(), W)
        with torch.no_grad():
            noise = torch.randn(W.shape, generator=gen, dtype=W.dtype, device=W.device)
            W = W - 0.5 * eps * (nbeta * g + cfg.gamma * (W - w0)) + math.sqrt(eps) * noise
        losses[:, t] = lv.detach().double().cpu().numpy()
        dists[:, t] = (W - w0).norm(dim=1).double().cpu().numpy()
    burn = losses[:, : cfg.num_burnin]
    draws = losses[:, cfg.num_burnin :: cfg.thin][:, : cfg.num_draws]
    dist = dists[:, cfg.num_burnin :: cfg.thin][:, : cfg.num_draws]
    per_chain = nbeta * (draws.mean(1) - loss_star)
    llc = float(nbeta * (draws.mean() - loss_star))
    flags: list[str] = []
    if not np.all(np.isfinite(losses)):
        flags.append("non-finite loss: step size too large")
        z = np.full(C, np.nan)
    else:
        z = stationarity_z(draws) if cfg.num_draws >= 40 else np.zeros(C)
        if np.any(np.abs(z) > drift_z):
            flags.append(
                f"non-stationary chains (|z| > {drift_z} in {int(np.sum(np.abs(z) > drift_z))} of {C}): "
                "increase burn-in, lower the step size or raise gamma"
            )
        if C > 1 and np.std(per_chain, ddof=1) > spread_tol * abs(llc):
            flags.append(f"chains disagree: std/mean of per-chain LLC > {spread_tol}")
        if llc < 0:
            flags.append("negative LLC: w* is not a local minimum of L_n (train longer)")
    return LLCResult(
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
        config={**asdict(cfg), "n": int(n), "seed": int(seed)},
    )
