"""Figures of the ghost-set studies (:mod:`ghostsing.experiments.ghost_sets`): the degenerate passage over
three decades of alpha, the elimination sets under skips, and the N dependence of the SGD noise drift.

Colours from :mod:`ghostsing.plots.style` (Okabe–Ito); every axis labelled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ghostsing.plots.style import CYCLE, OKABE_ITO, colour_for, style_context

__all__ = ["plot_degenerate_deep", "plot_elimination_sets", "plot_noise_n", "plot_noise_trap"]


def plot_degenerate_deep(alphas: np.ndarray, tau: np.ndarray, predicted: np.ndarray, leading: np.ndarray,
                         kappa: float, z0: float, *, zeta0s: np.ndarray | None = None,
                         zeta_alpha: float | None = None, zeta_T: np.ndarray | None = None,
                         zeta_predicted: np.ndarray | None = None, title: str = ""):
    """Left: ``tau alpha^2`` of every start against alpha with the scaled reduction's prediction ``T(alpha
    z0)`` (no free parameter) and its leading term ``c^-1 ln(kappa/(alpha z0))``; middle: the relative
    deviation ``|tau alpha^2 / T - 1|`` (mean and spread of the starts), which must vanish as alpha -> 0;
    right (when given): ``tau alpha^2`` against ``zeta0 = alpha z0`` at one small alpha, with ``T(zeta0)``."""
    import matplotlib.pyplot as plt

    al = np.asarray(alphas, dtype=float)
    T = tau * al[:, None] ** 2
    three = zeta0s is not None and zeta_T is not None
    with style_context():
        fig, axes = plt.subplots(1, 3 if three else 2, figsize=(15.0 if three else 10.5, 4.2))
        a1, a2 = axes[0], axes[1]
        for r in range(T.shape[1]):
            a1.plot(al, T[:, r], "o", ms=4, color=colour_for("degenerate"), alpha=0.7,
                    label="measured (each start)" if r == 0 else None)
        ok = np.isfinite(predicted)
        a1.plot(al[ok], predicted[ok], "-", color=colour_for("theory"),
                label="scaled reduction T(alpha z0), no fit")
        a1.plot(al[ok], leading[ok], "--", color=OKABE_ITO["skyblue"],
                label="leading term c^-1 ln(kappa/(alpha z0))")
        a1.axvline(kappa / z0, color=OKABE_ITO["orange"], ls=":",
                   label="alpha z0 = kappa (start past the fold)")
        a1.set_xscale("log")
        a1.set_xlabel(f"skip strength alpha  (z0 = {z0:g})")
        a1.set_ylabel("escape time x alpha^2  (tau alpha^2)")
        a1.legend(loc="lower left", fontsize=8)
        d = np.abs(T[ok] / predicted[ok, None] - 1)
        lo, hi = np.nanmin(d, axis=1), np.nanmax(d, axis=1)
        mid = np.nanmean(d, axis=1)
        a2.errorbar(al[ok], mid, yerr=[mid - lo, hi - mid], fmt="o-", color=colour_for("degenerate"),
                    capsize=3, label="|measured / predicted - 1| (mean, range over starts)")
        a2.set_xscale("log")
        a2.set_yscale("log")
        a2.set_xlabel("skip strength alpha")
        a2.set_ylabel("relative deviation from T(alpha z0)")
        a2.legend(loc="upper left", fontsize=8)
        if three:
            a3 = axes[2]
            zs = np.asarray(zeta0s, dtype=float)
            for r in range(zeta_T.shape[1]):
                a3.plot(zs, zeta_T[:, r], "o", ms=4, color=colour_for("degenerate"), alpha=0.7,
                        label="measured (each start)" if r == 0 else None)
            if zeta_predicted is not None:
                zp = np.asarray(zeta_predicted, dtype=float)
                fine = np.isfinite(zp)
                a3.plot(zs[fine], zp[fine], "-", color=colour_for("theory"),
                        label="scaled reduction T(zeta0)")
            a3.axvline(kappa, color=OKABE_ITO["orange"], ls=":", label="zeta0 = kappa (the fold)")
            a3.set_xscale("log")
            a3.set_xlabel(f"zeta0 = alpha z0  (alpha = {zeta_alpha:g})")
            a3.set_ylabel("escape time x alpha^2  (tau alpha^2)")
            a3.legend(loc="lower left", fontsize=8)
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


def plot_noise_trap(ratios: np.ndarray, etas: np.ndarray, tau: np.ndarray, predicted: np.ndarray,
                    z_late: np.ndarray, z_star: np.ndarray, title: str = ""):
    """Left: ``eta tau`` (crossing of ``z = 1`` from the trap half) against ``alpha / alpha_c`` for each rate
    (markers: each seed; lines: ``eta int dz / (alpha v1 + eta q)``, which diverges at ``alpha_c``; crosses at
    the top: seeds that never crossed); right: the late-time mean ``z`` of the seeds that did not cross
    against the noise-induced fixed point ``z*`` (``alpha v1 + eta q(z*) = 0``)."""
    import matplotlib.pyplot as plt

    ratios = np.asarray(ratios, dtype=float)
    with style_context():
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11.0, 4.3))
        top = np.nanmax(np.where(np.isfinite(tau), tau * np.asarray(etas)[:, None, None], np.nan)) * 3
        for e, eta in enumerate(etas):
            col = CYCLE[e % len(CYCLE)]
            ok = np.isfinite(predicted[e])
            ls = ("-", "--", ":")[e % 3]  # the curves collapse (eta tau depends on alpha / alpha_c only)
            a1.semilogy(ratios[ok], eta * predicted[e, ok], ls, color=col,
                        label=f"eta = {eta:g}: linear response (derived q)")
            for s in range(tau.shape[2]):
                t = tau[e, :, s]
                a1.semilogy(ratios, eta * t, "o", color=col, mfc="none", ms=4,
                            label=f"eta = {eta:g}: SGD (each seed)" if s == 0 else None)
                miss = ~np.isfinite(t)
                a1.plot(ratios[miss], np.full(miss.sum(), top), "x", color=col,
                        label=f"eta = {eta:g}: no crossing" if s == 0 and miss.any() else None)
            a2.plot(ratios, z_star[e], ls, color=col, label=f"eta = {eta:g}: z* (derived)")
            zl = np.where(np.isfinite(tau[e]), np.nan, z_late[e])
            a2.plot(np.repeat(ratios, zl.shape[1]), zl.ravel(), "o", color=col, mfc="none", ms=4,
                    label=f"eta = {eta:g}: SGD late mean z (not crossed)")
        for ax in (a1, a2):
            ax.axvline(1.0, color=OKABE_ITO["orange"], ls=":", label="alpha = alpha_c")
            ax.set_xlabel("skip strength / critical strength  (alpha / alpha_c)")
        a1.set_ylabel("eta x crossing time of z = 1  (eta tau)")
        a2.set_ylabel("z at the end of the run")
        a2.set_ylim(0.9, max(2.5, float(np.nanmax(np.where(np.isfinite(tau), np.nan, z_late))) * 1.1))
        a1.legend(loc="lower right", fontsize=7)
        a2.legend(loc="upper left", fontsize=7)
        if title:
            fig.suptitle(title)
    return fig
