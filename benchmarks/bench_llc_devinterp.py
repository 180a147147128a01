"""Benchmark: ghostsing's LLC estimator against devinterp 2.0.1 at matched SGLD settings on reduced-rank
regression with known RLCT (Aoyagi & Watanabe 2005).  Not a test; run by hand in a separate environment:

    python -m venv --system-site-packages /tmp/dvenv
    /tmp/dvenv/bin/pip install devinterp==2.0.1 'torch==2.13.0'   # the pin keeps the system torch CPU build
    /tmp/dvenv/bin/python benchmarks/bench_llc_devinterp.py --json benchmarks/results/llc_devinterp.json

Problems: one RRR shape (M, H, N, r) per Aoyagi case, unit-scale truth (``make_rrr_data`` defaults, data seed
100), n samples.  w* = the maximum-likelihood factors (``RRRProblem.mle``).  The raw (X, Y) are regenerated
with ``make_rrr_data``'s random stream (checked against its sufficient statistics).

Matched settings, both in float32 on the same ``nn.Module`` (Linear(M, H) -> Linear(H, N), no bias), loss
= per-sample 0.5 ||y - B A x||^2 (sigma = 1): n beta = n / ln n, gamma = 0.05 sqrt(n beta) (our default
rule), SGLD step eps = 0.05 / (n beta lambda_max(H(w*)) + gamma) (our default relative step, computed once
here and passed to both), full-batch gradients, same chains / draws / burn-in, no preconditioner.  ghostsing:
``estimate_llc(functional_batched_loss(...), ..., SGLDConfig(sampler='sgld', preconditioner='none',
step_size=eps, gamma=gamma))``.  devinterp 2.0.1 (its API takes language-model data): the data set is one
"sequence" of sample indices ``[0, 0, 1, ..., n-1]``, ``batch_size=1``, and the ``loss_fn`` returns the
per-sample losses of the indexed samples as the per-token loss (shape (1, n)), so devinterp's mean
per-token loss is L_n; ``llc(..., lr=eps, n_beta=nbeta, localization=gamma, sampling_method='sgmcmc_sgld')``,
its update ``w -= (eps/2)(n beta grad L + gamma (w - w0)); w += sqrt(eps) xi`` is ours.  devinterp's own
``llc_mean`` averages the loss over every step *including burn-in*; the matched number ``devinterp_llc``
recomputes it from devinterp's stored loss trace over the draws only (our estimator).  devinterp writes a
Zarr store of every per-sample loss and index of every step (12 n bytes per step and chain) to /tmp,
deleted after each run; its wall time includes that (its default behaviour).

Also reported: ghostsing's defaults (``SGLDConfig()``: preconditioned MALA, adapted step, 8 chains x 4000
draws) on the float64 sufficient-statistics loss.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import math
import os
import shutil
import tempfile
import time

import numpy as np
import torch

from ghostsing.deepcheck.probes.llc import SGLDConfig, estimate_llc, functional_batched_loss
from ghostsing.deepcheck.probes.rrr import RRRData, RRRProblem, aoyagi_case, make_rrr_data

#: one shape per Aoyagi case (1, 2, 3, 4)
SHAPES: tuple[tuple[int, int, int, int], ...] = ((4, 2, 3, 1), (3, 2, 6, 2), (6, 2, 2, 2), (1, 3, 1, 1))


def raw_data(p: RRRProblem, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, RRRData]:
    """(X, Y) drawn exactly as ``make_rrr_data(p, n, seed=seed)`` draws them (same random stream)."""
    rng = np.random.default_rng(seed)
    A0, B0 = np.zeros((p.H, p.M)), np.zeros((p.N, p.H))
    if p.r > 0:
        U = np.linalg.qr(rng.standard_normal((p.N, p.r)))[0]
        V = np.linalg.qr(rng.standard_normal((p.M, p.r)))[0]
        sq = np.sqrt(np.linspace(1.0, 2.0, p.r))
        A0[: p.r] = sq[:, None] * V.T
        B0[:, : p.r] = U * sq[None, :]
    X = rng.standard_normal((n, p.M))
    Y = X @ (B0 @ A0).T + p.sigma * rng.standard_normal((n, p.N))
    d = make_rrr_data(p, n, seed=seed)
    assert np.allclose(d.sxx.numpy(), X.T @ X / n) and np.allclose(d.syx.numpy(), Y.T @ X / n)
    return X, Y, d


def one_problem(shape, a, zarr_root: str) -> dict:
    from devinterp.slt.llc import llc as dv_llc

    p = RRRProblem(*shape)
    n = a.n
    X, Y, d64 = raw_data(p, n, seed=100)
    ws = p.mle(d64)
    A, B = p.split(ws)
    nbeta = n / math.log(n)
    gamma = 0.05 * math.sqrt(nbeta)
    f = lambda w: p.loss(w, d64)  # noqa: E731
    lam_max = float(torch.linalg.eigvalsh(torch.autograd.functional.hessian(f, ws)).max())
    eps = 0.05 / (nbeta * lam_max + gamma)
    Xt, Yt = torch.tensor(X, dtype=torch.float32), torch.tensor(Y, dtype=torch.float32)

    def net():
        m = torch.nn.Sequential(torch.nn.Linear(p.M, p.H, bias=False), torch.nn.Linear(p.H, p.N, bias=False))
        with torch.no_grad():
            m[0].weight.copy_(A.float())
            m[1].weight.copy_(B.float())
        return m

    row = dict(shape=list(shape), case=aoyagi_case(*shape), d=p.dim, rlct=p.rlct, n=n, nbeta=nbeta,
               gamma=gamma,
               step=eps, eps_nbeta_lambda_max=eps * nbeta * lam_max, chains=a.chains, draws=a.draws,
               burnin=a.burnin)

    # ghostsing, matched: nn.Module closure, float32, plain SGLD, fixed step
    cfg = SGLDConfig(step_size=eps, gamma=gamma, nbeta=nbeta, num_chains=a.chains, num_draws=a.draws,
                     num_burnin=a.burnin, sampler="sgld", preconditioner="none")
    crit = lambda o, t: 0.5 * ((o - t) ** 2).sum(1).mean()  # noqa: E731
    loss_m, w0 = functional_batched_loss(net(), crit, Xt, Yt)
    t = time.perf_counter()
    r = estimate_llc(loss_m, w0, n, cfg, seed=0)
    row.update(ghostsing_s=time.perf_counter() - t, ghostsing_llc=r.llc, ghostsing_llc_stderr=r.llc_stderr,
               ghostsing_rel_err=r.llc / p.rlct - 1, ghostsing_flags=list(r.flags))

    # ghostsing defaults (MALA, preconditioned, adapted), float64 sufficient statistics
    if not a.skip_defaults:
        t = time.perf_counter()
        r = estimate_llc(lambda W, idx: p.loss(W, d64), ws, n, SGLDConfig(), seed=0)
        row.update(ghostsing_default_s=time.perf_counter() - t, ghostsing_default_llc=r.llc,
                   ghostsing_default_llc_stderr=r.llc_stderr, ghostsing_default_rel_err=r.llc / p.rlct - 1,
                   ghostsing_default_flags=list(r.flags))

    # devinterp 2.0.1, matched: the data set as one sequence of sample indices, per-token loss = per-sample
    from datasets import Dataset

    ds = Dataset.from_dict({"input_ids": [[0] + list(range(n))]}).with_format("torch")

    def loss_fn(model, input_ids):
        idx = input_ids[:, 1:]
        out = model(Xt[idx])  # (1, n, N)
        return 0.5 * ((out - Yt[idx]) ** 2).sum(-1)  # (1, n)

    path = os.path.join(zarr_root, f"dv_{'_'.join(map(str, shape))}.zarr")
    t = time.perf_counter()
    res = dv_llc(net(), ds, {}, lr=eps, n_beta=nbeta, localization=gamma, sampling_method="sgmcmc_sgld",
                 loss_fn=loss_fn, num_chains=a.chains, num_draws=a.draws, num_burnin_steps=a.burnin,
                 batch_size=1, num_init_loss_batches=1, device="cpu", output_path=path)
    trace = np.asarray(res.loss_trace.values, dtype=np.float64)  # (chain, step), burn-in included
    init_loss = float(res.init_loss)
    dv_s = time.perf_counter() - t
    zarr_bytes = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(path) for f in fs)
    shutil.rmtree(path)
    per_chain = nbeta * (trace[:, a.burnin:].mean(1) - init_loss)
    row.update(devinterp_s=dv_s, devinterp_llc=float(per_chain.mean()),
               devinterp_llc_stderr=float(per_chain.std(ddof=1) / math.sqrt(a.chains)),
               devinterp_rel_err=float(per_chain.mean()) / p.rlct - 1,
               devinterp_own_llc_mean_incl_burnin=float(res.llc_mean), devinterp_zarr_bytes=zarr_bytes,
               devinterp_init_loss_minus_ours=init_loss - float(loss_m(w0[None], None)[0]))
    row["speedup_matched"] = row["devinterp_s"] / row["ghostsing_s"]
    return row


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--burnin", type=int, default=500)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--shapes", type=int, default=len(SHAPES), help="the first k shapes only")
    ap.add_argument("--skip-defaults", action="store_true")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    import warnings

    warnings.filterwarnings("ignore")
    out = {"benchmark": "LLC: ghostsing vs devinterp 2.0.1, matched SGLD, RRR",
           "versions": {"torch": torch.__version__, "devinterp": md.version("devinterp"),
                        "ghostsing": md.version("ghostsing"), "zarr": md.version("zarr")},
           "threads": a.threads, "cpus": os.cpu_count(), "loadavg_start": list(os.getloadavg()), "rows": []}
    root = tempfile.mkdtemp(prefix="dvzarr_", dir="/tmp")
    try:
        for shape in SHAPES[: a.shapes]:
            out["rows"].append(one_problem(shape, a, root))
            print(json.dumps(out["rows"][-1]), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rows = out["rows"]
    out["loadavg_end"] = list(os.getloadavg())
    out["total_ghostsing_s"] = sum(r["ghostsing_s"] for r in rows)
    out["total_devinterp_s"] = sum(r["devinterp_s"] for r in rows)
    out["speedup_matched_total"] = out["total_devinterp_s"] / out["total_ghostsing_s"]
    out["max_abs_rel_err_ghostsing"] = max(abs(r["ghostsing_rel_err"]) for r in rows)
    out["max_abs_rel_err_devinterp"] = max(abs(r["devinterp_rel_err"]) for r in rows)
    if not a.skip_defaults:
        out["max_abs_rel_err_ghostsing_default"] = max(abs(r["ghostsing_default_rel_err"]) for r in rows)
        out["total_ghostsing_default_s"] = sum(r["ghostsing_default_s"] for r in rows)
    print(json.dumps({k: v for k, v in out.items() if k != "rows"}, indent=2))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return out


if __name__ == "__main__":
    main()
