"""The plateau phase diagram from the stores of ``sweeps/plateau.toml`` and ``sweeps/plateau_symmetric.toml``.

    ghostsing sweep sweeps/plateau.toml && ghostsing sweep sweeps/plateau_symmetric.toml
    python sweeps/plot_plateau.py          # docs/sweeps/plateau_phase.png, plateau_symmetric.png and
                                           # sweeps/results/plateau_summary.json

Reference teacher (generic): the time ``tau_line`` at which ``z`` crosses ``z_b = -1`` against alpha, one
panel per N, one colour per learning rate, with the passage laws of docs/ghosts.md overlaid: the
gradient-flow law ``tau = C / alpha`` (``C = 141.6``, computed, not fitted) and, for N = 1 (where it is
derived), the SGD law ``tau = int dz / (alpha v1 + lr q(z))`` with the derived noise drift ``q``.  Below:
the phase diagram, ``log10 tau_escape`` over (alpha, lr) for each N.  Symmetric teacher (degenerate,
``v1 = 0``): ``tau_escape`` against alpha with the gradient-flow law
``tau alpha^2 = ln(kappa / (alpha z0)) / c + T0`` (valid for ``alpha z0 < kappa``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _median(da, dim="seed"):
    return da.median(dim=dim, skipna=False)


def _alpha_x(alphas: np.ndarray) -> np.ndarray:
    """Plot positions: alpha, with alpha = 0 drawn a factor 3 left of the smallest positive alpha."""
    pos = alphas[alphas > 0]
    return np.where(alphas > 0, alphas, pos.min() / 3 if pos.size else 1e-4)


def noise_law(lrs, alphas):
    """``tau_line`` predicted by ``int dz / (alpha v1 + lr q(z))`` for the N = 1 reference teacher (the
    derived q of ghostsing.simulate.ghost_noise); None if it cannot be computed here."""
    try:
        from ghostsing.analytic.ghost_fate import overlap_fate
        from ghostsing.experiments.ghosts import REFERENCE, passable_start
        from ghostsing.simulate.ghost_noise import noise_drift_theory, predicted_passage
    except ImportError:  # pragma: no cover - the ghost studies moved
        return None
    fate = overlap_fate(REFERENCE)
    z0, zb, _ = passable_start(fate)
    q = noise_drift_theory(REFERENCE, fate.drift.fit, z0 - 0.1, zb + 0.02)
    return np.array([[predicted_passage(q, fate.drift.v1, z0, zb, float(a), float(lr)) for a in alphas]
                     for lr in lrs])


def main(argv: list[str] | None = None) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ghostsing._io import write_json_atomic, write_with_atomic
    from ghostsing.experiments.plateau_cell import REFERENCE_C, SYMMETRIC_LAW
    from ghostsing.experiments.sweep_store import open_sweep

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", default=str(ROOT / "sweeps/results/plateau.zarr"))
    ap.add_argument("--symmetric-store", default=str(ROOT / "sweeps/results/plateau_symmetric.zarr"))
    ap.add_argument("--out", default=str(ROOT / "docs/sweeps"))
    ap.add_argument("--summary", default=str(ROOT / "sweeps/results/plateau_summary.json"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    summary: dict = {"C": REFERENCE_C, "symmetric_law": SYMMETRIC_LAW}

    ds = open_sweep(args.store)
    alphas, lrs, Ns = ds.alpha.values, ds.lr.values, ds.N.values
    x = _alpha_x(alphas)
    summary["cells"] = {"total": int(ds.status.size), "done": int((ds.status == "done").sum()),
                        "failed": int((ds.status == "failed").sum()),
                        "cell_wall_time_s": {"median": float(np.nanmedian(ds.wall_time_s)),
                                             "max": float(np.nanmax(ds.wall_time_s)),
                                             "total": float(np.nansum(ds.wall_time_s))}}
    pred = noise_law(lrs, alphas) if 1 in Ns else None
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(2, len(Ns), figsize=(4.2 * len(Ns), 7.6), squeeze=False)
    tables = {}
    for j, N in enumerate(Ns):
        ax = axes[0, j]
        sub = ds.sel(N=N)
        for i, lr in enumerate(lrs):
            tau = sub.tau_line.sel(lr=lr)
            ax.plot(x, _median(tau), "o-", color=colours[i], label=f"lr = {lr:g}", ms=4)
            for s in tau.seed.values:
                ax.plot(x, tau.sel(seed=s), ".", color=colours[i], alpha=0.35, ms=3)
            if pred is not None and N == 1:
                ax.plot(x, pred[i], ":", color=colours[i], lw=1.2)
        pos = alphas > 0
        ax.plot(x[pos], REFERENCE_C / alphas[pos], "k--", lw=1.2, label=r"gradient flow $C/\alpha$")
        if pred is not None and N == 1:
            ax.plot([], [], "k:", label=r"SGD law $\int dz/(\alpha v_1 + \eta q)$")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"reference teacher, N = {N}")
        ax.set_xlabel(r"skip strength $\alpha$ ($\alpha = 0$ at the left)")
        ax.set_ylabel(r"$\tau_{line}$ (crossing of $z_b$)")
        if j == 0:
            ax.legend(fontsize=7)
        esc = np.log10(_median(sub.tau_escape).transpose("lr", "alpha").values)
        ax = axes[1, j]
        im = ax.imshow(esc, origin="lower", aspect="auto", cmap="viridis", vmin=1, vmax=5.3)
        for (r, c), v in np.ndenumerate(esc):
            ax.text(c, r, "—" if not np.isfinite(v) else f"{v:.2f}", ha="center", va="center", fontsize=7,
                    color="w" if np.isfinite(v) and v < 3.5 else "k")
        ax.set_xticks(range(len(alphas)), [f"{a:g}" for a in alphas], fontsize=7)
        ax.set_yticks(range(len(lrs)), [f"{lr:g}" for lr in lrs], fontsize=7)
        ax.set_xlabel(r"$\alpha$")
        ax.set_ylabel("learning rate")
        ax.set_title(rf"$\log_{{10}} \tau_{{escape}}$, N = {N}")
        fig.colorbar(im, ax=ax, fraction=0.046)
        med_line = _median(sub.tau_line).transpose("lr", "alpha").values
        tables[int(N)] = {
            "tau_line_median": med_line.tolist(),
            "tau_escape_median": _median(sub.tau_escape).transpose("lr", "alpha").values.tolist(),
            "tau_line_over_C_over_alpha": [[float(med_line[i, k] * alphas[k] / REFERENCE_C) if alphas[k] > 0
                                            else None for k in range(len(alphas))] for i in range(len(lrs))],
        }
        if pred is not None and N == 1:
            tables[1]["tau_line_over_sgd_law"] = (med_line / pred).tolist()
    summary["reference"] = {"alpha": alphas.tolist(), "lr": lrs.tolist(), "N": Ns.tolist(), "by_N": tables}
    fig.suptitle("Plateau phase diagram: on-line SGD past the former overlap line (sweeps/plateau.toml)")
    fig.tight_layout()
    write_with_atomic(out / "plateau_phase.png", lambda p: fig.savefig(p, format="png", dpi=110))
    plt.close(fig)

    sym_path = Path(args.symmetric_store)
    if sym_path.exists():
        sy = open_sweep(sym_path)
        a, lrs_s = sy.alpha.values, sy.lr.values
        xs = _alpha_x(a)
        fig, ax = plt.subplots(figsize=(5.6, 4.2))
        for i, lr in enumerate(lrs_s):
            tau = sy.tau_escape.sel(lr=lr)
            ax.plot(xs, _median(tau), "o-", color=colours[i], label=f"lr = {lr:g}", ms=4)
        law = SYMMETRIC_LAW
        ag = np.geomspace(max(a[a > 0].min(), 1e-4) / 1.5, law["kappa"] / law["z0"], 60)
        tau_law = (np.log(law["kappa"] / (ag * law["z0"])) / law["c"] + law["T0"]) / ag**2
        keep = tau_law * ag**2 > 2.0  # the law's own range: alpha z0 below kappa, tau alpha^2 = O(1) beyond
        ag, tau_law = ag[keep], tau_law[keep]
        ax.plot(ag, tau_law, "k--",
                label=r"gradient flow $\tau\alpha^2 = c^{-1}\ln(\kappa/\alpha z_0) + T_0$")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(r"skip strength $\alpha$ ($\alpha = 0$ at the left)")
        ax.set_ylabel(r"$\tau_{escape}$ (loss below $L^*/2$)")
        ax.set_title("symmetric teacher (v1 = 0), N = 2")
        ax.legend(fontsize=7)
        fig.tight_layout()
        write_with_atomic(out / "plateau_symmetric.png", lambda p: fig.savefig(p, format="png", dpi=110))
        plt.close(fig)
        summary["symmetric"] = {"alpha": a.tolist(), "lr": lrs_s.tolist(),
                                "tau_escape_median": _median(sy.tau_escape).transpose("lr", "alpha")
                                .values.tolist(),
                                "cells": {"done": int((sy.status == "done").sum()),
                                          "failed": int((sy.status == "failed").sum())}}
    write_json_atomic(args.summary, summary)
    print(f"wrote {out / 'plateau_phase.png'} and {args.summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
