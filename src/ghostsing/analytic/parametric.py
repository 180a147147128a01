"""Model functions with cheap scalar parameters (skip strength alpha, output noise sigma) left free.

:func:`compile_spec` (:mod:`ghostsing.analytic.loss`) bakes every number of a
:class:`~ghostsing.models.ModelSpec` into the generated code, so each value of alpha is a new SymPy
derivation, a new module and a new Numba compilation.  :func:`compile_parametric` derives the loss with
the chosen parameters as symbols and generates functions that take their values at run time
(:mod:`ghostsing.analytic.codegen`, *runtime parameters*)::

    m = compile_parametric(ModelSpec(K=2, M=2, N=1, v=(10, 5), B=[[0.4], [4]], skip_directions=[[1], [0.5]]))
    m.loss(theta, m.values(alpha=0.01))          # Numba: loss(theta, p), flow(theta, p), ...
    m.bind(alpha=0.03).flow(theta)                # or bound to values, for Python callers

The module is keyed by the spec with the runtime fields blanked, so every alpha of a sweep (and every
process of a cluster sharing ``$GHOSTSING_CACHE_DIR``) uses one generated file and Numba's disk cache
beside it: one compilation per machine, a cache load per worker process, nothing per task.

Only fields on which the generated code depends polynomially are allowed: ``alpha`` (the loss is
quadratic in it) and ``sigma`` (it adds ``sigma**2 / 2`` to the loss, nothing to the flow).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import sympy as sp

from ghostsing.models import ModelSpec

__all__ = ["RUNTIME_FIELDS", "ParametricModel", "BoundModel", "compile_parametric"]

#: ModelSpec fields that can be runtime parameters.
RUNTIME_FIELDS: tuple[str, ...] = ("alpha", "sigma")


@dataclass(frozen=True)
class BoundModel:
    """Python callables ``loss(theta)``, ``flow(theta)``, ``jacobian(theta)`` at fixed parameter values."""

    spec: ModelSpec
    loss: object
    flow: object
    jacobian: object


@dataclass(frozen=True)
class ParametricModel:
    """Generated Numba functions of ``(theta, p)``: ``loss``, ``flow`` (``-grad L``), ``flow_into(theta,
    p, out)``, ``jacobian`` (``-Hess L``), ``jacobian_into``, and the SIMD forms ``flow_lanes_into(X, p,
    OUT)``, ``jacobian_lanes_into``.  ``p`` holds the values of :attr:`runtime` in that order."""

    template: ModelSpec
    runtime: tuple[str, ...]
    loss: object
    flow: object
    flow_into: object
    jacobian: object
    jacobian_into: object
    flow_lanes_into: object
    jacobian_lanes_into: object
    source: str

    def values(self, **values: float) -> np.ndarray:
        """The parameter array ``p`` (missing fields take the template's value)."""
        unknown = set(values) - set(self.runtime)
        if unknown:
            raise ValueError(f"{sorted(unknown)} are not runtime parameters; allowed: "
                             f"{', '.join(self.runtime)}")
        spec = self.template.replace(**{k: float(v) for k, v in values.items()})  # validates
        return np.array([getattr(spec, k) for k in self.runtime], dtype=np.float64)

    def bind(self, **values: float) -> BoundModel:
        """The functions at fixed parameter values, as Python callables of ``theta`` alone."""
        p = self.values(**values)
        spec = self.template.replace(**dict(zip(self.runtime, p.tolist(), strict=True)))
        return BoundModel(spec, partial(self.loss, p=p), partial(self.flow, p=p), partial(self.jacobian, p=p))


def compile_parametric(spec: ModelSpec, runtime: Sequence[str] = ("alpha",)) -> ParametricModel:
    """Generate (or load from the disk cache) the model of ``spec`` with the fields ``runtime`` free."""
    from ghostsing.analytic import codegen
    from ghostsing.analytic.loss import population_loss, student_symbols

    if not isinstance(spec, ModelSpec):
        raise TypeError(f"spec must be a ModelSpec, got {type(spec).__name__}")
    runtime = tuple(runtime)
    bad = [r for r in runtime if r not in RUNTIME_FIELDS]
    if bad or len(set(runtime)) != len(runtime) or not runtime:
        raise ValueError(f"runtime={runtime!r} is not allowed; allowed: a non-empty subset of "
                         f"{RUNTIME_FIELDS}")
    template = spec.replace(**{k: 0.0 for k in runtime})
    key = f"{template.key()}|runtime={','.join(runtime)}"
    module = codegen.load_cached("param_model", key)
    if module is None:
        w, J = student_symbols(spec.K, spec.N)
        params = (*w, *list(J))
        syms = {k: sp.Symbol(f"rt_{k}", nonnegative=True) for k in runtime}
        base = template.replace(sigma=0.0) if "sigma" in syms else template
        loss = population_loss(base, w, J, alpha=syms.get("alpha"))
        if "sigma" in syms:
            loss = loss + syms["sigma"] ** 2 / 2
        grad = [sp.diff(loss, q) for q in params]
        P = len(params)
        hess = sp.zeros(P, P)
        for i in range(P):
            for j in range(i, P):
                hess[i, j] = hess[j, i] = sp.diff(grad[i], params[j])
        module = codegen.generate_module(
            "param_model", params, {"loss": loss, "flow": [-g for g in grad], "jacobian": -hess}, key,
            header=f"model of {template!r} with runtime parameters {', '.join(runtime)}",
            params=tuple(syms[k] for k in runtime),
        )
    return ParametricModel(template, runtime, module.loss, module.flow, module.flow_into, module.jacobian,
                           module.jacobian_into, module.flow_lanes_into, module.jacobian_lanes_into,
                           str(module.__file__))
