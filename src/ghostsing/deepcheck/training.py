"""Batched training of many networks at once, with per-network divergence handling and exact resume.

A batched model maps ``(S, B, ...) -> (S, B, C)`` logits (``S`` networks, e.g. seeds and same-shape
variants). Network ``s`` minimises its own mean cross-entropy
``L_s = (1/B) sum_b -log softmax(f_s(x_{s,b}))[y_{s,b}]`` on its own mini-batches; the step uses
``grad sum_s L_s``, whose block for network ``s`` is ``grad L_s``, so for element-wise optimisers
(SGD with momentum, Adam, RMSprop) one batched step equals ``S`` separate steps.

Mini-batches: in epoch ``e`` network ``s`` visits the training set in the order
:func:`epoch_permutation` ``(seed_s, e, n)`` in consecutive chunks of ``batch_size`` (the last chunk
may be smaller); ``batch_size=None`` is full-batch gradient descent in the stored order.

Divergence: when ``L_s`` is not finite the network is flagged (``diverged_epoch[s] = e``), its
gradient is zeroed and its parameters are restored after every later step (frozen); the others go on.

Checkpoints: after every epoch the full state (parameters, optimiser, history, probes, RNG state,
divergence flags) is written atomically (``torch.save`` to a temporary file, then ``os.replace``) and
loaded with ``torch.load(weights_only=True)``. A run resumed from epoch ``k`` performs exactly the
operations of the uninterrupted run from epoch ``k`` on, so its results are identical on the same device.

Test hook (read where checkpoints are written): with the environment variable
``GHOSTSING_DEEPCHECK_KILL_AFTER_EPOCHS=N`` the process kills itself with SIGKILL right after writing its
``N``-th checkpoint (counted over all ``train`` calls of the process), so a test can interrupt a run at a
known point and check that ``--resume`` reproduces the uninterrupted one.

Warm-up: ``warmup_steps = W > 0`` multiplies the learning rate of step ``t`` (counted from 1 over the whole
run) by ``min(1, t / W)``.  Step probes: ``step_probe(model)`` runs after every ``step_probe_every``-th
optimiser step of the epochs in ``step_probe_epochs`` (and before the first step of the first of them), so
that what happens inside an epoch (e.g. units dying in the first one) is logged finely; its results are
checkpointed with the rest.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

OPTIMIZERS: tuple[str, ...] = ("sgd", "adam", "rmsprop")
HISTORY_KEYS: tuple[str, ...] = (
    "train_loss", "train_acc", "test_loss", "test_acc", "train_loss_eval", "train_acc_eval",
)


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser and schedule. ``batch_size=None``: full batch. ``probe_epochs``: epochs to probe at.

    ``train_loss`` / ``train_acc`` are running means over an epoch's mini-batches (training mode, so
    with dropout); ``eval_train=True`` also records ``train_loss_eval`` / ``train_acc_eval``, the whole
    training set in evaluation mode at every evaluated epoch (one extra forward pass).

    ``rms_alpha`` is RMSprop's smoothing constant (PyTorch ``alpha``, Keras ``rho``); ``eps`` the
    denominator constant of Adam / RMSprop.
    """

    optimizer: str = "adam"
    lr: float = 1e-3
    epochs: int = 10
    batch_size: int | None = 128
    momentum: float = 0.0
    rms_alpha: float = 0.99
    eps: float = 1e-8
    eval_every: int = 1
    probe_epochs: tuple[int, ...] = ()
    eval_train: bool = False
    warmup_steps: int = 0
    step_probe_every: int = 0
    step_probe_epochs: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer {self.optimizer!r} is not one of {OPTIMIZERS}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr={self.lr} must be a positive finite number")
        if not isinstance(self.epochs, int) or self.epochs < 0:
            raise ValueError(f"epochs={self.epochs!r} must be an integer >= 0")
        if self.batch_size is not None and (not isinstance(self.batch_size, int) or self.batch_size < 1):
            raise ValueError(f"batch_size={self.batch_size!r} must be an integer >= 1 or None (full batch)")
        if self.eval_every < 1:
            raise ValueError(f"eval_every={self.eval_every} must be >= 1")
        if self.warmup_steps < 0 or self.step_probe_every < 0:
            raise ValueError("warmup_steps and step_probe_every must be >= 0")
        object.__setattr__(self, "probe_epochs", tuple(sorted({int(e) for e in self.probe_epochs})))
        object.__setattr__(self, "step_probe_epochs", tuple(sorted({int(e) for e in self.step_probe_epochs})))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TrainResult:
    """Histories ``(epochs+1, S)`` (row 0 = initial state), divergence epochs (-1 = none), probes, timing."""

    history: dict[str, np.ndarray]
    diverged_epoch: np.ndarray
    probes: dict[int, dict[str, np.ndarray]]
    wall_time_s: float
    resumed_from: int | None = None
    extra: dict = field(default_factory=dict)


def resolve_device(device: str | None = "auto") -> torch.device:
    """``'auto'``/None -> ``cuda`` when available else ``cpu``; otherwise ``torch.device(device)``."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device {device!r} is not a torch device (use auto, cpu, cuda, cuda:N)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available (use --device cpu)")
    return dev


def epoch_permutation(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The order in which network ``seed`` visits ``n`` training points in ``epoch`` (CPU int64)."""
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch) * 7919 + 17)
    return torch.randperm(n, generator=g)


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """``torch.optim`` SGD / Adam / RMSprop with the settings of ``cfg`` (no fused/foreach surprises)."""
    params = list(params)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, eps=cfg.eps)
    return torch.optim.RMSprop(params, lr=cfg.lr, alpha=cfg.rms_alpha, eps=cfg.eps, momentum=cfg.momentum)


def per_net_loss(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy ``(S,)`` and number of correct predictions ``(S,)`` for ``(S,B,C)`` logits."""
    S, B, C = logits.shape
    ce = F.cross_entropy(logits.reshape(S * B, C), y.reshape(S * B), reduction="none").view(S, B)
    correct = (logits.argmax(dim=2) == y).sum(dim=1)
    return ce.mean(dim=1), correct


@torch.no_grad()
def evaluate(model, x: torch.Tensor, y: torch.Tensor, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Mean loss and accuracy ``(S,)`` of every network on the whole set (eval mode, chunks of ``chunk``)."""
    was = model.training
    model.eval()
    S = model.n_nets
    tot = torch.zeros(S, dtype=torch.float64, device=x.device)
    cor = torch.zeros(S, dtype=torch.float64, device=x.device)
    for i in range(0, len(x), chunk):
        xb = x[i : i + chunk]
        xb = xb.unsqueeze(0).expand(S, *xb.shape)
        yb = y[i : i + chunk].unsqueeze(0).expand(S, -1)
        loss, c = per_net_loss(model(xb), yb)
        tot += loss.double() * len(yb[0])
        cor += c.double()
    model.train(was)
    return (tot / len(x)).cpu().numpy(), (cor / len(x)).cpu().numpy()


KILL_ENV = "GHOSTSING_DEEPCHECK_KILL_AFTER_EPOCHS"
_checkpoints_written = [0]


def _kill_if_asked() -> None:
    """The test hook of the module docstring: SIGKILL after the N-th checkpoint of this process."""
    n = os.environ.get(KILL_ENV)
    if not n:
        return
    _checkpoints_written[0] += 1
    if _checkpoints_written[0] >= int(n):
        os.kill(os.getpid(), signal.SIGKILL)


def save_atomic(obj, path: str | os.PathLike) -> None:
    """``torch.save`` to ``path.tmp`` then ``os.replace`` (a reader never sees a half-written file)."""
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def fingerprint(model, cfg: TrainConfig, n_train: int, extra: dict | None = None) -> str:
    """A string identifying what a checkpoint belongs to (config, networks, data size)."""
    d = {
        "train": cfg.to_dict(),
        "seeds": list(getattr(model, "seeds", ())),
        "skips": list(getattr(model, "skips", ())),
        "inits": list(getattr(model, "inits", ())),
        "n_params": sum(p.numel() for p in model.parameters()),
        "n_train": int(n_train),
        "extra": extra or {},
    }
    return json.dumps(d, sort_keys=True, default=str)


def train(
    model,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    cfg: TrainConfig,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    probe_fn: Callable[[object], dict[str, np.ndarray]] | None = None,
    on_epoch_end: Callable[[int], None] | None = None,
    progress: bool = True,
    desc: str = "train",
    rng_seed: int = 0,
    tag: dict | None = None,
    step_probe: Callable[[object], dict[str, np.ndarray]] | None = None,
) -> TrainResult:
    """Train all networks of ``model`` together for ``cfg.epochs`` epochs (see the module docstring).

    ``checkpoint``: file written after every epoch; with ``resume=True`` and an existing file the run
    continues from it (its fingerprint must match, else ``ValueError``). ``probe_fn(model)`` is called
    at ``cfg.probe_epochs`` (0 = before training) and returns ``{metric: (S, ...)}`` arrays.
    ``rng_seed`` seeds torch's global RNG (dropout) at the start of a fresh run.  ``step_probe(model)``:
    see the module docstring; its records are ``result.extra["step_log"]`` (dicts with ``epoch``, ``step``
    and the probe's arrays).
    """
    t0 = time.perf_counter()
    S, n = model.n_nets, len(x_train)
    opt = make_optimizer(model.parameters(), cfg)
    sched = None
    if cfg.warmup_steps > 0:
        W = cfg.warmup_steps
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: min(1.0, (t + 1) / W))
    step_log: list[dict] = []
    E = cfg.epochs
    hist = {k: torch.full((E + 1, S), float("nan"), dtype=torch.float64) for k in HISTORY_KEYS}
    alive = torch.ones(S, dtype=torch.bool)
    diverged = torch.full((S,), -1, dtype=torch.long)
    probes: dict[int, dict[str, np.ndarray]] = {}
    fp = fingerprint(model, cfg, n, tag)
    start, resumed_from, prior_wall = 1, None, 0.0
    ck_path = Path(checkpoint) if checkpoint is not None else None

    if resume and ck_path is not None and ck_path.is_file():
        ck = torch.load(ck_path, weights_only=True, map_location="cpu")
        if ck["fingerprint"] != fp:
            raise ValueError(
                f"checkpoint {ck_path} belongs to a different run configuration; delete it or drop --resume"
            )
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optim"])
        if sched is not None:
            sched.load_state_dict(ck["sched"])
        step_log = [{"epoch": int(r["epoch"]), "step": int(r["step"]),
                     **{m: v.numpy() for m, v in r["values"].items()}} for r in ck.get("step_log", [])]
        for k in HISTORY_KEYS:
            hist[k] = ck["history"][k].clone()
        alive, diverged = ck["alive"].clone(), ck["diverged"].clone()
        probes = {int(e): {m: v.numpy() for m, v in d.items()} for e, d in ck["probes"].items()}
        torch.set_rng_state(ck["rng_cpu"])
        if torch.cuda.is_available() and len(ck.get("rng_cuda", [])):
            torch.cuda.set_rng_state_all(list(ck["rng_cuda"]))
        start, resumed_from, prior_wall = int(ck["epoch"]) + 1, int(ck["epoch"]), float(ck["wall"])
    else:
        torch.manual_seed(rng_seed)
        tl, ta = evaluate(model, x_train, y_train)
        hist["train_loss"][0], hist["train_acc"][0] = torch.from_numpy(tl), torch.from_numpy(ta)
        hist["train_loss_eval"][0], hist["train_acc_eval"][0] = hist["train_loss"][0], hist["train_acc"][0]
        vl, va = evaluate(model, x_test, y_test)
        hist["test_loss"][0], hist["test_acc"][0] = torch.from_numpy(vl), torch.from_numpy(va)
        if probe_fn is not None and 0 in cfg.probe_epochs:
            probes[0] = probe_fn(model)

    dev = x_train.device
    alive_dev = alive.to(dev)
    params = list(model.parameters())
    bs = cfg.batch_size or n
    bar = tqdm(range(start, E + 1), desc=desc, disable=not progress, leave=False, dynamic_ncols=True)
    for epoch in bar:
        model.train()
        probe_steps = cfg.step_probe_every > 0 and epoch in cfg.step_probe_epochs
        if probe_steps and step_probe is not None and epoch == cfg.step_probe_epochs[0]:
            step_log.append({"epoch": epoch, "step": 0, **step_probe(model)})
        step = 0
        if cfg.batch_size is not None:
            order = torch.stack([epoch_permutation(s, epoch, n) for s in model.seeds]).to(dev)
        loss_sum = torch.zeros(S, dtype=torch.float64, device=dev)
        correct = torch.zeros(S, dtype=torch.float64, device=dev)
        for i in range(0, n, bs):
            if cfg.batch_size is None:  # the same full batch for every network: views, no copy
                xb, yb = x_train.unsqueeze(0).expand(S, *x_train.shape), y_train.unsqueeze(0).expand(S, n)
            else:
                idx = order[:, i : i + bs]
                xb, yb = x_train[idx], y_train[idx]
            losses, c = per_net_loss(model(xb), yb)
            finite = torch.isfinite(losses)
            newly = alive_dev & ~finite
            if bool(newly.any()):
                nd = newly.cpu()
                diverged[nd] = epoch
                alive[nd] = False
                alive_dev = alive.to(dev)
            any_dead = not bool(alive.all())
            total = torch.where(alive_dev, losses, torch.zeros_like(losses)).sum()
            opt.zero_grad(set_to_none=False)
            total.backward()
            if any_dead:
                dead = ~alive_dev
                frozen = [p.detach()[dead].clone() for p in params]
                for p in params:
                    if p.grad is not None:
                        p.grad[dead] = 0
            opt.step()
            if sched is not None:
                sched.step()
            step += 1
            if probe_steps and step_probe is not None and step % cfg.step_probe_every == 0:
                step_log.append({"epoch": epoch, "step": step, **step_probe(model)})
            if any_dead:
                with torch.no_grad():
                    for p, f in zip(params, frozen, strict=True):
                        p[dead] = f
            w = yb.shape[1]
            nan = torch.full_like(loss_sum, float("nan"))
            loss_sum += torch.where(alive_dev, losses.detach().double(), nan) * w
            correct += c.double()
        hist["train_loss"][epoch] = (loss_sum / n).cpu()
        hist["train_acc"][epoch] = (correct / n).cpu()
        if epoch % cfg.eval_every == 0 or epoch == E:
            vl, va = evaluate(model, x_test, y_test)
            vl[~alive.numpy()] = np.nan
            hist["test_loss"][epoch], hist["test_acc"][epoch] = torch.from_numpy(vl), torch.from_numpy(va)
            if cfg.eval_train:
                tl, ta = evaluate(model, x_train, y_train)
                tl[~alive.numpy()] = np.nan
                hist["train_loss_eval"][epoch] = torch.from_numpy(tl)
                hist["train_acc_eval"][epoch] = torch.from_numpy(ta)
        if probe_fn is not None and epoch in cfg.probe_epochs:
            probes[epoch] = probe_fn(model)
        if progress:
            mean_loss = np.nanmean(hist["train_loss"][epoch].numpy()) if bool(alive.any()) else float("nan")
            bar.set_postfix(loss=f"{mean_loss:.4f}", alive=int(alive.sum()))
        if ck_path is not None:
            save_atomic(
                {
                    "fingerprint": fp,
                    "epoch": epoch,
                    "model": model.state_dict(),
                    "optim": opt.state_dict(),
                    "sched": sched.state_dict() if sched is not None else {},
                    "step_log": [{"epoch": r["epoch"], "step": r["step"],
                                  "values": {m: torch.as_tensor(np.asarray(v)) for m, v in r.items()
                                             if m not in ("epoch", "step")}} for r in step_log],
                    "history": hist,
                    "alive": alive,
                    "diverged": diverged,
                    "probes": {
                        str(e): {m: torch.as_tensor(np.asarray(v)) for m, v in d.items()}
                        for e, d in probes.items()
                    },
                    "rng_cpu": torch.get_rng_state(),
                    "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                    "wall": prior_wall + time.perf_counter() - t0,
                },
                ck_path,
            )
            _kill_if_asked()
        if on_epoch_end is not None:
            on_epoch_end(epoch)
    bar.close()
    return TrainResult(
        history={k: v.numpy() for k, v in hist.items()},
        diverged_epoch=diverged.numpy(),
        probes=probes,
        wall_time_s=prior_wall + time.perf_counter() - t0,
        resumed_from=resumed_from,
        extra={"step_log": step_log},
    )
