"""Singular manifolds of the plain student, the critical points they hold, and the Milnor attractor.

One import for the whole analytic treatment of the singularities (Fukumizu & Amari 2000; Amari,
Park & Ozeki 2006; Wei et al. 2008)::

    from ghostsing.analytic.manifolds import (overlap, elimination, linear_dependence, best_fit,
        criticality_proof, critical_line, milnor_interval, amari_K, overlap_plane_flow,
        elimination_plane_flow)

* charts (reduced coordinates ``xi = (parent, free, transverse)``, maps both ways, the flow in them):
  :mod:`ghostsing.analytic.manifold_coords`;
* the best (K-1)-unit fit, its embedding, the exact criticality proof at ``alpha = 0`` and the
  ``alpha``-ghost: :mod:`ghostsing.analytic.manifold_fit`;
* Amari's K, the line of critical points in ``O_ij``, its transverse eigenvalues, the attracting
  z-interval: :mod:`ghostsing.analytic.milnor`;
* 2-D slices of the flow: :mod:`ghostsing.analytic.plane_flows`.
"""

from ghostsing.analytic.manifold_coords import (
    KINDS,
    Chart,
    chart,
    elimination,
    linear_dependence,
    overlap,
    parent_spec,
)
from ghostsing.analytic.manifold_fit import (
    ALPHA,
    CriticalityProof,
    EliminationCriticalSet,
    criticality_proof,
    elimination_critical_set,
    evaluate_extra,
    is_identically_zero,
    transverse_hessian,
)
from ghostsing.analytic.milnor import (
    AmariK,
    CriticalLine,
    MilnorInterval,
    amari_K,
    amari_K_expr,
    block_spectrum,
    critical_line,
    line_jacobian,
    milnor_interval,
    transverse_eigenvalues,
)
from ghostsing.analytic.minima import BestFit, best_fit, exact_best_fit
from ghostsing.analytic.plane_flows import PlaneFlow, elimination_plane_flow, overlap_plane_flow

__all__ = [
    "ALPHA", "AmariK", "BestFit", "Chart", "CriticalLine", "CriticalityProof", "EliminationCriticalSet",
    "KINDS", "MilnorInterval", "PlaneFlow", "amari_K", "amari_K_expr", "best_fit", "block_spectrum",
    "chart", "critical_line", "criticality_proof", "elimination", "elimination_critical_set",
    "elimination_plane_flow", "evaluate_extra", "exact_best_fit", "is_identically_zero", "line_jacobian",
    "linear_dependence", "milnor_interval", "overlap", "overlap_plane_flow", "parent_spec",
    "transverse_eigenvalues", "transverse_hessian",
]
