"""Curvature operators and the trace / diagonal / density estimators against independent float64 references:
torch.func.hessian, J^T Lambda J from torch.func.jacrev, per-sample gradients from jacrev, the leave-one-out
definition of XTrace, traces and diagonals of dense matrices."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from ghostsing.deepcheck import operators as ops
from ghostsing.deepcheck.probes import hessian as hs
from ghostsing.deepcheck.probes import pl_trace as pl

F64 = torch.float64


def _data(n=40, d=5, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, dtype=F64, generator=g), torch.randint(0, c, (n,), generator=g)


def _tanh_mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).to(F64)


def _conv(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv1d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(9, 3)).to(F64)


def _dense_refs(fl):
    """Hessian (jacfwd of jacrev), GGN J^T Lambda J and empirical Fisher from full Jacobians."""
    H = torch.func.hessian(fl.fn)(fl.theta)
    z = fl.outputs(fl.theta)
    J = torch.func.jacrev(lambda t: fl.outputs(t).reshape(-1))(fl.theta)
    lam = torch.func.hessian(lambda zz: fl.loss_fn(zz.reshape(z.shape), fl.targets))(z.reshape(-1))
    gs = torch.func.jacrev(fl.per_sample)(fl.theta)
    return H, J.T @ lam @ J, gs.T @ gs / fl.n_samples


@pytest.mark.parametrize("case", ["tanh_ce", "conv_ce", "tanh_callable_mse"])
def test_operators_equal_dense_references(case):
    if case == "conv_ce":
        net, (x, y) = _conv(), _data(d=5)
        x = x[:, None, :]
        fl = ops.flat_loss(net, "cross_entropy", x, y)
    elif case == "tanh_ce":
        net, (x, y) = _tanh_mlp(), _data()
        fl = ops.flat_loss(net, "cross_entropy", x, y)
    else:
        net, (x, _) = _tanh_mlp(), _data()
        y = torch.randn(40, 3, dtype=F64, generator=torch.Generator().manual_seed(5))
        fl = ops.flat_loss(net, lambda z, t: ((z - t) ** 2).mean(), x, y)
    H, G, F = _dense_refs(fl)
    v = torch.randn(fl.dim, 4, dtype=F64, generator=torch.Generator().manual_seed(1))
    for op, ref in ((fl.hessian(), H), (fl.ggn(), G), (fl.empirical_fisher(), F)):
        assert op.shape == (fl.dim, fl.dim) and op.dtype == F64 and op.device.type == "cpu"
        torch.testing.assert_close(op @ v, ref @ v, atol=1e-12, rtol=1e-10)
        torch.testing.assert_close(op @ v[:, 0], ref @ v[:, 0], atol=1e-12, rtol=1e-10)
        torch.testing.assert_close(op.to_dense(), 0.5 * (ref + ref.T), atol=1e-12, rtol=1e-10)
        np.testing.assert_allclose(op.to_scipy() @ v.numpy(), (ref @ v).numpy(), atol=1e-12)
    if case == "conv_ce":
        assert fl.hessian().method == "double_backward"  # no vmap rule for convolution_backward
    if case != "tanh_callable_mse":
        g = fl.ggn()
        assert g.trace_exact() == pytest.approx(float(torch.trace(G)), rel=1e-12)
        torch.testing.assert_close(g.diagonal_exact(), torch.diagonal(G), atol=1e-13, rtol=1e-10)
        if case == "conv_ce":  # piecewise linear in each parameter: tr H = tr G
            assert float(torch.trace(H)) == pytest.approx(float(torch.trace(G)), rel=1e-10)
        else:  # tanh: the residual term R has a non-zero trace
            assert float(torch.trace(H)) != pytest.approx(float(torch.trace(G)), rel=1e-3)
    with pytest.raises(ValueError, match="shape"):
        fl.hessian() @ torch.zeros(fl.dim + 1, dtype=F64)


def test_xtrace_equals_its_leave_one_out_definition_and_is_unbiased():
    rng = np.random.default_rng(0)
    p = 80
    q = np.linalg.qr(rng.standard_normal((p, p)))[0]
    lam = 20.0 / np.arange(1, p + 1) ** 1.5 * np.where(np.arange(p) < 5, 1, np.sign(rng.standard_normal(p)))
    a = q @ np.diag(lam) @ q.T
    op = ops.DenseOperator(torch.tensor(a))
    s = 12
    g = np.random.default_rng(3).standard_normal((s, p))
    om = (g * np.sqrt(p) / np.linalg.norm(g, axis=1, keepdims=True)).T  # the sphere of radius sqrt P
    y = a @ om
    ref = []
    # the definition (Epperly, Tropp & Webber 2024, improved): Q_(i) from A Omega without column i, the
    # remainder along the normalised projected test vector, scaled by the complement's dimension P - s + 1
    for i in range(s):
        qi = np.linalg.qr(np.delete(y, i, axis=1))[0]
        u = om[:, i] - qi @ (qi.T @ om[:, i])
        ref.append(np.trace(qi.T @ a @ qi) + (p - s + 1) * (u @ a @ u) / (u @ u))
    est = hs.xtrace(op, 2 * s, seed=3)
    np.testing.assert_allclose(est.samples, ref, rtol=1e-10, atol=1e-10)
    assert est.n_matvecs == 2 * s
    exact = lam.sum()
    runs = [hs.xtrace(op, 24, seed=k) for k in range(150)]
    means = np.array([e.mean for e in runs])
    assert abs(means.mean() - exact) < 4 * means.std(ddof=1) / np.sqrt(len(means))
    # the exchangeability error estimate tracks the actual error (RMS within a factor 2)
    rms = np.sqrt(np.mean((means - exact) ** 2))
    assert 0.5 < np.sqrt(np.mean([e.stderr**2 for e in runs])) / rms < 2.0
    # better than Hutchinson and Hutch++ at the same 24 products on this top-heavy spectrum
    hu = np.array([hs.hutchinson_trace(op, 24, seed=k).mean for k in range(150)])
    pp = np.array([hs.hutchpp_trace(op, 24, seed=k).mean for k in range(150)])
    assert rms < np.sqrt(np.mean((pp - exact) ** 2)) < np.sqrt(np.mean((hu - exact) ** 2))


def test_trace_auto_is_variance_aware():
    rng = np.random.default_rng(1)
    p = 60
    # diagonal matrix: Rademacher Hutchinson is exact (zero variance); a low-rank part buys nothing
    diag = ops.DenseOperator(torch.diag(torch.tensor(rng.uniform(1, 2, p))))
    t = hs.trace(diag, 20, seed=0)
    assert t.method == "hutchinson" and t.mean == pytest.approx(float(torch.trace(diag.matrix)), rel=1e-12)
    q = np.linalg.qr(rng.standard_normal((p, p)))[0]
    top = ops.DenseOperator(torch.tensor(q @ np.diag(10.0 / np.arange(1, p + 1) ** 2) @ q.T))
    t2 = hs.trace(top, 20, seed=0)
    assert t2.method == "xtrace" and set(t2.alternatives) == {"xtrace", "hutchinson"}
    assert abs(t2.mean - float(torch.trace(top.matrix))) < 5 * t2.stderr


def test_diagonal_estimate_against_dense():
    net, (x, y) = _tanh_mlp(1), _data(seed=1)
    fl = ops.flat_loss(net, "cross_entropy", x, y)
    h = torch.func.hessian(fl.fn)(fl.theta)
    est = hs.diagonal_estimate(fl.hessian(), 400, seed=0)
    z = (est.mean - torch.diagonal(h)) / est.stderr.clamp_min(1e-300)
    assert float((z.abs() < 4).double().mean()) > 0.99


def test_deflated_slq_first_moment_has_smaller_error_on_a_top_heavy_spectrum():
    rng = np.random.default_rng(2)
    p = 300
    q = np.linalg.qr(rng.standard_normal((p, p)))[0]
    lam = np.concatenate([[40.0, 30.0, 25.0, 20.0, 15.0, 10.0], rng.uniform(-0.05, 0.3, p - 6)])
    op = ops.DenseOperator(torch.tensor(q @ np.diag(lam) @ q.T))
    exact = lam.mean()
    plain = np.array([hs.slq(op, 8, 30, seed=k, deflate=False).moment(1) for k in range(25)])
    defl = [hs.slq(op, 8, 30, seed=k) for k in range(25)]
    dm = np.array([r.moment(1) for r in defl])
    assert len(defl[0].deflated) >= 6
    np.testing.assert_allclose(np.sort(defl[0].deflated)[-6:], np.sort(lam)[-6:], rtol=1e-8)
    assert abs(dm.mean() - exact) < 4 * dm.std(ddof=1) / np.sqrt(len(dm))  # unbiased
    assert np.sqrt(np.mean((dm - exact) ** 2)) < 0.2 * np.sqrt(np.mean((plain - exact) ** 2))
    # the reported standard error matches the observed scatter (within a factor 2)
    assert 0.5 < np.mean([r.moment_stderr(1) for r in defl]) / dm.std(ddof=1) < 2.0
    assert defl[0].n_matvecs == 30 + 7 * 15  # the deflation run, then m // 2 steps per remaining probe
    # second moment: exact on the deflated part, within 4 reported errors overall
    r = defl[0]
    assert abs(r.moment(2) - np.mean(lam**2)) < 4 * r.moment_stderr(2)


def test_unconverged_lanczos_warns_and_reports_residuals():
    rng = np.random.default_rng(3)
    p = 200
    op = ops.DenseOperator(torch.diag(torch.tensor(np.sort(rng.uniform(-1, 1, p)))))
    with pytest.warns(hs.ConvergenceWarning, match="raise m"):
        res = hs.extreme_eigenvalues(op, 5, which="bottom", m=20)
    assert not res.converged and res.residuals.max() > 1e-6
    ev = np.diag(op.matrix.numpy())
    dist = np.abs(res.values[:, None] - ev[None]).min(1)
    assert np.all(dist <= res.residuals + 1e-12)  # some eigenvalue within ||r|| of each Ritz value
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ok = hs.extreme_eigenvalues(op, 2, which="top", m=p)
    assert ok.converged


class _UserResBlock(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.a, self.b = nn.Linear(w, w), nn.Linear(w, w)

    def forward(self, x):
        return x + self.b(torch.relu(self.a(x)))


class _Twice(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.a = nn.Linear(w, w)

    def forward(self, x):
        return self.a(torch.relu(self.a(x)))


class _Gated(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.a, self.b = nn.Linear(w, w), nn.Linear(w, w)

    def forward(self, x):
        return self.a(x) * torch.sigmoid(self.b(x))


class _Scale(nn.Module):  # own parameter: needs a mark
    def __init__(self, w):
        super().__init__()
        self.s = nn.Parameter(torch.ones(w))

    def forward(self, x):
        return x * self.s


def test_user_written_residual_block_is_recognised_and_exact():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), _UserResBlock(6), nn.Linear(6, 3)).to(F64)
    assert pl.piecewise_linear_violations(net) == []
    x, y = _data()
    fl = ops.flat_loss(net, "cross_entropy", x, y)
    h = torch.func.hessian(fl.fn)(fl.theta)
    assert pl.exact_trace_piecewise_linear(net, x, y) == pytest.approx(float(torch.trace(h)), rel=1e-10)
    est = pl.hessian_trace(net, x, y)
    assert est.method == "exact_pl" and est.stderr == 0
    for bad, why in ((_Twice(6), "twice"), (_Gated(6), "sigmoid")):
        v = pl.piecewise_linear_violations(nn.Sequential(nn.Linear(5, 6), bad))
        assert v and why in " ".join(v), v
    scaled = nn.Sequential(nn.Linear(5, 6), _Scale(6))
    assert not pl.is_piecewise_linear(scaled)
    assert pl.is_piecewise_linear(scaled, trusted=(_Scale,))
    pl.mark_piecewise_linear(scaled[1])
    assert pl.is_piecewise_linear(scaled)
    with pytest.raises(TypeError, match="trusted"):
        pl.is_piecewise_linear(scaled, trusted=[_Scale])


def test_flat_loss_bad_input():
    net = _tanh_mlp()
    x, y = _data()
    with pytest.raises(ValueError, match="loss must be one of"):
        ops.flat_loss(net, "hinge", x, y)
    with pytest.raises(TypeError, match="floating"):
        ops.flat_loss(net, "mse", x, y, dtype=torch.int64)
    with pytest.raises(ValueError, match="exact GGN"):
        ops.flat_loss(net, lambda z, t: z.sum(), x, y).ggn().trace_exact()
    with pytest.raises(ValueError, match="square"):
        ops.DenseOperator(torch.zeros(2, 3))
