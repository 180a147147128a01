r"""Phase portraits of a reduced flow with a speed ("ghost") map.

A portrait shows, on a plane of two reduced coordinates :math:`(a, b)` (for the overlap singularity
:math:`(z, |u|)`; for elimination :math:`(w_i, |J_i|)`):

* the colour map :math:`\log_{10} |d\theta/dt|` of the *full* parameter speed at the points of the plane
  (slow regions: lines of critical points at alpha = 0, their ghosts at alpha > 0), clipped below at
  ``floor`` so that exact zeros stay drawable;
* stream lines of the reduced velocity :math:`(\dot a, \dot b)` (the full flow projected on the plane);
* sample trajectories of the full flow, projected on the plane (start: dot, end: square);
* the singular manifold (solid line) and its Milnor-attractor segment (thick line, where every
  transverse eigenvalue of the flow's Jacobian is <= 0).

:func:`portrait_pair` draws a plain and a skip portrait side by side with one shared colour scale and
colour bar.  The functions take arrays only (see :class:`PortraitData`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import matplotlib.patheffects as pe
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import Normalize

from ghostsing.plots.style import OKABE_ITO, SPEED_CMAP, style_context


@dataclass(frozen=True)
class PortraitData:
    """Everything one portrait panel needs (arrays on a regular grid).

    x (nx,), y (ny,) : grid axes; vx, vy (ny, nx) : reduced velocity components; speed (ny, nx) :
    full parameter speed |dtheta/dt| (>= 0); singular / milnor : lists of polylines ((k, 2) arrays) in
    plane coordinates; trajectories : list of (k, 2) arrays; title, xlabel, ylabel : text (with units).
    """

    x: np.ndarray
    y: np.ndarray
    vx: np.ndarray
    vy: np.ndarray
    speed: np.ndarray
    title: str = ""
    xlabel: str = "$z$"
    ylabel: str = "$|u|$"
    singular: Sequence[np.ndarray] = field(default_factory=tuple)
    milnor: Sequence[np.ndarray] = field(default_factory=tuple)
    trajectories: Sequence[np.ndarray] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        x = np.asarray(self.x, dtype=np.float64)
        y = np.asarray(self.y, dtype=np.float64)
        if x.ndim != 1 or y.ndim != 1 or x.size < 2 or y.size < 2:
            raise ValueError(f"x {x.shape}, y {y.shape}; allowed: 1-d grid axes with >= 2 points each")
        for name in ("vx", "vy", "speed"):
            a = np.asarray(getattr(self, name), dtype=np.float64)
            if a.shape != (y.size, x.size):
                raise ValueError(f"{name} has shape {a.shape}; allowed: (ny, nx) = {(y.size, x.size)}")
            object.__setattr__(self, name, a)
        if np.any(np.asarray(self.speed) < 0):
            raise ValueError("speed has negative entries; allowed: |dtheta/dt| >= 0")
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)

    def log_speed(self, floor: float) -> np.ndarray:
        """``log10(max(speed, floor))`` (NaN where the speed is not finite)."""
        s = np.where(np.isfinite(self.speed), np.maximum(self.speed, floor), np.nan)
        return np.log10(s)


def plot_portrait(ax, data: PortraitData, norm: Normalize, floor: float = 1e-8, density: float = 1.1,
                  cmap: str = SPEED_CMAP):
    """Draw one portrait panel into ``ax``; returns the colour-map artist (for a colour bar)."""
    mesh = ax.pcolormesh(data.x, data.y, data.log_speed(floor), norm=norm, cmap=cmap, shading="gouraud",
                         rasterized=True)
    vx = np.where(np.isfinite(data.vx), data.vx, 0.0)
    vy = np.where(np.isfinite(data.vy), data.vy, 0.0)
    mag = np.hypot(vx, vy)
    if np.any(mag > 0):
        # stream lines of the direction field: the speed is in the colour map, so lines are unit-speed
        with np.errstate(invalid="ignore", divide="ignore"):
            ux, uy = np.where(mag > 0, vx / mag, 0.0), np.where(mag > 0, vy / mag, 0.0)
        ax.streamplot(data.x, data.y, ux, uy, color=(0.05, 0.05, 0.05, 0.45), linewidth=0.6, density=density,
                      arrowsize=0.7, broken_streamlines=True)
    for k, seg in enumerate(data.singular):
        seg = np.asarray(seg)
        ax.plot(seg[:, 0], seg[:, 1], color=OKABE_ITO["skyblue"], lw=2.5, solid_capstyle="butt",
                label="singular manifold (critical line)" if k == 0 else None, zorder=3, clip_on=False)
    for k, seg in enumerate(data.milnor):
        seg = np.asarray(seg)
        ax.plot(seg[:, 0], seg[:, 1], color=OKABE_ITO["vermillion"], lw=5.0, solid_capstyle="butt",
                label="Milnor-attractor segment" if k == 0 else None, zorder=4, clip_on=False)
    for k, tr in enumerate(data.trajectories):
        tr = np.asarray(tr)
        ax.plot(tr[:, 0], tr[:, 1], color="white", lw=1.4, zorder=5,
                label="trajectories (full flow)" if k == 0 else None,
                path_effects=[pe.Stroke(linewidth=2.6, foreground="black"), pe.Normal()])
        ax.plot(tr[0, 0], tr[0, 1], "o", color="white", ms=4.5, mec="black", mew=0.8, zorder=6,
                label="start" if k == 0 else None)
        ax.plot(tr[-1, 0], tr[-1, 1], "s", color="black", ms=4.0, mec="white", mew=0.8, zorder=6,
                label="end of run" if k == 0 else None)
    ax.set_xlim(data.x[0], data.x[-1])
    ax.set_ylim(data.y[0], data.y[-1])
    ax.set_xlabel(data.xlabel)
    ax.set_ylabel(data.ylabel)
    ax.set_title(data.title)
    return mesh


def shared_norm(panels: Sequence[PortraitData], floor: float = 1e-8) -> Normalize:
    """One colour scale for all panels: from the smallest to the largest finite log10 speed."""
    vals = np.concatenate([p.log_speed(floor).ravel() for p in panels])
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        raise ValueError("no finite speed in any panel; allowed: at least one finite |dtheta/dt|")
    return Normalize(vmin=float(vals.min()), vmax=float(vals.max()))


def portrait_pair(left: PortraitData, right: PortraitData, floor: float = 1e-8, suptitle: str = "",
                  figsize: tuple[float, float] = (10.0, 4.2), density: float = 1.1):
    """Two portraits side by side (e.g. plain vs skip) with a shared colour scale and one colour bar.

    Returns the Figure; its axes are ``[left, right, colourbar]``.
    """
    with style_context():
        fig, axes = plt.subplots(1, 2, figsize=figsize, sharey=True, layout="constrained")
        norm = shared_norm([left, right], floor)
        mesh = None
        for ax, d in zip(axes, (left, right), strict=True):
            mesh = plot_portrait(ax, d, norm, floor=floor, density=density)
        axes[1].set_ylabel("")
        axes[1].tick_params(labelleft=True)
        cb = fig.colorbar(mesh, ax=list(axes), shrink=0.95, pad=0.02)
        cb.set_label(r"$\log_{10}\,|d\theta/dt|$  (speed, 1/time)")
        handles, labels = [], []
        for ax in axes:
            for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        if handles:
            fig.legend(handles, labels, loc="outside lower center", ncol=len(handles), frameon=False)
        if suptitle:
            fig.suptitle(suptitle)
    return fig
