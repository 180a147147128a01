r"""Shared pieces of the curvature experiments.

One idea: the small-net toolkit the curvature experiments all stand on.

The curvature experiments are registered in four modules, each a protocol of a seed paper or of the
reduced model:

* :mod:`~ghostsing.experiments.deep_curvature_hessian` -- ``hessian`` (Orhan & Pitkow's degenerate and
  negative Hessian eigenvalues at certified end points, the degenerate-skip sweep) and ``nullspace`` (the
  Hessian null space each dead or duplicated unit creates, against dense eigenvalues);
* :mod:`~ghostsing.experiments.deep_curvature_gd` -- ``eos`` (edge of stability by Cohen et al.'s
  protocol) and ``lowell`` (Lowell's gradient singularity: max |grad L| at matched loss against n);
* :mod:`~ghostsing.experiments.deep_curvature_slt` -- ``slt`` (the local learning coefficient with
  ``n >> d ln n``, a sweep of the localisation, the step and the sampling time);
* :mod:`~ghostsing.experiments.deep_curvature_bridge` -- ``bridge`` (deep MLPs with ``scaled:alpha``
  skips started on an overlap singularity: passage time against alpha, compared with the reduced model's
  laws).

This module holds what they share: CIFAR features (:func:`features`: images average-pooled to
``32/pool`` squared pixels, normalised per channel, float64), a small MLP with a chosen activation and skip
(:class:`ActMLP`), convergence with a certificate (:func:`converge`: L-BFGS until ``|grad L| <= grad_tol``,
then optionally :func:`newton_polish`, damped Newton on the dense Hessian, which says whether the end point
is a critical point, a nonsmooth stationary point -- a ReLU kink -- or neither), an L2-penalised loss
(:func:`penalised`), the top Hessian eigenvalue by warm-started power iteration on the package's
:class:`~ghostsing.deepcheck.operators.CurvatureOperator` (:func:`sharpness`), the per-unit result cache
(:func:`cached_units`) and the common config checks (:func:`check_data_fields`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ghostsing._io import read_json, to_jsonable, write_json_atomic
from ghostsing.deepcheck.operators import FlatLoss
from ghostsing.validation import check_choice, check_int, check_seeds

__all__ = ["features", "ActMLP", "StackedMLP", "block_sharpness", "converge", "newton_polish", "POLISH_KINDS",
           "penalised", "sharpness", "cached_units",
           "check_data_fields",
           "ACTIVATIONS", "DATA_MODES", "POOLS", "mse_onehot", "set_threads", "device_of",
           "one_group_test"]

ACTIVATIONS: tuple[str, ...] = ("relu", "tanh", "gelu")
DATA_MODES: tuple[str, ...] = ("real", "synthetic", "auto")
POOLS: tuple[int, ...] = (1, 2, 4, 8, 16, 32)


def check_data_fields(cfg: Any) -> None:
    """The fields every curvature config has: dataset, data, pool, seeds, threads, device (``ValueError``)."""
    check_choice("dataset", cfg.dataset, ("cifar10", "cifar100"))
    check_choice("data", cfg.data, DATA_MODES)
    check_choice("pool", cfg.pool, POOLS)
    object.__setattr__(cfg, "seeds", check_seeds("seeds", cfg.seeds))
    check_int("threads", cfg.threads, 0, 64)
    if not isinstance(cfg.device, str) or not cfg.device:
        raise ValueError(f"device={cfg.device!r} is not allowed; allowed: auto, cpu, cuda, cuda:N")


def device_of(cfg: Any) -> torch.device:
    """The torch device of ``cfg.device`` (``auto``: CUDA when present, else CPU)."""
    from ghostsing.deepcheck.training import resolve_device

    return resolve_device(cfg.device)


def one_group_test(n_seeds: int, level: float = 0.05) -> str:
    """The one-group test for ``n_seeds`` values: the exact sign-flip permutation test when it can reach
    ``level`` (``2 / 2^n < level``, n >= 6), else the one-sample t test (5 seeds: the smallest sign-flip
    p-value is 0.0625)."""
    return "sign-flip" if 2.0 / 2 ** n_seeds < level else "t"


def seeds_one_group_prediction(cfg, *args, **kw):
    """:func:`~ghostsing.experiments.predictions.one_group_prediction` with the test that the config's
    number of seeds allows (:func:`one_group_test`)."""
    from ghostsing.experiments.predictions import one_group_prediction

    return one_group_prediction(*args, test=one_group_test(len(cfg.seeds)), **kw)


def set_threads(n: int) -> None:
    """``torch.set_num_threads(n)`` when ``n > 0`` (0 keeps torch's default)."""
    if n > 0:
        torch.set_num_threads(n)


def features(dataset: str, data: str, data_root: str | None, n_train: int, pool: int,
             offset: int = 0) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """CIFAR training images ``offset .. offset + n_train`` average-pooled by ``pool``, normalised per
    channel, flattened, float64; labels int64; ``info`` says which data were used."""
    from ghostsing.deepcheck.data import load_for_run

    d = load_for_run(dataset, data, data_root, n_train + offset, 10)
    x = d.x_train[offset: offset + n_train].astype(np.float64) / 255.0
    n, h, w, c = x.shape
    x = x.reshape(n, h // pool, pool, w // pool, pool, c).mean(axis=(2, 4))
    mu, sd = x.reshape(-1, c).mean(0), x.reshape(-1, c).std(0)
    x = ((x - mu) / sd).reshape(n, -1)
    info = {"source": d.source, "dataset": dataset, "n_train": int(n), "n_classes": int(d.n_classes),
            "in_dim": int(x.shape[1]), "pool": pool}
    return (torch.tensor(x, dtype=torch.float64),
            torch.tensor(d.y_train[offset: offset + n_train], dtype=torch.long), info)


def mse_onehot(n_classes: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``0.5 |f - onehot(y)|^2`` averaged over the batch (Cohen et al.'s square loss)."""
    def loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((out - nn.functional.one_hot(y, n_classes).to(out.dtype)) ** 2).sum(-1).mean()

    return loss


class ActMLP(nn.Module):
    """``h_1 = g(W_1 x + b_1)``, ``h_l = g(W_l h_{l-1} + b_l) + D h_{l-1}``, logits ``W h_depth + b``.

    ``depth = 0`` is the linear model ``W x + b``.  ``g`` in :data:`ACTIVATIONS`; ``D = alpha I`` (``alpha
    = 0`` the plain net, ``alpha = 1`` the residual one), or, when ``skip`` is given, the diagonal of that
    skip string (``none``, ``identity``, ``lowrank:k``, ``scaled:alpha``; :func:`ghostsing.deepcheck.nets.
    parse_skip`).  For ReLU these are the same nets as :class:`ghostsing.deepcheck.nets.MLP` with that skip
    (``scaled:alpha`` for ``alpha``), with the same initial weights: PyTorch's ``nn.Linear``
    initialisation drawn from ``torch.Generator().manual_seed(seed)`` in layer order.
    """

    def __init__(self, in_dim: int, width: int, depth: int, n_classes: int, activation: str = "relu",
                 alpha: float = 0.0, seed: int = 0, dtype: torch.dtype = torch.float64,
                 skip: str | None = None):
        super().__init__()
        check_choice("activation", activation, ACTIVATIONS)
        self.act = {"relu": torch.relu, "tanh": torch.tanh, "gelu": nn.functional.gelu}[activation]
        self.alpha = float(alpha)
        if skip is None:
            diag = torch.full((width,), self.alpha, dtype=dtype)
        else:
            from ghostsing.deepcheck.nets import parse_skip

            diag = parse_skip(skip).diag(width).to(dtype)
        self.register_buffer("skip_diag", diag)
        g = torch.Generator().manual_seed(int(seed))
        dims = [in_dim] + [width] * depth + [n_classes]
        self.linears = nn.ModuleList()
        for fi, fo in zip(dims[:-1], dims[1:], strict=True):
            lin = nn.Linear(fi, fo, dtype=dtype)
            bound = 1.0 / math.sqrt(fi)
            with torch.no_grad():
                lin.weight.copy_((torch.rand(fo, fi, generator=g, dtype=dtype) * 2 - 1) * bound)
                lin.bias.copy_((torch.rand(fo, generator=g, dtype=dtype) * 2 - 1) * bound)
            self.linears.append(lin)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.linears) == 1:  # depth 0: a linear (softmax-regression) model
            return self.linears[0](x)
        h = self.act(self.linears[0](x))
        for lin in self.linears[1:-1]:
            h = self.act(lin(h)) + self.skip_diag * h
        return self.linears[-1](h)


def penalised(fl, weight_decay: float):
    """``fl`` (a :class:`~ghostsing.deepcheck.operators.FlatLoss`) with ``L(theta) + (weight_decay / 2)
    |theta|^2`` as its :meth:`fn` (and so its gradient and Hessian) and its :meth:`batched` (the losses
    of rows of ``W``, as the LLC samplers read them); ``weight_decay = 0`` returns ``fl``."""
    if weight_decay == 0:
        return fl
    kw = {f.name: getattr(fl, f.name) for f in fields(fl)}
    return PenalisedLoss(**kw, weight_decay=float(weight_decay))


@dataclass(frozen=True)
class PenalisedLoss(FlatLoss):
    """A :class:`~ghostsing.deepcheck.operators.FlatLoss` plus ``(weight_decay / 2) |theta|^2``
    (:func:`penalised`)."""

    weight_decay: float = 0.0

    def fn(self, theta: torch.Tensor) -> torch.Tensor:
        return super().fn(theta) + 0.5 * self.weight_decay * (theta * theta).sum()

    def batched(self, W: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        return super().batched(W, idx) + 0.5 * self.weight_decay * (W * W).sum(-1)


def converge(fl, *, lbfgs_iters: int = 3000, grad_tol: float = 1e-6, newton_steps: int = 0,
             **newton) -> tuple[torch.Tensor, dict]:
    """Polish ``fl.theta`` (a :class:`~ghostsing.deepcheck.operators.FlatLoss`) with full-batch L-BFGS
    (strong-Wolfe line search, float64) until ``|grad L| <= grad_tol`` or ``lbfgs_iters`` iterations, then,
    when ``newton_steps > 0`` and L-BFGS stopped short, with at most ``newton_steps`` damped-Newton steps
    (:func:`newton_polish`, keywords ``newton``).  Returns the point and ``{grad_norm, loss, iters,
    converged, kind}`` (``kind``: :func:`newton_polish`'s certificate; without the Newton phase
    ``converged`` or ``not stationary``), plus the Newton phase's record under ``newton``."""
    theta = fl.theta.detach().clone().requires_grad_(True)
    opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=50, history_size=50, tolerance_grad=grad_tol / 10,
                            tolerance_change=0.0, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = fl.fn(theta)
        loss.backward()
        return loss

    it, gn = 0, float("inf")
    while it < lbfgs_iters:
        opt.step(closure)
        it += 50
        g, _ = fl.gradient(theta.detach())
        gn = float(g.norm())
        if gn <= grad_tol or not math.isfinite(gn):
            break
    th = theta.detach()
    info = {"grad_norm": gn, "loss": float(fl.fn(th)), "iters": it, "converged": gn <= grad_tol,
            "kind": "converged" if gn <= grad_tol else "not stationary", "lbfgs_grad_norm": gn}
    if newton_steps > 0 and gn > grad_tol and math.isfinite(gn):
        th, rec = newton_polish(fl, th, grad_tol=grad_tol, max_steps=newton_steps, **newton)
        info.update(grad_norm=rec["grad_norm"], loss=rec["loss"], converged=rec["kind"] == "converged",
                    kind=rec["kind"], newton=rec)
    return th, info


#: the certificates of :func:`newton_polish`
POLISH_KINDS: tuple[str, ...] = ("converged", "stationary", "not stationary")


def newton_polish(fl, theta: torch.Tensor, *, grad_tol: float = 1e-6, max_steps: int = 200,
                  stall_tol: float = 1e-10, stall_steps: int = 10, damping_max: float = 1e8,
                  damping0: float = 1e-3) -> tuple[torch.Tensor, dict]:
    r"""Damped Newton (Levenberg-Marquardt) on the dense Hessian of ``fl`` from ``theta``, with a
    certificate of what the end point is.

    Each step solves ``(|H| + mu I) d = -grad L`` (``|H| = V |Lambda| V^T`` from the eigendecomposition of
    the dense Hessian, :meth:`~ghostsing.deepcheck.operators.FlatLoss.hessian`, so every ``d`` is a descent
    direction, also at saddles).  ``d`` is taken when it lowers the loss, or when the loss change is below
    float resolution (``8 eps |L|``) and ``|grad L|`` falls (near a smooth minimum the decrease ``~|grad
    L|^2 / lambda`` is not resolvable, the gradient is); then ``mu`` is divided by 4, down to ``1e-12
    lambda_max``, and the Hessian recomputed unless ``mu > lambda_max`` (there the step is nearly ``-grad L
    / mu`` whatever the Hessian).  Otherwise ``mu`` is multiplied by 10, same Hessian.  ``mu`` starts at
    ``damping0 lambda_max``.  A step is one trial, taken or not.  The certificate ``kind``:

    * ``converged``: ``|grad L| <= grad_tol`` -- a true critical point;
    * ``stationary``: ``mu > damping_max`` (absolute), the loss fell by less than ``stall_tol |L|`` over the
      last ``stall_steps`` steps, and the last step's first-order predicted decrease ``-grad L . d ~
      |grad L|^2 / mu`` was resolvable (``>= 1000 eps |L|``): a smooth loss would have fallen by about that
      much, this one did not.  The (one-sided) gradient does not vanish, yet no step down to gradient steps
      of length ``|grad L| / mu`` lowers the loss -- a nonsmooth minimum (for ReLU nets: on a kink, some
      pre-activations exactly 0).  Not a critical point;
    * ``not stationary``: neither within ``max_steps`` steps.

    Returns the end point and ``{kind, grad_norm, loss, steps, accepted, damping, loss_change,
    predicted_decrease}`` (``loss_change``: relative loss decrease over the last ``stall_steps`` steps;
    ``predicted_decrease``: the last step's ``-grad L . d / |L|``)."""
    eps = torch.finfo(theta.dtype).eps
    th = theta.detach().clone()
    fl = _with_theta(fl, th)
    g, loss = fl.gradient(th)
    hist = [loss]
    kind, steps, accepted, mu, floor, lam, pred = "not stationary", 0, 0, float("nan"), 0.0, 0.0, float("nan")
    ev = vecs = None
    while True:
        gn = float(g.norm())
        change = ((hist[-1 - stall_steps] - hist[-1]) / abs(hist[-1]) if len(hist) > stall_steps
                  else float("inf"))
        if gn <= grad_tol:
            kind = "converged"
            break
        if mu > damping_max and change < stall_tol and pred >= 1e3 * eps:
            kind = "stationary"
            break
        if steps >= max_steps or not math.isfinite(gn):
            break
        if ev is None:
            ev, vecs = torch.linalg.eigh(fl.hessian().to_dense().to(th.dtype))
            lam = float(ev.abs().max())
            floor = 1e-12 * max(lam, 1e-300)
            mu = damping0 * lam if not math.isfinite(mu) else max(mu, floor)
        d = -vecs @ ((vecs.T @ g) / (ev.abs() + mu))
        pred = float(-(g @ d)) / abs(loss)
        trial = float(fl.fn(th + d))
        steps += 1
        take = math.isfinite(trial) and trial < loss
        if not take and math.isfinite(trial) and abs(trial - loss) <= 8 * eps * abs(loss):
            g_new, _ = fl.gradient(th + d)
            take = float(g_new.norm()) < gn
        if take:
            th = th + d
            g, loss = fl.gradient(th)
            fl = _with_theta(fl, th)
            accepted, mu = accepted + 1, max(mu / 4, floor)
            if mu < lam:  # the Hessian shapes the step: recompute it (else the step is ~ -g / mu anyway)
                ev = None
        else:
            mu *= 10
        hist.append(loss)
    change = (hist[-1 - stall_steps] - hist[-1]) / abs(hist[-1]) if len(hist) > stall_steps else float("nan")
    return th, {"kind": kind, "grad_norm": float(g.norm()), "loss": float(loss), "steps": steps,
                "accepted": accepted, "damping": mu, "loss_change": change, "predicted_decrease": pred,
                "grad_tol": grad_tol, "stall_tol": stall_tol, "stall_steps": stall_steps,
                "damping_max": damping_max}


def _with_theta(fl, theta: torch.Tensor):
    from dataclasses import replace

    return replace(fl, theta=theta.detach())


def sharpness(op, v0: torch.Tensor | None = None, iters: int = 20, tol: float = 1e-4,
              ) -> tuple[float, torch.Tensor]:
    """Largest-magnitude Hessian eigenvalue by power iteration on a
    :class:`~ghostsing.deepcheck.operators.CurvatureOperator` (HVPs), warm-started from ``v0`` (the
    previous probe's vector: sharpness moves slowly, so a few products suffice); stops when the Rayleigh
    quotient changes by less than ``tol`` relative.  Returns ``(lambda, v)``."""
    v = torch.randn(op.dim, dtype=op.dtype, device=op.device) if v0 is None else v0.clone()
    v = v / v.norm()
    lam = float("nan")
    for _ in range(iters):
        w = op @ v
        new = float(v @ w)
        v = w / w.norm()
        if math.isfinite(lam) and abs(new - lam) <= tol * abs(new):
            lam = new
            break
        lam = new
    return lam, v


def cached_units(out: Path, keys: Iterable[str], compute: Callable[[str], dict], *, resume: bool,
                 progress: bool, tag: str) -> dict[str, dict]:
    """``{key: compute(key)}``, each result written atomically to ``out/units/<key>.json`` and read back
    on ``resume`` (a killed run redoes only the unfinished units)."""
    folder = Path(out) / "units"
    folder.mkdir(parents=True, exist_ok=True)
    res = {}
    for key in keys:
        path = folder / f"{key}.json"
        if resume and path.is_file():
            res[key] = read_json(path)
            continue
        if progress:
            print(f"[{tag}] {key}", flush=True)
        res[key] = to_jsonable(compute(key))
        write_json_atomic(path, res[key])
    return res


class StackedMLP:
    """``S`` :class:`ActMLP` nets (one per seed) as stacked parameter tensors ``(S, ...)``, for full-batch
    GD of all of them at once (one forward, one backward).  Net ``s`` starts equal to
    ``ActMLP(..., seed=seeds[s])``.  :meth:`loss` gives the ``(S,)`` losses of parameters ``ps``;
    :meth:`operator` the block-diagonal Hessian of ``sum_s L_s`` as a
    :class:`~ghostsing.deepcheck.operators.FunctionOperator` on the flattened stack (HVPs by double
    backward), whose block ``s`` is net ``s``'s Hessian."""

    def __init__(self, in_dim: int, width: int, depth: int, n_classes: int, activation: str, alpha: float,
                 seeds, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu"):
        nets = [ActMLP(in_dim, width, depth, n_classes, activation, alpha, s, dtype) for s in seeds]
        self.act, self.alpha, self.n_nets = nets[0].act, float(alpha), len(nets)
        self.params = [torch.stack([getattr(n.linears[i], k).detach() for n in nets]).to(device)
                       for i in range(len(nets[0].linears)) for k in ("weight", "bias")]
        self.shapes = [p.shape[1:] for p in self.params]

    def logits(self, ps, x: torch.Tensor) -> torch.Tensor:
        """``(S, B, C)`` outputs of the nets with parameters ``ps`` on the shared batch ``x (B, in)``."""
        h = x.unsqueeze(0).expand(self.n_nets, *x.shape)
        n_lin = len(ps) // 2
        for i in range(n_lin):
            z = torch.baddbmm(ps[2 * i + 1].unsqueeze(1), h, ps[2 * i].transpose(1, 2))
            if i == n_lin - 1:
                return z
            h = self.act(z) if i == 0 else self.act(z) + self.alpha * h
        raise AssertionError

    def flat(self, ps) -> torch.Tensor:
        """``(S, P)`` rows: each net's parameters flattened in layer order."""
        return torch.cat([p.reshape(self.n_nets, -1) for p in ps], 1)

    def unflat(self, rows: torch.Tensor) -> list[torch.Tensor]:
        out, i = [], 0
        for sh in self.shapes:
            k = int(np.prod(sh))
            out.append(rows[:, i:i + k].reshape(self.n_nets, *sh))
            i += k
        return out

    def operator(self, ps, loss_fn):
        """Block-diagonal Hessian of ``sum_s loss_fn(ps)[s]`` at ``ps`` (a ``CurvatureOperator`` of dimension
        ``S P``; vectors are the row-major flattening of ``(S, P)``)."""
        from ghostsing.deepcheck.operators import FunctionOperator

        leaves = [p.detach().requires_grad_(True) for p in ps]
        grads = torch.autograd.grad(loss_fn(leaves).sum(), leaves, create_graph=True)
        S = self.n_nets

        def hvp(v: torch.Tensor) -> torch.Tensor:
            vs = self.unflat(v.reshape(S, -1))
            hv = torch.autograd.grad(grads, leaves, vs, retain_graph=True)
            return self.flat(hv).reshape(-1)

        return FunctionOperator(hvp, S * sum(int(np.prod(s)) for s in self.shapes), dtype=ps[0].dtype,
                                device=ps[0].device)


def block_sharpness(op, S: int, v0: torch.Tensor | None = None, iters: int = 20, tol: float = 1e-4,
                    ) -> tuple[np.ndarray, torch.Tensor]:
    """Per-block largest-magnitude eigenvalue of a block-diagonal operator with ``S`` equal blocks
    (:meth:`StackedMLP.operator`) by power iteration normalised block by block, warm-started from ``v0``.
    Returns ``(lambdas (S,), v (S, P))``."""
    P = op.dim // S
    v = torch.randn(S, P, dtype=op.dtype, device=op.device) if v0 is None else v0.clone()
    v = v / v.norm(dim=1, keepdim=True)
    lam = np.full(S, np.nan)
    for _ in range(iters):
        w = (op @ v.reshape(-1)).reshape(S, P)
        new = (v * w).sum(1).detach().cpu().numpy()
        v = w / w.norm(dim=1, keepdim=True).clamp_min(1e-300)
        done = np.all(np.abs(new - lam) <= tol * np.abs(new))
        lam = new
        if done:
            break
    return lam, v.detach()
