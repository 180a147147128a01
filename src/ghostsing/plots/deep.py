"""Figures of the deep-network checks (:mod:`ghostsing.experiments.deep_skips`,
:mod:`ghostsing.experiments.deep_parker_hoang`): training curves over seeds, unit-probe profiles over
depth, measures at initialisation against the end of training, time-to-threshold curves, and
within-epoch logs.

Every function takes arrays and returns the Figure (the experiments save it with
:func:`ghostsing.plots.style.save_figure`).  An arm's colour comes from
:func:`ghostsing.plots.style.colour_for` of its label, so ``plain`` or ``residual`` look the same in every
figure of the package.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ghostsing.plots.style import CYCLE, colour_for, style_context

__all__ = ["plot_training_curves", "plot_probe_profiles", "plot_init_vs_end", "plot_time_to_threshold",
           "plot_step_log", "arm_colour", "arm_colours"]

_LABELS = {
    "train_loss": "training loss (cross-entropy, nats)",
    "test_loss": "test loss (nats)",
    "train_acc": "training accuracy",
    "train_loss_eval": "training loss, eval mode (nats)",
    "train_acc_eval": "training accuracy, eval mode",
    "test_acc": "test accuracy",
    "dead_frac": "dead layer outputs h_l",
    "dead_relu_frac": "dead ReLU units a_l",
    "elim_frac": "eliminated (ablation effect <= tol)",
    "contrib_median": "median ablation effect",
    "overlap_both_frac": "overlapping (weights and act.)",
    "overlap_act_frac": "overlapping (layer output)",
    "erank_unit_frac": "effective rank of A_l / width",
    "erank_frac": "effective rank of h_l / width",
    "small_sv_unit_frac": "small singular values of A_l",
    "smin_unit": "s_min / s_max of A_l",
}

#: Base words of arm labels that have a fixed colour in :mod:`ghostsing.plots.style`.
_ARM_WORDS = {"none": "plain", "identity": "residual", "hyper": "hyper-residual"}


def _fixed(label: str) -> str | None:
    skip, _, init = str(label).split(" (")[0].partition("@")
    return colour_for(_ARM_WORDS[skip]) if not init and skip in _ARM_WORDS else None


def arm_colours(labels: Sequence[str]) -> dict[str, str]:
    """Colours of the arms of one figure: plain / residual / hyper-residual arms at the default
    initialisation keep the package's fixed colours (:func:`ghostsing.plots.style.colour_for`); the other
    labels get, in order of appearance, the palette colours the fixed arms do not use, and evenly spaced
    viridis colours when there are more of them than that."""
    out = {lab: _fixed(lab) for lab in labels}
    rest = [lab for lab in labels if out[lab] is None]
    taken = {colour_for(w) for w in _ARM_WORDS.values()}
    free = [c for c in CYCLE if c not in taken]
    if len(rest) > len(free):
        import matplotlib

        cmap = matplotlib.colormaps["viridis"]
        free = [matplotlib.colors.to_hex(cmap(k / max(1, len(rest) - 1) * 0.9)) for k in range(len(rest))]
    for lab, col in zip(rest, free, strict=False):
        out[lab] = col
    return out


def arm_colour(label: str) -> str:
    """Colour of one arm label outside a figure's context: the fixed colour of plain / residual /
    hyper-residual arms, else :func:`ghostsing.plots.style.colour_for` of the label."""
    return _fixed(label) or colour_for(label)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_training_curves(curves: Mapping[str, Mapping[str, np.ndarray]], title: str,
                         metrics: Sequence[str] = ("train_loss", "test_loss", "test_acc")) -> Any:
    """Mean over seeds (line) and min-max band over seeds, one colour per arm, one panel per metric.

    ``curves[label][metric]`` is ``(epochs+1, S)``; NaN entries (diverged nets) are left out.
    """
    plt = _pyplot()
    with style_context():
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4))
        axes = np.atleast_1d(axes)
        colours = arm_colours(list(curves))
        for ax, m in zip(axes, metrics, strict=True):
            for lab, c in curves.items():
                y = np.asarray(c[m], dtype=float)
                ep = np.arange(y.shape[0])
                ok = np.isfinite(y).any(axis=1)
                if not ok.any():
                    continue
                with np.errstate(all="ignore"):
                    mean, lo, hi = np.nanmean(y[ok], 1), np.nanmin(y[ok], 1), np.nanmax(y[ok], 1)
                col = colours[lab]
                ax.plot(ep[ok], mean, color=col, label=f"{lab} (n={y.shape[1]})")
                ax.fill_between(ep[ok], lo, hi, color=col, alpha=0.22, lw=0)
            ax.set_xlabel("epoch")
            ax.set_ylabel(_LABELS.get(m, m))
            if "loss" in m:
                ax.set_yscale("log")
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=7, frameon=False)
        fig.suptitle(title + " (line: mean over seeds, band: min-max)", fontsize=10)
    return fig


def plot_probe_profiles(probes: Mapping[str, Mapping[int, Mapping[str, np.ndarray]]], title: str,
                        metrics: Sequence[str] = ("elim_frac", "dead_relu_frac", "overlap_both_frac",
                                                  "erank_unit_frac")) -> Any:
    """Probe metric against layer, one line per probed epoch (viridis, dark = early), rows = metrics,
    columns = arms.  ``probes[label][epoch][metric]`` is ``(S, depth)``; the line is the mean over seeds."""
    plt = _pyplot()
    arms = list(probes)
    colours = arm_colours(arms)
    with style_context():
        fig, axes = plt.subplots(len(metrics), len(arms), figsize=(2.9 * len(arms), 2.3 * len(metrics)),
                                 sharey="row", squeeze=False)
        cmap = plt.get_cmap("viridis")
        for j, arm in enumerate(arms):
            epochs = sorted(probes[arm])
            for i, m in enumerate(metrics):
                ax = axes[i, j]
                for k, e in enumerate(epochs):
                    arr = np.asarray(probes[arm][e][m], dtype=float)
                    if not np.isfinite(arr).any():
                        continue
                    ax.plot(np.arange(1, arr.shape[1] + 1), np.nanmean(arr, 0), lw=1.3, marker=".", ms=3,
                            color=cmap(k / max(1, len(epochs) - 1)), label=f"epoch {e}")
                ax.grid(alpha=0.3)
                ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
                if i == 0:
                    ax.set_title(arm, fontsize=9, color=colours[arm])
                if i == len(metrics) - 1:
                    ax.set_xlabel("hidden layer l")
                if j == 0:
                    ax.set_ylabel(_LABELS.get(m, m), fontsize=8)
            axes[0, j].legend(fontsize=6, frameon=False)
        fig.suptitle(title + " (mean over seeds)", fontsize=10)
    return fig


def plot_init_vs_end(values: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]], title: str) -> Any:
    """Each measure at initialisation and at the end of training, per seed (dots) and mean (bar edge).

    ``values[metric][arm] = (init (S,), end (S,))``; one panel per metric, arms along x, a grey line joins
    each seed's two values.
    """
    plt = _pyplot()
    metrics = list(values)
    with style_context():
        fig, axes = plt.subplots(1, len(metrics), figsize=(3.3 * len(metrics), 3.4), squeeze=False)
        for ax, m in zip(axes[0], metrics, strict=True):
            arms = list(values[m])
            colours = arm_colours(arms)
            for x, arm in enumerate(arms):
                a0, a1 = (np.asarray(v, dtype=float) for v in values[m][arm])
                col = colours[arm]
                for y0, y1 in zip(a0, a1, strict=True):
                    ax.plot([x - 0.18, x + 0.18], [y0, y1], color="0.7", lw=0.7, zorder=1)
                ax.scatter(np.full(a0.size, x - 0.18), a0, s=12, facecolor="white", edgecolor=col, zorder=2)
                ax.scatter(np.full(a1.size, x + 0.18), a1, s=12, color=col, zorder=2)
            ax.set_xticks(range(len(arms)), arms, rotation=30, ha="right", fontsize=7)
            ax.set_title(_LABELS.get(m, m), fontsize=9)
            ax.grid(alpha=0.3, axis="y")
        axes[0, 0].set_ylabel("layer mean (open: init, filled: end)")
        fig.suptitle(title, fontsize=10)
    return fig


def plot_time_to_threshold(curves: Mapping[str, np.ndarray], thresholds: Sequence[float], title: str) -> Any:
    """Fraction of seeds whose training loss has reached each threshold, against epoch.

    ``curves[arm]`` is the training-loss history ``(epochs+1, S)``; one panel per threshold.
    """
    plt = _pyplot()
    with style_context():
        fig, axes = plt.subplots(1, len(thresholds), figsize=(3.8 * len(thresholds), 3.2), squeeze=False)
        colours = arm_colours(list(curves))
        for ax, thr in zip(axes[0], thresholds, strict=True):
            for arm, y in curves.items():
                y = np.asarray(y, dtype=float)
                reached = np.maximum.accumulate(np.nan_to_num(y, nan=np.inf) <= thr, axis=0)
                ax.step(np.arange(y.shape[0]), reached.mean(1), where="post", color=colours[arm],
                        label=arm)
            ax.set_ylim(-0.03, 1.03)
            ax.set_xlabel("epoch")
            ax.set_title(f"training loss <= {thr:g} nats", fontsize=9)
            ax.grid(alpha=0.3)
        axes[0, 0].set_ylabel("fraction of seeds")
        axes[0, 0].legend(fontsize=7, frameon=False)
        fig.suptitle(title, fontsize=10)
    return fig


def plot_step_log(steps: np.ndarray, series: Mapping[str, np.ndarray], ylabel: str, title: str,
                  xlabel: str = "optimiser step", groups: Mapping[str, tuple[str, str]] | None = None) -> Any:
    """Within-epoch log: ``series[arm]`` is ``(len(steps), S)``; mean over seeds and min-max band.

    ``groups[arm] = (colour group, line-style group)``: arms of one colour group share a colour, arms of
    one line-style group a line style (e.g. optimiser and initialisation by colour, warm-up by style)."""
    plt = _pyplot()
    with style_context():
        fig, ax = plt.subplots(figsize=(6.2, 3.9))
        if groups is None:
            colours, styles = arm_colours(list(series)), dict.fromkeys(series, "-")
        else:
            by_colour = arm_colours(list(dict.fromkeys(g[0] for g in groups.values())))
            by_style = dict(zip(dict.fromkeys(g[1] for g in groups.values()), ("-", "--", ":", "-."),
                                strict=False))
            colours = {a: by_colour[groups[a][0]] for a in series}
            styles = {a: by_style.get(groups[a][1], "-") for a in series}
        for arm, y in series.items():
            y = np.asarray(y, dtype=float)
            col = colours[arm]
            ax.plot(steps, np.nanmean(y, 1), color=col, ls=styles[arm], label=f"{arm} (n={y.shape[1]})",
                    marker=".", ms=3)
            ax.fill_between(steps, np.nanmin(y, 1), np.nanmax(y, 1), color=col, alpha=0.2, lw=0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, frameon=False)
        ax.set_title(title, fontsize=10)
    return fig
