"""Write the README's "Measured" table from the benchmark result files, so that no claim drifts from its
measurement.

Every row is read from a JSON file under benchmarks/results/ and says the case, the figure, how error was
measured (where there is one), the anchor and its version, and the file it came from. Claims whose
benchmark has no committed result file are listed as such instead of being repeated.

Usage: python benchmarks/make_readme_table.py [--readme README.md] [--check]
Replaces the text between the markers <!-- measured:begin --> and <!-- measured:end --> in the README
(--check: exit 1 if the README's table differs from what the files give, without writing).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BEGIN, END = "<!-- measured:begin -->", "<!-- measured:end -->"


def _load(name: str) -> dict | None:
    p = RESULTS / name
    return json.loads(p.read_text()) if p.exists() else None


def _x(v: float | None, digits: int = 2) -> str:
    return "–" if v is None else f"{v:.{digits}g}×" if v < 10 else f"{v:.0f}×"


def _e(v: float | None) -> str:
    return "–" if v is None else f"{v:.1e}"


def _row(case: str, figure: str, error: str, anchor: str, src: str) -> str:
    return f"| {case} | {figure} | {error} | {anchor} | `{src}` |"


def integrator_rows() -> list[str]:
    d = _load("integrators.json")
    if d is None:
        return []
    r = d["ratios"]
    rows = {x["solver"]: x for x in d["rows"] if x.get("threads", 1) in (1, "XLA default")
            and not x.get("scaling_run")}
    best = rows[r["best_config"]]
    n = d["n"]
    out = []
    numba_v = d["machine"]["numba"]
    scipy_v = d["machine"].get("scipy", "?")
    la = d.get("load_average")
    noise = (
        f"; fastest of {d.get('repeats', 1)} runs, load average {la['min_1m']:.1f}–{la['max_1m']:.1f} "
        f"(median {la['median_1m']:.1f}) on {d['machine']['cpu_count']} shared cores"
        if la
        else ""
    )
    case = (
        f"{n:,} gradient-flow trajectories of the 2-unit erf model to t = 10⁴, rtol 1e-8 "
        f"(`{r['best_config'].removeprefix('ghostsing ')}`{noise})"
    )
    out.append(
        _row(
            case,
            f"{best['ms_per_traj']:.3f} ms/trajectory on one core",
            f"worst {_e(best['max_abs_err'])}, p99 {_e(best.get('p99_abs_err'))} over all {best['n_err']:,}"
            if "n_err" in best
            else f"worst {_e(best['max_abs_err'])} over the first {d['n_ref']} starts only (run predates "
            "the all-trajectory error)",
            f"numba {numba_v}",
            "integrators.json",
        )
    )
    sc = rows.get("scipy solve_ivp RK45")
    if sc:
        out.append(
            _row(
                "… against scipy `solve_ivp` RK45 (same rtol)",
                _x(r["vs_scipy_RK45_per_core"]),
                f"RK45 worst {_e(sc['max_abs_err'])} on the {sc['n_run']} starts it ran (extrapolated time)",
                f"scipy {scipy_v}",
                "integrators.json",
            )
        )
    lsoda = [x for x in d["rows"] if x["solver"].startswith("numbalsoda LSODA") and "ms_per_traj" in x]
    if lsoda and r.get("vs_numbalsoda_LSODA_interpolated_at_our_error") is not None:
        v = lsoda[0].get("version", "?")
        interp = r["vs_numbalsoda_LSODA_interpolated_at_our_error"]
        figure = "outside LSODA's measured errors" if interp != interp else _x(interp)
        p99 = r.get("vs_numbalsoda_LSODA_interpolated_at_our_p99")
        same = rows.get("numbalsoda LSODA")
        if p99 is not None and p99 == p99:
            figure += f" (at the same 99th-percentile error: {_x(p99)})"
        if same and "vs_numbalsoda_LSODA_same_rtol" in r:
            figure += (
                f"; at the same rtol {_x(r['vs_numbalsoda_LSODA_same_rtol'])}, where LSODA's worst error is "
                f"{_e(same['max_abs_err'])}"
            )
        out.append(
            _row(
                "… against numbalsoda LSODA at the same worst error (log-log interpolation "
                "along LSODA's rtol 1e-8 … 1e-12 runs)",
                figure,
                f"worst over all {n:,} starts: ours {_e(best['max_abs_err'])}, p99 {_e(best['p99_abs_err'])}"
                if "n_err" in best
                else f"worst over the first {d['n_ref']} starts only",
                f"numbalsoda {v}",
                "integrators.json",
            )
        )
    else:
        why = next(
            (x["error"] for x in d["rows"] if x["solver"].startswith("numbalsoda LSODA") and "error" in x),
            "no LSODA row",
        )
        out.append(_row("… against numbalsoda LSODA", "not run", why, "numbalsoda", "integrators.json"))
    for key in ("Dopri8", "Tsit5"):
        dx = next((x for x in d["rows"] if x["solver"].startswith(f"diffrax {key}")), None)
        if dx is None:
            continue
        if "error" in dx:
            out.append(
                _row(f"… against diffrax {key}", "not run", dx["error"], "diffrax", "integrators.json")
            )
            continue
        same = r.get("best_errors_on_diffrax_starts")
        ours_err = (
            f"ours {_e(same['max_abs_err'])} on the same {same['n_err']}"
            if same
            else f"ours {_e(best['max_abs_err'])} over {n:,}"
        )
        out.append(
            _row(
                f"… against diffrax {key} (jit + vmap, float64, same rtol, XLA's default threads against "
                f"our one; {dx['n_run']} starts, time extrapolated)",
                _x(r[f"vs_diffrax_{key}_same_rtol"]),
                f"worst over the starts run: diffrax {_e(dx['max_abs_err'])}, {ours_err}",
                dx["version"],
                "integrators.json",
            )
        )
    est = rows.get("ghostsing auto853 SIMD + estimate_error")
    tgt = rows.get("ghostsing auto853 SIMD, error_target=1e-8")
    if est and tgt:
        out.append(
            _row(
                "… with `estimate_error=True` (a companion run at rtol/10)",
                f"{_x(r['estimate_error_cost'])} the time; the estimate bounds the error on "
                f"{100 * est['estimate_bounds_fraction']:.2f}% of trajectories",
                f"worst over all {n:,} vs the reference",
                "itself",
                "integrators.json",
            )
        )
        dfx = r.get("diffrax_Dopri8_vs_error_target_1e-8")
        ls = [x for x in lsoda if "max_abs_err" in x]
        ls_txt = ""
        lt = r.get("error_target_1e-8_vs_numbalsoda_LSODA_interpolated")
        if ls and lt is not None and lt == lt:
            ls_txt = f"; numbalsoda LSODA at the same worst error takes {_x(lt)} as long"
        elif ls:  # LSODA's tightest run does not reach the target's worst error
            m = min(ls, key=lambda x: x["max_abs_err"])
            tol = m["solver"].removeprefix("numbalsoda LSODA (").removesuffix(")")
            ls_txt = (
                f"; numbalsoda LSODA's most accurate run ({tol}) "
                f"has worst {_e(m['max_abs_err'])} and takes {_x(m['ms_per_traj'] / tgt['ms_per_traj'])} "
                "as long"
            )
        out.append(
            _row(
                "… with `error_target=1e-8`",
                f"{_x(r['error_target_1e-8_cost'])} the time; "
                f"{100 * tgt['fraction_reintegrated']:.1f}% of trajectories re-integrated"
                + ls_txt
                + (
                    f"; diffrax Dopri8 takes {_x(dfx)} as long "
                    f"(its worst {_e(r['diffrax_Dopri8_max_abs_err'])} over its "
                    f"{r.get('n_diffrax', '?')} starts)"
                    if dfx
                    else ""
                ),
                f"worst over all {n:,}: {_e(tgt['max_abs_err'])}, p99 {_e(tgt['p99_abs_err'])}",
                "itself, diffrax" if dfx else "itself",
                "integrators.json",
            )
        )
    out.append(
        _row(
            "ensemble driver 1 → 2 Numba threads (same run)",
            f"{r['speedup_2_threads_best']:.2f}× (best configuration), "
            f"{r['speedup_2_threads_dopri5']:.2f}× (DOPRI5)",
            "–",
            "linear = 2×",
            "integrators.json",
        )
    )
    return out


def error_estimate_rows() -> list[str]:
    d = _load("error_estimate.json")
    if d is None:
        return []
    out = []
    for name, m in d["methods"].items():
        q = m["ratio_est_over_true_quantiles"]
        tg = "; ".join(
            f"error_target {k[7:]}: worst true error {_e(v['true_err_worst'])} at "
            f"{v['cost_ratio_vs_plain']:.1f}× the time"
            for k, v in m.items()
            if k.startswith("target_")
        )
        out.append(
            _row(
                f"`error_estimate` calibration, `{name}`, {d['n']:,} starts (seed {d['seed']}), rtol 1e-8",
                f"bounds the true error on {100 * m['fraction_bounded']:.2f}%; estimate / true error "
                f"median {float(q['50']):.2f}, 1st percentile {float(q['1']):.2f}; "
                f"{m['estimate_cost_ratio']:.1f}× the time" + (f"; {tg}" if tg else ""),
                f"true error = worst over saves vs DOP853 rtol 1e-13 on every start "
                f"(Rodas5P 1e-12 agrees to {_e(d['reference_vs_rodas5p_1e-12_max'])})",
                "itself",
                "error_estimate.json",
            )
        )
    return out


def codegen_rows() -> list[str]:
    d = _load("codegen.json")
    if d is None:
        return []
    fs = d["flow_speed"]
    return [
        _row(
            "derive + compile the 3-unit erf model with skips",
            f"{d['cold']['total_after_imports_s']:.1f} s cold, {d['cached']['total_after_imports_s']:.2f} s "
            "from the cache",
            "–",
            "targets 30 s / 1 s",
            "codegen.json",
        ),
        _row(
            "generated Numba flow",
            f"{fs['generated_ns_per_call']:.0f} ns/call, {fs['ratio_min_times']:.2f}× "
            "the time of a hand-written Numba flow",
            f"max relative difference to it {fs['baseline_max_rel_err']:.0e}",
            "hand-written Numba flow",
            "codegen.json",
        ),
    ]


def sgd_rows() -> list[str]:
    d = _load("sgd.json")
    if d is None:
        return []
    v = d.get("versions", {})
    return [
        _row(
            f"on-line SGD, K = M = 2, N = {r['N']}",
            f"{r['numba_over_numpy']:.1f}× a NumPy loop, {r['numba_over_torch']:.0f}× the same loop in "
            "PyTorch (CPU)",
            "same update rule",
            f"numpy {v.get('numpy', '?')}, torch {v.get('torch', '?')}",
            "sgd.json",
        )
        for r in d["rows"]
        if r["N"] == 500
    ]


def batched_rows() -> list[str]:
    out = []
    for name in ("deepcheck_batched.json", "deepcheck_batched_2threads.json"):
        d = _load(name)
        if d is None:
            continue
        la = d.get("load_average_start_1m_5m_15m")
        noise = (
            f"; fastest of {d['repeats']} alternated timings, load average {la[0]:.1f} at the start on "
            f"{d.get('cpu_count', '?')} shared cores"
            if la
            else ""
        )
        pr = d.get("paired_ratios")
        spread = f" (paired timings {min(pr):.2f}–{max(pr):.2f})" if pr else ""
        out.append(
            _row(
                f"batched seeds ({d['seeds']} seeds of a {d['net']}, {d['steps_per_net']} Adam steps each, "
                f"{d['device']}, {d['torch_threads']} thread(s){noise})",
                f"{d['speedup_sequential_over_batched']:.2f}× a plain PyTorch loop with the same threads"
                + spread,
                "–",
                f"torch {d['torch_version']}",
                name,
            )
        )
    return out


def hessian_rows() -> list[str]:
    out = []
    for name in sorted(RESULTS.glob("hessian_trace_pl_*.json")):
        d = json.loads(name.read_text())
        if "speedup_trace_vs_pyhessian" not in d or name.stem.endswith("_diagcheck"):
            continue
        tm = d["trace_times_median_s"]
        out.append(
            _row(
                f"Hessian trace, {d['arch']} net (P = {d['P']:,}, batch {d['batch']}, {d['threads']} thread)",
                f"Hutchinson at matched probes {d['speedup_trace_vs_pyhessian']:.2f}× PyHessian; exact "
                f"piecewise-linear trace {tm['pyhessian'] / tm['ours_exact_pl_layers']:.1f}× "
                "PyHessian's 27-probe estimate",
                f"exact trace {d['exact_trace']:.4g}; PyHessian z = {d['pyhessian_trace_z']:.2f}, ours "
                f"z = {d['ours_trace_z']:.2f}",
                "PyHessian 0.1",
                name.name,
            )
        )
    return out


def curvature_rows() -> list[str]:
    """Rows of the curvature-operator benchmark (``bench_hessian.py``, one file per net) and the LLC
    defaults against Aoyagi-Watanabe's RLCT (``bench_llc.py --aoyagi``)."""
    out = []
    for name in sorted(RESULTS.glob("hessian_issue18_*.json")):
        d = json.loads(name.read_text())
        an = d.get("anchors", {})
        versions = ", ".join(f"{k} {v}" for k, v in an.items())
        out.append(
            _row(
                f"curvature, {d['arch']} net (P = {d['P']:,}, batch {d['batch']}, {d['threads']} thread, "
                f"{d['dtype']})",
                f"exact trace {d['exact_speedup_vs_backpack']:.2f}× BackPACK; top-5 eigenvalues "
                f"{d['top5_speedup_vs_curvlinops']:.1f}× curvlinops + eigsh; time to a 1 % RMS trace error "
                f"{d['trace_time_to_1pct_ours_auto_over_best_curvlinops']:.2f}× "
                "curvlinops' best estimator's; "
                f"SLQ {d['slq_speedup_vs_pyhessian']:.2f}× PyHessian",
                f"trace rel. error {d['exact_ours_relerr']:.1e} (BackPACK {d['exact_backpack_relerr']:.1e}); "
                f"top-5 {d['top5_ours_relerr']:.0e} (curvlinops {d['top5_curvlinops_eigsh_relerr']:.0e}); "
                f"SLQ first moment RMS {100 * d['slq_ours_rms_relerr']:.1f} % "
                f"(PyHessian {100 * d['slq_pyhessian_rms_relerr']:.0f} %)",
                versions,
                name.name,
            )
        )
    llc = _load("llc_issue18_aoyagi.json")
    if llc is not None:
        out.append(
            _row(
                f"local learning coefficient, `SGLDConfig()` defaults, {llc['n_problems']} reduced-rank "
                f"regression problems (all four Aoyagi cases, unit and large truths), n = {llc['n']:,}",
                f"{llc['n_within_5pct']} of {llc['n_problems']} within 5 % of the RLCT (RMS "
                f"{100 * llc['rms_rel_err']:.1f} %, worst {100 * llc['max_abs_rel_err']:.1f} %; "
                f"{llc['n_flagged']} runs flagged); "
                f"median {llc['median_seconds']:.1f} s per problem",
                "relative error against Aoyagi & Watanabe's closed form",
                "Aoyagi–Watanabe RLCT",
                "llc_issue18_aoyagi.json",
            )
        )
    dv = _load("llc_devinterp.json")
    if dv is not None:
        sp_ = [r["speedup_matched"] for r in dv["rows"]]
        out.append(
            _row(
                f"local learning coefficient against devinterp at matched SGLD settings ({len(dv['rows'])} "
                "reduced-rank-regression shapes, one per Aoyagi case, full-batch, "
                f"{dv['rows'][0]['chains']} chains × {dv['rows'][0]['draws']} draws, 1 thread)",
                f"{dv['speedup_matched_total']:.1f}× in total ({min(sp_):.1f}–{max(sp_):.1f}× per problem)",
                f"worst error vs the RLCT: ours {100 * dv['max_abs_rel_err_ghostsing']:.1f} %, devinterp "
                f"{100 * dv['max_abs_rel_err_devinterp']:.1f} %",
                f"devinterp {dv['versions']['devinterp']}, torch {dv['versions']['torch']}",
                "llc_devinterp.json",
            )
        )
    return out


def table() -> str:
    rows = (
        integrator_rows()
        + error_estimate_rows()
        + codegen_rows()
        + sgd_rows()
        + batched_rows()
        + hessian_rows()
        + curvature_rows()
    )
    head = [
        "| case | figure | error measure | anchor (version) | from `benchmarks/results/` |",
        "|---|---|---|---|---|",
    ]
    missing = [
        f
        for f, script in (
            ("llc_devinterp.json", "bench_llc_devinterp.py (local learning coefficient vs devinterp)"),
        )
        if not (RESULTS / f).exists() and script
    ]
    note = ""
    if missing:
        note = (
            "\n\nNot in the table because no result file is committed: "
            + "; ".join(
                s
                for f, s in (
                    ("llc_devinterp.json",
                     "`bench_llc_devinterp.py` local learning coefficient against devinterp"),
                )
                if f in missing
            )
            + "."
        )
    return "\n".join(head + rows) + note


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args(argv)
    text = a.readme.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{a.readme}: markers {BEGIN} / {END} not found")
    i, j = text.index(BEGIN) + len(BEGIN), text.index(END)
    new = text[:i] + "\n" + table() + "\n" + text[j:]
    if a.check:
        return 0 if new == text else 1
    a.readme.write_text(new)
    print(f"wrote the Measured table of {a.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
