"""LLC estimator against the Aoyagi–Watanabe closed form for reduced-rank regression and d/2 for a regular
model; the closed form against its published examples and hand-evaluated cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ghostsing.deepcheck.probes.llc import (
    SGLDConfig,
    estimate_llc,
    functional_batched_loss,
    load_loss_trace,
    stationarity_z,
)
from ghostsing.deepcheck.probes.rrr import RRRData, RRRProblem, make_rrr_data, rlct_rrr

F64 = torch.float64


# the defaults (MALA, adapted step and preconditioner, gamma = 0.05 sqrt(n beta), 8 chains x 8000 draws, step
# capped at 2/a_hat); the target is 5 % of Aoyagi's RLCT on every shape, unit-scale and large-scale
# truths.  Observed in benchmarks/bench_llc.py (9 shapes x 2 scales x 2 data sets, n = 1e5): 36 of 36 within
# 5 % (worst 3.1 %); one run's Monte Carlo error is ~1-3 % of lambda, so the seeds are fixed.
CFG = SGLDConfig()
LLC_RTOL = 0.05

def test_rlct_published_examples():
    assert rlct_rrr(5, 3, 5, 0) == pytest.approx(6.5)  # Aoyagi & Watanabe (odd parity: 51/8 + 1/8)
    assert rlct_rrr(3, 3, 3, 3) == pytest.approx(4.5)


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((1, 1, 4, 1), 2.0),  # case 2: M + H = 2 < N + r = 5 -> (HM - Hr + Nr)/2 = (1 - 1 + 4)/2
        ((5, 1, 1, 1), 2.5),  # case 3: N + H = 2 < M + r = 6 -> (HN - Hr + Mr)/2 = (1 - 1 + 5)/2
        ((1, 3, 1, 1), 0.5),  # case 4: M + N = 2 < H + r = 4 -> MN/2
        ((2, 2, 2, 2), 2.0),  # case 1 with full rank: regular in C = BA, MN/2 = 2 ([2*4*4 - 0 - 16]/8)
        ((4, 2, 3, 1), 4.0),  # case 1, M+H+N+r = 10 even: [2*3*7 - 1 - 9]/8 = 32/8
        ((4, 2, 3, 0), 3.0),  # case 1, odd: [2*2*7 - 1 - 4]/8 + 1/8 = 23/8 + 1/8
    ],
)
def test_rlct_cases_by_hand(shape, expected):
    assert rlct_rrr(*shape) == pytest.approx(expected)


def test_rlct_bad_input():
    with pytest.raises(ValueError, match="true rank"):
        rlct_rrr(2, 1, 2, 2)
    with pytest.raises(TypeError):
        rlct_rrr(2.0, 1, 2, 1)
    with pytest.raises(ValueError, match="step_size"):
        SGLDConfig(step_size=0.0)


def test_rrr_loss_and_mle_against_raw_data():
    p = RRRProblem(4, 2, 3, 1)
    rng = np.random.default_rng(0)
    n = 500
    x = rng.standard_normal((n, 4))
    y = rng.standard_normal((n, 3))
    d = RRRData(n, torch.tensor(x.T @ x / n), torch.tensor(y.T @ x / n), float((y * y).sum() / n),
                torch.zeros(2, 4, dtype=F64), torch.zeros(3, 2, dtype=F64), 1.0)
    w = torch.tensor(rng.standard_normal(p.dim))
    A, B = p.split(w)
    direct = 0.5 * np.mean(np.sum((y - x @ (B @ A).numpy().T) ** 2, axis=1))
    assert float(p.loss(w, d)) == pytest.approx(direct, rel=1e-12)
    ws = p.mle(d)
    g = torch.func.grad(lambda v: p.loss(v, d))(ws)
    assert g.norm() < 1e-10  # a critical point
    # global minimum over rank-2 maps (Eckart-Young in the S_xx metric): no L-BFGS start does better
    from scipy.optimize import minimize

    def fg(v):
        t = torch.tensor(v, requires_grad=True)
        val = p.loss(t, d)
        val.backward()
        return float(val), t.grad.detach().numpy().copy()

    best = min(minimize(fg, rng.standard_normal(p.dim), jac=True, method="L-BFGS-B").fun for _ in range(3))
    assert float(p.loss(ws, d)) <= best + 1e-9


@pytest.mark.parametrize(
    ("shape", "s_max"),
    [
        ((5, 3, 5, 0), 2.0),  # case 1, r = 0 (no truth to scale)
        ((4, 2, 3, 1), 2.0),  # case 1
        ((3, 3, 3, 3), 12.0),  # case 1, full rank, large truth
        ((1, 1, 4, 1), 2.0),  # case 2: M + H < N + r
        ((3, 2, 6, 2), 12.0),  # case 2, large truth
        ((5, 1, 1, 1), 12.0),  # case 3: N + H < M + r, large truth
        ((6, 2, 2, 2), 2.0),  # case 3
        ((1, 3, 1, 1), 2.0),  # case 4: M + N < H + r
        ((2, 4, 3, 2), 12.0),  # case 4, large truth
    ],
)
def test_llc_defaults_match_aoyagi_watanabe_at_any_scale(shape, s_max):
    p = RRRProblem(*shape)
    n = 100_000
    d = make_rrr_data(p, n, seed=10, singular_values=(s_max / 6 if s_max > 2 else 1.0, s_max))
    res = estimate_llc(lambda W, idx: p.loss(W, d), p.mle(d), n, CFG, seed=0)
    assert res.nbeta == pytest.approx(n / math.log(n))
    assert res.sampler == "mala"
    assert abs(res.llc / p.rlct - 1) < LLC_RTOL, (res.llc, p.rlct)
    assert res.ok, res.flags
    assert res.llc <= p.dim / 2 or p.rlct == p.dim / 2  # singular: below the regular value d/2


def test_llc_regular_model_gives_half_the_dimension():
    # linear regression y = W x + eps, W in R^{3x4}: identifiable, lambda = d/2 = 6
    n, m_in, n_out = 100_000, 4, 3
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, m_in))
    w_true = rng.standard_normal((n_out, m_in))
    y = x @ w_true.T + rng.standard_normal((n, n_out))
    sxx, syx, syy = (torch.tensor(a) for a in (x.T @ x / n, y.T @ x / n, np.sum(y * y) / n))
    w_hat = torch.linalg.solve(sxx, syx.T).T.reshape(-1)

    def loss(W, idx):
        Wm = W.reshape(-1, n_out, m_in)
        quad = torch.einsum("cij,jk,cik->c", Wm, sxx, Wm)
        return 0.5 * (quad - 2 * torch.einsum("cij,ij->c", Wm, syx) + syy)

    res = estimate_llc(loss, w_hat, n, CFG, seed=1)
    assert abs(res.llc / 6.0 - 1) < LLC_RTOL, res.llc
    # unadjusted SGLD with a step far too large for the curvature: biased above d/2, which is flagged
    big = estimate_llc(loss, w_hat, n, SGLDConfig(sampler="sgld", preconditioner="none", step_rel=1.5,
                                                  num_chains=4, num_draws=400, num_burnin=100), seed=1)
    assert big.llc > 6.0 and any("above d/2" in f for f in big.flags), (big.llc, big.flags)
    assert any("step bias" in f for f in big.flags)


def test_module_closure_reproduces_sufficient_statistics_chain():
    # the same SGLD chain (same seed, full batch) on an nn.Module RRR and on the closed-form loss
    p = RRRProblem(3, 2, 2, 1)
    n = 400
    rng = np.random.default_rng(2)
    x = torch.tensor(rng.standard_normal((n, 3)))
    y = torch.tensor(rng.standard_normal((n, 2)))
    d = RRRData(n, x.T @ x / n, y.T @ x / n, float((y * y).sum() / n), torch.zeros(2, 3, dtype=F64),
                torch.zeros(2, 2, dtype=F64), 1.0)
    ws = p.mle(d)
    net = torch.nn.Sequential(torch.nn.Linear(3, 2, bias=False), torch.nn.Linear(2, 2, bias=False)).to(F64)
    A, B = p.split(ws)
    with torch.no_grad():
        net[0].weight.copy_(A)
        net[1].weight.copy_(B)
    loss_m, w0 = functional_batched_loss(net, lambda o, t: 0.5 * ((o - t) ** 2).sum(1).mean(), x, y)
    torch.testing.assert_close(w0, ws)
    for cfg in (SGLDConfig(step_size=1e-4, gamma=10.0, num_chains=3, num_draws=50, num_burnin=10,
                           sampler="sgld", preconditioner="none"),
                SGLDConfig(num_chains=3, num_draws=50, num_burnin=40)):  # MALA, adapted
        r1 = estimate_llc(loss_m, w0, n, cfg, seed=3)
        r2 = estimate_llc(lambda W, idx: p.loss(W, d), ws, n, cfg, seed=3)
        np.testing.assert_allclose(r1.loss_trace, r2.loss_trace, rtol=1e-9)
    # mini-batches index the data set; n beta stays n / ln n; MALA refuses them
    r3 = estimate_llc(loss_m, w0, n, SGLDConfig(step_size=1e-4, num_chains=2, num_draws=50, num_burnin=0,
                                                 batch_size=32), seed=3)
    assert r3.nbeta == pytest.approx(n / math.log(n)) and r3.sampler == "sgld"
    with pytest.raises(ValueError, match="full-batch"):
        SGLDConfig(sampler="mala", batch_size=32)


def test_diagnostics_flag_bad_chains():
    p = RRRProblem(3, 2, 3, 1)
    n = 100_000
    d = make_rrr_data(p, n, seed=4)
    loss = lambda W, idx: p.loss(W, d)
    # start away from the minimum: the chain finds lower loss and the estimate is negative / drifting
    far = p.mle(d) + 0.3 * torch.ones(p.dim, dtype=F64)
    bad = estimate_llc(loss, far, n, SGLDConfig(step_size=1e-6, gamma=0.0, num_chains=4, num_draws=400,
                                                num_burnin=0, sampler="sgld", preconditioner="none"), seed=0)
    assert not bad.ok
    assert any("negative" in f or "non-stationary" in f for f in bad.flags)
    # far too large a step: the chains blow up
    blow = estimate_llc(loss, p.mle(d), n, SGLDConfig(step_size=1e-2, num_chains=2, num_draws=100,
                                                      num_burnin=0, sampler="sgld", preconditioner="none"),
                        seed=0)
    assert any("non-finite" in f for f in blow.flags)


def test_stationarity_z_detects_a_trend():
    rng = np.random.default_rng(0)
    flat = rng.standard_normal((4, 2000))
    trend = flat + np.linspace(0, 3, 2000)
    assert np.all(np.abs(stationarity_z(flat)) < 4)
    assert np.all(np.abs(stationarity_z(trend)) > 4)


def test_results_streamed_to_disk_compactly(tmp_path):
    p = RRRProblem(3, 2, 3, 1)
    n = 10_000
    d = make_rrr_data(p, n, seed=5)
    cfg = SGLDConfig(num_chains=4, num_draws=200, num_burnin=100)
    res = estimate_llc(lambda W, idx: p.loss(W, d), p.mle(d), n, cfg, seed=0, out=tmp_path / "run")
    losses, summ = load_loss_trace(tmp_path / "run")
    assert losses.shape == (300, 4) and losses.dtype == np.float32
    assert (tmp_path / "run.losses.f32").stat().st_size == 300 * 4 * 4  # 4 bytes per chain and step
    np.testing.assert_allclose(losses[100:].T, res.loss_trace, rtol=1e-6)
    assert summ["llc"] == pytest.approx(res.llc) and summ["sampler"] == "mala"


def test_sgld_config_bad_values_are_named():
    for kw, word in (({"sampler": "hmc"}, "sampler"), ({"step_rel": 3.0}, "step_rel"),
                     ({"preconditioner": "kfac"}, "preconditioner"), ({"gamma": -1.0}, "gamma")):
        with pytest.raises(ValueError, match=word):
            SGLDConfig(**kw)


def test_mala_step_cap_bounds_the_stiffness_the_chain_saw():
    """The default MALA step satisfies eps * a_hat <= mala_h_max (= 2) with a_hat measured in the burn-in,
    and a_hat is a preconditioned curvature of order of the one at w* or above (never below it by 2x)."""
    p = RRRProblem(1, 3, 1, 1)
    n = 100_000
    d = make_rrr_data(p, n, seed=10, singular_values=(2.0, 12.0))
    cfg = SGLDConfig(num_chains=4, num_draws=500)
    res = estimate_llc(lambda W, idx: p.loss(W, d), p.mle(d), n, cfg, seed=0)
    assert np.isfinite(res.mala_curvature_max) and res.mala_curvature_max > 0
    assert res.step_size * res.mala_curvature_max <= 2.0 * (1 + 1e-9)
    # on this curved minimum set the cap binds: the adapted step alone would exceed 2 / a_hat
    assert res.mala_step_capped
    # and with the cap switched off the step is the adapted one, larger than the capped one
    free = estimate_llc(lambda W, idx: p.loss(W, d), p.mle(d), n,
                        SGLDConfig(num_chains=4, num_draws=500, mala_h_max=None), seed=0)
    assert not free.mala_step_capped and free.step_size > res.step_size


def _ill_conditioned_quadratic(seed: int = 0, d: int = 12):
    """``L(w) = (1/2) w^T H w`` with eigenvalues spread over 6 decades (1e-5 ... 10) in a random basis."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    lam = np.logspace(-5, 1, d)
    h = torch.tensor((q * lam) @ q.T)

    def loss(W, idx):
        return 0.5 * torch.einsum("ci,ij,cj->c", W, h, W)

    return loss, h, lam


def test_hessian_preconditioner_whitens_the_curvature():
    from ghostsing.deepcheck.probes.llc import hessian_preconditioner

    _, h, lam = _ill_conditioned_quadratic()
    nbeta, gamma = 1e4, 0.5
    m, ev = hessian_preconditioner(h, nbeta, gamma)
    np.testing.assert_allclose(np.sort(ev.numpy()), lam, rtol=1e-8)
    a = nbeta * h + gamma * torch.eye(h.shape[0], dtype=F64)
    torch.testing.assert_close(m @ a, torch.eye(h.shape[0], dtype=F64), rtol=0, atol=1e-9)
    # an indefinite Hessian still gives an SPD M (|H|), and gamma = 0 is refused
    m2, _ = hessian_preconditioner(h - 2e-3 * torch.eye(h.shape[0], dtype=F64), nbeta, gamma)
    assert float(torch.linalg.eigvalsh(m2).min()) > 0
    with pytest.raises(ValueError, match="gamma > 0"):
        hessian_preconditioner(h, nbeta, 0.0)
    with pytest.raises(ValueError, match="square"):
        hessian_preconditioner(h[:3], nbeta, gamma)


def test_gaussian_llc_against_monte_carlo():
    from ghostsing.deepcheck.probes.llc import gaussian_llc

    _, h, lam = _ill_conditioned_quadratic(1)
    nbeta, gamma = 3e3, 2.0
    cov = torch.linalg.inv(nbeta * h + gamma * torch.eye(h.shape[0], dtype=F64))
    xi = torch.randn(200_000, h.shape[0], dtype=F64, generator=torch.Generator().manual_seed(0))
    x = xi @ torch.linalg.cholesky(cov).T
    mc = float(nbeta * 0.5 * torch.einsum("ni,ij,nj->n", x, h, x).mean())
    assert gaussian_llc(lam, nbeta, gamma) == pytest.approx(mc, rel=0.01)
    assert gaussian_llc(lam, nbeta, 0.0) == pytest.approx(len(lam) / 2)  # regular: d/2
    assert gaussian_llc([-1.0, 0.0, 1.0], 10.0, 0.0) == pytest.approx(0.5)  # non-positive count 0


def test_hessian_preconditioned_sgld_equilibrates_where_plain_sgld_cannot():
    # curvatures of U from gamma to n beta * 10 (ratio ~1e5): unpreconditioned SGLD at a stable step needs
    # ~1e5 steps to relax the flat directions; with M = (n beta |H| + gamma)^{-1} every direction relaxes
    # in ~1/eps steps, so 2000 draws reproduce the exact Gaussian answer
    from ghostsing.deepcheck.probes.llc import gaussian_llc

    loss, h, lam = _ill_conditioned_quadratic(2)
    n = 20_000
    nbeta = n / math.log(n)
    base = dict(num_chains=4, num_draws=2000, num_burnin=200, sampler="sgld", step_rel=0.05, gamma_rel=0.05)
    w0 = torch.zeros(h.shape[0], dtype=F64)
    good = estimate_llc(loss, w0, n, SGLDConfig(preconditioner="hessian", **base), seed=0)
    exact = gaussian_llc(lam, nbeta, good.gamma)
    assert good.llc_gaussian == pytest.approx(exact, rel=1e-9)
    assert good.step_size == pytest.approx(0.05, rel=0.05)  # curvature 1 in the metric of M
    # step bias eps a / 4 = 1.25 % per direction plus Monte Carlo error (~2 %: autocorrelation ~1/eps)
    assert abs(good.llc / exact - 1) < 0.06, (good.llc, exact)
    plain = estimate_llc(loss, w0, n, SGLDConfig(preconditioner="none", **base), seed=0)
    assert plain.llc < 0.8 * exact, (plain.llc, exact)  # negative control: not equilibrated
    # MALA with the same constant preconditioner: exact up to Monte Carlo error
    mala = estimate_llc(loss, w0, n, SGLDConfig(preconditioner="hessian", num_chains=4, num_draws=1000,
                                                num_burnin=200), seed=0)
    assert abs(mala.llc / exact - 1) < 0.06, (mala.llc, exact)
    with pytest.raises(ValueError, match="full_cov_max"):
        estimate_llc(loss, w0, n, SGLDConfig(preconditioner="hessian", full_cov_max=4, **base), seed=0)


def test_hessian_preconditioner_on_a_singular_model_matches_aoyagi_watanabe():
    # reduced-rank regression (1, 3, 1, 1): the RLCT 0.5 is far below d/2 = 3; the Hessian at w* is
    # singular (flat directions get M = 1/gamma), and the constant M leaves the target law unchanged
    p = RRRProblem(1, 3, 1, 1)
    n = 100_000
    d = make_rrr_data(p, n, seed=10)
    res = estimate_llc(lambda W, idx: p.loss(W, d), p.mle(d), n,
                       SGLDConfig(preconditioner="hessian", sampler="mala", num_chains=8, num_draws=4000,
                                  num_burnin=1000), seed=0)
    assert abs(res.llc / p.rlct - 1) < 0.05, (res.llc, p.rlct)
    assert res.ok, res.flags
