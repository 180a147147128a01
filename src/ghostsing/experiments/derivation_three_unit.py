"""Three-unit student: linear dependence of three linear units, the overlap line of three erf units, and
the symmetric plateau of three erf units learning three teacher units (large-N on-line SGD) (kind
``analytic``; ``ghostsing run three-unit``, or ``python analytic/three_unit.py``).

Writes ``three_unit.tex``, ``three_unit.md`` and ``three_unit.json`` into the run folder and reports the
Milnor-attractor interval of the overlap line ``O_12`` of the three-unit erf student.  Predictions: the
plateau's generalisation error equals the closed form ``K/6 - (K^2/pi) asin(1/(2K))`` (K = 3:
0.0202966) and its escape rate / lr is the published 0.0461 (Saad & Solla 1995) to the published digits.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sympy as sp

from ghostsing.analytic import gaussian
from ghostsing.analytic.latex import latex_document, markdown_note, spec_summary, write_text_atomic
from ghostsing.analytic.loss import derive
from ghostsing.analytic.manifolds import (
    best_fit,
    criticality_proof,
    linear_dependence,
    milnor_interval,
    parent_spec,
)
from ghostsing.analytic.order_params import order_parameter_ode, symmetric_fixed_point
from ghostsing.experiments.base import Experiment, ExperimentOutput
from ghostsing.experiments.laws import exact_check
from ghostsing.models import ModelSpec

LIN3 = ModelSpec(K=3, M=2, N=3, activation="linear", v=(1.0, 0.5), B=[[1.0, 0.0, 0.5], [0.0, 1.0, 0.0]])
ERF3 = ModelSpec(K=3, M=3, N=1, activation="erf", v=(1.0, 1.0, 1.0), B=[[0.5], [1.5], [3.0]])
PUBLISHED_RATE = {2: 0.0658, 3: 0.0461, 4: 0.0357}  # escape rates / lr published by Saad & Solla (1995)


def _num(x, digits: int = 8) -> sp.Float:
    return sp.Float(float(x), digits)


def linear_dependence_sections(summary: dict) -> dict[str, dict]:
    ch = linear_dependence(LIN3)
    skip = LIN3.replace(alpha=0.5)
    pr = criticality_proof(linear_dependence(skip))
    fit = best_fit(parent_spec(LIN3))
    free = np.array([0.4, -0.7, 1.2])
    xi = np.concatenate([fit.theta, free, [0.0]])
    th = ch.to_theta(xi)
    dpsi = sp.lambdify([ch.coords], ch.dpsi, "numpy")
    T = np.asarray(dpsi(xi), dtype=float)[:, [ch.coords.index(f) for f in ch.free]]
    m0, m1 = derive(LIN3).compile(), derive(skip).compile()
    null0 = [float(np.linalg.norm(-m0.jacobian(th) @ T[:, k])) for k in range(3)]
    null1 = [float(np.linalg.norm(-m1.jacobian(th) @ T[:, k])) for k in range(3)]
    summary["linear_dependence"] = {
        "spec": LIN3.to_dict(), "fit": fit.theta.tolist(), "fit_exact": [str(e) for e in fit.exact],
        "proved": pr.proved, "ghost_nonzero": pr.ghost_nonzero, "free_values": free.tolist(),
        "|H t_free| alpha=0": null0, "|H t_free| alpha=0.5": null1,
        "|grad| alpha=0": float(np.linalg.norm(m0.flow(th))),
        "|grad| alpha=0.5": float(np.linalg.norm(m1.flow(th))),
    }
    return {
        "Linear dependence of three linear units (N = 3)": {
            "": f"Model: {spec_summary(LIN3)}. Chart: J_3 = a J_1 + b J_2 + rho n with n = J_1 "
                f"x J_2/|J_1 x J_2|; "
                "parent (w_1', w_2', J_1, J_2) with w_1' = w_1 + a w_3, w_2' = w_2 + b w_3; free "
                "(w_3, a, b); "
                "transverse rho.",
            **{s: e for s, e in zip(ch.theta, ch.psi, strict=True)},
            r"\rho": ch.phi[-1], "a": ch.phi[-3], "b": ch.phi[-2],
        },
        "Linear dependence: critical for all (w_3, a, b) at alpha = 0, not at alpha > 0": {
            "": f"grad L_3(embed) = T grad L_2 with T containing w_k/w_k' (proved = {pr.proved}). "
                f"The exact two-unit "
                f"fit is w' = (1, 1), J_{{1,2}} = beta_T/2 +- d (d orthogonal to beta_T), loss "
                f"{fit.loss:.3g}. At free "
                f"(w_3, a, b) = {free.tolist()}: "
                f"|grad| = {summary['linear_dependence']['|grad| alpha=0']:.1e} "
                f"and the "
                f"three free directions t satisfy |H t| = {[f'{x:.1e}' for x in null0]} at alpha "
                f"= 0; at alpha = 0.5 "
                f"|grad| = {summary['linear_dependence']['|grad| alpha=0.5']:.3g} and |H t| = "
                f"{[f'{x:.3g}' for x in null1]}. (The full Hessian of a linear network is singular "
                f"everywhere; "
                "the free directions of the manifold are what skips remove.)",
            r"T\,\nabla L_2": pr.expected,
            r"g_1 = \partial_\alpha \nabla L_3": pr.ghost,
        },
    }


def erf_overlap_sections(summary: dict) -> dict[str, dict]:
    mi = milnor_interval(ERF3)
    print(f"[three erf units, O_12] {mi.describe()}")
    summary["erf3_overlap"] = {
        "spec": ERF3.to_dict(), "fit": mi.fit.theta.tolist(), "fit_loss": mi.fit.loss, "amari_K": mi.K.value,
        "amari_K_quad": mi.K.quad, "rule": mi.rule,
        "attracting": [list(map(str, iv)) for iv in mi.attracting],
        "boundaries_numeric": list(mi.boundaries_numeric), "certified": mi.certified,
        "pseudo_determinant_c1(z)": str(mi.pdet), "pseudo_determinant_roots": list(mi.pdet_roots),
    }
    return {"Overlap line of three erf units (N = 1)": {
        "": f"Model: {spec_summary(ERF3)}. The best two-unit fit "
            f"(w', J') = {np.round(mi.fit.theta, 8).tolist()} "
            f"(loss {mi.fit.loss:.6g}) is embedded into O_12 (units 1 and 2 merged). Amari's K "
            f"= {mi.K.value:.8g} "
            f"(quadrature {mi.K.quad:.8g}); the attracting segment is {mi.rule}, z in {list(mi.attracting)}, "
            f"exact sign changes at z = {[round(b, 10) for b in mi.boundaries_numeric]}; real roots of the "
            f"pseudo-determinant c_1(z) of the exact Jacobian: {list(mi.pdet_roots)}; "
            f"certified = {mi.certified}.",
    }}


def plateau_sections(summary: dict) -> dict[str, dict]:
    """Symmetric plateau: Q_kk = Q_kl = 1/(2K-1), R = 1/sqrt(K(2K-1)); on the overlap manifold "
    "of all units."""
    K = 3
    lr = 0.05
    ode = order_parameter_ode(K=K, M=K, activation="erf", lr=lr, train_second_layer=False)
    y = symmetric_fixed_point(ode)
    idx = ode.dynamic_indices
    drift = ode.drift(y)[idx]
    eg = ode.generalisation_error(y)
    J = ode.jacobian(y, drift_only=True)[np.ix_(idx, idx)]
    ev = np.sort(np.linalg.eigvals(J).real)[::-1] / lr
    # exact: eps_g at the symmetric point from the closed-form I2 (independent of the ODE module)
    Ks = sp.Integer(K)
    q, r = 1 / (2 * Ks - 1), 1 / sp.sqrt(Ks * (2 * Ks - 1))
    I2 = lambda a, b, c: gaussian.pair_average("erf", a, b, c)  # noqa: E731
    eps_sym = sp.Rational(1, 2) * (Ks**2 * I2(q, q, q) - 2 * Ks**2 * I2(q, 1, r) + Ks * I2(1, 1, 1)
                                   + Ks * (Ks - 1) * I2(1, 1, 0))
    eps_pub = Ks / 6 - Ks**2 / sp.pi * sp.asin(1 / (2 * Ks))
    same = sp.simplify(eps_sym - eps_pub) == 0 or abs(float(eps_sym - eps_pub)) < 1e-15
    summary["symmetric_plateau"] = {
        "K": K, "lr": lr, "eps_g_ode": eg, "eps_g_exact": float(eps_pub),
        "eps_exact_matches_closed_form": bool(same),
        "published_eps": 0.020297, "max|drift|": float(np.max(np.abs(drift))),
        "leading_eigenvalues_over_lr": ev[:4].tolist(), "published_escape_rate": PUBLISHED_RATE[K],
        "ode_module": "ghostsing.analytic.order_params",
    }
    print(f"[symmetric plateau K=M=3] eps* = {eg:.6f} (closed form {float(eps_pub):.6f}, published "
          f"0.020297); "
          f"largest drift eigenvalue / lr = {ev[0]:.4f} (published {PUBLISHED_RATE[K]})")
    return {"Symmetric plateau of three erf units learning three teacher units (large N, on-line SGD)": {
        "": "Order-parameter ODEs from ghostsing.analytic.order_params (second layer fixed to "
        "1, T = I). At the "
            "symmetric fixed point Q_kk = Q_kl = 1/(2K-1) the students are identical, |J_k - J_l|^2/N = "
            "Q_kk + Q_ll - 2 Q_kl = 0: the plateau lies on the overlap manifold O_12 cap O_23 of all units. "
            f"eps_g there (ODE module) = {eg:.8f}; from the closed-form I2 below (independent) = "
            f"{float(eps_sym):.8f}, equal to the published K/6 - (K^2/pi) asin(1/(2K)) = "
            f"{float(eps_pub):.8f} "
            f"(exact match: {same}); published value (Saad & Solla 1995) 0.020297. "
            f"|drift| at the point: {np.max(np.abs(drift)):.1e}. "
            f"Eigenvalues of the O(lr) drift Jacobian divided by lr: {np.round(ev[:4], 5).tolist()}; "
            f"the largest, "
            f"{ev[0]:.4f}, is the escape rate (published {PUBLISHED_RATE[K]}).",
        r"\epsilon^*": eps_sym,
        r"\epsilon^*_{\rm published}": eps_pub,
    }}


@dataclass(frozen=True)
class ThreeUnitConfig:
    """The derivation has no settings: the models are fixed (module docstring)."""


def run_three_unit(config: ThreeUnitConfig, out_dir: Path, *, resume: bool = False,
                   progress: bool = True) -> ExperimentOutput:
    """Derive, write ``three_unit.{tex,md,json}`` into ``out_dir`` and report the plateau's numbers."""
    t0 = time.perf_counter()
    summary: dict = {}
    sections: dict[str, dict] = {}
    sections.update(linear_dependence_sections(summary))
    sections.update(erf_overlap_sections(summary))
    sections.update(plateau_sections(summary))
    summary["seconds"] = time.perf_counter() - t0
    title = "Three-unit student: linear dependence, overlap line, symmetric plateau"
    intro = ("Generated by the registered experiment three-unit "
             "(ghostsing.experiments.derivation_three_unit) from ghostsing.analytic.manifolds and "
             "ghostsing.analytic.order_params.")
    out = Path(out_dir)
    write_text_atomic(out / "three_unit.tex", latex_document(title, sections, intro=intro))
    write_text_atomic(out / "three_unit.md", markdown_note(title, sections, intro=intro))
    write_text_atomic(out / "three_unit.json", json.dumps(summary, indent=1) + "\n")
    sp_ = summary["symmetric_plateau"]
    preds = (
        exact_check("plateau error = closed form (K = 3)", sp_["eps_g_ode"], sp_["eps_g_exact"], 1e-10,
                    "eps_g at the symmetric fixed point of the order-parameter ODE equals "
                    "K/6 - (K^2/pi) asin(1/(2K)) = 0.0202966"),
        exact_check("escape rate / lr = published (K = 3)", sp_["leading_eigenvalues_over_lr"][0],
                    sp_["published_escape_rate"], 0.5e-4,
                    "the largest eigenvalue of the O(lr) drift Jacobian / lr is the published escape rate "
                    "0.0461 (Saad & Solla 1995), to half a unit of its last digit"),
    )
    md = "Documents: [three_unit.md](three_unit.md), `three_unit.tex`, `three_unit.json`."
    return ExperimentOutput(preds, (), {}, summary, md)


EXPERIMENTS: tuple[Experiment, ...] = (
    Experiment("three-unit", "Three-unit student: linear dependence, overlap line, symmetric plateau",
               "analytic", ThreeUnitConfig, run_three_unit,
               {"default": ThreeUnitConfig(), "small": ThreeUnitConfig()}),
)
