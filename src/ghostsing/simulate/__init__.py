"""Simulation layer: Numba ODE integrators and ensembles (see :mod:`ghostsing.simulate.integrate`)."""

from ghostsing.simulate.integrate import Event as Event
from ghostsing.simulate.integrate import Solution as Solution
from ghostsing.simulate.integrate import integrate as integrate
from ghostsing.simulate.integrate import linear_grid as linear_grid
from ghostsing.simulate.integrate import log_grid as log_grid
from ghostsing.simulate.status import Status as Status
