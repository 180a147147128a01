r"""``plateau-cell``: one cell of the plateau phase diagram, the passage of on-line SGD past the overlap line.

One run of on-line SGD (:func:`ghostsing.simulate.sgd.online_sgd_spec`, ModelSpec convention, learning
rate ``lr``, skip strength ``alpha``) of the two-unit erf student, started on the former overlap line of
a teacher embedded in ``N`` input dimensions (the teacher, its skip directions and its best one-unit fit
live in the first coordinates; the other inputs carry only noise).  The sweep ``sweeps/plateau.toml``
runs it over ``(alpha, lr, N) x seed`` and draws the phase diagram with the passage laws of
``docs/ghosts.md`` overlaid.

Teachers:

* ``reference`` (generic, first-order drift): ``v = (10, 5)``, ``B = (0.4, 4)``, skips ``(1, 0.5)``;
  start ``z0 = -2`` on the passable half of the Milnor segment; gradient flow crosses ``z_b = -1`` at
  ``alpha tau -> C = (z_b - z0)/v1 = 141.6`` and SGD adds the noise drift ``lr q(z)``;
* ``symmetric`` (degenerate, ``v1 = 0``): ``v = (1, 1)``, ``B = I``, identity skips; start ``z0 = 2``
  with ``u . J* > 0``; gradient flow escapes at ``tau alpha^2 = c^-1 ln(kappa/(alpha z0)) + T0``.

The start is the best one-unit fit ``(w*, J*)`` (found once per process by minimising the one-unit loss)
split at ``z0`` with ``|u0| = eps`` in a seeded random direction.  SGD runs in chunks (the seed of chunk
``k`` is ``seed * 1_000_003 + k``) until the loss, evaluated with the generated loss of
:func:`ghostsing.analytic.parametric.compile_parametric` (alpha a runtime argument: one compilation for the
whole sweep), falls below half the plateau loss, or until ``t_max``.

Summary (what a sweep stores): ``tau_escape`` (first save with loss below ``L*/2``; NaN if none by
``t_max``), ``tau_line`` (first crossing of ``z = z_b``, reference teacher; NaN otherwise),
``escaped``, ``plateau_loss`` (``L*``), ``final_loss``, ``t_end``, ``steps``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ghostsing.experiments.base import Experiment, ExperimentOutput
from ghostsing.validation import check_choice, check_float, check_int

__all__ = ["PlateauCellConfig", "run_plateau_cell", "teacher_spec", "one_unit_fit", "EXPERIMENTS", "TEACHERS",
           "REFERENCE_C", "SYMMETRIC_LAW"]

TEACHERS = ("reference", "symmetric")
#: the start and boundary on the line: ``(z0, z_b)`` (z_b None: escape measured by the loss only)
_LINE = {"reference": (-2.0, -1.0), "symmetric": (2.0, None)}
#: ``C = (z_b - z0)/v1`` of the reference teacher (docs/ghosts.md, v1 = 0.0070621): alpha tau -> C
REFERENCE_C = 141.600484
#: the degenerate law of the symmetric teacher: tau alpha^2 = ln(kappa / (alpha z0)) / c + T0 (the
#: scaled reduction's ``scaled_branch``: growth rate, fold and ``T0 = lim T(alpha z0) - c^-1 ln(...)``;
#: tests pin these to it)
SYMMETRIC_LAW = {"c": 0.0374063, "kappa": 0.0160895, "T0": -2.1606, "z0": 2.0}


@dataclass(frozen=True)
class PlateauCellConfig:
    """One SGD run from the former overlap line (module docstring)."""

    teacher: Literal["reference", "symmetric"] = "reference"
    alpha: float = 0.01
    lr: float = 0.01
    N: int = 1
    seed: int = 0
    batch_size: int = 1
    eps: float = 1e-3
    t_max: float = 2e5
    chunk: float = 2000.0
    saves_per_chunk: int = 40

    def __post_init__(self) -> None:
        check_choice("teacher", self.teacher, TEACHERS)
        check_float("alpha", self.alpha, 0.0)
        check_float("lr", self.lr, 0.0, 1.0, low_open=True)
        check_int("N", self.N, 2 if self.teacher == "symmetric" else 1)
        check_int("seed", self.seed, 0)
        check_int("batch_size", self.batch_size, 1)
        check_float("eps", self.eps, 0.0, low_open=True)
        check_float("t_max", self.t_max, 0.0, low_open=True)
        check_float("chunk", self.chunk, 0.0, low_open=True)
        check_int("saves_per_chunk", self.saves_per_chunk, 2)


def teacher_spec(teacher: str, N: int, K: int = 2, alpha: float = 0.0):
    """The ModelSpec of ``teacher`` embedded in ``N`` inputs (``K`` student units; skips ``s_i`` of the
    first ``K`` units)."""
    from ghostsing.models import ModelSpec

    if teacher == "reference":
        v, B, S = (10.0, 5.0), [[0.4], [4.0]], [[1.0], [0.5]]
    elif teacher == "symmetric":
        v, B, S = (1.0, 1.0), [[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]
    else:
        raise ValueError(f"teacher={teacher!r} is not known; allowed: {', '.join(TEACHERS)}")
    Bn = np.zeros((2, N))
    Bn[:, : len(B[0])] = B
    Sn = np.zeros((K, N))
    Sn[:, : len(S[0])] = np.asarray(S)[:K]
    return ModelSpec(K=K, M=2, N=N, activation="erf", alpha=alpha, v=v, B=Bn, skip_directions=Sn)


@functools.lru_cache(maxsize=8)
def one_unit_fit(teacher: str) -> tuple[float, tuple[float, ...], float]:
    """``(w*, J*, L*)``: the best one-unit fit of ``teacher`` in its own input dimension and its loss
    (the plateau loss of the two-unit student on the overlap line); computed once per process."""
    from scipy.optimize import minimize

    from ghostsing.analytic.parametric import compile_parametric

    n0 = 1 if teacher == "reference" else 2
    m = compile_parametric(teacher_spec(teacher, n0, K=1))
    p = np.zeros(1)
    start = np.array([9.5, 1.8]) if teacher == "reference" else np.array([2.0, 0.4, 0.4])
    res = minimize(lambda th: m.loss(th, p), start, jac=lambda th: -m.flow(th, p), method="BFGS",
                   options={"gtol": 1e-12, "maxiter": 1000})
    return float(res.x[0]), tuple(float(x) for x in res.x[1:]), float(res.fun)


def line_start(teacher: str, N: int, eps: float, rng: np.random.Generator) -> np.ndarray:
    """``theta0`` on the former overlap line at ``z0`` with ``|J_1 - J_2| = eps`` in a random direction
    (for the symmetric teacher with ``u . J* > 0``, the branch that escapes)."""
    w, J, _ = one_unit_fit(teacher)
    z0 = _LINE[teacher][0]
    Jbar = np.zeros(N)
    Jbar[: len(J)] = J
    d = rng.normal(size=N)
    if teacher == "symmetric" and d @ Jbar < 0:
        d = -d
    u = eps * d / np.linalg.norm(d)
    wi, wj = w * (1 + z0) / 2, w * (1 - z0) / 2
    return np.concatenate([[wi, wj], Jbar + (wj / w) * u, Jbar - (wi / w) * u])


@functools.lru_cache(maxsize=16)
def _loss_model(teacher: str, N: int):
    from ghostsing.analytic.parametric import compile_parametric

    return compile_parametric(teacher_spec(teacher, N))


def _first_crossing(t: np.ndarray, x: np.ndarray, level: float, below: bool) -> float:
    hit = np.flatnonzero(x < level) if below else np.flatnonzero(x > level)
    if not hit.size:
        return math.nan
    k = hit[0]
    if k == 0:
        return float(t[0])
    x1, x2 = x[k - 1], x[k]
    return float(t[k - 1] + (level - x1) / (x2 - x1) * (t[k] - t[k - 1]))


def run_plateau_cell(config: PlateauCellConfig, out_dir: Path, *, resume: bool = False,
                     progress: bool = True) -> ExperimentOutput:
    """Run one cell (module docstring); nothing is written to ``out_dir``."""
    from ghostsing.simulate.sgd import online_sgd_spec

    c = config
    spec = teacher_spec(c.teacher, c.N, alpha=c.alpha)
    model = _loss_model(c.teacher, c.N)
    p = model.values(alpha=c.alpha)
    _, _, L_star = one_unit_fit(c.teacher)
    z0, z_b = _LINE[c.teacher]
    theta = line_start(c.teacher, c.N, c.eps, np.random.default_rng(c.seed))
    t0, steps = 0.0, 0
    tau_line = tau_escape = math.nan
    loss = float(model.loss(theta, p))
    k = 0
    while t0 < c.t_max and not math.isfinite(tau_escape):
        T = min(c.chunk, c.t_max - t0)
        times = np.linspace(0.0, T, c.saves_per_chunk + 1)[1:]
        res = online_sgd_spec(spec, theta, times, lr=c.lr, seeds=(c.seed * 1_000_003 + k,),
                              batch_size=c.batch_size)
        th = res.theta[0]
        if res.status[0] != 0 or not np.all(np.isfinite(th)):
            raise FloatingPointError(f"SGD diverged at t = {t0 + T:g} (lr = {c.lr:g})")
        losses = np.array([model.loss(np.ascontiguousarray(x), p) for x in th])
        ts = t0 + res.t
        tt = np.concatenate([[t0], ts])
        if z_b is not None and not math.isfinite(tau_line):
            z = np.concatenate([[(theta[0] - theta[1]) / (theta[0] + theta[1])],
                                (th[:, 0] - th[:, 1]) / (th[:, 0] + th[:, 1])])
            tau_line = _first_crossing(tt, z, z_b, below=False)
        tau_escape = _first_crossing(tt, np.concatenate([[loss], losses]), L_star / 2, below=True)
        theta, loss = np.ascontiguousarray(th[-1]), float(losses[-1])
        t0 += float(res.t[-1])
        steps += int(res.steps[-1])
        k += 1
    summary = {"tau_escape": tau_escape, "tau_line": tau_line, "escaped": math.isfinite(tau_escape),
               "plateau_loss": L_star, "final_loss": loss, "t_end": t0, "steps": steps, "z0": z0}
    return ExperimentOutput(summary=summary)


_PRESETS = {
    "default": PlateauCellConfig(),
    "small": PlateauCellConfig(alpha=0.05, lr=0.03, t_max=4000.0, chunk=1000.0),
}

EXPERIMENTS: tuple[Experiment, ...] = (
    Experiment("plateau-cell", "One SGD passage past the former overlap line (a cell of the plateau sweep)",
               "simulation", PlateauCellConfig, run_plateau_cell, _PRESETS),
)
