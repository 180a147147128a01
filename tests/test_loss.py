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
        feat = gs + spec.alpha * (x @ spec.skip_directions.T)   # g(J_i.x) + alpha s_i.x
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
                     skip_directions=rng.normal(size=(2, 2)), sigma=0.0)
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
    # (relu: the arc-cosine kernel is evaluated at x = c/sqrt(ab) = 1 up to rounding, clamped to [-1, 1])
    assert model.loss(theta) == pytest.approx(0.7**2 / 2, abs=1e-13)
    # the teacher is a global minimum: the flow vanishes there (no 0/0 for relu either)
    np.testing.assert_allclose(model.flow(theta), 0.0, atol=1e-13)
    # and the Jacobian there is finite and matches finite differences of the flow
    jac = model.jacobian(theta)
    assert np.all(np.isfinite(jac))
    np.testing.assert_allclose(jac, central_diff(model.flow, theta, 1e-6), rtol=1e-4, atol=1e-5)
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
    np.testing.assert_allclose(plain.flow(swapped), _swap_units(base, plain.flow(theta)),
                               rtol=1e-12, atol=1e-14)

    skip = base.replace(alpha=0.5)
    res = derive(skip).compile()
    assert abs(res.loss(swapped) - res.loss(theta)) > 1e-3  # the identity skip tells the units apart
    # ... and swapping the skip directions with the units restores the symmetry
    both = derive(skip.replace(skip_directions=skip.skip_directions[::-1])).compile()
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


# --------------------------------------------------------------------------- export (latex.py, report.py)
def _balanced(text: str) -> bool:
    depth = 0
    for i, ch in enumerate(text):
        if ch in "{}" and i > 0 and text[i - 1] == "\\":
            continue  # an escaped brace
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def test_to_latex_of_every_kind_of_object() -> None:
    from ghostsing.analytic.latex import to_latex

    x, y = sp.symbols("x y")
    assert to_latex(x**2 / y) == sp.latex(x**2 / y)
    assert to_latex(sp.Matrix([[x, 1], [0, y]])) == sp.latex(sp.Matrix([[x, 1], [0, y]]))
    assert to_latex(r"\alpha") == r"\alpha"
    aligned = to_latex({"L": x + y, x: sp.sin(y)})
    assert aligned.startswith("\\begin{aligned}") and aligned.count("&=") == 2
    assert rf"x &= {sp.latex(sp.sin(y))}" in aligned
    assert to_latex([x, y]) == r"\begin{pmatrix}x \\ y\end{pmatrix}"
    with pytest.raises(TypeError, match="allowed: SymPy objects"):
        to_latex(object())


@pytest.mark.parametrize("hessian", ["none", "diagonal", "full"])
def test_derivation_document_and_note(hessian: str, tmp_path) -> None:
    from ghostsing.analytic.latex import derivation_sections, latex_document, markdown_note, write_text_atomic

    d = derive(ModelSpec(K=2, M=2, N=2, activation="erf", alpha=0.5))
    P = len(d.params)
    sections = derivation_sections(d, hessian=hessian)
    n_hess = {"none": 0, "diagonal": P, "full": P * (P + 1) // 2}[hessian]
    assert len(sections["Gradient flow"]) == P and len(sections.get("Hessian", {})) == n_hess
    doc = latex_document("Two units & a skip_connection", sections)
    # one display per equation: equation*, or align* when a long sum is broken into rows
    displays = doc.count(r"\begin{equation*}") + doc.count(r"\begin{align*}")
    assert doc.count(r"\begin{equation*}") == doc.count(r"\end{equation*}")
    assert displays == doc.count(r"\end{equation*}") + doc.count(r"\end{align*}") == 1 + P + n_hess
    assert r"Two units \& a skip\_connection" in doc and _balanced(doc)
    from ghostsing.analytic.latex import escape_text

    assert escape_text(r"a_b & $z \in [-1, 1]$, 5%") == r"a\_b \& $z \in [-1, 1]$, 5\%"
    assert escape_text("costs $5 & more") == r"costs \$5 \& more"
    assert doc.startswith(r"\documentclass") and doc.rstrip().endswith(r"\end{document}")
    for p, rhs in zip(d.params, d.flow, strict=True):  # one line, or rows of an align* for long sums
        lhs = rf"\frac{{d {sp.latex(p)}}}{{dt}}"
        assert f"{lhs} = {sp.latex(rhs)}" in doc or f"{lhs} &= " in doc
    note = markdown_note("Two units", sections, intro="Exact closed forms.")
    assert note.startswith("# Two units") and note.count("$$") == 2 * (1 + P + n_hess)
    assert f"L = {sp.latex(d.loss)}" in note or "L &= " in note
    path = write_text_atomic(tmp_path / "out" / "two.tex", doc)
    assert path.read_text() == doc and [q.name for q in path.parent.iterdir()] == ["two.tex"]
    write_text_atomic(path, "again")
    assert path.read_text() == "again" and len(list(path.parent.iterdir())) == 1
    with pytest.raises(ValueError, match="allowed: none, diagonal, full"):
        derivation_sections(d, hessian="some")


def test_report_json_round_trips_exactly() -> None:
    import json

    from ghostsing.analytic.report import derive_report, expr_from_srepr

    spec = ModelSpec(K=2, M=1, N=2, activation="relu", alpha=0.5, v=[1.5], B=[[0.6, -1.1]], sigma=0.1)
    out = json.loads(derive_report(spec, fmt="json"))
    assert ModelSpec.from_dict(out["spec"]) == spec and out["spec_key"] == spec.key()
    d = derive(spec)
    assert out["params"] == [p.name for p in d.params]
    assert expr_from_srepr(out["loss"]["srepr"]) == d.loss  # srepr is exact (custom relu kernel included)
    assert [expr_from_srepr(f["srepr"]) for f in out["flow"]] == list(d.flow)
    assert out["loss"]["latex"] == sp.latex(d.loss) and out["manifold"] is None
    text = derive_report(spec, fmt="text")
    assert f"L = {d.loss}" in text and all(f"d{p.name}/dt = " in text for p in d.params)
    tex = derive_report(spec, fmt="latex")
    # one display per equation: equation*, or align* when a long sum is broken into rows
    displays = tex.count(r"\begin{equation*}") + tex.count(r"\begin{align*}")
    assert _balanced(tex) and displays == 1 + len(d.params)


def test_report_with_a_manifold() -> None:
    import json

    from ghostsing.analytic.manifolds import chart
    from ghostsing.analytic.report import derive_report

    spec = ModelSpec(K=2, M=1, N=1, activation="erf", alpha=0.0, v=[1.2], B=[[0.8]])
    out = json.loads(derive_report(spec, manifold="elimination-w", fmt="json"))
    c = chart(spec, "elimination-w")
    m = out["manifold"]
    assert m["kind"] == "elimination-w" and m["transverse"] == [s.name for s in c.transverse]
    # the flow in the report, evaluated at a point, is the chart's numerical reduced flow there
    theta = np.array([0.4, -0.7, 0.9, 0.3])
    xi = c.from_theta(theta)
    flow = [sp.sympify(f["srepr"]) for f in m["flow"]]
    got = [float(e.evalf(20, subs=dict(zip(c.coords, xi, strict=True)))) for e in flow]
    np.testing.assert_allclose(got, c.reduced_flow(xi), rtol=1e-10, atol=1e-14)
    tex = derive_report(spec, manifold="elimination-w", fmt="latex")
    assert "Singular manifold: elimination-w" in tex and _balanced(tex)


def test_report_rejects_bad_arguments() -> None:
    from ghostsing.analytic.report import derive_report

    spec = ModelSpec()
    with pytest.raises(ValueError, match=r"fmt='pdf'.*allowed: text, latex, json"):
        derive_report(spec, fmt="pdf")
    with pytest.raises(ValueError, match=r"manifold='saddle'.*allowed: overlap"):
        derive_report(spec, manifold="saddle")
    with pytest.raises(TypeError, match="ModelSpec"):
        derive_report(spec.to_dict())
