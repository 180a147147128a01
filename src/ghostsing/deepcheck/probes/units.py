"""Unit-level singularity probes of hidden layers: eliminated, overlapping and linearly dependent units.

For one hidden layer with ``n`` units, ``H`` is its output over ``N`` probe inputs (``N x n``; for skip
nets the layer output ``h_l = a_l + S_l(...)``, i.e. what the next layer receives, so a singularity of
the next layer's incoming weights shows up here) and ``W`` its incoming weights (``n x fan_in``).
Definitions and thresholds (:class:`ProbeConfig`):

* **eliminated (dead)** unit ``i``: ``max_x |H[x, i]| <= act_tol`` — zero on every probe input, so the
  next layer's weights out of it are unidentifiable (elimination singularity). Default ``act_tol = 0``.
* **dead ReLU** unit ``i`` (:func:`probe_mlp` only): the ReLU branch ``a_l = relu(W_l h_{l-1} + b_l)``
  is ``<= act_tol`` on every probe input; equals *eliminated (dead)* for plain nets, while in a skip net
  the unit's output can stay alive through the skip.
* **eliminated (small weights)** unit ``i``: ``||W_i|| < weight_frac * median_j ||W_j||``
  (default ``weight_frac = 0.01``).
* **overlapping** units: pairs ``i < j`` with cosine similarity ``cos(v_i, v_j) > cos_threshold``
  (default 0.99) of the incoming weight rows ``v = W_i`` (*weights*) or of the activation columns
  ``v = H[:, i]`` (*activations*); units with a zero vector are left out. Reported: the number of such
  pairs and the fraction of units that belong to at least one pair.
* **linear dependence**: singular values ``s_1 >= ... >= s_r`` of ``H`` (``r = min(N, n)``);
  effective rank ``erank = exp(-sum_k p_k log p_k)``, ``p_k = s_k / sum s`` (Roy & Vetterli 2007),
  reported also as ``erank / n``; numerical rank ``#{s_k > rank_rel_tol * s_1}`` and the fraction of
  singular values at or below ``rank_rel_tol * s_1`` (default ``rank_rel_tol = 1e-3``). ``H`` is not
  centred: a constant unit counts as a direction, as it does for the next layer's affine map.

Measures that can fail for every architecture (:func:`probe_mlp`; all on the *unit* ``a_{l,i}``, the ReLU
with incoming weights ``W_{l,i}``, not on the stream ``h_l``, which a skip keeps non-negative and alive):

* **eliminated (ablation)**: the unit's marginal contribution to the output,
  ``c_{l,i} = ||f_{-(l,i)}(X) - f(X)||_F / ||f(X)||_F`` with ``f_{-(l,i)}`` the network with ``a_{l,i}``
  set to 0 on every input (:func:`ablation_contributions`, on the first ``n_ablate`` probe inputs); the unit
  is eliminated when ``c_{l,i} <= elim_tol`` (default 1e-3).  A dead ReLU, a unit whose outgoing weights are
  zero, and a dead residual branch all give ``c = 0`` (a residual net's stream ``h_l >= 0`` does not hide
  them); ``elim_frac`` is the fraction per layer, ``contrib_median`` the median ``c``.
* **overlapping in weights and activations** (``overlap_both_frac``): pairs whose incoming weight rows
  *and* unit activation columns ``a_{., i}`` both have cosine above ``cos_threshold``.
* **linear dependence of the units' activations**: ``erank_unit_frac`` (effective rank of ``A_l`` / width),
  ``small_sv_unit_frac`` and ``smin_unit`` = ``s_min / s_max`` of ``A_l`` (0 for exactly dependent units).

Every probe takes a leading network axis ``S`` (a :class:`~ghostsing.deepcheck.nets.BatchedMLP`) and
returns arrays ``(S,)`` per layer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

METRICS: tuple[str, ...] = (
    "dead_frac", "dead_relu_frac", "small_weight_frac", "overlap_w_frac", "overlap_w_pairs",
    "overlap_act_frac", "overlap_act_pairs", "erank", "erank_frac", "num_rank", "small_sv_frac",
)
#: The measures on the units (ReLU outputs and their marginal contributions) that :func:`probe_mlp` adds.
UNIT_METRICS: tuple[str, ...] = (
    "elim_frac", "contrib_median", "overlap_both_frac", "overlap_unit_frac", "erank_unit_frac",
    "small_sv_unit_frac", "smin_unit",
)


@dataclass(frozen=True)
class ProbeConfig:
    """Thresholds of the unit probes (see the module docstring) and the number of probe inputs."""

    act_tol: float = 0.0
    weight_frac: float = 0.01
    cos_threshold: float = 0.99
    rank_rel_tol: float = 1e-3
    n_probe: int = 500
    elim_tol: float = 1e-3
    n_ablate: int = 64

    def __post_init__(self) -> None:
        if self.act_tol < 0:
            raise ValueError(f"act_tol={self.act_tol} must be >= 0")
        if not 0 < self.weight_frac < 1:
            raise ValueError(f"weight_frac={self.weight_frac} must lie in (0, 1)")
        if not -1 < self.cos_threshold < 1:
            raise ValueError(f"cos_threshold={self.cos_threshold} must lie in (-1, 1)")
        if not 0 < self.rank_rel_tol < 1:
            raise ValueError(f"rank_rel_tol={self.rank_rel_tol} must lie in (0, 1)")
        if self.n_probe < 1:
            raise ValueError(f"n_probe={self.n_probe} must be >= 1")
        if not 0 <= self.elim_tol < 1:
            raise ValueError(f"elim_tol={self.elim_tol} must lie in [0, 1)")
        if self.n_ablate < 0:
            raise ValueError(f"n_ablate={self.n_ablate} must be >= 0 (0: no ablation)")

    def to_dict(self) -> dict:
        return asdict(self)


def _batched(t: torch.Tensor, dims: int) -> torch.Tensor:
    t = torch.as_tensor(t)
    return t.unsqueeze(0) if t.dim() == dims else t


def dead_units(H: torch.Tensor, act_tol: float = 0.0) -> torch.Tensor:
    """Mask ``(S, n)`` of units with ``max_x |H[x, i]| <= act_tol``; ``H`` is ``(S, N, n)`` or ``(N, n)``."""
    H = _batched(H, 2)
    return H.abs().amax(dim=1) <= act_tol


def small_weight_units(W: torch.Tensor, weight_frac: float = 0.01) -> torch.Tensor:
    """Mask ``(S, n)`` of rows with ``||W_i|| < weight_frac * median_j ||W_j||``; ``W`` is ``(S, n, d)``."""
    W = _batched(W, 2)
    norms = torch.linalg.vector_norm(W, dim=2)
    med = norms.median(dim=1, keepdim=True).values
    return norms < weight_frac * med


def overlapping_pairs(V: torch.Tensor, cos_threshold: float = 0.99) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs ``i < j`` of rows of ``V`` (``(S, n, d)``) with cosine similarity above ``cos_threshold``.

    Returns ``(n_pairs (S,), in_pair (S, n) mask)``; zero rows take part in no pair.
    """
    V = _batched(V, 2)
    norms = torch.linalg.vector_norm(V, dim=2, keepdim=True)
    nonzero = norms.squeeze(2) > 0
    U = V / torch.where(norms > 0, norms, torch.ones_like(norms))
    C = U @ U.transpose(1, 2)
    n = V.shape[1]
    upper = torch.triu(torch.ones(n, n, dtype=torch.bool, device=V.device), diagonal=1)
    valid = nonzero.unsqueeze(2) & nonzero.unsqueeze(1) & upper
    hit = (C > cos_threshold) & valid
    in_pair = hit.any(dim=2) | hit.any(dim=1)
    return hit.sum(dim=(1, 2)), in_pair


def spectrum_stats(H: torch.Tensor, rank_rel_tol: float = 1e-3) -> dict[str, torch.Tensor]:
    """Effective rank, ``erank/n``, numerical rank, small-singular-value fraction of ``H`` ``(S, N, n)``."""
    H = _batched(H, 2)
    s = torch.linalg.svdvals(H.double())
    n = H.shape[2]
    total = s.sum(dim=1, keepdim=True)
    p = s / torch.where(total > 0, total, torch.ones_like(total))
    ent = -(torch.where(p > 0, p * torch.log(p), torch.zeros_like(p))).sum(dim=1)
    erank = torch.where(total.squeeze(1) > 0, torch.exp(ent), torch.zeros_like(ent))
    big = s > rank_rel_tol * s[:, :1]
    num_rank = big.sum(dim=1)
    return {
        "erank": erank,
        "erank_frac": erank / n,
        "num_rank": num_rank.double(),
        "small_sv_frac": (s.shape[1] - num_rank).double() / s.shape[1],
    }


def probe_layer(
    H: torch.Tensor, W: torch.Tensor, cfg: ProbeConfig = ProbeConfig(), A: torch.Tensor | None = None
) -> dict[str, np.ndarray]:
    """All metrics of :data:`METRICS` for one layer: ``H (S, N, n)`` outputs, ``W (S, n, d)`` weights,
    ``A`` the ReLU branch (``None``: the layer has no skip, ``A = H``)."""
    H, W = _batched(H, 2).detach(), _batched(W, 2).detach()
    A = H if A is None else _batched(A, 2).detach()
    n = H.shape[2]
    out = {
        "dead_frac": dead_units(H, cfg.act_tol).double().mean(1),
        "dead_relu_frac": dead_units(A, cfg.act_tol).double().mean(1),
        "small_weight_frac": small_weight_units(W, cfg.weight_frac).double().mean(1),
    }
    pw, mw = overlapping_pairs(W, cfg.cos_threshold)
    pa, ma = overlapping_pairs(H.transpose(1, 2), cfg.cos_threshold)
    out.update(overlap_w_pairs=pw.double(), overlap_w_frac=mw.double().sum(1) / n,
               overlap_act_pairs=pa.double(), overlap_act_frac=ma.double().sum(1) / n)
    out.update(spectrum_stats(H, cfg.rank_rel_tol))
    return {k: out[k].cpu().numpy() for k in METRICS}


def _continue(model, j: int, h: torch.Tensor, total: torch.Tensor | None) -> torch.Tensor:
    """Logits of a :class:`~ghostsing.deepcheck.nets.BatchedMLP` from layer output ``h`` of hidden layer
    ``j`` (0-based) on; ``total`` = sum of the layer outputs ``h_0..h_j`` (hyper skips only)."""
    for i in range(j, model.cfg.depth - 1):
        a = torch.relu(torch.baddbmm(model.b_hid[:, i].unsqueeze(1), h, model.w_hid[:, i].transpose(1, 2)))
        h, total = model.skip_step(i, a, h, total)
    return torch.baddbmm(model.b_out.unsqueeze(1), h, model.w_out.transpose(1, 2))


@torch.no_grad()
def ablation_contributions(model, x: torch.Tensor, max_elems: int = 2**24) -> list[torch.Tensor]:
    """Marginal contribution of every hidden unit of a batched MLP: ``c[l] (S, width)``,
    ``c_{l,i} = ||f_{-(l,i)}(X) - f(X)||_F / ||f(X)||_F`` where ``f_{-(l,i)}`` is the network with the unit's
    ReLU output ``a_{l,i}`` set to 0 on every input of ``x`` ``(N, in)`` (exact, not linearised; all units of
    a layer run as one batch of ``width * N`` rows, in chunks of at most ``max_elems`` activations)."""
    was = model.training
    model.eval()
    S, N = model.n_nets, x.shape[0]
    f, hs, branches = model(x, return_hidden=True, return_branches=True)
    model.train(was)
    norm = torch.linalg.vector_norm(f.double(), dim=(1, 2)).clamp_min(1e-300)
    width = hs[0].shape[2]
    out = []
    totals, run = [], None
    for h in hs:
        run = h if run is None else run + h
        totals.append(run)
    chunk = max(1, max_elems // max(1, S * N * width))
    for j, (h, a) in enumerate(zip(hs, branches, strict=True)):
        c = torch.empty(S, width, dtype=torch.float64, device=x.device)
        for u0 in range(0, width, chunk):
            units = torch.arange(u0, min(width, u0 + chunk), device=x.device)
            U = len(units)
            mask = torch.zeros(U, 1, width, dtype=h.dtype, device=x.device)
            mask[torch.arange(U), 0, units] = 1.0
            delta = a.unsqueeze(1) * mask.unsqueeze(0)  # (S, U, N, w): unit u's own output only
            h_abl = (h.unsqueeze(1) - delta).reshape(S, U * N, width)
            tot = None
            if model.mode == "hyper":
                tot = (totals[j].unsqueeze(1) - delta).reshape(S, U * N, width)
            f_abl = _continue(model, j, h_abl, tot).reshape(S, U, N, -1)
            diff = torch.linalg.vector_norm((f_abl - f.unsqueeze(1)).double(), dim=(2, 3))
            c[:, u0:u0 + U] = diff / norm.unsqueeze(1)
        out.append(c)
    return out


@torch.no_grad()
def probe_mlp(model, x_probe: torch.Tensor, cfg: ProbeConfig = ProbeConfig()) -> dict[str, np.ndarray]:
    """Probe every hidden layer of a batched MLP (:class:`~ghostsing.deepcheck.nets.BatchedMLP`).

    ``x_probe`` is ``(N, in)``, the same inputs for every network.

    Returns ``{metric: array (S, depth)}``, layer ``l`` in column ``l - 1``: every metric of
    :data:`METRICS` and :data:`UNIT_METRICS` (the ablation ones are NaN when ``cfg.n_ablate = 0``).
    """
    was_training = model.training
    model.eval()
    _, hs, branches = model(x_probe, return_hidden=True, return_branches=True)
    model.train(was_training)
    weights = model.layer_weights()
    per_layer = [probe_layer(h, w, cfg, a) for h, w, a in zip(hs, weights, branches, strict=True)]
    res = {k: np.stack([p[k] for p in per_layer], axis=1) for k in METRICS}
    res.update(_unit_metrics(weights, branches, cfg))
    if cfg.n_ablate > 0:
        contrib = ablation_contributions(model, x_probe[: cfg.n_ablate])
        res["elim_frac"] = np.stack([(c <= cfg.elim_tol).double().mean(1).cpu().numpy() for c in contrib], 1)
        res["contrib_median"] = np.stack([c.median(dim=1).values.cpu().numpy() for c in contrib], 1)
    else:
        S = len(hs[0])
        res["elim_frac"] = np.full((S, len(hs)), np.nan)
        res["contrib_median"] = np.full((S, len(hs)), np.nan)
    return res


def _unit_metrics(weights, branches, cfg: ProbeConfig) -> dict[str, np.ndarray]:
    """Overlap in weights and activations, and the spectrum of the units' own activations ``A_l``."""
    cols = {k: [] for k in ("overlap_both_frac", "overlap_unit_frac", "erank_unit_frac",
                            "small_sv_unit_frac", "smin_unit")}
    for W, A in zip(weights, branches, strict=True):
        W, A = _batched(W, 2).detach(), _batched(A, 2).detach()
        n = A.shape[2]
        _, both = _pairs_both(W, A.transpose(1, 2), cfg.cos_threshold)
        _, unit = overlapping_pairs(A.transpose(1, 2), cfg.cos_threshold)
        sp = spectrum_stats(A, cfg.rank_rel_tol)
        s = torch.linalg.svdvals(A.double())
        smin = torch.where(s[:, 0] > 0, s[:, -1] / s[:, 0].clamp_min(1e-300), torch.zeros_like(s[:, 0]))
        cols["overlap_both_frac"].append((both.double().sum(1) / n).cpu().numpy())
        cols["overlap_unit_frac"].append((unit.double().sum(1) / n).cpu().numpy())
        cols["erank_unit_frac"].append(sp["erank_frac"].cpu().numpy())
        cols["small_sv_unit_frac"].append(sp["small_sv_frac"].cpu().numpy())
        cols["smin_unit"].append(smin.cpu().numpy())
    return {k: np.stack(v, axis=1) for k, v in cols.items()}


def _pairs_both(V1: torch.Tensor, V2: torch.Tensor, cos_threshold: float
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs ``i < j`` overlapping in both ``V1`` and ``V2`` (rows; ``(S, n, d1)``, ``(S, n, d2)``)."""
    def hits(V):
        norms = torch.linalg.vector_norm(V, dim=2, keepdim=True)
        nonzero = norms.squeeze(2) > 0
        U = V / torch.where(norms > 0, norms, torch.ones_like(norms))
        return (U @ U.transpose(1, 2) > cos_threshold) & nonzero.unsqueeze(2) & nonzero.unsqueeze(1)

    n = V1.shape[1]
    upper = torch.triu(torch.ones(n, n, dtype=torch.bool, device=V1.device), diagonal=1)
    hit = hits(V1) & hits(V2) & upper
    return hit.sum(dim=(1, 2)), hit.any(dim=2) | hit.any(dim=1)
