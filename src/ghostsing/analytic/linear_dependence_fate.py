r"""The fate of the linear-dependence set ``J_3 = a J_1 + b J_2`` of three linear units under skips.

With linear units the skips enter only through ``J_i + alpha s_i``, so the ``alpha``-model is the plain
model in shifted coordinates and the set moves without changing its Hessian rank: a persistent
singularity (:func:`linear_dependence_fate`, proved symbolically; :func:`shift_identity_gap` checks the
shift identity numerically).  The overlap line is :mod:`ghostsing.analytic.ghost_fate`; the elimination
sets are :mod:`ghostsing.analytic.elimination_fate`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from ghostsing.analytic.loss import derive, exact, population_loss, student_symbols
from ghostsing.analytic.manifold_fit import ALPHA
from ghostsing.models import ModelSpec


@dataclass(frozen=True, eq=False)
class LinearDependenceFate:
    """The fate of the linear-dependence set ``J_3 = a J_1 + b J_2`` of three linear units (N = 3).

    shift_proof : True when ``L_alpha(w, J) = L_0(w, J + alpha S)`` was proved identically (symbolic
    ``alpha``, ``S`` the skip matrix); fate : ``"persistent singularity"`` then; moved_set : the set of the
    ``alpha``-model in words; null_dims : ``(at alpha = 0 on the set, at alpha on the shifted set)``, the
    number of Hessian eigenvalues below ``1e-9`` times the largest at a point of the set (a numerical
    check of the proof).
    """

    spec: ModelSpec
    shift_proof: bool
    fate: str
    moved_set: str
    null_dims: tuple[int, int]
    numeric_gap: float = float("nan")


def linear_dependence_fate(spec: ModelSpec, alpha: float = 0.1, seed: int = 0) -> LinearDependenceFate:
    r"""The linear-dependence set of :func:`ghostsing.analytic.manifold_coords.linear_dependence` under skips.

    With linear units the student is ``f = sum_i w_i (J_i + alpha s_i).x``: the skips enter only through
    ``Jt_i = J_i + alpha s_i``, so ``L_alpha(w, J) = L_0(w, J + alpha S)`` exactly, for every skip form
    (identity, general directions, shared, low rank).  The ``alpha``-model is the plain model in shifted
    coordinates: its singular set is ``{Jt_3 = a Jt_1 + b Jt_2}``, the old set moved by ``-alpha s_i``,
    with the same Hessian rank everywhere (a persistent singularity: no ghost, no trap).  Proved
    symbolically; checked by the Hessian null-space dimension at a random point of each set.
    """
    from ghostsing.analytic.manifold_fit import is_identically_zero

    if spec.K != 3 or spec.N != 3 or spec.activation != "linear":
        raise ValueError(f"linear_dependence_fate needs K=3, N=3, activation='linear'; got K={spec.K}, "
                         f"N={spec.N}, activation={spec.activation!r}")
    w, J = student_symbols(3, 3)
    S = sp.Matrix(3, 3, [exact(x) for x in spec.skip_directions.ravel()])
    La = population_loss(spec.replace(alpha=0.0), list(w), J + ALPHA * S, alpha=0)
    Lb = population_loss(spec, list(w), J, alpha=ALPHA)
    proof = is_identically_zero(sp.expand(La - Lb))
    rng = np.random.default_rng(seed)
    J1, J2 = rng.normal(size=3), rng.normal(size=3)
    J3 = 0.7 * J1 - 0.4 * J2
    w0 = rng.normal(size=3)
    dims = []
    for a, shift in ((0.0, 0.0), (alpha, -alpha)):
        s = spec.replace(alpha=a)
        th = s.pack(w0, np.stack([J1, J2, J3]) + shift * spec.skip_directions)
        ev = np.abs(np.linalg.eigvalsh(-derive(s).compile().jacobian(np.ascontiguousarray(th))))
        dims.append(int(np.sum(ev < 1e-9 * ev.max())))
    return LinearDependenceFate(spec, bool(proof), "persistent singularity" if proof else "not proved",
                                "{J_3 + alpha s_3 = a (J_1 + alpha s_1) + b (J_2 + alpha s_2)}", tuple(dims),
                                shift_identity_gap(spec, alpha, seed=seed))


def shift_identity_gap(spec: ModelSpec, alpha: float, n: int = 20, seed: int = 0) -> float:
    """``max |L_alpha(w, J) - L_0(w, J + alpha S)|`` over ``n`` random points, from the generated (compiled)
    losses: a numerical check of the shift identity, independent of its symbolic proof.  It is ~1e-15 for
    linear units and O(1) for erf units (the negative control)."""
    f_a = derive(spec.replace(alpha=float(alpha))).compile()
    f_0 = derive(spec.replace(alpha=0.0)).compile()
    rng = np.random.default_rng(seed)
    gap = 0.0
    for _ in range(n):
        w, J = rng.normal(size=spec.K), rng.normal(size=(spec.K, spec.N))
        a = f_a.loss(np.ascontiguousarray(spec.pack(w, J)))
        b = f_0.loss(np.ascontiguousarray(spec.pack(w, J + alpha * spec.skip_directions)))
        gap = max(gap, abs(a - b))
    return float(gap)
