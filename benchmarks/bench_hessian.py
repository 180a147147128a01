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
moments, wall times and speed ratios.  Usage: ``python benchmarks/bench_hessian.py [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

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
    torch.manual_seed(seed)
    layers: list[torch.nn.Module] = [torch.nn.Linear(192, width), torch.nn.ReLU()]
    for _ in range(depth - 1):
        layers += [torch.nn.Linear(width, width), torch.nn.ReLU()]
    layers.append(torch.nn.Linear(width, 10))
    return torch.nn.Sequential(*layers)


def _timed(f):
    t = time.perf_counter()
    out = f()
    return out, time.perf_counter() - t


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=24)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--train-steps", type=int, default=300)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from pyhessian import hessian as PyHessian
    from scipy.sparse.linalg import eigsh

    _patch_torch_eig()
    x, y, src = _data(a.batch)
    model = _net(a.width, a.depth)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)  # a partly trained net (more realistic spectrum)
    for _ in range(a.train_steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    crit = torch.nn.CrossEntropyLoss()
    out: dict = {"data": src, "batch": a.batch, "threads": a.threads, "device": "cpu", "dtype": "float32"}

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
    ph_trace, t_ph_trace = _timed(lambda: ph.trace(maxIter=100, tol=1e-3))
    n_probes = len(ph_trace)
    ph_tr = np.array(ph_trace, dtype=np.float64)
    tr, t_tr = _timed(lambda: hs.hutchinson_trace(hvp, fl.dim, max(n_probes, 2), batch=16,
                                                  dtype=torch.float32, seed=0))
    ph_se = float(ph_tr.std(ddof=1) / np.sqrt(n_probes)) if n_probes > 1 else float("nan")
    out.update(pyhessian_trace=float(ph_tr.mean()), pyhessian_trace_probes=n_probes,
               pyhessian_trace_stderr=ph_se, pyhessian_trace_s=t_ph_trace,
               pyhessian_trace_z=(ph_tr.mean() - out["exact_trace"]) / ph_se,
               ours_trace=tr.mean, ours_trace_stderr=tr.stderr, ours_trace_s=t_tr,
               ours_trace_z=(tr.mean - out["exact_trace"]) / tr.stderr)
    pp, t_pp = _timed(lambda: hs.hutchpp_trace(hvp, fl.dim, max(n_probes, 6), dtype=torch.float32, seed=0))
    out.update(ours_hutchpp_trace=pp.mean, ours_hutchpp_s=t_pp)
    # accuracy at matched HVP count over repeats: RMS error of Hutchinson (as PyHessian) vs Hutch++
    reps = 10
    e_h = [hs.hutchinson_trace(hvp, fl.dim, n_probes, dtype=torch.float32, seed=s).mean - out["exact_trace"]
           for s in range(reps)]
    e_pp = [hs.hutchpp_trace(hvp, fl.dim, max(n_probes, 6), dtype=torch.float32, seed=s).mean
            - out["exact_trace"] for s in range(reps)]
    out.update(trace_rms_err_hutchinson=float(np.sqrt(np.mean(np.square(e_h)))),
               trace_rms_err_hutchpp=float(np.sqrt(np.mean(np.square(e_pp)))), trace_repeats=reps)
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
    out["speedup_trace_vs_pyhessian"] = t_ph_trace / t_tr
    out["speedup_density_vs_pyhessian"] = t_ph_dens / t_dens
    print(json.dumps(out, indent=2))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return out


if __name__ == "__main__":
    main()
