"""Symbolic (SymPy) layer: Gaussian averages, population loss, gradient flow, singular manifolds,
order-parameter ODEs and generated Numba code."""

from ghostsing.analytic.loss import CompiledModel, Derivation, compile_spec, derive, population_loss

__all__ = ["CompiledModel", "Derivation", "compile_spec", "derive", "population_loss"]
