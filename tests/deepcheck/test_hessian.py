"""Hessian probes against independent references: torch.func.hessian, finite differences, numpy eigvalsh,
exact traces of matrix powers, the Hutchinson variance formula and hand-derived null-space dimensions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ghostsing.deepcheck.probes import hessian as hs

F64 = torch.float64


def _mlp(seed: int, widths=(5, 12, 12, 3), act=torch.nn.Tanh) -> torch.nn.Module:
    torch.manual_seed(seed)
    layers: list[torch.nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:], strict=False):
        layers += [torch.nn.Linear(a, b), act()]
    return torch.nn.Sequential(*layers[:-1]).to(F64)


@pytest.fixture(scope="module")
def small_problem():
    net = _mlp(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100, 5, dtype=F64, generator=g)
    y = torch.randint(0, 3, (100,), generator=g)
    fl = hs.flat_loss(net, torch.nn.functional.cross_entropy, x, y)
    dense = torch.func.hessian(fl.fn)(fl.theta)  # jacfwd(jacrev): independent of our HVP code
    return fl, dense


@pytest.mark.parametrize("method", ["jvp", "double_backward"])
def test_hvp_matches_dense_hessian(small_problem, method):
    fl, dense = small_problem
    hvp = hs.make_hvp(fl.fn, fl.theta, method=method)
    v = torch.randn(6, fl.dim, dtype=F64, generator=torch.Generator().manual_seed(3))
    np.testing.assert_allclose(hvp(v).numpy(), (v @ dense).numpy(), atol=1e-12, rtol=0)
    np.testing.assert_allclose(hvp(v[0]).numpy(), (dense @ v[0]).numpy(), atol=1e-12, rtol=0)


def test_hvp_matches_finite_difference_of_gradient(small_problem):
    fl, _ = small_problem
    v = torch.randn(fl.dim, dtype=F64, generator=torch.Generator().manual_seed(4))
    grad = torch.func.grad(fl.fn)
    eps = 1e-5
    fd = (grad(fl.theta + eps * v) - grad(fl.theta - eps * v)) / (2 * eps)  # O(eps^2) error
    hv = hs.make_hvp(fl.fn, fl.theta)(v)
    np.testing.assert_allclose(hv.numpy(), fd.numpy(), atol=1e-8)


def test_exact_hessian_equals_torch_func_hessian(small_problem):
    fl, dense = small_problem
    for method in ("jvp", "double_backward"):
        h = hs.exact_hessian(fl.hessian(method=method), chunk=50)
        np.testing.assert_allclose(h.numpy(), dense.numpy(), atol=1e-13)
    with pytest.raises(ValueError, match="max_params"):
        hs.exact_hessian(fl.hessian(), max_params=10)


@pytest.mark.parametrize("seed", [0, 1])
def test_lanczos_top_and_bottom_against_eigvalsh(seed):
    net = _mlp(seed, widths=(6, 16, 16, 4))
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(80, 6, dtype=F64, generator=g)
    y = torch.randint(0, 4, (80,), generator=g)
    fl = hs.flat_loss(net, torch.nn.functional.cross_entropy, x, y)
    ev = np.linalg.eigvalsh(torch.func.hessian(fl.fn)(fl.theta).numpy())
    op = fl.hessian()
    top, vecs = hs.extreme_eigenvalues(op, 5, m=80, seed=seed, return_vectors=True)
    bot, _ = hs.extreme_eigenvalues(op, 5, which="bottom", m=80, seed=seed)
    np.testing.assert_allclose(top, ev[::-1][:5], rtol=1e-8)
    np.testing.assert_allclose(bot, ev[:5], rtol=1e-8)
    # Ritz vectors are eigenvectors: ||H u - lambda u|| small
    res = op.apply_rows(vecs) - torch.as_tensor(top)[:, None] * vecs
    assert res.norm(dim=1).max().item() < 1e-6


def test_lanczos_breakdown_restart_finds_repeated_eigenvalues():
    # diagonal operator with eigenvalue 3 of multiplicity 4: a single Krylov space sees it once, the restart
    # after breakdown must recover the other copies.
    d = torch.tensor([3.0, 3.0, 3.0, 3.0, 2.0, 1.0, 0.5, -1.0], dtype=F64)
    top, _ = hs.extreme_eigenvalues(hs.DenseOperator(torch.diag(d)), 5, m=8, seed=0)
    np.testing.assert_allclose(top, [3, 3, 3, 3, 2], atol=1e-10)


def test_eigsh_over_linear_operator(small_problem):
    from scipy.sparse.linalg import eigsh

    fl, dense = small_problem
    op = fl.hessian()
    vals = np.sort(eigsh(op.to_scipy(), k=5, which="LA", tol=1e-10)[0])[::-1]
    ev = np.linalg.eigvalsh(dense.numpy())
    np.testing.assert_allclose(vals, ev[::-1][:5], rtol=1e-8)


def test_slq_quadrature_is_exact_for_low_powers_and_moments_match_traces(small_problem):
    fl, dense = small_problem
    hmat = dense.numpy()
    m = 10
    res = hs.slq(fl.hessian(), n_probes=64, m=m, seed=5, batch=16, deflate=False)
    np.testing.assert_allclose(res.weights.sum(1), 1.0, atol=1e-12)
    # Gauss quadrature with m nodes is exact for polynomials of degree <= 2m-1: recompute v^T H^p v
    rng = np.random.default_rng(5)
    z = (rng.integers(0, 2, size=(16, fl.dim)) * 2.0 - 1.0) / np.sqrt(fl.dim)  # first batch of probes
    for p in (1, 2, 3, 7):
        direct = np.einsum("bi,bi->b", z, z @ np.linalg.matrix_power(hmat, p).T)
        np.testing.assert_allclose(res.moment_samples(p)[:16], direct, rtol=1e-7, atol=1e-14)
    # the averages estimate tr(H^p)/P: within 4 standard errors of the probe average
    for p in (1, 2, 3, 4):
        exact = np.trace(np.linalg.matrix_power(hmat, p)) / fl.dim
        s = res.moment_samples(p)
        assert abs(s.mean() - exact) < 4 * s.std(ddof=1) / np.sqrt(len(s)), p
    # broadened density integrates to one and has the right mean
    grid = np.linspace(res.nodes.min() - 0.2, res.nodes.max() + 0.2, 4001)
    dens = res.density(grid, sigma=0.01)
    assert abs(np.trapezoid(dens, grid) - 1) < 1e-6
    assert abs(np.trapezoid(grid * dens, grid) - res.moment(1)) < 1e-6


def test_hutchinson_error_shrinks_like_inverse_sqrt_n(small_problem):
    fl, dense = small_problem
    hmat = dense.to(F64)
    exact = float(torch.trace(hmat))
    off = hmat - torch.diag(torch.diag(hmat))
    sigma1 = float(torch.sqrt(2 * (off**2).sum()))  # sd of one Rademacher sample z^T H z
    ns = np.array([4, 16, 64, 256])
    rng = np.random.default_rng(11)
    rms = []
    for n in ns:
        errs = [
            hs.hutchinson_trace(hs.DenseOperator(hmat), int(n), batch=256, seed=rng).mean - exact
            for _ in range(300)
        ]
        rms.append(np.sqrt(np.mean(np.square(errs))))
    slope = np.polyfit(np.log(ns), np.log(rms), 1)[0]
    assert abs(slope + 0.5) < 0.08, slope
    np.testing.assert_allclose(rms, sigma1 / np.sqrt(ns), rtol=0.15)
    est = hs.hutchinson_trace(hs.DenseOperator(hmat), 64, seed=1)
    assert abs(est.stderr - sigma1 / 8) / (sigma1 / 8) < 0.35


@pytest.mark.parametrize("method", ["jvp", "double_backward"])
def test_batched_trace_equals_sequential_and_dense_quadratic_forms(small_problem, method):
    """Batched HVPs (blocks of 7 and of all 23 probes) give the same Hutchinson samples as the sequential
    loop (batch=1), and each sample equals z^T H z with the dense torch.func.hessian and the same draws."""
    fl, dense = small_problem
    op = fl.hessian(method=method)
    n = 23
    est = {b: hs.hutchinson_trace(op, n, batch=b, seed=5) for b in (1, 7, n)}
    rng = np.random.default_rng(5)  # the documented draw: one Rademacher row per probe
    z = np.concatenate([rng.integers(0, 2, size=(1, fl.dim)) * 2.0 - 1.0 for _ in range(n)])
    ref = np.einsum("lp,pq,lq->l", z, dense.numpy(), z)
    for b, e in est.items():
        np.testing.assert_allclose(e.samples, ref, rtol=1e-12, atol=1e-11, err_msg=f"batch={b}")
        np.testing.assert_allclose(e.mean, est[1].mean, rtol=1e-13, err_msg=f"batch={b}")
    # float32 (the benchmark's dtype): batched and sequential agree to float32 rounding
    fl32 = hs.flat_loss(_mlp(0).float(), torch.nn.functional.cross_entropy,
                        torch.randn(100, 5, generator=torch.Generator().manual_seed(0)),
                        torch.randint(0, 3, (100,), generator=torch.Generator().manual_seed(1)))
    op32 = fl32.hessian(method=method)
    m1 = hs.hutchinson_trace(op32, n, batch=1, seed=5)
    m2 = hs.hutchinson_trace(op32, n, batch=n, seed=5)
    np.testing.assert_allclose(m2.samples, m1.samples, rtol=1e-4, atol=1e-5)


class _TwoLayer(torch.nn.Module):
    """f(x) = sum_i w_i act(J_i . x), no biases."""

    def __init__(self, J: torch.Tensor, w: torch.Tensor, act):
        super().__init__()
        self.J = torch.nn.Parameter(J.clone())
        self.w = torch.nn.Parameter(w.clone())
        self.act = act

    def forward(self, x):
        return self.act(x @ self.J.T) @ self.w


def _half_mse(out, y):
    return 0.5 * ((out - y) ** 2).mean()


def test_degeneracy_dead_and_duplicated_units_at_zero_loss():
    # f(x) = sum_{i<K} w_i tanh(J_i.x), N = 3 inputs, K = 5 units, P = K (N + 1) = 20, targets y =
    # f_{theta*}(x)
    # so the residual is zero and H = (1/n) Jac^T Jac with Jac the n x P Jacobian of the outputs.
    # Unit 0 dead (w_0 = 0, J_0 = 0): d f/d w_0 = tanh(0) = 0 and d f/d J_0 = w_0 tanh'(.) x = 0, so its
    # N + 1 = 4
    # columns vanish.  Units 1, 2 duplicated (J_1 = J_2): d f/d w_1 = d f/d w_2 and d f/d J_2 = (w_2/w_1)
    # d f/d J_1,
    # another N + 1 = 4 dependent columns.  The other columns are generic (n = 200 >> P), so
    # rank H = P - 2 (N + 1) = 12 and exactly 8 eigenvalues are zero.
    n_in, k = 3, 5
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, n_in, dtype=F64, generator=g)
    J = torch.randn(k, n_in, dtype=F64, generator=g)
    w = torch.randn(k, dtype=F64, generator=g)
    J[0], w[0], J[2] = 0.0, 0.0, J[1]
    net = _TwoLayer(J, w, torch.tanh)
    y = net(x).detach()
    fl = hs.flat_loss(net, _half_mse, x, y)
    ev = hs.exact_spectrum(fl.hessian())
    assert fl.dim == 20
    n_zero = int(np.sum(np.abs(ev) < 1e-10 * ev.max()))
    assert n_zero == 2 * (n_in + 1)
    assert np.sort(np.abs(ev))[8] > 1e-6 * ev.max()  # clear gap above the null space
    frac = hs.degeneracy_curve(ev, taus=(1e-10,))
    assert frac[0] == pytest.approx(8 / 20)


def test_degeneracy_dead_relu_unit_away_from_a_minimum():
    # ReLU net, x_0 = 1 for every sample and J_0 = (-10, 0, 0, 0): unit 0 is dead on a neighbourhood of
    # theta,
    # so L is locally constant in its N + 1 = 5 coordinates (w_0, J_0) and those Hessian rows vanish even
    # with a
    # non-zero residual (random targets).  No other exact null direction exists (ReLU rescaling symmetry
    # only
    # gives one at critical points), so exactly 5 zero eigenvalues.
    n_in, k = 4, 5
    g = torch.Generator().manual_seed(1)
    x = torch.randn(300, n_in, dtype=F64, generator=g)
    x[:, 0] = 1.0
    J = torch.randn(k, n_in, dtype=F64, generator=g)
    w = torch.randn(k, dtype=F64, generator=g)
    J[0] = torch.tensor([-10.0, 0.0, 0.0, 0.0])
    net = _TwoLayer(J, w, torch.relu)
    y = torch.randn(300, dtype=F64, generator=g)
    fl = hs.flat_loss(net, _half_mse, x, y)
    ev = hs.exact_spectrum(fl.hessian())
    assert int(np.sum(np.abs(ev) < 1e-10 * ev.max())) == n_in + 1
    assert hs.negative_fraction(ev, tol=1e-10 * ev.max()) > 0  # not a minimum: negative curvature present


def test_slq_degeneracy_estimate_against_exact():
    # validation of the density-based estimate used for large nets (see docs/curvature.md for the tolerance)
    net = _mlp(2, widths=(8, 24, 24, 4))
    g = torch.Generator().manual_seed(2)
    x = torch.randn(150, 8, dtype=F64, generator=g)
    y = torch.randint(0, 4, (150,), generator=g)
    fl = hs.flat_loss(net, torch.nn.functional.cross_entropy, x, y)
    ev = hs.exact_spectrum(fl.hessian())
    for deflate in (False, True):
        res = hs.slq(fl.hessian(), n_probes=16, m=100, seed=0, batch=16, deflate=deflate)
        taus = (1e-2, 1e-1)
        est = res.degeneracy(taus, lambda_max=ev.max())
        np.testing.assert_allclose(est, hs.degeneracy_curve(ev, taus), atol=0.08)
        lm = ev.max()
        assert abs(res.negative_fraction() - hs.negative_fraction(ev, tol=1e-2 * lm)) < 0.08
        assert res.lambda_max == pytest.approx(ev.max(), rel=1e-6)
        # the first moment is tr H / P within 4 of its own reported standard errors
        assert abs(res.moment(1) - ev.mean()) < 4 * res.moment_stderr(1), deflate
    with pytest.raises(ValueError, match="rel_tol"):
        res.negative_fraction(0.0)


def test_bad_inputs():
    with pytest.raises(TypeError):
        hs.flat_loss("not a model", _half_mse, torch.zeros(1), torch.zeros(1))
    with pytest.raises(ValueError, match="method"):
        hs.make_hvp(lambda t: (t**2).sum(), torch.zeros(3), method="nope")
    with pytest.raises(ValueError, match="taus"):
        hs.degeneracy_curve(np.array([1.0, 0.0]), taus=(2.0,))
    with pytest.raises(ValueError, match="which"):
        hs.extreme_eigenvalues(hs.DenseOperator(torch.eye(4, dtype=F64)), 2, which="middle")
    with pytest.raises(ValueError, match="k must"):
        hs.extreme_eigenvalues(hs.DenseOperator(torch.eye(4, dtype=F64)), 9)
    with pytest.raises(TypeError, match="CurvatureOperator"):
        hs.hutchinson_trace(lambda v: v, 10)
    with pytest.raises(ValueError, match="method"):
        hs.trace(hs.DenseOperator(torch.eye(4, dtype=F64)), 10, method="nope")


def test_lanczos_early_stop_on_ritz_residual(small_problem):
    fl, dense = small_problem
    ev = np.linalg.eigvalsh(dense.numpy())
    op = fl.hessian()
    res = hs.extreme_eigenvalues(op, 3, m=120, tol=1e-4, seed=0)
    top = res.values
    assert op.n_matvecs == res.n_matvecs < 120 and res.converged  # stopped early
    np.testing.assert_array_less(res.residuals, 1e-4 * ev.max() * (1 + 1e-12))
    # residual r = tol |theta| bounds the eigenvalue error by r^2 / gap (Kato-Temple) -- far below 1e-6
    np.testing.assert_allclose(top, ev[::-1][:3], rtol=1e-6)


def test_hutchpp_unbiased_and_better_on_a_top_heavy_spectrum():
    # H = U diag(lambda) U^T with 5 large eigenvalues on a flat bulk: Hutch++ removes the top part exactly
    rng = np.random.default_rng(0)
    p = 200
    u, _ = np.linalg.qr(rng.standard_normal((p, p)))
    lam = np.concatenate([[50.0, 40.0, 30.0, 20.0, 10.0], rng.uniform(0, 0.1, p - 5)])
    h = torch.tensor(u @ np.diag(lam) @ u.T)
    hvp = hs.DenseOperator(h)
    exact = lam.sum()
    pp = np.array([hs.hutchpp_trace(hvp, 30, seed=s).mean for s in range(200)])
    hu = np.array([hs.hutchinson_trace(hvp, 30, seed=s).mean for s in range(200)])
    assert abs(pp.mean() - exact) < 4 * pp.std(ddof=1) / np.sqrt(len(pp))  # unbiased
    assert pp.std() < 0.2 * hu.std()  # variance reduction by removing the top subspace
    with pytest.raises(ValueError, match="n_matvecs"):
        hs.hutchpp_trace(hvp, 4)
    # HVP sub-blocks change nothing but the call pattern: same samples for batch = 1, 4 and whole blocks
    whole = hs.hutchpp_trace(hvp, 30, seed=7)
    for b in (1, 4):
        np.testing.assert_allclose(hs.hutchpp_trace(hvp, 30, seed=7, batch=b).samples, whole.samples,
                                   rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="batch"):
        hs.hutchpp_trace(hvp, 30, batch=0)
