"""Fixtures of the integrator tests: the generated two-unit erf model with skips, compiled once per
session (the hand-written flows with known solutions are in sim_flows.py)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def erf_model():
    """derive(ModelSpec(K=2, M=2, N=2, erf, alpha=0.5)).compile() and its spec."""
    from ghostsing import ModelSpec
    from ghostsing.analytic import derive

    spec = ModelSpec(K=2, M=2, N=2, activation="erf", alpha=0.5)
    return spec, derive(spec).compile()


@pytest.fixture(scope="session")
def erf_starts(erf_model):
    """Four reproducible initial states of the erf model (seeded)."""
    spec, _ = erf_model
    rng = np.random.default_rng(20261126)
    return rng.normal(scale=0.8, size=(4, spec.n_params))
