r"""Ensemble curves and plateau statistics.

* :func:`plot_loss_bands` — median and quantile bands of ensemble loss curves :math:`L(t)` on a log time
  axis (one colour per ensemble), with the saddle value :math:`L_s` as a dashed line;
* :func:`plot_histograms` — plateau-length histograms (one per ensemble, shared bins);
* :func:`plot_scaling` — plateau length against epsilon or alpha (median with quartile bars over an
  ensemble, all points faint) with fitted laws and their bootstrap confidence bands;
* :func:`plot_sgd_vs_ode` — on-line SGD (mean and spread over seeds) against the ODE prediction, time in
  :math:`\alpha_{\rm SGD} = \text{steps}/N`.

All functions take arrays and return the Figure (constrained layout, Okabe–Ito colours).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from ghostsing.plots.style import CYCLE, OKABE_ITO, style_context

TIME_LABEL = r"time $t$ (gradient-flow units)"


def _quantile_band(L: np.ndarray, q: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    L = np.asarray(L, dtype=np.float64)
    if L.ndim != 2:
        raise ValueError(f"loss array has shape {L.shape}; allowed: (n, T)")
    with np.errstate(all="ignore"):
        med = np.nanmedian(L, axis=0)
        lo, hi = np.nanquantile(L, q, axis=0)
    return med, lo, hi


def plot_loss_bands(
    t: np.ndarray,
    ensembles: Mapping[str, np.ndarray],
    L_s: float | None = None,
    quantiles: tuple[float, float] = (0.1, 0.9),
    logy: bool = True,
    title: str = "",
    ymin: float | None = None,
    figsize: tuple[float, float] = (6.0, 4.0),
):
    """Median (line) and ``quantiles`` band (shaded) of each ensemble's loss curves, log time axis.

    ``t`` (T,) save times (t = 0 is dropped from the log axis); ``ensembles`` label -> (n, T) losses;
    ``ymin`` a lower limit of the loss axis (converged runs would otherwise stretch it to 1e-16).
    """
    t = np.asarray(t, dtype=np.float64)
    if not ensembles:
        raise ValueError("ensembles is empty; allowed: at least one label -> (n, T) array")
    with style_context():
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
        keep = t > 0
        for k, (label, L) in enumerate(ensembles.items()):
            L = np.asarray(L, dtype=np.float64)
            if L.ndim != 2 or L.shape[1] != t.size:
                raise ValueError(f"ensemble {label!r} has shape {L.shape}; allowed: (n, {t.size})")
            med, lo, hi = _quantile_band(L, quantiles)
            c = CYCLE[k % len(CYCLE)]
            ax.fill_between(t[keep], lo[keep], hi[keep], color=c, alpha=0.25, lw=0)
            ax.plot(t[keep], med[keep], color=c, label=f"{label} (n={L.shape[0]})")
        if L_s is not None:
            ax.axhline(L_s, color="0.45", ls=":", lw=1.2, label=r"saddle value $L_s$", zorder=1)
        ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        if ymin is not None:
            ax.set_ylim(bottom=ymin)
        ax.set_xlabel(TIME_LABEL)
        ax.set_ylabel(r"loss $L(t)$")
        q0, q1 = (int(round(100 * q)) for q in quantiles)
        ax.set_title(title or f"median and {q0}–{q1}% band")
        ax.legend(loc="lower left")
    return fig


def plot_histograms(
    samples: Mapping[str, np.ndarray],
    bins: int = 30,
    xlabel: str = r"plateau length $\tau$ (gradient-flow time)",
    title: str = "",
    figsize: tuple[float, float] = (6.0, 4.0),
):
    """Histograms of plateau lengths, one per label, on shared bins; censored (non-finite) runs are
    counted in the legend."""
    if not samples:
        raise ValueError("samples is empty; allowed: at least one label -> array of lengths")
    finite = {k: np.asarray(v, dtype=np.float64)[np.isfinite(v)] for k, v in samples.items()}
    allv = np.concatenate(list(finite.values()))
    if allv.size == 0:
        raise ValueError("no finite plateau length; allowed: at least one escaped trajectory")
    edges = np.histogram_bin_edges(allv, bins=bins)
    with style_context():
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
        for k, (label, v) in enumerate(finite.items()):
            n_all = np.asarray(samples[label]).size
            cens = n_all - v.size
            extra = f", {cens} censored" if cens else ""
            ax.hist(v, bins=edges, color=CYCLE[k % len(CYCLE)], alpha=0.55, histtype="stepfilled",
                    ec=CYCLE[k % len(CYCLE)], label=f"{label} (n={n_all}{extra})")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("count (trajectories)")
        ax.set_title(title)
        ax.legend()
    return fig


def plot_scaling(
    x: np.ndarray,
    tau: np.ndarray,
    fits: Mapping[str, object] | None = None,
    xlabel: str = r"distance $\varepsilon$ of the start from the manifold",
    ylabel: str = r"plateau length $\tau$ (gradient-flow time)",
    logx: bool = True,
    logy: bool = False,
    title: str = "",
    reference: tuple[np.ndarray, np.ndarray, str] | None = None,
    figsize: tuple[float, float] = (6.0, 4.2),
):
    """Plateau length against a control parameter, with fitted laws and CI bands.

    ``x``, ``tau`` : paired samples (several per x allowed; censored tau = nan are dropped).
    ``fits`` : label -> :class:`ghostsing.simulate.scaling_fits.FitResult` (drawn with its bootstrap band).
    ``reference`` : optional ``(x, y, label)`` theory curve (dashed black).
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    tau = np.asarray(tau, dtype=np.float64).ravel()
    if x.shape != tau.shape:
        raise ValueError(f"x has {x.size} entries and tau {tau.size}; allowed: equal lengths")
    ok = np.isfinite(x) & np.isfinite(tau)
    with style_context():
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
        ax.plot(x[ok], tau[ok], ".", color=OKABE_ITO["skyblue"], alpha=0.5, ms=4, label="trajectories")
        ux = np.unique(x[ok])
        med = np.array([np.median(tau[ok][x[ok] == u]) for u in ux])
        q1 = np.array([np.quantile(tau[ok][x[ok] == u], 0.25) for u in ux])
        q3 = np.array([np.quantile(tau[ok][x[ok] == u], 0.75) for u in ux])
        ax.errorbar(ux, med, yerr=[med - q1, q3 - med], fmt="o", color=OKABE_ITO["black"], ms=4,
                    capsize=2, label="median, quartiles", zorder=5)
        xs = np.geomspace(ux.min(), ux.max(), 200) if logx else np.linspace(ux.min(), ux.max(), 200)
        colors = (OKABE_ITO["vermillion"], OKABE_ITO["green"], OKABE_ITO["purple"])
        for k, (label, fit) in enumerate((fits or {}).items()):
            c = colors[k % len(colors)]
            lo, hi = fit.band(xs)
            ax.fill_between(xs, lo, hi, color=c, alpha=0.2, lw=0)
            ax.plot(xs, fit.predict(xs), color=c, label=label)
        if reference is not None:
            rx, ry, rl = reference
            ax.plot(rx, ry, "--", color=OKABE_ITO["black"], lw=1.0, label=rl)
        if logx:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels collide on short decades
            if ux.size and np.log10(ux.max() / ux.min()) < 2.5:  # short range: label 1, 2, 5 x 10^k
                ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
                ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        if logy:
            ax.set_yscale("log")
            pos = tau[ok & (tau > 0)]
            if pos.size:
                ax.set_ylim(pos.min() / 2.0, pos.max() * 2.0)
        else:
            span = np.ptp(tau[ok]) if ok.any() else 1.0
            ax.set_ylim(tau[ok].min() - 0.15 * span, tau[ok].max() + 0.15 * span)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize=8)
    return fig


def plot_sgd_vs_ode(
    alpha_sgd: np.ndarray,
    sgd_runs: np.ndarray,
    alpha_ode: np.ndarray,
    ode: np.ndarray,
    ylabel: str = r"generalisation error $\epsilon_g$",
    label_sgd: str = "on-line SGD",
    label_ode: str = "order-parameter ODE",
    extra: Sequence[tuple[np.ndarray, np.ndarray, str]] = (),
    title: str = "",
    logy: bool = True,
    figsize: tuple[float, float] = (6.0, 4.0),
):
    """SGD runs (n_seeds, T) at times ``alpha_sgd = steps/N``: mean line and min–max band, against
    the ODE curve ``ode`` at ``alpha_ode``; ``extra`` adds (x, y, label) curves (e.g. the plateau value)."""
    runs = np.atleast_2d(np.asarray(sgd_runs, dtype=np.float64))
    a = np.asarray(alpha_sgd, dtype=np.float64)
    if runs.shape[1] != a.size:
        raise ValueError(f"sgd_runs has shape {runs.shape}; allowed: (n_seeds, {a.size})")
    with style_context():
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
        ax.fill_between(a, runs.min(axis=0), runs.max(axis=0), color=OKABE_ITO["skyblue"], alpha=0.35, lw=0,
                        label=f"{label_sgd}: min–max over {runs.shape[0]} seeds")
        ax.plot(a, runs.mean(axis=0), color=OKABE_ITO["blue"], label=f"{label_sgd}: mean")
        ax.plot(alpha_ode, ode, "--", color=OKABE_ITO["vermillion"], label=label_ode)
        for k, (x, y, lab) in enumerate(extra):
            ax.plot(x, y, ":", color=(OKABE_ITO["black"], OKABE_ITO["green"])[k % 2], label=lab)
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel(r"training time $\alpha_{\rm SGD}$ = steps / $N$")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend()
    return fig
