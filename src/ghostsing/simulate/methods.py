"""The method table of :func:`ghostsing.simulate.integrate`: one frozen record per integration method.

The dispatcher (``integrate``), the Numba kernels (method codes and the order of each error estimate,
which sets the step-size controller's exponent) and the documentation all read this one table, so a
method's order, its Jacobian needs and its default tolerances are stated once.  The claimed orders are
checked by tests/simulate/test_method_table.py (global convergence orders with the step pinned)::

    name      order  error  Jacobian  stiff    notes
    euler     1      -      no        no       fixed step only (discrete gradient descent)
    rk4       4      -      no        no       fixed step only
    dopri5    5      4      no        no       Dormand-Prince 5(4), 4th-order dense output
    dop853    8      7      no        no       Hairer's DOP853, 8(5,3) error, 7th-order dense output
    rodas     4      3      required  yes      RODAS 3(4), L-stable, cubic Hermite dense output
    rodas5p   5      4      required  yes      Rodas5P, L-stable, its own 4th-order dense output
    auto      5      4      optional  switch   DOPRI5, switching to the stiff method (dopri5 without J)
    auto853   8      7      optional  switch   DOP853, switching to the stiff method (dop853 without J)

Aliases: ``"rk45"`` is ``"dopri5"``, ``"rosenbrock"`` is ``"rodas"``.  The "error" column is the order of
the embedded estimate that the controller uses (``err ~ h^(error_order + 1)``); for the switching methods
the orders are those of the explicit phase (the stiff phase has the stiff method's orders).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["MethodInfo", "METHODS", "ALIASES", "STIFF_METHODS", "SIMD_METHODS", "method_info",
           "ERROR_ORDER_BY_CODE"]


@dataclass(frozen=True)
class MethodInfo:
    """One integration method.

    name: its canonical name; code: the integer the Numba kernels dispatch on; order: order of the
    propagated solution; error_order: order of the embedded error estimate (0: none, fixed step only);
    jacobian: ``"no"``, ``"required"`` or ``"optional"`` (switching methods: without a Jacobian they run
    ``explicit`` alone); stiff: ``"no"``, ``"yes"`` (L-stable) or ``"switch"`` (explicit, switching to
    the stiff method where the step is stability-limited); adaptive: error-controlled steps (False:
    ``StepControl(fixed_step=h)`` is required); fixed_step_ok: may run with a fixed step; dense_order:
    order of the dense output between steps; pi_beta: default beta of the PI controller (Hairer's
    defaults); exact_saves: default of ``Saves(exact=None)`` (land steps on the save times); simd: has
    a SIMD-lanes driver; rtol, atol: default tolerances (None: a fixed-step method, no error control);
    explicit: the method a switching method starts with (and runs alone without a Jacobian).
    """

    name: str
    code: int
    order: int
    error_order: int
    jacobian: str
    stiff: str
    adaptive: bool
    fixed_step_ok: bool
    dense_order: int
    pi_beta: float
    exact_saves: bool
    simd: bool
    rtol: float | None
    atol: float | None
    explicit: str | None = None
    description: str = ""


_TABLE = (
    MethodInfo("euler", 0, 1, 0, "no", "no", False, True, 3, 0.0, False, False, None, None,
               description="explicit Euler: theta_{k+1} = theta_k + h F(theta_k)"),
    MethodInfo("rk4", 1, 4, 0, "no", "no", False, True, 3, 0.0, False, False, None, None,
               description="classical Runge–Kutta 4"),
    MethodInfo("dopri5", 2, 5, 4, "no", "no", True, True, 4, 0.04, False, False, 1e-8, 1e-10,
               description="Dormand–Prince 5(4), PI control, Shampine's 4th-order dense output"),
    MethodInfo("dop853", 3, 8, 7, "no", "no", True, True, 7, 0.0, True, False, 1e-8, 1e-10,
               description="Hairer's DOP853, 8(5,3) error estimate, 7th-order dense output"),
    MethodInfo("rodas", 4, 4, 3, "required", "yes", True, False, 3, 0.0, False, False, 1e-8, 1e-10,
               description="RODAS 3(4) Rosenbrock, L-stable, stiffly accurate, exact Jacobian"),
    MethodInfo("auto", 5, 5, 4, "optional", "switch", True, False, 4, 0.04, False, False, 1e-8, 1e-10,
               explicit="dopri5", description="DOPRI5, switching to the stiff method where stability-bound"),
    MethodInfo("auto853", 6, 8, 7, "optional", "switch", True, False, 7, 0.0, True, True, 1e-8, 1e-10,
               explicit="dop853", description="DOP853, switching to the stiff method where stability-bound"),
    MethodInfo("rodas5p", 7, 5, 4, "required", "yes", True, False, 4, 0.0, False, True, 1e-8, 1e-10,
               description="Rodas5P (Steinebach 2023), L-stable, stiffly accurate, exact Jacobian"),
)

METHODS: MappingProxyType[str, MethodInfo] = MappingProxyType({m.name: m for m in _TABLE})
"""Canonical name -> :class:`MethodInfo`."""
ALIASES: MappingProxyType[str, str] = MappingProxyType({"rk45": "dopri5", "rosenbrock": "rodas"})
STIFF_METHODS: tuple[str, ...] = tuple(m.name for m in _TABLE if m.stiff == "yes")
SIMD_METHODS: tuple[str, ...] = tuple(m.name for m in _TABLE if m.simd)
ERROR_ORDER_BY_CODE: tuple[int, ...] = tuple(m.error_order for m in sorted(_TABLE, key=lambda m: m.code))
"""error_order indexed by method code (the kernels' step-size controller; codes are 0..7, no gaps)."""
assert [m.code for m in sorted(_TABLE, key=lambda m: m.code)] == list(range(len(_TABLE)))


def method_info(name: str) -> MethodInfo:
    """The record of ``name`` (case-insensitive; aliases allowed), or a ValueError listing the names."""
    if isinstance(name, str):
        key = ALIASES.get(name.lower(), name.lower())
        if key in METHODS:
            return METHODS[key]
    allowed = ", ".join([*METHODS, *ALIASES])
    raise ValueError(f"method={name!r} is not allowed; allowed: {allowed}")


def markdown_table() -> str:
    """The method table as the Markdown table of docs/integrators.md (a test checks that the page holds
    exactly this text, so the page cannot drift from the table)."""
    rows = ["| `method` | order | error estimate | Jacobian | stiff | step | default rtol / atol | what |",
            "|---|---|---|---|---|---|---|---|"]
    for m in _TABLE:
        alias = [a for a, k in ALIASES.items() if k == m.name]
        name = f"`\"{m.name}\"`" + "".join(f" (`\"{a}\"`)" for a in alias)
        err = str(m.error_order) if m.error_order else "—"
        step = "adaptive" + (" or fixed" if m.fixed_step_ok else "") if m.adaptive else "fixed only"
        tol = f"{m.rtol:g} / {m.atol:g}" if m.rtol is not None else "—"
        stiff = {"no": "no", "yes": "L-stable", "switch": f"switches from {m.explicit}"}[m.stiff]
        rows.append(f"| {name} | {m.order} | {err} | {m.jacobian} | {stiff} | {step} | {tol} | "
                    f"{m.description} |")
    return "\n".join(rows)
