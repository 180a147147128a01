"""Probes of trained networks.

* :mod:`.units` — unit-level singularities: eliminated, overlapping and linearly dependent units
  (definitions and thresholds in its docstring).
* Curvature probes (Hessian spectra, gradient probes, local learning coefficient) live in sibling
  modules (``hessian``, ``gradient``, ``llc``) and are imported directly from there.
* :mod:`.pl_trace` — exact Hessian trace and diagonal for nets that are piecewise linear in each
  parameter (``tr H = tr GGN``; ``exact_trace_piecewise_linear``, ``hessian_diagonal_piecewise_linear``,
  ``is_piecewise_linear``, ``hessian_trace``).
* :mod:`.relu_nullspace` — the Hessian null directions of dead and duplicated ReLU units, counted from the
  weights and the data (``null_directions``).

This file imports nothing heavy; import the submodule you need.
"""
