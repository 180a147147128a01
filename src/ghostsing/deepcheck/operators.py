r"""Curvature of a training loss as torch-native linear operators, all built from one flattened loss.

One idea: the curvature operators of one flattened training loss (Hessian, generalised Gauss-Newton,
empirical Fisher, dense and function operators) behind the one :class:`CurvatureOperator` interface.

Notation.  ``theta in R^P`` is the flat vector of a model's trainable parameters (in the order of
``model.named_parameters()``), ``z_n(theta) in R^D`` the output for sample ``n`` of a batch of ``N``,
``ell(z_n, y_n)`` the per-sample loss and ``L(theta) = (1/N) sum_n ell(z_n, y_n)`` the training loss (torch's
``mean`` reductions; :data:`LOSSES` names three built-in losses, any callable ``loss_fn(z, y)`` that is such a
mean also works).  ``J_n = dz_n / dtheta`` (``D x P``), ``g_n = grad_theta ell(z_n, y_n)``.

:class:`FlatLoss` is the one object that turns ``(model, loss, inputs, targets)`` into functions of ``theta``:
``L(theta)`` (:meth:`FlatLoss.fn`), the outputs ``z(theta)``, the per-sample losses, and the chain-batched
loss ``L_idx(W_c)`` used by the SGLD sampler.  Three operators are built from it:

* :class:`HessianOperator`: ``H v = d/dt grad L(theta + t v)|_{t=0}`` (``torch.func.jvp`` of
  ``torch.func.grad``, ``vmap``-batched over a block of vectors; one double backward per vector for nets with
  convolutions, whose backward has no ``vmap`` batching rule);
* :class:`GGNOperator`: the generalised Gauss-Newton ``G = (1/N) sum_n J_n^T Lambda_n J_n`` with the output
  Hessian ``Lambda_n = d^2 ell / dz_n^2``; ``G v = J^T (d^2 L / dz^2) (J v)`` by a ``jvp`` of the outputs, a
  Hessian-vector product of the loss in ``z`` and a ``vjp`` of the outputs.  ``G`` is positive semi-definite
  for convex losses.  Its exact trace and diagonal (:meth:`GGNOperator.trace_exact`,
  :meth:`GGNOperator.diagonal_exact`) are sums of squared per-sample gradients
  (:mod:`ghostsing.deepcheck.probes.pl_trace`); for nets piecewise linear in each parameter they equal the
  Hessian's (``diag H = diag G``);
* :class:`EmpiricalFisherOperator`: ``F = (1/N) sum_n g_n g_n^T``, ``F v = (1/N) sum_n g_n (g_n . v)`` by one
  ``jvp`` and one ``vjp`` of the vector of per-sample losses.

Every operator is a :class:`CurvatureOperator`: ``shape = (P, P)``, ``dtype``, ``device``, ``A @ v`` for
``v`` of shape ``(P,)`` and ``A @ V`` for a block ``V`` of shape ``(P, k)`` (columns are vectors; the block is
applied in sub-blocks of ``batch`` vectors), ``to_dense()``, ``to_scipy()`` (a float64
``scipy.sparse.linalg.LinearOperator``) and a count ``n_matvecs`` of the vectors applied so far.
:class:`DenseOperator` wraps an explicit symmetric matrix and :class:`FunctionOperator` a user function
``V (b, P) -> A V`` (rows are vectors), so that every algorithm of :mod:`ghostsing.deepcheck.probes.hessian`
(Lanczos, SLQ, trace and diagonal estimators) runs on any of them.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

__all__ = [
    "LOSSES",
    "LOSS_FNS",
    "FlatLoss",
    "flat_loss",
    "CurvatureOperator",
    "DenseOperator",
    "FunctionOperator",
    "HessianOperator",
    "GGNOperator",
    "EmpiricalFisherOperator",
    "as_operator",
]

LOSSES: tuple[str, ...] = ("cross_entropy", "mse", "half_sse")


def _half_sse(z: Tensor, y: Tensor) -> Tensor:
    return 0.5 * ((z - y) ** 2).reshape(z.shape[0], -1).sum(1).mean()


#: the built-in losses as functions of ``(z, y)`` (mean over the batch; ``'mse'`` is torch's mean over all
#: ``N D`` elements, ``'half_sse'`` is ``(1/N) sum_n ||z_n - y_n||^2 / 2``)
LOSS_FNS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "cross_entropy": torch.nn.functional.cross_entropy,
    "mse": torch.nn.functional.mse_loss,
    "half_sse": _half_sse,
}


@dataclass(frozen=True)
class FlatLoss:
    r"""``L(theta) = loss(model_theta(inputs), targets)`` as functions of the flat parameter vector.

    Built by :func:`flat_loss`.  ``theta`` holds the model's parameters (a detached copy in the dtype / device
    the functions compute in); the model itself is never modified.  ``loss`` is a name in :data:`LOSSES` or a
    callable ``loss_fn(z, y)`` that averages a per-sample loss over the batch.  ``eval_mode=True`` evaluates
    the model in eval mode (dropout off, batch-norm running statistics) and restores its mode after each call.
    """

    model: nn.Module
    loss: str | Callable[[Tensor, Tensor], Tensor]
    inputs: Tensor
    targets: Tensor | None
    theta: Tensor
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    buffers: dict[str, Tensor] = field(repr=False)
    eval_mode: bool = True

    @property
    def dim(self) -> int:
        return int(self.theta.numel())

    @property
    def dtype(self) -> torch.dtype:
        return self.theta.dtype

    @property
    def device(self) -> torch.device:
        return self.theta.device

    @property
    def n_samples(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def loss_fn(self) -> Callable[[Tensor, Tensor], Tensor]:
        return LOSS_FNS[self.loss] if isinstance(self.loss, str) else self.loss

    def unflatten(self, theta: Tensor) -> dict[str, Tensor]:
        """Split a flat vector into named tensors with the model's parameter shapes."""
        out: dict[str, Tensor] = {}
        i = 0
        for name, shape in zip(self.names, self.shapes, strict=True):
            k = math.prod(shape)
            out[name] = theta[i : i + k].view(shape)
            i += k
        return out

    def params(self) -> dict[str, Tensor]:
        """The parameters at ``theta`` as a name -> tensor dict (views of ``theta``)."""
        return self.unflatten(self.theta)

    def outputs(self, theta: Tensor, inputs: Tensor | None = None) -> Tensor:
        """``z(theta)``: the model evaluated with parameters ``theta`` on ``inputs`` (default: all inputs)."""
        x = self.inputs if inputs is None else inputs
        was_training = self.model.training
        self.model.train(not self.eval_mode)
        try:
            pd = self.unflatten(theta)
            pd.update(self.buffers)
            return torch.func.functional_call(self.model, pd, (x,))
        finally:
            self.model.train(was_training)

    def fn(self, theta: Tensor) -> Tensor:
        """``L(theta)`` on the whole batch."""
        return self.loss_fn(self.outputs(theta), self.targets)

    def per_sample(self, theta: Tensor) -> Tensor:
        """``(ell(z_1, y_1), ..., ell(z_N, y_N))``: the loss of each sample alone (the loss function applied
        to batches of one, ``vmap``-ed); their mean is :meth:`fn` for mean-reduced losses."""
        z = self.outputs(theta)
        f = self.loss_fn
        return torch.func.vmap(lambda zi, yi: f(zi[None], yi[None]))(z, self.targets)

    def batched(self, W: Tensor, idx: Tensor | None = None) -> Tensor:
        """``(L_idx(W_1), ..., L_idx(W_C))`` for stacked parameters ``W (C, P)`` on the samples ``idx`` (all
        when ``None``), ``vmap``-ed over the rows (the chains of
        :func:`~ghostsing.deepcheck.probes.llc.estimate_llc`)."""
        xb, yb = (self.inputs, self.targets) if idx is None else (self.inputs[idx], self.targets[idx])
        f = self.loss_fn

        def single(w: Tensor) -> Tensor:
            return f(self.outputs(w, xb), yb)

        return torch.func.vmap(single)(W)

    def gradient(self, theta: Tensor | None = None) -> tuple[Tensor, float]:
        """``(grad L(theta), L(theta))`` (default ``theta``: the stored parameters)."""
        th = self.theta if theta is None else theta
        g, v = torch.func.grad_and_value(self.fn)(th.detach())
        return g.detach(), float(v)

    def hessian(self, **kw) -> HessianOperator:
        return HessianOperator(self, **kw)

    def ggn(self, **kw) -> GGNOperator:
        return GGNOperator(self, **kw)

    def empirical_fisher(self, **kw) -> EmpiricalFisherOperator:
        return EmpiricalFisherOperator(self, **kw)


def flat_loss(
    model: nn.Module,
    loss_fn: str | Callable[[Tensor, Tensor], Tensor],
    inputs: Tensor,
    targets: Tensor | None,
    *,
    dtype: torch.dtype | None = None,
    eval_mode: bool = True,
) -> FlatLoss:
    """Wrap ``L(theta) = loss_fn(model_theta(inputs), targets)`` as a :class:`FlatLoss`.

    ``loss_fn``: a name in :data:`LOSSES` or a callable.  ``dtype`` (e.g. ``torch.float64`` for an exact
    spectrum) casts the parameters, buffers and floating inputs / targets; the model is not modified.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(loss_fn, str):
        if loss_fn not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES} or a callable, got {loss_fn!r}")
    elif not callable(loss_fn):
        raise TypeError(f"loss_fn must be a name in {LOSSES} or a callable, got {type(loss_fn).__name__}")
    if not isinstance(inputs, Tensor):
        raise TypeError(f"inputs must be a torch.Tensor, got {type(inputs).__name__}")
    if inputs.ndim < 1 or inputs.shape[0] < 1:
        raise ValueError(f"inputs must have a leading batch axis of length >= 1, "
                         f"got shape {tuple(inputs.shape)}")
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating torch.dtype or None, got {dtype!r}")
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
        if targets is not None and targets.is_floating_point():
            targets = targets.to(dtype)
    return FlatLoss(model=model, loss=loss_fn, inputs=inputs, targets=targets, theta=theta.clone(),
                    names=names, shapes=shapes, buffers=buffers, eval_mode=eval_mode)


class CurvatureOperator(abc.ABC):
    """A symmetric ``P x P`` linear operator applied to torch tensors (see the module docstring).

    Subclasses implement ``_apply_rows(V)`` for a block ``V (b, P)`` of row vectors with ``b <= batch``.
    """

    def __init__(self, dim: int, dtype: torch.dtype, device: torch.device | str, batch: int = 32):
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be an int >= 1, got {dim!r}")
        if not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be an int >= 1, got {batch!r}")
        self.dim = dim
        self.dtype = dtype
        self.device = torch.device(device)
        self.batch = batch
        self.n_matvecs = 0

    @property
    def shape(self) -> tuple[int, int]:
        return (self.dim, self.dim)

    @abc.abstractmethod
    def _apply_rows(self, V: Tensor) -> Tensor:
        """``A V^T`` transposed: the operator applied to each row of ``V (b, P)``, ``b <= batch``."""

    def apply_rows(self, V: Tensor) -> Tensor:
        """``(A v_1, ..., A v_b)`` for the rows of ``V (b, P)`` (or ``A v`` for ``V (P,)``), in sub-blocks of
        ``batch`` rows."""
        one = V.ndim == 1
        V2 = V[None] if one else V
        if V2.ndim != 2 or V2.shape[1] != self.dim:
            raise ValueError(f"vectors must have shape (P,) or (b, P) with P={self.dim}, "
                             f"got {tuple(V.shape)}")
        V2 = V2.to(dtype=self.dtype, device=self.device)
        self.n_matvecs += V2.shape[0]
        out = torch.cat([self._apply_rows(V2[i : i + self.batch]).reshape(-1, self.dim)
                         for i in range(0, V2.shape[0], self.batch)])
        return out[0] if one else out

    def __matmul__(self, x: Tensor) -> Tensor:
        """``A x`` for ``x (P,)`` or ``A X`` for ``X (P, k)``."""
        if not isinstance(x, Tensor):
            raise TypeError(f"operand must be a torch.Tensor, got {type(x).__name__}; "
                            "use to_scipy() for numpy")
        if x.ndim == 1:
            return self.apply_rows(x)
        if x.ndim == 2:
            return self.apply_rows(x.T).T
        raise ValueError(f"operand must have shape (P,) or (P, k), got {tuple(x.shape)}")

    def to_dense(self, chunk: int | None = None) -> Tensor:
        """``A`` as a dense ``(P, P)`` tensor from ``A e_i`` in blocks, symmetrised ``(A + A^T)/2``."""
        c = self.batch if chunk is None else chunk
        eye = torch.eye(self.dim, dtype=self.dtype, device=self.device)
        a = torch.cat([self.apply_rows(eye[i : i + c]) for i in range(0, self.dim, c)])
        return 0.5 * (a + a.T)

    def to_scipy(self):
        """``scipy.sparse.linalg.LinearOperator`` view (float64 numpy in and out)."""
        import numpy as np
        from scipy.sparse.linalg import LinearOperator

        def mm(x):
            x = np.asarray(x)
            one = x.ndim == 1
            v = torch.as_tensor(np.atleast_2d(x if one else x.T), dtype=self.dtype, device=self.device)
            out = self.apply_rows(v).detach().cpu().numpy().astype(np.float64)
            return out[0] if one else out.T

        return LinearOperator(self.shape, matvec=lambda x: mm(np.ravel(x)), matmat=mm,
                              rmatvec=lambda x: mm(np.ravel(x)), dtype=np.float64)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(P={self.dim}, dtype={self.dtype}, device={self.device})"


class DenseOperator(CurvatureOperator):
    """An explicit symmetric matrix ``A (P, P)`` as an operator (tests, small problems)."""

    def __init__(self, matrix: Tensor, batch: int = 256):
        if not isinstance(matrix, Tensor) or matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"matrix must be a square 2-d torch.Tensor, got "
                             f"{getattr(matrix, 'shape', type(matrix).__name__)}")
        super().__init__(int(matrix.shape[0]), matrix.dtype, matrix.device, batch)
        self.matrix = matrix

    def _apply_rows(self, V: Tensor) -> Tensor:
        return V @ self.matrix.T


class FunctionOperator(CurvatureOperator):
    """A user function ``f(V) -> A V`` on blocks of row vectors ``V (b, P)`` (``batched=True``) or on single
    vectors ``(P,)`` (``batched=False``: applied row by row)."""

    def __init__(self, f: Callable[[Tensor], Tensor], dim: int, *, dtype: torch.dtype = torch.float64,
                 device: torch.device | str = "cpu", batch: int = 32, batched: bool = True):
        if not callable(f):
            raise TypeError(f"f must be callable, got {type(f).__name__}")
        super().__init__(dim, dtype, device, batch if batched else 1)
        self.f, self.batched = f, batched

    def _apply_rows(self, V: Tensor) -> Tensor:
        if not self.batched or V.shape[0] == 1:
            return self.f(V[0])[None]
        return self.f(V)


#: blocks with fewer vectors go through one double backward each (``'auto'``): 2.0 ms vs 5.5 ms per single
#: vector for jvp-of-grad on the benchmark MLP, while blocks of 32 cost the same per vector on both paths
_SMALL_BLOCK = 4


def _has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules())


class HessianOperator(CurvatureOperator):
    r"""``H = nabla^2 L(theta)`` of a :class:`FlatLoss`.

    ``method``: ``'jvp'`` (forward over reverse, ``H v = jvp(grad L, theta; v)``, ``vmap``-ed over the block),
    ``'double_backward'`` (the gradient graph is built once with ``create_graph=True``; each ``H v`` is one
    backward pass through it), or ``'auto'``: ``'double_backward'`` one vector at a time for nets with
    convolutions (``convolution_backward`` has no ``vmap`` batching rule: batched HVPs were 2x slower there),
    ``'jvp'`` in blocks of 32 otherwise, with blocks of fewer than 4 vectors (Lanczos) through a retained
    gradient graph (one backward pass each: 2.7x faster than jvp-of-grad for a single vector); it switches to
    ``'double_backward'`` if forward-mode AD fails on an operation of the model or loss.
    """

    def __init__(self, fl: FlatLoss, *, method: str = "auto", batch: int | None = None):
        if method not in ("auto", "jvp", "double_backward"):
            raise ValueError(f"method must be 'auto', 'jvp' or 'double_backward', got {method!r}")
        auto = method == "auto"
        if auto:
            method, plan = ("double_backward", 1) if _has_conv(fl.model) else ("jvp", 32)
        else:
            plan = 32
        super().__init__(fl.dim, fl.dtype, fl.device, plan if batch is None else batch)
        self.flat_loss, self.method, self._auto = fl, method, auto
        self._db: Callable[[Tensor], Tensor] | None = None
        self._hvp = _make_hvp(fl.fn, fl.theta, method)

    def _apply_rows(self, V: Tensor) -> Tensor:
        x = V if V.shape[0] > 1 else V[0]
        if not self._auto or self.method != "jvp":
            return self._hvp(x)
        if V.shape[0] < _SMALL_BLOCK:  # a retained gradient graph: one backward pass per vector is cheapest
            if self._db is None:
                self._db = _make_hvp(self.flat_loss.fn, self.flat_loss.theta, "double_backward")
            return self._db(x)
        try:
            return self._hvp(x)
        except RuntimeError:  # forward-mode AD broken for an op (e.g. mse_loss's backward under jvp)
            self.method = "double_backward"
            self._hvp = _make_hvp(self.flat_loss.fn, self.flat_loss.theta, "double_backward")
            return self._hvp(x)

    def exact_trace_available(self) -> bool:
        """True when the model is certified piecewise linear in each parameter: then ``tr H = tr G`` and
        ``diag H = diag G`` exactly (:mod:`ghostsing.deepcheck.probes.pl_trace`)."""
        from ghostsing.deepcheck.probes import pl_trace

        fl = self.flat_loss
        return isinstance(fl.loss, str) and pl_trace.is_piecewise_linear(fl.model, eval_mode=fl.eval_mode)


def _make_hvp(fn: Callable[[Tensor], Tensor], theta: Tensor, method: str) -> Callable[[Tensor], Tensor]:
    if method == "jvp":
        g = torch.func.grad(fn)

        def one(v: Tensor) -> Tensor:
            return torch.func.jvp(g, (theta,), (v,))[1]

        many = torch.func.vmap(one)
        return lambda v: one(v) if v.ndim == 1 else many(v)
    th = theta.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(fn(th), th, create_graph=True)

    def hvp(v: Tensor) -> Tensor:
        batched = v.ndim == 2
        (out,) = torch.autograd.grad(grad, th, grad_outputs=v.to(grad.dtype), retain_graph=True,
                                     is_grads_batched=batched)
        return out.detach()

    return hvp


class GGNOperator(CurvatureOperator):
    r"""Generalised Gauss-Newton ``G = J^T (d^2 L / dz^2) J`` of a :class:`FlatLoss` (module docstring).

    ``G v``: ``u = J v`` (``torch.func.jvp`` of the outputs, ``vmap``-ed over the block), ``w = (d^2 L/dz^2)
    u`` (``jvp`` of ``grad_z L``: exact for any loss, block-diagonal over samples for per-sample losses), ``G
    v = J^T w`` (one ``vjp`` of the outputs at ``theta``, built once and ``vmap``-ed).
    """

    def __init__(self, fl: FlatLoss, *, batch: int = 32):
        super().__init__(fl.dim, fl.dtype, fl.device, batch)
        self.flat_loss = fl
        self._fns: tuple | None = None

    def _build(self) -> tuple:
        """The vjp of the outputs at ``theta`` and the per-vector product, built on first use."""
        fl = self.flat_loss
        theta = fl.theta
        z, vjp = torch.func.vjp(fl.outputs, theta)
        y, lf = fl.targets, fl.loss_fn
        gz = torch.func.grad(lambda zz: lf(zz, y))
        z0 = z.detach()

        def one(v: Tensor) -> Tensor:
            _, jv = torch.func.jvp(fl.outputs, (theta,), (v,))
            _, hjv = torch.func.jvp(gz, (z0,), (jv,))
            return vjp(hjv)[0]

        return one, torch.func.vmap(one)

    def _apply_rows(self, V: Tensor) -> Tensor:
        if self._fns is None:
            self._fns = self._build()
        one, many = self._fns
        return (one(V[0])[None] if V.shape[0] == 1 else many(V)).detach()

    def _pl_args(self) -> tuple:
        fl = self.flat_loss
        if not isinstance(fl.loss, str):
            raise ValueError("the exact GGN trace / diagonal need a named loss (one of "
                             f"{LOSSES}: its output-Hessian factor is known), got a callable")
        return fl.model, fl.inputs, fl.targets, fl.loss

    def trace_exact(self, *, method: str = "auto", chunk: int | None = None) -> float:
        r"""Exact ``tr G = (1/N) sum_n sum_k ||J_n^T s_{n,k}||^2`` (``S_n S_n^T = Lambda_n``), for any
        network; equal to ``tr H`` when the network is piecewise linear in each parameter."""
        from ghostsing.deepcheck.probes import pl_trace

        return pl_trace.exact_trace_piecewise_linear(
            *self._pl_args(), eval_mode=self.flat_loss.eval_mode, dtype=self.dtype, check=False,
            method=method, chunk=chunk)

    def diagonal_exact(self, *, method: str = "auto", chunk: int | None = None) -> Tensor:
        r"""Exact ``diag G``, ``G_ii = (1/N) sum_n sum_k (e_i^T J_n^T s_{n,k})^2``, shape ``(P,)``."""
        from ghostsing.deepcheck.probes import pl_trace

        return pl_trace.hessian_diagonal_piecewise_linear(
            *self._pl_args(), eval_mode=self.flat_loss.eval_mode, dtype=self.dtype, check=False,
            method=method, chunk=chunk)


class EmpiricalFisherOperator(CurvatureOperator):
    r"""Empirical Fisher ``F = (1/N) sum_n g_n g_n^T`` of a :class:`FlatLoss`, ``g_n = grad ell(z_n, y_n)``.

    ``F v = (1/N) sum_n g_n (g_n . v)``: ``c = jvp(ell_vec, theta; v)`` gives all ``g_n . v`` at once and
    ``F v = vjp(ell_vec)(c / N)``, with ``ell_vec(theta) = (ell_1, ..., ell_N)``
    (:meth:`FlatLoss.per_sample`).
    """

    def __init__(self, fl: FlatLoss, *, batch: int = 32):
        super().__init__(fl.dim, fl.dtype, fl.device, batch)
        self.flat_loss = fl
        theta = fl.theta
        self._l, self._vjp = torch.func.vjp(fl.per_sample, theta)
        n = fl.n_samples

        def one(v: Tensor) -> Tensor:
            _, c = torch.func.jvp(fl.per_sample, (theta,), (v,))
            return self._vjp(c / n)[0]

        self._one, self._many = one, torch.func.vmap(one)

    def _apply_rows(self, V: Tensor) -> Tensor:
        return (self._one(V[0])[None] if V.shape[0] == 1 else self._many(V)).detach()


def as_operator(obj, dim: int | None = None, *, dtype: torch.dtype = torch.float64,
                device: torch.device | str = "cpu", batch: int = 32) -> CurvatureOperator:
    """``obj`` as a :class:`CurvatureOperator`: operators pass through, a square tensor becomes a
    :class:`DenseOperator`, a callable ``V (b, P) -> A V`` (with ``dim``) a :class:`FunctionOperator`."""
    if isinstance(obj, CurvatureOperator):
        return obj
    if isinstance(obj, Tensor):
        return DenseOperator(obj)
    if callable(obj):
        if dim is None:
            raise ValueError("dim is required to wrap a function as an operator")
        return FunctionOperator(obj, int(dim), dtype=dtype, device=device, batch=batch)
    raise TypeError(f"expected a CurvatureOperator, a square torch.Tensor or a callable, "
                    f"got {type(obj).__name__}")
