"""The curvature experiments (ghostsing.experiments.deep_curvature*): known answers on small nets and every
small preset end to end through the registry and the one report writer (synthetic data, CPU)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from ghostsing.deepcheck.operators import flat_loss
from ghostsing.deepcheck.probes.hessian import exact_spectrum
from ghostsing.deepcheck.probes.relu_nullspace import null_directions
from ghostsing.experiments import registry
from ghostsing.experiments.deep_curvature import ActMLP, StackedMLP, block_sharpness, converge, mse_onehot
from ghostsing.experiments.deep_curvature_nullspace import NullspaceConfig, build
from ghostsing.experiments.report import run_experiment

NAMES = ("hessian", "nullspace", "eos", "lowell", "slt", "bridge")


@pytest.fixture(autouse=True)
def _agg(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")


def _nullity(net, x, y, n_classes, tol=1e-9):
    ev = np.abs(exact_spectrum(flat_loss(net, mse_onehot(n_classes), x, y).hessian()))
    return int(np.sum(ev < tol * ev.max()))


@pytest.mark.parametrize("alpha", [0.0, 1.0])
@pytest.mark.parametrize("kind", ["clean", "dead", "duplicate"])
def test_null_space_count_equals_dense_nullity(kind, alpha):
    """Dead and duplicated units: the derived count equals the zero eigenvalues of the dense Hessian."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(200, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 7, (200,), generator=g)
    cfg = NullspaceConfig(seeds=(0, 1, 2), width=5, depth=2, max_dead=3, max_dup=2)
    for seed in cfg.seeds:
        net, layers, defects = build(cfg, x, 7, kind, alpha, seed)
        count = null_directions(layers, [alpha], x)
        assert count.total == _nullity(net, x, y, 7), (kind, alpha, seed, defects)
        if kind == "clean":
            assert count.total == 0
        if kind == "duplicate" and alpha == 1.0:
            assert count.duplicate == 0  # the skip breaks the overlap


def test_dead_unit_counts_by_hand():
    """One dead unit in the second hidden layer: fan_in + 1 (residual) and fan_in + 1 + fan_out (plain)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 6, (300,), generator=g)
    cfg = NullspaceConfig(seeds=(0,), width=5, depth=2)
    for alpha, expected in ((0.0, 5 + 1 + 6), (1.0, 5 + 1)):
        net, layers, _ = build(cfg, x, 6, "clean", alpha, 0)
        with torch.no_grad():
            pre = torch.relu(x @ layers[0][0].T + layers[0][1]) @ layers[1][0].T
            net.linears[1].bias[2] = -pre[:, 2].max() - 1.0
        layers = [(lin.weight.detach(), lin.bias.detach()) for lin in net.linears]
        assert null_directions(layers, [alpha], x).total == expected
        assert _nullity(net, x, y, 6) == expected


def test_stacked_mlp_matches_single_nets_and_block_sharpness_matches_dense():
    """EoS sharpness: block power iteration on the stacked operator equals each net's dense top eigenvalue."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (40,), generator=g)
    seeds = (0, 5, 9)
    for act in ("relu", "tanh", "gelu"):
        st = StackedMLP(6, 7, 2, 4, act, 0.0, seeds)
        z = st.logits(st.params, x)
        loss = mse_onehot(4)

        def per_net(ps, loss=loss, st=st):
            t = torch.nn.functional.one_hot(y, 4).to(torch.float64)
            return 0.5 * ((st.logits(ps, x) - t) ** 2).sum(-1).mean(-1)

        lam, _ = block_sharpness(st.operator(st.params, per_net), len(seeds), iters=500, tol=1e-12)
        for s, seed in enumerate(seeds):
            net = ActMLP(6, 7, 2, 4, act, 0.0, seed)
            torch.testing.assert_close(z[s], net(x))
            ev = exact_spectrum(flat_loss(net, loss, x, y).hessian())
            top = ev[np.argmax(np.abs(ev))]
            assert lam[s] == pytest.approx(top, rel=1e-6)


def test_converge_reaches_the_tolerance():
    """L-BFGS reaches |grad L| <= 1e-7 on a regular (convex) problem; on a ReLU net it at least lowers the
    gradient norm 10-fold (singular minima converge slowly: the experiments report the norm reached)."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(300, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (300,), generator=g)
    fl = flat_loss(ActMLP(3, 3, 0, 3, "relu", 0.0, 0), torch.nn.functional.cross_entropy, x, y)
    theta, info = converge(fl, lbfgs_iters=500, grad_tol=1e-7)
    assert info["converged"] and float(fl.gradient(theta)[0].norm()) <= 1e-7
    fl = flat_loss(ActMLP(3, 3, 1, 3, "relu", 0.0, 0), torch.nn.functional.cross_entropy, x, y)
    g0 = float(fl.gradient()[0].norm())
    _, info = converge(fl, lbfgs_iters=300, grad_tol=1e-12)
    assert info["grad_norm"] < g0 / 10 and not info["converged"]


def test_registered_and_resolved_by_preset():
    for name in NAMES:
        exp = registry.get(name)
        assert exp.kind == "deep" and f"{name}-small" in exp.presets and f"{name}-cpu" in exp.presets
    assert registry.find_preset("hessian-cpu", kind="deep")[0].name == "hessian"
    assert registry.find_preset("bridge-cpu", kind="deep")[0].name == "bridge"


def test_configs_refuse_bad_values():
    exp = registry.get("hessian")
    with pytest.raises(ValueError, match="skips"):
        exp.config("hessian-small", {"skips": "none,orthogonal"})
    with pytest.raises(ValueError, match="etas"):
        registry.get("eos").config("eos-small", {"etas": "0.1"})
    with pytest.raises(ValueError, match="alphas"):
        registry.get("bridge").config("bridge-small", {"alphas": "0.1,0.2"})


@pytest.mark.parametrize("name", NAMES)
def test_small_preset_end_to_end(name, tmp_path):
    exp = registry.get(name)
    cfg = exp.config(f"{name}-small", {"data": "synthetic"})
    out, path = run_experiment(exp, cfg, tmp_path, progress=False)
    doc = json.loads(path.read_text())
    assert doc["experiment"] == name and doc["predictions"]
    for p in doc["predictions"]:
        assert {"test", "p_value", "effect", "ci", "n_seeds", "verdict"} <= set(p)
        assert p["test"]
    for f in doc["figures"]:
        assert (tmp_path / f).is_file()
    assert (tmp_path / "report.md").is_file()
    # resume reuses every unit: the same predictions again
    out2, _ = run_experiment(exp, cfg, tmp_path, resume=True, progress=False)
    assert [p.effect for p in out2.predictions] == pytest.approx([p.effect for p in out.predictions],
                                                                 nan_ok=True)


def test_slt_fixed_time_scales_draws_with_the_step():
    """With fixed_time, a 4x smaller step gets 4x the draws and burn-in (the same SGLD time), and the time
    grid multiplies both; without it the draws stay fixed."""
    from ghostsing.experiments.deep_curvature_slt import SLTConfig, _llc

    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (60,), generator=g)
    fl = flat_loss(ActMLP(3, 2, 1, 3, "relu", 0.0, 0), torch.nn.functional.cross_entropy, x, y)
    cfg = SLTConfig(seeds=(0,), sweep_seeds=0, step_rel=0.02, chains=1, draws=20, burnin=4)
    r = _llc(fl, fl.theta, 60, cfg, 0.05, 0.005)
    assert (r["draws"], r["burnin"]) == (80, 16)
    r = _llc(fl, fl.theta, 60, cfg, 0.05, 0.02, time=2.0)
    assert (r["draws"], r["burnin"]) == (40, 8)
    assert {"llc_first_half", "llc_second_half"} <= set(r)
    r = _llc(fl, fl.theta, 60, replace(cfg, fixed_time=False), 0.05, 0.005)
    assert (r["draws"], r["burnin"]) == (20, 4)


def _pair_net(seed: int = 0, n: int = 12, din: int = 4, C: int = 3):
    """A tiny depth-2 MLP whose units 0 and 1 of hidden layer 2 are exact copies (in, bias, out)."""
    from ghostsing.deepcheck.nets import MLP, MLPConfig

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, din, generator=g, dtype=torch.float64)
    y = torch.randint(0, C, (n,), generator=g)
    net = MLP(MLPConfig(2, 3, din, C, "none"), seed, dtype=torch.float64)
    with torch.no_grad():
        L = net.linears
        L[0].bias.fill_(0.5)
        L[1].bias.fill_(0.1)
        L[1].weight[1] = L[1].weight[0]
        L[1].bias[1] = L[1].bias[0]
        L[2].weight[:, 1] = L[2].weight[:, 0]
    return net, x, y


def _swap(net, v: torch.Tensor) -> torch.Tensor:
    """``v`` with the pair's coordinates (units 0 and 1 of hidden layer 2) exchanged."""
    from ghostsing.experiments.deep_curvature_bridge import antisymmetric_basis

    B = antisymmetric_basis(net, 2)
    i, j = (B > 0).nonzero()[:, 0], (B < 0).nonzero()[:, 0]
    out = v.clone()
    out[i], out[j] = v[j], v[i]
    return out


def test_bridge_antisymmetric_block_is_a_block_of_the_dense_hessian():
    """H_anti = B^T H B on a duplicated pair: its eigenvalues are eigenvalues of the full dense Hessian,
    B times its eigenvectors are eigenvectors of H, and H's eigenvectors of those eigenvalues are
    antisymmetric (P u = -u for the swap P of the two units)."""
    from ghostsing.experiments.deep_curvature_bridge import anti_hessian, antisymmetric_basis, dense_hessian

    net, x, y = _pair_net()
    B = antisymmetric_basis(net, 2)
    assert torch.allclose(B.T @ B, torch.eye(B.shape[1], dtype=B.dtype))
    assert B.shape[1] == 3 + 1 + 3  # fan_in (width) + bias + fan_out (classes)
    H = dense_hessian(net, x, y)
    Ha = anti_hessian(net, x, y, 2)
    assert torch.allclose(Ha, B.T @ H @ B, atol=1e-12)
    ev_full, vec_full = torch.linalg.eigh(H)
    ev, V = torch.linalg.eigh(Ha)
    assert ev[0] < -1e-3  # a repelling direction on this net
    for lam, v in zip(ev, V.T, strict=True):
        assert torch.min((ev_full - lam).abs()) < 1e-10
        u = B @ v
        assert torch.linalg.norm(H @ u - lam * u) < 1e-10
    # ReLU: the in-in and out-out blocks vanish, so the spectrum is symmetric about 0
    n_in = 3 + 1
    assert torch.abs(Ha[:n_in, :n_in]).max() < 1e-12 and torch.abs(Ha[n_in:, n_in:]).max() < 1e-12
    assert torch.allclose(ev, -ev.flip(0), atol=1e-12)
    # the full Hessian's eigenvector of the (simple) most negative anti eigenvalue is antisymmetric
    k = int(torch.argmin((ev_full - ev[0]).abs()))
    gap = torch.sort((ev_full - ev[0]).abs()).values[1]
    assert gap > 1e-6
    u = vec_full[:, k]
    assert torch.linalg.norm(_swap(net, u) + u) < 1e-8
    assert torch.linalg.norm(u - B @ (B.T @ u)) < 1e-8


def _critical_pair_net(n: int = 30, din: int = 3, C: int = 3):
    """An exact, smooth critical point of a depth-2 MLP with a duplicated pair (units 0, 1 of layer 2):
    layer-2 incoming weights 0, the pair's bias 0.7 (always active, constant output), unit 2 dead (bias
    -1), output weights 0 and the output bias the log class frequencies, so softmax = class frequencies and
    every gradient vanishes; no pre-activation sits on a ReLU kink."""
    from ghostsing.deepcheck.nets import MLP, MLPConfig

    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, din, generator=g, dtype=torch.float64)
    y = torch.arange(n) % C
    net = MLP(MLPConfig(2, 3, din, C, "none"), 0, dtype=torch.float64)
    with torch.no_grad():
        L = net.linears
        L[1].weight.zero_()
        L[1].bias.copy_(torch.tensor([0.7, 0.7, -1.0], dtype=torch.float64))
        L[2].weight.zero_()
        L[2].bias.copy_(torch.log(torch.bincount(y, minlength=C).double() / n))
    return net, x, y


def test_bridge_split_grows_at_the_derived_rate_under_plain_gd():
    """A tiny split seeded along the most negative eigenvector of H_anti at a critical point on the overlap
    line grows under plain full-batch GD (alpha = 0) as (1 + lr |lambda_min|)^k: the derived rate
    mu = ln(1 + lr |lambda_min|) of the log law."""
    from ghostsing.experiments import deep_curvature_bridge as br

    anti_hessian, antisymmetric_basis, derived_log_slope = br.anti_hessian, br.antisymmetric_basis, \
        br.derived_log_slope
    net, x, y = _critical_pair_net()
    fl = flat_loss(net, "cross_entropy", x, y)
    assert float(fl.gradient()[0].norm()) < 1e-14
    B = antisymmetric_basis(net, 2)
    ev, V = torch.linalg.eigh(anti_hessian(net, x, y, 2))
    lr = 0.5
    d = derived_log_slope(float(ev[0]), lr)
    assert d["lambda_min"] < -0.01 and d["a_pred"] == pytest.approx(1 / d["mu"])
    k, eps = int(np.ceil(3 / d["mu"])), 1e-7
    th = fl.theta + eps * (B @ V[:, 0])
    grad = torch.func.grad(fl.fn)
    growth = []
    for _ in range(k):
        th = th - lr * grad(th)
        growth.append(float((B.T @ th).norm()) / eps)
    pred = (1 + lr * abs(d["lambda_min"])) ** np.arange(1, k + 1)
    assert np.allclose(growth, pred, rtol=1e-5)
    assert growth[-1] > 15  # grew by ~e^3
    # lambda_min >= 0: the law does not apply
    assert np.isnan(derived_log_slope(0.0, lr)["a_pred"]) and np.isnan(derived_log_slope(0.3, lr)["mu"])


def test_bridge_instability_onset_on_a_synthetic_loss_history():
    """A descending loss with small wiggles (under the margin) and, in one column, a spike from step 700:
    the onset is the first step more than 5 % above the running minimum; the stable column has none."""
    from ghostsing.experiments.deep_curvature_bridge import instability_onset

    k = np.arange(1001)
    base = 2.0 * np.exp(-k / 300) + 0.3  # monotone descent
    stable = base + 0.005 * np.sin(k)  # wiggles: at most 0.01 / 0.37 < 3 % above the running minimum
    spike = base.copy()
    spike[700:] = base[699] * (1.0 + 0.02 * (k[700:] - 699))  # +2 % a step: 1.02, 1.04, 1.06 > 1.05
    onset = instability_onset(np.stack([stable, spike], 1), 0.05)
    assert np.isnan(onset[0]) and onset[1] == 702
    assert instability_onset(spike, 0.01)[0] == 700
    assert np.isnan(instability_onset(np.linspace(3, 1, 50), 0.05)[0])


def test_bridge_contamination_uses_the_earlier_of_own_and_control_onset():
    """A passage at or after the onset (own t_unstable or the seed's alpha = 0 control's, the earlier) is
    contaminated and dropped; passages before it and runs of stable seeds are kept."""
    from ghostsing.experiments.deep_curvature_bridge import contamination

    u = {"alphas": [0.0, 0.01, 0.1, 0.0, 0.01, 0.1], "seeds": [0, 0, 0, 1, 1, 1],
         "t_unstable": [500.0, np.nan, 900.0, np.nan, 300.0, np.nan],
         "tau_split": [np.nan, 600.0, 400.0, np.nan, 350.0, 200.0],
         "tau_loss": [10.0, 700.0, 50.0, 5.0, 20.0, 10.0]}
    c = contamination(u)
    assert c["bad_split"].tolist() == [False, True, False, False, True, False]
    assert c["bad_loss"].tolist() == [False, True, False, False, False, False]
    assert np.isnan(c["tau_split"][1]) and c["tau_split"][2] == 400.0 and c["tau_split"][5] == 200.0
    assert c["onset"][1] == 500.0 and c["onset"][2] == 500.0 and np.isnan(c["onset"][5])


def test_penalised_batched_loss_matches_fn_row_by_row():
    """The LLC samplers read ``batched``: it must carry the penalty of ``fn``."""
    from ghostsing.experiments.deep_curvature import penalised

    g = torch.Generator().manual_seed(2)
    x = torch.randn(30, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (30,), generator=g)
    fl = penalised(flat_loss(ActMLP(3, 2, 1, 3, "gelu", 0.0, 0), torch.nn.functional.cross_entropy, x, y),
                   0.3)
    W = fl.theta + 0.1 * torch.randn(4, fl.dim, generator=g, dtype=torch.float64)
    torch.testing.assert_close(fl.batched(W), torch.stack([fl.fn(w) for w in W]))


def test_slt_unit_certifies_w_star_and_its_gaussian_llc():
    """A smooth penalised net: w* is a true critical point with a positive definite Hessian, and the
    unit's regular-model value is (1/2) sum n beta lambda / (n beta lambda + gamma) of that Hessian."""
    import math

    from ghostsing.deepcheck.probes.llc import gaussian_llc
    from ghostsing.experiments.deep_curvature import penalised
    from ghostsing.experiments.deep_curvature_slt import SLTConfig, _unit

    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (300,), generator=g)
    cfg = SLTConfig(seeds=(0,), sweep_seeds=0, width=2, depth=1, weight_decay=1e-2, grad_tol=1e-8,
                    lbfgs_iters=500, newton_steps=50, chains=2, draws=60, burnin=20)
    u = _unit(cfg, x, y, 3, "plain_s0")
    assert u["kind"] == "converged" and u["grad_norm"] <= 1e-8
    assert u["hessian_min"] > 0 and u["n_negative"] == 0
    net = ActMLP(3, 2, 1, 3, "gelu", 0.0, 0)
    fl = penalised(flat_loss(net, torch.nn.functional.cross_entropy, x, y), cfg.weight_decay)
    w_star, _ = converge(fl, lbfgs_iters=500, grad_tol=1e-8, newton_steps=50)
    ev = np.linalg.eigvalsh(torch.func.hessian(fl.fn)(w_star).numpy())
    nbeta = 300 / math.log(300)
    expected = gaussian_llc(ev, nbeta, cfg.gamma_rel * math.sqrt(nbeta))
    assert u["central"]["llc_gaussian"] == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="activation"):
        SLTConfig(activation="swish")
    with pytest.raises(ValueError, match="preconditioner"):
        SLTConfig(preconditioner="kfac")
