"""Benchmark: deriving and compiling a model, and the speed of the generated gradient flow.

Model: the three-unit erf student with skips learning a three-unit teacher,
``ModelSpec(K=3, M=3, N=3, activation="erf", alpha=0.5)`` (P = 12 parameters).

1. **cold**: a fresh Python process with an empty cache directory derives the loss, flow and Hessian
   (SymPy), generates and writes the Numba module, and compiles + calls ``loss``, ``flow`` and
   ``jacobian`` once.  Target: <= 30 s.
2. **cached**: a second fresh process does the same from the disk cache (generated source + Numba's
   machine-code cache).  Target: <= 1 s for derive + compile + first calls, *excluding* the Python,
   numpy, numba and sympy imports, which are reported separately (and the whole process too).
3. **flow speed**: ns per call of the generated ``flow_into`` against a hand-written Numba flow of the
   same model (the baseline, written here only; checked against the generated flow first), both called
   in a ``@njit`` loop over a batch of parameter vectors.  Target: generated / hand <= 1.3.  Measured
   for the default teacher (v = 1, B = I) and again for a dense random teacher, where no product with a
   zero teacher entry can be folded away by the generator.

Run: ``python benchmarks/bench_codegen.py`` (writes ``benchmarks/results/codegen.json``).
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

SPEC_KW = {"K": 3, "M": 3, "N": 3, "activation": "erf", "alpha": 0.5}
RESULTS = Path(__file__).parent / "results" / "codegen.json"

_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
c0 = time.process_time()
import numpy as np
import numba, sympy
from ghostsing.analytic import derive
from ghostsing.analytic.loss import Derivation
from ghostsing.models import ModelSpec
t1 = time.perf_counter()
c1 = time.process_time()
spec = ModelSpec(**json.loads(sys.argv[1]))
d = derive(spec)
m = d.compile()
t2 = time.perf_counter()
c2 = time.process_time()
theta = np.linspace(-0.9, 1.1, spec.n_params)
m.loss(theta); m.flow(theta); m.jacobian(theta)
t3 = time.perf_counter()
c3 = time.process_time()
print(json.dumps({"imports_cpu_s": c1 - c0, "total_after_imports_cpu_s": c3 - c1,
                  "derive_compile_cpu_s": c2 - c1, "first_calls_cpu_s": c3 - c2,
                  "imports_s": t1 - t0, "derive_compile_s": t2 - t1, "first_calls_s": t3 - t2,
                  "total_after_imports_s": t3 - t1, "loss": m.loss(theta)}))
"""


def _run_child(cache: str) -> dict:
    env = {**os.environ, "GHOSTSING_CACHE_DIR": cache}
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(SPEC_KW)], env=env, check=True,
                         capture_output=True, text=True)
    wall = time.perf_counter() - t
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["process_wall_s"] = wall
    return res


# --------------------------------------------------------------------------- hand-written baseline
_KAPPA = math.sqrt(2.0 / math.pi)
_TWO_PI = 2.0 / math.pi


@numba.njit(cache=True, nogil=True, fastmath=False)
def hand_flow_into(theta, out, v, B, S, alpha, tb, tw, ss, work):
    """-grad L of the erf model with skips, written by hand (loops over K, M, N; no allocation).

    L = 1/2 [E y^2 - 2 E y f + E f^2] with I2(a, b, c) = (2/pi) asin(c / sqrt((1+a)(1+b))) and
    lin(a, p) = sqrt(2/pi) p / sqrt(1+a).  Gradients: grad_J I2(J; Y) = (2/pi) (Y - c J/(1+a)) /
    sqrt(D^2 - c^2), D^2 = (1+a)(1+b); d/da of the self term (2/pi) asin(a/(1+a)) is
    (2/pi) / ((1+a) sqrt(1+2a)); grad_J lin(a, J.s) = sqrt(2/pi) (s - p J/(1+a)) / sqrt(1+a).
    Each student pair (k < j) is evaluated once.  Teacher and skip constants are precomputed:
    ``tb[m] = 1 + B_m.B_m``, ``tw[k] = sum_m v_m alpha sqrt(2/pi) B_m.s_k / sqrt(tb[m])``,
    ``ss[k, j] = alpha^2 s_k.s_j``; ``work`` holds 2 K floats.
    """
    K = S.shape[0]
    M, N = B.shape
    a1 = work[:K]  # 1 + J_i.J_i
    rs = work[K:2 * K]  # 1 / sqrt(1 + J_i.J_i)
    for i in range(K):
        s = 1.0
        for n in range(N):
            x = theta[K + i * N + n]
            s += x * x
        a1[i] = s
        rs[i] = 1.0 / math.sqrt(s)
    for p in range(out.shape[0]):
        out[p] = 0.0  # accumulates grad L, negated at the end
    for k in range(K):
        ok = K + k * N
        wk = theta[k]
        ak1 = a1[k]
        g = -tw[k]
        for j in range(K):
            g += theta[j] * ss[k, j]
        # teacher terms: -sum_m v_m w_k I2(J_k, B_m)
        for m in range(M):
            c = 0.0
            for n in range(N):
                c += theta[ok + n] * B[m, n]
            d2 = ak1 * tb[m]
            g -= v[m] * _TWO_PI * math.asin(c / math.sqrt(d2))
            f = -wk * v[m] * _TWO_PI / math.sqrt(d2 - c * c)
            cr = c / ak1
            for n in range(N):
                out[ok + n] += f * (B[m, n] - cr * theta[ok + n])
        # self term: 1/2 w_k^2 (2/pi) asin(a_k/(1+a_k))
        ak = ak1 - 1.0
        g += wk * _TWO_PI * math.asin(ak / ak1)
        f = wk * wk * _TWO_PI / (ak1 * math.sqrt(1.0 + 2.0 * ak))
        for n in range(N):
            out[ok + n] += f * theta[ok + n]
        out[k] += g
        # skip terms: alpha w_i w_j lin(a_i, J_i.s_j) for every ordered pair (k, j)
        for j in range(K):
            pkj = 0.0
            for n in range(N):
                pkj += theta[ok + n] * S[j, n]
            ell = alpha * _KAPPA * pkj * rs[k]
            out[k] += theta[j] * ell
            out[j] += wk * ell
            f = alpha * wk * theta[j] * _KAPPA * rs[k]
            pr = pkj / ak1
            for n in range(N):
                out[ok + n] += f * (S[j, n] - pr * theta[ok + n])
        # student pairs k < j: w_k w_j I2(J_k, J_j)
        for j in range(k + 1, K):
            oj = K + j * N
            wj = theta[j]
            aj1 = a1[j]
            q = 0.0
            for n in range(N):
                q += theta[ok + n] * theta[oj + n]
            d2 = ak1 * aj1
            i2 = _TWO_PI * math.asin(q / math.sqrt(d2))
            out[k] += wj * i2
            out[j] += wk * i2
            f = wk * wj * _TWO_PI / math.sqrt(d2 - q * q)
            qk = q / ak1
            qj = q / aj1
            for n in range(N):
                out[ok + n] += f * (theta[oj + n] - qk * theta[ok + n])
                out[oj + n] += f * (theta[ok + n] - qj * theta[oj + n])
    for p in range(out.shape[0]):
        out[p] = -out[p]


def teacher_constants(v, B, S, alpha):
    """``tb[m] = 1 + B_m.B_m``, ``tw[k] = sum_m v_m alpha sqrt(2/pi) B_m.s_k / sqrt(tb[m])`` and
    ``ss[k, j] = alpha^2 s_k.s_j``."""
    tb = 1.0 + np.einsum("mn,mn->m", B, B)
    tw = alpha * _KAPPA * np.einsum("m,mn,kn->k", v / np.sqrt(tb), B, S)
    return tb, tw, alpha * alpha * (S @ S.T)


def _loops(gen_flow_into):
    @numba.njit(nogil=True)
    def run_gen(thetas, reps):
        out = np.empty(thetas.shape[1])
        acc = 0.0
        for _ in range(reps):
            for t in range(thetas.shape[0]):
                gen_flow_into(thetas[t], out)
                acc += out[0]
        return acc

    @numba.njit(nogil=True)
    def run_hand(thetas, reps, v, B, S, alpha, tb, tw, ss, work):
        out = np.empty(thetas.shape[1])
        acc = 0.0
        for _ in range(reps):
            for t in range(thetas.shape[0]):
                hand_flow_into(thetas[t], out, v, B, S, alpha, tb, tw, ss, work)
                acc += out[0]
        return acc

    return run_gen, run_hand


def random_teacher_kw(seed: int = 1) -> dict:
    """The benchmark model with a random dense teacher (2-decimal entries): nothing folds to zero."""
    rng = np.random.default_rng(seed)
    return {**SPEC_KW, "v": np.round(rng.normal(size=3), 2).tolist(),
            "B": np.round(rng.normal(size=(3, 3)) / math.sqrt(3), 2).tolist()}


def flow_speed(spec_kw: dict | None = None, n_thetas: int = 1000, reps: int = 200, repeats: int = 7,
               seed: int = 0) -> dict:
    from ghostsing.analytic import derive
    from ghostsing.models import ModelSpec

    spec = ModelSpec(**(spec_kw or SPEC_KW))
    model = derive(spec).compile()
    v, B, S = (np.ascontiguousarray(x) for x in (spec.v, spec.B, spec.skip_directions))
    tb, tw, ss = teacher_constants(v, B, S, spec.alpha)
    work = np.empty(2 * spec.K)
    hand = (v, B, S, spec.alpha, tb, tw, ss, work)
    rng = np.random.default_rng(seed)
    thetas = rng.normal(scale=0.7, size=(n_thetas, spec.n_params))
    # correctness of the baseline first
    worst = 0.0
    out = np.empty(spec.n_params)
    for th in thetas[:200]:
        hand_flow_into(th, out, *hand)
        ref = model.flow(th)
        worst = max(worst, float(np.max(np.abs(out - ref) / (np.abs(ref) + 1e-12))))
    if worst > 1e-10:
        raise AssertionError(f"hand-written flow disagrees with the generated one: max rel err {worst:.3e}")
    run_gen, run_hand = _loops(model.flow_into)
    run_gen(thetas, 1)
    run_hand(thetas, 1, *hand)
    t_gen, t_hand = [], []
    for _ in range(repeats):  # interleaved, so that load changes hit both alike
        t = time.perf_counter()
        run_gen(thetas, reps)
        t_gen.append(time.perf_counter() - t)
        t = time.perf_counter()
        run_hand(thetas, reps, *hand)
        t_hand.append(time.perf_counter() - t)
    calls = n_thetas * reps
    gen_ns = 1e9 * min(t_gen) / calls
    hand_ns = 1e9 * min(t_hand) / calls
    ratios = [g / h for g, h in zip(t_gen, t_hand, strict=True)]
    return {"generated_ns_per_call": gen_ns, "hand_ns_per_call": hand_ns, "ratio_min_times": gen_ns / hand_ns,
            "ratio_median_pairwise": float(np.median(ratios)), "calls_per_timing": calls,
            "repeats": repeats, "baseline_max_rel_err": worst}


def _write_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)


def main() -> dict:
    import sympy

    with tempfile.TemporaryDirectory(prefix="ghostsing-bench-") as cache:
        cold = _run_child(cache)
        cached = _run_child(cache)
        cached2 = _run_child(cache)
    if cold["loss"] != cached["loss"]:
        raise AssertionError("cached model gives a different loss")
    speed = flow_speed()
    dense_kw = random_teacher_kw()
    speed_dense = flow_speed(dense_kw)
    speed_dense["spec"] = dense_kw
    result = {
        "spec": SPEC_KW,
        "cold": cold,
        "cached": min(cached, cached2, key=lambda r: r["total_after_imports_s"]),
        "flow_speed": speed,
        "flow_speed_dense_teacher": speed_dense,
        "targets": {"cold_total_after_imports_s": 30.0, "cached_total_after_imports_s": 1.0,
                    "flow_ratio": 1.3},
        "machine": {"python": platform.python_version(), "numba": numba.__version__,
                    "sympy": sympy.__version__, "cpus": os.cpu_count(), "loadavg_1min": os.getloadavg()[0],
                    "platform": platform.platform()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _write_atomic(RESULTS, result)
    c, h = result["cold"], result["cached"]
    rows = [
        ("cold: imports (s)", c["imports_s"], ""),
        ("cold: derive + generate + compile (s)", c["derive_compile_s"], ""),
        ("cold: first calls (Numba JIT) (s)", c["first_calls_s"], ""),
        ("cold: derive + generate + compile, CPU (s)", c["derive_compile_cpu_s"], ""),
        ("cold: first calls (Numba JIT), CPU (s)", c["first_calls_cpu_s"], ""),
        ("cold: total after imports (s)", c["total_after_imports_s"], "<= 30"),
        ("cold: total after imports, CPU time (s)", c["total_after_imports_cpu_s"], ""),
        ("cold: whole process (s)", c["process_wall_s"], ""),
        ("cached: imports (s)", h["imports_s"], ""),
        ("cached: derive + compile + first calls (s)", h["total_after_imports_s"], "<= 1"),
        ("cached: the same, CPU time (s)", h["total_after_imports_cpu_s"], ""),
        ("cached: whole process (s)", h["process_wall_s"], ""),
        ("flow: generated (ns/call)", speed["generated_ns_per_call"], ""),
        ("flow: hand-written Numba (ns/call)", speed["hand_ns_per_call"], ""),
        ("flow: generated / hand (min times)", speed["ratio_min_times"], "<= 1.3"),
        ("flow: generated / hand (median of pairs)", speed["ratio_median_pairwise"], "<= 1.3"),
        ("dense random teacher: generated (ns/call)", speed_dense["generated_ns_per_call"], ""),
        ("dense random teacher: hand-written (ns/call)", speed_dense["hand_ns_per_call"], ""),
        ("dense random teacher: generated / hand", speed_dense["ratio_min_times"], "<= 1.3"),
    ]
    print(f"bench_codegen: ModelSpec({', '.join(f'{k}={v!r}' for k, v in SPEC_KW.items())}), "
          f"load average {result['machine']['loadavg_1min']:.1f} on {os.cpu_count()} CPUs")
    for name, value, target in rows:
        print(f"  {name:45s} {value:10.3f}  {target}")
    print(f"written: {RESULTS}")
    return result


if __name__ == "__main__":
    main()
