"""The overlap line of the two-unit erf student: Amari's K, the transverse eigenvalue and the
attracting z-interval, checked against quadrature, the generated Jacobian and the reduced flow."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from scipy import integrate, special

from ghostsing.analytic.loss import derive
from ghostsing.analytic.manifolds import (
    amari_K,
    block_spectrum,
    criticality_proof,
    elimination_plane_flow,
    milnor_interval,
    overlap,
    overlap_plane_flow,
)
from ghostsing.models import ModelSpec

# K < 0: |z| < 1 attracts;  K > 0: |z| > 1 attracts (both weakly coupled: |K| << Hess' of the fit)
NEG = ModelSpec(K=2, M=2, N=1, activation="erf", v=(2.0, -1.0), B=[[2.0], [0.5]])
POS = ModelSpec(K=2, M=2, N=1, activation="erf", v=(1.0, 1.0), B=[[1.0], [2.0]])
ISSUE = ModelSpec(K=2, M=2, N=1, activation="erf", alpha=0.0, v=(10.0, 5.0), B=[[0.4], [4.0]])


@pytest.fixture(scope="module")
def intervals():
    return {name: milnor_interval(s) for name, s in (("neg", NEG), ("pos", POS), ("issue", ISSUE))}


def test_amari_K_closed_form_against_quadrature(intervals):
    for mi in intervals.values():
        assert mi.K.value == pytest.approx(mi.K.quad, rel=1e-10, abs=1e-15)
    assert intervals["neg"].K.value < 0 < intervals["pos"].K.value
    assert intervals["issue"].K.value > 0


def test_attracting_segment_follows_sign_of_K(intervals):
    """K > 0 => |z| > 1 attracts; K < 0 => |z| < 1 attracts (Amari et al.), from the exact Jacobian."""
    for name, rule in (("neg", "|z| < 1"), ("pos", "|z| > 1"), ("issue", "|z| > 1")):
        mi = intervals[name]
        assert mi.rule == rule and mi.certified and mi.parent_is_minimum
        inside = np.abs(mi.z) < 0.95
        outside = np.abs(mi.z) > 1.05
        if rule == "|z| < 1":
            assert np.all(mi.n_unstable[inside] == 0) and np.all(mi.n_unstable[outside] == 1)
            assert np.all(mi.mu[inside] < 0) and np.all(mi.mu[outside] > 0)
        else:
            assert np.all(mi.n_unstable[inside] == 1) and np.all(mi.n_unstable[outside] == 0)
            assert np.all(mi.mu[inside] > 0) and np.all(mi.mu[outside] < 0)
        np.testing.assert_allclose(np.abs(mi.boundaries_numeric), 1.0, atol=1e-9)
        # exact polynomial certificate: c_1(z) of det(mu - A(z)) is C (1 - z^2) for K = 2, N = 1
        np.testing.assert_allclose(mi.pdet_roots, [-1.0, 1.0], atol=1e-12)
        z = overlap(mi.spec).free[0]
        q, r = sp.div(sp.Poly(mi.pdet, z), sp.Poly(1 - z**2, z))
        assert q.degree() == 0 and all(abs(c) < 1e-12 * abs(q.LC()) for c in r.coeffs())


def test_transverse_eigenvalue_against_leading_orders(intervals):
    for name in ("neg", "pos", "issue"):
        mi = intervals[name]
        i0 = int(np.argmin(np.abs(mi.z)))
        assert mi.z[i0] == 0.0
        # exact at z = 0 (no metric coupling there): mu = 2K
        assert mi.mu[i0, 0] == pytest.approx(2 * mi.K.value, rel=1e-8)
    for name in ("neg", "pos"):  # weak coupling: mu ~ 2(1 - z^2)K/(1 + z^2) within O(K/|Hess'|)
        mi = intervals[name]
        ok = np.abs(np.abs(mi.z) - 1) > 0.05
        ratio = mi.mu[ok, 0] / mi.mu_eigen_leading[ok, 0]
        coupling = abs(mi.K.value) / mi.fit.hessian_eigenvalues[0]
        assert np.max(np.abs(ratio - 1)) < 5 * coupling
    # the leading order is asymptotic: in the exact block model (checked against the generated
    # Jacobian below) with Kmat scaled by eps the relative error is O(eps)
    mi = intervals["pos"]
    ch = overlap(POS)
    zs = np.array([-2.0, -0.5, 0.5, 3.0])
    errs = []
    for eps in (1e-2, 1e-3):
        spec = block_spectrum(ch, mi.fit, eps * mi.K.matrix, zs)
        lead = 2 * (1 - zs**2) * eps * mi.K.value / (1 + zs**2)
        mu = spec[np.arange(zs.size), np.argmin(np.abs(spec - lead[:, None]), axis=1)]
        errs.append(np.abs(mu / lead - 1))
    assert np.all(errs[0] < 0.05) and np.all(errs[1] / errs[0] < 0.12)
    # Amari's instantaneous rate 2(1 - z^2)K (no 1/(1 + z^2)) is not the eigenvalue away from z = 0
    far = np.abs(mi.z) > 2
    assert np.all(np.abs(mi.mu[far, 0] / mi.mu_leading[far, 0]) < 0.3)


def test_block_spectrum_equals_generated_jacobian(intervals):
    for name, spec in (("neg", NEG), ("issue", ISSUE)):
        mi = intervals[name]
        ch = overlap(spec)
        model = derive(spec).compile()
        zs = np.array([-2.5, -1.0, -0.3, 0.0, 0.7, 1.6])
        exact = np.array([np.linalg.eigvalsh(model.jacobian(ch.embed(mi.fit.theta, [z]))) for z in zs])
        np.testing.assert_allclose(block_spectrum(ch, mi.fit, mi.K.matrix, zs), exact, atol=1e-11)


def test_line_jacobian_symbolic_matches_generated(intervals):
    from ghostsing.analytic.manifolds import line_jacobian

    mi = intervals["issue"]
    A = line_jacobian(ISSUE, mi.fit)
    z = overlap(ISSUE).free[0]
    model = derive(ISSUE).compile()
    for zz in (-1.7, 0.4):
        num = np.array(A.xreplace({z: zz}).evalf(), dtype=float)
        np.testing.assert_allclose(num, model.jacobian(overlap(ISSUE).embed(mi.fit.theta, [zz])), atol=1e-12)


def test_instantaneous_rates_in_reduced_coordinates(intervals):
    """du/dt = 2(1-z^2)K u, dJbar/dt = z(1-z^2)K u, dz/dt = -z(z^2+3)K u^2/w^2 + z(1-z^2)P u^2/4."""
    mi = intervals["pos"]
    ch = overlap(POS)
    model = derive(POS).compile()
    w, Jb = mi.fit.theta
    K = mi.K.value

    def g(s):
        return special.erf(s / np.sqrt(2))

    def g2(s):
        return -s * np.sqrt(2 / np.pi) * np.exp(-s * s / 2)

    P = integrate.quad(lambda x: g(Jb * x) * g2(Jb * x) * x * x * np.exp(-x * x / 2) / np.sqrt(2 * np.pi),
                       -np.inf, np.inf, epsabs=1e-15)[0]
    u = 1e-5
    for z in (-2.0, -0.5, 0.4, 1.5):
        d = ch.reduced_flow(np.array([w, Jb, z, u]), model)
        assert d[3] / u == pytest.approx(2 * (1 - z * z) * K, rel=1e-3)
        assert d[1] / u == pytest.approx(z * (1 - z * z) * K, rel=1e-3)
        assert d[2] / u**2 == pytest.approx(-z * (z * z + 3) * K / w**2 + z * (1 - z * z) * P / 4, rel=1e-3)


def test_overlap_plane_flow(intervals):
    mi = intervals["pos"]
    zs, us = np.linspace(-3, 3, 13), np.array([0.0, 1e-6, 0.2])
    pf = overlap_plane_flow(POS, zs, us, fit=mi.fit)
    assert pf.dx.shape == (3, 13) and pf.names == ("z", "|u|")
    assert np.max(np.abs(pf.dx[0])) < 1e-13 and np.max(np.abs(pf.dy[0])) < 1e-13  # the critical line
    np.testing.assert_allclose(pf.dy[1] / 1e-6, 2 * (1 - zs**2) * mi.K.value, rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(pf.loss[0], mi.fit.loss, rtol=0, atol=1e-14)
    # with skips the line drifts along z at rate ~ alpha: dz/dt = -alpha (D phi . g_1)_z + O(alpha^2),
    # g_1 the exact first-order gradient of the criticality proof
    alpha = 1e-4
    skip = POS.replace(alpha=alpha, skip_directions=[[1.0], [0.0]])
    pg = overlap_plane_flow(skip, zs, [0.0], fit=mi.fit)
    ch = overlap(skip)
    pr = criticality_proof(ch)
    dphi = ch._num[2]
    pred = [-alpha * (np.asarray(dphi(ch.embed(mi.fit.theta, [z])), dtype=float)
                      @ pr.ghost_at(mi.fit.theta, [z]))[2] for z in zs]
    np.testing.assert_allclose(pg.dx[0], pred, rtol=0, atol=10 * alpha**2)
    assert np.min(np.abs(pg.dx[0])) < 0.1 * np.max(np.abs(pg.dx[0]))  # not uniform: G couples z and w
    # the reduced-gradient component along the line, -dL/dz, is uniform: (w/2)(s_i - s_j) E[r* x] alpha
    assert ch.free[0] not in pr.free_ghost()[0].free_symbols


def test_elimination_plane_flow(intervals):
    mi = intervals["pos"]
    pe = elimination_plane_flow(POS, np.linspace(-1, 1, 5), np.array([0.0, 0.5]), unit=1, fit=mi.fit)
    assert pe.names == ("w_2", "|J_2|")
    model = derive(POS).compile()
    th = np.array([mi.fit.theta[0], 1.0, mi.fit.theta[1], 0.5])  # w_2 = x[4] = 1, J_2 = y[1] = 0.5
    F = model.flow(th)
    assert pe.dx[1, 4] == pytest.approx(F[1]) and pe.dy[1, 4] == pytest.approx(F[3])
    assert abs(pe.dx[0, 2]) < 1e-13 and abs(pe.dy[0, 2]) < 1e-13  # (0, 0) is critical


def test_errors():
    with pytest.raises(ValueError, match="alpha = 0"):
        milnor_interval(NEG.replace(alpha=0.5, skip_directions=[[1.0], [0.0]]))
    with pytest.raises(ValueError, match="direction"):
        overlap_plane_flow(NEG, [0.0], [0.1], direction=[0.0])
    with pytest.raises(ValueError, match="relu"):
        amari_K(NEG.replace(activation="relu"))
