"""Simulation layer: Numba ODE integrators and ensembles (see :mod:`ghostsing.simulate.integrate`)."""

from ghostsing.simulate.integrate import Event as Event
from ghostsing.simulate.integrate import Solution as Solution
from ghostsing.simulate.integrate import integrate as integrate
from ghostsing.simulate.integrate import linear_grid as linear_grid
from ghostsing.simulate.integrate import log_grid as log_grid
from ghostsing.simulate.methods import METHODS as METHODS
from ghostsing.simulate.methods import MethodInfo as MethodInfo
from ghostsing.simulate.options import Execution as Execution
from ghostsing.simulate.options import Saves as Saves
from ghostsing.simulate.options import StepControl as StepControl
from ghostsing.simulate.options import StiffnessSwitch as StiffnessSwitch
from ghostsing.simulate.options import Stop as Stop
from ghostsing.simulate.options import Tolerances as Tolerances
from ghostsing.simulate.sgd import SGDResult as SGDResult
from ghostsing.simulate.sgd import SpecSGDResult as SpecSGDResult
from ghostsing.simulate.sgd import online_sgd as online_sgd
from ghostsing.simulate.sgd import online_sgd_spec as online_sgd_spec
from ghostsing.simulate.status import Status as Status
