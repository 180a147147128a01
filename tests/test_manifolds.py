"""Charts of the singular manifolds, the flow in them, and the exact criticality proofs.

Independent checks: inverse maps against each other; the pushed-forward flow ``D phi . F`` against the
pulled-back gradient ``-G^{-1} grad_xi L(psi(xi))`` (different code path: symbolic reduced loss) and
against central finite differences of ``phi`` along the flow; the symbolic proof against the
generated Numba gradient; the best fit against a minimisation of a quadrature loss.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from scipy import integrate, optimize, special

from ghostsing.analytic.loss import derive
from ghostsing.analytic.manifolds import (
    best_fit,
    critical_line,
    criticality_proof,
    elimination,
    evaluate_extra,
    is_identically_zero,
    linear_dependence,
    milnor_interval,
    overlap,
    parent_spec,
)
from ghostsing.models import ModelSpec

ERF_N1 = ModelSpec(K=2, M=2, N=1, activation="erf", alpha=0.0, v=(2.0, -1.0), B=[[2.0], [0.5]])
ERF_N1_SKIP = ERF_N1.replace(alpha=0.3, skip_directions=[[1.0], [0.5]])
ERF_N2 = ModelSpec(K=2, M=2, N=2, activation="erf", alpha=0.0, v=(1.0, 0.6), B=[[1.0, 0.3], [-0.2, 1.5]])
REAL = ModelSpec(K=2, M=1, N=1, activation="erf", v=(1.5,), B=[[0.8]], sigma=0.3)
LIN3 = ModelSpec(K=3, M=2, N=3, activation="linear", alpha=0.0, v=(1.0, 0.5),
                 B=[[1.0, 0.0, 0.5], [0.0, 1.0, 0.0]])


def _charts():
    return [overlap(ERF_N1), overlap(ERF_N2), elimination(ERF_N1, 1, "w"), elimination(ERF_N2, 0, "J"),
            linear_dependence(LIN3), overlap(ModelSpec(K=3, M=2, N=1, activation="erf", v=(1.0, 1.0),
                                                       B=[[1.0], [2.0]]), 0, 2)]


@pytest.fixture(scope="module")
def charts():
    return _charts()


@pytest.fixture(scope="module")
def fit_n1():
    return best_fit(parent_spec(ERF_N1))


def _generic_xi(ch, rng):
    xi = rng.normal(size=ch.spec.n_params)
    if ch.kind == "overlap":  # keep away from the chart's singular set w = 0
        xi[ch.coords.index(ch.parent[0])] = 1.3
    return xi


# ---------------------------------------------------------------------------------- maps
def test_maps_are_inverse(charts):
    rng = np.random.default_rng(1)
    for ch in charts:
        for _ in range(5):
            xi = _generic_xi(ch, rng)
            th = ch.to_theta(xi)
            np.testing.assert_allclose(ch.from_theta(th), xi, atol=1e-11, rtol=1e-11, err_msg=ch.kind)
            th2 = rng.normal(size=ch.spec.n_params)
            np.testing.assert_allclose(ch.to_theta(ch.from_theta(th2)), th2, atol=1e-11, err_msg=ch.kind)


def test_maps_are_inverse_symbolically():
    for ch in (overlap(ERF_N1), overlap(ERF_N2), elimination(ERF_N2, 1, "J")):
        back = [sp.simplify(e.xreplace(dict(zip(ch.theta, ch.psi, strict=True)))) for e in ch.phi]
        assert back == list(ch.coords)


def test_overlap_chart_matches_design():
    """w = w1 + w2, z = (w1 - w2)/w, u = J1 - J2, Jbar = (w1 J1 + w2 J2)/w (DESIGN.md)."""
    ch = overlap(ERF_N1)
    w1, w2, J1, J2 = 0.7, -0.2, 1.1, -0.4
    w, Jb, z, u = ch.from_theta([w1, w2, J1, J2])
    assert w == pytest.approx(w1 + w2) and z == pytest.approx((w1 - w2) / (w1 + w2))
    assert u == pytest.approx(J1 - J2) and Jb == pytest.approx((w1 * J1 + w2 * J2) / (w1 + w2))


# ---------------------------------------------------------------------------------- flow
def test_reduced_flow_equals_pushed_forward_and_pulled_back_gradient(charts):
    rng = np.random.default_rng(2)
    for ch in charts:
        model = derive(ch.spec).compile()
        Lr = ch.loss()
        grad_xi = sp.lambdify([ch.coords], [sp.diff(Lr, c) for c in ch.coords], "numpy")
        dpsi = sp.lambdify([ch.coords], ch.dpsi, "numpy")
        for _ in range(2):
            xi = _generic_xi(ch, rng)
            flow = ch.reduced_flow(xi, model)
            D = np.asarray(dpsi(xi), dtype=float)
            pulled = -np.linalg.solve(D.T @ D, np.asarray(grad_xi(xi), dtype=float))
            np.testing.assert_allclose(flow, pulled, rtol=1e-9, atol=1e-11, err_msg=ch.kind)
            th = ch.to_theta(xi)
            F = model.flow(th)
            h = 1e-6
            fd = (ch.from_theta(th + h * F) - ch.from_theta(th - h * F)) / (2 * h)
            np.testing.assert_allclose(flow, fd, rtol=1e-6, atol=1e-7, err_msg=ch.kind)


def test_symbolic_reduced_flow_matches_numeric():
    ch = overlap(ERF_N1)
    f = sp.lambdify([ch.coords], list(ch.flow), "numpy")
    xi = np.array([1.4, 0.6, 0.3, -0.25])
    np.testing.assert_allclose(np.asarray(f(xi), dtype=float), ch.reduced_flow(xi), rtol=1e-10, atol=1e-13)


# ---------------------------------------------------------------------------------- best fit
def test_best_fit_against_quadrature_minimisation(fit_n1):
    """Minimise the loss written as a 1-D Gaussian integral (no closed forms) with Nelder-Mead."""
    s = ERF_N1

    def g(x):
        return special.erf(x / np.sqrt(2))

    def loss(p):
        w, J = p

        def integrand(x):
            y = s.v[0] * g(s.B[0, 0] * x) + s.v[1] * g(s.B[1, 0] * x)
            return 0.5 * (y - w * g(J * x)) ** 2 * np.exp(-x * x / 2) / np.sqrt(2 * np.pi)
        return integrate.quad(integrand, -np.inf, np.inf, epsabs=1e-14, epsrel=1e-13)[0]

    res = optimize.minimize(loss, fit_n1.theta + 0.05, method="Nelder-Mead",
                            options={"xatol": 1e-10, "fatol": 1e-15, "maxiter": 4000})
    np.testing.assert_allclose(res.x, fit_n1.theta, atol=2e-6)
    assert fit_n1.loss == pytest.approx(res.fun, rel=1e-9)
    assert fit_n1.grad_norm < 1e-12 and np.all(fit_n1.hessian_eigenvalues > 0)


def test_exact_best_fit_linear_matches_numeric():
    s2 = parent_spec(LIN3)
    ex = best_fit(s2)
    assert ex.method == "exact"
    beta_T = s2.v @ s2.B
    w, J = s2.split(ex.theta)
    np.testing.assert_allclose(w @ J, beta_T, atol=1e-14)
    assert ex.loss == pytest.approx(0.0, abs=1e-14)
    assert np.linalg.matrix_rank(J) == 2


# ---------------------------------------------------------------------------------- proofs
def test_criticality_proof_three_units():
    """O_13 of a three-unit student: the merged unit sits at position 1 of the two-unit parent."""
    spec = ModelSpec(K=3, M=2, N=1, activation="erf", v=(1.0, 1.0), B=[[1.0], [2.0]], alpha=0.2,
                     skip_directions=[[1.0], [0.5], [0.2]])
    ch = overlap(spec, 0, 2)
    pr = criticality_proof(ch)
    assert pr.proved and pr.ghost_nonzero
    parent, free = np.array([0.9, -0.6, 0.7, 1.8]), [0.35]
    th = ch.embed(parent, free)
    np.testing.assert_allclose(th, [0.9 * 1.35 / 2, -0.6, 0.9 * 0.65 / 2, 0.7, 1.8, 0.7], rtol=1e-15)
    np.testing.assert_allclose(pr.gradient_at(parent, free, 0.2), -derive(spec).compile().flow(th),
                               rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("which", ["overlap", "elim-w", "elim-J", "lindep"])
def test_criticality_proof(which):
    ch = {"overlap": overlap(ERF_N1_SKIP), "elim-w": elimination(ERF_N1_SKIP, 1, "w"),
          "elim-J": elimination(ERF_N1_SKIP, 1, "J"),
          "lindep": linear_dependence(LIN3.replace(alpha=0.5))}[which]
    pr = criticality_proof(ch)
    assert pr.proved, pr.residual_alpha0
    assert pr.ghost_nonzero
    # the symbolic gradient against the generated one, at random parent/free values, alpha = 0 and > 0
    rng = np.random.default_rng(3)
    parent = rng.normal(size=ch.n_parent) + 0.5
    free = rng.normal(size=len(ch.free))
    theta = ch.embed(parent, free)
    plain = LIN3 if which == "lindep" else ERF_N1  # skip directions do not matter at alpha = 0
    for alpha, spec in ((0.0, plain), (ch.spec.alpha, ch.spec)):
        expected = -derive(spec).compile().flow(theta)
        np.testing.assert_allclose(pr.gradient_at(parent, free, alpha), expected, rtol=1e-9, atol=1e-11)
    # the proof does not hold with the K-unit gradient perturbed: the test can fail
    assert not is_identically_zero(pr.residual_alpha0[0] + sp.Rational(1, 10**6))


def test_extra_terms_vanish_where_theory_says():
    """{w_i = 0}: E vanishes at J_i = 0 (odd g); {J_i = 0}: E vanishes at w_i = 0 (and not elsewhere)."""
    fit = best_fit(parent_spec(ERF_N1))
    pw = criticality_proof(elimination(ERF_N1, 1, "w"))
    pj = criticality_proof(elimination(ERF_N1, 1, "J"))
    assert np.max(np.abs(evaluate_extra(pw, fit.theta, [0.0]))) == 0.0
    assert np.max(np.abs(evaluate_extra(pw, fit.theta, [0.8]))) > 1e-3
    assert np.max(np.abs(evaluate_extra(pj, fit.theta, [0.0]))) == 0.0
    assert np.max(np.abs(evaluate_extra(pj, fit.theta, [0.8]))) > 1e-3
    assert is_identically_zero(pw.extra[1].xreplace({pw.chart.free[0]: 0}))


def test_ghost_is_first_order_in_alpha(fit_n1):
    """At the embedded optimum |grad L| = alpha |g_1| + O(alpha^2), g_1 from the symbolic series."""
    ch = overlap(ERF_N1_SKIP)
    pr = criticality_proof(ch)
    for z in (-2.0, 0.3):
        g1 = pr.ghost_at(fit_n1.theta, [z])
        assert np.linalg.norm(g1) > 1e-3
        for alpha in (1e-3, 1e-2):
            model = derive(ERF_N1_SKIP.replace(alpha=alpha)).compile()
            grad = -model.flow(ch.embed(fit_n1.theta, [z]))
            np.testing.assert_allclose(grad / alpha, g1, rtol=0, atol=50 * alpha * np.linalg.norm(g1) + 1e-9)
        model0 = derive(ERF_N1).compile()
        assert np.linalg.norm(model0.flow(ch.embed(fit_n1.theta, [z]))) < 1e-12


def test_free_ghost_vanishes_for_equal_skip_directions():
    """The drift along z at first order in alpha is -(w/2) (s_i - s_j) . E[r* x]: zero iff s_i = s_j."""
    same = criticality_proof(overlap(ERF_N1.replace(alpha=0.3, skip_directions=[[1.0], [1.0]])))
    diff = criticality_proof(overlap(ERF_N1_SKIP))
    assert is_identically_zero(same.free_ghost()[0])
    assert not is_identically_zero(diff.free_ghost()[0])
    assert diff.chart.free[0] not in diff.free_ghost()[0].free_symbols  # uniform along the line


# ---------------------------------------------------------------------------------- Hessians
def _null_along(H, t):
    return np.linalg.norm(H @ t) / np.linalg.norm(t)


def test_overlap_hessian_singular_only_without_skip(fit_n1):
    ch = overlap(ERF_N1)
    dpsi = sp.lambdify([ch.coords], ch.dpsi, "numpy")
    iz = ch.coords.index(ch.free[0])
    for z in (-1.7, 0.2, 2.5):
        th = ch.embed(fit_n1.theta, [z])
        t = np.asarray(dpsi(np.concatenate([fit_n1.theta, [z], [0.0]])), dtype=float)[:, iz]
        H0 = -derive(ERF_N1).compile().jacobian(th)
        assert _null_along(H0, t) < 1e-12
        assert np.min(np.abs(np.linalg.eigvalsh(H0))) < 1e-12
        H1 = -derive(ERF_N1_SKIP).compile().jacobian(th)
        assert _null_along(H1, t) > 1e-3
        assert np.min(np.abs(np.linalg.eigvalsh(H1))) > 1e-6


def test_elimination_hessian():
    """At (w_i, J_i) = (0, 0) with N = 2 the (w_i, J_i) block is -g'(0)[[0, c^T], [c, 0]], c = E[r* x]:
    one zero eigenvalue along J_i perpendicular to c.  With skips the point stops being critical
    (grad = O(alpha)), but since w_i multiplies the skip of unit i too, L stays independent of J_i on
    {w_i = 0} and that zero eigenvalue survives (documented in docs/manifolds.md)."""
    fit = best_fit(parent_spec(ERF_N2))
    ch = elimination(ERF_N2, 1, "w")
    th = ch.embed(fit.theta, [0.0, 0.0])
    m0 = derive(ERF_N2).compile()
    H0 = -m0.jacobian(th)
    assert np.linalg.norm(m0.flow(th)) < 1e-12
    ev = np.linalg.eigvalsh(H0)
    assert np.sum(np.abs(ev) < 1e-12) == 1
    # c from the closed form E[g(B.x) x] = B sqrt(2/pi)/sqrt(1+|B|^2)
    w, J = parent_spec(ERF_N2).split(fit.theta)
    lin = lambda P: P * np.sqrt(2 / np.pi) / np.sqrt(1 + P @ P)
    c = sum(ERF_N2.v[m] * lin(ERF_N2.B[m]) for m in range(2)) - w[0] * lin(J[0])
    t = np.zeros(6)
    t[4:6] = [-c[1], c[0]]
    assert _null_along(H0, t) < 1e-12
    # spectrum = spec(Hess') + {0, +-g'(0)|c|}
    gc = np.sqrt(2 / np.pi) * np.linalg.norm(c)
    assert gc > 1e-3
    for lam in (gc, -gc):
        assert np.min(np.abs(ev - lam)) < 1e-12
    block = H0[np.ix_([1, 4, 5], [1, 4, 5])]
    np.testing.assert_allclose(block, -np.sqrt(2 / np.pi) * np.array([[0, *c], [c[0], 0, 0], [c[1], 0, 0]]),
                               atol=1e-13)
    m1 = derive(ERF_N2.replace(alpha=0.5)).compile()
    assert np.linalg.norm(m1.flow(th)) > 1e-2
    assert np.sum(np.abs(np.linalg.eigvalsh(-m1.jacobian(th))) < 1e-12) == 1


def test_elimination_J_line_in_realisable_case():
    """Teacher of one unit: {J_2 = 0, w_2 free} is a line of global minima at alpha = 0 (c = 0); with
    skips L depends on w_2 through alpha w_2 s_2.x, so the flat direction is gone."""
    fit = best_fit(parent_spec(REAL))
    assert fit.method == "exact"
    ch = elimination(REAL, 1, "J")
    model = derive(REAL).compile()
    m1 = derive(REAL.replace(alpha=0.4, skip_directions=[[1.0], [0.5]])).compile()
    e = np.array([0.0, 1.0, 0.0, 0.0])
    for w2 in (-1.0, 0.0, 0.7):
        th = ch.embed(fit.theta, [w2])
        assert model.loss(th) == pytest.approx(0.045, abs=1e-14)
        assert np.linalg.norm(model.flow(th)) < 1e-13
        H0 = -model.jacobian(th)
        assert np.min(np.linalg.eigvalsh(H0)) > -1e-12
        assert _null_along(H0, e) < 1e-13
        assert _null_along(-m1.jacobian(th), e) > 1e-2


def test_linear_dependence_free_directions():
    s2 = parent_spec(LIN3)
    fit = best_fit(s2)
    ch = linear_dependence(LIN3)
    dpsi = sp.lambdify([ch.coords], ch.dpsi, "numpy")
    free = np.array([0.4, -0.7, 1.2])
    xi = np.concatenate([fit.theta, free, [0.0]])
    th = ch.to_theta(xi)
    T = np.asarray(dpsi(xi), dtype=float)[:, [ch.coords.index(f) for f in ch.free]]
    m0 = derive(LIN3).compile()
    assert np.linalg.norm(m0.flow(th)) < 1e-13 and m0.loss(th) == pytest.approx(0.0, abs=1e-14)
    assert max(_null_along(-m0.jacobian(th), T[:, k]) for k in range(3)) < 1e-13
    m1 = derive(LIN3.replace(alpha=0.5)).compile()
    assert np.linalg.norm(m1.flow(th)) > 1e-2
    assert min(_null_along(-m1.jacobian(th), T[:, k]) for k in range(3)) > 1e-2


# ---------------------------------------------------------------------------------- realisable
def test_realisable_line_of_global_minima():
    spec = ModelSpec(K=2, M=1, N=1, activation="erf", v=(1.5,), B=[[0.8]], sigma=0.3)
    line = critical_line(spec, z=np.linspace(-3, 3, 13))
    assert line.realisable and line.fit.method == "exact"
    np.testing.assert_allclose(line.loss, 0.045, atol=1e-14)
    assert np.max(line.grad_norm) < 1e-13
    assert np.min(line.hessian_eigenvalues) > -1e-12
    # exactly: L_K(embed(teacher, z)) = sigma^2/2 for symbolic z
    ch = line.chart
    Lr = ch.loss().xreplace(dict(zip(ch.parent, line.fit.exact, strict=True))).xreplace({ch.transverse[0]: 0})
    assert sp.simplify(Lr - sp.Rational(9, 200)) == 0
    mi = milnor_interval(spec)
    assert mi.rule == "degenerate" and abs(mi.K.value) < 1e-14


# ---------------------------------------------------------------------------------- errors
def test_bad_inputs():
    with pytest.raises(ValueError, match="i < j"):
        overlap(ERF_N1, 1, 0)
    with pytest.raises(ValueError, match="unit index"):
        overlap(ERF_N1, 0, 5)
    with pytest.raises(ValueError, match="which"):
        elimination(ERF_N1, 0, "x")
    with pytest.raises(ValueError, match="relu"):
        elimination(ERF_N1.replace(activation="relu"), 0, "J")
    with pytest.raises(ValueError, match="K=3, N=3"):
        linear_dependence(ERF_N2)
    with pytest.raises(ValueError, match="K >= 2"):
        overlap(parent_spec(ERF_N1))
    with pytest.raises(TypeError, match="ModelSpec"):
        overlap("spec")
    with pytest.raises(ValueError, match="shape"):
        overlap(ERF_N1).to_theta([1.0, 2.0])
    with pytest.raises(ValueError, match="alpha = 0"):
        best_fit(ERF_N1_SKIP)


def test_transverse_hessians_closed_forms():
    """H_uu = -(1 - z^2) K(w, Jbar) on all of {u = 0} (exact); {J_2 = 0}: H = (w_2 g'(0))^2;
    {w_2 = 0}: H = E[g(J_2 x)^2] = (2/pi) asin(J^2/(1 + J^2))."""
    from ghostsing.analytic.manifolds import amari_K_expr, transverse_hessian

    ch = overlap(ERF_N1)
    z = ch.free[0]
    assert is_identically_zero(transverse_hessian(ch)[0, 0] + (1 - z**2) * amari_K_expr(ch)[0, 0])
    assert not is_identically_zero(transverse_hessian(ch)[0, 0] + (1 - z) * amari_K_expr(ch)[0, 0])
    ce = elimination(ERF_N1, 1, "J")
    w2 = ce.free[0]
    assert is_identically_zero(transverse_hessian(ce)[0, 0] - 2 * w2**2 / sp.pi)
    cw = elimination(ERF_N1, 1, "w")
    J2 = cw.free[0]
    assert is_identically_zero(transverse_hessian(cw)[0, 0] - 2 / sp.pi * sp.asin(J2**2 / (1 + J2**2)))


def test_vectorised_maps_match_pointwise(charts):
    rng = np.random.default_rng(5)
    for ch in charts[:3]:
        xi = np.array([_generic_xi(ch, rng) for _ in range(4)])
        model = derive(ch.spec).compile()
        np.testing.assert_allclose(ch.to_theta_many(xi), [ch.to_theta(x) for x in xi], rtol=1e-14)
        np.testing.assert_allclose(ch.reduced_flow_many(xi, model), [ch.reduced_flow(x, model) for x in xi],
                                   rtol=1e-12, atol=1e-14)


def test_elimination_critical_sets():
    from ghostsing.analytic.manifolds import elimination_critical_set

    fit = best_fit(parent_spec(ERF_N1))
    model = derive(ERF_N1).compile()
    cw = elimination(ERF_N1, 1, "w")
    sw = elimination_critical_set(cw, fit)
    assert 0.0 in sw.free_values and not sw.whole_line
    for J in sw.free_values:
        assert np.linalg.norm(model.flow(cw.embed(fit.theta, [J]))) < 1e-10
    assert np.linalg.norm(model.flow(cw.embed(fit.theta, [0.77]))) > 1e-4
    cj = elimination(ERF_N1, 1, "J")
    sj = elimination_critical_set(cj, fit)
    assert sj.free_values == (0.0,) and abs(sj.correlation[0]) > 1e-3
    assert np.linalg.norm(model.flow(cj.embed(fit.theta, [0.5]))) > 1e-4
    real = elimination_critical_set(elimination(REAL, 1, "J"))
    assert real.whole_line and abs(real.correlation[0]) < 1e-14
