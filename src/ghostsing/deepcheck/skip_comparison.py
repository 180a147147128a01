"""The ``skip_comparison`` experiment: deep MLPs with different skips on CIFAR, probed and compared.

For every dataset and depth, the networks of all seeds and all skips with a diagonal skip matrix
(none, identity, lowrank:k, scaled:alpha) are trained together as one
:class:`~ghostsing.deepcheck.nets.BatchedMLP`; orthogonal and hyper-residual nets form their own
batched models. Unit probes (:mod:`ghostsing.deepcheck.probes.units`) run on ``n_probe`` fixed
training images at ``probe_epochs``.

Predictions (per dataset; loss = cross-entropy of the final network on the whole training subset,
probe statistic = mean over hidden layers at the last probed epoch, per seed):

1. ``residual lower training loss`` — ``E = mean L(plain) - mean L(identity) > 0``.
2. ``hyper-residual lower training loss`` — ``E = mean L(plain) - mean L(hyper) > 0``.
3. ``plain more eliminated units`` — ``E = dead_frac(plain) - dead_frac(identity) > 0`` (layer
   outputs, what the next layer sees), and ``plain more dead ReLU units`` on the ReLU branches
   ``dead_relu_frac`` (a stricter test: the skip does not by itself keep a ReLU alive).
4. ``plain more overlapping units`` — ``E = overlap_act_frac(plain) - overlap_act_frac(identity) > 0``.
5. ``plain lower effective rank`` — ``E = erank_frac(plain) - erank_frac(identity) < 0``.
6. ``degenerate skip trains worse`` (when at least 3 of none / lowrank:k / identity are present) —
   Spearman ``rho(k, L) < 0`` with ``k = 0`` for none and ``k = width`` for identity.
7. ``skip advantage grows with depth`` (two or more depths) — ``E = [L(plain) - L(identity)]_{deepest}
   - [L(plain) - L(identity)]_{shallowest} > 0``.

Predictions 1-5 are made at the deepest depth (the one the theory is about) and listed for each depth.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ghostsing.deepcheck.data import load_for_run, to_tensors
from ghostsing.deepcheck.nets import BatchedMLP, MLPConfig, batch_groups, parse_skip
from ghostsing.deepcheck.presets import SkipComparisonConfig
from ghostsing.deepcheck.probes.units import ProbeConfig, probe_mlp
from ghostsing.deepcheck.report import ExperimentOutput, plot_probe_curves, plot_training_curves
from ghostsing.deepcheck.training import TrainConfig, evaluate, resolve_device, train
from ghostsing.experiments.predictions import (
    Prediction,
    bootstrap_ci,
    difference_prediction,
    spearman_prediction,
    verdict_from_ci,
)

PROBE_STATS = (
    "dead_frac",
    "dead_relu_frac",
    "small_weight_frac",
    "overlap_act_frac",
    "overlap_w_frac",
    "erank_frac",
    "small_sv_frac",
)


def _probe(model, x, pcfg):
    return probe_mlp(model, x, pcfg)


def _train_config(cfg: SkipComparisonConfig) -> TrainConfig:
    probe_epochs = tuple(sorted({e for e in cfg.probe_epochs if e <= cfg.epochs} | {0, cfg.epochs}))
    return TrainConfig(
        optimizer=cfg.optimizer,
        lr=cfg.lr,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        momentum=cfg.momentum,
        probe_epochs=probe_epochs,
    )


def run(
    cfg: SkipComparisonConfig,
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
    data_root: str | os.PathLike | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[int], None] | None = None,
) -> ExperimentOutput:
    """Train, probe and compare; writes checkpoints, ``arrays.npz`` and figures into ``out_dir``."""
    out = Path(out_dir)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    tcfg = _train_config(cfg)
    pcfg = ProbeConfig(cfg.act_tol, cfg.weight_frac, cfg.cos_threshold, cfg.rank_rel_tol, cfg.n_probe)
    seeds = list(cfg.seeds)
    runs: dict[tuple[str, int, str], dict] = {}
    data_info = {}
    for ds in cfg.datasets:
        data = load_for_run(ds, cfg.data, data_root, cfg.n_train, cfg.n_test)
        data_info[ds] = {
            "source": data.source,
            "n_train": int(len(data.y_train)),
            "n_test": int(len(data.y_test)),
            "n_classes": data.n_classes,
        }
        x_tr, y_tr, x_te, y_te = to_tensors(data, device)
        x_probe = x_tr[: min(cfg.n_probe, len(x_tr))]
        for depth in cfg.depths:
            net_cfg = MLPConfig(
                depth=depth, width=cfg.width, in_dim=x_tr.shape[1], n_classes=data.n_classes, init=cfg.init
            )
            for gi, group in enumerate(batch_groups(list(cfg.skips))):
                skips = [s for s in group for _ in seeds]
                model = BatchedMLP(net_cfg, seeds * len(group), skips, device=device)
                res = train(
                    model,
                    x_tr,
                    y_tr,
                    x_te,
                    y_te,
                    tcfg,
                    checkpoint=out / "checkpoints" / f"{ds}_d{depth}_g{gi}.pt",
                    resume=resume,
                    probe_fn=functools.partial(_probe, x=x_probe, pcfg=pcfg),
                    on_epoch_end=on_epoch_end,
                    progress=progress,
                    desc=f"{ds} depth {depth} [{', '.join(group)}]",
                    tag={"dataset": ds, "data": data.source, "probe": pcfg.to_dict()},
                )
                final_loss, final_acc = evaluate(model, x_tr, y_tr)
                final_loss[res.diverged_epoch >= 0] = np.nan
                S = len(seeds)
                for j, sk in enumerate(group):
                    sl = slice(j * S, (j + 1) * S)
                    runs[(ds, depth, sk)] = {
                        "history": {k: v[:, sl] for k, v in res.history.items()},
                        "probes": {e: {m: a[sl] for m, a in d.items()} for e, d in res.probes.items()},
                        "final_train_loss": final_loss[sl],
                        "final_train_acc": final_acc[sl],
                        "diverged_epoch": res.diverged_epoch[sl],
                        "wall_time_s": res.wall_time_s,
                    }
    _save_arrays(out / "arrays.npz", runs)
    preds = _predictions(cfg, runs)
    figures = _figures(cfg, runs, out)
    summary = {
        "data": data_info,
        "runs": [
            {
                "dataset": ds,
                "depth": d,
                "skip": sk,
                "seeds": seeds,
                "final_train_loss": r["final_train_loss"],
                "final_train_acc": r["final_train_acc"],
                "final_test_acc": r["history"]["test_acc"][-1],
                "diverged_epoch": r["diverged_epoch"],
                "probe_layer_mean_last_epoch": {
                    m: np.nanmean(r["probes"][max(r["probes"])][m], axis=1) for m in PROBE_STATS
                },
            }
            for (ds, d, sk), r in runs.items()
        ],
    }
    return ExperimentOutput(tuple(preds), tuple(figures), summary, _markdown(cfg, runs, data_info))


def _save_arrays(path: Path, runs: dict) -> None:
    arrays = {}
    for (ds, d, sk), r in runs.items():
        key = f"{ds}/d{d}/{sk}"
        for k, v in r["history"].items():
            arrays[f"{key}/{k}"] = v
        for e, dd in r["probes"].items():
            for m, a in dd.items():
                arrays[f"{key}/probe/e{e}/{m}"] = a
    tmp = path.with_name(path.stem + f".tmp{os.getpid()}.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def _probe_stat(r: dict, metric: str) -> np.ndarray:
    last = max(r["probes"])
    return np.nanmean(r["probes"][last][metric], axis=1)


def _predictions(cfg: SkipComparisonConfig, runs: dict) -> list[Prediction]:
    preds: list[Prediction] = []
    deep = max(cfg.depths)
    for ds in cfg.datasets:
        for depth in sorted(cfg.depths, reverse=True):
            tag = f"[{ds}, depth {depth}, width {cfg.width}]"
            plain = runs.get((ds, depth, "none"))
            for sk, label in (("identity", "residual"), ("hyper", "hyper-residual")):
                other = runs.get((ds, depth, sk))
                if plain is None or other is None:
                    continue
                preds.append(
                    difference_prediction(
                        f"{label} nets reach lower training loss than plain {tag}",
                        plain["final_train_loss"],
                        other["final_train_loss"],
                        +1,
                        f"mean final training loss (plain) - mean (skip={sk})",
                        f"{label.capitalize()} MLPs train to a lower cross-entropy on the training set than "
                        "plain "
                        f"MLPs of the same depth and width after {cfg.epochs} epochs.",
                    )
                )
            res = runs.get((ds, depth, "identity"))
            if plain is None or res is None or depth != deep:
                continue
            for metric, sign, short, what in (
                ("dead_frac", +1, "more eliminated units",
                 "more eliminated (dead on every probe input) units"),
                ("dead_relu_frac", +1, "more dead ReLU units",
                 "more dead ReLU units (branch a_l zero on every probe input; a skip can keep the unit's "
                 "output alive, this asks whether the ReLU itself dies)"),
                ("overlap_act_frac", +1, "more overlapping units",
                 "more overlapping units (activation cosine > threshold)"),
                ("erank_frac", -1, "lower effective rank", "lower effective rank of the hidden activations"),
            ):
                preds.append(
                    difference_prediction(
                        f"plain nets have {short} than residual nets {tag}",
                        _probe_stat(plain, metric),
                        _probe_stat(res, metric),
                        sign,
                        f"layer-mean {metric} at the last probed epoch (plain) - (residual)",
                        f"Plain nets have {what} than residual nets (mean over hidden layers, last probe).",
                        details={"metric": metric},
                    )
                )
        # degeneracy sweep
        levels, groups = [], []
        for sk in cfg.skips:
            sp = parse_skip(sk)
            k = {"none": 0, "identity": cfg.width}.get(sp.kind, sp.k if sp.kind == "lowrank" else None)
            if k is not None and (ds, deep, sk) in runs:
                levels.append(k)
                groups.append(runs[(ds, deep, sk)]["final_train_loss"])
        if len(set(levels)) >= 3:
            preds.append(
                spearman_prediction(
                    f"more degenerate skips train worse (lowrank:k sweep) [{ds}, depth {deep}]",
                    levels,
                    groups,
                    -1,
                    "Spearman rho between skip rank k and final training loss (k=0 plain, k=width identity)",
                    "Keeping only k of the identity skip's diagonal ones (a degenerate skip) raises the "
                    "final "
                    "training loss as k falls.",
                )
            )
        shallow = min(cfg.depths)
        keys = [(ds, d, s) for d in (deep, shallow) for s in ("none", "identity")]
        if deep != shallow and all(k in runs for k in keys):
            g = [runs[k]["final_train_loss"] for k in keys]
            effect, ci = bootstrap_ci(g, lambda a, b, c, d: (a.mean() - b.mean()) - (c.mean() - d.mean()))
            preds.append(
                Prediction(
                    f"skip advantage grows with depth [{ds}, depth {shallow} -> {deep}]",
                    verdict_from_ci(ci, +1),
                    effect,
                    ci,
                    min(len(x) for x in g),
                    "[L(plain) - L(residual)] at the deepest minus at the shallowest depth",
                    "The training-loss advantage of residual over plain nets is larger for deeper nets.",
                    +1,
                    {
                        "advantage_deep": float(g[0].mean() - g[1].mean()),
                        "advantage_shallow": float(g[2].mean() - g[3].mean()),
                    },
                )
            )
    return preds


def _figures(cfg: SkipComparisonConfig, runs: dict, out: Path) -> list[str]:
    figs = []
    for ds in cfg.datasets:
        for depth in cfg.depths:
            curves = {sk: runs[(ds, depth, sk)]["history"] for sk in cfg.skips if (ds, depth, sk) in runs}
            name = f"curves_{ds}_d{depth}.png"
            plot_training_curves(out / name, curves, f"{ds}, depth {depth}, width {cfg.width}")
            figs.append(name)
            probes = {sk: runs[(ds, depth, sk)]["probes"] for sk in cfg.skips if (ds, depth, sk) in runs}
            name = f"probes_{ds}_d{depth}.png"
            plot_probe_curves(out / name, probes, f"unit probes, {ds}, depth {depth}")
            figs.append(name)
    return figs


def _markdown(cfg: SkipComparisonConfig, runs: dict, data_info: dict) -> str:
    lines = [
        "## Runs",
        "",
        "| data | depth | skip | final train loss (mean ± sd) | train acc | test acc | "
        "dead | dead ReLU | overlap (act.) | erank/width | diverged |",
        "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (ds, d, sk), r in runs.items():
        fl = r["final_train_loss"]
        lines.append(
            f"| {ds} | {d} | {sk} | {np.nanmean(fl):.4f} ± {np.nanstd(fl):.4f} | "
            f"{np.nanmean(r['final_train_acc']):.3f} | {np.nanmean(r['history']['test_acc'][-1]):.3f} | "
            f"{np.nanmean(_probe_stat(r, 'dead_frac')):.3f} | "
            f"{np.nanmean(_probe_stat(r, 'dead_relu_frac')):.3f} | "
            f"{np.nanmean(_probe_stat(r, 'overlap_act_frac')):.3f} | "
            f"{np.nanmean(_probe_stat(r, 'erank_frac')):.3f} | {int((r['diverged_epoch'] >= 0).sum())} |"
        )
    lines += [
        "",
        "Data: "
        + "; ".join(
            f"{k}: {v['source']} ({v['n_train']} train / {v['n_test']} test)" for k, v in data_info.items()
        ),
        "",
        "Probe definitions (thresholds in the configuration): a unit is *eliminated* when its layer "
        f"output is <= {cfg.act_tol} on all {cfg.n_probe} probe images; two units *overlap* when the cosine "
        f"of their activation vectors exceeds {cfg.cos_threshold}; *erank* is exp(entropy of the normalised "
        "singular values) of the layer's activation matrix, divided by the width.",
    ]
    return "\n".join(lines)
