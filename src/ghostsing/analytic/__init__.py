"""Symbolic (SymPy) layer: Gaussian averages, population loss, gradient flow, singular manifolds,
order-parameter ODEs and generated Numba code."""

from ghostsing.analytic.loss import CompiledModel, Derivation, compile_spec, derive, population_loss
from ghostsing.analytic.order_params import (
    OrderParameterDerivation,
    OrderParameterODE,
    derive_order_parameter_odes,
    find_fixed_point,
    order_parameter_ode,
    state_layout,
    symmetric_fixed_point,
)

__all__ = [
    "CompiledModel", "Derivation", "compile_spec", "derive", "population_loss",
    "OrderParameterDerivation", "OrderParameterODE", "derive_order_parameter_odes", "find_fixed_point",
    "order_parameter_ode", "state_layout", "symmetric_fixed_point",
]
