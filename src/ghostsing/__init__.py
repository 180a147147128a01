"""ghostsing: singularities of neural-network loss landscapes and how skip connections remove them.

Three layers share one model (:class:`ghostsing.models.ModelSpec`):

* :mod:`ghostsing.analytic` — SymPy derivation of the population loss, gradient flow, singular
  manifolds, stability and the order-parameter ODEs, with generated Numba code;
* :mod:`ghostsing.simulate` — Numba integrators, ensembles, on-line SGD and plateau statistics;
* :mod:`ghostsing.deepcheck` — torch experiments on deep networks (optional extra ``[deep]``).
"""

from ghostsing.models import ModelSpec

__version__ = "0.1.0"
__all__ = ["ModelSpec", "__version__"]
