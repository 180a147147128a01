"""The damped-Newton certificate (ghostsing.experiments.deep_curvature.newton_polish): a smooth problem
ends at a critical point that matches an independent optimiser, a nonsmooth minimum is certified
``stationary`` and never ``converged``, and the ``hessian`` experiment reports the counts of each."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.optimize
import torch
from torch import nn

from ghostsing.deepcheck.operators import flat_loss
from ghostsing.experiments import registry
from ghostsing.experiments.deep_curvature import ActMLP, converge, newton_polish, penalised
from ghostsing.experiments.report import run_experiment


def _logistic():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(200, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (200,), generator=g)
    # softmax regression + (0.05/2)|theta|^2: strictly convex, a unique minimiser
    return penalised(flat_loss(ActMLP(3, 3, 0, 3, "relu", 0.0, 0), nn.functional.cross_entropy, x, y), 0.05)


def test_smooth_loss_reaches_the_closed_form_minimum():
    """Regularised softmax regression: Newton ends with |grad L| <= 1e-10 at scipy's minimiser."""
    fl = _logistic()

    def f(w):
        t = torch.tensor(w, dtype=torch.float64)
        g, v = fl.gradient(t)
        return v, g.numpy()

    ref = scipy.optimize.minimize(f, fl.theta.numpy(), jac=True, method="L-BFGS-B",
                                  options={"gtol": 1e-13, "ftol": 1e-16, "maxiter": 10000})
    theta, rec = newton_polish(fl, fl.theta, grad_tol=1e-10, max_steps=100)
    assert rec["kind"] == "converged" and rec["grad_norm"] <= 1e-10
    assert float(fl.gradient(theta)[0].norm()) <= 1e-10
    np.testing.assert_allclose(theta.numpy(), ref.x, atol=1e-6)
    assert rec["loss"] == pytest.approx(ref.fun, rel=1e-12)


class _Vector(nn.Module):
    """A parameter vector as the model's output (so a FlatLoss is any function of it)."""

    def __init__(self, w0):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w0, dtype=torch.float64))

    def forward(self, x):
        return self.w.expand(x.shape[0], -1)


def _kink_loss(c):
    def loss(z, y):
        """``sum |w_i| + |w - c|^2 / 2``: minimum at the soft threshold of ``c`` (0 where ``|c_i| <= 1``)."""
        w = z[0]
        return w.abs().sum() + 0.5 * ((w - c) ** 2).sum()

    return loss


def _vector_loss(w0, c):
    c = torch.tensor(c, dtype=torch.float64)
    return flat_loss(_Vector(w0), _kink_loss(c), torch.zeros(1, 1, dtype=torch.float64), None)


def test_nonsmooth_minimum_is_stationary_not_converged():
    """|w| + (w - 1/2)^2 / 2: the minimum w = 0 is a kink where the gradient is -1/2 or 1/2 on either side."""
    fl = _vector_loss([0.3], [0.5])
    theta, rec = newton_polish(fl, fl.theta, grad_tol=1e-8, max_steps=500, stall_tol=1e-10, stall_steps=10,
                               damping_max=1e8)
    assert rec["kind"] == "stationary"
    assert rec["grad_norm"] > 0.4  # the one-sided gradient at the kink does not vanish
    assert rec["damping"] > 1e8 and rec["loss_change"] < 1e-10
    assert abs(float(theta[0])) < 1e-6
    _, info = converge(fl, lbfgs_iters=100, grad_tol=1e-8, newton_steps=500)
    assert info["kind"] == "stationary" and not info["converged"]


def test_stationary_is_not_a_minimality_certificate():
    """In 3-D the damped-Newton steps stop on the kink w_1 = 0 before w_0 and w_2 reach the minimum
    (0, 0, 1): 'stationary' says that no damped step along the one-sided gradient lowers the loss, not that
    the point is a minimum (the reports say so)."""
    fl = _vector_loss([0.3, -0.2, 0.4], [0.5, -0.3, 2.0])
    theta, rec = newton_polish(fl, fl.theta, grad_tol=1e-8, max_steps=500)
    assert rec["kind"] == "stationary"
    assert float((theta - torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)).norm()) > 0.1


def test_smooth_problem_is_never_called_stationary():
    """A tight step budget leaves a smooth problem 'not stationary', never 'stationary'."""
    fl = _logistic()
    _, rec = newton_polish(fl, fl.theta, grad_tol=1e-14, max_steps=2)
    assert rec["kind"] == "not stationary"


def test_hessian_small_preset_reports_the_certificates(tmp_path):
    exp = registry.get("hessian")
    cfg = exp.config("hessian-small", {"data": "synthetic"})
    assert cfg.smooth
    _, path = run_experiment(exp, cfg, tmp_path, progress=False)
    doc = json.loads(path.read_text())
    kinds = doc["summary"]["kinds"]
    assert set(kinds) == {"relu", cfg.smooth}
    n = len(cfg.seeds) * (len(cfg.skips) + cfg.control)
    for k in kinds.values():
        assert set(k) == {"converged", "stationary", "not stationary"} and sum(k.values()) == n
    assert any(cfg.smooth in p["name"] for p in doc["predictions"])
    md = (tmp_path / "report.md").read_text()
    assert "critical / kink / neither" in md
