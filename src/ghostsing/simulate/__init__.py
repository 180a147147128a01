"""Simulation layer: Numba ODE integrators and ensembles (see :mod:`ghostsing.simulate.integrate`)."""

from ghostsing.simulate.integrate import Event as Event
from ghostsing.simulate.integrate import Solution as Solution
from ghostsing.simulate.integrate import integrate as integrate
from ghostsing.simulate.integrate import linear_grid as linear_grid
from ghostsing.simulate.integrate import log_grid as log_grid
from ghostsing.simulate.sgd import SGDResult as SGDResult
from ghostsing.simulate.sgd import SpecSGDResult as SpecSGDResult
from ghostsing.simulate.sgd import online_sgd as online_sgd
from ghostsing.simulate.sgd import online_sgd_spec as online_sgd_spec
from ghostsing.simulate.status import Status as Status
