"""Figures of the ghost-set studies (:mod:`ghostsing.experiments.ghost_sets`): the degenerate passage over
three decades of alpha, the elimination sets under skips, and the N dependence of the SGD noise drift.

Colours from :mod:`ghostsing.plots.style` (Okabe–Ito); every axis labelled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ghostsing.plots.style import CYCLE, OKABE_ITO, colour_for, style_context

__all__ = ["plot_degenerate_deep", "plot_elimination_sets", "plot_noise_n"]


def plot_degenerate_deep(alphas: np.ndarray, tau: np.ndarray, predicted: np.ndarray, leading: np.ndarray,
                         kappa: float, z0: float, title: str = ""):
    """Left: ``tau alpha^2`` of every start against alpha with the scaled reduction's prediction (no
    free parameter) and its leading term ``c^-1 ln(kappa/(alpha z0))``; right: measured minus predicted
    ``tau alpha^2`` (the O(1) offset in ``T = alpha^2 t``), mean and the spread of the starts."""
    import matplotlib.pyplot as plt

    al = np.asarray(alphas, dtype=float)
    T = tau * al[:, None] ** 2
    with style_context():
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10.5, 4.0))
        for r in range(T.shape[1]):
            a1.plot(al, T[:, r], "o", ms=4, color=colour_for("degenerate"), alpha=0.7,
                    label="measured (each start)" if r == 0 else None)
        ok = np.isfinite(predicted)
        a1.plot(al[ok], predicted[ok], "-", color=colour_for("theory"),
                label="scaled reduction (computed c, kappa)")
        a1.plot(al[ok], leading[ok], "--", color=OKABE_ITO["skyblue"],
                label="leading term c^-1 ln(kappa/(alpha z0))")
        a1.axvline(kappa / z0, color=OKABE_ITO["orange"], ls=":",
                   label="alpha z0 = kappa (start past the fold)")
        a1.set_xscale("log")
        a1.set_xlabel("skip strength alpha")
        a1.set_ylabel("escape time x alpha^2  (tau alpha^2)")
        a1.legend(loc="lower left")
        d = T[ok] - predicted[ok, None]
        err = np.nanstd(d, axis=1, ddof=1) if d.shape[1] > 1 else None
        a2.errorbar(al[ok], np.nanmean(d, axis=1), yerr=err, fmt="o-", color=colour_for("degenerate"),
                    capsize=3, label="measured - predicted (mean, sd over starts)")
        a2.axhline(0, color=colour_for("theory"), lw=0.8)
        a2.set_xscale("log")
        a2.set_xlabel("skip strength alpha")
        a2.set_ylabel("tau alpha^2 measured - predicted")
        a2.legend(loc="best")
        if title:
            fig.suptitle(title)
    return fig


def plot_elimination_sets(h_curves: Mapping[str, tuple[np.ndarray, np.ndarray, Sequence[float]]],
                          moves: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str = ""):
    """Left: ``h_alpha(J) = -dL/dw_i`` on ``{w_i = 0}`` (its zeros are the critical points on the set) for
    several alpha; right: how far each zero has moved from its alpha = 0 position, against alpha
    (log-log, with a slope-1 guide)."""
    import matplotlib.pyplot as plt

    with style_context():
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10.5, 4.0))
        for k, (label, (J, h, roots)) in enumerate(h_curves.items()):
            col = CYCLE[k % len(CYCLE)]
            a1.plot(J, h, color=col, label=label)
            a1.plot(roots, np.zeros(len(roots)), "o", color=col, mfc="none")
        a1.axhline(0, color="k", lw=0.6)
        a1.set_xlabel("free coordinate J_i on {w_i = 0}")
        a1.set_ylabel("h_alpha(J_i) = -dL/dw_i  (zeros: critical points)")
        a1.legend(loc="best")
        allx = []
        for k, (label, (al, dist, _p)) in enumerate(moves.items()):
            ok = np.isfinite(dist) & (dist > 0)
            a2.loglog(al[ok], dist[ok], "o-", color=CYCLE[k % len(CYCLE)], label=label)
            allx.extend(al[ok])
        if allx:
            x = np.array(sorted(set(allx)))
            a2.loglog(x, 0.5 * x / x.max(), "--", color=colour_for("theory"), label="slope 1")
            a2.loglog(x, 2.0 * np.sqrt(x / x.max()), ":", color=colour_for("theory"), label="slope 1/2")
        a2.set_xlabel("skip strength alpha")
        a2.set_ylabel("|J_i*(alpha) - J_i*(0)| of a critical point")
        a2.legend(loc="best", fontsize=7.5)
        if title:
            fig.suptitle(title)
    return fig


def plot_noise_n(rows: Sequence[dict], r: np.ndarray, G: Mapping[int, np.ndarray], title: str = ""):
    """``eta tau`` against ``alpha v1 / eta`` for each input dimension N (markers: on-line SGD, lines: the
    prediction ``G_N(r) = int dz / (r + q_N(z))`` with the derived noise drift ``q_N``)."""
    import matplotlib.pyplot as plt

    with style_context():
        fig, ax = plt.subplots(figsize=(6.2, 4.4))
        Ns = sorted(G)
        for k, N in enumerate(Ns):
            col = CYCLE[k % len(CYCLE)]
            ax.loglog(r, G[N], "-", color=col, label=f"N = {N}: derived q_N")
            sel = [x for x in rows if x["N"] == N and np.isfinite(x["tau_mean"])]
            rr = np.array([max(x["r"], r[0]) for x in sel])
            ax.loglog(rr, [x["eta"] * x["tau_mean"] for x in sel], "o", color=col, mfc="none",
                      label=f"N = {N}: SGD (mean of seeds)")
        ax.set_xlabel("alpha v1 / eta  (drift over noise; alpha = 0 drawn at the left edge)")
        ax.set_ylabel("eta x crossing time  (eta tau)")
        ax.legend(loc="best", fontsize=7.5)
        if title:
            ax.set_title(title)
    return fig
