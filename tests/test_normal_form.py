"""Normal forms near the singular sets (ghostsing.analytic.normal_form) against central finite differences
of the exact generated flow, and against the closed forms of the leading terms: Amari's K (checked by
quadrature in test_milnor), the slow drift, E[r* x] and E[r* g(J.x)] of the best (K-1)-unit fit."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import sympy as sp

from ghostsing import ModelSpec
from ghostsing.analytic import derive
from ghostsing.analytic.normal_form import normal_form, overlap_normal_form

SPEC = ModelSpec(K=2, M=2, N=1, activation="erf", v=(10.0, 5.0), B=[[0.4], [4.0]],
                 skip_directions=[[1.0], [0.5]])
SPEC2 = ModelSpec(K=2, M=2, N=2, activation="erf", v=(10.0, 5.0), B=[[0.4, 0.3], [-1.0, 2.0]],
                  skip_directions=[[1.0, 0.2], [0.5, -0.3]])
SPEC3 = ModelSpec(K=3, M=2, N=3, activation="linear", v=(1.0, 0.5), B=[[1.0, 0.2, -0.3], [0.4, -1.0, 0.5]],
                  skip_directions=[[1.0, 0.0, 0.3], [0.2, 0.5, 0.0], [0.0, -0.4, 1.0]])
ALPHAS = (0.0, 0.5, 1.0)
_COMPILED: dict[str, dict[float, object]] = {}


def _models(spec: ModelSpec) -> dict[float, object]:
    if spec.key() not in _COMPILED:
        _COMPILED[spec.key()] = {a: derive(spec.replace(alpha=a)).compile() for a in ALPHAS}
    return _COMPILED[spec.key()]


@pytest.fixture(scope="module")
def nf():
    return overlap_normal_form(SPEC, order=2)


@pytest.fixture(scope="module")
def nf2():
    return normal_form(SPEC2, "overlap", order=2)


@pytest.fixture(scope="module")
def lin_dep():
    return normal_form(SPEC3, "linear-dependence", order=2)


@pytest.fixture(scope="module")
def elim_w():
    return normal_form(SPEC2, "elimination-w", order=2)


@pytest.fixture(scope="module")
def elim_J():
    return normal_form(SPEC2, "elimination-J", order=2)


def _check_finite_differences(nf, free_values, h: float = 1e-3) -> int:
    """Every coefficient of total order <= 2 of every expanded component against central differences in
    the transverse coordinates of the compiled flow pushed into the chart; the alpha-coefficients exactly
    from three values of alpha (L is quadratic in alpha: F = F0 + alpha F1 + alpha^2 F2).  Returns the
    number of comparisons."""
    ch, models = nf.chart, _models(nf.spec)
    nt = len(nf.transverse)
    rows = {s.name: ch.coords.index(s) for s in (*nf.transverse, *nf.free)}

    def flow(f, t) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        xi = np.concatenate([nf.fit.theta, np.atleast_1d(f), t])
        f0, fh, f1 = (ch.reduced_flow(xi, models[a]) for a in ALPHAS)
        F2 = 2 * (f1 - 2 * fh + f0)
        return f0, f1 - f0 - F2, F2

    def e(k: int) -> np.ndarray:
        return np.eye(nt)[k]

    n = 0
    for f in free_values:
        c = flow(f, np.zeros(nt))
        fd: dict[tuple[tuple[int, ...], int], np.ndarray] = {((0,) * nt, b): c[b] for b in range(3)}
        for k in range(nt):
            p, m = flow(f, h * e(k)), flow(f, -h * e(k))
            idx = tuple(int(q == k) for q in range(nt))
            fd[(idx, 0)] = (p[0] - m[0]) / (2 * h)
            fd[(idx, 1)] = (p[1] - m[1]) / (2 * h)
            fd[(tuple(2 * x for x in idx), 0)] = (p[0] - 2 * c[0] + m[0]) / (2 * h * h)
        for k, l in itertools.combinations(range(nt), 2):
            pp, pm, mp, mm = (flow(f, h * (sk * e(k) + sl * e(l)))[0]
                              for sk, sl in ((1, 1), (1, -1), (-1, 1), (-1, -1)))
            idx = tuple(int(q in (k, l)) for q in range(nt))
            fd[(idx, 0)] = (pp - pm - mp + mm) / (4 * h * h)
        assert len(fd) == len([k for k in nf.coefficients if k[0] == nf.names[0] and sum(k[1]) + k[2] <= 2])
        for (m_, b), vec in fd.items():
            for name, row in rows.items():
                got, want = nf.evaluate(name, m_, b, f), vec[row]
                # central differences: truncation O(h^2 c_3) ~ 1e-6 times the scale of the flow
                assert got == pytest.approx(want, rel=2e-4, abs=2e-5), (name, m_, b, f, got, want)
                n += 1
    return n


def test_leading_terms_are_the_closed_forms(nf) -> None:
    for z in (-2.0, -0.5, 0.0, 0.8, 3.0):
        assert nf.evaluate("u", 1, 0, z) == pytest.approx(2 * (1 - z * z) * nf.K, rel=1e-10, abs=1e-14)
        # the line is critical at alpha = 0, and dz/dt has no term linear in u
        assert nf.coefficient("u", 0, 0) == 0 and nf.coefficient("z", 0, 0) == 0
        assert nf.coefficient("z", 1, 0) == 0
    assert nf.K == pytest.approx(0.11611247242840228, rel=1e-9)
    if nf.v1 is not None:  # the slow-manifold drift equals the instantaneous alpha-coefficient at z = 0
        assert nf.evaluate("z", 0, 1, 0.0) == pytest.approx(nf.v1, rel=1e-8)


def test_coefficients_against_finite_differences(nf) -> None:
    assert _check_finite_differences(nf, (-2.0, 0.0, 0.7, 2.5)) == 4 * 6 * 2


def test_overlap_N2_leading_terms(nf2) -> None:
    assert [s.name for s in nf2.transverse] == ["u_{1}", "u_{2}"] and nf2.K is None
    for z in (-2.0, 0.0, 0.6):
        # du/dt = 2 (1 - z^2) Kmat u: the N x N linear part is Amari's matrix
        np.testing.assert_allclose(nf2.linear_matrix(z), 2 * (1 - z * z) * nf2.Kmat, rtol=1e-10, atol=1e-13)
    zero = (0, 0)
    assert all(nf2.coefficient(s, zero, 0) == 0 for s in nf2.names)
    assert nf2.coefficient("z", (1, 0), 0) == 0 and nf2.coefficient("z", (0, 1), 0) == 0
    assert nf2.evaluate("z", zero, 1, 0.0) == pytest.approx(nf2.v1, rel=1e-8)
    # the u-quadratic part of dz/dt is a quadratic form with a nonzero mixed term
    assert nf2.coefficient("z", (1, 1), 0) != 0


def test_overlap_N2_against_finite_differences(nf2) -> None:
    # 3 (u_1, u_2, z) components x 10 coefficients (|m| + b <= 2 with two u's) x 3 values of z
    assert _check_finite_differences(nf2, (-2.0, 0.0, 0.6)) == 3 * 10 * 3


def test_elimination_w_closed_forms_and_finite_differences(elim_w) -> None:
    from ghostsing.analytic.manifold_fit import _residual_pieces

    assert [s.name for s in elim_w.transverse] == ["w_1"] and len(elim_w.free) == 2
    Kp, N = 1, 2
    th = [sp.Float(x, 30) for x in elim_w.fit.theta]
    F, _ = _residual_pieces(SPEC2, th[:Kp], [th[Kp + m * N: Kp + (m + 1) * N] for m in range(Kp)])
    for J in ((0.8, -0.5), (0.0, 1.2), (-1.5, 0.3)):
        # dw_i/dt = E[r* g(J_i.x)] on the set; J_i does not move there
        assert elim_w.evaluate("w_1", 0, 0, J) == pytest.approx(float(sp.N(F(list(J)), 20)), rel=1e-12)
        assert elim_w.evaluate("J_{1,1}", 0, 0, J) == 0 and elim_w.evaluate("J_{1,2}", 0, 0, J) == 0
    assert elim_w.v1 is None and "not a set of critical points" in elim_w.v1_error
    # 3 components x 6 coefficients x 3 points
    assert _check_finite_differences(elim_w, (np.array([0.8, -0.5]), np.array([0.0, 1.2]),
                                              np.array([-1.5, 0.3]))) == 3 * 6 * 3


def test_elimination_J_closed_forms_and_finite_differences(elim_J) -> None:
    from ghostsing.analytic.slow_drift import _correlation

    c = _correlation(SPEC2, elim_J.fit)  # E[r* x]
    gp = np.sqrt(2 / np.pi)  # erf: g'(0)
    for w in (-1.5, 0.6, 2.0):
        # dJ_i/dt = g'(0) w E[r* x] - g'(0)^2 w^2 J_i + ...;  dw_i/dt = g'(0) E[r* x].J_i + ...
        np.testing.assert_allclose([elim_J.evaluate(f"J_{{1,{n + 1}}}", (0, 0), 0, w) for n in range(2)],
                                   gp * w * c, rtol=1e-10)
        np.testing.assert_allclose(elim_J.linear_matrix(w), -(2 / np.pi) * w * w * np.eye(2), rtol=1e-12,
                                   atol=1e-14)
        np.testing.assert_allclose([elim_J.evaluate("w_1", m, 0, w) for m in ((1, 0), (0, 1))], gp * c,
                                   rtol=1e-10)
    assert elim_J.coefficient("w_1", (0, 0), 0) == 0  # g(0) = 0
    assert _check_finite_differences(elim_J, (-1.5, 0.6, 2.0)) == 3 * 10 * 3


def test_elimination_J_linear_N1_is_polynomial() -> None:
    spec = SPEC.replace(activation="linear")
    nf = normal_form(spec, "elimination-J", order=3)
    for key, c in nf.coefficients.items():
        assert c.free_symbols <= {nf.z}, key  # polynomials in w_1
    assert _check_finite_differences(nf, (-1.0, 0.5)) == 2 * 6 * 2


LD_POINTS = (np.array([0.7, 0.3, -0.5]), np.array([-1.2, 1.0, 0.4]), np.array([2.0, -0.6, 1.5]))


def test_linear_dependence_against_finite_differences(lin_dep) -> None:
    # 4 components (rho, w_3, a, b) x 6 coefficients (|m| + b <= 2, one rho) x 3 points (w_3, a, b)
    assert _check_finite_differences(lin_dep, LD_POINTS) == 4 * 6 * 3


def test_linear_dependence_closed_forms(lin_dep) -> None:
    """By hand: L = |W|^2 / 2 with W = sum_i w_i (J_i + alpha s_i) - beta_T; at rho = 0 and the exact fit
    W = 0, and d psi/d rho = n on J_3, d rho/d(J_1, J_2, J_3) = (-a n, -b n, n) there, so with
    W_rho := w_3 - a w_1 - b w_2 (w_1 = w_1' - a w_3, w_2 = w_2' - b w_3)
    ``d rho/dt = -W_rho (w_3 rho + alpha n.(sum_i w_i s_i)) + ...`` and ``H_rho,rho = w_3^2 |n|^2``."""
    from ghostsing.analytic.manifold_fit import transverse_hessian

    nf, ch = lin_dep, lin_dep.chart
    assert nf.fit.exact is not None and nf.v1 is None and "slow_drift covers" in nf.v1_error
    w3, a, b = nf.free
    p1, p2, *J = nf.fit.exact
    J1, J2 = sp.Matrix(J[:3]), sp.Matrix(J[3:])
    c = J1.cross(J2)
    n = c / sp.sqrt(c.dot(c))
    w1, w2 = p1 - a * w3, p2 - b * w3
    S = [sp.Matrix([sp.nsimplify(x) for x in row]) for row in SPEC3.skip_directions]
    W_rho = w3 - a * w1 - b * w2
    assert all(nf.coefficient(s, 0, 0) == 0 for s in nf.names)  # a set of critical points at alpha = 0
    H = transverse_hessian(ch)[0, 0].xreplace(dict(zip(ch.parent, nf.fit.exact, strict=True)))
    assert sp.expand(H.xreplace({ch.transverse[0]: 0}) - w3**2) == 0
    # the rho-linear rate: -(H_rho,rho / w_3) W_rho, exactly
    assert sp.expand(nf.coefficient(ch.transverse[0], 1, 0) + H / w3 * W_rho) == 0
    c01 = -W_rho * n.dot(w1 * S[0] + w2 * S[1] + w3 * S[2])
    assert sp.expand(sp.radsimp(nf.coefficient(ch.transverse[0], 0, 1) - c01)) == 0
    # the alpha drift of the free coordinates is the c_01 of the expansion (no slow_drift for this set)
    for f in LD_POINTS:
        np.testing.assert_allclose(nf.alpha_drift(f), [nf.evaluate(s, 0, 1, f) for s in nf.free])
        assert nf.evaluate(ch.transverse[0], 1, 0, f) == pytest.approx(
            -f[0] * (f[0] * (1 + f[1] ** 2 + f[2] ** 2) - f[1] * 1.0 - f[2] * 0.5), rel=1e-14)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match=r"N=4 is too large .* allowed: N <= 3"):
        overlap_normal_form(ModelSpec(K=2, M=2, N=4))
    with pytest.raises(ValueError, match=r"N=3 is too large .*order 3.* allowed: N <= 2"):
        normal_form(ModelSpec(K=2, M=2, N=3), "overlap", order=3)
    with pytest.raises(ValueError, match=r"order=7.*allowed: an int in 1..3"):
        overlap_normal_form(SPEC, order=7)
    with pytest.raises(ValueError, match="allowed: erf, linear"):
        overlap_normal_form(SPEC.replace(activation="relu"))
    with pytest.raises(ValueError, match=r"elimination-J.*allowed: erf, linear \(got relu\)"):
        normal_form(SPEC.replace(activation="relu"), "elimination-J")
    with pytest.raises(ValueError, match="kind='saddle' is not known; allowed: overlap"):
        normal_form(SPEC, "saddle")
    with pytest.raises(ValueError, match="linear_dependence needs K=3, N=3, activation='linear'"):
        normal_form(SPEC, "linear-dependence")
    with pytest.raises(ValueError, match=r"linear dependence involves all three units; allowed: None"):
        normal_form(SPEC3, "linear-dependence", units=(0, 1))


def test_coefficient_lookup(nf, nf2) -> None:
    assert nf.coefficient("u", (1,), 0) == nf.coefficient(nf.u, 1, 0)
    with pytest.raises(ValueError, match=r"allowed: name in \('u', 'z'\)"):
        nf.coefficient("w", 1, 0)
    with pytest.raises(ValueError, match="m a tuple of 2 powers"):
        nf2.coefficient("z", 1, 0)
    with pytest.raises(ValueError, match="use .transverse"):
        _ = nf2.u


def test_cli_expand(capsys) -> None:
    from ghostsing.cli import main

    argv = ["derive", "--units", "2", "--teacher", "2", "--input-dim", "1", "--teacher-v", "10,5",
            "--teacher-B", "0.4,4", "--skip-directions", "1,0.5", "--manifold", "overlap", "--expand", "2",
            "--form", "weights"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "normal form near the overlap line" in out and "Amari K = 0.116112472428" in out
    argv[argv.index("overlap")] = "elimination-J"
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "normal form near the elimination set {J_1 = 0}" in out
    assert "c[J_{1,1}]_1,0 = -0.63661977236758134308*w_1**2" in out  # -(2/pi) w^2
    assert main(["derive", "--manifold", "none", "--expand", "2"]) == 2
    assert "needs manifold in (overlap, elimination-w, elimination-J, linear-dependence)" in \
        capsys.readouterr().err


def test_cli_expand_linear_dependence(capsys) -> None:
    from ghostsing.cli import main

    argv = ["derive", "--units", "3", "--teacher", "2", "--input-dim", "3", "--activation", "linear",
            "--teacher-v", "1,0.5", "--teacher-B", "1,0.2,-0.3,0.4,-1,0.5",
            "--skip-directions", "1,0,0.3,0.2,0.5,0,0,-0.4,1", "--manifold", "linear-dependence",
            "--expand", "2", "--form", "weights"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "normal form near the linear-dependence set J_3 = a J_1 + b J_2 (rho = 0)" in out
    assert "c[\\rho]_1,0 = w_3**2*(-a**2 - b**2 - 1) + w_3*(a + b/2)" in out  # exact: w' = (1, 1/2)
    assert "slow_drift covers overlap and elimination only" in out
    assert main(["derive", "--units", "2", "--manifold", "linear-dependence", "--expand", "1"]) == 2
    assert "linear_dependence needs K=3, N=3, activation='linear'" in capsys.readouterr().err
