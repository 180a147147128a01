"""Figures of the ghost studies: passage-law collapse, traps against alpha, basin fractions.

Every function takes arrays (no simulation inside) and returns the Figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from ghostsing.plots.style import CYCLE, OKABE_ITO, colour_for, style_context


def plot_passage_collapse(runs: Sequence[Mapping], title: str = "") -> plt.Figure:
    """Left: ``alpha tau / C`` against alpha for each run (mean and standard deviation over independent
    starts; filled markers: passage of the segment boundary ``z_b``, open markers: exit from the tube
    ``|u| = delta``); 1 is the derived law ``alpha tau -> C = (z_b - z0)/v1``.  Right: ``tau`` against alpha
    with the derived ``C / alpha`` lines.

    Each run: ``label``, ``alphas`` (n,), ``tau_line`` (n, r), ``tau_tube`` (n, r), ``C``.
    """
    with style_context():
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(10.5, 4.2))
        for k, run in enumerate(runs):
            col = CYCLE[k % len(CYCLE)]
            a = np.asarray(run["alphas"], dtype=float)
            for key, marker, fill, ls in (("tau_line", "o", col, "-"), ("tau_tube", "s", "none", ":")):
                r = a[:, None] * np.asarray(run[key], dtype=float) / run["C"]
                m, s = np.nanmean(r, axis=1), np.nanstd(r, axis=1, ddof=1)
                ax.errorbar(a, m, yerr=s, marker=marker, mfc=fill, color=col, ms=4, capsize=2, lw=1, ls=ls,
                            label=f"{run['label']} ({'z = z_b' if key == 'tau_line' else 'tube exit'})")
            tau = np.nanmean(np.asarray(run["tau_line"], dtype=float), axis=1)
            bx.loglog(a, tau, "o", color=col, ms=5, label=run["label"])
            aa = np.geomspace(a.min(), a.max(), 50)
            bx.loglog(aa, abs(run["C"]) / aa, "-", color=col, lw=1)
        ax.axhline(1.0, color=OKABE_ITO["black"], lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_xlabel(r"skip strength $\alpha$")
        ax.set_ylabel(r"$\alpha\,\tau\,/\,C$   ($C = (z_b - z_0)/v_1$, computed)")
        ax.set_title("collapse onto the derived law (1 = first order)")
        ax.legend(fontsize=7, ncol=1)
        bx.set_xlabel(r"skip strength $\alpha$")
        bx.set_ylabel(r"passage time $\tau$ (gradient-flow time)")
        bx.set_title(r"$\tau$ to reach $z_b$; lines: $C/\alpha$ (no fit)")
        bx.legend(fontsize=7)
        if title:
            fig.suptitle(title, fontsize=10)
    return fig


def plot_traps(alphas: np.ndarray, alpha_z: np.ndarray, zeta_star: float, min_eig: np.ndarray,
               loss: np.ndarray, limit_loss: float, global_loss: float, label: str = "") -> plt.Figure:
    """Left: ``alpha z*`` of the certified trap against alpha, with the limit ``zeta*``; middle: the
    smallest Hessian eigenvalue there (against ``alpha^2``); right: the trap's loss against the limit
    loss and the global minimum."""
    a = np.asarray(alphas, dtype=float)
    with style_context():
        fig, axs = plt.subplots(1, 3, figsize=(11, 3.6))
        axs[0].semilogx(a, alpha_z, "o", color=CYCLE[0], label=r"trap: $\alpha z^*$")
        axs[0].axhline(zeta_star, color=CYCLE[1], ls="--", label=rf"limit $\zeta^* = {zeta_star:.4f}$")
        axs[0].set_xlabel(r"$\alpha$")
        axs[0].set_ylabel(r"$\alpha z^*$ (dimensionless)")
        axs[0].legend()
        axs[1].loglog(a, min_eig, "o", color=CYCLE[0], label="smallest Hessian eigenvalue")
        ref = min_eig[-1] * (a / a[-1]) ** 2
        axs[1].loglog(a, ref, "--", color=CYCLE[1], label=r"$\propto\alpha^2$")
        axs[1].set_xlabel(r"$\alpha$")
        axs[1].set_ylabel(r"$\lambda_{\min}(\nabla^2 L)$")
        axs[1].legend()
        axs[2].semilogx(a, loss, "o", color=CYCLE[0], label="trap loss")
        axs[2].axhline(limit_loss, color=CYCLE[1], ls="--", label=r"limit $L_{\mathrm{eff}}^*$")
        axs[2].axhline(max(global_loss, 0.0), color=CYCLE[2], ls=":", label="global minimum")
        axs[2].set_xlabel(r"$\alpha$")
        axs[2].set_ylabel("population loss")
        axs[2].legend()
        if label:
            fig.suptitle(label, fontsize=10)
    return fig


def plot_basin(alphas: np.ndarray, fractions: Mapping[str, np.ndarray], n: int,
               title: str = "") -> plt.Figure:
    """Fractions of random starts by end state (``global``, ``trap``, ``line``, ``other``) against alpha
    (binomial standard errors with ``n`` starts per alpha; alpha = 0 drawn at the left edge)."""
    a = np.asarray(alphas, dtype=float)
    xpos = np.where(a > 0, a, a[a > 0].min() / 4 if np.any(a > 0) else 1e-4)
    with style_context():
        fig, ax = plt.subplots(figsize=(6, 3.8))
        for key, fr in fractions.items():
            fr = np.asarray(fr, dtype=float)
            se = np.sqrt(fr * (1 - fr) / n)
            ax.errorbar(xpos, fr, yerr=se, marker="o", capsize=2, color=colour_for(key), label=key)
        ax.set_xscale("log")
        ax.set_xlabel(r"skip strength $\alpha$ (leftmost point: $\alpha = 0$)")
        ax.set_ylabel(f"fraction of {n} random starts")
        ax.set_ylim(-0.03, 1.03)
        ax.legend()
        if title:
            ax.set_title(title)
    return fig


def plot_degenerate(alphas: np.ndarray, tau: np.ndarray, c_geo: np.ndarray, fits: Mapping,
                    fit_max_alpha: float, predicted: np.ndarray | None = None,
                    c_derived: float | None = None) -> plt.Figure:
    """Left: ``tau alpha^2`` against ``ln(1/alpha)`` (mean, standard deviation over starts) with the laws
    fitted on ``alpha <= fit_max_alpha``; right: the growth rate ``c`` of ``z`` measured between two
    levels, against alpha, and ``1/a`` of the fitted ``alpha^-2 (a ln(1/alpha) + b)`` law."""
    a = np.asarray(alphas, dtype=float)
    with style_context():
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(10.5, 4.0))
        y = tau * a[:, None] ** 2
        x = np.log(1 / a)
        ax.errorbar(x, np.nanmean(y, axis=1), yerr=np.nanstd(y, axis=1, ddof=1), fmt="o", color=CYCLE[0],
                    capsize=2, label="simulated (mean ± sd over starts)")
        aa = np.geomspace(a.min(), fit_max_alpha, 100)
        for k, (name, fit) in enumerate(fits.items()):
            if name.startswith("scaled"):
                continue
            ax.plot(np.log(1 / aa), fit.predict(aa) * aa**2, color=CYCLE[(k + 1) % len(CYCLE)], lw=1.0,
                    ls=":", label=f"fit {name}: AIC {fit.aic:.1f}")
        if predicted is not None:
            ok = np.isfinite(predicted)
            scaled = next((f for n_, f in fits.items() if n_.startswith("scaled")), None)
            extra = f", AIC {scaled.aic:.1f}" if scaled is not None else ""
            ax.plot(x[ok], predicted[ok], "s-", mfc="none", color=OKABE_ITO["black"], lw=1.2,
                    label=f"scaled reduction (computed c, κ; no fit){extra}")
        ax.axvline(np.log(1 / fit_max_alpha), color=OKABE_ITO["black"], lw=0.6, ls=":")
        ax.set_xlabel(r"$\ln(1/\alpha)$")
        ax.set_ylabel(r"$\tau\,\alpha^2$ (escape time × $\alpha^2$)")
        ax.set_title(r"symmetric teacher ($v_1 = 0$): fits right of the dotted line")
        ax.legend(fontsize=7)
        m = np.nanmean(c_geo, axis=1)
        s = np.nanstd(c_geo, axis=1, ddof=1) if c_geo.shape[1] > 1 else np.zeros_like(m)
        ok = np.isfinite(m)
        bx.errorbar(a[ok], m[ok], yerr=s[ok], fmt="s", color=CYCLE[1], capsize=2,
                    label=r"$c$ from $z$ crossing two levels")
        deg = next((f for f in fits.values() if f.law.name.startswith("alpha^-2")), None)
        if deg is not None:
            bx.axhline(1 / deg.params[0], color=CYCLE[2], ls="--", label=r"$1/a$ of the fitted $\tau$ law")
        if c_derived is not None:
            bx.axhline(c_derived, color=OKABE_ITO["black"], ls="-", lw=1.0,
                       label=rf"$c = -L_*''(0)/2$ of the scaled reduction ({c_derived:.5f})")
        bx.set_xscale("log")
        bx.set_xlabel(r"skip strength $\alpha$")
        bx.set_ylabel(r"$c = \ln(z_2/z_1)\,/\,(\alpha^2 (t_2 - t_1))$")
        bx.set_title(r"growth rate of $z$ on the slow manifold")
        bx.legend(fontsize=7)
    return fig


def plot_noise_collapse(etas: np.ndarray, alphas: np.ndarray, tau: np.ndarray, v1: float, r: np.ndarray,
                        G: np.ndarray, C: float) -> plt.Figure:
    """``eta tau`` against ``alpha v1 / eta`` for every ``(eta, alpha)`` (mean ± sd over seeds; alpha = 0
    drawn at the left edge), with the predicted scaling function ``G`` and its drift-driven limit
    ``C eta / alpha`` = ``C v1 / r``."""
    with style_context():
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        rmin = r.min()
        for e, eta in enumerate(etas):
            x = np.where(alphas > 0, alphas * v1 / eta, rmin)  # alpha = 0 at the left edge
            y = eta * tau[e]
            ax.errorbar(x, np.nanmean(y, axis=1), yerr=np.nanstd(y, axis=1, ddof=1), fmt="o",
                        color=CYCLE[e % len(CYCLE)], capsize=2, label=rf"SGD, $\eta$ = {eta:g}")
        ax.plot(r, G, color=OKABE_ITO["black"], lw=1.2, label=r"predicted $G(\alpha v_1/\eta)$ (derived $q$)")
        ax.plot(r, C * v1 / r, color=OKABE_ITO["black"], lw=0.8, ls="--",
                label=r"drift only: $\eta\,C/\alpha$")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(np.nanmin(G) / 2, np.nanmax(G) * 2)
        ax.set_xlabel(r"$\alpha v_1 / \eta$ (drift / noise; left edge: $\alpha = 0$)")
        ax.set_ylabel(r"$\eta\,\tau$ (SGD steps × $\eta^2$)")
        ax.set_title(r"passage of the ghost under SGD noise: $\eta\tau = G(\alpha v_1/\eta)$")
        ax.legend(fontsize=7)
    return fig
