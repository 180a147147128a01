"""Code generation: SymPy expressions -> Numba functions, cached on disk.

Every numerical right-hand side in ghostsing is produced here from a SymPy expression and never typed
by hand.  Given the symbols ``args = (a_0, ..., a_{P-1})`` and named outputs (scalars, vectors or
matrices of expressions in those symbols) :func:`generate_module` writes one Python source file with
one ``@numba.njit(cache=True)`` function per output, after common-subexpression elimination
(``sympy.cse``) of that output, and imports it.

For an output ``name`` the module defines

* scalar:  ``name(x) -> float``
* vector:  ``name(x) -> (n,) array``, ``name_into(x, out) -> None`` and
  ``name_lanes_into(X, OUT) -> None``
* matrix:  ``name(x) -> (r, c) array``, ``name_into(x, out) -> None`` and
  ``name_lanes_into(X, OUT) -> None``

where ``x`` is a contiguous float64 array holding ``a_0..a_{P-1}`` in order.

**Runtime parameters.** With ``params = (b_0, ..., b_{R-1})`` (symbols that stay free in the outputs,
e.g. the skip strength alpha) every function takes a second array ``p`` of their values:
``name(x, p)``, ``name_into(x, p, out)``, ``name_lanes_into(X, p, OUT)``.  One generated module, and one
Numba compilation per process (loaded from Numba's disk cache after the first), then serves every value
of the parameters: an alpha sweep compiles once, not once per alpha
(:mod:`ghostsing.analytic.parametric` builds the model functions this way).  The ``lanes`` form
evaluates :data:`LANES` (16) states at once, in flat arrays: ``X[i * LANES + j]`` is component ``i`` of
state ``j`` (``X.reshape(P, LANES)[:, j]``), and output component ``k`` (row-major ``r * c + c'`` for a
matrix) of state ``j`` goes to ``OUT[k * LANES + j]``.  Its loop over ``j`` calls only arithmetic,
``sqrt`` and the branch-free functions of :mod:`ghostsing.analytic.vecmath`, and the array strides are
constants, so LLVM turns it into SIMD code (about 3x the throughput of ``name_into`` with AVX2/AVX-512,
``benchmarks/bench_codegen.py``).  The
functions are ordinary Numba dispatchers, so they can be called from other Numba code (e.g. the
integrators of :mod:`ghostsing.simulate`).

Powers are printed as products (``x**3 -> x*x*x``, ``x**(-3/2) -> 1/(x*math.sqrt(x))``) rather than as
calls of ``pow``, and the functions use Numba's ``error_model="numpy"``: a division by zero gives
``inf``/``nan`` (which the integrators flag as non-finite) instead of raising, and no check blocks
vectorisation.

The file is named by a SHA-256 of the caller's key and :data:`GENERATOR_VERSION`; it lives in
``$GHOSTSING_CACHE_DIR`` (default ``~/.cache/ghostsing/codegen``).  Numba's own cache of the compiled
machine code sits beside it in ``__pycache__``, so a second process loads both without SymPy work.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType

import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

GENERATOR_VERSION = "7"  # bump whenever generated source changes (also via gaussian.py)
LANES = 16  # states per call of the generated ``*_lanes_into`` functions (see the module docstring)

Output = sp.Expr | Sequence[sp.Expr] | sp.MatrixBase


def cache_dir() -> Path:
    """The directory of generated modules: ``$GHOSTSING_CACHE_DIR`` or ``~/.cache/ghostsing/codegen``."""
    root = os.environ.get("GHOSTSING_CACHE_DIR")
    path = Path(root) if root else Path.home() / ".cache" / "ghostsing" / "codegen"
    path.mkdir(parents=True, exist_ok=True)
    return path


def module_path(name: str, key: str) -> Path:
    """Where the module generated for ``(name, key)`` is (or will be) stored."""
    if not name.isidentifier():
        raise ValueError(f"name={name!r} is not a Python identifier; allowed: letters, digits, underscores")
    digest = hashlib.sha256(f"{GENERATOR_VERSION}|{LANES}|{name}|{key}".encode()).hexdigest()[:20]
    return cache_dir() / f"gs_{name}_{digest}.py"


def load_cached(name: str, key: str) -> ModuleType | None:
    """Import the module generated earlier for ``(name, key)``, or return None if there is none."""
    path = module_path(name, key)
    return _import_file(path) if path.exists() else None


def generate_module(
    name: str,
    args: Sequence[sp.Symbol],
    outputs: Mapping[str, Output],
    key: str,
    header: str = "",
    params: Sequence[sp.Symbol] = (),
) -> ModuleType:
    """Write (if needed) and import the Numba module for ``outputs`` as functions of ``args``.

    Parameters
    ----------
    name : a Python identifier naming the module family (e.g. ``"flow"``).
    args : the symbols, in the order of the flat input array ``x``.
    outputs : output name -> SymPy scalar, sequence of scalars (vector) or Matrix.
    key : a string that identifies the expressions (e.g. a ModelSpec hash); same key, same module.
    header : a comment placed at the top of the file (what was generated from what).
    params : runtime parameters (module docstring): symbols read from a second array argument ``p``.
        ``key`` must tell modules with different ``params`` apart.
    """
    path = module_path(name, key)
    if path.exists():
        return _import_file(path)
    source = render_module(args, outputs, header=header, params=params)
    _atomic_write(path, source)
    return _import_file(path)


def render_module(args: Sequence[sp.Symbol], outputs: Mapping[str, Output], header: str = "",
                  params: Sequence[sp.Symbol] = ()) -> str:
    """The source text of the generated module (see :func:`generate_module`)."""
    clash = set(args) & set(params)
    if clash:
        raise ValueError(f"symbols {sorted(map(str, clash))} are both arguments and runtime parameters")
    for out_name in outputs:
        if not out_name.isidentifier():
            raise ValueError(f"output name {out_name!r} is not a Python identifier")
    printer = _ProductPowerPrinter({"fully_qualified_modules": True, "standard": "python3"})
    lines = [
        '"""Generated by ghostsing.analytic.codegen. Do not edit: regenerate from the SymPy model."""',
        *(f"# {h}" for h in header.splitlines()),
        "import math",
        "import numba",
        "import numpy as np",
        "from ghostsing.analytic import vecmath",
        "",
    ]
    for out_name, expr in outputs.items():
        lines += _render_output(out_name, expr, args, printer, tuple(params))
    return "\n".join(lines) + "\n"


def _render_output(out_name: str, expr: Output, args: Sequence[sp.Symbol], printer,
                   params: tuple[sp.Symbol, ...] = ()) -> list[str]:
    if isinstance(expr, sp.MatrixBase):
        shape: tuple[int, ...] = expr.shape
        flat = list(expr)
    elif isinstance(expr, Sequence) and not isinstance(expr, str):
        flat = [sp.sympify(e) for e in expr]
        shape = (len(flat),)
    else:
        flat = [sp.sympify(expr)]
        shape = ()
    # Arguments get plain names a0, a1, ... so that LaTeX-style symbol names never reach the source.
    safe = {s: sp.Symbol(f"a{i}", real=True) for i, s in enumerate(args)}
    safe.update({s: sp.Symbol(f"b{i}", real=True) for i, s in enumerate(params)})
    flat = [_floatify_big_numbers(sp.sympify(e).xreplace(safe)) for e in flat]
    # No cse "basic" optimizations: their factor_terms pass took ~60% of the CPU time of a cold
    # derive + compile of the three-unit erf model (7.9 s -> 3.2 s) for no measurable change in the speed
    # of the generated flow (benchmarks/bench_codegen.py).
    replacements, reduced = sp.cse(flat, symbols=sp.numbered_symbols("c"), optimizations=None)
    # cse may multiply exact numbers together again: make sure none of them is too large for int64
    replacements = [(sym, _floatify_big_numbers(val)) for sym, val in replacements]
    reduced = [_floatify_big_numbers(e) for e in reduced]
    assigns = [(printer.doprint(sym), printer.doprint(val)) for sym, val in replacements]
    results = [printer.doprint(e) for e in reduced]
    body = [f"    a{i} = x[{i}]" for i in range(len(args))]
    body += [f"    b{i} = p[{i}]" for i in range(len(params))]
    body += [f"    {s} = {v}" for s, v in assigns]
    xp = "x, p" if params else "x"  # the leading arguments of every function

    lines = [_DECORATOR]
    if shape == ():
        lines += [f"def {out_name}({xp}):", *body, f"    return float({results[0]})", "", ""]
        return lines
    ncol = shape[1] if len(shape) == 2 else 1
    lines += [f"def {out_name}_into({xp}, out):", *body]
    for k, e in enumerate(results):
        where = f"{k}" if len(shape) == 1 else f"{k // ncol}, {k % ncol}"
        lines.append(f"    out[{where}] = {e}")
    lines += ["", "", _DECORATOR, f"def {out_name}({xp}):",
              f"    out = np.empty({shape!r}, dtype=np.float64)", f"    {out_name}_into({xp}, out)",
              "    return out", "", ""]
    # the same body once per lane j = 0..LANES-1: vector math instead of libm calls, and flat arrays
    # with constant strides, so that LLVM needs a single overlap check between X and OUT to vectorise
    lanes = [f"        a{i} = X[{i * LANES} + j]" for i in range(len(args))]
    lanes += [f"        b{i} = p[{i}]" for i in range(len(params))]
    lanes += [f"        {s} = {_vectorisable(v)}" for s, v in assigns]
    XP = "X, p" if params else "X"
    lines += [_LANES_DECORATOR, f"def {out_name}_lanes_into({XP}, OUT):", f"    for j in range({LANES}):",
              *lanes]
    for k, e in enumerate(results):
        lines.append(f"        OUT[{k * LANES} + j] = {_vectorisable(e)}")
    lines += ["", ""]
    return lines


_DECORATOR = '@numba.njit(cache=True, nogil=True, error_model="numpy")'
# the SIMD form may also fuse a * b + c into one rounding (FMA)
_LANES_DECORATOR = '@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})'
# libm calls with a branch-free replacement in ghostsing.analytic.vecmath
_VECTOR_FUNCTIONS = {"math.asin(": "vecmath.asin("}


def _vectorisable(code: str) -> str:
    for scalar, vector in _VECTOR_FUNCTIONS.items():
        code = code.replace(scalar, vector)
    return code


class _ProductPowerPrinter(PythonCodePrinter):
    """Python printer that writes small integer and half-integer powers as products and square roots.

    ``b**n`` (2 <= |n| <= 8) becomes ``b*b*...``, ``b**(n/2)`` (|n| <= 9) becomes ``b*...*math.sqrt(b)``,
    negative exponents ``1/(...)``: exact to rounding, with no ``pow`` call (slow, and it blocks SIMD).
    """

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.base, expr.exp
        if not exp.is_Rational or exp.q not in (1, 2):
            return super()._print_Pow(expr, rational=rational)
        n = abs(int(exp.p))
        half = exp.q == 2
        if not ((half and 3 <= n <= 9) or (not half and 2 <= n <= 8)):
            return super()._print_Pow(expr, rational=rational)  # x**(+-1/2), 1/x, large powers
        b = self._print(base) if base.is_Atom else f"({self._print(base)})"
        factors = [b] * (n // exp.q) + ([f"math.sqrt({self._print(base)})"] if half else [])
        prod = "*".join(factors)
        return f"(1/({prod}))" if exp.p < 0 else f"({prod})"


_INT64_SAFE = 2**53


def _floatify_big_numbers(expr: sp.Expr) -> sp.Expr:
    """Replace exact rationals whose numerator or denominator exceeds 2**53 by 20-digit Floats.

    Exact teacher numbers (``exact(0.4) = 2/5``) combine into rationals with huge integers (e.g.
    ``sqrt(1355...079)``); printed as they are, Numba types them as int64 and fails ("Int value is too
    large").  As Floats, SymPy folds ``sqrt(Float)`` and the like into one double constant.
    """
    big = {r: sp.Float(r, 20) for r in expr.atoms(sp.Rational)
           if abs(r.p) > _INT64_SAFE or r.q > _INT64_SAFE}
    return expr.xreplace(big) if big else expr


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _import_file(path: Path) -> ModuleType:
    mod_name = f"ghostsing_generated.{path.stem}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - only on a broken cache dir
        raise ImportError(f"cannot import generated module {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    spec.loader.exec_module(module)
    return module
