"""Benchmark for issue 18: ghostsing's curvature operators against curvlinops-for-pytorch, BackPACK and
PyHessian on the same nets, in one process.

Not a test.  The anchors are installed only in the benchmark environment, never as dependencies:
``pip install --no-deps curvlinops-for-pytorch==3.0.1 backpack-for-pytorch==1.7.1 pyhessian==0.1 einops
unfoldnd einconv linear_operator jaxtyping typeguard`` (``--no-deps`` keeps torch 2.13.0 CPU).

Nets (``--arch``): ``mlp`` ReLU MLP 192 -> 24 -> 24 -> 24 -> 10 (P = 6,082); ``conv`` conv3x3(3->16) - ReLU -
maxpool 2 - conv3x3(16->32) - ReLU - global average pool - linear(32->10) (P = 5,418); ``mlp200k`` ReLU MLP
192 -> 384 -> 384 -> 10 (P = 226,186).  Each after 300 full-batch Adam steps on the first 1,000 CIFAR-10
training images pooled to 8x8x3 (Gaussian inputs when the data are absent), cross-entropy, float32, CPU, eval
mode, ``torch.set_num_threads(--threads)``.

Reference: the float64 exact trace ``tr H = tr G`` of these piecewise-linear nets
(``GGNOperator.trace_exact``; equal to the float64 unit-vector-HVP trace to the last digit on the MLP,
benchmarks/README_curvature.md).

Measured (``--sections``):

* ``exact``: exact trace, ours (``GGNOperator.trace_exact``, float32) vs BackPACK ``DiagGGNExact`` summed
  (float64 default dtype around BackPACK for nets with adaptive pooling, as its float64 path needs);
* ``topk``: top-5 eigenvalues, ours (``extreme_eigenvalues``, Lanczos with Ritz-residual stop) vs
  ``scipy.sparse.linalg.eigsh`` over curvlinops' ``HessianLinearOperator.to_scipy()`` (tol 1e-6), accuracy
  against a tight-tolerance Lanczos run;
* ``trace``: stochastic traces, time to a 1 % RMS relative error: RMS error over ``--reps`` seeds at each
  budget of ``--budgets`` matrix-vector products, log-log interpolation of RMS vs budget to 1 %, times the
  median wall time per budget (linear in the budget); ours (``trace`` auto = XTrace or Hutchinson, XTrace,
  Hutch++, Hutchinson) vs curvlinops (``xtrace``, ``hutchpp_trace``, ``hutchinson_trace``);
* ``slq``: SLQ density at its default cost (ours: 8 probes x 80 steps, deflated), first moment vs tr H / P
  over ``--reps`` seeds, vs PyHessian's ``density(iter=100, n_v=1)`` (time and first moment).

Usage: ``python benchmarks/bench_hessian.py --arch mlp --json benchmarks/results/hessian_issue18_mlp.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from ghostsing.deepcheck import operators as ops
from ghostsing.deepcheck.probes import hessian as hs


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
    """ReLU MLP 192 -> width (x depth) -> 10."""
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



def _median_time(f, reps: int) -> tuple[object, float]:
    out, ts = None, []
    for _ in range(reps):
        out, t = _timed(f)
        ts.append(t)
    return out, float(np.median(ts))


def _exact_section(model, x, y, ref: float, reps: int) -> dict:
    from backpack import backpack, extend
    from backpack.extensions import DiagGGNExact

    fl = ops.flat_loss(model, "cross_entropy", x, y)
    ours, t_ours = _median_time(lambda: fl.ggn().trace_exact(), reps)
    bm = extend(_copy(model))
    crit = extend(torch.nn.CrossEntropyLoss())

    def bp() -> float:
        bm.zero_grad()
        with backpack(DiagGGNExact()):
            crit(bm(x), y).backward()
        return float(sum(p.diag_ggn_exact.sum() for p in bm.parameters()))

    theirs, t_bp = _median_time(bp, reps)
    return dict(exact_ours_s=t_ours, exact_ours=ours, exact_ours_relerr=abs(ours - ref) / ref,
                exact_backpack_s=t_bp, exact_backpack=theirs, exact_backpack_relerr=abs(theirs - ref) / ref,
                exact_speedup_vs_backpack=t_bp / t_ours)


def _copy(model):
    import copy

    return copy.deepcopy(model)


def _curvlinops_H(model, x, y):
    from curvlinops import HessianLinearOperator

    return HessianLinearOperator(model, torch.nn.CrossEntropyLoss(), list(model.parameters()), [(x, y)],
                                 check_deterministic=False)


def _topk_section(model, x, y, reps: int) -> dict:
    from scipy.sparse.linalg import eigsh

    fl = ops.flat_loss(model, "cross_entropy", x, y)
    tight = hs.extreme_eigenvalues(fl.hessian(), 5, tol=1e-9, m=min(fl.dim, 300)).values
    ours, t_ours = _median_time(lambda: hs.extreme_eigenvalues(fl.hessian(), 5).values, reps)
    H = _curvlinops_H(model, x, y)
    theirs, t_cl = _median_time(lambda: np.sort(eigsh(H.to_scipy(), k=5, which="LA", tol=1e-6)[0])[::-1],
                                reps)
    rel = lambda v: float(np.max(np.abs(v - tight) / np.abs(tight)))  # noqa: E731
    return dict(top5_reference=tight.tolist(), top5_ours_s=t_ours, top5_ours_relerr=rel(ours),
                top5_curvlinops_eigsh_s=t_cl, top5_curvlinops_eigsh_relerr=rel(theirs),
                top5_speedup_vs_curvlinops=t_cl / t_ours)


def _time_to_1pct(budgets, rms_rel, times) -> tuple[float, str]:
    """Time at which the RMS relative error reaches 1 %: log-log interpolation (or extrapolation with the
    fitted slope) of RMS vs budget, wall time linear in the budget (least squares)."""
    b, e, t = (np.asarray(v, dtype=float) for v in (budgets, rms_rel, times))
    slope, icpt = np.polyfit(np.log(b), np.log(e), 1)
    if e.min() <= 0.01 <= e.max():
        k = int(np.flatnonzero(e <= 0.01)[0])
        lo = max(k - 1, 0)
        if k == lo:
            m1, how = b[0], "at the smallest budget"
        else:
            f = (np.log(0.01) - np.log(e[lo])) / (np.log(e[k]) - np.log(e[lo]))
            m1, how = float(np.exp(np.log(b[lo]) + f * (np.log(b[k]) - np.log(b[lo])))), "interpolated"
    else:
        m1, how = float(np.exp((np.log(0.01) - icpt) / slope)), f"extrapolated (slope {slope:.2f})"
    a1, a0 = np.polyfit(b, t, 1)
    return float(a0 + a1 * m1), f"{how}, {m1:.0f} products"


def _trace_section(model, x, y, ref: float, budgets, reps: int) -> dict:
    import curvlinops

    fl = ops.flat_loss(model, "cross_entropy", x, y)
    H = _curvlinops_H(model, x, y)
    ests = {
        "ours_auto": lambda m, s: hs.trace(fl.hessian(), m, seed=s).mean,
        "ours_xtrace": lambda m, s: hs.xtrace(fl.hessian(), m, seed=s).mean,
        "ours_hutchpp": lambda m, s: hs.hutchpp_trace(fl.hessian(), m, seed=s).mean,
        "ours_hutchinson": lambda m, s: hs.hutchinson_trace(fl.hessian(), m, seed=s).mean,
        "curvlinops_xtrace": lambda m, s: (torch.manual_seed(s), float(curvlinops.xtrace(H, m)))[1],
        "curvlinops_hutchpp": lambda m, s: (torch.manual_seed(s), float(curvlinops.hutchpp_trace(H, m)))[1],
        "curvlinops_hutchinson": lambda m, s: (torch.manual_seed(s),
                                               float(curvlinops.hutchinson_trace(H, m)))[1],
    }
    out: dict = {"trace_budgets": list(budgets), "trace_reps": reps}
    errs = {k: {m: [] for m in budgets} for k in ests}
    tms = {k: {m: [] for m in budgets} for k in ests}
    for m in budgets:  # interleaved: every estimator once per seed, so load changes hit all alike
        for s in range(reps):
            for name, f in ests.items():
                v, t = _timed(lambda f=f, m=m, s=s: f(m, s))
                errs[name][m].append((v - ref) / ref)
                tms[name][m].append(t)
    for name in ests:
        rms = [float(np.sqrt(np.mean(np.square(errs[name][m])))) for m in budgets]
        med = [float(np.median(tms[name][m])) for m in budgets]
        t1, how = _time_to_1pct(budgets, rms, med)
        per = float(np.median([t / m for m, t in zip(budgets, med, strict=True)]))
        m1 = float(how.split(", ")[-1].split()[0])
        out[f"trace_{name}"] = dict(rms_rel=rms, median_s=med, time_to_1pct_s=t1, how=how,
                                    s_per_product=per, time_to_1pct_from_per_product_s=per * m1)
        print(name, rms, med, t1, how, per * m1, flush=True)
    best_cl = min(out[f"trace_{k}"]["time_to_1pct_s"] for k in ests if k.startswith("curvlinops"))
    ours = out["trace_ours_auto"]["time_to_1pct_s"]
    out["trace_time_to_1pct_ours_auto_over_best_curvlinops"] = ours / best_cl
    key = "time_to_1pct_from_per_product_s"
    best_cl2 = min(out[f"trace_{k}"][key] for k in ests if k.startswith("curvlinops"))
    ratio = out["trace_ours_auto"][key] / best_cl2
    out["trace_time_to_1pct_per_product_ours_auto_over_best_curvlinops"] = ratio
    return out


def _slq_section(model, x, y, ref: float, reps: int) -> dict:
    from pyhessian import hessian as PyHessian

    _patch_torch_eig()
    fl = ops.flat_loss(model, "cross_entropy", x, y)
    p = fl.dim
    errs, ts, ses = [], [], []
    for s in range(reps):
        r, t = _timed(lambda s=s: hs.slq(fl.hessian(), seed=s))
        errs.append(r.moment(1) * p / ref - 1)
        ses.append(r.moment_stderr(1) * p / ref)
        ts.append(t)
    m = _copy(model)
    m.zero_grad(set_to_none=True)
    ph = PyHessian(m, torch.nn.CrossEntropyLoss(), data=(x, y), cuda=False)
    pe, pts = [], []
    for s in range(reps):
        torch.manual_seed(s)
        (nodes, w), t = _timed(lambda: ph.density(iter=100, n_v=1))
        pe.append(float((np.array(w) * np.array(nodes)).sum(1).mean()) * p / ref - 1)
        pts.append(t)
    return dict(slq_ours_first_moment_relerr=errs, slq_ours_reported_relstderr=ses,
                slq_ours_rms_relerr=float(np.sqrt(np.mean(np.square(errs)))),
                slq_ours_median_s=float(np.median(ts)), slq_pyhessian_first_moment_relerr=pe,
                slq_pyhessian_rms_relerr=float(np.sqrt(np.mean(np.square(pe)))),
                slq_pyhessian_median_s=float(np.median(pts)),
                slq_speedup_vs_pyhessian=float(np.median(pts) / np.median(ts)))


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", choices=("mlp", "conv", "mlp200k"), default="mlp")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--train-steps", type=int, default=300)
    ap.add_argument("--reps", type=int, default=8)
    ap.add_argument("--budgets", default="24,48,96,192,384", help="products per estimate (multiples of 6)")
    ap.add_argument("--sections", default="exact,topk,trace,slq")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    x, y, src = _data(a.batch)
    if a.arch == "conv":
        x = x.reshape(-1, 8, 8, 3).permute(0, 3, 1, 2).contiguous()
        model = _conv_net()
    elif a.arch == "mlp200k":
        model = _net(384, 2)
    else:
        model = _net(24, 3)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(a.train_steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    fl64 = ops.flat_loss(model, "cross_entropy", x, y, dtype=torch.float64)
    ref, t_ref = _timed(lambda: fl64.ggn().trace_exact())
    out: dict = {"arch": a.arch, "data": src, "batch": a.batch, "threads": a.threads, "dtype": "float32",
                 "P": sum(p.numel() for p in model.parameters()), "reference_trace_float64": ref,
                 "reference_s": t_ref, "torch": torch.__version__, "load_average_at_start": os.getloadavg()}
    try:
        import importlib.metadata as md

        names = ("curvlinops-for-pytorch", "backpack-for-pytorch", "pyhessian")
        out["anchors"] = {k: md.version(k) for k in names}
    except Exception:  # noqa: BLE001 - versions are informative only
        pass
    secs = a.sections.split(",")
    budgets = [int(b) for b in a.budgets.split(",")]
    if "exact" in secs:
        out.update(_exact_section(model, x, y, ref, max(3, a.reps // 2)))
    if "topk" in secs:
        out.update(_topk_section(model, x, y, max(3, a.reps // 2)))
    if "slq" in secs:
        out.update(_slq_section(model, x, y, ref, min(a.reps, 5)))
    if "trace" in secs:
        out.update(_trace_section(model, x, y, ref, budgets, a.reps))
    print(json.dumps(out, indent=1))
    if a.json:
        _write_json(a.json, out)
    return out


if __name__ == "__main__":
    main()
