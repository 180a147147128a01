"""Probes of trained networks.

* :mod:`.units` — unit-level singularities: eliminated, overlapping and linearly dependent units
  (definitions and thresholds in its docstring).
* Curvature probes (Hessian spectra, gradient probes, local learning coefficient) live in sibling
  modules (``hessian``, ``gradient``, ``llc``) and are imported directly from there.

This file imports nothing heavy; import the submodule you need.
"""
