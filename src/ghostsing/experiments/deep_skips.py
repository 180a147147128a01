"""Deep MLPs with and without skips on CIFAR: training, unit measures, fair comparisons.

One idea: the skip comparison of Orhan & Pitkow, its arms, measures and predictions (plus the validation
and data helpers every deep experiment shares).

Experiments (registered in :data:`EXPERIMENTS`):

``skip-comparison`` (:func:`run_skips`).  *Arms* are skip strings with an optional initialisation,
``"none@looks-linear"``, ``"identity"`` (= ``identity@<init>``, the config's ``init``), ``"lowrank:64"`` ...
For each dataset and depth all seeds of all arms train together (one
:class:`~ghostsing.deepcheck.nets.BatchedMLP` per learning rate and skip family).  With ``lr_grid`` the
learning rate of each arm is chosen from the grid by the lowest mean training loss after ``lr_epochs``
epochs on separate seeds ``lr_seeds`` (never the seeds that are compared).  Unit measures
(:func:`~ghostsing.deepcheck.probes.units.probe_mlp`) run at ``probe_epochs`` (always 0 and the last).

Predictions at the deepest depth, per dataset (``a`` a plain arm, ``b`` a skip arm):

1. *b reaches a lower training loss than a* — ``E = mean L(a) - mean L(b) > 0``, ``L`` the final
   cross-entropy on the whole training subset (evaluation mode);
2. *b reaches the threshold sooner* — ``E = mean T(a) - mean T(b) > 0`` for each ``loss_thresholds``
   entry, ``T`` the first epoch with training loss at or below it (``epochs + 1`` when never reached:
   censored; a threshold no arm reaches gives a constant measure and is refused);
3. unit measures, plain arm against the first residual arm, as the **end value** and as the **change
   from initialisation** (per seed ``m_end - m_0``, layer means): *more eliminated units* (``elim_frac``,
   ablation effect ``<= elim_tol``), *more units overlapping in weights and activations*
   (``overlap_both_frac``), *lower effective rank of the units' activations* (``erank_unit_frac``, sign -1).
   These are measured on the ReLU units, not on the residual stream (whose non-negativity a skip
   guarantees; the stream's dead fraction is reported, never tested, for skip arms);
4. *more degenerate skips train worse* (``none``, ``lowrank:k``, ``identity`` arms at the default init
   present, at least 3 levels) — Spearman ``rho(k, L) < 0``, permutation test;
5. *the skip advantage grows with depth* (two depths or more) — the contrast
   ``[L(plain) - L(residual)]_deep - [...]_shallow > 0``, Welch t.

``dead-branches`` (why residual branches die) lives in :mod:`ghostsing.experiments.deep_dead_branches`
and uses the validation and data helpers of this module.

Configs are frozen dataclasses validated once in ``__post_init__``; ``data_root`` names the CIFAR folder
(an explicit root without the data is an error, never synthetic data).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ghostsing.experiments.base import Experiment, ExperimentOutput
from ghostsing.experiments.predictions import (
    Prediction,
    contrast_prediction,
    difference_prediction,
    spearman_prediction,
)
from ghostsing.validation import check_choice, check_float, check_floats, check_int, check_ints, check_seeds

__all__ = ["SkipsConfig", "run_skips", "EXPERIMENTS", "check_deep_common", "parse_arm", "load_data",
           "time_to_threshold", "DEVICE_PATTERN"]

OPTIMIZERS = ("sgd", "adam", "rmsprop")
DATA_MODES = ("auto", "real", "synthetic")
DATASETS = ("cifar10", "cifar100")
MLP_INITS = ("torch", "scaled", "he", "sqrt-scaled", "orthogonal", "looks-linear")
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")
_SKIP_RE = re.compile(r"^(none|identity|hyper|orthogonal|lowrank:\d+|scaled:[-+0-9.eE]+)$")


# ------------------------------------------------------------------------------------------------------
# validation (once, in the configs)


def check_deep_common(cfg: Any) -> None:
    """The fields every deep config shares: seeds, epochs, optimiser, lr, batch size, subset sizes, data
    mode, data root, device string (resolved to a torch device only when the run starts)."""
    object.__setattr__(cfg, "seeds", check_seeds("seeds", cfg.seeds))
    check_int("epochs", cfg.epochs, 1)
    if hasattr(cfg, "optimizer"):
        check_choice("optimizer", cfg.optimizer, OPTIMIZERS)
        check_float("lr", cfg.lr, 0, low_open=True)
        check_float("momentum", cfg.momentum, 0, 1, high_open=True)
    if cfg.batch_size is not None:
        check_int("batch_size", cfg.batch_size, 1)
    for k in ("n_train", "n_test"):
        if getattr(cfg, k) is not None:
            check_int(k, getattr(cfg, k), 1)
    check_choice("data", cfg.data, DATA_MODES)
    if cfg.data_root is not None and (not isinstance(cfg.data_root, str) or not cfg.data_root):
        raise ValueError(f"data_root={cfg.data_root!r} is not allowed; allowed: a folder path or None")
    if cfg.data == "synthetic" and cfg.data_root is not None:
        raise ValueError("data='synthetic' with a data_root: give one or the other")
    if not isinstance(cfg.device, str) or not DEVICE_PATTERN.match(cfg.device):
        raise ValueError(f"device={cfg.device!r} is not allowed; allowed: auto, cpu, cuda, cuda:N, mps")
    check_float("level", cfg.level, 0, 1, low_open=True, high_open=True)


def parse_arm(arm: str, default_init: str, width: int | None = None) -> tuple[str, str]:
    """``"skip@init"`` -> ``(skip, init)`` (init defaults to ``default_init``); ``ValueError`` naming the
    allowed forms."""
    skip, _, init = str(arm).strip().partition("@")
    init = init or default_init
    if not _SKIP_RE.match(skip):
        raise ValueError(f"skip {skip!r} is not one of none, identity, hyper, orthogonal, lowrank:k, "
                         "scaled:alpha (an arm is 'skip' or 'skip@init')")
    check_choice(f"init of arm {arm!r}", init, MLP_INITS)
    if skip.startswith("lowrank:") and width is not None and int(skip.split(":")[1]) > width:
        raise ValueError(f"skip {skip!r} needs k <= width={width}")
    return skip, init


def _arm_label(arm: str, default_init: str) -> str:
    skip, init = parse_arm(arm, default_init)
    return skip if init == default_init else f"{skip}@{init}"


@dataclass(frozen=True)
class SkipsConfig:
    """Settings of ``skip-comparison`` (module docstring).  ``skips`` are arms (``skip`` or ``skip@init``);
    ``batch_size=None`` is full batch; ``lr_grid=()`` uses ``lr`` for every arm."""

    datasets: tuple[str, ...] = ("cifar10",)
    depths: tuple[int, ...] = (30,)
    width: int = 128
    init: str = "scaled"
    skips: tuple[str, ...] = ("none", "identity", "hyper")
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    epochs: int = 10
    optimizer: str = "adam"
    lr: float = 1e-3
    lr_grid: tuple[float, ...] = ()
    lr_epochs: int = 2
    lr_seeds: tuple[int, ...] = (1000, 1001)
    momentum: float = 0.0
    warmup_steps: int = 0
    batch_size: int | None = 256
    n_train: int | None = None
    n_test: int | None = None
    data: str = "auto"
    data_root: str | None = None
    probe_epochs: tuple[int, ...] = (0,)
    n_probe: int = 500
    n_ablate: int = 64
    elim_tol: float = 1e-3
    act_tol: float = 0.0
    weight_frac: float = 0.01
    cos_threshold: float = 0.99
    rank_rel_tol: float = 1e-3
    loss_thresholds: tuple[float, ...] = (2.0, 1.5)
    level: float = 0.05
    device: str = "auto"
    note: str = ""

    def __post_init__(self) -> None:
        check_deep_common(self)
        if not self.datasets:
            raise ValueError("datasets=() is empty; allowed: cifar10, cifar100")
        for d in self.datasets:
            check_choice("datasets", d, DATASETS)
        object.__setattr__(self, "depths", check_ints("depths", self.depths, 1, distinct=True))
        check_int("width", self.width, 1)
        check_choice("init", self.init, MLP_INITS)
        if not self.skips:
            raise ValueError("skips=() is empty; allowed: at least one arm")
        labels = [_arm_label(a, self.init) for a in self.skips]
        for a in self.skips:
            parse_arm(a, self.init, self.width)
        if len(set(labels)) != len(labels):
            raise ValueError(f"skips={self.skips!r} repeats an arm")
        object.__setattr__(self, "skips", tuple(labels))
        object.__setattr__(self, "lr_grid", check_floats("lr_grid", self.lr_grid, 0, low_open=True,
                                                         nonempty=False))
        check_int("lr_epochs", self.lr_epochs, 1)
        object.__setattr__(self, "lr_seeds", check_seeds("lr_seeds", self.lr_seeds))
        if self.lr_grid and set(self.lr_seeds) & set(self.seeds):
            raise ValueError("lr_seeds must differ from seeds (the learning rate is not chosen on the "
                             "seeds that are compared)")
        check_int("warmup_steps", self.warmup_steps, 0)
        object.__setattr__(self, "probe_epochs", check_ints("probe_epochs", self.probe_epochs, 0,
                                                            nonempty=False))
        check_int("n_probe", self.n_probe, 2)
        check_int("n_ablate", self.n_ablate, 0)
        check_float("elim_tol", self.elim_tol, 0, 1, high_open=True)
        check_float("act_tol", self.act_tol, 0)
        check_float("weight_frac", self.weight_frac, 0, 1, low_open=True, high_open=True)
        check_float("cos_threshold", self.cos_threshold, -1, 1, low_open=True, high_open=True)
        check_float("rank_rel_tol", self.rank_rel_tol, 0, 1, low_open=True, high_open=True)
        object.__setattr__(self, "loss_thresholds", check_floats("loss_thresholds", self.loss_thresholds,
                                                                 0, low_open=True, nonempty=False))
        if "looks-linear" in {parse_arm(a, self.init)[1] for a in self.skips} and self.width % 2:
            raise ValueError(f"init 'looks-linear' needs an even width, got width={self.width}")


# ------------------------------------------------------------------------------------------------------
# shared run pieces


def _setup(cfg: Any, out: Path):
    import torch  # noqa: F401  (the deep extra)

    from ghostsing.deepcheck.training import resolve_device

    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    return resolve_device(cfg.device)


def load_data(cfg: Any, dataset: str):
    """The data of a run (``cfg.data``, ``cfg.data_root``, ``cfg.n_train``, ``cfg.n_test``) and the line
    naming it, which is also printed to the console (stderr) so that a run says which data it used."""
    from ghostsing.deepcheck.data import describe, load_for_run

    data = load_for_run(dataset, cfg.data, cfg.data_root, cfg.n_train, cfg.n_test)
    line = describe(data)
    print(f"deepcheck data: {line}", file=sys.stderr, flush=True)
    return data, line


def _probe_config(cfg: SkipsConfig):
    from ghostsing.deepcheck.probes.units import ProbeConfig

    return ProbeConfig(cfg.act_tol, cfg.weight_frac, cfg.cos_threshold, cfg.rank_rel_tol, cfg.n_probe,
                       cfg.elim_tol, cfg.n_ablate)


def _train_groups(cfg: SkipsConfig, arms: list[str], seeds: list[int], lr: float, epochs: int,
                  probe_epochs: tuple[int, ...], tensors, net_cfg, device, out: Path, tag: str, resume: bool,
                  progress: bool, pcfg=None) -> dict[str, dict]:
    """Train ``arms x seeds`` at one learning rate; returns per-arm histories, probes and final losses."""
    from ghostsing.deepcheck.nets import BatchedMLP, batch_groups
    from ghostsing.deepcheck.probes.units import probe_mlp
    from ghostsing.deepcheck.training import TrainConfig, evaluate, train

    x_tr, y_tr, x_te, y_te = tensors
    x_probe = x_tr[: min(cfg.n_probe, len(x_tr))]
    tcfg = TrainConfig(optimizer=cfg.optimizer, lr=lr, epochs=epochs, batch_size=cfg.batch_size,
                       momentum=cfg.momentum, probe_epochs=probe_epochs, warmup_steps=cfg.warmup_steps,
                       eval_train=True)
    parsed = {a: parse_arm(a, cfg.init) for a in arms}
    runs: dict[str, dict] = {}
    by_skip = {}
    for a in arms:
        by_skip.setdefault(parsed[a][0], []).append(a)
    for gi, skip_group in enumerate(batch_groups(list(by_skip))):
        group = [a for s in skip_group for a in by_skip[s]]
        model = BatchedMLP(net_cfg, seeds * len(group), [parsed[a][0] for a in group for _ in seeds],
                           device=device, inits=[parsed[a][1] for a in group for _ in seeds])
        probe_fn = functools.partial(probe_mlp, x_probe=x_probe, cfg=pcfg) if pcfg is not None else None
        res = train(model, x_tr, y_tr, x_te, y_te, tcfg, checkpoint=out / "checkpoints" / f"{tag}_g{gi}.pt",
                    resume=resume, probe_fn=probe_fn, progress=progress, desc=f"{tag} [{', '.join(group)}]",
                    tag={"lr": lr, "arms": group, "probe": pcfg.to_dict() if pcfg else None})
        final_loss, final_acc = evaluate(model, x_tr, y_tr)
        final_loss[res.diverged_epoch >= 0] = np.nan
        S = len(seeds)
        for j, a in enumerate(group):
            sl = slice(j * S, (j + 1) * S)
            runs[a] = {"history": {k: v[:, sl] for k, v in res.history.items()},
                       "probes": {e: {m: v[sl] for m, v in d.items()} for e, d in res.probes.items()},
                       "final_train_loss": final_loss[sl], "final_train_acc": final_acc[sl],
                       "diverged_epoch": res.diverged_epoch[sl], "lr": lr,
                       "group": f"{tag}_g{gi}", "group_wall_s": res.wall_time_s}
    return runs


def time_to_threshold(loss_history: np.ndarray, threshold: float) -> np.ndarray:
    """First epoch with loss ``<= threshold`` per seed (``(E+1, S)`` history, row 0 = initialisation);
    ``E + 1`` when never reached (censored), NaN for a network that diverged before reaching it."""
    y = np.asarray(loss_history, dtype=float)
    hit = y <= threshold
    first = np.where(hit.any(axis=0), hit.argmax(axis=0), y.shape[0]).astype(float)
    diverged = ~np.isfinite(y[-1]) & ~hit.any(axis=0)
    first[diverged] = np.nan
    return first


def _layer_mean(r: dict, metric: str, epoch: int) -> np.ndarray:
    return np.nanmean(r["probes"][epoch][metric], axis=1)


# ------------------------------------------------------------------------------------------------------
# skip comparison


def run_skips(cfg: SkipsConfig, out_dir: Path, *, resume: bool = False, progress: bool = True
              ) -> ExperimentOutput:
    """Train, probe and compare (module docstring); checkpoints under ``out_dir/checkpoints``."""
    from ghostsing.deepcheck.data import to_tensors
    from ghostsing.deepcheck.nets import MLPConfig

    out = Path(out_dir)
    device = _setup(cfg, out)
    pcfg = _probe_config(cfg)
    probe_epochs = tuple(sorted({e for e in cfg.probe_epochs if e <= cfg.epochs} | {0, cfg.epochs}))
    seeds = list(cfg.seeds)
    runs: dict[tuple[str, int, str], dict] = {}
    data_lines, lr_choice, walls = [], {}, {}
    for ds in cfg.datasets:
        data, line = load_data(cfg, ds)
        data_lines.append(line)
        tensors = to_tensors(data, device)
        for depth in cfg.depths:
            net_cfg = MLPConfig(depth=depth, width=cfg.width, in_dim=tensors[0].shape[1],
                                n_classes=data.n_classes, init=cfg.init)
            lrs = {a: cfg.lr for a in cfg.skips}
            if cfg.lr_grid:
                table = {}
                for lr in cfg.lr_grid:
                    sel = _train_groups(cfg, list(cfg.skips), list(cfg.lr_seeds), lr, cfg.lr_epochs, (),
                                        tensors, net_cfg, device, out, f"lrsel_{ds}_d{depth}_lr{lr:g}",
                                        resume, progress)
                    for a, r in sel.items():
                        walls[r["group"]] = r["group_wall_s"]
                        fl = r["final_train_loss"]
                        table.setdefault(a, {})[lr] = float(np.mean(np.where(np.isfinite(fl), fl, np.inf)))
                lrs = {a: min(cfg.lr_grid, key=lambda lr, a=a: (table[a][lr], lr)) for a in cfg.skips}
                lr_choice[f"{ds}/d{depth}"] = {a: {"chosen": lrs[a], "selection_loss": table[a]}
                                               for a in cfg.skips}
            for lr in sorted(set(lrs.values())):
                arms = [a for a in cfg.skips if lrs[a] == lr]
                got = _train_groups(cfg, arms, seeds, lr, cfg.epochs, probe_epochs, tensors, net_cfg, device,
                                    out, f"{ds}_d{depth}_lr{lr:g}", resume, progress, pcfg)
                for a, r in got.items():
                    runs[(ds, depth, a)] = r
                    walls[r["group"]] = r["group_wall_s"]
    preds = _skip_predictions(cfg, runs)
    figures = _skip_figures(cfg, runs, out)
    arrays = {}
    for (ds, d, a), r in runs.items():
        key = f"{ds}/d{d}/{a}"
        for k, v in r["history"].items():
            arrays[f"{key}/{k}"] = v
        for e, dd in r["probes"].items():
            for m, v in dd.items():
                arrays[f"{key}/probe/e{e}/{m}"] = v
    summary = {
        "data": "; ".join(data_lines), "device": str(device), "note": cfg.note,
        "training_wall_time_s": float(sum(walls.values())),
        "lr_selection": lr_choice,
        "runs": [{"dataset": ds, "depth": d, "arm": a, "lr": r["lr"], "seeds": seeds,
                  "final_train_loss": r["final_train_loss"], "final_train_acc": r["final_train_acc"],
                  "final_test_acc": r["history"]["test_acc"][-1], "diverged_epoch": r["diverged_epoch"],
                  "time_to_threshold": {f"{t:g}": time_to_threshold(r["history"]["train_loss_eval"], t)
                                        for t in cfg.loss_thresholds},
                  "layer_mean_init": {m: _layer_mean(r, m, 0) for m in _REPORTED},
                  "layer_mean_end": {m: _layer_mean(r, m, max(r["probes"])) for m in _REPORTED}}
                 for (ds, d, a), r in runs.items()],
    }
    md = _skip_markdown(cfg, runs, data_lines, lr_choice)
    return ExperimentOutput(tuple(preds), tuple(figures), arrays, summary, md)


_REPORTED = ("elim_frac", "dead_relu_frac", "dead_frac", "overlap_both_frac", "erank_unit_frac", "smin_unit",
             "erank_frac", "contrib_median")
_MEASURES = (("elim_frac", +1, "more eliminated units",
              "more units whose ablation changes the output by at most elim_tol (relative)"),
             ("overlap_both_frac", +1, "more overlapping units",
              "more units in a pair overlapping in both incoming weights and activations (cosine > "
              "cos_threshold)"),
             ("erank_unit_frac", -1, "a lower effective rank of the units' activations",
              "a lower effective rank (/ width) of the units' activation matrix A_l"))


def _kind(arm: str) -> str:
    return arm.partition("@")[0].split(":")[0]


def _skip_predictions(cfg: SkipsConfig, runs: dict) -> list[Prediction]:
    preds: list[Prediction] = []
    deep = max(cfg.depths)
    lvl = {"level": cfg.level}
    for ds in cfg.datasets:
        for depth in sorted(cfg.depths, reverse=True):
            tag = f"[{ds}, depth {depth}]"
            plains = [a for a in cfg.skips if _kind(a) == "none" and (ds, depth, a) in runs]
            skips = [a for a in cfg.skips if _kind(a) in ("identity", "hyper") and (ds, depth, a) in runs]
            for p, s in itertools.product(plains, skips):
                rp, rs = runs[(ds, depth, p)], runs[(ds, depth, s)]
                preds.append(difference_prediction(
                    f"{s} reaches lower training loss than {p} {tag}", rp["final_train_loss"],
                    rs["final_train_loss"], +1, f"mean final training loss ({p}) - ({s})",
                    f"After {cfg.epochs} epochs the {s} MLPs fit the training set (cross-entropy, eval mode, "
                    f"whole training subset) better than the {p} MLPs of the same depth and width "
                    f"(learning rates {rp['lr']:g} / {rs['lr']:g}).", **lvl))
                if depth != deep:
                    continue
                for thr in cfg.loss_thresholds:
                    tp = time_to_threshold(rp["history"]["train_loss_eval"], thr)
                    ts = time_to_threshold(rs["history"]["train_loss_eval"], thr)
                    preds.append(difference_prediction(
                        f"{s} reaches training loss {thr:g} sooner than {p} {tag}", tp, ts, +1,
                        f"mean epochs to training loss <= {thr:g} ({p}) - ({s}); never reached = epochs + 1",
                        f"The {s} MLPs reach a training loss of {thr:g} nats in fewer epochs than the {p} "
                        f"MLPs (censored at {cfg.epochs + 1} when not reached).", **lvl))
            res = [a for a in skips if _kind(a) == "identity"]
            if depth != deep or not res:
                continue
            r0 = res[0]
            for p in plains:
                rp, rr = runs[(ds, depth, p)], runs[(ds, depth, r0)]
                end_p, end_r = max(rp["probes"]), max(rr["probes"])
                for metric, sign, short, what in _MEASURES:
                    vp_end, vr_end = _layer_mean(rp, metric, end_p), _layer_mean(rr, metric, end_r)
                    vp0, vr0 = _layer_mean(rp, metric, 0), _layer_mean(rr, metric, 0)
                    preds.append(difference_prediction(
                        f"{p} has {short} than {r0} at the end {tag}", vp_end, vr_end, sign,
                        f"layer-mean {metric} at epoch {end_p}: ({p}) - ({r0})",
                        f"At the end of training the {p} nets have {what} than the {r0} nets.",
                        details={"metric": metric, "init_a": vp0, "init_b": vr0}, **lvl))
                    preds.append(difference_prediction(
                        f"{p} gains {short} than {r0} during training {tag}", vp_end - vp0, vr_end - vr0,
                        sign,
                        f"change of layer-mean {metric} from epoch 0 to {end_p}: ({p}) - ({r0})",
                        f"Training changes {metric} more towards the singularity in the {p} nets than in "
                        f"the {r0} nets (per seed: end value minus value at initialisation), so the "
                        "difference is not inherited from the initialisation.", details={"metric": metric},
                        **lvl))
        # degeneracy sweep at the default init
        levels, groups = [], []
        for a in cfg.skips:
            if "@" in a or (ds, deep, a) not in runs:
                continue
            k = {"none": 0, "identity": cfg.width}.get(a)
            if a.startswith("lowrank:"):
                k = int(a.split(":")[1])
            if k is not None:
                levels.append(k)
                groups.append(runs[(ds, deep, a)]["final_train_loss"])
        if len(set(levels)) >= 3:
            preds.append(spearman_prediction(
                f"more degenerate skips train worse (lowrank:k sweep) [{ds}, depth {deep}]", levels, groups,
                -1,
                "Spearman rho between skip rank k and final training loss (k=0 plain, k=width identity)",
                "Keeping only k of the identity skip's diagonal ones (a degenerate skip) raises the final "
                "training loss as k falls.", **lvl))
        shallow = min(cfg.depths)
        keys = [(ds, d, s) for d in (deep, shallow) for s in ("none", "identity")]
        if deep != shallow and all(k in runs for k in keys):
            g = [runs[k]["final_train_loss"] for k in keys]
            preds.append(contrast_prediction(
                f"skip advantage grows with depth [{ds}, depth {shallow} -> {deep}]", g, [1, -1, -1, 1], +1,
                "[L(plain) - L(residual)] at the deepest minus at the shallowest depth",
                "The training-loss advantage of residual over plain nets is larger for deeper nets.", **lvl))
    return preds


def _skip_figures(cfg: SkipsConfig, runs: dict, out: Path) -> list[str]:
    from ghostsing.plots.deep import (
        plot_init_vs_end,
        plot_probe_profiles,
        plot_time_to_threshold,
        plot_training_curves,
    )
    from ghostsing.plots.style import save_figure

    figs: list[str] = []
    for ds in cfg.datasets:
        for depth in cfg.depths:
            here = {a: runs[(ds, depth, a)] for a in cfg.skips if (ds, depth, a) in runs}
            fig = plot_training_curves({a: r["history"] for a, r in here.items()},
                                       f"{ds}, depth {depth}, width {cfg.width}",
                                       ("train_loss_eval", "test_loss", "test_acc"))
            figs += save_figure(fig, out, f"curves_{ds}_d{depth}")
            fig = plot_probe_profiles({a: r["probes"] for a, r in here.items()},
                                      f"unit measures, {ds}, depth {depth}")
            figs += save_figure(fig, out, f"probes_{ds}_d{depth}")
            if depth == max(cfg.depths):
                vals = {m: {a: (_layer_mean(r, m, 0), _layer_mean(r, m, max(r["probes"])))
                            for a, r in here.items()} for m, *_ in _MEASURES}
                fig = plot_init_vs_end(vals, f"unit measures at initialisation and at the end, {ds}, "
                                             f"depth {depth}")
                figs += save_figure(fig, out, f"init_vs_end_{ds}_d{depth}")
                if cfg.loss_thresholds:
                    losses = {a: r["history"]["train_loss_eval"] for a, r in here.items()}
                    fig = plot_time_to_threshold(losses, cfg.loss_thresholds,
                                                 f"time to threshold, {ds}, depth {depth}")
                    figs += save_figure(fig, out, f"time_to_threshold_{ds}_d{depth}")
    return figs


def _fmt_ms(v: np.ndarray) -> str:
    v = np.asarray(v, dtype=float)
    return f"{np.nanmean(v):.3f} ± {np.nanstd(v):.3f}" if np.isfinite(v).any() else "n/a"


def _skip_markdown(cfg: SkipsConfig, runs: dict, data_lines: list[str], lr_choice: dict) -> str:
    lines = ["## Runs", "",
             "| data | depth | arm | lr | final train loss | test acc | eliminated 0 → end | "
             "dead ReLU 0 → end | overlap (w+a) 0 → end | erank(A)/w 0 → end | dead stream h (not tested) "
             "| diverged |",
             "| --- | ---: | --- | ---: | --- | ---: | --- | --- | --- | --- | ---: | ---: |"]
    for (ds, d, a), r in runs.items():
        end = max(r["probes"])

        def pair(m, r=r, end=end):
            return f"{np.nanmean(_layer_mean(r, m, 0)):.3f} → {np.nanmean(_layer_mean(r, m, end)):.3f}"

        lines.append(f"| {ds} | {d} | {a} | {r['lr']:g} | {_fmt_ms(r['final_train_loss'])} | "
                     f"{np.nanmean(r['history']['test_acc'][-1]):.3f} | {pair('elim_frac')} | "
                     f"{pair('dead_relu_frac')} | {pair('overlap_both_frac')} | {pair('erank_unit_frac')} | "
                     f"{np.nanmean(_layer_mean(r, 'dead_frac', end)):.3f} | "
                     f"{int((r['diverged_epoch'] >= 0).sum())} |")
    lines += ["", "Data: " + "; ".join(data_lines), ""]
    if lr_choice:
        lines += ["Learning rate per arm (lowest mean training loss after "
                  f"{cfg.lr_epochs} epochs on seeds {list(cfg.lr_seeds)}, grid {list(cfg.lr_grid)}):", ""]
        for key, arms in lr_choice.items():
            lines.append(f"- {key}: " + ", ".join(f"{a} → {v['chosen']:g}" for a, v in arms.items()))
        lines.append("")
    lines += [
        "Measures (layer means over the hidden layers; thresholds in the configuration): *eliminated* = "
        f"ablating the unit changes the logits on {cfg.n_ablate} probe images by at most {cfg.elim_tol:g} "
        "(relative Frobenius norm); *dead ReLU* = the unit's ReLU output is zero on all "
        f"{cfg.n_probe} probe images; *overlap (w+a)* = the unit is in a pair whose incoming weights and "
        f"activations both have cosine > {cfg.cos_threshold}; *erank(A)/w* = effective rank of the units' "
        "activation matrix / width. The *dead stream* fraction (the layer output h_l, what the next layer "
        "reads) is shown for reference only: a residual net's h_l = a_l + h_{l-1} >= 0 keeps it near 0 by "
        "construction, so it is not a test of the skip.",
        "",
        "Predictions are not corrected for multiple comparisons; each p-value is its own test.",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------
# presets


def _smoke() -> SkipsConfig:
    return SkipsConfig(depths=(2, 6), width=32,
                       skips=("none", "identity", "hyper", "lowrank:8", "lowrank:24"),
                       seeds=(0, 1, 2), epochs=4, batch_size=128, n_train=1500, n_test=500,
                       probe_epochs=(0, 2, 4), n_probe=256, n_ablate=32, device="cpu",
                       loss_thresholds=(2.0,),
                       note="smoke test: 3 seeds (too few for a verdict at the 5 % level)")


SKIP_PRESETS = {
    "smoke": _smoke(),
    "skip-comparison-small": dataclasses.replace(
        _smoke(), depths=(3,), skips=("none", "identity"), seeds=(0, 1), epochs=1, n_train=200, n_test=50,
        probe_epochs=(0, 1), n_probe=64, n_ablate=8, data="synthetic", note="test size"),
    "orhan-pitkow": SkipsConfig(datasets=("cifar10", "cifar100"), depths=(10, 30), width=128,
                                skips=("none", "identity", "hyper"), seeds=tuple(range(5)), epochs=50,
                                batch_size=256, probe_epochs=(0, 1, 5, 10, 25, 50), data="real"),
    "skip-degeneracy": SkipsConfig(depths=(30,), width=128,
                                   skips=("none", "lowrank:16", "lowrank:32", "lowrank:64", "lowrank:96",
                                          "identity"),
                                   seeds=tuple(range(5)), epochs=50, batch_size=256, probe_epochs=(0, 10, 50),
                                   data="real"),
    "fair-comparison": SkipsConfig(depths=(30,), width=128,
                                   skips=("none", "none@looks-linear", "identity", "identity@he"),
                                   seeds=tuple(range(5)), epochs=50, batch_size=256,
                                   lr_grid=(3e-4, 1e-3, 3e-3), lr_epochs=3, probe_epochs=(0, 1, 10, 50),
                                   loss_thresholds=(2.0, 1.5, 1.0), data="real"),
}

EXPERIMENTS = (
    Experiment("skip-comparison", "Deep MLPs with and without skips on CIFAR (Orhan & Pitkow): training, "
               "unit measures, fair comparisons", "deep", SkipsConfig, run_skips, SKIP_PRESETS),
)
