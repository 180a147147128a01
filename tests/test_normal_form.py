"""Normal form near the overlap line (ghostsing.analytic.normal_form) against finite differences of the
exact generated flow, Amari's K (closed form, checked by quadrature in test_milnor) and the slow drift."""

from __future__ import annotations

import numpy as np
import pytest

from ghostsing import ModelSpec
from ghostsing.analytic import derive
from ghostsing.analytic.normal_form import overlap_normal_form

SPEC = ModelSpec(K=2, M=2, N=1, activation="erf", v=(10.0, 5.0), B=[[0.4], [4.0]], skip=[[1.0], [0.5]])


@pytest.fixture(scope="module")
def nf():
    return overlap_normal_form(SPEC, order=2)


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
    ch = nf.chart
    iu, iz = ch.coords.index(nf.u), ch.coords.index(nf.z)
    # L is exactly quadratic in alpha: F(alpha) = F0 + alpha F1 + alpha^2 F2, so three alphas give F1, F2
    models = {a: derive(SPEC.replace(alpha=a)).compile() for a in (0.0, 0.5, 1.0)}

    def flow(z: float, u: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        xi = np.concatenate([nf.fit.theta, [z], [u]])
        f0, fh, f1 = (ch.reduced_flow(xi, models[a]) for a in (0.0, 0.5, 1.0))
        F2 = 2 * (f1 - 2 * fh + f0)
        F1 = f1 - f0 - F2
        return f0, F1, F2

    h = 1e-3
    for z in (-2.0, 0.0, 0.7, 2.5):
        p0, p1, p2 = flow(z, h)
        m0, m1, m2 = flow(z, -h)
        c0, c1, c2 = flow(z, 0.0)
        fd = {(1, 0): (p0 - m0) / (2 * h), (2, 0): (p0 - 2 * c0 + m0) / (2 * h * h), (0, 1): c1,
              (1, 1): (p1 - m1) / (2 * h), (0, 2): c2}
        for (a, b), vec in fd.items():
            for name, idx in (("u", iu), ("z", iz)):
                want = vec[idx]
                got = nf.evaluate(name, a, b, z)
                # central differences: truncation O(h^2 c_3) ~ 1e-6
                assert got == pytest.approx(want, rel=2e-4, abs=1e-6), (name, a, b, z, got, want)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="allowed: N = 1"):
        overlap_normal_form(ModelSpec(K=2, M=2, N=2))
    with pytest.raises(ValueError, match=r"order=7.*allowed: an int in 1..3"):
        overlap_normal_form(SPEC, order=7)
    with pytest.raises(ValueError, match="allowed: erf, linear"):
        overlap_normal_form(SPEC.replace(activation="relu"))


def test_cli_expand(capsys) -> None:
    from ghostsing.cli import main

    argv = ["derive", "--units", "2", "--teacher", "2", "--input-dim", "1", "--teacher-v", "10,5",
            "--teacher-B", "0.4,4", "--skip-directions", "1,0.5", "--manifold", "overlap", "--expand", "2",
            "--form", "weights"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "normal form near the overlap line" in out and "Amari K = 0.116112472428" in out
    assert main(["derive", "--manifold", "elimination-w", "--expand", "2"]) == 2
    assert "needs manifold='overlap'" in capsys.readouterr().err
