"""The order-parameter form of the loss and flow (ghostsing.analytic.order_form) against the weight form.

Proof structure (K = 2, 3; erf, relu, linear; plain and with skips):

1. the loss in order parameters, with ``Q = J J^T``, ``R = J B^T``, ``C = J S^T`` and the constants
   substituted and the named kernels made explicit, *is* the weight-form loss of ``derive(spec)``
   (difference expanded to exactly 0);
2. every short closed-form kernel derivative (``fdiff``) equals SymPy's derivative of the explicit
   kernel (simplified to 0), and on the diagonal ``a = b = c`` their sum is the derivative of the
   self-average;
3. the flow assembled from the order-parameter derivatives (``dJ_i/dt`` as a combination of
   ``J_k, B_n, s_j``) equals SymPy's own chain rule of the loss of step 1 (difference expanded to 0);

so the order-parameter flow is the weight-form flow.  Independently, loss, flow and the closed ODE of
the order parameters are evaluated at random points (mpmath, 30 digits) and compared with the
weight-form SymPy flow evaluated by numpy.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from ghostsing import ModelSpec
from ghostsing.analytic.gaussian import self_average
from ghostsing.analytic.loss import derive
from ghostsing.analytic.order_form import (
    I1Erf,
    I1Linear,
    I1Relu,
    I2Erf,
    I2Linear,
    I2Relu,
    explicit,
    kernels,
    order_parameter_form,
)

SPECS = [
    ModelSpec(K=2, M=2, N=2, activation=g, alpha=0.5, v=(1.0, -0.7), B=[[1.0, 0.3], [0.2, 0.9]], sigma=0.1)
    for g in ("erf", "relu", "linear")
] + [
    ModelSpec(K=3, M=2, N=3, activation=g, alpha=a)
    for g in ("erf", "relu", "linear") for a in (0.0, 0.5)
]


def _id(spec: ModelSpec) -> str:
    return f"K{spec.K}-{spec.activation}-a{spec.alpha}"


@pytest.mark.parametrize("spec", SPECS, ids=_id)
def test_loss_in_order_parameters_is_the_weight_loss(spec: ModelSpec) -> None:
    F = order_parameter_form(spec)
    assert sp.expand(F.to_weights(F.loss) - derive(spec).loss) == 0
    # and it is not trivially so: changing one teacher constant changes it
    other = F.to_weights(F.loss.xreplace({F.v[0]: F.v[0] + 1}))
    assert sp.expand(other - derive(spec).loss) != 0
    # skip overlaps appear exactly when alpha > 0
    assert F.skip == (spec.alpha > 0)
    assert any(s.name.startswith("C_") for s in F.loss.free_symbols) == F.skip


@pytest.mark.parametrize("cls", [I2Erf, I2Relu, I2Linear])
def test_pair_kernel_derivatives_are_exact(cls) -> None:
    a, b = sp.symbols("a b", positive=True)
    c, x = sp.Symbol("c", real=True), sp.Symbol("x", real=True)
    f = cls(a, b, c)
    ex = f.explicit().rewrite(sp.acos)
    for k, var in enumerate((a, b, c), start=1):
        diff = (sp.diff(ex, var) - f.fdiff(k).rewrite(sp.acos)).subs(c, x * sp.sqrt(a * b))
        # write sqrt(ab - x^2 ab) as sqrt(a) sqrt(b) sqrt(1 - x^2) (a, b > 0) before simplifying
        diff = diff.replace(lambda e: e.is_Pow and e.exp == sp.S.Half, lambda e: sp.sqrt(sp.factor(e.base)))
        assert sp.simplify(diff) == 0, (cls.__name__, k)
    # the diagonal a = b = c = q: the sum of the partials is d/dq of the self-average
    q = sp.Symbol("q", positive=True)
    fd = cls(q, q, q)
    total = sum(fd.fdiff(k) for k in (1, 2, 3)).rewrite(sp.acos)
    assert sp.simplify(total - sp.diff(self_average(cls.activation, q), q)) == 0


@pytest.mark.parametrize("cls", [I1Erf, I1Relu, I1Linear])
def test_readout_kernel_derivatives_are_exact(cls) -> None:
    a, p = sp.Symbol("a", positive=True), sp.Symbol("p", real=True)
    f = cls(a, p)
    for k, var in enumerate((a, p), start=1):
        assert sp.simplify(sp.diff(f.explicit(), var) - f.fdiff(k)) == 0


@pytest.mark.parametrize("spec", SPECS, ids=_id)
def test_flow_assembly_is_the_chain_rule(spec: ModelSpec) -> None:
    F = order_parameter_form(spec)
    d = derive(spec)
    named = F.to_weights(F.loss, named=True)  # kernels kept by name: SymPy differentiates via fdiff
    chain = sp.Matrix([-sp.diff(named, p) for p in d.params])
    assert all(sp.expand(e) == 0 for e in chain - F.weight_flow(named=True))


@pytest.mark.parametrize("spec", SPECS, ids=_id)
def test_numbers_at_random_points(spec: ModelSpec) -> None:
    F = order_parameter_form(spec)
    d = derive(spec)
    loss = sp.lambdify([d.params], d.loss, "numpy")
    flow = sp.lambdify([d.params], list(d.flow), "numpy")
    rng = np.random.default_rng(17 + spec.K)
    K, M = spec.K, spec.M
    for _ in range(3):
        theta = rng.normal(size=spec.n_params) * 0.8
        got = F.evaluate(theta)
        ref_flow = np.asarray(flow(theta), dtype=float)
        assert got["loss"] == pytest.approx(float(loss(theta)), rel=1e-12, abs=1e-14)
        np.testing.assert_allclose(got["flow"], ref_flow, rtol=1e-11, atol=1e-13)
        # the closed ODE of the order parameters: d(J_i.X)/dt from the weight flow
        w, J = spec.split(theta)
        _, dJ = spec.split(ref_flow)
        ref = list(ref_flow[:K])
        ref += [dJ[i] @ J[k] + J[i] @ dJ[k] for i in range(K) for k in range(i, K)]
        ref += [dJ[i] @ spec.B[n] for i in range(K) for n in range(M)]
        if F.skip:
            ref += [dJ[i] @ spec.skip_directions[j] for i in range(K) for j in range(K)]
        np.testing.assert_allclose(got["ode"], ref, rtol=1e-11, atol=1e-13)


def test_printing_names_the_kernels() -> None:
    spec = ModelSpec(K=2, M=1, N=2, activation="erf", alpha=0.5)
    F = order_parameter_form(spec)
    text = F.text()
    assert "I2(Q_11, Q_22, Q_12)" in text and "I1(Q_11, C_11)" in text
    assert "asin" not in str(F.loss)  # the kernel is printed by name
    tex = sp.latex(F.loss)
    assert r"I_{2}\left(Q_{11}, Q_{22}, Q_{12}\right)" in tex
    assert r"\mathbf{J}_{1}" in F.latex(F.flow_J_vector(0))
    # I2 is symmetric in its first two arguments, and numbers give the explicit value
    Q = F.Q
    assert I2Erf(Q[1, 1], Q[0, 0], Q[0, 1]) == I2Erf(Q[0, 0], Q[1, 1], Q[0, 1])
    assert I2Erf(1, 1, 0) == 0 and I2Erf(1, 1, 1) == 2 / sp.pi * sp.asin(sp.Rational(1, 2))
    assert explicit(I2Linear(Q[0, 0], Q[1, 1], Q[0, 1])) == Q[0, 1]


def test_srepr_round_trip_of_named_kernels() -> None:
    from ghostsing.analytic.report import expr_from_srepr

    for g in ("erf", "relu", "linear"):
        F = order_parameter_form(ModelSpec(K=2, M=2, N=2, activation=g, alpha=0.3))
        assert expr_from_srepr(sp.srepr(F.loss)) == F.loss
        assert expr_from_srepr(sp.srepr(F.flow_w[0])) == F.flow_w[0]


def test_bad_input() -> None:
    with pytest.raises(ValueError, match=r"activation='tanh'.*allowed: erf, relu, linear"):
        kernels("tanh")
    with pytest.raises(TypeError, match="ModelSpec"):
        order_parameter_form({"K": 2})


def test_report_and_cli_in_order_parameters(capsys) -> None:
    import json

    from ghostsing.analytic.report import derive_report, expr_from_srepr
    from ghostsing.cli import main

    spec = ModelSpec(K=2, M=2, N=2, activation="relu", alpha=0.5)
    out = json.loads(derive_report(spec, fmt="json", form="order-parameters"))
    F = order_parameter_form(spec)
    op = out["order_parameters"]
    loss = expr_from_srepr(op["loss"]["srepr"])
    assert sp.expand(F.to_weights(loss) - derive(spec).loss) == 0  # the printed loss is the model's loss
    assert op["order_parameters"] == [s.name for s in F.order_parameters]
    assert len(op["ode"]) == len(F.order_parameters) and out["loss"]["srepr"] == sp.srepr(derive(spec).loss)
    tex = derive_report(spec, fmt="latex", form="order-parameters")
    assert r"I_{2}\left(" in tex and r"\mathbf{J}_{1}" in tex and "asin" not in tex.split("Constants")[1]
    with pytest.raises(ValueError, match=r"form='raw'.*allowed: order-parameters, weights"):
        derive_report(spec, form="raw")
    # the command line prints the order-parameter form by default, the weights on request
    assert main(["derive", "--units", "2", "--teacher", "1", "--activation", "erf"]) == 0
    text = capsys.readouterr().out
    assert "I2(Q_11, Q_22, Q_12)" in text and "dQ_12/dt" in text
    assert main(["derive", "--units", "2", "--teacher", "1", "--activation", "erf", "--form", "weights"]) == 0
    assert "asin" in capsys.readouterr().out
