"""Benchmark: ghostsing's SGLD local learning coefficient against devinterp 1.x, at matched settings.

Not a test.  Needs ``pip install --no-deps devinterp==1.3.2`` (plus cloudpickle) in the benchmark
environment only.  Problem: reduced-rank regression (M, H, N, r) = (4, 2, 3, 1) with known RLCT 4.0
(Aoyagi & Watanabe 2005), n samples, w* = the maximum-likelihood factors.  Settings matched: SGLD step eps,
localisation gamma, n beta = n / ln n (n = data-set size: devinterp's default takes the batch size),
L_n(w*) on the full data set (devinterp's default averages ``num_chains`` mini-batches), full-batch gradients,
same chains / draws / burn-in, float32 nn.Module for both; ghostsing also on its float64 sufficient-statistics
path.  Usage: ``python benchmarks/bench_llc.py [--n 10000] [--draws 1000] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch

from ghostsing.deepcheck.probes.llc import SGLDConfig, estimate_llc, functional_batched_loss
from ghostsing.deepcheck.probes.rrr import RRRData, RRRProblem


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--burnin", type=int, default=500)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from devinterp.optim.sgld import SGLD
    from devinterp.slt.sampler import estimate_learning_coeff_with_summary

    p = RRRProblem(4, 2, 3, 1)
    n = a.n
    rng = np.random.default_rng(0)
    U = np.linalg.qr(rng.standard_normal((3, 1)))[0]
    V = np.linalg.qr(rng.standard_normal((4, 1)))[0]
    x = rng.standard_normal((n, 4))
    y = x @ (1.5 * U @ V.T).T + rng.standard_normal((n, 3))
    X, Y = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    d64 = RRRData(n, torch.tensor(x.T @ x / n), torch.tensor(y.T @ x / n), float(np.sum(y * y) / n),
                  torch.zeros(2, 4, dtype=torch.float64), torch.zeros(3, 2, dtype=torch.float64), 1.0)
    ws = p.mle(d64)
    A, B = p.split(ws)
    nbeta = n / math.log(n)
    eps = 0.087 / nbeta  # eps * n beta ~ 0.09 (see tests/deepcheck/test_llc.py)
    gamma = 10.0

    def net():
        m = torch.nn.Sequential(torch.nn.Linear(4, 2, bias=False), torch.nn.Linear(2, 3, bias=False))
        with torch.no_grad():
            m[0].weight.copy_(A.float())
            m[1].weight.copy_(B.float())
        return m

    crit = lambda o, t: 0.5 * ((o - t) ** 2).sum(1).mean()  # per-sample NLL, sigma = 1
    cfg = SGLDConfig(step_size=eps, gamma=gamma, nbeta=nbeta, num_chains=a.chains, num_draws=a.draws,
                     num_burnin=a.burnin)
    out = {"problem": "RRR (M,H,N,r)=(4,2,3,1)", "rlct": p.rlct, "n": n, "nbeta": nbeta, "step": eps,
           "gamma": gamma, "chains": a.chains, "draws": a.draws, "burnin": a.burnin, "threads": a.threads}

    m = net()
    loss_m, w0 = functional_batched_loss(m, crit, X, Y)
    t = time.perf_counter()
    r_mod = estimate_llc(loss_m, w0, n, cfg, seed=0)
    out["ghostsing_module_s"] = time.perf_counter() - t
    out["ghostsing_module_llc"] = r_mod.llc
    out["ghostsing_module_llc_std"] = r_mod.llc_std
    t = time.perf_counter()
    r_ss = estimate_llc(lambda W, idx: p.loss(W, d64), ws, n, cfg, seed=0)
    out["ghostsing_suffstats_s"] = time.perf_counter() - t
    out["ghostsing_suffstats_llc"] = r_ss.llc

    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, Y), batch_size=n, shuffle=True)
    evaluate = lambda model, data: crit(model(data[0]), data[1])
    init_loss = float(crit(net()(X), Y))
    t = time.perf_counter()
    res = estimate_learning_coeff_with_summary(
        net(), loader, evaluate=evaluate, sampling_method=SGLD,
        optimizer_kwargs={"lr": eps, "localization": gamma, "nbeta": nbeta},
        num_chains=a.chains, num_draws=a.draws, num_burnin_steps=a.burnin, init_loss=init_loss,
        seed=0, verbose=False, device="cpu", cores=1)
    out["devinterp_s"] = time.perf_counter() - t
    out["devinterp_llc"] = float(res["llc/mean"])
    out["devinterp_llc_std"] = float(res["llc/std"])
    # the pitfall: devinterp's defaults with a mini-batch loader (n beta from the batch size, L(w*) from
    # num_chains mini-batches)
    small = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, Y), batch_size=256, shuffle=True)
    res2 = estimate_learning_coeff_with_summary(
        net(), small, evaluate=evaluate, sampling_method=SGLD,
        optimizer_kwargs={"lr": eps, "localization": gamma},
        num_chains=a.chains, num_draws=a.draws // 4, num_burnin_steps=a.burnin // 4, seed=0, verbose=False,
        device="cpu", cores=1)
    out["devinterp_default_nbeta_batch256_llc"] = float(res2["llc/mean"])
    out["devinterp_default_nbeta"] = 256 / math.log(256)
    out["speedup_module_vs_devinterp"] = out["devinterp_s"] / out["ghostsing_module_s"]
    out["speedup_suffstats_vs_devinterp"] = out["devinterp_s"] / out["ghostsing_suffstats_s"]
    print(json.dumps(out, indent=2))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return out


if __name__ == "__main__":
    main()
