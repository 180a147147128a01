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

``form="order-parameters"`` writes the loss and the flow in the field's notation instead of the raw
weights (:mod:`ghostsing.analytic.order_form`): order parameters ``Q_ik = J_i.J_k``, ``R_in = J_i.B_n``,
``T_nm = B_n.B_m`` (and the skip overlaps), the kernels as named functions ``I2(a, b, c)``,
``I1(a, p)``, ``dJ_i/dt`` as a combination of the vectors ``J_k, B_n, s_j``, and the closed flow of the
order parameters.  JSON always holds the weight form (``loss``, ``flow``); with this form it also holds
``order_parameters``.
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
FORMS = ("order-parameters", "weights")
MANIFOLDS = ("overlap", "elimination-w", "elimination-J", "linear-dependence")


def expr_from_srepr(text: str) -> sp.Expr:
    """The exact SymPy expression of an ``srepr`` string written by :func:`derive_report` (JSON).

    Like ``sympy.sympify(text)``, with the package's own functions (relu's arc-cosine kernel
    :class:`~ghostsing.analytic.gaussian.ArcCosKernel` and its derivatives, the named kernels of
    :mod:`ghostsing.analytic.order_form`) known by name.
    """
    from ghostsing.analytic.order_form import NAMED_FUNCTIONS

    names = {cls.__name__: cls for cls in (gaussian.ArcCosKernel, gaussian.ArcCosKernelPrime,
                                           gaussian.ArcCosKernelSecond, *NAMED_FUNCTIONS)}
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


def report_sections(d: Derivation, manifold_part: dict[str, Any] | None = None,
                    order_form: Any = None) -> dict[str, dict[Any, Any]]:
    """The sections (for :func:`ghostsing.analytic.latex.latex_document`) of a derivation report; with
    ``order_form`` (an :class:`~ghostsing.analytic.order_form.OrderParameterForm`) the loss and flow are
    written in order parameters instead of the weights."""
    sections: dict[str, dict[Any, Any]] = {
        "Model": {"": tex.spec_summary(d.spec)},
        **(order_form.sections() if order_form is not None else tex.derivation_sections(d)),
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


def _text(d: Derivation, part: dict[str, Any] | None, opf: Any = None) -> str:
    lines = [f"ghostsing derive: {tex.spec_summary(d.spec)}",
             f"parameters theta ({len(d.params)}): {', '.join(p.name for p in d.params)}", ""]
    if opf is not None:
        lines += [opf.text().rstrip("\n")]
    else:
        lines += ["population loss L = 1/2 E[(y - f(x))^2]:", f"  L = {d.loss}", "",
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


def _order_json(opf: Any) -> dict[str, Any]:
    from ghostsing.analytic.order_form import kernel_definitions

    return {
        "kernels": {k: _expr_record(e) for k, e in kernel_definitions(opf.spec.activation).items()},
        "constants": {s.name: _expr_record(v) for s, v in opf.constants.items()},
        "order_parameters": [s.name for s in opf.order_parameters],
        "loss": _expr_record(opf.loss),
        "flow_w": [{"param": w.name, **_expr_record(e)} for w, e in zip(opf.w, opf.flow_w, strict=True)],
        "flow_J": [[{"vector": v.name, **_expr_record(c)} for v, c in coef.items()] for coef in opf.flow_J],
        "ode": [{"order_parameter": s.name, **_expr_record(opf.ode[s])} for s in opf.order_parameters],
    }


def _json(d: Derivation, part: dict[str, Any] | None, opf: Any = None) -> str:
    out: dict[str, Any] = {
        "spec": d.spec.to_dict(),
        "spec_key": d.spec.key(),
        "params": [p.name for p in d.params],
        "params_latex": [sp.latex(p) for p in d.params],
        "loss": _expr_record(d.loss),
        "flow": [{"param": p.name, **_expr_record(rhs)} for p, rhs in zip(d.params, d.flow, strict=True)],
        "manifold": None,
        "order_parameters": _order_json(opf) if opf is not None else None,
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


def derive_report(spec: ModelSpec, manifold: str | None = None, fmt: str = "text",
                  form: str = "weights", expand: int | None = None) -> str:
    """The derived model of ``spec`` (module docstring) in format ``fmt`` (``text``, ``latex``, ``json``).

    ``manifold`` is ``None`` or one of :data:`MANIFOLDS`; the singular manifolds are those of the plain
    model (``K >= 2``; ``linear-dependence`` needs ``K = 3`` and ``N = 3``), and the flow written in
    their coordinates uses ``spec.alpha``.  ``form`` is ``"weights"`` (the raw parameters) or
    ``"order-parameters"`` (:mod:`ghostsing.analytic.order_form`).  ``expand`` (``1..3``, with
    ``manifold`` one of ``overlap``, ``elimination-w``, ``elimination-J``, ``linear-dependence``) adds the
    normal form near that set: the flow expanded in the transverse coordinates and ``alpha`` to that total
    order at the plain (K-1)-unit fit (:func:`ghostsing.analytic.normal_form.normal_form`).
    """
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"spec must be a ModelSpec, got {type(spec).__name__}")
    if fmt not in FORMATS:
        raise ValueError(f"fmt={fmt!r} is not known; allowed: {', '.join(FORMATS)}")
    if manifold is not None and not isinstance(manifold, str):
        raise TypeError(f"manifold must be a str or None, got {manifold!r}")
    if form not in FORMS:
        raise ValueError(f"form={form!r} is not known; allowed: {', '.join(FORMS)}")
    nf = None
    if expand is not None:
        from ghostsing.analytic.normal_form import KINDS, normal_form

        if manifold not in KINDS:
            raise ValueError(f"expand={expand!r} needs manifold in ({', '.join(KINDS)}) (got {manifold!r}); "
                             f"allowed: expand=None, or manifold one of {', '.join(KINDS)}")
        nf = normal_form(spec, manifold, order=expand)
    d = derive(spec)
    part = _manifold_part(spec, manifold) if manifold is not None else None
    opf = None
    if form == "order-parameters":
        from ghostsing.analytic.order_form import order_parameter_form

        opf = order_parameter_form(spec)
    if fmt == "text":
        return _text(d, part, opf) + ("\n" + nf.text() if nf is not None else "")
    if fmt == "json":
        out = json.loads(_json(d, part, opf))
        if nf is not None:
            out["normal_form"] = {
                "kind": nf.kind, "order": nf.order, "amari_K": nf.K,
                "amari_Kmat": nf.Kmat.tolist() if nf.Kmat is not None else None,
                "v1": nf.v1.tolist() if hasattr(nf.v1, "tolist") else nf.v1, "degenerate": nf.degenerate,
                "fit": nf.fit.theta.tolist(), "free": [s.name for s in nf.free],
                "transverse": [s.name for s in nf.transverse],
                "coefficients": [{"component": n, "transverse_powers": list(a), "alpha_power": b,
                                  **_expr_record(c)} for (n, a, b), c in nf.coefficients.items()]}
        return json.dumps(out, indent=1)
    title = f"Gradient flow of the {spec.K}-unit {spec.activation} student, alpha = {spec.alpha}"
    sections = report_sections(d, part, opf)
    if nf is not None:
        sections.update(nf.sections())
    return tex.latex_document(title, sections)
