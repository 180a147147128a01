"""Why residual branches die: the ``dead-branches`` experiment.

A residual MLP (:class:`~ghostsing.deepcheck.nets.BatchedMLP`, default 30 layers of 128 units) trained
under every combination of ``optimizers`` (Adam, SGD) x ``warmups`` (linear learning-rate warm-up steps)
x ``branch_inits`` (branch weights scaled by ``1/(depth-1)``, ``init='scaled'``, or ``1/sqrt(depth-1)``,
``'sqrt-scaled'``); all seeds and both initialisations of one optimiser and warm-up train as one batched
model.  The fraction of dead ReLU branch units (layers 2..depth, zero on every probe image) is logged
every ``log_every`` optimiser steps of epoch 1 (:class:`~ghostsing.deepcheck.training.TrainConfig`'s step
probes) and at every epoch.

Predictions, each against the baseline (the first optimiser, no warm-up, the first initialisation):

* *branches die in epoch 1* -- paired per seed, dead fraction after epoch 1 minus at initialisation
  ``> 0``; one-sample t test (an exact sign-flip test of 5 pairs cannot go below ``2/32``);
* *the baseline optimiser kills more branches than the second* -- dead fraction after epoch 1, baseline
  minus variant ``> 0``, exact permutation test; likewise *warm-up keeps more alive* and *the second
  branch initialisation keeps more alive*.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ghostsing.experiments.base import Experiment, ExperimentOutput
from ghostsing.experiments.deep_skips import (
    DATASETS,
    MLP_INITS,
    OPTIMIZERS,
    _fmt_ms,
    _setup,
    check_deep_common,
    load_data,
    parse_arm,
)
from ghostsing.experiments.predictions import Prediction, difference_prediction, one_group_prediction
from ghostsing.validation import check_choice, check_float, check_floats, check_int, check_ints

__all__ = ["DeadBranchesConfig", "run_dead_branches", "EXPERIMENTS", "PRESETS"]


@dataclass(frozen=True)
class DeadBranchesConfig:
    """Settings of ``dead-branches`` (module docstring): a residual MLP trained under every combination
    of ``optimizers`` x ``warmups`` (steps) x ``branch_inits``; ``lrs`` gives each optimiser's learning
    rate (same order as ``optimizers``)."""

    dataset: str = "cifar10"
    depth: int = 30
    width: int = 128
    skip: str = "identity"
    optimizers: tuple[str, ...] = ("adam", "sgd")
    lrs: tuple[float, ...] = (1e-3, 0.01)
    momentum_sgd: float = 0.9
    warmups: tuple[int, ...] = (0, 100)
    branch_inits: tuple[str, ...] = ("scaled", "sqrt-scaled")
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    epochs: int = 3
    log_every: int = 2
    batch_size: int | None = 128
    n_train: int | None = 3000
    n_test: int | None = 500
    n_probe: int = 256
    data: str = "auto"
    data_root: str | None = None
    level: float = 0.05
    device: str = "auto"
    note: str = ""

    def __post_init__(self) -> None:
        check_deep_common(self)
        check_choice("dataset", self.dataset, DATASETS)
        check_int("depth", self.depth, 2)
        check_int("width", self.width, 1)
        parse_arm(self.skip, "scaled", self.width)
        if not self.optimizers or len(set(self.optimizers)) != len(self.optimizers):
            raise ValueError(f"optimizers={self.optimizers!r}: give distinct optimisers")
        for o in self.optimizers:
            check_choice("optimizers", o, OPTIMIZERS)
        object.__setattr__(self, "lrs", check_floats("lrs", self.lrs, 0, low_open=True))
        if len(self.lrs) != len(self.optimizers):
            raise ValueError(f"lrs={self.lrs!r}: one learning rate per optimiser {self.optimizers!r}")
        check_float("momentum_sgd", self.momentum_sgd, 0, 1, high_open=True)
        object.__setattr__(self, "warmups", check_ints("warmups", self.warmups, 0, distinct=True))
        if not self.branch_inits or len(set(self.branch_inits)) != len(self.branch_inits):
            raise ValueError(f"branch_inits={self.branch_inits!r}: give distinct initialisations")
        for i in self.branch_inits:
            check_choice("branch_inits", i, MLP_INITS)
        check_int("log_every", self.log_every, 1)
        check_int("n_probe", self.n_probe, 2)

    def arms(self) -> list[tuple[str, int, str]]:
        """``(optimizer, warmup, init)`` for every arm, baseline (first of each) first."""
        return list(itertools.product(self.optimizers, self.warmups, self.branch_inits))


def _arm_name(opt: str, warm: int, init: str) -> str:
    return f"{opt}, warm-up {warm}, {init}"


def run_dead_branches(cfg: DeadBranchesConfig, out_dir: Path, *, resume: bool = False, progress: bool = True
                      ) -> ExperimentOutput:
    """Train the arms, log dead branch units finely in epoch 1 (module docstring)."""
    import torch

    from ghostsing.deepcheck.data import to_tensors
    from ghostsing.deepcheck.nets import BatchedMLP, MLPConfig
    from ghostsing.deepcheck.training import TrainConfig, train

    out = Path(out_dir)
    device = _setup(cfg, out)
    data, line = load_data(cfg, cfg.dataset)
    x_tr, y_tr, x_te, y_te = to_tensors(data, device)
    x_probe = x_tr[: min(cfg.n_probe, len(x_tr))]
    seeds = list(cfg.seeds)
    net_cfg = MLPConfig(depth=cfg.depth, width=cfg.width, in_dim=x_tr.shape[1], n_classes=data.n_classes)

    @torch.no_grad()
    def dead_branches(model) -> dict[str, np.ndarray]:
        was = model.training
        model.eval()
        _, branches = model(x_probe, return_branches=True)
        model.train(was)
        dead = torch.stack([(a.amax(dim=1) <= 0).double().mean(1) for a in branches[1:]], 1)  # (S, depth-1)
        return {"dead_branch_frac": dead.mean(1).cpu().numpy()}

    runs: dict[tuple[str, int, str], dict] = {}
    train_wall = 0.0
    for oi, opt in enumerate(cfg.optimizers):
        for warm in cfg.warmups:
            tcfg = TrainConfig(optimizer=opt, lr=cfg.lrs[oi], epochs=cfg.epochs, batch_size=cfg.batch_size,
                               momentum=cfg.momentum_sgd if opt == "sgd" else 0.0, warmup_steps=warm,
                               probe_epochs=tuple(range(cfg.epochs + 1)), step_probe_every=cfg.log_every,
                               step_probe_epochs=(1,))
            inits = list(cfg.branch_inits)
            model = BatchedMLP(net_cfg, seeds * len(inits), [cfg.skip] * (len(seeds) * len(inits)),
                               device=device, inits=[i for i in inits for _ in seeds])
            res = train(model, x_tr, y_tr, x_te, y_te, tcfg, resume=resume, probe_fn=dead_branches,
                        step_probe=dead_branches, progress=progress, desc=f"{opt} warm-up {warm}",
                        checkpoint=out / "checkpoints" / f"{opt}_w{warm}.pt", tag={"inits": inits})
            train_wall = train_wall + res.wall_time_s
            log = res.extra["step_log"]
            steps = np.array([r["step"] for r in log])
            S = len(seeds)
            for j, init in enumerate(inits):
                sl = slice(j * S, (j + 1) * S)
                runs[(opt, warm, init)] = {
                    "steps": steps,
                    "step_dead": np.stack([r["dead_branch_frac"][sl] for r in log]),
                    "epoch_dead": np.stack([res.probes[e]["dead_branch_frac"][sl]
                                            for e in sorted(res.probes)]),
                    "train_loss": res.history["train_loss"][:, sl],
                    "lr": cfg.lrs[oi],
                }
    base = cfg.arms()[0]
    rb = runs[base]
    preds: list[Prediction] = []
    lvl = {"level": cfg.level}

    def after1(r):
        return r["epoch_dead"][1]

    preds.append(one_group_prediction(
        f"branches die in epoch 1 under {_arm_name(*base)}", after1(rb) - rb["epoch_dead"][0], +1,
        "mean over seeds of dead-branch fraction after epoch 1 minus at initialisation (paired)",
        "The residual branches' ReLU units die during the first epoch (not at initialisation). One-sample "
        "t test: an exact sign-flip test of 5 paired seeds cannot go below p = 2/32.", test="t", **lvl))
    for other, what, desc in (
        ((cfg.optimizers[1], base[1], base[2]) if len(cfg.optimizers) > 1 else None,
         f"{base[0]} kills more branches in epoch 1 than {cfg.optimizers[-1]}",
         f"With the same initialisation, {base[0]}'s first steps kill more branch units than "
         f"{cfg.optimizers[-1]}'s."),
        ((base[0], cfg.warmups[1], base[2]) if len(cfg.warmups) > 1 else None,
         f"warm-up ({cfg.warmups[-1]} steps) keeps more branches alive under {base[0]}",
         "A linear learning-rate warm-up keeps more branch units alive through epoch 1."),
        ((base[0], base[1], cfg.branch_inits[1]) if len(cfg.branch_inits) > 1 else None,
         f"branch init {cfg.branch_inits[-1]} keeps more branches alive than {base[2]} under {base[0]}",
         "Larger initial branch weights keep more branch units alive through epoch 1."),
    ):
        if other is None:
            continue
        preds.append(difference_prediction(
            f"{what} [{cfg.dataset}, depth {cfg.depth}]", after1(rb), after1(runs[other]), +1,
            f"dead-branch fraction after epoch 1: ({_arm_name(*base)}) - ({_arm_name(*other)})", desc, **lvl))
    figs = _dead_figures(cfg, runs, out)
    arrays = {}
    for k, r in runs.items():
        name = _arm_name(*k).replace(", ", "_").replace(" ", "")
        for f in ("steps", "step_dead", "epoch_dead", "train_loss"):
            arrays[f"{name}/{f}"] = r[f]
    lines = ["## Dead branch units (fraction of ReLU units of layers 2..depth dead on every probe image)", "",
             "| optimiser | lr | warm-up steps | branch init | at init | after epoch 1 | at the end | final "
             "running train loss |", "| --- | ---: | ---: | --- | --- | --- | --- | --- |"]
    for (opt, warm, init), r in runs.items():
        lines.append(f"| {opt} | {r['lr']:g} | {warm} | {init} | {_fmt_ms(r['epoch_dead'][0])} | "
                     f"{_fmt_ms(r['epoch_dead'][1])} | {_fmt_ms(r['epoch_dead'][-1])} | "
                     f"{_fmt_ms(r['train_loss'][-1])} |")
    lines += ["", f"Data: {line}. Epoch 1 logged every {cfg.log_every} optimiser steps; SGD with momentum "
              f"{cfg.momentum_sgd}."]
    summary = {"data": line, "device": str(device), "note": cfg.note, "training_wall_time_s": train_wall,
               "arms": [{"optimizer": o, "warmup": w, "init": i, "dead_init": r["epoch_dead"][0],
                         "dead_after_epoch1": r["epoch_dead"][1], "dead_end": r["epoch_dead"][-1]}
                        for (o, w, i), r in runs.items()]}
    return ExperimentOutput(tuple(preds), tuple(figs), arrays, summary, "\n".join(lines))


def _dead_figures(cfg: DeadBranchesConfig, runs: dict, out: Path) -> list[str]:
    from ghostsing.plots.deep import plot_step_log
    from ghostsing.plots.style import save_figure

    first = next(iter(runs.values()))
    groups = {_arm_name(*k): (f"{k[0]}, {k[2]}", f"warm-up {k[1]}") for k in runs}
    fig = plot_step_log(first["steps"], {_arm_name(*k): r["step_dead"] for k, r in runs.items()},
                        "dead branch fraction", f"epoch 1, step by step ({cfg.dataset}, depth {cfg.depth})",
                        groups=groups)
    figs = list(save_figure(fig, out, "dead_branches_epoch1"))
    fig = plot_step_log(np.arange(cfg.epochs + 1), {_arm_name(*k): r["epoch_dead"] for k, r in runs.items()},
                        "dead branch fraction", "by epoch", xlabel="epoch", groups=groups)
    figs += save_figure(fig, out, "dead_branches_epochs")
    return figs



PRESETS = {
    "dead-branches": DeadBranchesConfig(data="real"),
    "dead-branches-small": DeadBranchesConfig(depth=4, width=16, seeds=(0, 1), epochs=1, n_train=256,
                                              n_test=64, n_probe=32, warmups=(0, 4), data="synthetic",
                                              device="cpu", note="test size"),
}

EXPERIMENTS = (
    Experiment("dead-branches", "Why residual branches die: Adam vs SGD, warm-up, branch scale, epoch 1 "
               "step by step", "deep", DeadBranchesConfig, run_dead_branches, PRESETS),
)
