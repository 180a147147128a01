r"""Exact Hessian trace and diagonal of a training loss for networks that are piecewise linear in each
parameter.

Notation.  ``theta in R^P`` are the trainable parameters, ``z_n(theta) in R^D`` the network output for
sample ``n`` of a batch of ``N``, ``L(theta) = (1/N) sum_n ell(z_n, y_n)`` the loss with the output Hessian
``Lambda_n = d^2 ell / dz_n^2 = S_n S_n^T`` (``S_n`` is ``D x K``, columns ``s_{n,k}``) and
``J_n = dz_n / dtheta`` (``D x P``).  The chain rule gives

    H = G + R,   G = (1/N) sum_n J_n^T Lambda_n J_n   (generalised Gauss-Newton),
                 R = (1/N) sum_n sum_d (d ell / d z_{n,d}) d^2 z_{n,d} / dtheta^2.

**Identity.**  If every output ``z_{n,d}`` is piecewise linear in each *single* parameter ``theta_i`` (all
other parameters held fixed), then ``d^2 z_{n,d} / dtheta_i^2 = 0`` almost everywhere, so ``R_ii = 0``
and

    diag H = diag G,   (diag G)_i = (1/N) sum_n sum_k (s_{n,k}^T J_n e_i)^2,
    tr H = tr G = (1/N) sum_n sum_k || J_n^T s_{n,k} ||^2
                = (1/N) sum_n sum_k || grad_theta (s_{n,k}^T z_n) ||^2,

with ``s_{n,k}`` held fixed (not differentiated).  This is exact: no random probes, no estimator variance.
The off-diagonal blocks of ``H`` and ``G`` differ (``R_ij != 0`` for two parameters on one path, e.g. two
weights of different layers), so only the diagonal and the trace coincide.

When the condition holds: Linear and Conv layers (each output is affine in each weight), ReLU / LeakyReLU /
ReLU6 / Hardtanh / identity activations, max and average pooling, flatten, additive (or fixed-linear)
skip connections, dropout and batch norm in eval mode (fixed masks / running statistics: affine maps).  A
product of two *different* parameters on one path (``W_2 relu(W_1 x)``) is still linear in each one
alone.  It fails for smooth activations (tanh, GELU, softplus: ``d^2 z / dtheta^2 != 0``), for weight
tying (one parameter used twice makes ``z`` quadratic in it), for batch norm in training mode (batch
statistics couple the samples) and for attention / multiplicative gates between two functions of the
same parameter.  :func:`is_piecewise_linear` checks a model's modules against an allow-list; with
``check=False`` you assert piecewise linearity yourself.

Output Hessian factors ``S_n`` (``loss=``):

* ``'cross_entropy'``: ``ell = -log softmax(z_n)_{y_n}`` (torch's mean reduction over the batch; class
  indices or probability targets), ``Lambda_n = diag(p_n) - p_n p_n^T`` with ``p_n = softmax(z_n)``, and
  ``S_n = diag(sqrt p_n) - p_n sqrt(p_n)^T`` (``S_n S_n^T = Lambda_n`` because ``sum_c p_{n,c} = 1``);
  ``K = D = C``.  ``Lambda_n`` does not depend on the targets.
* ``'mse'``: torch's ``mse_loss`` (mean over all ``N D`` elements), ``L = (1/(N D)) sum ||z_n - y_n||^2``,
  so ``ell = ||z_n - y_n||^2 / D``, ``Lambda_n = (2/D) I`` and ``S_n = sqrt(2/D) I``.
* ``'half_sse'``: ``ell = (1/2) ||z_n - y_n||^2`` (half the squared error summed over outputs, mean over the
  batch), ``S_n = I``.

Computation: the ``N K`` vectors ``J_n^T s_{n,k}`` are per-sample gradients.  Two paths:

* ``'func'`` (any allowed model, conv nets included): ``torch.func.vmap`` over samples of ``vjp`` applied
  to the ``K`` columns of ``S_n`` (a second ``vmap``), in chunks of ``chunk`` samples (memory
  ``chunk * K * P`` numbers);
* ``'linear'`` (every trainable parameter belongs to an ``nn.Linear`` applied once to a 2-d input): one
  forward pass records each layer's input ``a_n`` and pre-activation ``u_n``; one batched backward pass
  gives ``g_{n,k} = d(s_{n,k}^T z_n)/du_n``; the per-sample gradient of the weight is ``g a^T``, whose
  squared norm is ``||g||^2 ||a||^2`` and whose squared entries are ``g_i^2 a_j^2`` — no per-sample
  gradient is ever formed (cost ~ ``K`` backward passes of the batch).

``method='auto'`` picks ``'linear'`` when it applies and ``'func'`` otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from ghostsing.deepcheck import nets as _nets
from ghostsing.deepcheck.probes import hessian as _hs

__all__ = [
    "LOSSES",
    "METHODS",
    "PL_LEAF_MODULES",
    "PL_CONTAINER_MODULES",
    "piecewise_linear_violations",
    "is_piecewise_linear",
    "output_hessian_factor",
    "exact_trace_piecewise_linear",
    "hessian_diagonal_piecewise_linear",
    "hessian_trace",
]

LOSSES: tuple[str, ...] = ("cross_entropy", "mse", "half_sse")
METHODS: tuple[str, ...] = ("auto", "func", "linear")
TRACE_METHODS: tuple[str, ...] = ("auto", "exact_pl", "hutchinson", "hutchpp")

#: leaf modules whose forward is piecewise linear in its input and in each of its own parameters
PL_LEAF_MODULES: tuple[type[nn.Module], ...] = (
    nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d,
    nn.ReLU, nn.LeakyReLU, nn.ReLU6, nn.Hardtanh, nn.Identity, nn.Flatten, nn.Unflatten,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
    nn.ZeroPad2d,
)
#: allowed only in eval mode (fixed mask / running statistics); dropout also in training mode when p = 0
_EVAL_ONLY: tuple[type[nn.Module], ...] = (
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d,
)
#: containers whose own forward only chains children, adds, averages, applies ReLU or multiplies by
#: fixed buffers (nets.MLP: ``relu(W h + b) + S h`` with diagonal / orthogonal / mean skips;
#: nets._ResBlock: ``relu(conv2(relu(conv1(x)))) + x``)
PL_CONTAINER_MODULES: tuple[type[nn.Module], ...] = (
    nn.Sequential, nn.ModuleList, nn.ModuleDict, _nets.MLP, _nets._ResBlock,
)


def piecewise_linear_violations(model: nn.Module, *, eval_mode: bool = True) -> list[str]:
    """Reasons why ``model`` is not certified piecewise linear in each parameter (empty list: certified).

    Every module (the model itself included) must be *exactly* of a type in :data:`PL_LEAF_MODULES` or
    :data:`PL_CONTAINER_MODULES` (subclasses may override ``forward`` and are refused), or dropout / batch
    norm in eval mode (``eval_mode=True``; batch norm also needs running statistics; dropout with ``p = 0``
    passes in either mode).  No module may be registered twice and no parameter may be shared (weight tying
    makes the output quadratic in the shared parameter).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    out: list[str] = []
    for name, m in model.named_modules():
        where = f"module {name or '<root>'!r} of type {type(m).__name__}"
        t = type(m)
        if t in PL_LEAF_MODULES or t in PL_CONTAINER_MODULES:
            continue
        if t in _EVAL_ONLY:
            if isinstance(m, nn.modules.dropout._DropoutNd):
                if eval_mode or m.p == 0:
                    continue
                out.append(f"{where} with p={m.p} in training mode (random mask)")
                continue
            if not eval_mode:
                out.append(f"{where} in training mode (batch statistics couple the samples)")
            elif m.running_mean is None:
                out.append(f"{where} without running statistics (uses batch statistics even in eval mode)")
            continue
        out.append(f"{where} is not in the piecewise-linear allow-list")
    seen: dict[int, str] = {}
    for name, m in model.named_modules(remove_duplicate=False):
        if id(m) in seen and seen[id(m)] != name:
            out.append(f"module {name!r} is the same object as {seen[id(m)]!r} (applied twice)")
        seen.setdefault(id(m), name)
    pseen: dict[int, str] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in pseen:
            out.append(f"parameter {name!r} is shared with {pseen[id(p)]!r} (weight tying)")
        pseen.setdefault(id(p), name)
    return out


def is_piecewise_linear(model: nn.Module, *, eval_mode: bool = True) -> bool:
    """True when :func:`piecewise_linear_violations` finds nothing: the loss's Hessian diagonal then equals
    the Gauss-Newton diagonal (module docstring)."""
    return not piecewise_linear_violations(model, eval_mode=eval_mode)


def _check_loss(loss: str) -> str:
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    return loss


def output_hessian_factor(z: Tensor, loss: str) -> Tensor:
    """``S`` of shape ``(N, D, K)`` with ``S_n S_n^T = d^2 ell / dz_n^2``, for outputs ``z`` ``(N, D)``.

    ``'cross_entropy'``: ``S_n = diag(sqrt p_n) - p_n sqrt(p_n)^T``, ``p_n = softmax(z_n)``;
    ``'mse'``: ``sqrt(2/D) I``; ``'half_sse'``: ``I`` (module docstring for the loss conventions).
    """
    _check_loss(loss)
    if z.ndim != 2:
        raise ValueError(f"outputs must have shape (N, D), got {tuple(z.shape)}")
    z = z.detach()
    n, d = z.shape
    if loss == "cross_entropy":
        p = torch.softmax(z, dim=1)
        sp = p.sqrt()
        return torch.diag_embed(sp) - p[:, :, None] * sp[:, None, :]
    scale = math.sqrt(2.0 / d) if loss == "mse" else 1.0
    return scale * torch.eye(d, dtype=z.dtype, device=z.device).expand(n, d, d)


def _check_targets(targets: Tensor | None, z: Tensor, loss: str) -> None:
    """Targets do not enter ``G`` (``Lambda_n`` is target-free); checked so the call mirrors the loss."""
    if targets is None:
        return
    if not isinstance(targets, Tensor):
        raise TypeError(f"targets must be a torch.Tensor or None, got {type(targets).__name__}")
    n = z.shape[0]
    if loss == "cross_entropy":
        c = z.shape[1]
        if targets.dtype in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
            if targets.shape != (n,):
                raise ValueError(f"class-index targets must have shape ({n},), got {tuple(targets.shape)}")
            if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= c):
                raise ValueError(f"class-index targets must lie in [0, {c}), got range "
                                 f"[{int(targets.min())}, {int(targets.max())}]")
        elif targets.is_floating_point():
            if targets.shape != (n, c):
                raise ValueError(f"probability targets must have shape ({n}, {c}), "
                                 f"got {tuple(targets.shape)}")
        else:
            raise TypeError(f"cross-entropy targets must be integer class indices or float probabilities, "
                            f"got dtype {targets.dtype}")
    elif targets.numel() != z.numel() or targets.shape[0] != n:
        raise ValueError(f"{loss} targets must have the outputs' shape {tuple(z.shape)} (per sample "
                         f"{z.shape[1]} values), got {tuple(targets.shape)}")


@dataclass(frozen=True)
class _Prepared:
    params: dict[str, Tensor]
    buffers: dict[str, Tensor]
    inputs: Tensor


def _prepare(model: nn.Module, inputs: Tensor, dtype: torch.dtype | None) -> _Prepared:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(inputs, Tensor):
        raise TypeError(f"inputs must be a torch.Tensor, got {type(inputs).__name__}")
    if inputs.ndim < 1 or inputs.shape[0] < 1:
        raise ValueError(f"inputs must have a leading batch axis of length >= 1, "
                         f"got shape {tuple(inputs.shape)}")
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating torch.dtype or None, got {dtype!r}")
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ValueError("model has no trainable parameters")
    buffers = {n: b.detach() for n, b in model.named_buffers()}
    if dtype is not None:
        params = {n: p.to(dtype) for n, p in params.items()}
        buffers = {n: (b.to(dtype) if b.is_floating_point() else b) for n, b in buffers.items()}
        if inputs.is_floating_point():
            inputs = inputs.to(dtype)
    return _Prepared(params=params, buffers=buffers, inputs=inputs)


def _linear_layers(model: nn.Module, params: dict[str, Tensor]) -> list[tuple[str, nn.Linear]] | None:
    """The ``nn.Linear`` modules if every trainable parameter is one of their weights / biases, else None."""
    lins = [(n, m) for n, m in model.named_modules() if type(m) is nn.Linear]
    owned = set()
    for n, m in lins:
        for pn, _ in m.named_parameters(recurse=False):
            owned.add(f"{n}.{pn}" if n else pn)
    return lins if set(params) <= owned else None


def _diag_linear(model, prep: _Prepared, lins, loss: str, targets, chunk: int, want_diag: bool):
    """Hook path: per layer ``sum_{n,k} ||g_{n,k}||^2 (||a_n||^2 + 1)`` (trace) or ``g^2 (a^2)^T`` (diagonal).

    Returns ``(trace_sum, diag_dict or None)`` summed over samples (not yet divided by ``N``), or ``None``
    when a Linear is not applied exactly once to a 2-d input (the caller then falls back to ``'func'``).
    """
    params = {n: p.clone().requires_grad_(True) for n, p in prep.params.items()}
    state = {**params, **prep.buffers}
    names = {id(m): n for n, m in lins}
    tot = torch.zeros((), dtype=torch.float64)
    diag = {n: torch.zeros_like(p) for n, p in params.items()} if want_diag else None
    x_all = prep.inputs
    n_all = x_all.shape[0]
    for lo in range(0, n_all, chunk):
        rec: dict[str, list[tuple[Tensor, Tensor]]] = {n: [] for n, _ in lins}

        def hook(mod, inp, out, rec=rec):
            rec[names[id(mod)]].append((inp[0], out))

        handles = [m.register_forward_hook(hook) for _, m in lins]
        try:
            with torch.enable_grad():
                z = torch.func.functional_call(model, state, (x_all[lo : lo + chunk],))
        finally:
            for h in handles:
                h.remove()
        if any(len(v) != 1 or v[0][0].ndim != 2 for v in rec.values()):
            return None
        z2 = z.reshape(z.shape[0], -1)
        if lo == 0:
            _check_targets(None if targets is None else targets[: z.shape[0]], z2, loss)
        s = output_hessian_factor(z2, loss)  # (n, D, K)
        used = [(n, rec[n][0]) for n, _ in lins if rec[n][0][1].requires_grad]
        if not used:
            continue
        gs = torch.autograd.grad(z2, [u for _, (_, u) in used], grad_outputs=s.permute(2, 0, 1),
                                 is_grads_batched=True, allow_unused=True)
        for (n, (a, _)), g in zip(used, gs, strict=True):
            if g is None:
                continue
            g2 = (g.detach() ** 2).sum(0)  # (n, out): sum over the K columns
            a2 = a.detach() ** 2
            wn, bn = (f"{n}.weight" if n else "weight"), (f"{n}.bias" if n else "bias")
            if wn in params:
                tot += float((g2.sum(1) * a2.sum(1)).sum())
                if want_diag:
                    diag[wn] += g2.T @ a2
            if bn in params:
                tot += float(g2.sum())
                if want_diag:
                    diag[bn] += g2.sum(0)
    return tot, diag


def _diag_func(model, prep: _Prepared, loss: str, targets, chunk: int, want_diag: bool):
    """torch.func path: ``vmap`` over samples of ``vjp`` applied to the ``K`` columns of ``S_n``."""
    params, buffers = prep.params, prep.buffers
    x_all = prep.inputs
    n_all = x_all.shape[0]
    z0 = torch.func.functional_call(model, {**params, **buffers}, (x_all[:1],))
    _check_targets(None if targets is None else targets[:1], z0.reshape(1, -1), loss)

    def one(x_n: Tensor) -> dict[str, Tensor]:
        def f(p):
            return torch.func.functional_call(model, {**p, **buffers}, (x_n[None],)).reshape(-1)

        z, vjp_fn = torch.func.vjp(f, params)
        s = output_hessian_factor(z[None], loss)[0]  # (D, K), constant
        (gk,) = torch.func.vmap(vjp_fn)(s.T)  # dict of (K, *shape)
        return {k: (v**2).sum(0) for k, v in gk.items()}

    vone = torch.func.vmap(one)
    tot = torch.zeros((), dtype=torch.float64)
    diag = {n: torch.zeros_like(p) for n, p in params.items()} if want_diag else None
    with torch.no_grad():
        for lo in range(0, n_all, chunk):
            sq = vone(x_all[lo : lo + chunk])
            for k, v in sq.items():
                vs = v.sum(0)
                tot += float(vs.double().sum())
                if want_diag:
                    diag[k] += vs
    return tot, diag


def _run(model, inputs, targets, loss, *, chunk, eval_mode, dtype, check, method, want_diag):
    _check_loss(loss)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if chunk is not None and (not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1):
        raise ValueError(f"chunk must be an integer >= 1 or None, got {chunk!r}")
    if check:
        bad = piecewise_linear_violations(model, eval_mode=eval_mode)
        if bad:
            raise ValueError(
                "the exact trace needs a network that is piecewise linear in each parameter; "
                + "; ".join(bad) + ". Pass check=False only if you assert piecewise linearity yourself."
            )
    prep = _prepare(model, inputs, dtype)
    if targets is not None and isinstance(targets, Tensor) and (targets.ndim == 0
                                                                 or targets.shape[0] != inputs.shape[0]):
        raise ValueError(f"targets must have a leading batch axis of length {inputs.shape[0]}, "
                         f"got shape {tuple(targets.shape)}")
    n_all = prep.inputs.shape[0]
    p_total = sum(p.numel() for p in prep.params.values())
    was_training = model.training
    model.train(not eval_mode)
    try:
        res = None
        lins = _linear_layers(model, prep.params) if method in ("auto", "linear") else None
        if method == "linear" and lins is None:
            raise ValueError("method='linear' needs every trainable parameter to belong to an nn.Linear; "
                             "use method='func'")
        if lins is not None:
            res = _diag_linear(model, prep, lins, loss, targets, chunk or n_all, want_diag)
            if res is None and method == "linear":
                raise ValueError("method='linear' needs each nn.Linear applied exactly once to a 2-d "
                                 "(batch, features) input; use method='func'")
        if res is None:
            with torch.no_grad():
                z0 = torch.func.functional_call(model, {**prep.params, **prep.buffers}, (prep.inputs[:1],))
            k = z0.numel()
            auto_chunk = max(1, (1 << 22) // max(1, k * p_total))  # ~4.2M numbers of per-sample gradients
            res = _diag_func(model, prep, loss, targets, chunk or auto_chunk, want_diag)
    finally:
        model.train(was_training)
    tot, diag = res
    return float(tot) / n_all, ({k: v / n_all for k, v in diag.items()} if want_diag else None), prep


def exact_trace_piecewise_linear(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor | None = None,
    loss: str = "cross_entropy",
    *,
    chunk: int | None = None,
    eval_mode: bool = True,
    dtype: torch.dtype | None = None,
    check: bool = True,
    method: str = "auto",
) -> float:
    r"""Exact ``tr H`` of ``L(theta) = (1/N) sum_n ell(z_n(theta), y_n)`` for a piecewise-linear network.

    ``tr H = tr G = (1/N) sum_n sum_k || grad_theta (s_{n,k}^T z_n) ||^2`` with ``S_n S_n^T`` the output
    Hessian of ``ell`` (see the module docstring for why ``R_ii = 0`` and for the loss conventions:
    ``'cross_entropy'`` and ``'mse'`` follow torch's default mean reductions, ``'half_sse'`` is
    ``(1/N) sum_n ||z_n - y_n||^2 / 2``).  No estimator error; float rounding only.

    ``inputs`` ``(N, ...)``; ``targets`` (optional) are only checked for shape and range, because ``G``
    does not depend on them.  ``model`` must return ``(N, C)`` logits (cross-entropy) or ``(N, ...)``
    outputs (squared losses, flattened per sample).  ``eval_mode=True`` evaluates the model in eval mode
    (dropout off, batch-norm running statistics; as PyHessian and :func:`flat_loss` do) and restores its
    mode.  ``dtype`` casts parameters, buffers and inputs (the model is not modified).  ``chunk``: samples
    per batch of per-sample gradients (default: all at once on the ``'linear'`` path, ``~2^22 / (K P)`` on
    the ``'func'`` path).  ``method``: ``'auto'`` | ``'func'`` | ``'linear'`` (module docstring).

    ``check=True`` refuses (``ValueError`` naming the offending module type) any model that
    :func:`is_piecewise_linear` cannot certify; ``check=False`` means *you assert piecewise linearity*
    (otherwise the result is ``tr G``, not ``tr H``).
    """
    tr, _, _ = _run(model, inputs, targets, loss, chunk=chunk, eval_mode=eval_mode, dtype=dtype,
                    check=check, method=method, want_diag=False)
    return tr


def hessian_diagonal_piecewise_linear(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor | None = None,
    loss: str = "cross_entropy",
    *,
    chunk: int | None = None,
    eval_mode: bool = True,
    dtype: torch.dtype | None = None,
    check: bool = True,
    method: str = "auto",
) -> Tensor:
    r"""Exact ``diag H`` (shape ``(P,)``, in the order of ``model.named_parameters()`` restricted to trainable
    parameters, as :func:`ghostsing.deepcheck.probes.hessian.flat_loss` flattens them).

    ``H_ii = G_ii = (1/N) sum_n sum_k (e_i^T J_n^T s_{n,k})^2`` for a network piecewise linear in each
    parameter (module docstring).  Arguments as :func:`exact_trace_piecewise_linear`.
    """
    _, diag, prep = _run(model, inputs, targets, loss, chunk=chunk, eval_mode=eval_mode, dtype=dtype,
                         check=check, method=method, want_diag=True)
    return torch.cat([diag[n].reshape(-1) for n in prep.params])


_LOSS_FNS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "cross_entropy": torch.nn.functional.cross_entropy,
    "mse": torch.nn.functional.mse_loss,
    "half_sse": lambda z, y: 0.5 * ((z - y) ** 2).reshape(z.shape[0], -1).sum(1).mean(),
}


def hessian_trace(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss: str = "cross_entropy",
    *,
    method: str = "auto",
    n_probes: int = 99,
    seed: int | np.random.Generator | None = 0,
    eval_mode: bool = True,
    dtype: torch.dtype | None = None,
    batch: int = 32,
) -> _hs.TraceEstimate:
    """``tr H`` of the loss ``loss`` (names as :func:`exact_trace_piecewise_linear`) by the best route.

    ``method='exact_pl'``: :func:`exact_trace_piecewise_linear` (``stderr = 0``; refuses models that are not
    certified piecewise linear); ``'hutchinson'`` / ``'hutchpp'``: the stochastic estimators of
    :mod:`.hessian` with ``n_probes`` HVPs (``tr H ~= mean z^T H z``); ``'auto'``: ``'exact_pl'`` when
    :func:`is_piecewise_linear` holds, else ``'hutchpp'``.
    """
    if method not in TRACE_METHODS:
        raise ValueError(f"method must be one of {TRACE_METHODS}, got {method!r}")
    _check_loss(loss)
    if method == "auto":
        method = "exact_pl" if is_piecewise_linear(model, eval_mode=eval_mode) else "hutchpp"
    if method == "exact_pl":
        tr = exact_trace_piecewise_linear(model, inputs, targets, loss, eval_mode=eval_mode, dtype=dtype)
        return _hs.TraceEstimate(mean=tr, stderr=0.0, samples=np.array([tr]))
    fl = _hs.flat_loss(model, _LOSS_FNS[loss], inputs, targets, dtype=dtype, eval_mode=eval_mode)
    hvp = _hs.make_hvp(fl.fn, fl.theta, method="jvp")
    if method == "hutchinson":
        return _hs.hutchinson_trace(hvp, fl.dim, n_probes, batch=batch, dtype=fl.theta.dtype,
                                    device=fl.theta.device, seed=seed)
    return _hs.hutchpp_trace(hvp, fl.dim, n_probes, dtype=fl.theta.dtype, device=fl.theta.device, seed=seed)
