"""Networks for the deep checks: deep ReLU MLPs with skips, batched over seeds.

Deep MLP with ``depth`` hidden layers of ``width`` ReLU units (``x`` the flattened input)::

    a_1 = relu(W_1 x + b_1),                     h_1 = a_1
    a_l = relu(W_l h_{l-1} + b_l),               h_l = a_l + S_l(h_{1..l-1})     (l = 2..depth)
    logits = W_out h_depth + b_out

with the skip ``S_l`` chosen by a skip string:

* ``none``          ``S_l = 0`` (plain net);
* ``identity``      ``S_l = h_{l-1}`` (residual);
* ``scaled:alpha``  ``S_l = alpha h_{l-1}``;
* ``lowrank:k``     ``S_l = D_k h_{l-1}``, ``D_k = diag(1,..,1,0,..,0)`` with ``k`` ones: a degenerate
  identity skip (``k = 0`` is plain, ``k = width`` residual);
* ``orthogonal``    ``S_l = Q_l h_{l-1}`` with a fixed (untrained) random orthogonal ``Q_l`` (Haar, drawn
  from the network's seed);
* ``hyper``         ``S_l = (1/(l-1)) sum_{j<l} h_j`` (hyper-residual: every earlier layer's output
  feeds layer ``l``; the mean keeps the scale bounded, as the normalised skip sum of Orhan & Pitkow).

Initialisation (:func:`init_mlp_tensors`): PyTorch's ``nn.Linear`` default
``W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` (``init='torch'``) or He-normal with the skip nets'
hidden layers scaled by ``1/(depth-1)`` (``init='scaled'``: an O(1) signal for every skip; with
``'torch'`` a 30-layer residual stream's mean square grows ~1e5-fold and the plain net's shrinks
~100-fold), drawn from ``torch.Generator().manual_seed(seed)`` in layer order, so network ``s`` of a
:class:`BatchedMLP` equals ``MLP(cfg, seed_s)`` exactly.  :class:`BatchedMLP` holds ``S`` networks as
parameters with a leading seed axis and runs them with batched matrix products (``torch.baddbmm``);
gradients of ``sum_s L_s`` separate per seed, so one optimiser step on it equals ``S`` separate steps for
element-wise optimisers (SGD, Adam, RMSprop).

The 2022 CNNs and :class:`~ghostsing.deepcheck.cnns.BatchedModule` are :mod:`ghostsing.deepcheck.cnns`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

INITS: tuple[str, ...] = ("torch", "scaled", "he", "sqrt-scaled", "orthogonal", "looks-linear")
SKIP_KINDS: tuple[str, ...] = ("none", "identity", "hyper", "orthogonal", "lowrank:k", "scaled:alpha")
_DIAG_KINDS = ("none", "identity", "lowrank", "scaled")


@dataclass(frozen=True)
class SkipSpec:
    """A parsed skip string: ``kind`` in none|identity|hyper|orthogonal|lowrank|scaled, ``k``, ``alpha``."""

    kind: str
    k: int | None = None
    alpha: float | None = None

    def diag(self, width: int) -> torch.Tensor:
        """Diagonal of the skip matrix for the diagonal kinds (none, identity, lowrank:k, scaled:alpha)."""
        if self.kind == "none":
            return torch.zeros(width)
        if self.kind == "identity":
            return torch.ones(width)
        if self.kind == "scaled":
            return torch.full((width,), float(self.alpha))
        if self.kind == "lowrank":
            if self.k > width:
                raise ValueError(f"lowrank:{self.k} needs k <= width={width}")
            d = torch.zeros(width)
            d[: self.k] = 1.0
            return d
        raise ValueError(f"skip kind {self.kind!r} has no diagonal form")


def parse_skip(skip: str) -> SkipSpec:
    """Parse ``none | identity | hyper | orthogonal | lowrank:k | scaled:alpha`` (k >= 0 int, alpha real)."""
    if not isinstance(skip, str):
        raise TypeError(f"skip must be a string, got {type(skip).__name__}")
    s = skip.strip().lower()
    if s in ("none", "identity", "hyper", "orthogonal"):
        return SkipSpec(s)
    kind, _, arg = s.partition(":")
    try:
        if kind == "lowrank" and arg:
            k = int(arg)
            if k < 0:
                raise ValueError
            return SkipSpec("lowrank", k=k)
        if kind == "scaled" and arg:
            alpha = float(arg)
            if not math.isfinite(alpha):
                raise ValueError
            return SkipSpec("scaled", alpha=alpha)
    except ValueError:
        pass
    raise ValueError(f"skip {skip!r} is not one of {', '.join(SKIP_KINDS)} (k an integer >= 0, alpha finite)")


@dataclass(frozen=True)
class MLPConfig:
    """Shape of a deep MLP: ``depth`` hidden layers of ``width`` units, ``in_dim`` inputs, ``n_classes``."""

    depth: int
    width: int
    in_dim: int = 3072
    n_classes: int = 10
    skip: str = "none"
    init: str = "torch"

    def __post_init__(self) -> None:
        for name in ("depth", "width", "in_dim", "n_classes"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"MLPConfig.{name}={v!r} must be an integer >= 1")
        parse_skip(self.skip)
        if self.init not in INITS:
            raise ValueError(f"MLPConfig.init={self.init!r} is not one of {INITS}")

    @property
    def n_params(self) -> int:
        """``(in+1) w + (depth-1)(w+1) w + (w+1) C`` trainable parameters (skips are fixed)."""
        w = self.width
        return (self.in_dim + 1) * w + (self.depth - 1) * (w + 1) * w + (w + 1) * self.n_classes


def init_mlp_tensors(
    cfg: MLPConfig, seed: int, skip: str | None = None
) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
    """Initial ``[(W_l, b_l)]`` (input, hidden..., output) and orthogonal skips ``Q`` (depth-1, w, w).

    ``cfg.init='torch'``: ``W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` (PyTorch's ``nn.Linear``).
    ``cfg.init='scaled'``: ``W ~ N(0, 2/fan_in)`` (He) and ``b = 0`` for the hidden layers,
    ``W ~ N(0, 1/fan_in)`` for the output layer; for a net with a skip (``skip != 'none'``) the hidden
    layers ``l = 2..depth`` are multiplied by ``1/(depth-1)``: ReLU outputs have a positive mean, so the
    branch ``a_l`` correlates with the stream ``h_{l-1}`` and ``E|h_l|^2 / E|h_{l-1}|^2 = 1 + O(c)`` for a
    branch scale ``c``; ``c = 1/(depth-1)`` bounds the growth over the whole depth by ``e^{O(1)}`` (measured:
    about 2x at depth 30), while the plain net keeps its second moment (He). Each architecture thus starts
    with an O(1) signal (cf. Hanin & Rolnick 2018; Fixup, Zhang et al. 2019).
    ``cfg.init='he'``: He-normal everywhere, no branch down-scaling (the residual stream grows with depth);
    ``'sqrt-scaled'``: like ``'scaled'`` with the factor ``1/sqrt(depth-1)``.
    ``cfg.init='orthogonal'``: hidden layers ``sqrt(2) Q`` with ``Q`` Haar-orthogonal (Saxe et al. 2014; the
    ReLU gain), input layer likewise on its ``width x in_dim`` block, output ``Q / 1``, zero biases, no
    branch scaling.  ``'looks-linear'``: the mirrored orthogonal initialisation of Balduzzi et al. (2017):
    hidden units come in pairs ``(u, -u)`` (rows ``[Q; -Q]`` acting on ``[h+; h-]`` through
    ``[Q, -Q]``), so ``relu(u) - relu(-u) = u`` and the plain net is an orthogonal linear map at
    initialisation: its activations do not collapse in rank with depth (needs an even width).
    Drawn (float32) from ``torch.Generator().manual_seed(seed)`` in layer order;
    ``Q_l`` = the Q factor of a standard normal matrix with signs fixed by ``diag(R) > 0`` (Haar).
    """
    g = torch.Generator().manual_seed(int(seed))
    skip = cfg.skip if skip is None else skip
    dims = [cfg.in_dim] + [cfg.width] * cfg.depth + [cfg.n_classes]
    layers = []
    has_skip = cfg.depth > 1 and parse_skip(skip).kind != "none"
    branch = {"scaled": 1.0 / max(1, cfg.depth - 1), "sqrt-scaled": 1.0 / math.sqrt(max(1, cfg.depth - 1))
              }.get(cfg.init, 1.0) if has_skip else 1.0
    if cfg.init in ("orthogonal", "looks-linear"):
        layers = _orthogonal_layers(dims, g, cfg.init == "looks-linear")
    for i, (fan_in, fan_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        if cfg.init in ("orthogonal", "looks-linear"):
            break
        if cfg.init == "torch":
            bound = 1.0 / math.sqrt(fan_in)
            w = (torch.rand(fan_out, fan_in, generator=g) * 2 - 1) * bound
            b = (torch.rand(fan_out, generator=g) * 2 - 1) * bound
        else:
            last = i == len(dims) - 2
            w = torch.randn(fan_out, fan_in, generator=g) * math.sqrt((1.0 if last else 2.0) / fan_in)
            if 0 < i < len(dims) - 2:
                w = w * branch
            b = torch.zeros(fan_out)
        layers.append((w, b))
    qs = []
    for _ in range(cfg.depth - 1):
        q, r = torch.linalg.qr(torch.randn(cfg.width, cfg.width, generator=g, dtype=torch.float64))
        qs.append((q * torch.sign(torch.diagonal(r))).float())
    q = torch.stack(qs) if qs else torch.zeros(0, cfg.width, cfg.width)
    return layers, q


def _haar(rows: int, cols: int, g: torch.Generator) -> torch.Tensor:
    """A ``rows x cols`` matrix with orthonormal rows or columns (Haar), float64."""
    n = max(rows, cols)
    q, r = torch.linalg.qr(torch.randn(n, min(rows, cols), generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    return q if rows >= cols else q.T


def _orthogonal_layers(dims: list[int], g: torch.Generator, mirrored: bool
                       ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Orthogonal (``mirrored=False``) or looks-linear initial layers (see :func:`init_mlp_tensors`)."""
    out = []
    n_layers = len(dims) - 1
    for i, (fan_in, fan_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        first, last = i == 0, i == n_layers - 1
        if not mirrored:
            w = _haar(fan_out, fan_in, g) * (1.0 if last else math.sqrt(2.0))
        else:
            if (not last and fan_out % 2) or (not first and fan_in % 2):
                raise ValueError("init='looks-linear' needs an even width")
            if first:  # [Q; -Q] x: a pair (u, -u) per unit of the orthogonal map u = Q x
                q = _haar(fan_out // 2, fan_in, g)
                w = torch.cat([q, -q], 0)
            elif last:  # [Q, -Q] [h+; h-] = Q u
                q = _haar(fan_out, fan_in // 2, g)
                w = torch.cat([q, -q], 1)
            else:  # [[Q, -Q], [-Q, Q]] [h+; h-] = [Q u; -Q u]
                q = _haar(fan_out // 2, fan_in // 2, g)
                w = torch.cat([torch.cat([q, -q], 1), torch.cat([-q, q], 1)], 0)
        out.append((w.float(), torch.zeros(fan_out)))
    return out


class MLP(nn.Module):
    """One deep MLP built from ``nn.Linear`` layers (the plain-PyTorch reference for :class:`BatchedMLP`)."""

    def __init__(self, cfg: MLPConfig, seed: int = 0, dtype: torch.dtype = torch.float32, device="cpu"):
        super().__init__()
        self.cfg = cfg
        self.spec = parse_skip(cfg.skip)
        layers, q = init_mlp_tensors(cfg, seed, cfg.skip)
        self.linears = nn.ModuleList()
        for w, b in layers:
            lin = nn.Linear(w.shape[1], w.shape[0], device=device, dtype=dtype)
            with torch.no_grad():
                lin.weight.copy_(w)
                lin.bias.copy_(b)
            self.linears.append(lin)
        self.register_buffer("skip_q", q.to(device=device, dtype=dtype))
        if self.spec.kind in _DIAG_KINDS:
            self.register_buffer("skip_diag", self.spec.diag(cfg.width).to(device=device, dtype=dtype))

    def forward(self, x: torch.Tensor, return_hidden: bool = False):
        hs: list[torch.Tensor] = []
        h = torch.relu(self.linears[0](x))
        hs.append(h)
        for i, lin in enumerate(self.linears[1:-1]):
            a = torch.relu(lin(h))
            if self.spec.kind == "hyper":
                h = a + torch.stack(hs).mean(0)
            elif self.spec.kind == "orthogonal":
                h = a + h @ self.skip_q[i].T
            else:
                h = a + self.skip_diag * h
            hs.append(h)
        out = self.linears[-1](h)
        return (out, hs) if return_hidden else out


def _skip_mode(specs: Sequence[SkipSpec]) -> str:
    kinds = {s.kind for s in specs}
    if kinds <= set(_DIAG_KINDS):
        return "diag"
    if len(kinds) == 1:
        return next(iter(kinds))
    raise ValueError(
        f"cannot batch skips {sorted(kinds)} together: "
        "orthogonal and hyper nets batch only with their own kind"
    )


def batch_groups(skips: Sequence[str]) -> list[list[str]]:
    """Split skip strings into groups that one :class:`BatchedMLP` can hold (diagonal kinds together)."""
    diag = [s for s in skips if parse_skip(s).kind in _DIAG_KINDS]
    groups = [diag] if diag else []
    for kind in ("orthogonal", "hyper"):
        g = [s for s in skips if parse_skip(s).kind == kind]
        if g:
            groups.append(g)
    return groups


class BatchedMLP(nn.Module):
    """``S`` deep MLPs (one per ``(seed, skip)`` pair) as one model with a leading network axis.

    Parameters ``w_in (S,w,in)``, ``b_in (S,w)``, ``w_hid (S,depth-1,w,w)``, ``b_hid (S,depth-1,w)``,
    ``w_out (S,C,w)``, ``b_out (S,C)``.  ``forward(x)`` takes ``x`` of shape ``(S, B, in)`` (network
    ``s`` sees its own batch ``x[s]``) or ``(B, in)`` (the same batch for all) and returns ``(S, B, C)``.
    Diagonal skips (none, identity, lowrank:k, scaled:alpha) may be mixed in one model, and so may
    initialisations (``inits``: one per network, default ``cfg.init`` for all).
    """

    def __init__(
        self,
        cfg: MLPConfig,
        seeds: Sequence[int],
        skips: Sequence[str] | None = None,
        dtype: torch.dtype = torch.float32,
        device="cpu",
        inits: Sequence[str] | None = None,
    ):
        super().__init__()
        seeds = [int(s) for s in seeds]
        if not seeds:
            raise ValueError("BatchedMLP needs at least one seed")
        skips = list(skips) if skips is not None else [cfg.skip] * len(seeds)
        if len(skips) != len(seeds):
            raise ValueError(f"{len(skips)} skips for {len(seeds)} seeds: give one skip per network")
        inits = list(inits) if inits is not None else [cfg.init] * len(seeds)
        if len(inits) != len(seeds):
            raise ValueError(f"{len(inits)} inits for {len(seeds)} seeds: give one init per network")
        for i in inits:
            if i not in INITS:
                raise ValueError(f"init={i!r} is not one of {INITS}")
        self.cfg, self.seeds, self.skips, self.inits = cfg, tuple(seeds), tuple(skips), tuple(inits)
        specs = [parse_skip(s) for s in skips]
        self.mode = _skip_mode(specs)
        inits = [init_mlp_tensors(dataclasses.replace(cfg, init=i), s, sk)
                 for s, sk, i in zip(seeds, skips, inits, strict=True)]

        def stack(fn):
            return nn.Parameter(
                torch.stack([fn(layers) for layers, _ in inits]).to(device=device, dtype=dtype)
            )

        self.w_in, self.b_in = stack(lambda L: L[0][0]), stack(lambda L: L[0][1])
        if cfg.depth > 1:
            self.w_hid = stack(lambda L: torch.stack([w for w, _ in L[1:-1]]))
            self.b_hid = stack(lambda L: torch.stack([b for _, b in L[1:-1]]))
        else:
            self.w_hid = nn.Parameter(
                torch.zeros(len(seeds), 0, cfg.width, cfg.width, device=device, dtype=dtype)
            )
            self.b_hid = nn.Parameter(torch.zeros(len(seeds), 0, cfg.width, device=device, dtype=dtype))
        self.w_out, self.b_out = stack(lambda L: L[-1][0]), stack(lambda L: L[-1][1])
        if self.mode == "orthogonal":
            self.register_buffer("skip_q", torch.stack([q for _, q in inits]).to(device=device, dtype=dtype))
        elif self.mode == "diag":
            self.register_buffer(
                "skip_diag", torch.stack([sp.diag(cfg.width) for sp in specs]).to(device=device, dtype=dtype)
            )

    @property
    def n_nets(self) -> int:
        return len(self.seeds)

    def layer_weights(self) -> list[torch.Tensor]:
        """Incoming weight matrices of the hidden layers, each ``(S, w, fan_in)``."""
        return [self.w_in] + [self.w_hid[:, i] for i in range(self.cfg.depth - 1)]

    def skip_step(self, i: int, a: torch.Tensor, h: torch.Tensor, total: torch.Tensor | None
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
        r"""Output of hidden layer ``i + 1`` from its branch ``a = relu(W h + b)`` and the previous output
        ``h``: :math:`h' = a + \frac{1}{i+1}\sum_{k \le i} h_k` (hyper; ``total`` is that running sum,
        returned updated), :math:`h' = a + Q_i h` (orthogonal) or :math:`h' = a + D h` (diagonal skips,
        ``D = 0`` for none).  Returns ``(h', total')``; the forward pass and the unit probes both use it."""
        if self.mode == "hyper":
            h = a + total / (i + 1)
            return h, total + h
        if self.mode == "orthogonal":
            return a + torch.bmm(h, self.skip_q[:, i].transpose(1, 2)), total
        return a + self.skip_diag.unsqueeze(1) * h, total

    def forward(self, x: torch.Tensor, return_hidden: bool = False, return_branches: bool = False):
        """Logits ``(S, B, C)``; with ``return_hidden`` also the layer outputs ``[h_1..h_depth]``, with
        ``return_branches`` also the ReLU branch outputs ``[a_1..a_depth]`` (each ``(S, B, width)``)."""
        S = self.n_nets
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(S, -1, -1)
        if x.shape[0] != S:
            raise ValueError(f"input has {x.shape[0]} networks' batches, model has {S}")
        h = torch.relu(torch.baddbmm(self.b_in.unsqueeze(1), x, self.w_in.transpose(1, 2)))
        hs, branches = [h], [h]
        total = h  # running sum of h_1..h_{l-1} for the hyper skip (O(depth) instead of re-stacking)
        # unbind once: indexing w_hid[:, i] per layer would make every layer's backward allocate and
        # fill a zero gradient of the whole (S, depth-1, w, w) tensor (O(depth^2) memory traffic)
        w_hid, b_hid = self.w_hid.unbind(1), self.b_hid.unbind(1)
        for i in range(self.cfg.depth - 1):
            a = torch.relu(torch.baddbmm(b_hid[i].unsqueeze(1), h, w_hid[i].transpose(1, 2)))
            branches.append(a)
            h, total = self.skip_step(i, a, h, total)
            hs.append(h)
        out = torch.baddbmm(self.b_out.unsqueeze(1), h, self.w_out.transpose(1, 2))
        if return_branches:
            return (out, hs, branches) if return_hidden else (out, branches)
        return (out, hs) if return_hidden else out

    def extract(self, s: int) -> MLP:
        """Network ``s`` as a stand-alone :class:`MLP` with its current weights."""
        cfg = MLPConfig(
            self.cfg.depth, self.cfg.width, self.cfg.in_dim, self.cfg.n_classes, self.skips[s], self.inits[s]
        )
        net = MLP(cfg, self.seeds[s], dtype=self.w_in.dtype, device=self.w_in.device)
        ws = [(self.w_in[s], self.b_in[s])]
        ws += [(self.w_hid[s, i], self.b_hid[s, i]) for i in range(self.cfg.depth - 1)]
        ws += [(self.w_out[s], self.b_out[s])]
        with torch.no_grad():
            for lin, (w, b) in zip(net.linears, ws, strict=True):
                lin.weight.copy_(w)
                lin.bias.copy_(b)
            if self.mode == "orthogonal":
                net.skip_q.copy_(self.skip_q[s])
        return net


def count_params(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
