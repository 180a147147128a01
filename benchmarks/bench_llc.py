"""Benchmark: ghostsing's local learning coefficient against Aoyagi & Watanabe's RLCT with the defaults
(``--aoyagi``, the default mode), and against devinterp 1.x at matched SGLD settings (``--devinterp``).

``--aoyagi``: reduced-rank regression y = B A x + eps of nine shapes (M, H, N, r), three in Aoyagi's case 1
and two in each of cases 2-4, each with a unit-scale truth (singular values of B0 A0 in [1, 2]) and a
large-scale one (in [2, 12]), ``--data-seeds`` data sets each, n = ``--n``; ``estimate_llc`` with
``SGLDConfig()`` (the defaults: preconditioned MALA, adapted step, gamma = 0.05 sqrt(n beta)) on the exact
sufficient-statistics loss at the maximum-likelihood w*.  Reported: the estimate, its relative error against
the closed form, the chains' standard error, flags and wall time per problem; summary: max |error| per case.

``--devinterp``: not a test.  Needs ``pip install --no-deps devinterp==1.3.2`` (plus cloudpickle) in the
benchmark environment only.  Problem: reduced-rank regression (M, H, N, r) = (4, 2, 3, 1) with known RLCT 4.0
(Aoyagi & Watanabe 2005), n samples, w* = the maximum-likelihood factors.  Settings matched: SGLD step eps,
localisation gamma, n beta = n / ln n (n = data-set size: devinterp's default takes the batch size),
L_n(w*) on the full data set (devinterp's default averages ``num_chains`` mini-batches), full-batch gradients,
same chains / draws / burn-in, float32 nn.Module for both; ghostsing also on its float64 sufficient-statistics
path.  devinterp 2.0.1 (the current line) is compared in ``bench_llc_devinterp.py`` (a separate venv on
the same torch).
Usage: ``python benchmarks/bench_llc.py [--aoyagi | --devinterp] [--n 100000] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch

from ghostsing.deepcheck.probes.llc import SGLDConfig, estimate_llc, functional_batched_loss
from ghostsing.deepcheck.probes.rrr import RRRData, RRRProblem, aoyagi_case, make_rrr_data

#: (M, H, N, r): three shapes in Aoyagi's case 1, two in each of cases 2, 3 and 4
SHAPES: tuple[tuple[int, int, int, int], ...] = (
    (5, 3, 5, 0), (3, 3, 3, 3), (4, 2, 3, 1), (1, 1, 4, 1), (3, 2, 6, 2), (5, 1, 1, 1), (6, 2, 2, 2),
    (1, 3, 1, 1), (2, 4, 3, 2),
)


def aoyagi(a) -> dict:
    """The defaults on every shape, unit-scale and large-scale truths (module docstring)."""
    rows = []
    for shape in SHAPES:
        p = RRRProblem(*shape)
        for scale, sv in (("unit", (1.0, 2.0)), ("large", (2.0, 12.0))):
            for ds in range(a.data_seeds):
                d = make_rrr_data(p, a.n, seed=100 + ds, singular_values=sv)
                t = time.perf_counter()
                r = estimate_llc(lambda W, idx, p=p, d=d: p.loss(W, d), p.mle(d), a.n, SGLDConfig(), seed=ds)
                rows.append(dict(shape=list(shape), case=aoyagi_case(*shape), scale=scale, data_seed=ds,
                                 rlct=p.rlct, llc=r.llc, rel_err=r.llc / p.rlct - 1, stderr=r.llc_stderr,
                                 flags=list(r.flags),
                                 acceptance=float(r.acceptance.mean()), step=r.step_size, gamma=r.gamma,
                                 seconds=time.perf_counter() - t))
                print(json.dumps(rows[-1]), flush=True)
    errs = np.array([abs(r["rel_err"]) for r in rows])
    out = {"mode": "aoyagi", "n": a.n, "config": "SGLDConfig()", "rows": rows,
           "max_abs_rel_err": float(errs.max()), "rms_rel_err": float(np.sqrt(np.mean(errs**2))),
           "max_abs_rel_err_by_case": {str(c): float(max(abs(r["rel_err"]) for r in rows if r["case"] == c))
                                       for c in (1, 2, 3, 4)},
           "n_flagged": sum(bool(r["flags"]) for r in rows), "n_within_5pct": int(np.sum(errs < 0.05)),
           "n_problems": len(rows), "median_seconds": float(np.median([r["seconds"] for r in rows]))}
    return out


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devinterp", action="store_true", help="the devinterp 1.3.2 comparison")
    ap.add_argument("--aoyagi", action="store_true", help="the defaults against Aoyagi's RLCT (default mode)")
    ap.add_argument("--data-seeds", type=int, default=2)
    ap.add_argument("--n", type=int, default=None, help="default 100000 (--aoyagi), 10000 (--devinterp)")
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--burnin", type=int, default=500)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if not a.devinterp:
        a.n = 100_000 if a.n is None else a.n
        out = aoyagi(a)
        print(json.dumps({k: v for k, v in out.items() if k != "rows"}, indent=2))
        if a.json:
            with open(a.json, "w") as fh:
                json.dump(out, fh, indent=1)
        return out
    a.n = 10_000 if a.n is None else a.n
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
                     num_burnin=a.burnin, sampler="sgld", preconditioner="none")  # devinterp's update
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
