"""What ``ghostsing derive`` prints: the derived model of a spec as text, LaTeX or JSON.

:func:`derive_report` collects, for a :class:`~ghostsing.models.ModelSpec`,

* the population loss ``L(theta) = 1/2 E[(y - f(x))^2]`` (closed form, exact teacher numbers),
* the gradient flow ``d theta_k/dt = -dL/d theta_k`` for every parameter in the flat order
  ``theta = (w_1..w_K, J_{1,1}..J_{K,N})``,
* optionally a singular manifold of the plain model (``overlap``, ``elimination-w``,
  ``elimination-J``, ``linear-dependence``; :mod:`ghostsing.analytic.manifolds`): its reduced
  coordinates, the maps ``theta = psi(xi)`` and ``xi = phi(theta)``, and the flow written in ``xi``,

and renders it as plain text, a standalone LaTeX document, or JSON (spec, parameters, and every
expression as ``str``, ``srepr`` (exact; :func:`expr_from_srepr` reads it back) and LaTeX).
"""

from __future__ import annotations

import json
from typing import Any

import sympy as sp

from ghostsing.analytic import gaussian
from ghostsing.analytic import latex as tex
from ghostsing.analytic.loss import Derivation, derive
from ghostsing.models import ModelSpec

FORMATS = ("text", "latex", "json")
MANIFOLDS = ("overlap", "elimination-w", "elimination-J", "linear-dependence")


def expr_from_srepr(text: str) -> sp.Expr:
    """The exact SymPy expression of an ``srepr`` string written by :func:`derive_report` (JSON).

    Like ``sympy.sympify(text)``, with the package's own functions (relu's arc-cosine kernel
    :class:`~ghostsing.analytic.gaussian.ArcCosKernel` and its derivatives) known by name.
    """
    names = {cls.__name__: cls for cls in (gaussian.ArcCosKernel, gaussian.ArcCosKernelPrime,
                                           gaussian.ArcCosKernelSecond)}
    return sp.sympify(text, locals=names)


def _flow_lhs(p: sp.Symbol) -> str:
    return rf"\frac{{d {sp.latex(p)}}}{{dt}}"


def _expr_record(expr: sp.Expr) -> dict[str, str]:
    return {"str": str(expr), "srepr": sp.srepr(expr), "latex": sp.latex(expr)}


def _manifold_chart(spec: ModelSpec, manifold: str) -> Any:
    if manifold not in MANIFOLDS:
        raise ValueError(f"manifold={manifold!r} is not known; allowed: {', '.join(MANIFOLDS)} or None")
    try:
        from ghostsing.analytic.manifolds import chart
    except ImportError as exc:  # pragma: no cover - the module is part of the package
        raise ValueError(f"manifold={manifold!r} needs ghostsing.analytic.manifolds, which is not available "
                         f"({exc}); allowed: manifold=None") from exc
    return chart(spec, manifold)


def _manifold_part(spec: ModelSpec, manifold: str) -> dict[str, Any]:
    """The chart of ``manifold``: description, coordinates, maps both ways and the flow in ``xi``."""
    c = _manifold_chart(spec, manifold)
    return {
        "chart": c,
        "psi": list(zip(c.theta, c.psi, strict=True)),
        "phi": list(zip(c.coords, c.phi, strict=True)),
        "flow": list(zip(c.coords, list(c.flow), strict=True)),
    }


def report_sections(d: Derivation, manifold_part: dict[str, Any] | None = None) -> dict[str, dict[Any, Any]]:
    """The sections (for :func:`ghostsing.analytic.latex.latex_document`) of a derivation report."""
    sections: dict[str, dict[Any, Any]] = {
        "Model": {"": tex.spec_summary(d.spec)},
        **tex.derivation_sections(d),
    }
    if manifold_part is not None:
        c = manifold_part["chart"]
        def names(symbols) -> str:
            return ", ".join(f"${sp.latex(s)}$" for s in symbols)

        sections[f"Singular manifold: {c.kind}"] = {
            "": f"{c.description}. Parent coordinates: {names(c.parent)}; free: {names(c.free)}; "
                f"transverse: {names(c.transverse)} (the manifold is where the transverse coordinates "
                "vanish).",
            **{sp.latex(s): e for s, e in manifold_part["psi"]},
        }
        sections["Inverse map"] = {sp.latex(s): e for s, e in manifold_part["phi"]}
        sections["Gradient flow in the reduced coordinates"] = {
            _flow_lhs(s): e for s, e in manifold_part["flow"]}
    return sections


def _text(d: Derivation, part: dict[str, Any] | None) -> str:
    lines = [f"ghostsing derive: {tex.spec_summary(d.spec)}",
             f"parameters theta ({len(d.params)}): {', '.join(p.name for p in d.params)}", "",
             "population loss L = 1/2 E[(y - f(x))^2]:", f"  L = {d.loss}", "",
             "gradient flow d theta/dt = -grad L:"]
    lines += [f"  d{p.name}/dt = {rhs}" for p, rhs in zip(d.params, d.flow, strict=True)]
    if part is not None:
        c = part["chart"]
        lines += ["", f"singular manifold {c.kind}: {c.description}",
                  f"  parent: {', '.join(s.name for s in c.parent)}",
                  f"  free: {', '.join(s.name for s in c.free)}",
                  f"  transverse: {', '.join(s.name for s in c.transverse)}", "", "theta = psi(xi):"]
        lines += [f"  {s.name} = {e}" for s, e in part["psi"]]
        lines += ["", "xi = phi(theta):"] + [f"  {s.name} = {e}" for s, e in part["phi"]]
        lines += ["", "flow in the reduced coordinates:"] + [f"  d{s.name}/dt = {e}" for s, e in part["flow"]]
    return "\n".join(lines) + "\n"


def _json(d: Derivation, part: dict[str, Any] | None) -> str:
    out: dict[str, Any] = {
        "spec": d.spec.to_dict(),
        "spec_key": d.spec.key(),
        "params": [p.name for p in d.params],
        "params_latex": [sp.latex(p) for p in d.params],
        "loss": _expr_record(d.loss),
        "flow": [{"param": p.name, **_expr_record(rhs)} for p, rhs in zip(d.params, d.flow, strict=True)],
        "manifold": None,
    }
    if part is not None:
        c = part["chart"]
        out["manifold"] = {
            "kind": c.kind, "units": list(c.units), "description": c.description,
            "parent": [s.name for s in c.parent], "free": [s.name for s in c.free],
            "transverse": [s.name for s in c.transverse],
            "psi": [{"param": s.name, **_expr_record(e)} for s, e in part["psi"]],
            "phi": [{"coord": s.name, **_expr_record(e)} for s, e in part["phi"]],
            "flow": [{"coord": s.name, **_expr_record(e)} for s, e in part["flow"]],
        }
    return json.dumps(out, indent=1)


def derive_report(spec: ModelSpec, manifold: str | None = None, fmt: str = "text") -> str:
    """The derived model of ``spec`` (module docstring) in format ``fmt`` (``text``, ``latex``, ``json``).

    ``manifold`` is ``None`` or one of :data:`MANIFOLDS`; the singular manifolds are those of the plain
    model (``K >= 2``; ``linear-dependence`` needs ``K = 3`` and ``N = 3``), and the flow written in
    their coordinates uses ``spec.alpha``.
    """
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"spec must be a ModelSpec, got {type(spec).__name__}")
    if fmt not in FORMATS:
        raise ValueError(f"fmt={fmt!r} is not known; allowed: {', '.join(FORMATS)}")
    if manifold is not None and not isinstance(manifold, str):
        raise TypeError(f"manifold must be a str or None, got {manifold!r}")
    d = derive(spec)
    part = _manifold_part(spec, manifold) if manifold is not None else None
    if fmt == "text":
        return _text(d, part)
    if fmt == "json":
        return _json(d, part)
    title = f"Gradient flow of the {spec.K}-unit {spec.activation} student, alpha = {spec.alpha}"
    return tex.latex_document(title, report_sections(d, part))
