"""Calibration of Saves(estimate_error=True) and Saves(error_target=...) of integrate on 2,000 starts.

Problem: the gradient flow of bench_integrators.py (two-unit erf teacher-student model with identity skips,
ModelSpec(K=2, M=2, N=2, activation="erf", alpha=0.5), P = 6), theta0 ~ N(0, 0.8^2 I) with seed 7 (not the
benchmark's seed 2026), saves at 0 and 21 log-spaced times from 0.1 to 1e4, rtol = 1e-8, atol = 1e-10.

True error of a trajectory: max over saves and components of |y - y_ref|, y_ref = ghostsing DOP853 at
rtol 1e-13, atol 1e-15 on every start; cross-checked against Rodas5P at rtol 1e-12 on every start (a
different method family) and against scipy's DOP853 at rtol 1e-13 on the 10 worst trajectories.

For each method: the fraction of trajectories whose error_estimate bounds the true error, the quantiles
of estimate / true error, the worst and 99th-percentile true errors, and the cost of the estimate
(one thread, wall time with / without). For error_target: the worst true error after re-integration
and the cost. Where the error comes from: for the 20 worst trajectories of auto853, the save time of
their largest error, their stiffness-switch time and the error of DOP853 alone.

Usage: python benchmarks/study_error_estimate.py [--n 2000] [--seed 7]
Writes benchmarks/results/error_estimate.json and benchmarks/results/error_estimate.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import matplotlib
import numba
import numpy as np
from scipy.integrate import solve_ivp

from ghostsing import ModelSpec, __version__
from ghostsing.analytic import derive
from ghostsing.simulate import Execution, Saves, integrate

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RTOL, ATOL = 1e-8, 1e-10
TE = np.concatenate([[0.0], np.geomspace(0.1, 1e4, 21)])
METHODS = {
    "auto853 simd": {"method": "auto853", "execution": Execution(simd=True)},
    "auto853": {"method": "auto853"},
    "rodas5p simd": {"method": "rodas5p", "execution": Execution(simd=True)},
    "dopri5": {"method": "dopri5"},
}
TARGETS = {"auto853 simd": (1e-8, 1e-9), "dopri5": (1e-9,)}


def traj_err(y: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per trajectory: max over saves and components of |y - ref| (inf where y is not finite)."""
    d = np.abs(y - ref)
    return np.where(np.all(np.isfinite(d), axis=(1, 2)), np.nanmax(d, axis=(1, 2)), np.inf)


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "error_estimate.json")
    a = ap.parse_args(argv)
    spec = ModelSpec(K=2, M=2, N=2, activation="erf", alpha=0.5)
    f = derive(spec).compile()
    Y = np.random.default_rng(a.seed).normal(scale=0.8, size=(a.n, spec.n_params))
    print(f"load average at start: {os.getloadavg()}")

    ref, t_ref = timed(lambda: integrate(f, Y, TE, method="dop853", rtol=1e-13, atol=1e-15))
    ref2 = integrate(f, Y, TE, method="rodas5p", rtol=1e-12, atol=1e-14, saves=Saves(exact=True))
    ref_dis = traj_err(ref.y, ref2.y)
    print(f"reference: {t_ref:.1f} s; DOP853 1e-13 vs Rodas5P 1e-12: max {ref_dis.max():.2e}")

    numba.set_num_threads(1)
    results: dict = {}
    worst_idx = None
    for name, kw in METHODS.items():
        integrate(f, Y[:2], TE[:3], **kw)  # warm
        plain, t_plain = timed(lambda kw=kw: integrate(f, Y, TE, rtol=RTOL, atol=ATOL, **kw))
        sol, t_est = timed(lambda kw=kw: integrate(f, Y, TE, rtol=RTOL, atol=ATOL,
                                                          saves=Saves(estimate_error=True), **kw))
        e = traj_err(sol.y, ref.y)
        est = sol.error_estimate
        r = est / e
        row = {
            "ms_per_traj_plain": 1e3 * t_plain / a.n, "ms_per_traj_with_estimate": 1e3 * t_est / a.n,
            "estimate_cost_ratio": t_est / t_plain,
            "true_err_worst": float(e.max()), "true_err_p99": float(np.percentile(e, 99)),
            "true_err_median": float(np.median(e)), "n_true_err_above_1e-7": int(np.sum(e > 1e-7)),
            "fraction_bounded": float(np.mean(est >= e)),
            "fraction_bounded_by_safety": {str(c): float(np.mean(est / 2 * c >= e)) for c in (1, 2, 3, 5)},
            "ratio_est_over_true_quantiles": {q: float(np.percentile(r, float(q))) for q in
                                              ("0", "1", "5", "50", "95", "99", "100")},
            "worst_estimate": float(est.max()),
            "status": sol.status_counts(),
        }
        if name == "auto853":
            worst_idx = np.argsort(e)[-20:][::-1]
            dop = integrate(f, Y[worst_idx], TE, rtol=RTOL, atol=ATOL, method="dop853",
                            execution=Execution(threads=2))
            e_dop = traj_err(dop.y, ref.y[worst_idx])
            arg = np.argmax(np.max(np.abs(sol.y[worst_idx] - ref.y[worst_idx]), axis=2), axis=1)
            row["worst20"] = [{"index": int(i), "true_err": float(e[i]), "estimate": float(est[i]),
                               "t_of_largest_error": float(TE[k]), "t_stiff": float(sol.t_stiff[i]),
                               "dop853_alone_err": float(ed)}
                              for i, k, ed in zip(worst_idx, arg, e_dop, strict=True)]
        if name == "auto853 simd":
            results["_scatter"] = (e, est)
        for tg in TARGETS.get(name, ()):
            s2, t_tg = timed(lambda kw=kw, tg=tg: integrate(f, Y, TE, rtol=RTOL, atol=ATOL,
                                                            saves=Saves(error_target=tg),
                                                            **kw))
            e2 = traj_err(s2.y, ref.y)
            used = s2.rtol_used
            row[f"target_{tg:g}"] = {
                "true_err_worst": float(e2.max()), "true_err_p99": float(np.percentile(e2, 99)),
                "meets_target": bool(e2.max() <= tg), "fraction_reintegrated": float(np.mean(used < RTOL)),
                "rtol_used_counts": {f"{v:g}": int(np.sum(used == v)) for v in np.unique(used)},
                "cost_ratio_vs_plain": t_tg / t_plain,
                "fraction_bounded": float(np.mean(s2.error_estimate >= e2)),
            }
        results[name] = row
        print(f"{name:14s} bound {row['fraction_bounded']:.4f}  median est/true "
              f"{row['ratio_est_over_true_quantiles']['50']:.2f}  worst {row['true_err_worst']:.2e} p99 "
              f"{row['true_err_p99']:.2e}  cost x{row['estimate_cost_ratio']:.2f}  "
              + "  ".join(f"target {k[7:]}: worst {v['true_err_worst']:.2e} x{v['cost_ratio_vs_plain']:.2f}"
                          for k, v in row.items() if k.startswith("target_")))

    # scipy DOP853 at rtol 1e-13 on the 10 worst trajectories of auto853: the reference's own error
    sc = np.array([solve_ivp(lambda t, y: f.flow(y), (0.0, TE[-1]), Y[i], method="DOP853", t_eval=TE,
                             rtol=1e-13, atol=1e-15).y.T for i in worst_idx[:10]])
    sc_dis = traj_err(sc, ref.y[worst_idx[:10]])
    print(f"scipy DOP853 1e-13 vs reference on the 10 worst: max {sc_dis.max():.2e}")

    e, est = results.pop("_scatter")
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    lo = max(min(e.min(), est.min()) / 2, 1e-13)
    hi = max(e.max(), est.max()) * 2
    ax.loglog(e, est, ".", ms=3, color="#0072B2", alpha=0.6, label=f"{len(e)} trajectories")
    xs = np.array([lo, hi])
    ax.loglog(xs, xs, "-", color="#D55E00", label="estimate = true error")
    ax.loglog(xs, 10 * xs, "--", color="#009E73", label="estimate = 10 x true error")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("true global error, max over saves |y - y_ref|")
    ax.set_ylabel("error_estimate")
    ax.set_title("auto853, Execution(simd=True), rtol 1e-8: estimate vs true error", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    png = a.out.with_suffix(".png")
    fig.savefig(png, dpi=120)

    out = {
        "benchmark": "study_error_estimate", "ghostsing_version": __version__, "spec": spec.to_dict(),
        "n": a.n, "seed": a.seed, "rtol": RTOL, "atol": ATOL, "t_eval": TE.tolist(),
        "estimator": "2 x max over saves |y(rtol) - y(rtol/10)| (companion run of the same method)",
        "reference": "ghostsing dop853 rtol 1e-13 atol 1e-15 on every start",
        "reference_vs_rodas5p_1e-12_max": float(ref_dis.max()),
        "reference_vs_scipy_dop853_1e-13_on_10_worst_max": float(sc_dis.max()),
        "reference_seconds": t_ref, "threads": 1, "methods": results,
        "machine": {"python": sys.version.split()[0], "numba": numba.__version__, "numpy": np.__version__,
                    "platform": platform.platform(), "cpu_count": os.cpu_count()},
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1))
    print(f"wrote {a.out} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
