"""Two-unit student: overlap and elimination singularities, plain and with skip connections (kind
``analytic``; ``ghostsing run two-unit``, or ``python analytic/two_unit.py``).

Writes ``two_unit.tex`` (LaTeX), ``two_unit.md`` (Markdown with the equations) and ``two_unit.json``
(the numbers) into the run folder and reports the Milnor-attractor interval of the overlap line for each
teacher.  Everything is derived by :mod:`ghostsing.analytic.manifolds` (exact SymPy, generated Numba);
this module only chooses the models and writes the results.  Predictions: the criticality of the
embedded points at alpha = 0 is proved (exact simplification) and each teacher's attracting segment is
certified.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sympy as sp

from ghostsing.analytic.latex import latex_document, markdown_note, spec_summary, write_text_atomic
from ghostsing.analytic.loss import derive
from ghostsing.analytic.manifolds import (
    amari_K_expr,
    best_fit,
    critical_line,
    criticality_proof,
    elimination,
    milnor_interval,
    overlap,
    parent_spec,
)
from ghostsing.experiments.base import Experiment, ExperimentOutput
from ghostsing.experiments.laws import exact_check
from ghostsing.models import ModelSpec

# the teacher of the issue, and teachers with K < 0 and K > 0 (one-dimensional input)
TEACHERS = {
    "issue: v=(10,5), B=(0.4,4)": ModelSpec(K=2, M=2, N=1, activation="erf", v=(10.0, 5.0), B=[[0.4], [4.0]]),
    "v=(2,-1), B=(2,0.5)": ModelSpec(K=2, M=2, N=1, activation="erf", v=(2.0, -1.0), B=[[2.0], [0.5]]),
    "v=(1,1), B=(1,2)": ModelSpec(K=2, M=2, N=1, activation="erf", v=(1.0, 1.0), B=[[1.0], [2.0]]),
}
REALISABLE = ModelSpec(K=2, M=1, N=1, activation="erf", v=(1.5,), B=[[0.8]], sigma=0.3)
SKIP = [[1.0], [0.5]]  # skip directions s_1, s_2 for the N = 1 model with skips


def _num(x, digits: int = 8) -> sp.Float:
    return sp.Float(float(x), digits)


def build(progress: bool = True) -> tuple[str, dict, str, dict]:
    """``(title, sections, intro, summary)`` of the document."""
    t0 = time.perf_counter()
    spec = TEACHERS["issue: v=(10,5), B=(0.4,4)"]
    skip_spec = spec.replace(alpha=0.5, skip_directions=SKIP)
    sections: dict[str, dict] = {}
    summary: dict = {"spec": spec.to_dict(), "skip_directions": SKIP, "teachers": {}}

    # ------------------------------------------------------------------ overlap chart and flow
    ch = overlap(spec)
    sections["Overlap chart"] = {
        "": "Reduced coordinates xi = (w, Jbar; z; u) with w = w_1 + w_2, z = (w_1 - w_2)/w, u = J_1 - J_2, "
            "Jbar = (w_1 J_1 + w_2 J_2)/w: parent (the merged unit), free z, transverse u. "
            "The overlap manifold O_12 is u = 0.",
        **{s: e for s, e in zip(ch.theta, ch.psi, strict=True)},
        **{s: e for s, e in zip(ch.coords, ch.phi, strict=True)},
    }
    sections["Gradient flow in the overlap chart (exact)"] = {
        "": "d xi/dt = D phi . (-grad_theta L) at theta = psi(xi), written out for the plain model.",
        **{rf"\frac{{d {sp.latex(s)}}}{{dt}}": e for s, e in zip(ch.coords, ch.flow, strict=True)},
    }

    # ------------------------------------------------------------------ criticality proof and ghost
    pr = criticality_proof(overlap(skip_spec))
    fit = best_fit(parent_spec(spec))
    w_s, J_s = sp.Symbol("w", real=True), sp.Symbol(r"\bar{J}", real=True)
    summary["embedded_critical_proved"] = bool(pr.proved)
    sections["Embedded points are critical at alpha = 0 (exact)"] = {
        "": f"grad_theta L_2(embed(w, Jbar, z)) - T(z) grad L_1(w, Jbar) simplifies to zero entry by entry: "
            f"proved = {pr.proved}. Here T(z) sends dL_1/dw to w_1 and w_2 and dL_1/dJbar to J_1 with weight "
            f"(1+z)/2 and to J_2 with weight (1-z)/2; the extra term E is zero.",
        r"T(z)\,\nabla L_1": pr.expected,
        r"\nabla L_2 - T\nabla L_1\big|_{\alpha=0}": sp.zeros(4, 1) if pr.proved else pr.residual_alpha0,
    }
    free_ghost = pr.free_ghost()[0]
    g1_num = pr.ghost_at(fit.theta, [0.0])
    sections["The ghost at alpha > 0 (skip directions s = (1, 0.5))"] = {
        "": "The loss is quadratic in alpha, so grad L_2 = g_0 + alpha g_1 + alpha^2 g_2 exactly; at the "
            "embedded optimum g_0 = 0 and the leading order is alpha g_1 (first order, nonzero: "
            f"{pr.ghost_nonzero}).",
        r"g_1 = \partial_\alpha \nabla L_2\big|_{\alpha=0}": pr.ghost,
        r"-\partial_z L\ \text{at first order in}\ \alpha": free_ghost,
        r"g_1\ \text{at the fit},\ z=0": sp.Matrix([_num(x) for x in g1_num]),
    }
    summary["ghost_g1_at_fit_z0"] = g1_num.tolist()
    summary["free_ghost_at_fit"] = float(free_ghost.xreplace({w_s: fit.theta[0], J_s: fit.theta[1]}))

    # ------------------------------------------------------------------ Amari's K and Milnor intervals
    lines = []
    for name, tspec in TEACHERS.items():
        mi = milnor_interval(tspec)
        zs = np.array([-3.0, -2.0, -1.5, -0.5, 0.0, 0.5, 1.5, 2.0, 3.0])
        idx = [int(np.argmin(np.abs(mi.z - z))) for z in zs]
        summary["teachers"][name] = {
            "spec": tspec.to_dict(), "fit": mi.fit.theta.tolist(), "fit_loss": mi.fit.loss,
            "fit_hessian_eigenvalues": mi.fit.hessian_eigenvalues.tolist(),
            "amari_K": mi.K.value, "amari_K_quad": mi.K.quad, "rule": mi.rule,
            "attracting": [list(map(str, iv)) for iv in mi.attracting],
            "boundaries_numeric": list(mi.boundaries_numeric), "certified": mi.certified,
            "pseudo_determinant_c1(z)": str(mi.pdet), "pseudo_determinant_roots": list(mi.pdet_roots),
            "z": mi.z[idx].tolist(), "mu_u_dominated_eigenvalue": mi.mu[idx, 0].tolist(),
            "mu_amari_2(1-z^2)K": mi.mu_leading[idx, 0].tolist(),
            "mu_eigen_leading_2(1-z^2)K/(1+z^2)": mi.mu_eigen_leading[idx, 0].tolist(),
        }
        if progress:
            print(f"[{name}] {mi.describe()}")
        lines.append(f"Teacher {name}: best one-unit fit (w*, Jbar*) = ({mi.fit.theta[0]:.10g}, "
                     f"{mi.fit.theta[1]:.10g}), K = {mi.K.value:.10g} (quadrature {mi.K.quad:.10g}); "
                     f"attracting segment {mi.rule}, z in {list(mi.attracting)}; sign changes of the exact "
                     f"transverse eigenvalue at z = {[round(b, 12) for b in mi.boundaries_numeric]}; "
                     f"coefficient of mu in det(mu - A(z)) (A the exact Jacobian on the line): c_1(z) = "
                     f"{sp.N(mi.pdet, 10) if mi.pdet is not None else None}, "
                     f"real roots {list(mi.pdet_roots)}; "
                     f"certified (inertia + boundaries + roots) = {mi.certified}.")
        lines.append("mu_u below is a numerical (float64) eigenvalue of the generated Jacobian at the point "
                     "of the line: the one whose eigenvector, written in the chart, has the largest share on "
                     "u. Near |z| = 1 it is the transverse eigenvalue; at large |z| the u mode mixes with "
                     "the Jbar modes (the chart metric couples them with weight z), so the u-dominated "
                     "eigenvector is then a parallel mode and mu_u is not the transverse rate. The other "
                     "columns are the leading-order formulas.")
        head = "| z | mu_u (Jacobian, u-dominated) | 2(1-z^2)K | 2(1-z^2)K/(1+z^2) |\n|---|---|---|---|\n"
        table = head + "\n".join(
            f"| {mi.z[k]:.3g} | {mi.mu[k, 0]:.6g} | {mi.mu_leading[k, 0]:.6g} | "
            f"{mi.mu_eigen_leading[k, 0]:.6g} |"
            for k in idx)
        lines.append(table)
    Kexpr = amari_K_expr(ch)[0, 0]
    sections["Amari's K and the Milnor-attractor segment"] = {
        "": "K = (w/4) E[r* g''(Jbar x) x^2] = (w/4) F''(Jbar), F(J) = E[r* g(J x)] in closed form. "
            "In the chart the Hessian on the line is Hess' (+) 0 (+) H_uu with H_uu = -(1 - z^2) K, so by "
            "Sylvester's law of inertia the exact Jacobian has one unstable direction exactly where "
            "(1 - z^2) K > 0: K > 0 => |z| > 1 attracts, K < 0 => |z| < 1 attracts.",
        "K": Kexpr,
        r"H_{uu}": -(1 - ch.free[0] ** 2) * sp.Symbol("K"),
        r"\frac{du}{dt}\Big|_{(w,\bar J)\ \text{at the fit}}":
            2 * (1 - ch.free[0] ** 2) * sp.Symbol("K") * ch.transverse[0],
        r"\mu(z)\ \text{(eigenvalue, leading order in}\ K/|H'|)":
            2 * (1 - ch.free[0] ** 2) * sp.Symbol("K") / (1 + ch.free[0] ** 2),
        "%text-teachers": "\n\n".join(lines),
    }

    # ------------------------------------------------------------------ realisable case
    line = critical_line(REALISABLE, z=np.linspace(-3, 3, 13))
    summary["realisable"] = {"spec": REALISABLE.to_dict(), "loss_on_line": line.loss.tolist(),
                             "sigma^2/2": REALISABLE.sigma**2 / 2,
                             "min_hessian_eigenvalue": float(np.min(line.hessian_eigenvalues)),
                             "max_grad_norm": float(np.max(line.grad_norm))}
    sections["Realisable case: a line of global minima"] = {
        "": f"Teacher with one unit ({spec_summary(REALISABLE)}): the best one-unit fit is the teacher "
            "itself, "
            f"every point of the line has loss sigma^2/2 = {REALISABLE.sigma**2 / 2} (max deviation "
            f"{np.max(np.abs(line.loss - 0.045)):.2e}), gradient <= {np.max(line.grad_norm):.1e} and Hessian "
            f"eigenvalues >= {np.min(line.hessian_eigenvalues):.1e}; Amari's K = 0 (no transverse curvature "
            "at second order: the approach is algebraic).",
    }

    # ------------------------------------------------------------------ elimination
    where = {"w": "J_2 = 0 (g odd)", "J": "w_2 = 0, or everywhere if E[r* x] = 0"}
    for which in ("w", "J"):
        ce = elimination(spec, 1, which)
        pe = criticality_proof(elimination(skip_spec, 1, which))
        ghost = pe.ghost_at(fit.theta, [0.0])
        sections[f"Elimination {{{'w_2' if which == 'w' else 'J_2'} = 0}}"] = {
            "": f"{ce.description}. grad L_2(embed) = T grad L_1 + E (proved = {pe.proved}); E below "
                f"vanishes at {where[which]}. "
                f"With skips the embedded point with free coordinate 0 has gradient alpha g_1, "
                f"|g_1| = {np.linalg.norm(ghost):.6g}.",
            "E": pe.extra,
            r"g_1": pe.ghost,
        }
    model = derive(spec).compile()
    th0 = elimination(spec, 1, "w").embed(fit.theta, [0.0])
    H0 = -model.jacobian(th0)
    sections["Hessian at the elimination point (w_2, J_2) = (0, 0)"] = {
        "": "Block diagonal: Hess' of the fit and -g'(0)[[0, c], [c, 0]] with c = E[r* x]; for N = 1 a "
            "nondegenerate saddle (eigenvalues +-g'(0)|c|), for N >= 2 a zero eigenvalue along J_2 "
            "perpendicular to c. Since w_2 multiplies the skip of unit 2 as well, L does not depend on J_2 "
            "on {w_2 = 0} at any alpha.",
        r"\mathrm{eig}\,H": sp.Matrix([_num(x) for x in np.linalg.eigvalsh(H0)]),
    }
    summary["elimination_hessian_eigenvalues"] = np.linalg.eigvalsh(H0).tolist()
    summary["seconds"] = time.perf_counter() - t0

    title = "Two-unit student: overlap and elimination singularities, plain and with skips"
    intro = (f"Model: {spec_summary(spec)}. With skips: alpha symbolic, skip directions {SKIP}. "
             "Generated by the registered experiment two-unit (ghostsing.experiments.derivation_two_unit) "
             "from ghostsing.analytic.manifolds.")
    return title, sections, intro, summary


@dataclass(frozen=True)
class TwoUnitConfig:
    """The derivation has no settings: the models are fixed (module docstring)."""


def run_two_unit(config: TwoUnitConfig, out_dir: Path, *, resume: bool = False,
                 progress: bool = True) -> ExperimentOutput:
    """Derive, write ``two_unit.{tex,md,json}`` into ``out_dir`` and report the exact results."""
    title, sections, intro, summary = build(progress)
    out = Path(out_dir)
    write_text_atomic(out / "two_unit.tex", latex_document(title, sections, intro=intro))
    write_text_atomic(out / "two_unit.md", markdown_note(title, sections, intro=intro))
    write_text_atomic(out / "two_unit.json", json.dumps(summary, indent=1) + "\n")
    preds = [exact_check("embedded points critical at alpha = 0",
                         float(summary["embedded_critical_proved"]), 1.0, 0.5,
                         "grad L_2(embed) - T(z) grad L_1 simplifies to zero entry by entry (SymPy)")]
    for name, t in summary["teachers"].items():
        preds.append(exact_check(f"Milnor segment certified ({name})", float(bool(t["certified"])), 1.0,
                                 0.5,
                                 f"the attracting segment {t['rule']} of the overlap line is certified by "
                                 "inertia, the exact boundaries and the roots of the pseudo-determinant"))
    md = "Documents: [two_unit.md](two_unit.md), `two_unit.tex`, `two_unit.json`."
    return ExperimentOutput(tuple(preds), (), {}, summary, md)


EXPERIMENTS: tuple[Experiment, ...] = (
    Experiment("two-unit", "Two-unit student: overlap and elimination, plain and with skips", "analytic",
               TwoUnitConfig, run_two_unit, {"default": TwoUnitConfig(), "small": TwoUnitConfig()}),
)
