"""Benchmark: ghostsing's Hessian spectra against PyHessian 0.1 and scipy.sparse.linalg.eigsh.

Not a test.  Needs ``pip install --no-deps pyhessian==0.1`` in the benchmark environment only.

Same net, batch, dtype (float32) and device (CPU) for every method; PyHessian switches the model to eval mode
(``model.eval()`` in its constructor), so ghostsing's closure is also evaluated in eval mode (its default);
the net has no dropout or batch norm, so the mode does not change the loss.  PyHessian's default
``cuda=True`` fails on a CPU-only torch (``AssertionError: Torch not compiled with CUDA enabled``): we pass
its documented ``cuda=False``.  Its ``density()`` calls ``torch.eig``, removed from torch (>= 1.9 deprecated,
now gone: ``RuntimeError: This function was deprecated since version 1.9 and is now removed``); the smallest
patch is a shim ``torch.eig(T, eigenvectors=True) -> (stack([eigh(T).L, 0]), eigh(T).V)`` (T is symmetric
tridiagonal), installed only here.

Reference: the exact float64 Hessian (``ghostsing.deepcheck.probes.hessian.exact_spectrum``).  Reported:
top-5 eigenvalues (relative error), trace (error in units of the estimator's standard error), SLQ density
moments, wall times and speed ratios.
Usage: ``python benchmarks/bench_hessian.py [--json out.json] [--only-trace]``.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from ghostsing.deepcheck.probes import hessian as hs
from ghostsing.deepcheck.probes import pl_trace as pl


def _patch_torch_eig() -> None:
    """The one monkeypatch PyHessian's density() needs on current torch (see module docstring)."""

    def eig(a, eigenvectors=False):
        vals, vecs = torch.linalg.eigh(a)
        return torch.stack([vals, torch.zeros_like(vals)], 1), vecs

    torch.eig = eig


def _data(n: int, seed: int = 0):
    """Pooled (8x8x3) CIFAR-10 images from ../shared/data when present, else Gaussian inputs."""
    try:
        from ghostsing.deepcheck.data import load_cifar

        d = load_cifar("cifar10")
        x = d.x_train[:n].astype(np.float64) / 255.0
        x = x.reshape(n, 8, 4, 8, 4, 3).mean(axis=(2, 4))
        x = (x - x.reshape(-1, 3).mean(0)) / x.reshape(-1, 3).std(0)
        return torch.tensor(x.reshape(n, -1), dtype=torch.float32), torch.tensor(d.y_train[:n]), "cifar10"
    except Exception:  # noqa: BLE001 - benchmark falls back to synthetic data
        g = torch.Generator().manual_seed(seed)
        return torch.randn(n, 192, generator=g), torch.randint(0, 10, (n,), generator=g), "synthetic"


def _net(width: int, depth: int, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    layers: list[torch.nn.Module] = [torch.nn.Linear(192, width), torch.nn.ReLU()]
    for _ in range(depth - 1):
        layers += [torch.nn.Linear(width, width), torch.nn.ReLU()]
    layers.append(torch.nn.Linear(width, 10))
    return torch.nn.Sequential(*layers)


def _write_json(path: str, out: dict) -> None:
    """Atomic write (tmp file + os.replace)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        json.dump(out, fh, indent=2)
    os.replace(tmp, path)


def _conv_net(seed: int = 0) -> torch.nn.Module:
    """conv3x3(3->16, same) - ReLU - maxpool2 - conv3x3(16->32, same) - ReLU - global avg pool -
    linear(32->10): P = 5,418; piecewise linear in each parameter (``--arch conv``, trace only)."""
    torch.manual_seed(seed)
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(32, 10))


def _timed(f):
    t = time.perf_counter()
    out = f()
    return out, time.perf_counter() - t


def _exact_trace(model, crit, x, y, chunk: int = 256) -> float:
    """``tr H = sum_i e_i^T H e_i`` in float64 from batched HVPs with unit vectors (no eigendecomposition)."""
    fl64 = hs.flat_loss(model, crit, x, y, dtype=torch.float64)
    hvp = hs.make_hvp(fl64.fn, fl64.theta, method="jvp")
    eye = torch.eye(fl64.dim, dtype=torch.float64)
    tot = 0.0
    for i in range(0, fl64.dim, chunk):
        tot += float(torch.diagonal(hvp(eye[i : i + chunk]), offset=i).sum())
    return tot


def _diag_spot_check(model, crit, x, y, k: int, seed: int = 0) -> dict:
    """Exact-PL Hessian diagonal (float64) against ``e_i^T H e_i`` from float64 HVPs (double backward, no
    piecewise-linear identity involved) at ``k`` random coordinates ``i``."""
    fl64 = hs.flat_loss(model, crit, x, y, dtype=torch.float64)
    d, t_diag = _timed(lambda: pl.hessian_diagonal_piecewise_linear(model, x, y, dtype=torch.float64))
    idx = np.random.default_rng(seed).choice(fl64.dim, size=min(k, fl64.dim), replace=False)
    hvp = hs.make_hvp(fl64.fn, fl64.theta, method="double_backward")
    e = torch.zeros(fl64.dim, dtype=torch.float64)
    ref = []
    for i in idx:
        e.zero_()
        e[i] = 1.0
        ref.append(float(hvp(e)[i]))
    ref_a, got = np.array(ref), d.numpy()[idx]
    scale = float(np.abs(d.numpy()).max())
    return dict(diag_check_coords=int(len(idx)), diag_check_max_abs_err_over_max_diag=float(
        np.abs(got - ref_a).max() / scale), diag_check_max_rel_err_nonzero=float(
        (np.abs(got - ref_a) / np.abs(ref_a))[np.abs(ref_a) > 1e-8 * scale].max()),
        exact_pl_diag_float64_s=t_diag, exact_pl_diag_float64_trace=float(d.sum()))


def _trace_comparison(ph, fl, exact_trace: float, reps: int, block: int, probes: int = 0,
                      compiled: bool = False, pl_problem=None) -> dict:
    """Hutchinson trace, ghostsing vs PyHessian at the probe count PyHessian's own stopping rule picks.

    Times are medians over ``reps`` interleaved repeats (PyHessian re-run with ``maxIter=n, tol=0``, i.e.
    exactly ``n`` probes).  ghostsing's times include building its HVP closure; PyHessian's exclude its
    constructor (which builds the gradient graph), as before.

    ``pl_problem=(model, x, y)``: also the exact trace of a piecewise-linear net,
    ``tr H = tr GGN = (1/N) sum_n sum_c ||grad (s_{n,c}^T z_n)||^2`` (``pl_trace``; no estimator error),
    timed in the same interleaved loop on both of its paths (``'layers'``: per-layer ``||g||^2 ||a||^2``,
    unfold / Gram identity for conv layers; ``'func'``: torch.func per-sample vjps), in the benchmark's
    float32, plus one float64 evaluation that
    is compared with ``exact_trace``.
    """
    ph_trace = ph.trace(maxIter=100, tol=1e-3) if probes <= 0 else ph.trace(maxIter=probes, tol=0.0)
    n = len(ph_trace)
    ph_tr = np.array(ph_trace, dtype=np.float64)
    ph_se = float(ph_tr.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    d = fl.dim

    def ours(method: str, b: int):
        return hs.hutchinson_trace(hs.make_hvp(fl.fn, fl.theta, method=method), d, max(n, 2), batch=b,
                                   dtype=torch.float32, seed=0)

    variants = {"ours_jvp_batched": ("jvp", block), "ours_db_batched": ("double_backward", block),
                "ours_db_sequential": ("double_backward", 1)}
    pl_variants = {"ours_exact_pl_layers": "layers", "ours_exact_pl_func": "func"} if pl_problem else {}
    times: dict[str, list[float]] = {k: [] for k in ["pyhessian", *variants, *pl_variants]}
    ests = {}
    pl_vals: dict[str, float] = {}
    for _ in range(reps):
        times["pyhessian"].append(_timed(lambda: ph.trace(maxIter=n, tol=0.0))[1])
        for k, (m, b) in variants.items():
            ests[k], t = _timed(lambda m=m, b=b: ours(m, b))
            times[k].append(t)
        for k, m in pl_variants.items():
            pl_vals[k], t = _timed(lambda m=m: pl.exact_trace_piecewise_linear(*pl_problem, method=m))
            times[k].append(t)
    if compiled:  # opt-in: torch.compile (inductor, C++ codegen) of the batched jvp HVP; one-time compile
        chvp = torch.compile(hs.make_hvp(fl.fn, fl.theta, method="jvp"))
        warm, t_first = _timed(lambda: hs.hutchinson_trace(chvp, d, max(n, 2), batch=block,
                                                           dtype=torch.float32, seed=0))
        times["ours_jvp_batched_compiled"] = [
            _timed(lambda: hs.hutchinson_trace(chvp, d, max(n, 2), batch=block, dtype=torch.float32,
                                               seed=0))[1] for _ in range(reps)]
        variants["ours_jvp_batched_compiled"] = ("compiled", block)
        ests["ours_jvp_batched_compiled"] = warm
        compile_s = t_first
    med = {k: float(np.median(v)) for k, v in times.items()}
    tr = ests["ours_jvp_batched"]
    res = dict(
        pyhessian_trace=float(ph_tr.mean()), pyhessian_trace_probes=n, pyhessian_trace_stderr=ph_se,
        pyhessian_trace_z=(ph_tr.mean() - exact_trace) / ph_se, pyhessian_trace_s=med["pyhessian"],
        ours_trace=tr.mean, ours_trace_stderr=tr.stderr, ours_trace_z=(tr.mean - exact_trace) / tr.stderr,
        ours_trace_s=med["ours_jvp_batched"], trace_block=block, trace_timing_reps=reps,
        trace_times_median_s=med,
        trace_batched_vs_sequential_max_abs_diff=float(np.abs(ests["ours_db_batched"].samples
                                                              - ests["ours_db_sequential"].samples).max()),
        trace_jvp_vs_db_max_abs_diff=float(np.abs(tr.samples - ests["ours_db_sequential"].samples).max()),
    )
    if compiled:
        res.update(compiled_first_call_incl_compile_s=compile_s,
                   compiled_vs_eager_max_abs_diff=float(np.abs(ests["ours_jvp_batched_compiled"].samples
                                                               - tr.samples).max()))
    res["speedup_trace_vs_pyhessian"] = med["pyhessian"] / med["ours_jvp_batched"]
    res["speedup_trace_vs_pyhessian_by_variant"] = {k: med["pyhessian"] / med[k] for k in variants}
    if pl_problem:
        tr64, t64 = _timed(lambda: pl.exact_trace_piecewise_linear(*pl_problem, dtype=torch.float64))
        res.update(
            exact_pl_trace_float32=pl_vals["ours_exact_pl_layers"],
            exact_pl_trace_float32_func=pl_vals["ours_exact_pl_func"],
            exact_pl_trace_float32_relerr=abs(pl_vals["ours_exact_pl_layers"] - exact_trace)
            / abs(exact_trace),
            exact_pl_trace_float64=tr64, exact_pl_trace_float64_s=t64,
            exact_pl_trace_float64_relerr=abs(tr64 - exact_trace) / abs(exact_trace),
            exact_pl_s=med["ours_exact_pl_layers"], exact_pl_func_s=med["ours_exact_pl_func"],
            speedup_exact_pl_vs_pyhessian=med["pyhessian"] / med["ours_exact_pl_layers"],
            speedup_exact_pl_func_vs_pyhessian=med["pyhessian"] / med["ours_exact_pl_func"],
            pyhessian_s_per_probe=med["pyhessian"] / n,
        )
        # matched accuracy: PyHessian's standard error falls as s/sqrt(n); probes for a 1 % standard error
        s1 = ph_se * np.sqrt(n)
        n1 = int(np.ceil((s1 / (0.01 * abs(exact_trace))) ** 2))
        res.update(pyhessian_probe_std=s1, pyhessian_probes_for_1pct_stderr=n1,
                   pyhessian_s_for_1pct_stderr=n1 * med["pyhessian"] / n,
                   speedup_exact_pl_vs_pyhessian_1pct=n1 * med["pyhessian"] / n / med["ours_exact_pl_layers"])
    hvp = hs.make_hvp(fl.fn, fl.theta, method="jvp")
    pp, t_pp = _timed(lambda: hs.hutchpp_trace(hvp, d, max(n, 6), dtype=torch.float32, seed=0))
    res.update(ours_hutchpp_trace=pp.mean, ours_hutchpp_s=t_pp)
    # accuracy at matched HVP count over repeats: RMS error of Hutchinson (as PyHessian) vs Hutch++
    rr = 10
    e_h = [hs.hutchinson_trace(hvp, d, n, dtype=torch.float32, seed=s).mean - exact_trace for s in range(rr)]
    e_pp = [hs.hutchpp_trace(hvp, d, max(n, 6), dtype=torch.float32, seed=s).mean - exact_trace
            for s in range(rr)]
    res.update(trace_rms_err_hutchinson=float(np.sqrt(np.mean(np.square(e_h)))),
               trace_rms_err_hutchpp=float(np.sqrt(np.mean(np.square(e_pp)))), trace_repeats=rr)
    return res


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=24)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--train-steps", type=int, default=300)
    ap.add_argument("--json", default=None)
    ap.add_argument("--only-trace", action="store_true",
                    help="only the trace comparison (exact trace from unit-vector HVPs, no spectrum)")
    ap.add_argument("--reps", type=int, default=7, help="interleaved timing repeats for the trace")
    ap.add_argument("--trace-block", type=int, default=32, help="probes per batched HVP")
    ap.add_argument("--trace-probes", type=int, default=0,
                    help="probe count for both (0: where PyHessian's tol=1e-3 rule stops)")
    ap.add_argument("--compile", action="store_true",
                    help="also time torch.compile of the batched HVP (trace only; compile time reported)")
    ap.add_argument("--arch", choices=("mlp", "conv"), default="mlp",
                    help="mlp: the ReLU MLP of --width/--depth; conv: a small ReLU conv net on the 8x8x3 "
                         "images (only with --only-trace)")
    ap.add_argument("--diag-check", type=int, default=0,
                    help="trace only: compare the exact-PL diagonal with float64 HVPs at this many random "
                         "coordinates")
    ap.add_argument("--exact-trace", type=float, default=None,
                    help="reuse a known exact trace (from an earlier run) instead of recomputing it")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from pyhessian import hessian as PyHessian
    from scipy.sparse.linalg import eigsh

    _patch_torch_eig()
    if a.arch == "conv" and not a.only_trace:
        ap.error("--arch conv needs --only-trace")
    x, y, src = _data(a.batch)
    if a.arch == "conv":
        x = x.reshape(-1, 8, 8, 3).permute(0, 3, 1, 2).contiguous()  # NCHW images
        model = _conv_net()
    else:
        model = _net(a.width, a.depth)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)  # a partly trained net (more realistic spectrum)
    for _ in range(a.train_steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    crit = torch.nn.CrossEntropyLoss()
    out: dict = {"data": src, "batch": a.batch, "threads": a.threads, "device": "cpu", "dtype": "float32",
                 "arch": a.arch, "load_average_at_start": os.getloadavg()}
    if a.only_trace:
        fl = hs.flat_loss(model, crit, x, y)
        if a.exact_trace is not None:
            exact, t_exact, source = a.exact_trace, float("nan"), "--exact-trace"
        elif a.arch == "conv":  # unit-vector HVPs would take ~10 min here (5,418 HVPs at ~0.11 s in float64)
            exact, t_exact = _timed(lambda: pl.exact_trace_piecewise_linear(model, x, y, dtype=torch.float64))
            source = "pl_trace float64 (checked by --diag-check, not by unit-vector HVPs)"
        else:
            exact, t_exact = _timed(lambda: _exact_trace(model, crit, x, y))
            source = "unit-vector HVPs, float64"
        out.update(P=fl.dim, exact_trace=exact, exact_trace_s=t_exact, exact_trace_source=source)
        if a.diag_check > 0:
            out.update(_diag_spot_check(model, crit, x, y, a.diag_check))
        model.zero_grad(set_to_none=True)
        ph = PyHessian(model, crit, data=(x, y), cuda=False)
        out.update(_trace_comparison(ph, fl, exact, a.reps, a.trace_block, a.trace_probes, a.compile,
                                     pl_problem=(model, x, y) if pl.is_piecewise_linear(model) else None))
        print(json.dumps(out, indent=2))
        if a.json:
            _write_json(a.json, out)
        return out

    fl64 = hs.flat_loss(model, crit, x, y, dtype=torch.float64)
    ev, t_exact = _timed(lambda: hs.exact_spectrum(fl64.fn, fl64.theta))
    out.update(P=fl64.dim, exact_s=t_exact, exact_top5=ev[::-1][:5].tolist(), exact_trace=float(ev.sum()),
               exact_moments=[float(np.mean(ev**p)) for p in (1, 2)])
    top_ref = ev[::-1][:5]

    # ---- ghostsing (float32, same model)
    fl = hs.flat_loss(model, crit, x, y)
    hvp, t_setup = _timed(lambda: hs.make_hvp(fl.fn, fl.theta))
    (top, _), t_top = _timed(lambda: hs.extreme_eigenvalues(hvp, fl.dim, 5, m=60, dtype=torch.float32,
                                                            seed=0))
    out.update(ours_setup_s=t_setup, ours_top5_s=t_top, ours_top5=top.tolist(),
               ours_top5_relerr=(np.abs(top - top_ref) / np.abs(top_ref)).tolist())

    # ---- PyHessian
    model.zero_grad(set_to_none=True)
    ph, t_ph_setup = _timed(lambda: PyHessian(model, crit, data=(x, y), cuda=False))
    (ph_top, _), t_ph_top = _timed(lambda: ph.eigenvalues(maxIter=100, tol=1e-3, top_n=5))
    ph_top = np.array(ph_top)
    out.update(pyhessian_setup_s=t_ph_setup, pyhessian_top5_s=t_ph_top, pyhessian_top5=ph_top.tolist(),
               pyhessian_top5_relerr=(np.abs(ph_top - top_ref) / np.abs(top_ref)).tolist())
    out.update(_trace_comparison(ph, fl, out["exact_trace"], a.reps, a.trace_block, a.trace_probes,
                                 a.compile, pl_problem=(model, x, y)))
    (ph_nodes, ph_w), t_ph_dens = _timed(lambda: ph.density(iter=100, n_v=1))
    ph_nodes, ph_w = np.array(ph_nodes), np.array(ph_w)
    res, t_dens = _timed(lambda: hs.slq(hvp, fl.dim, n_probes=1, m=100, dtype=torch.float32, seed=0))
    res8, t_dens8 = _timed(lambda: hs.slq(hvp, fl.dim, n_probes=8, m=100, dtype=torch.float32, seed=0,
                                          batch=8))
    out.update(pyhessian_density_s=t_ph_dens, ours_density_s=t_dens, ours_density_8probes_s=t_dens8,
               pyhessian_density_moments=[float((ph_w * ph_nodes**p).sum(1).mean()) for p in (1, 2)],
               ours_density_moments=[res.moment(1), res.moment(2)],
               ours_density_8probes_moments=[res8.moment(1), res8.moment(2)],
               pyhessian_density_lambda_max=float(ph_nodes.max()), ours_density_lambda_max=res.lambda_max)

    # ---- scipy eigsh over the LinearOperator of our HVP
    op = hs.HessianOperator(hvp, fl.dim, dtype=torch.float32)
    vals, t_eigsh = _timed(lambda: eigsh(op.as_linear_operator(), k=5, which="LA", tol=1e-6)[0])
    vals = np.sort(vals)[::-1]
    out.update(eigsh_top5=vals.tolist(), eigsh_s=t_eigsh, eigsh_hvps=op.n_calls,
               eigsh_top5_relerr=(np.abs(vals - top_ref) / np.abs(top_ref)).tolist(),
               ours_vs_eigsh_top5_reldiff=(np.abs(top - vals) / np.abs(vals)).tolist())
    out["speedup_top5_vs_pyhessian"] = t_ph_top / (t_top + t_setup)
    out["speedup_top5_vs_eigsh"] = t_eigsh / t_top
    out["speedup_density_vs_pyhessian"] = t_ph_dens / t_dens
    print(json.dumps(out, indent=2))
    if a.json:
        _write_json(a.json, out)
    return out


if __name__ == "__main__":
    main()
