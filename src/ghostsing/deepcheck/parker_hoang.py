"""The ``parker_hoang`` experiment: the plain and residual CNNs of the 2022 course report on CIFAR-10.

Both nets (:func:`~ghostsing.deepcheck.nets.parker_hoang_cnn`, 418,794 parameters, and
:func:`~ghostsing.deepcheck.nets.parker_hoang_resnet`, 223,242) are trained on the first ``n_train``
CIFAR-10 training images with RMSprop and mini-batches of 64, all seeds of one net batched with
``vmap``. The report's claims, as predictions over seeds:

1. ``residual CNN reaches lower training loss`` — ``E = mean L(cnn) - mean L(resnet) > 0``, ``L`` the
   cross-entropy on the whole training subset in evaluation mode (no dropout) averaged over the last
   ``max(1, epochs // 5)`` epochs (single epochs spike under RMSprop);
2. ``residual CNN reaches higher test accuracy`` — ``E = mean acc(resnet) - mean acc(cnn) > 0``, the
   test accuracy averaged over the same epochs (the report calls the margin negligible).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ghostsing.deepcheck.data import load_for_run, to_tensors
from ghostsing.deepcheck.nets import CNN_FACTORIES, BatchedModule, count_params
from ghostsing.deepcheck.presets import ParkerHoangConfig
from ghostsing.deepcheck.report import ExperimentOutput, plot_training_curves
from ghostsing.deepcheck.training import TrainConfig, evaluate, resolve_device, train
from ghostsing.experiments.predictions import difference_prediction


def run(
    cfg: ParkerHoangConfig,
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
    data_root: str | os.PathLike | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[int], None] | None = None,
) -> ExperimentOutput:
    """Train both CNNs over ``cfg.seeds``; returns predictions, curves and a summary."""
    out = Path(out_dir)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    data = load_for_run("cifar10", cfg.data, data_root, cfg.n_train, cfg.n_test)
    x_tr, y_tr, x_te, y_te = to_tensors(data, device, layout="nchw")
    tcfg = TrainConfig(
        optimizer=cfg.optimizer,
        lr=cfg.lr,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        momentum=cfg.momentum,
        rms_alpha=cfg.rms_alpha,
        eps=cfg.eps,
        eval_train=True,
    )
    runs = {}
    for name in cfg.models:
        factory = functools.partial(CNN_FACTORIES[name], dropout=cfg.dropout)
        model = BatchedModule(factory, cfg.seeds, device=device)
        res = train(
            model,
            x_tr,
            y_tr,
            x_te,
            y_te,
            tcfg,
            checkpoint=out / "checkpoints" / f"{name}.pt",
            resume=resume,
            on_epoch_end=on_epoch_end,
            progress=progress,
            desc=name,
            rng_seed=min(cfg.seeds),
            tag={"model": name, "dropout": cfg.dropout, "data": data.source},
        )
        fl, fa = evaluate(model, x_tr, y_tr, chunk=500)
        fl[res.diverged_epoch >= 0] = np.nan
        runs[name] = {
            "history": res.history,
            "final_train_loss": fl,
            "final_train_acc": fa,
            "diverged_epoch": res.diverged_epoch,
            "n_params": count_params(factory()),
            "wall_time_s": res.wall_time_s,
        }
    preds = []
    k = max(1, cfg.epochs // 5)  # average the last k epochs: RMSprop makes single epochs spiky
    if "cnn" in runs and "resnet" in runs:
        c, r = runs["cnn"], runs["resnet"]

        def last(run, key):
            return np.nanmean(run["history"][key][-k:], axis=0)

        preds.append(
            difference_prediction(
                "residual CNN reaches lower training loss than the plain CNN [parker-hoang]",
                last(c, "train_loss_eval"),
                last(r, "train_loss_eval"),
                +1,
                f"mean over seeds of the eval-mode training loss averaged over the last {k} epochs: "
                "plain CNN - residual CNN",
                f"After {cfg.epochs} epochs of RMSprop on {len(y_tr)} CIFAR-10 images the residual CNN "
                "(223,242 parameters) fits the training set better than the plain CNN (418,794).",
            )
        )
        preds.append(
            difference_prediction(
                "residual CNN reaches higher test accuracy than the plain CNN [parker-hoang]",
                last(r, "test_acc"),
                last(c, "test_acc"),
                +1,
                f"mean over seeds of the test accuracy averaged over the last {k} epochs: residual - plain",
                "The residual CNN generalises at least as well (the 2022 report: by a negligible margin).",
            )
        )
    name = "curves_parker_hoang.png"
    plot_training_curves(
        out / name,
        {f"{k} ({v['n_params']:,} params)": v["history"] for k, v in runs.items()},
        f"2022 CNNs on {len(y_tr)} CIFAR-10 images",
        metrics=("train_loss", "train_loss_eval", "test_loss", "test_acc"),
    )
    lines = [
        "## Runs",
        "",
        "| net | params | final train loss (eval) | train acc | test acc | diverged |",
        "| --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for k, v in runs.items():
        fl = v["final_train_loss"]
        lines.append(
            f"| {k} | {v['n_params']:,} | {np.nanmean(fl):.4f} ± {np.nanstd(fl):.4f} | "
            f"{np.nanmean(v['final_train_acc']):.3f} | {np.nanmean(v['history']['test_acc'][-1]):.3f} | "
            f"{int((v['diverged_epoch'] >= 0).sum())} |"
        )
    lines += ["", f"Data: {data.source} ({len(y_tr)} train / {len(y_te)} test)."]
    summary = {
        "data": {"source": data.source, "n_train": len(y_tr), "n_test": len(y_te)},
        "runs": [
            {
                "model": k,
                "n_params": v["n_params"],
                "final_train_loss": v["final_train_loss"],
                "final_train_acc": v["final_train_acc"],
                "test_acc": v["history"]["test_acc"][-1],
                "train_loss_curve_mean": np.nanmean(v["history"]["train_loss"], axis=1),
                "test_acc_curve_mean": np.nanmean(v["history"]["test_acc"], axis=1),
            }
            for k, v in runs.items()
        ],
    }
    return ExperimentOutput(tuple(preds), (name,), summary, "\n".join(lines))
