"""Figures of the curvature experiments (:mod:`ghostsing.experiments.deep_curvature`): Hessian null space,
degenerate/negative eigenvalue fractions, edge of stability, Lowell's gradient singularity, LLC sweeps and
the bridge from the reduced model.

Every function takes the per-unit records an experiment computed (no training inside), draws with the
package palette (:func:`ghostsing.plots.style.colour_for`: ``plain`` and ``residual`` have the same
colours as in every other figure), saves with :func:`ghostsing.plots.style.save_figure` into ``out_dir``
and returns the file names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

from ghostsing.plots.style import CYCLE, OKABE_ITO, colour_for, save_figure, style_context  # noqa: E402

__all__ = ["plot_nullspace", "plot_hessian_fractions", "plot_eos", "plot_lowell", "plot_llc_sweep",
           "plot_bridge"]


def plot_nullspace(units: Sequence[Mapping], out_dir: Path, stem: str = "nullspace") -> tuple[str, ...]:
    """Measured Hessian nullity against the derived count, one marker per net (shape = kind)."""
    markers = {"clean": "o", "dead": "s", "duplicate": "^"}
    with style_context():
        fig, ax = plt.subplots(figsize=(5.2, 4.4))
        top = max(max(u["predicted"], u["measured"]) for u in units) + 2
        ax.plot([0, top], [0, top], color=colour_for("theory"), lw=0.8, ls="--", label="measured = derived")
        rng = np.random.default_rng(0)
        for arm in ("plain", "residual"):
            for kind, m in markers.items():
                g = [u for u in units if u["arm"] == arm and u["kind"] == kind]
                if not g:
                    continue
                jit = rng.uniform(-0.25, 0.25, len(g))
                ax.scatter(np.array([u["predicted"] for u in g]) + jit, [u["measured"] for u in g], marker=m,
                           facecolor="none", edgecolor=colour_for(arm), label=f"{arm}, {kind}")
        ax.set_xlabel("derived null directions (dead and duplicated units)")
        ax.set_ylabel("measured zero eigenvalues (dense Hessian)")
        ax.set_title("Hessian null space of built defects")
        ax.legend(fontsize=7.5)
        return save_figure(fig, out_dir, stem)


def plot_hessian_fractions(units: Mapping[str, Mapping], taus: Sequence[float], sweep: Sequence[str],
                           width: int, out_dir: Path, stem: str = "hessian_fractions",
                           prefixes: Sequence[tuple[str, str]] = (("relu", ""),)) -> tuple[str, ...]:
    """One row per net set ``(label, key prefix)`` of ``prefixes`` (e.g. ReLU nets and a smooth control
    set).  Left: ``f_deg(tau)`` per arm (mean, seed range shaded); middle: ``f_neg(tau)``; right: the
    degenerate-skip sweep, ``f_deg`` at the predicted tau against the skip rank, one dot per seed (filled:
    the net reached a critical point, open: a kink-stationary point or neither)."""
    with style_context():
        fig, axes = plt.subplots(len(prefixes), 3, figsize=(13, 4 * len(prefixes)), squeeze=False)
        t = np.asarray(taus)
        fixed = {"none": colour_for("plain"), "identity": colour_for("residual"),
                 "control": colour_for("other")}
        for ax, (act, prefix) in zip(axes, prefixes, strict=True):
            mine = {k[len(prefix):]: u for k, u in units.items()
                    if k.startswith(prefix) and (prefix or "-" not in k.split("_s")[0])}
            arms = list(sweep) + (["control"] if any(k.startswith("control_") for k in mine) else [])
            extra = iter(colour_for(k) for k in ("degenerate", "global", "random", "line"))
            for s in arms:
                g = [u for k, u in mine.items() if k.rsplit("_s", 1)[0] == s]
                label = {"none": "plain", "identity": "residual",
                         "control": "plain, other seeds (control)"}.get(s, s)
                c = fixed[s] if s in fixed else next(extra, colour_for(s))
                for j, field in ((0, "f_deg_curve"), (1, "f_neg_curve")):
                    v = np.array([u[field] for u in g])
                    ax[j].plot(t, v.mean(0), "o-", color=c, ms=3, label=label)
                    ax[j].fill_between(t, v.min(0), v.max(0), color=c, alpha=0.15)
                if s != "control":
                    crit = [u.get("kind", "") == "converged" for u in g]
                    ax[2].scatter([g[0]["rank"]] * len(g), [u["f_deg"] for u in g], s=16,
                                  facecolors=[c if k else "none" for k in crit], edgecolors=c)
            for j, lab in ((0, "f_deg(tau) = P[|lambda| < tau lambda_max]"),
                           (1, "f_neg(tau) = P[lambda < -tau lambda_max]")):
                ax[j].set_xscale("log")
                ax[j].set_xlabel("tau (threshold / lambda_max)")
                ax[j].set_ylabel(lab)
                ax[j].legend(fontsize=7)
            ax[2].set_xlabel(f"skip rank k (0 plain, {width} residual)")
            ax[2].set_ylabel("f_deg at the predicted tau (per seed)")
            n_crit = sum(u.get("kind", "") == "converged" for u in mine.values())
            n_kink = sum(u.get("kind", "") == "stationary" for u in mine.values())
            grad = max(u["grad_norm"] for u in mine.values())
            ax[0].set_title(f"{act}: {n_crit} critical, {n_kink} kink of {len(mine)} nets "
                            f"(largest |grad L| {grad:.2g})", fontsize=9)
            ax[2].set_title(f"{act}: degenerate-skip sweep (filled: critical point)", fontsize=9)
            wd = max(float(u.get("weight_decay", 0.0)) for u in mine.values())
            if wd > 0:  # the penalty lifts every eigenvalue: the curves are floored below wd / lambda_max
                floor = wd / float(np.median([u["lambda_max"] for u in mine.values()]))
                for j in (0, 1):
                    ax[j].axvline(floor, color=colour_for("theory"), ls=":", lw=1,
                                  label=f"penalty {wd:g} / median lambda_max")
                ax[0].legend(fontsize=7)
        fig.suptitle("Hessian eigenvalue fractions at the certified end points (Adam, L-BFGS, damped Newton)")
        return save_figure(fig, out_dir, stem)


def plot_eos(units: Mapping[str, Mapping], activations: Sequence[str], etas: Sequence[float],
             seeds: Sequence[int], out_dir: Path, stem: str = "eos") -> tuple[str, ...]:
    """Top row: sharpness against GD step per activation (one curve per step size and seed, dashed 2/eta);
    bottom left: late sharpness against 2/eta (dots per seed, the identity line)."""
    with style_context():
        fig, ax = plt.subplots(2, len(activations), figsize=(4.3 * len(activations), 7.4), squeeze=False)
        for j, act in enumerate(activations):
            a = ax[0, j]
            for i, eta in enumerate(etas):
                c = colour_for(f"eta={eta:g}")
                for k, s in enumerate(seeds):
                    u = units[f"{act}_eta{i}_s{s}"]
                    a.plot(u["probe_steps"], u["sharpness"], color=c, lw=0.7, alpha=0.7,
                           label=f"eta = {eta:g}" if k == 0 else None)
                a.axhline(2 / eta, color=c, ls="--", lw=1)
            a.set_yscale("log")
            a.set_xlabel("GD step")
            a.set_ylabel("sharpness lambda_max (dashed: 2/eta)")
            a.set_title(act)
            a.legend(fontsize=7)
            b = ax[1, j]
            for i, eta in enumerate(etas):
                v = [units[f"{act}_eta{i}_s{s}"]["lambda_late"] for s in seeds]
                v0 = [units[f"{act}_eta{i}_s{s}"]["lambda_first"] for s in seeds]
                b.scatter([2 / eta] * len(v), v, color=colour_for("plain"), s=14,
                          label="late lambda_max" if i == 0 else None)
                b.scatter([2 / eta] * len(v0), v0, color=colour_for("other"), marker="x", s=14,
                          label="lambda_max at step 0 (control)" if i == 0 else None)
            lim = [0, 2.2 / min(etas)]
            b.plot(lim, lim, color=colour_for("theory"), lw=0.8, ls="--", label="lambda_max = 2/eta")
            b.set_xlabel("2/eta")
            b.set_ylabel("lambda_max")
            b.legend(fontsize=7)
        fig.suptitle("Edge of stability: full-batch GD, sharpness by power iteration (HVPs)")
        return save_figure(fig, out_dir, stem)


def plot_lowell(units: Mapping[str, Mapping], sizes: Sequence[int], seeds: Sequence[int], out_dir: Path,
                stem: str = "lowell") -> tuple[str, ...]:
    """Left: max |grad L| near the matched loss against n (log-log, MLP and linear control); right: the
    gradient-norm traces of the MLP, one colour per n."""
    with style_context():
        fig, ax = plt.subplots(1, 2, figsize=(11, 4.2))
        for model, lab in (("mlp", "ReLU MLP"), ("linear", "linear model (control)")):
            c = colour_for("plain" if model == "mlp" else "other")
            v = np.array([[units[f"{model}_n{n}_s{s}"]["max_grad_late"] for s in seeds] for n in sizes])
            for k in range(v.shape[1]):
                ax[0].scatter(sizes, v[:, k], color=c, s=10, alpha=0.6)
            ax[0].plot(sizes, np.exp(np.log(v).mean(1)), "o-", color=c, label=lab)
        ax[0].set_xscale("log")
        ax[0].set_yscale("log")
        ax[0].set_xlabel("training-set size n")
        ax[0].set_ylabel("max |grad L| over the last window before the matched loss")
        ax[0].legend(fontsize=8)
        for i, n in enumerate(sizes):
            c = CYCLE[i % (len(CYCLE) - 1)]
            for k, s in enumerate(seeds):
                u = units[f"mlp_n{n}_s{s}"]
                t = np.arange(len(u["grad_thin"])) * u["thin"]
                ax[1].plot(t, u["grad_thin"], color=c, lw=0.7, alpha=0.7,
                           label=f"n = {n}" if k == 0 else None)
        ax[1].set_yscale("log")
        ax[1].set_xlabel("GD step (until the matched loss)")
        ax[1].set_ylabel("|grad L| (ReLU MLP)")
        ax[1].legend(fontsize=7)
        fig.suptitle("Lowell's gradient singularity at matched training loss")
        return save_figure(fig, out_dir, stem)


def plot_llc_sweep(units: Mapping[str, Mapping], gamma_grid: Sequence[float], step_grid: Sequence[float],
                   gamma0: float, step0: float, out_dir: Path, stem: str = "llc",
                   time_grid: Sequence[float] = ()) -> tuple[str, ...]:
    """LLC against the localisation gamma_rel, against the step step_rel and (with ``time_grid``) against the
    sampling-time factor (one line per swept net, the central setting included; dashed in the gamma panel:
    the regular-model value ``LLC_gauss = (1/2) sum_i n beta lambda_i / (n beta lambda_i + gamma)`` of the
    same net, where recorded); last panel: the central LLC per arm and seed."""
    grids = [(gamma_grid, "gamma_sweep", gamma0, "gamma_rel (gamma = gamma_rel sqrt(n beta))"),
             (step_grid, "step_sweep", step0, "step_rel (SGLD step x largest curvature of U at w*)")]
    if time_grid:
        grids.append((time_grid, "time_sweep", 1.0, "sampling time / central (draws and burn-in x factor)"))
    with style_context():
        fig, ax = plt.subplots(1, len(grids) + 1, figsize=(4.4 * (len(grids) + 1), 4))
        for u in units.values():
            if "gamma_sweep" not in u:
                continue
            c = colour_for(u["arm"])
            for j, (grid, key, x0, _) in enumerate(grids):
                if key not in u:
                    continue
                xs = np.array(list(grid) + [x0])
                ys = np.array([r["llc"] for r in u[key]] + [u["central"]["llc"]])
                o = np.argsort(xs)
                ax[j].plot(xs[o], ys[o], "o-", color=c, ms=3, lw=1, alpha=0.8)
                gs = np.array([r.get("llc_gaussian", np.nan) for r in u[key]]
                              + [u["central"].get("llc_gaussian", np.nan)], dtype=float)
                if key == "gamma_sweep" and np.all(np.isfinite(gs)):
                    ax[j].plot(xs[o], gs[o], "--", color=c, lw=0.8, alpha=0.8)
        for j, (_, _, _, lab) in enumerate(grids):
            ax[j].set_xscale("log")
            ax[j].xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax[j].set_xlabel(lab)
            ax[j].set_ylabel("LLC estimate")
        arms = sorted({u["arm"] for u in units.values()}, key=["plain", "residual", "control"].index)
        for i, a in enumerate(arms):
            v = [u["central"]["llc"] for u in units.values() if u["arm"] == a]
            ax[-1].scatter(np.full(len(v), i) + np.linspace(-0.12, 0.12, len(v)), v,
                           color=colour_for(a if a != "control" else "other"), s=16)
        ax[-1].set_xticks(range(len(arms)), arms)
        ax[-1].set_xlabel("arm")
        ax[-1].set_ylabel("LLC at the central setting (per seed)")
        for a in ("plain", "residual"):
            ax[0].plot([], [], color=colour_for(a), label=a)
        if any("llc_gaussian" in u["central"] for u in units.values()):
            ax[0].plot([], [], "--", color="0.4", lw=0.8, label="regular-model value LLC_gauss")
        ax[0].legend(fontsize=8)
        fig.suptitle("Local learning coefficient: plateau in gamma, step and sampling time; plain vs "
                     "residual")
        return save_figure(fig, out_dir, stem)


def plot_bridge(u: Mapping, fits: Mapping[str, Mapping], cfg, out_dir: Path, stem: str = "bridge",
                derived: Sequence[Mapping] | None = None,
                contaminated: Sequence[bool] | None = None) -> tuple[str, ...]:
    """(a) split of the duplicated pair against GD step, alphas coloured along a sequential (viridis) scale;
    (b) passage time against alpha (per seed) with the pooled fitted laws; (c) with ``derived`` (the
    per-seed rows of the bridge experiment): tau against ln(1/alpha) per seed, the fitted line (solid) and
    the derived slope ``a_pred`` with only its offset fitted (dashed); (d) the loss traces, with the GD
    instability onsets ``u["t_unstable"]`` of the runs (ticks).  ``contaminated`` (per run): passages after
    the instability onset, drawn hollow in (b) and (c) and left out of the fits."""
    al = np.asarray(u["alphas"])
    bad = np.zeros(al.size, bool) if contaminated is None else np.asarray(contaminated, dtype=bool)
    levels = sorted(set(al.tolist()))
    pos = [a for a in levels if a > 0]
    cmap = plt.get_cmap("viridis")
    lo, hi = np.log(min(pos)), np.log(max(pos))

    def col(a: float) -> str:
        return colour_for("other") if a == 0 else cmap(0.9 * (np.log(a) - lo) / max(hi - lo, 1e-12))

    with style_context():
        fig, axs = plt.subplots(2, 2, figsize=(13, 9))
        ax = [axs[0, 0], axs[0, 1], axs[1, 0], axs[1, 1]]
        st = np.asarray(u["split_trace"], dtype=float)
        steps = np.arange(st.shape[1]) * u["trace_every"]
        lt = np.asarray(u["loss_trace"], dtype=float)
        for a in levels:
            for k, j in enumerate(np.flatnonzero(al == a)):
                lab = (f"alpha = {a:g}" if a else "alpha = 0 (control)") if k == 0 else None
                if a > 0:  # the control's split is exactly 0: off a log scale (said in the title)
                    ax[0].plot(steps, st[j], color=col(a), lw=0.8, label=lab)
                ax[3].plot(np.arange(lt.shape[1]) * u["trace_every"], lt[j], color=col(a), lw=0.8, label=lab)
        ax[0].axhline(cfg.split, color=colour_for("theory"), ls="--", lw=0.8)
        ax[0].set_yscale("log")
        ax[0].set_xlabel("GD step after the skips are switched on")
        ax[0].set_ylabel("|w_i - w_j| / |w_i| (duplicated pair)")
        z = st[al == 0]
        zs = f"{np.nanmax(z):.1g}" if z.size and np.nanmax(z) > 0 else "exactly 0, not drawn"
        ax[0].set_title(f"(a) split of the pair (dashed: threshold; alpha = 0: split {zs})")
        ax[0].legend(fontsize=6.5, ncol=2)
        tau = np.asarray(u["tau_split"], dtype=float)
        m = al > 0
        ax[1].scatter(al[m & ~bad], tau[m & ~bad], color=colour_for("plain"), s=14,
                      label="tau (split), per seed")
        if (m & bad).any():
            ax[1].scatter(al[m & bad], tau[m & bad], facecolors="none", edgecolors=colour_for("plain"), s=14,
                          label=f"tau (split) after the GD instability onset ({int((m & bad).sum())}, "
                          "not fitted)")
        taul = np.asarray(u["tau_loss"], dtype=float)
        ax[1].scatter(al[m], taul[m], color=colour_for("other"), marker="x", s=14,
                      label="tau (loss drop; not a passage time, see report)")
        f = fits.get("split", {})
        if "fits" in f:
            grid = np.geomspace(al[m].min(), al[m].max(), 100)
            for name in f["order"]:
                d = f["fits"][name]
                y = _law_curve(name, grid, d["params"])
                if y is not None:
                    ax[1].plot(grid, y, lw=1, color=LAW_COLOURS.get(name, colour_for(name)),
                               label=f"{name} (dAIC {f['delta_aic'][name]:.1f})")
        ax[1].set_xscale("log")
        ax[1].set_yscale("log")
        ax[1].set_xlabel("skip strength alpha")
        ax[1].set_ylabel("passage time tau (GD steps)")
        ax[1].set_title("(b) passage time, pooled law fits")
        ax[1].legend(fontsize=6.5)
        sd = np.asarray(u["seeds"])
        xs = np.log(1.0 / np.array(pos))
        for k, r in enumerate(derived or []):
            c = CYCLE[k % len(CYCLE)]
            mk = m & (sd == r["seed"])
            ax[2].plot(np.log(1.0 / al[mk & ~bad]), tau[mk & ~bad], "o", color=c, ms=4,
                       label=f"seed {r['seed']}")
            ax[2].plot(np.log(1.0 / al[mk & bad]), tau[mk & bad], "o", color=c, ms=4, mfc="none")
            if np.isfinite(r.get("a_fit", np.nan)):
                ax[2].plot(xs, r["a_fit"] * xs + r["c_fit"], color=c, lw=1)
            if r.get("c_derived") is not None and np.isfinite(r.get("a_pred", np.nan)):
                ax[2].plot(xs, r["a_pred"] * xs + r["c_derived"], color=c, lw=1, ls="--")
        ax[2].set_xlabel("ln(1/alpha)")
        ax[2].set_ylabel("passage time tau (GD steps)")
        ax[2].set_title("(c) per seed: fitted slope (solid), derived slope 1/ln(1+lr|lambda_min|) (dashed)")
        if derived:
            ax[2].legend(fontsize=6.5)
        t_un = np.asarray(u.get("t_unstable", [np.nan] * al.size), dtype=float)
        n_un = int(np.isfinite(t_un).sum())
        for j in np.flatnonzero(np.isfinite(t_un)):
            ax[3].axvline(t_un[j], ymin=0, ymax=0.04, color=col(al[j]), lw=0.8)
        ax[3].set_yscale("log")
        ax[3].set_xlabel("GD step after the skips are switched on")
        ax[3].set_ylabel("training loss")
        ax[3].set_title(f"(d) training loss (lr {cfg.lr:g}; GD instability onsets (ticks): {n_un} of "
                        f"{al.size} runs)")
        fig.suptitle("Deep MLPs started on an overlap singularity: passage time against skip strength")
        return save_figure(fig, out_dir, stem)


LAW_COLOURS = {"C/alpha": OKABE_ITO["vermillion"], "power": OKABE_ITO["green"], "log": OKABE_ITO["orange"],
               "alpha^-2 (a ln(1/alpha) + b)": OKABE_ITO["purple"]}


def _law_curve(name: str, a: np.ndarray, p: Sequence[float]) -> np.ndarray | None:
    if name == "C/alpha":
        return p[0] / a
    if name.startswith("alpha^-2"):
        return (p[0] * np.log(1 / a) + p[1]) / a ** 2
    if name == "log":
        return p[0] * np.log(1 / a) + p[1]
    if name == "power":
        return p[0] * a ** (-p[1])
    return None
