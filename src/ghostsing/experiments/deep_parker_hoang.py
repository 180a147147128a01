"""The CNNs of Parker & Hoang's 2022 course report on CIFAR-10, and the ablation that tests their skips.

Models (:data:`ghostsing.deepcheck.cnns.CNN_FACTORIES`): ``cnn`` (the report's plain CNN, 418,794
parameters), ``resnet`` (its residual CNN, 223,242) and ``resnet-noskip`` (the residual CNN with the two
additions ``+ x`` of its residual blocks removed: the same layers, the same 223,242 parameters and, for a
seed, the same initial weights).  The report compares ``cnn`` with ``resnet``, which differ in depth,
pooling, dropout placement and size, so that comparison is not a test of the skip; the ablation
``resnet`` against ``resnet-noskip`` is.  All seeds of one model train together (``vmap``), RMSprop with
Keras's defaults, mini-batches of 64, the first ``n_train`` CIFAR-10 training images.

Predictions (``L`` averaged over the last ``max(1, epochs // 5)`` epochs, because single epochs spike
under RMSprop; per seed, then compared over seeds):

* ablation (``resnet`` and ``resnet-noskip`` present): *the skips lower the training loss* in training
  mode (running mean over an epoch's mini-batches, dropout on) and in evaluation mode (whole training
  subset, dropout off): ``E = L(noskip) - L(resnet) > 0``; *the skips raise the test accuracy*:
  ``E = acc(resnet) - acc(noskip) > 0``;
* the report's comparison (``cnn`` and ``resnet`` present): the residual CNN reaches a lower
  evaluation-mode training loss and a higher test accuracy than the plain CNN (stated as confounded).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ghostsing.experiments.base import Experiment, ExperimentOutput
from ghostsing.experiments.deep_skips import check_deep_common, load_data
from ghostsing.experiments.predictions import Prediction, difference_prediction
from ghostsing.validation import check_choice, check_float

__all__ = ["ParkerHoangConfig", "run", "EXPERIMENTS", "MODELS"]

MODELS = ("cnn", "resnet", "resnet-noskip")


@dataclass(frozen=True)
class ParkerHoangConfig:
    """Settings of ``parker-hoang`` (module docstring)."""

    models: tuple[str, ...] = ("cnn", "resnet")
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    epochs: int = 250
    optimizer: str = "rmsprop"
    lr: float = 1e-3
    momentum: float = 0.0
    rms_alpha: float = 0.9
    eps: float = 1e-7
    batch_size: int | None = 64
    n_train: int | None = 2500
    n_test: int | None = None
    dropout: float = 0.5
    data: str = "real"
    data_root: str | None = None
    level: float = 0.05
    device: str = "auto"
    note: str = ""

    def __post_init__(self) -> None:
        check_deep_common(self)
        if not self.models or len(set(self.models)) != len(self.models):
            raise ValueError(f"models={self.models!r}: give distinct models from {MODELS}")
        for m in self.models:
            check_choice("models", m, MODELS)
        check_float("rms_alpha", self.rms_alpha, 0, 1, low_open=True, high_open=True)
        check_float("eps", self.eps, 0, low_open=True)
        check_float("dropout", self.dropout, 0, 1, high_open=True)


def run(cfg: ParkerHoangConfig, out_dir: Path, *, resume: bool = False, progress: bool = True
        ) -> ExperimentOutput:
    """Train every model over ``cfg.seeds``; predictions, curves, summary (module docstring)."""
    from ghostsing.deepcheck.cnns import CNN_FACTORIES, BatchedModule
    from ghostsing.deepcheck.data import to_tensors
    from ghostsing.deepcheck.nets import count_params
    from ghostsing.deepcheck.training import TrainConfig, evaluate, resolve_device, train
    from ghostsing.plots.deep import plot_training_curves
    from ghostsing.plots.style import save_figure

    out = Path(out_dir)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    data, line = load_data(cfg, "cifar10")
    x_tr, y_tr, x_te, y_te = to_tensors(data, device, layout="nchw")
    tcfg = TrainConfig(optimizer=cfg.optimizer, lr=cfg.lr, epochs=cfg.epochs, batch_size=cfg.batch_size,
                       momentum=cfg.momentum, rms_alpha=cfg.rms_alpha, eps=cfg.eps, eval_train=True)
    runs = {}
    for name in cfg.models:
        factory = functools.partial(CNN_FACTORIES[name], dropout=cfg.dropout)
        model = BatchedModule(factory, cfg.seeds, device=device)
        res = train(model, x_tr, y_tr, x_te, y_te, tcfg, checkpoint=out / "checkpoints" / f"{name}.pt",
                    resume=resume, progress=progress, desc=name, rng_seed=min(cfg.seeds),
                    tag={"model": name, "dropout": cfg.dropout, "data": data.source})
        fl, fa = evaluate(model, x_tr, y_tr, chunk=500)
        fl[res.diverged_epoch >= 0] = np.nan
        runs[name] = {"history": res.history, "final_train_loss": fl, "final_train_acc": fa,
                      "diverged_epoch": res.diverged_epoch, "n_params": count_params(factory()),
                      "wall": res.wall_time_s}
    k = max(1, cfg.epochs // 5)
    preds = _predictions(cfg, runs, k, len(y_tr))
    fig = plot_training_curves({f"{m} ({v['n_params']:,} params)": v["history"] for m, v in runs.items()},
                               f"Parker-Hoang CNNs on {len(y_tr):,} CIFAR-10 images",
                               ("train_loss", "train_loss_eval", "test_loss", "test_acc"))
    figures = save_figure(fig, out, "curves_parker_hoang")
    lines = ["## Runs", "", "| net | params | final train loss (eval) | train acc (eval) | test acc | "
             f"train loss (train mode), last {k} epochs | diverged |",
             "| --- | ---: | --- | ---: | ---: | --- | ---: |"]
    for m, v in runs.items():
        fl = v["final_train_loss"]
        tm = np.nanmean(v["history"]["train_loss"][-k:], axis=0)
        test_acc = np.nanmean(v["history"]["test_acc"][-1])
        lines.append(f"| {m} | {v['n_params']:,} | {np.nanmean(fl):.4f} ± {np.nanstd(fl):.4f} | "
                     f"{np.nanmean(v['final_train_acc']):.3f} | {test_acc:.3f} | "
                     f"{np.nanmean(tm):.4f} ± {np.nanstd(tm):.4f} | "
                     f"{int((v['diverged_epoch'] >= 0).sum())} |")
    lines += ["", f"Data: {line}."]
    arrays = {f"{m}/{key}": v["history"][key] for m, v in runs.items() for key in v["history"]}
    summary = {"data": line, "device": str(device), "note": cfg.note, "average_last_epochs": k,
               "training_wall_time_s": float(sum(v["wall"] for v in runs.values())),
               "runs": [{"model": m, "n_params": v["n_params"], "final_train_loss": v["final_train_loss"],
                         "final_train_acc": v["final_train_acc"], "test_acc": v["history"]["test_acc"][-1]}
                        for m, v in runs.items()]}
    return ExperimentOutput(tuple(preds), tuple(figures), arrays, summary, "\n".join(lines))


def _predictions(cfg: ParkerHoangConfig, runs: dict, k: int, n_train: int) -> list[Prediction]:
    def last(r, key):
        return np.nanmean(r["history"][key][-k:], axis=0)

    preds: list[Prediction] = []
    lvl = {"level": cfg.level}
    if "resnet" in runs and "resnet-noskip" in runs:
        r, a = runs["resnet"], runs["resnet-noskip"]
        for key, mode in (("train_loss", "training mode (dropout on, running mean)"),
                          ("train_loss_eval", "evaluation mode (whole training subset)")):
            preds.append(difference_prediction(
                f"the skips lower the training loss, {mode.split(' (')[0]} [parker-hoang ablation]",
                last(a, key), last(r, key), +1,
                f"training loss in {mode}, mean of the last {k} epochs: without the additions - with them",
                f"The residual CNN with its two additions trains to a lower loss ({mode}) than the same "
                "network (same 223,242 parameters, same initial weights) with the additions removed.", **lvl))
        preds.append(difference_prediction(
            "the skips raise the test accuracy [parker-hoang ablation]", last(r, "test_acc"),
            last(a, "test_acc"), +1,
            f"test accuracy, mean of the last {k} epochs: with - without the additions",
            "The residual CNN generalises better with its two additions than without them.", **lvl))
    if "cnn" in runs and "resnet" in runs:
        c, r = runs["cnn"], runs["resnet"]
        preds.append(difference_prediction(
            "residual CNN reaches lower training loss than the plain CNN [parker-hoang]",
            last(c, "train_loss_eval"), last(r, "train_loss_eval"), +1,
            f"eval-mode training loss, mean of the last {k} epochs: plain CNN - residual CNN",
            f"After {cfg.epochs} epochs of RMSprop on {n_train} CIFAR-10 images the residual CNN (223,242 "
            "parameters) fits the training set better than the plain CNN (418,794). Confounded: the two nets "
            "differ in depth, pooling, dropout placement and size, not only in the skips.", **lvl))
        preds.append(difference_prediction(
            "residual CNN reaches higher test accuracy than the plain CNN [parker-hoang]",
            last(r, "test_acc"), last(c, "test_acc"), +1,
            f"test accuracy, mean of the last {k} epochs: residual - plain",
            "The residual CNN generalises at least as well (the 2022 report: by a negligible margin). "
            "Confounded as above.", **lvl))
    return preds


PRESETS = {
    "parker-hoang": ParkerHoangConfig(),
    "parker-hoang-ablation": ParkerHoangConfig(models=("resnet", "resnet-noskip")),
    "parker-hoang-small": ParkerHoangConfig(models=("resnet", "resnet-noskip"), seeds=(0, 1), epochs=1,
                                            n_train=128, n_test=64, data="synthetic", device="cpu",
                                            note="test size"),
}

EXPERIMENTS = (Experiment("parker-hoang", "Parker & Hoang's CNNs on CIFAR-10, and the skip ablation of their "
                          "residual CNN", "deep", ParkerHoangConfig, run, PRESETS),)
