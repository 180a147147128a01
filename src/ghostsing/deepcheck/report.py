"""Run reports: ``report.json``, ``report.md`` and PNG figures in a run folder, all written atomically.

``report.json`` holds ``predictions`` (a list of :meth:`Prediction.to_dict` objects with ``name``,
``verdict``, ``effect``, ``ci`` ``[low, high]``, ``n_seeds`` ...), ``config`` (the resolved settings),
``meta`` (device, torch / ghostsing / Python versions, wall time, data source) and ``summary``.
Experiments return an :class:`ExperimentOutput`; several outputs (e.g. from other experiments' runners)
are merged by :func:`merge_outputs` before writing.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ghostsing._io import to_jsonable as _jsonable
from ghostsing.experiments.predictions import VERDICT_RULES, Prediction

OKABE_ITO: tuple[str, ...] = (
    "#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#000000", "#F0E442",
)  # Okabe-Ito, yellow last (low contrast on white)


@dataclass(frozen=True)
class ExperimentOutput:
    """What an experiment runner returns: predictions, figure file names (relative to the run folder),
    a JSON-ready summary and a Markdown section."""

    predictions: tuple[Prediction, ...] = ()
    figures: tuple[str, ...] = ()
    summary: dict = field(default_factory=dict)
    markdown: str = ""


def as_output(obj) -> ExperimentOutput:
    """Accept an :class:`ExperimentOutput` or a dict with its keys (the hook contract for other runners)."""
    if isinstance(obj, ExperimentOutput):
        return obj
    if isinstance(obj, Mapping):
        preds = tuple(obj.get("predictions", ()))
        for p in preds:
            if not isinstance(p, Prediction):
                raise TypeError(f"predictions must be Prediction objects, got {type(p).__name__}")
        return ExperimentOutput(
            preds, tuple(obj.get("figures", ())), dict(obj.get("summary", {})), str(obj.get("markdown", ""))
        )
    raise TypeError(f"an experiment must return ExperimentOutput or a dict, got {type(obj).__name__}")


def merge_outputs(outputs: Sequence[ExperimentOutput]) -> ExperimentOutput:
    """Concatenate predictions, figures and Markdown; summaries merged key by key."""
    summary: dict = {}
    for o in outputs:
        summary.update(o.summary)
    return ExperimentOutput(
        tuple(p for o in outputs for p in o.predictions),
        tuple(f for o in outputs for f in o.figures),
        summary,
        "\n\n".join(o.markdown for o in outputs if o.markdown),
    )


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and ``os.replace``."""
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    """JSON (non-finite floats as null) written atomically."""
    write_text_atomic(path, json.dumps(_jsonable(obj), indent=2, sort_keys=False) + "\n")


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.{digits}g}"


def write_report(
    out_dir: str | os.PathLike, title: str, config: dict, output: ExperimentOutput, meta: dict
) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.md`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    preds = [p.to_dict() for p in output.predictions]
    doc = {
        "title": title,
        "predictions": preds,
        "config": config,
        "meta": meta,
        "summary": output.summary,
        "figures": list(output.figures),
        "verdict_rules": VERDICT_RULES,
    }
    write_json_atomic(out / "report.json", doc)
    counts = {v: sum(p["verdict"] == v for p in preds) for v in ("holds", "fails", "inconclusive")}
    lines = [f"# {title}", ""]
    if meta.get("note"):
        lines += [f"> **{meta['note']}**", ""]
    lines += [
        f"- device: {meta.get('device')} ({meta.get('device_name', '')}); torch {meta.get('torch_version')}; "
        f"ghostsing {meta.get('ghostsing_version')}; Python {meta.get('python')}",
        f"- wall time: {_fmt(meta.get('wall_time_s'), 4)} s; data: {meta.get('data', 'n/a')}",
        f"- predictions: {counts['holds']} hold, {counts['fails']} fail, "
        f"{counts['inconclusive']} inconclusive",
        "",
        "## Predictions",
        "",
        "| prediction | verdict | effect | 95% CI | seeds | statistic |",
        "| --- | --- | ---: | --- | ---: | --- |",
    ]
    for p in preds:
        lo, hi = p["ci"]
        lines.append(
            f"| {p['name']} | **{p['verdict']}** | {_fmt(p['effect'])} | [{_fmt(lo)}, {_fmt(hi)}] | "
            f"{p['n_seeds']} | {p['statistic']} |"
        )
    lines += ["", VERDICT_RULES, ""]
    if preds:
        lines += ["### What each prediction claims", ""]
        lines += [f"- **{p['name']}**: {p['description']}" for p in preds]
        lines.append("")
    if output.markdown:
        lines += [output.markdown, ""]
    if output.figures:
        lines += ["## Figures", ""] + [f"![{f}]({f})" for f in output.figures] + [""]
    lines += ["## Configuration", "", "```json", json.dumps(_jsonable(config), indent=2), "```", ""]
    write_text_atomic(out / "report.md", "\n".join(lines))
    return out / "report.json", out / "report.md"


def _savefig(fig, path: Path) -> None:
    tmp = path.with_name(path.stem + f".tmp{os.getpid()}.png")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)


def plot_training_curves(
    path: str | os.PathLike,
    curves: Mapping[str, Mapping[str, np.ndarray]],
    title: str,
    metrics: Sequence[str] = ("train_loss", "test_loss", "test_acc"),
) -> None:
    """Mean over seeds (line) and min-max band over seeds, one colour per variant, one panel per metric.

    ``curves[label][metric]`` is ``(epochs+1, S)``; NaN entries (diverged nets) are left out.
    """
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # noqa: PLC0415

    labels = {
        "train_loss": "training loss (cross-entropy, nats)",
        "test_loss": "test loss (nats)",
        "train_acc": "training accuracy",
        "train_loss_eval": "training loss, eval mode (nats)",
        "train_acc_eval": "training accuracy, eval mode",
        "test_acc": "test accuracy",
    }
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), layout="constrained")
    axes = np.atleast_1d(axes)
    for ax, m in zip(axes, metrics, strict=True):
        for i, (lab, c) in enumerate(curves.items()):
            y = np.asarray(c[m], dtype=float)
            ep = np.arange(y.shape[0])
            ok = np.isfinite(y).any(axis=1)
            if not ok.any():
                continue
            with np.errstate(all="ignore"):
                mean, lo, hi = np.nanmean(y[ok], 1), np.nanmin(y[ok], 1), np.nanmax(y[ok], 1)
            col = OKABE_ITO[i % len(OKABE_ITO)]
            ax.plot(ep[ok], mean, color=col, label=f"{lab} (n={y.shape[1]})", lw=1.6)
            ax.fill_between(ep[ok], lo, hi, color=col, alpha=0.22, lw=0)
        ax.set_xlabel("epoch")
        ax.set_ylabel(labels.get(m, m))
        if "loss" in m:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, frameon=False)
    fig.suptitle(title + " (line: mean over seeds, band: min-max)", fontsize=10)
    _savefig(fig, Path(path))
    plt.close(fig)


def plot_probe_curves(
    path: str | os.PathLike,
    probes: Mapping[str, Mapping[int, Mapping[str, np.ndarray]]],
    title: str,
    metrics: Sequence[str] = ("dead_frac", "dead_relu_frac", "overlap_act_frac", "erank_frac"),
) -> None:
    """Probe metric against layer index, one line per probed epoch (viridis), rows = metrics, cols = variants.

    ``probes[label][epoch][metric]`` is ``(S, depth)``; the line is the mean over seeds.
    """
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # noqa: PLC0415

    ylab = {
        "dead_frac": "eliminated (dead) fraction",
        "dead_relu_frac": "dead ReLU (branch) fraction",
        "overlap_act_frac": "overlapping fraction (act.)",
        "overlap_w_frac": "overlapping fraction (weights)",
        "erank_frac": "effective rank / width",
        "small_sv_frac": "fraction of small singular values",
        "small_weight_frac": "small-weight fraction",
    }
    variants = list(probes)
    fig, axes = plt.subplots(
        len(metrics),
        len(variants),
        figsize=(2.9 * len(variants), 2.3 * len(metrics)),
        layout="constrained",
        sharey="row",
        squeeze=False,
    )
    cmap = plt.get_cmap("viridis")
    for j, v in enumerate(variants):
        epochs = sorted(probes[v])
        for i, m in enumerate(metrics):
            ax = axes[i, j]
            for k, e in enumerate(epochs):
                arr = np.asarray(probes[v][e][m], dtype=float)
                col = cmap(k / max(1, len(epochs) - 1))
                ax.plot(
                    np.arange(1, arr.shape[1] + 1),
                    np.nanmean(arr, 0),
                    color=col,
                    lw=1.3,
                    marker=".",
                    ms=3,
                    label=f"epoch {e}",
                )
            ax.grid(alpha=0.3)
            if i == 0:
                ax.set_title(v, fontsize=9)
            if i == len(metrics) - 1:
                ax.set_xlabel("hidden layer l")
            if j == 0:
                ax.set_ylabel(ylab.get(m, m), fontsize=8)
        axes[0, j].legend(fontsize=6, frameon=False)
    fig.suptitle(title + " (mean over seeds)", fontsize=10)
    _savefig(fig, Path(path))
    plt.close(fig)
