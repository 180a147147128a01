"""Figures of ghostsing (matplotlib): phase portraits and ghost maps, loss curves, plateau statistics.

* :mod:`ghostsing.plots.style` — the one Okabe–Ito palette (:func:`colour_for` gives an arm the same
  colour in every figure), rc settings, atomic saving of a figure;
* :mod:`ghostsing.plots.portraits` — reduced-flow phase portraits with a speed (ghost) map;
* :mod:`ghostsing.plots.curves` — ensemble loss curves, plateau histograms, scaling laws, SGD vs ODE;
* :mod:`ghostsing.plots.ghosts` — passage-law collapse, traps, basins, the degenerate passage, SGD noise.

Every plotting function takes arrays (no simulation inside) and returns the Figure; the studies of
:mod:`ghostsing.experiments` compute, call these and save.  Nothing in :mod:`ghostsing.simulate` or
:mod:`ghostsing.deepcheck` imports this package.
"""

from ghostsing.plots.curves import plot_histograms, plot_loss_bands, plot_scaling, plot_sgd_vs_ode
from ghostsing.plots.portraits import PortraitData, plot_portrait, portrait_pair
from ghostsing.plots.style import CYCLE, OKABE_ITO, colour_for, save_figure, style_context

__all__ = [
    "CYCLE", "OKABE_ITO", "PortraitData", "colour_for", "plot_histograms", "plot_loss_bands", "plot_portrait",
    "plot_scaling", "plot_sgd_vs_ode", "portrait_pair", "save_figure", "style_context",
]
