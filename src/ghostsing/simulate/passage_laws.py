r"""Candidate laws for a passage time ``tau(alpha)``, fitted and compared under one criterion.

Every law is fitted to ``ln tau`` by least squares (``scipy.optimize.least_squares``), so all laws share
one likelihood: Gaussian residuals of ``ln tau`` with a common variance.  The criterion is Akaike's

.. math::

    \mathrm{AIC} = n \ln(\mathrm{RSS}/n) + 2k, \qquad
    \mathrm{RSS} = \sum_r (\ln\tau_r - \ln\hat\tau(\alpha_r))^2,

with ``k`` the number of *free* parameters (a derived law with computed constants has ``k = 0``).
Uncertainties come from independent runs: the bootstrap resamples the runs *within* each ``alpha``
(stratified), so the ``alpha`` grid is kept and the interval measures the scatter between runs, not
the choice of grid.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize


@dataclass(frozen=True)
class Law:
    """A candidate law ``tau = fn(alpha, *params)``.

    name : short name; formula : the law in words/symbols; fn : vectorised in ``alpha``;
    p0 : starting values of the free parameters (empty for a law with no free parameter).
    """

    name: str
    formula: str
    fn: Callable[..., np.ndarray]
    p0: tuple[float, ...] = ()

    @property
    def k(self) -> int:
        """Number of free parameters."""
        return len(self.p0)


@dataclass(frozen=True)
class LawFit:
    """A law fitted to ``ln tau``: params, their stratified-bootstrap intervals, RSS, AIC."""

    law: Law
    params: tuple[float, ...]
    ci: tuple[tuple[float, float], ...]
    rss: float
    aic: float
    n: int
    max_rel_error: float
    boot: np.ndarray = field(repr=False, compare=False, default_factory=lambda: np.empty((0, 0)))

    def predict(self, alpha: np.ndarray) -> np.ndarray:
        return self.law.fn(np.asarray(alpha, dtype=np.float64), *self.params)

    def to_dict(self) -> dict:
        return {"name": self.law.name, "formula": self.law.formula, "k": self.law.k,
                "params": list(self.params), "ci": [list(c) for c in self.ci], "rss_ln_tau": self.rss,
                "aic": self.aic, "n": self.n, "max_rel_error": self.max_rel_error}


def _check(alpha, tau) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(alpha, dtype=np.float64).ravel()
    t = np.asarray(tau, dtype=np.float64).ravel()
    if a.shape != t.shape:
        raise ValueError(f"alpha has {a.size} entries and tau {t.size}; allowed: equal lengths")
    keep = np.isfinite(a) & np.isfinite(t)
    if np.any(t[keep] <= 0) or np.any(a[keep] <= 0):
        raise ValueError("alpha and tau must be > 0 where finite; allowed: positive passage times")
    a, t = a[keep], t[keep]
    if np.unique(a).size < 3:
        raise ValueError(f"{np.unique(a).size} distinct alpha values; allowed: at least 3")
    return a, t


def _fit_one(law: Law, a: np.ndarray, lt: np.ndarray) -> tuple[tuple[float, ...], float]:
    def res(p):
        with np.errstate(all="ignore"):
            y = np.log(np.maximum(law.fn(a, *p), 1e-300))
        return y - lt

    if law.k == 0:
        r = res(())
        return (), float(r @ r)
    sol = optimize.least_squares(res, np.asarray(law.p0, dtype=np.float64), method="lm", max_nfev=20000)
    return tuple(float(x) for x in sol.x), float(sol.fun @ sol.fun)


def fit_law(law: Law, alpha, tau, n_boot: int = 500, level: float = 0.95, seed: int = 0) -> LawFit:
    """Fit ``law`` to ``ln tau`` with a bootstrap over runs within each alpha (module docstring)."""
    if not 0 < level < 1:
        raise ValueError(f"level={level}; allowed: 0 < level < 1")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 0:
        raise ValueError(f"n_boot={n_boot!r}; allowed: an int >= 0")
    a, t = _check(alpha, tau)
    lt = np.log(t)
    params, rss = _fit_one(law, a, lt)
    n = a.size
    aic = n * math.log(max(rss, 1e-300) / n) + 2 * law.k
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(a == v) for v in np.unique(a)]
    boots = []
    if law.k > 0:
        for _ in range(n_boot):
            idx = np.concatenate([rng.choice(g, g.size) for g in groups])
            boots.append(_fit_one(law, a[idx], lt[idx])[0])
    boot = np.array(boots, dtype=np.float64).reshape(len(boots), law.k)
    lo, hi = (1 - level) / 2, (1 + level) / 2
    ci = tuple((float(np.quantile(boot[:, j], lo)), float(np.quantile(boot[:, j], hi)))
               for j in range(law.k)) if boot.size else ()
    pred = law.fn(a, *params)
    return LawFit(law, params, ci, rss, float(aic), n, float(np.max(np.abs(t / pred - 1))), boot)


def compare_laws(laws: Sequence[Law], alpha, tau, n_boot: int = 500, level: float = 0.95,
                 seed: int = 0) -> dict:
    """Fit every law (:func:`fit_law`) and rank them by AIC.

    Returns ``{"fits": {name: LawFit}, "order": [names by AIC], "delta_aic": {name: AIC - min AIC}}``.
    """
    fits = {law.name: fit_law(law, alpha, tau, n_boot, level, seed) for law in laws}
    best = min(f.aic for f in fits.values())
    order = sorted(fits, key=lambda k: fits[k].aic)
    return {"fits": fits, "order": order, "delta_aic": {k: fits[k].aic - best for k in fits}}


def power_law() -> Law:
    """``tau = A alpha^(-p)`` (two free parameters)."""
    return Law("power", "tau = A alpha^-p", lambda a, A, p: A * a ** (-p), (1.0, 1.0))


def log_law() -> Law:
    """``tau = a ln(1/alpha) + c`` (two free parameters)."""
    return Law("log", "tau = a ln(1/alpha) + c", lambda a, s, c: s * np.log(1.0 / a) + c, (1.0, 1.0))


def inverse_law(C: float) -> Law:
    """The derived first-order ghost law ``tau = C / alpha`` with ``C = (z_b - z0) / v1`` computed."""
    return Law("derived C/alpha", f"tau = C/alpha, C = {C:.6g} (computed)", lambda a: C / a)


def inverse_law_corrected(C: float) -> Law:
    """``tau = C / alpha + a ln(1/alpha) + b``: the derived law plus the escape from the tube
    (``ln(radius / alpha)`` over the transverse rate) and an O(1) offset; ``C`` computed, ``a, b`` free."""
    return Law("derived C/alpha + log", f"tau = {C:.6g}/alpha + a ln(1/alpha) + b",
               lambda al, s, b: C / al + s * np.log(1.0 / al) + b, (1.0, 1.0))
