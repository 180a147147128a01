"""Code generation (ghostsing.analytic.codegen, CompiledModel): values, shapes, Numba interop, disk cache.

The disk-cache tests run fresh Python processes (``subprocess``) with their own cache directory, so
that nothing is warm: the second process must load the generated module *and* Numba's machine code
without touching SymPy's derivation, and two processes writing the same cache at once must both work.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numba
import numpy as np
import pytest
import sympy as sp

from ghostsing.analytic import codegen, derive
from ghostsing.models import ModelSpec

SPEC_KW = {"K": 2, "M": 2, "N": 2, "activation": "erf", "alpha": 0.5, "v": [0.7, -1.3],
           "B": [[0.4, 1.1], [-0.9, 0.3]], "sigma": 0.2}
THETA = [0.5, -0.8, 0.3, 0.9, -1.2, 0.4]


# ------------------------------------------------------------------------------------- generic modules
def test_generated_module_values_and_shapes(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GHOSTSING_CACHE_DIR", str(tmp_path))
    x0, x1, x2 = sp.symbols("x_0 x_{1} x2", real=True)  # LaTeX-style names must not reach the source
    outputs = {
        "s": x0 * sp.sin(x1) + sp.exp(x2),
        "v": [x0**2, sp.sqrt(1 + x1**2), sp.asin(x2 / 3)],
        "m": sp.Matrix([[x0, x1 * x2], [sp.erf(x0), 1 / (1 + x2**2)]]),
    }
    mod = codegen.generate_module("unit", (x0, x1, x2), outputs, key="test_generated_module_values")
    x = np.array([0.3, -1.7, 0.9])
    assert mod.s(x) == pytest.approx(0.3 * math.sin(-1.7) + math.exp(0.9), rel=1e-15)
    v = mod.v(x)
    assert v.shape == (3,) and v.dtype == np.float64
    np.testing.assert_allclose(v, [0.09, math.sqrt(1 + 1.7**2), math.asin(0.3)], rtol=1e-15)
    m = mod.m(x)
    assert m.shape == (2, 2)
    np.testing.assert_allclose(m, [[0.3, -1.7 * 0.9], [math.erf(0.3), 1 / (1 + 0.81)]], rtol=1e-15)
    out = np.full((2, 2), np.nan)
    mod.m_into(x, out)
    np.testing.assert_array_equal(out, m)
    assert Path(mod.__file__).parent == tmp_path


def test_huge_exact_rationals_compile(tmp_path, monkeypatch) -> None:
    """Exact teacher numbers give rationals beyond int64; the generated code must still compile."""
    monkeypatch.setenv("GHOSTSING_CACHE_DIR", str(tmp_path))
    x = sp.Symbol("x", real=True)
    big = sp.Rational(135502527592883597989421779785738398162196397501889751689919143079, 10**40)
    expr = sp.sqrt(big) * x + sp.Rational(1, 3 * 10**30) * x**2
    mod = codegen.generate_module("bigrat", (x,), {"f": expr}, key="huge")
    assert mod.f(np.array([2.0])) == pytest.approx(float(sp.sqrt(big)) * 2 + 4 / 3e30, rel=1e-15)


def test_bad_names_are_rejected(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GHOSTSING_CACHE_DIR", str(tmp_path))
    x = sp.Symbol("x")
    with pytest.raises(ValueError, match=r"name='my-model'.*allowed"):
        codegen.module_path("my-model", "k")
    with pytest.raises(ValueError, match="not a Python identifier"):
        codegen.render_module((x,), {"bad name": x})


# ------------------------------------------------------------------------------------- CompiledModel
@pytest.fixture(scope="module")
def model():
    return derive(ModelSpec(**SPEC_KW)).compile()


def test_compiled_model_shapes(model) -> None:
    theta = np.array(THETA)
    P = model.n_params
    assert P == 6 and isinstance(model.loss(theta), float)
    flow, jac = model.flow(theta), model.jacobian(theta)
    assert flow.shape == (P,) and jac.shape == (P, P) and flow.dtype == jac.dtype == np.float64
    out, outj = np.full(P, np.nan), np.full((P, P), np.nan)
    model.flow_into(theta, out)
    model.jacobian_into(theta, outj)
    np.testing.assert_array_equal(out, flow)
    np.testing.assert_array_equal(outj, jac)
    assert Path(model.source).name.startswith("gs_model_") and Path(model.source).exists()


def test_compiled_functions_are_callable_from_numba(model) -> None:
    loss, flow_into, jacobian = model.loss, model.flow_into, model.jacobian

    @numba.njit(cache=False)
    def euler(theta0, dt, steps):
        theta = theta0.copy()
        buf = np.empty_like(theta)
        total = 0.0
        for _ in range(steps):
            flow_into(theta, buf)
            theta += dt * buf
            total += loss(theta)
        return theta, total, jacobian(theta)[0, 0]

    theta0 = np.array(THETA)
    got, total, j00 = euler(theta0, 0.01, 50)
    theta, expect = theta0.copy(), 0.0
    for _ in range(50):
        theta = theta + 0.01 * model.flow(theta)
        expect += model.loss(theta)
    np.testing.assert_allclose(got, theta, rtol=1e-13)
    assert total == pytest.approx(expect, rel=1e-13)
    assert j00 == pytest.approx(model.jacobian(theta)[0, 0], rel=1e-13)
    assert model.loss(got) < model.loss(theta0)  # a gradient flow goes downhill


def test_compiled_matches_symbolic(model) -> None:
    """The generated code evaluates the SymPy expressions it came from (exact evaluation, 30 digits)."""
    d = derive(model.spec)
    sub = dict(zip(d.params, [sp.Float(t, 30) for t in THETA], strict=True))
    theta = np.array(THETA)
    assert model.loss(theta) == pytest.approx(float(d.loss.evalf(30, subs=sub)), rel=1e-13)
    np.testing.assert_allclose(model.flow(theta), [float(e.evalf(30, subs=sub)) for e in d.flow], rtol=1e-12)


# ------------------------------------------------------------------------------------- disk cache
_CHILD = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    from ghostsing.analytic import loss as L
    from ghostsing.models import ModelSpec
    if sys.argv[1] == "forbid-sympy-work":
        def boom(self):
            raise RuntimeError("the cached compile must not build SymPy expressions")
        for name in ("loss", "gradient", "flow", "hessian"):
            setattr(L.Derivation, name, property(boom))
    spec = ModelSpec(**json.loads(sys.argv[2]))
    t = time.perf_counter()
    m = L.derive(spec).compile()
    theta = np.array(json.loads(sys.argv[3]))
    out = {"loss": m.loss(theta), "flow": m.flow(theta).tolist(), "jac": m.jacobian(theta).tolist(),
           "seconds": time.perf_counter() - t, "source": m.source,
           "numba_cache_hits": sum(len(f.stats.cache_hits) for f in (m.loss, m.flow, m.jacobian)),
           "numba_cache_misses": sum(len(f.stats.cache_misses) for f in (m.loss, m.flow, m.jacobian))}
    print(json.dumps(out))
""")


def _spawn(cache: Path, mode: str, spec_kw: dict) -> subprocess.Popen:
    env = {**os.environ, "GHOSTSING_CACHE_DIR": str(cache)}
    return subprocess.Popen([sys.executable, "-c", _CHILD, mode, json.dumps(spec_kw), json.dumps(THETA)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_disk_cache_second_process_skips_sympy_and_numba_compilation(tmp_path) -> None:
    spec_kw = {**SPEC_KW, "activation": "linear"}
    first = _result(_spawn(tmp_path, "normal", spec_kw))
    src = Path(first["source"])
    assert src.parent == tmp_path
    stamp = src.stat().st_mtime_ns
    second = _result(_spawn(tmp_path, "forbid-sympy-work", spec_kw))
    assert second["source"] == first["source"] and src.stat().st_mtime_ns == stamp  # not rewritten
    assert second["numba_cache_hits"] > 0 and second["numba_cache_misses"] == 0  # machine code from disk
    assert first["numba_cache_misses"] > 0
    for key in ("loss", "flow", "jac"):
        assert second[key] == first[key]


def test_two_processes_writing_the_same_cache(tmp_path) -> None:
    spec_kw = {**SPEC_KW, "activation": "linear", "alpha": 0.25}
    procs = [_spawn(tmp_path, "normal", spec_kw) for _ in range(2)]
    a, b = (_result(p) for p in procs)
    assert a["loss"] == b["loss"] and a["flow"] == b["flow"] and a["jac"] == b["jac"]
    assert len(list(tmp_path.glob("gs_model_*.py"))) == 1
    assert not list(tmp_path.glob("*.tmp"))
    # and a third process loads what they left behind
    c = _result(_spawn(tmp_path, "forbid-sympy-work", spec_kw))
    assert c["loss"] == a["loss"]


# ------------------------------------------------------------------------------- runtime parameters
def test_runtime_parameters_in_generated_functions(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GHOSTSING_CACHE_DIR", str(tmp_path))
    x, y, a = sp.symbols("x y a", real=True)
    mod = codegen.generate_module("rt", (x, y), {"s": a * x * y + a**2, "v": [a * x, y - a],
                                                 "m": sp.Matrix([[a, x], [y, a * y]])}, key="rt", params=(a,))
    X, p = np.array([2.0, 3.0]), np.array([0.5])
    assert mod.s(X, p) == pytest.approx(0.5 * 6 + 0.25)
    assert np.allclose(mod.v(X, p), [1.0, 2.5]) and np.allclose(mod.m(X, p), [[0.5, 2.0], [3.0, 1.5]])
    lanes = np.repeat(X, codegen.LANES)
    out = np.empty(2 * codegen.LANES)
    mod.v_lanes_into(lanes, p, out)
    assert np.allclose(out.reshape(2, codegen.LANES)[:, 5], [1.0, 2.5])
    with pytest.raises(ValueError, match="both arguments and runtime parameters"):
        codegen.render_module((x, a), {"s": x}, params=(a,))


def test_parametric_model_matches_compiled_spec_for_every_alpha(tmp_path, monkeypatch) -> None:
    from ghostsing.analytic.loss import compile_spec
    from ghostsing.analytic.parametric import compile_parametric

    monkeypatch.setenv("GHOSTSING_CACHE_DIR", str(tmp_path))
    spec = ModelSpec(**{**SPEC_KW, "activation": "linear"})
    m = compile_parametric(spec, ("alpha", "sigma"))
    theta = np.array(THETA)
    for alpha, sigma in ((0.0, 0.0), (0.05, 0.2), (0.7, 1.0)):
        ref = compile_spec(spec.replace(alpha=alpha, sigma=sigma))
        p = m.values(alpha=alpha, sigma=sigma)
        assert m.loss(theta, p) == pytest.approx(ref.loss(theta), rel=1e-12, abs=1e-14)
        assert np.allclose(m.flow(theta, p), ref.flow(theta), rtol=1e-12, atol=1e-14)
        assert np.allclose(m.jacobian(theta, p), ref.jacobian(theta), rtol=1e-12, atol=1e-14)
        assert m.bind(alpha=alpha, sigma=sigma).loss(theta) == m.loss(theta, p)
    # one generated module and one compiled signature served all three alphas
    assert len(list(tmp_path.glob("gs_param_model_*.py"))) == 1
    assert len(m.loss.signatures) == 1 and len(m.flow.signatures) == 1
    with pytest.raises(ValueError, match="runtime"):
        compile_parametric(spec, ("K",))
    with pytest.raises(ValueError, match="not allowed"):
        m.values(alpha=-1.0)


_ALPHA_SWEEP = textwrap.dedent("""
    import json, sys
    import numpy as np
    from ghostsing.analytic import codegen
    from ghostsing.analytic.parametric import compile_parametric
    from ghostsing.models import ModelSpec
    calls = []
    real = codegen.generate_module
    codegen.generate_module = lambda *a, **k: calls.append(a[0]) or real(*a, **k)
    spec = ModelSpec(K=2, M=2, N=1, activation="linear", v=(1.0, 0.5), B=[[0.4], [2.0]],
                     skip_directions=[[1.0], [0.5]])
    theta = np.array([0.3, -0.2, 0.7, 1.1])
    losses = [compile_parametric(spec).loss(theta, np.array([a])) for a in (0.0, 1e-3, 1e-2, 0.1, 0.3)]
    m = compile_parametric(spec)
    print(json.dumps({"generated": len(calls), "hits": sum(m.loss.stats.cache_hits.values()),
                      "misses": sum(m.loss.stats.cache_misses.values()), "losses": losses}))
""")


def test_alpha_sweep_compiles_once_per_machine_and_loads_in_other_processes(tmp_path) -> None:
    """Five alphas in one process: one generated module, one Numba compilation; a second process (a
    second sweep worker) generates nothing and compiles nothing: it loads both from the disk cache."""
    env = {**os.environ, "GHOSTSING_CACHE_DIR": str(tmp_path)}

    def run() -> dict:
        proc = subprocess.run([sys.executable, "-c", _ALPHA_SWEEP], env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout.strip().splitlines()[-1])

    first = run()
    assert first["generated"] == 1 and first["misses"] == 1 and first["hits"] == 0
    second = run()
    assert second["generated"] == 0 and second["misses"] == 0 and second["hits"] == 1
    assert second["losses"] == first["losses"] and len(set(first["losses"])) == 5
    numba_index = list((tmp_path / "__pycache__").glob("gs_param_model_*loss*.nbi"))
    assert len(numba_index) == 1
