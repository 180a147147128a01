r"""Exact Hessian trace and diagonal of a training loss for networks that are piecewise linear in each
parameter.

One idea: the exact Hessian trace and diagonal of nets that are piecewise linear in each parameter (``diag H
= diag GGN``), with the check that a net is piecewise linear, which the identity needs.

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
* ``'layers'`` (every trainable parameter belongs to an ``nn.Linear``, an ``nn.Conv1d/2d`` with
  ``groups=1`` and zero or integer padding, or an affine eval-mode ``nn.BatchNorm1d/2d``, each applied
  once to the batch): one forward pass records each layer's input ``a_n`` and output ``u_n``; one
  backward pass batched over the ``K`` columns gives ``g_{n,k} = d(s_{n,k}^T z_n)/du_n``.  A Linear on a
  2-d input has the per-sample weight gradient ``g a^T``, with squared norm ``||g||^2 ||a||^2`` and
  squared entries ``g_i^2 a_j^2``: no per-sample gradient is ever formed (cost ~ ``K`` backward passes of
  the batch).  With ``T`` positions (a conv layer's output pixels via ``unfold``, or a Linear on
  ``(N, T, features)``) the per-sample gradient is ``sum_t g_t a_t^T``; its squared norm is taken either
  by forming it (``K T O I`` per sample) or, for the trace, by the Gram identity
  ``||sum_t g_t a_t^T||^2 = sum_{t,t'} (g_t . g_t')(a_t . a_t')`` (``T^2 (I + K O)`` per sample),
  whichever is cheaper.  Batch norm in eval mode: per-sample gradients ``sum_t g_t xhat_t`` (scale) and
  ``sum_t g_t`` (shift), ``xhat`` from the running statistics.

``method='auto'`` picks ``'layers'`` when it applies and ``'func'`` otherwise.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from ghostsing.deepcheck import cnns as _cnns
from ghostsing.deepcheck import nets as _nets
from ghostsing.deepcheck import operators as _ops
from ghostsing.deepcheck.probes import hessian as _hs

__all__ = [
    "LOSSES",
    "METHODS",
    "PL_LEAF_MODULES",
    "PL_CONTAINER_MODULES",
    "piecewise_linear_violations",
    "is_piecewise_linear",
    "mark_piecewise_linear",
    "output_hessian_factor",
    "exact_trace_piecewise_linear",
    "hessian_diagonal_piecewise_linear",
    "hessian_trace",
    "hvp_plan",
]

LOSSES: tuple[str, ...] = ("cross_entropy", "mse", "half_sse")
METHODS: tuple[str, ...] = ("auto", "func", "layers")
TRACE_METHODS: tuple[str, ...] = ("auto", "exact_pl", "hutchinson", "hutchpp", "xtrace")

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
#: cnns._ResBlock: ``relu(conv2(relu(conv1(x)))) + x``)
PL_CONTAINER_MODULES: tuple[type[nn.Module], ...] = (
    nn.Sequential, nn.ModuleList, nn.ModuleDict, _nets.MLP, _cnns._ResBlock,
)


_PL_MARK = "_ghostsing_piecewise_linear"


def mark_piecewise_linear(obj):
    """Mark a module class or instance as piecewise linear in its input and in each of its own parameters
    (usable as a class decorator); :func:`piecewise_linear_violations` then accepts it (its children are still
    checked).  You assert the property: a wrong mark makes the exact trace ``tr G``, not ``tr H``."""
    if not (isinstance(obj, nn.Module) or (isinstance(obj, type) and issubclass(obj, nn.Module))):
        raise TypeError(f"mark_piecewise_linear needs an nn.Module class or instance, got {obj!r}")
    setattr(obj, _PL_MARK, True)
    return obj


_FX_FUNCTIONS = {operator.add, operator.sub, operator.neg, operator.getitem, torch.add, torch.sub, torch.relu,
                 torch.flatten, torch.cat, torch.stack, torch.nn.functional.relu,
                 torch.nn.functional.leaky_relu, torch.nn.functional.max_pool1d,
                 torch.nn.functional.max_pool2d, torch.nn.functional.avg_pool1d,
                 torch.nn.functional.avg_pool2d, torch.nn.functional.adaptive_avg_pool2d, torch.reshape,
                 torch.mean, torch.sum, getattr}
_FX_METHODS = {"add", "sub", "relu", "flatten", "view", "reshape", "size", "permute", "transpose",
               "contiguous",
               "squeeze", "unsqueeze", "mean", "sum", "neg", "clamp_min"}
_FX_SCALED = {operator.mul, operator.truediv, torch.mul, "mul", "div"}


def _structural_violation(m: nn.Module) -> str | None:
    """``None`` when ``m.forward``, traced with ``torch.fx`` (children as leaves), only calls each child once
    and combines the results with additions / subtractions (e.g. additive skips), ReLU-type activations,
    pooling, reshapes, concatenation, and products with constants or buffers; else the reason."""
    import torch.fx

    class _Shallow(torch.fx.Tracer):
        def is_leaf_module(self, mod, qualname):  # noqa: ARG002 - fx signature
            return True

    try:
        graph = _Shallow().trace(m)
    except Exception as e:  # noqa: BLE001 - any tracing failure means "cannot certify"
        return f"its forward could not be traced by torch.fx ({type(e).__name__})"
    params = dict(m.named_parameters())
    called: set[str] = set()

    def fixed(a) -> bool:  # a constant or a buffer
        return not isinstance(a, torch.fx.Node) or (a.op == "get_attr" and a.target not in params)

    for node in graph.nodes:
        if node.op in ("placeholder", "output"):
            continue
        if node.op == "call_module":
            if node.target in called:
                return f"it calls child {node.target!r} twice (quadratic in its parameters)"
            called.add(node.target)
        elif node.op == "get_attr":
            if node.target in params:
                return f"its forward uses parameter {node.target!r} directly"
        else:
            tgt = node.target
            if tgt in _FX_SCALED and (len(node.args) == 2 and (fixed(node.args[0]) or fixed(node.args[1]))):
                continue
            ok = tgt in _FX_FUNCTIONS if node.op == "call_function" else tgt in _FX_METHODS
            if not ok:
                name = getattr(tgt, "__name__", str(tgt))
                return f"its forward calls {name!r}, which is not known to be piecewise linear"
    return None


def piecewise_linear_violations(
    model: nn.Module, *, eval_mode: bool = True, trusted: tuple[type[nn.Module], ...] = ()
) -> list[str]:
    """Reasons why ``model`` is not certified piecewise linear in each parameter (empty list: certified).

    A module passes when its type is *exactly* in :data:`PL_LEAF_MODULES` or :data:`PL_CONTAINER_MODULES`, or
    in ``trusted``, or it (or its class) carries :func:`mark_piecewise_linear`'s mark, or it is dropout /
    batch norm in eval mode (``eval_mode=True``; batch norm also needs running statistics; dropout with ``p =
    0`` passes in either mode), or it has no parameters of its own and its forward is certified structurally
    (:func:`_structural_violation`: children each called once, combined by additions, ReLU, pooling, reshapes,
    products with constants; so user-written residual blocks pass).  No module may be registered twice and no
    parameter may be shared (weight tying makes the output quadratic in the shared parameter).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(trusted, tuple) or not all(isinstance(t, type) and issubclass(t, nn.Module)
                                                  for t in trusted):
        raise TypeError(f"trusted must be a tuple of nn.Module classes, got {trusted!r}")
    out: list[str] = []
    for name, m in model.named_modules():
        where = f"module {name or '<root>'!r} of type {type(m).__name__}"
        t = type(m)
        if t in PL_LEAF_MODULES or t in PL_CONTAINER_MODULES or t in trusted or getattr(m, _PL_MARK, False):
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
        if not any(True for _ in m.parameters(recurse=False)) and any(True for _ in m.children()):
            why = _structural_violation(m)
            if why is None:
                continue
            out.append(f"{where}: {why} (mark it with mark_piecewise_linear or pass trusted= if it is)")
            continue
        out.append(f"{where} is not in the piecewise-linear allow-list (mark_piecewise_linear or trusted= "
                   "to assert that it is)")
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


def is_piecewise_linear(model: nn.Module, *, eval_mode: bool = True,
                        trusted: tuple[type[nn.Module], ...] = ()) -> bool:
    """True when :func:`piecewise_linear_violations` finds nothing: the loss's Hessian diagonal then equals
    the Gauss-Newton diagonal (module docstring)."""
    return not piecewise_linear_violations(model, eval_mode=eval_mode, trusted=trusted)


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


def _check_outputs(z: Tensor, loss: str) -> None:
    """Cross-entropy needs ``(N, C)`` logits (a softmax over more axes would be silently wrong)."""
    if loss == "cross_entropy" and z.ndim != 2:
        raise ValueError(f"loss='cross_entropy' needs model outputs of shape (N, C), got {tuple(z.shape)}; "
                         "flatten the extra axes into the batch or use a squared loss")


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
    """Parameters, buffers and inputs from the one flattened-loss object
    (:func:`~ghostsing.deepcheck.operators. flat_loss`; the loss does not enter ``G``'s factors, so a
    placeholder name is passed)."""
    fl = _ops.flat_loss(model, "half_sse", inputs, None, dtype=dtype)
    return _Prepared(params=fl.params(), buffers=fl.buffers, inputs=fl.inputs)


#: modules whose per-sample gradients the ``'layers'`` path forms from recorded inputs and output gradients
_LAYER_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d)
_BLOCK_NUMBERS = 1 << 22  # bound on the per-layer intermediates of one sample block (numbers)


def _layer_supported(m: nn.Module) -> bool:
    t = type(m)
    if t is nn.Linear:
        return True
    if t in (nn.Conv1d, nn.Conv2d):
        return m.groups == 1 and m.padding_mode == "zeros" and (not isinstance(m.padding, str)
                                                                or m.padding == "valid")
    if t in (nn.BatchNorm1d, nn.BatchNorm2d):
        return m.affine and m.track_running_stats and m.running_mean is not None
    return False


def _param_layers(model: nn.Module, params: dict[str, Tensor]) -> list[tuple[str, nn.Module]] | None:
    """Modules owning trainable parameters if all have a supported type (``_LAYER_TYPES``), else None."""
    owners = []
    for n, m in model.named_modules():
        own = [f"{n}.{pn}" if n else pn for pn, _ in m.named_parameters(recurse=False)]
        if any(o in params for o in own):
            if not _layer_supported(m):
                return None
            owners.append((n, m))
    return owners


def _patches(m: nn.Module, a: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
    """Inputs ``A (N, T, I)`` and output gradients ``G (K, N, T, O)`` of a Linear / Conv layer, so that the
    per-sample weight gradient is ``sum_t G[k, n, t] A[n, t]^T`` (``O x I``, the weight's flattened shape)."""
    k, n = g.shape[:2]
    if type(m) is nn.Linear:
        return a.reshape(n, -1, a.shape[-1]), g.reshape(k, n, -1, g.shape[-1])
    two = type(m) is nn.Conv2d
    pad = (0,) * (2 if two else 1) if m.padding == "valid" else tuple(m.padding)
    if two:
        ks, dil, st = m.kernel_size, m.dilation, m.stride
    else:  # Conv1d as a 1 x L image
        a = a.unsqueeze(2)
        ks, dil, st, pad = (1, *m.kernel_size), (1, *m.dilation), (1, *m.stride), (0, *pad)
    cols = torch.nn.functional.unfold(a, ks, dilation=dil, padding=pad, stride=st)  # (N, I, T)
    return cols.transpose(1, 2), g.reshape(k, n, g.shape[2], -1).transpose(2, 3)


def _layer_contrib(m: nn.Module, name: str, a: Tensor, g: Tensor, params: dict[str, Tensor],
                   buffers: dict[str, Tensor], diag: dict[str, Tensor] | None) -> float:
    """``sum_{n,k}`` of the squared per-sample gradients of ``m``'s trainable parameters (the trace part);
    adds their squares elementwise into ``diag`` when given.  ``g (K, N, *out)`` = d(s_{n,k}^T z_n)/d out."""
    pre = f"{name}." if name else ""
    wn, bn = pre + "weight", pre + "bias"
    k, n = g.shape[:2]
    tot = 0.0
    if type(m) in (nn.BatchNorm1d, nn.BatchNorm2d):
        c = a.shape[1]
        shape = (1, c) + (1,) * (a.ndim - 2)
        xhat = (a - buffers[pre + "running_mean"].view(shape)) / torch.sqrt(
            buffers[pre + "running_var"].view(shape) + m.eps)
        gg = g.reshape(k, n, c, -1)
        per = {wn: (gg * xhat.reshape(n, c, -1)).sum(-1), bn: gg.sum(-1)}  # (K, N, C) each
        for pn, v in per.items():
            if pn in params:
                v2 = v * v
                tot += float(v2.sum())
                if diag is not None:
                    diag[pn] += v2.sum((0, 1))
        return tot
    A, G = _patches(m, a, g)  # (N, T, I), (K, N, T, O)
    t, i, o = A.shape[1], A.shape[2], G.shape[3]
    if t == 1:  # ||g a^T||^2 = ||g||^2 ||a||^2, entries g_i^2 a_j^2: nothing per-sample is formed
        g1, a1 = G[:, :, 0], A[:, 0]
        g2 = torch.einsum("kno,kno->no", g1, g1)  # (N, O): sum over the K columns
        if bn in params:
            tot += float(g2.sum())
            if diag is not None:
                diag[bn] += g2.sum(0)
        if wn in params:
            tot += float(g2.sum(1) @ torch.einsum("ni,ni->n", a1, a1))
            if diag is not None:
                diag[wn] += (g2.T @ (a1 * a1)).view_as(diag[wn])
        return tot
    if bn in params:
        gb = G.sum(2)  # (K, N, O): per-sample bias gradients
        gb2 = gb * gb
        tot += float(gb2.sum())
        if diag is not None:
            diag[bn] += gb2.sum((0, 1))
    if wn not in params:
        return tot
    ghost = diag is None and t * t * (i + k * o) < k * t * o * i
    per_sample = k * (t * t if ghost else o * i)
    nb = max(1, _BLOCK_NUMBERS // max(1, per_sample))
    for lo in range(0, n, nb):
        As, Gs = A[lo : lo + nb], G[:, lo : lo + nb]
        if ghost:  # ||sum_t g_t a_t^T||^2 = sum_{t,t'} (g_t . g_t') (a_t . a_t')
            tot += float(((Gs @ Gs.transpose(-1, -2)) * (As @ As.transpose(1, 2))).sum())
        else:
            w = Gs.transpose(-1, -2) @ As  # (K, nb, O, I) per-sample weight gradients
            w2 = w * w
            tot += float(w2.sum())
            if diag is not None:
                diag[wn] += w2.sum((0, 1)).view_as(diag[wn])
    return tot


def _auto_chunk_layers(model: nn.Module, prep: _Prepared) -> int:
    """Samples per pass so that the ``K`` batched copies of every leaf module's output (what the batched
    backward materialises) stay near ``2^22`` numbers; from one forward pass of a single sample."""
    sizes: list[int] = []

    def hook(mod, inp, out):
        if isinstance(out, Tensor):
            sizes.append(out.numel())

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.no_grad():
            z = torch.func.functional_call(model, {**prep.params, **prep.buffers}, (prep.inputs[:1],))
    finally:
        for h in handles:
            h.remove()
    return max(1, _BLOCK_NUMBERS // max(1, z.numel() * (sum(sizes) + z.numel())))


def _diag_layers(model, prep: _Prepared, layers, loss: str, targets, chunk: int, want_diag: bool):
    """Hook path: record each parameter layer's input ``a`` and output ``u``, one backward pass batched over
    the ``K`` columns of ``S_n`` gives ``g = d(s_{n,k}^T z_n)/du``, and :func:`_layer_contrib` forms the
    squared per-sample gradients layer by layer.

    Returns ``(trace_sum, diag_dict or None)`` summed over samples (not yet divided by ``N``), or ``None``
    when a layer is not applied exactly once to the batch (the caller then falls back to ``'func'``).
    """
    params = {n: p.clone().requires_grad_(True) for n, p in prep.params.items()}
    state = {**params, **prep.buffers}
    names = {id(m): n for n, m in layers}
    mods = dict(layers)
    tot = 0.0
    diag = {n: torch.zeros_like(p) for n, p in params.items()} if want_diag else None
    x_all = prep.inputs
    n_all = x_all.shape[0]
    for lo in range(0, n_all, chunk):
        xb = x_all[lo : lo + chunk]
        rec: dict[str, list[tuple[Tensor, Tensor]]] = {n: [] for n, _ in layers}

        def hook(mod, inp, out, rec=rec):
            rec[names[id(mod)]].append((inp[0], out))

        handles = [m.register_forward_hook(hook) for _, m in layers]
        try:
            with torch.enable_grad():
                z = torch.func.functional_call(model, state, (xb,))
        finally:
            for h in handles:
                h.remove()
        nb = xb.shape[0]
        if any(len(v) != 1 or v[0][0].ndim < 2 or v[0][0].shape[0] != nb or v[0][1].shape[0] != nb
               or not v[0][1].requires_grad for v in rec.values()):
            return None
        if any(mods[n].training and type(mods[n]) in (nn.BatchNorm1d, nn.BatchNorm2d) for n in rec):
            return None
        _check_outputs(z, loss)
        z2 = z.reshape(nb, -1)
        if lo == 0:
            _check_targets(None if targets is None else targets[:nb], z2, loss)
        s = output_hessian_factor(z2, loss)  # (nb, D, K)
        order = [n for n, _ in layers]
        # one backward batched over the K columns (measured faster than K retained backward passes, also
        # for conv layers, whose batched backward falls back to a loop inside vmap)
        gs = torch.autograd.grad(z2, [rec[n][0][1] for n in order], grad_outputs=s.permute(2, 0, 1),
                                 is_grads_batched=True, allow_unused=True)
        with torch.no_grad():
            for n, g in zip(order, gs, strict=True):
                if g is not None:
                    tot += _layer_contrib(mods[n], n, rec[n][0][0].detach(), g.detach(), params,
                                          prep.buffers, diag)
    return tot, diag


def _diag_func(model, prep: _Prepared, loss: str, targets, chunk: int, want_diag: bool):
    """torch.func path: ``vmap`` over samples of ``vjp`` applied to the ``K`` columns of ``S_n``."""
    params, buffers = prep.params, prep.buffers
    x_all = prep.inputs
    n_all = x_all.shape[0]
    z0 = torch.func.functional_call(model, {**params, **buffers}, (x_all[:1],))
    _check_outputs(z0, loss)
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


def _run(model, inputs, targets, loss, *, chunk, eval_mode, dtype, check, method, want_diag, trusted=()):
    _check_loss(loss)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if chunk is not None and (not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1):
        raise ValueError(f"chunk must be an integer >= 1 or None, got {chunk!r}")
    if check:
        bad = piecewise_linear_violations(model, eval_mode=eval_mode, trusted=trusted)
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
        layers = _param_layers(model, prep.params) if method in ("auto", "layers") else None
        if method == "layers" and layers is None:
            raise ValueError("method='layers' needs every trainable parameter to belong to an nn.Linear, "
                             "nn.Conv1d/2d (groups=1, zero or integer padding) or an affine eval-mode "
                             "nn.BatchNorm1d/2d; use method='func'")
        if layers is not None:
            res = _diag_layers(model, prep, layers, loss, targets, chunk or _auto_chunk_layers(model, prep),
                               want_diag)
            if res is None and method == "layers":
                raise ValueError("method='layers' needs each parameter layer applied exactly once to the "
                                 "batch; use method='func'")
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
    trusted: tuple[type[nn.Module], ...] = (),
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
    per forward / backward pass (default: ``~2^22 / (K A)`` on the ``'layers'`` path, ``A`` the numbers in
    all module outputs of one sample; ``~2^22 / (K P)`` on the ``'func'`` path).  ``method``:
    ``'auto'`` | ``'func'`` | ``'layers'`` (module docstring).

    ``check=True`` refuses (``ValueError`` naming the offending module type) any model that
    :func:`is_piecewise_linear` cannot certify (``trusted``: module classes you certify yourself);
    ``check=False`` means *you assert piecewise linearity* (otherwise the result is ``tr G``, not ``tr H``).
    """
    tr, _, _ = _run(model, inputs, targets, loss, chunk=chunk, eval_mode=eval_mode, dtype=dtype,
                    check=check, method=method, want_diag=False, trusted=trusted)
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
    trusted: tuple[type[nn.Module], ...] = (),
) -> Tensor:
    r"""Exact ``diag H`` (shape ``(P,)``, in the order of ``model.named_parameters()`` restricted to trainable
    parameters, as :func:`ghostsing.deepcheck.probes.hessian.flat_loss` flattens them).

    ``H_ii = G_ii = (1/N) sum_n sum_k (e_i^T J_n^T s_{n,k})^2`` for a network piecewise linear in each
    parameter (module docstring).  Arguments as :func:`exact_trace_piecewise_linear`.
    """
    _, diag, prep = _run(model, inputs, targets, loss, chunk=chunk, eval_mode=eval_mode, dtype=dtype,
                         check=check, method=method, want_diag=True, trusted=trusted)
    return torch.cat([diag[n].reshape(-1) for n in prep.params])


def hvp_plan(model: nn.Module) -> tuple[str, int]:
    """``(HVP method, vectors per block)`` that :class:`~ghostsing.deepcheck.operators.HessianOperator`
    picks with ``method='auto'``: ``('double_backward', 1)`` when the model has a convolution
    (``torch.func.vmap`` has no batching rule for ``convolution_backward`` and falls back to a per-vector
    loop: batched HVPs were ~2x slower than one double backward per vector on the benchmark conv net),
    ``('jvp', 32)`` otherwise."""
    if any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules()):
        return "double_backward", 1
    return "jvp", 32


def hessian_trace(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss: str = "cross_entropy",
    *,
    method: str = "auto",
    n_probes: int = 100,
    seed: int | np.random.Generator | None = 0,
    eval_mode: bool = True,
    dtype: torch.dtype | None = None,
    batch: int | None = None,
    trusted: tuple[type[nn.Module], ...] = (),
) -> _hs.TraceEstimate:
    """``tr H`` of the loss ``loss`` (names as :func:`exact_trace_piecewise_linear`) by the best route.

    ``method='exact_pl'``: the exact ``tr G`` of the GGN operator, equal to ``tr H`` for nets certified
    piecewise linear (``stderr = 0``; refuses others); ``'hutchinson'`` / ``'hutchpp'`` / ``'xtrace'``: the
    stochastic estimators of :mod:`.hessian` on the :class:`~ghostsing.deepcheck.operators.HessianOperator`
    with ``n_probes`` products; ``'auto'``: ``'exact_pl'`` when :func:`is_piecewise_linear` holds (with
    ``trusted``), else :func:`ghostsing.deepcheck.probes.hessian.trace` with ``method='auto'`` (XTrace or
    Hutchinson, whichever has the smaller estimated error).  ``batch`` overrides the operator's HVP block size
    (:func:`hvp_plan`).
    """
    if method not in TRACE_METHODS:
        raise ValueError(f"method must be one of {TRACE_METHODS}, got {method!r}")
    _check_loss(loss)
    if method == "auto":
        pl = is_piecewise_linear(model, eval_mode=eval_mode, trusted=trusted)
        method = "exact_pl" if pl else "auto"
    if method == "exact_pl":
        bad = piecewise_linear_violations(model, eval_mode=eval_mode, trusted=trusted)
        if bad:
            raise ValueError("method='exact_pl' needs a network that is piecewise linear in each parameter; "
                             + "; ".join(bad))
        fl = _ops.flat_loss(model, loss, inputs, targets, dtype=dtype, eval_mode=eval_mode)
        tr = _ops.GGNOperator(fl).trace_exact()
        return _hs.TraceEstimate(mean=tr, stderr=0.0, samples=np.array([tr]), method="exact_pl")
    fl = _ops.flat_loss(model, loss, inputs, targets, dtype=dtype, eval_mode=eval_mode)
    op = _ops.HessianOperator(fl, batch=batch)
    return _hs.trace(op, n_probes, method=method, seed=seed)
