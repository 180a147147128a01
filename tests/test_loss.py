"""The population loss, its gradient flow and Jacobian (ghostsing.analytic.loss) against independent paths.

* Monte Carlo: draw (x, y) from the teacher with numpy, evaluate the empirical loss
  ``1/2 mean (y - f(x))^2`` and its gradient by hand-written backpropagation of
  ``f(x) = sum_i w_i [g(J_i.x) + alpha s_i.x]``::

      dL/dw_i = -mean(r (g(J_i.x) + alpha s_i.x)),   dL/dJ_i = -mean(r w_i g'(J_i.x) x),   r = y - f(x)

  and compare with the generated (compiled) loss and flow (= -grad L) within 4 standard errors.
* Central finite differences of the compiled loss vs the compiled flow, and of the compiled flow vs
  the compiled Jacobian.
* Exact identities: L = sigma^2/2 at the teacher (K = M, alpha = 0); permutation symmetry.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
from scipy.special import erf

from ghostsing.analytic import derive, population_loss
from ghostsing.analytic.loss import exact
from ghostsing.models import ACTIVATIONS, ModelSpec

N_MC = 2_000_000
CHUNK = 250_000
N_SIGMA = 4.0


def g_and_dg(activation: str, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """g(u) and g'(u), written independently of the package (erf means erf(u / sqrt 2))."""
    if activation == "erf":
        return erf(u / math.sqrt(2.0)), math.sqrt(2.0 / math.pi) * np.exp(-0.5 * u * u)
    if activation == "relu":
        return np.maximum(u, 0.0), (u > 0.0).astype(np.float64)
    return u, np.ones_like(u)


def mc_loss_and_flow(spec: ModelSpec, theta: np.ndarray, n: int, seed: int):
    """Empirical loss and flow (-grad) with their standard errors, from ``n`` teacher samples."""
    rng = np.random.default_rng(seed)
    w, J = spec.split(theta)
    P = spec.n_params
    s1 = np.zeros(P + 1)
    s2 = np.zeros(P + 1)
    done = 0
    while done < n:
        m = min(CHUNK, n - done)
        x = rng.standard_normal((m, spec.N))
        xi = rng.standard_normal(m)
        gt, _ = g_and_dg(spec.activation, x @ spec.B.T)
        y = gt @ spec.v + spec.sigma * xi
        gs, dgs = g_and_dg(spec.activation, x @ J.T)  # (m, K)
        feat = gs + spec.alpha * (x @ spec.skip.T)   # g(J_i.x) + alpha s_i.x
        r = y - feat @ w
        per = np.empty((m, P + 1))
        per[:, 0] = 0.5 * r * r
        per[:, 1:1 + spec.K] = r[:, None] * feat                      # -dL/dw_i per sample
        back = (r[:, None] * w[None, :] * dgs)                        # (m, K)
        per[:, 1 + spec.K:] = (back[:, :, None] * x[:, None, :]).reshape(m, spec.K * spec.N)  # -dL/dJ_i
        s1 += per.sum(axis=0)
        s2 += (per * per).sum(axis=0)
        done += m
    mean = s1 / n
    se = np.sqrt(np.maximum(s2 / n - mean**2, 0.0) / (n - 1))
    return mean[0], se[0], mean[1:], se[1:]


def mc_spec(activation: str, alpha: float, seed: int = 7) -> ModelSpec:
    """Two student units, a random (non-orthogonal) two-unit teacher in N = 2, output noise."""
    rng = np.random.default_rng(seed)
    return ModelSpec(K=2, M=2, N=2, activation=activation, alpha=alpha, sigma=0.3,
                     v=rng.normal(size=2), B=rng.normal(size=(2, 2)))


def random_theta(spec: ModelSpec, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=0.8, size=spec.n_params)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_loss_and_flow_match_monte_carlo(activation: str, alpha: float) -> None:
    spec = mc_spec(activation, alpha)
    model = derive(spec).compile()
    theta = random_theta(spec, 11)
    L_mc, L_se, F_mc, F_se = mc_loss_and_flow(spec, theta, N_MC, seed=3)
    L = model.loss(theta)
    F = model.flow(theta)
    assert abs(L - L_mc) < N_SIGMA * L_se, f"loss {L} vs MC {L_mc} +- {L_se}"
    z = np.abs(F - F_mc) / F_se
    assert np.all(z < N_SIGMA), f"flow {F} vs MC {F_mc} +- {F_se} (z = {z})"
    # the comparison has teeth: the standard errors are small against the values compared
    assert L_se < 1e-2 * L and np.median(F_se) < 2e-2 * np.median(np.abs(F))


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_explicit_skip_directions_match_monte_carlo(activation: str) -> None:
    rng = np.random.default_rng(5)
    spec = ModelSpec(K=2, M=1, N=2, activation=activation, alpha=0.7, v=[1.5], B=[[0.6, -1.1]],
                     skip=rng.normal(size=(2, 2)), sigma=0.0)
    model = derive(spec).compile()
    theta = random_theta(spec, 2)
    L_mc, L_se, F_mc, F_se = mc_loss_and_flow(spec, theta, N_MC // 2, seed=4)
    assert abs(model.loss(theta) - L_mc) < N_SIGMA * L_se
    assert np.all(np.abs(model.flow(theta) - F_mc) < N_SIGMA * F_se)


def central_diff(f, theta: np.ndarray, h: float) -> np.ndarray:
    cols = []
    for k in range(theta.size):
        e = np.zeros_like(theta)
        e[k] = h
        cols.append((np.asarray(f(theta + e)) - np.asarray(f(theta - e))) / (2 * h))
    return np.stack(cols, axis=-1)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_finite_differences(activation: str, alpha: float) -> None:
    spec = mc_spec(activation, alpha)
    model = derive(spec).compile()
    for seed in (11, 12):
        theta = random_theta(spec, seed)
        grad_fd = central_diff(model.loss, theta, 1e-5)
        np.testing.assert_allclose(model.flow(theta), -grad_fd, rtol=1e-6, atol=1e-8)
        jac_fd = central_diff(model.flow, theta, 1e-5)
        jac = model.jacobian(theta)
        np.testing.assert_allclose(jac, jac_fd, rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(jac, jac.T)  # -Hess L


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("K", [1, 2])
def test_student_copying_the_teacher_has_loss_sigma2_over_2(activation: str, K: int) -> None:
    rng = np.random.default_rng(K)
    spec = ModelSpec(K=K, M=K, N=2, activation=activation, alpha=0.0, sigma=0.7,
                     v=rng.normal(size=K), B=rng.normal(size=(K, 2)))
    model = derive(spec).compile()
    theta = spec.teacher_theta()
    # relu's arc-cosine kernel at collinear vectors (J_i = B_i) goes through sqrt(1 - x^2), x -> 1,
    # which costs about half the double precision
    tol = 1e-7 if activation == "relu" else 1e-13
    assert model.loss(theta) == pytest.approx(0.7**2 / 2, abs=tol)
    if activation != "relu":  # the teacher is a global minimum: the flow vanishes there
        np.testing.assert_allclose(model.flow(theta), 0.0, atol=1e-13)
    # and the exact symbolic loss simplifies to sigma^2/2
    d = derive(spec)
    at_teacher = d.loss.subs(dict(zip(d.params, [exact(t) for t in theta], strict=True)))
    assert sp.simplify(at_teacher - exact(0.7) ** 2 / 2) == 0


def _swap_units(spec: ModelSpec, theta: np.ndarray) -> np.ndarray:
    w, J = spec.split(theta)
    return spec.pack(w[::-1], J[::-1])


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_permutation_symmetry_is_broken_by_the_skip(activation: str) -> None:
    base = mc_spec(activation, 0.0)
    theta = random_theta(base, 4)
    swapped = _swap_units(base, theta)

    plain = derive(base).compile()
    assert plain.loss(swapped) == pytest.approx(plain.loss(theta), rel=1e-13, abs=1e-15)
    np.testing.assert_allclose(plain.flow(swapped), _swap_units(base, plain.flow(theta)), rtol=1e-12, atol=1e-14)

    skip = base.replace(alpha=0.5)
    res = derive(skip).compile()
    assert abs(res.loss(swapped) - res.loss(theta)) > 1e-3  # the identity skip tells the units apart
    # ... and swapping the skip directions with the units restores the symmetry
    both = derive(skip.replace(skip=skip.skip[::-1])).compile()
    assert both.loss(swapped) == pytest.approx(res.loss(theta), rel=1e-13)


def test_loss_is_quadratic_in_alpha() -> None:
    """With a free skip strength, L(alpha) = L0 + alpha L1 + alpha^2 L2 and matches each fixed-alpha loss."""
    spec = ModelSpec(K=2, M=2, N=2, activation="erf")
    a = sp.Symbol("alpha", nonnegative=True)
    d = derive(spec)
    w, J = d.symbols
    L_free = population_loss(spec, w, J, alpha=a)
    assert sp.Poly(sp.expand(L_free), a).degree() == 2
    for value in (0.0, 0.25, 1.0):
        fixed = derive(spec.replace(alpha=value)).loss
        assert sp.simplify(L_free.subs(a, exact(value)) - fixed) == 0


def test_derive_rejects_non_specs() -> None:
    with pytest.raises(TypeError, match="ModelSpec"):
        derive({"K": 2})
    spec = ModelSpec()
    w, J = derive(spec).symbols
    with pytest.raises(ValueError, match=r"allowed: 2 and \(2, 2\)"):
        population_loss(spec, w[:1], J)
