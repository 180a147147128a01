"""Figures of ghostsing (matplotlib): phase portraits and ghost maps, loss curves, plateau statistics.

* :mod:`ghostsing.plots.style` — Okabe–Ito palette, rc settings, atomic saving of a figure with its data;
* :mod:`ghostsing.plots.portraits` — reduced-flow phase portraits with a speed (ghost) map;
* :mod:`ghostsing.plots.curves` — ensemble loss curves, plateau histograms, scaling laws, SGD vs ODE.

Every plotting function takes arrays (no simulation inside) and returns the Figure, so the data layer
(:mod:`ghostsing.simulate.experiments`) and the drawing stay separate.
"""

from ghostsing.plots.curves import plot_histograms, plot_loss_bands, plot_scaling, plot_sgd_vs_ode
from ghostsing.plots.portraits import PortraitData, plot_portrait, portrait_pair
from ghostsing.plots.style import OKABE_ITO, save_figure, style_context

__all__ = [
    "OKABE_ITO", "PortraitData", "plot_histograms", "plot_loss_bands", "plot_portrait", "plot_scaling",
    "plot_sgd_vs_ode", "portrait_pair", "save_figure", "style_context",
]
