"""Shared figure style: the one colour palette (Okabe–Ito), rc settings, and saving a figure.

Colours: :data:`OKABE_ITO` (name -> hex), :data:`CYCLE` (the ordered cycle for curves without a name)
and :func:`colour_for`, which gives a named arm (``"plain"``, ``"residual"``, ``"skip"``, ``"global"``,
...) the same colour in every figure of the package, simulations and deep checks alike; an unknown
label gets a fixed colour of the cycle chosen from the label's text (stable across runs and figures).

:func:`save_figure` writes ``<stem>.png`` (and ``<stem>.pdf`` on request) atomically with
:mod:`ghostsing._io`; the data behind a figure goes into the run's report (``arrays.npz`` and
``report.json``, :mod:`ghostsing.experiments.report`), not beside the figure.
"""

from __future__ import annotations

import contextlib
import io
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matplotlib as mpl

from ghostsing._io import write_bytes_atomic

__all__ = ["OKABE_ITO", "CYCLE", "ARM_COLOURS", "SPEED_CMAP", "RC", "colour_for", "style_context",
           "save_figure"]

#: Okabe & Ito (2008) colour-blind-safe palette.
OKABE_ITO: dict[str, str] = {
    "black": "#000000", "orange": "#E69F00", "skyblue": "#56B4E9", "green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7",
}
#: Cycle used for curves (yellow left out: too light on white).
CYCLE: tuple[str, ...] = tuple(OKABE_ITO[k] for k in ("blue", "vermillion", "green", "orange", "purple",
                                                      "skyblue", "black"))
#: Fixed colours of the arms and end states that recur across figures (keys lower case).
ARM_COLOURS: dict[str, str] = {
    "plain": OKABE_ITO["blue"], "residual": OKABE_ITO["vermillion"], "skip": OKABE_ITO["vermillion"],
    "identity": OKABE_ITO["vermillion"], "hyper-residual": OKABE_ITO["green"],
    "degenerate": OKABE_ITO["purple"], "random": OKABE_ITO["orange"], "theory": OKABE_ITO["black"],
    "global": OKABE_ITO["green"], "trap": OKABE_ITO["vermillion"], "line": OKABE_ITO["blue"],
    "other": OKABE_ITO["black"],
}
#: Sequential colour map for speed maps (perceptually uniform, colour-blind safe).
SPEED_CMAP = "cividis"


def colour_for(label: str) -> str:
    """The colour of ``label`` in every figure: :data:`ARM_COLOURS` for the known arms (case and
    surrounding spaces ignored), else a fixed entry of :data:`CYCLE` chosen by a CRC-32 of the label."""
    key = str(label).strip().lower()
    if key in ARM_COLOURS:
        return ARM_COLOURS[key]
    return CYCLE[zlib.crc32(key.encode()) % len(CYCLE)]

RC: dict[str, Any] = {
    "figure.dpi": 100, "savefig.dpi": 130, "font.size": 10, "axes.titlesize": 10, "axes.labelsize": 10,
    "legend.fontsize": 8.5, "xtick.labelsize": 9, "ytick.labelsize": 9, "lines.linewidth": 1.6,
    "axes.prop_cycle": mpl.cycler(color=list(CYCLE)), "figure.constrained_layout.use": True,
    "axes.grid": False, "image.cmap": SPEED_CMAP,
}


@contextlib.contextmanager
def style_context() -> Iterator[None]:
    """``with style_context(): ...`` draws with the ghostsing rc settings (restored afterwards)."""
    with mpl.rc_context(RC):
        yield


def save_figure(fig: Any, out_dir: Path | str, stem: str, *, pdf: bool = False, dpi: float | None = None,
                close: bool = True) -> tuple[str, ...]:
    """Save ``fig`` as ``<out_dir>/<stem>.png`` (+ ``.pdf``) atomically; close it unless ``close=False``.

    ``dpi`` overrides the resolution (default: the style's ``savefig.dpi`` = 130).  Returns the file
    names written (relative to ``out_dir``: what :class:`~ghostsing.experiments.base.ExperimentOutput`
    lists as ``figures``).
    """
    if not isinstance(stem, str) or not stem or "/" in stem:
        raise ValueError(f"stem={stem!r} is not allowed; allowed: a non-empty file name without '/'")
    out = Path(out_dir)
    names = []
    for ext in ("png", "pdf") if pdf else ("png",):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=dpi if dpi is not None else RC["savefig.dpi"])
        write_bytes_atomic(out / f"{stem}.{ext}", buf.getvalue())
        names.append(f"{stem}.{ext}")
    if close:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return tuple(names)
