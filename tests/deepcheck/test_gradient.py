"""Gradient probes on quadratics (closed forms) and small nets (dense Hessian eigenvectors)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ghostsing.deepcheck.probes import gradient as gp
from ghostsing.deepcheck.probes import hessian as hs

F64 = torch.float64


def _quadratic(p=30, seed=0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((p, p)))
    lam = np.concatenate([[9.0, 7.0, 5.0], rng.uniform(0.01, 1.0, p - 3)])
    a = torch.tensor(q @ np.diag(lam) @ q.T)
    fn = lambda t: 0.5 * t @ a @ t
    return fn, a, lam, torch.tensor(q.T[:3].copy()), torch.tensor(rng.standard_normal(p))


def test_step_split_on_a_quadratic_matches_closed_form():
    fn, a, lam, u3, theta = _quadratic()
    _, basis = gp.top_eigenspace(gp.hessian_at(fn, theta), 3, m=30)
    # Lanczos eigenvectors span the known top eigenspace
    np.testing.assert_allclose((basis @ u3.T).abs().det().abs().item(), 1.0, atol=1e-8)
    eta = 0.1
    g = a @ theta
    sp = gp.step_split(fn, theta, -eta * g, basis)
    pg = u3.T @ (u3 @ g)
    # quadratic: L(theta) - L(theta - eta v) = eta g.v - eta^2/2 v^T A v, exactly
    d_top = eta * float(g @ pg) - 0.5 * eta**2 * float(pg @ a @ pg)
    bulk = g - pg
    d_bulk = eta * float(g @ bulk) - 0.5 * eta**2 * float(bulk @ a @ bulk)
    assert sp.d_top == pytest.approx(d_top, rel=1e-7)
    assert sp.d_bulk == pytest.approx(d_bulk, rel=1e-9)
    assert sp.d_full == pytest.approx(d_top + d_bulk, rel=1e-9)  # eigenspaces are A-orthogonal
    assert sp.grad_share_top == pytest.approx(float(pg @ pg) / float(g @ g), rel=1e-9)


def test_gradient_descent_probe_on_a_quadratic():
    fn, a, lam, _, theta = _quadratic(seed=1)
    eta, steps = 0.15, 40
    tr = gp.gradient_descent_probe(fn, theta, eta, steps, probe_every=10, k=3, lanczos_m=30)
    q = np.linalg.eigh(a.numpy())[1]
    c = q.T @ theta.numpy()
    ev = np.linalg.eigvalsh(a.numpy())
    t = np.arange(steps + 1)[:, None]
    exact = 0.5 * (ev * c**2 * (1 - eta * ev) ** (2 * t)).sum(1)  # GD on a quadratic, mode by mode
    np.testing.assert_allclose(tr.loss, exact, rtol=1e-10)
    np.testing.assert_allclose(tr.sharpness, 9.0, rtol=1e-9)  # constant Hessian
    np.testing.assert_array_equal(tr.probe_steps, [0, 10, 20, 30, 40])
    g = a.numpy() @ theta.numpy()
    np.testing.assert_allclose(tr.grad_norm[0], np.linalg.norm(g), rtol=1e-12)


def test_projected_gd_top_and_bulk_on_a_quadratic():
    # top eigenvalues 9, 7, 5 > 2/eta = 4: Dom-GD oscillates with growing amplitude and raises the loss,
    # Bulk-GD decreases it like full GD restricted to the bulk (closed form, mode by mode)
    fn, a, lam, u3, theta = _quadratic(seed=2)
    eta, steps = 0.5, 12
    top = gp.projected_gd(fn, theta, eta, steps, mode="top", k=3, refresh=4)
    bulk = gp.projected_gd(fn, theta, eta, steps, mode="bulk", k=3, refresh=4)
    ev, q = np.linalg.eigh(a.numpy())
    c = q.T @ theta.numpy()
    t = np.arange(steps + 1)[:, None]
    is_top = ev > 4.5
    fac = np.where(is_top, (1 - eta * ev) ** (2 * t), 1.0)
    np.testing.assert_allclose(top, 0.5 * (ev * c**2 * fac).sum(1), rtol=1e-8)
    fac = np.where(~is_top, (1 - eta * ev) ** (2 * t), 1.0)
    np.testing.assert_allclose(bulk, 0.5 * (ev * c**2 * fac).sum(1), rtol=1e-8)
    with pytest.raises(ValueError, match="mode"):
        gp.projected_gd(fn, theta, eta, 2, mode="middle")


def test_gradient_share_on_a_net_against_dense_eigenvectors():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 10), torch.nn.Tanh(), torch.nn.Linear(10, 3)).to(F64)
    x = torch.randn(60, 4, dtype=F64)
    y = torch.randint(0, 3, (60,))
    fl = hs.flat_loss(net, torch.nn.functional.cross_entropy, x, y)
    h = torch.func.hessian(fl.fn)(fl.theta).numpy()
    ev, vec = np.linalg.eigh(h)
    g = torch.func.grad(fl.fn)(fl.theta).numpy()
    expected = np.sum((vec[:, -3:].T @ g) ** 2) / (g @ g)
    _, basis = gp.top_eigenspace(fl.hessian(), 3, m=fl.dim)
    assert gp.top_subspace_share(torch.tensor(g), basis) == pytest.approx(expected, rel=1e-7)
    assert gp.gradient_norm(fl.fn, fl.theta) == pytest.approx(np.linalg.norm(g), rel=1e-12)
    with pytest.raises(ValueError, match="basis"):
        gp.top_subspace_share(torch.tensor(g), basis[:, :5])
