"""Scaling-law fits of plateau lengths and escape times, with percentile-bootstrap intervals and AIC.

The plateau lengths come from :mod:`ghostsing.simulate.plateau`.

* log law (escape from a hyperbolic line, alpha = 0):  ``tau = a ln(1/eps) + c``; the theory says
  ``a = 1/lambda_u`` with ``lambda_u`` the transverse eigenvalue of the flow's Jacobian on the line;
* power law (ghost passage as alpha -> 0):  ``tau = A alpha^(-p)``, fitted as ``ln tau = ln A - p ln alpha``;
* log law in alpha:  ``tau = b ln(1/alpha) + d``;
* essential-singularity law:  ``tau = A exp(b/alpha)``, fitted as ``ln tau = ln A + b/alpha``.

Confidence intervals are percentile bootstrap intervals over resampled (x, tau) pairs.  Models are
compared by AIC computed from residuals on the tau scale (``AIC = n ln(RSS/n) + 2k``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "FitResult",
    "fit_log_law",
    "fit_power_law",
    "fit_log_alpha_law",
    "fit_exp_inverse_law",
    "compare_alpha_laws",
]


@dataclass(frozen=True)
class FitResult:
    """A fitted scaling law.

    model : ``"log"`` (tau = a ln(1/x) + c), ``"power"`` (tau = A x^(-p)), ``"log_alpha"`` (same form as
    ``"log"``, used for alpha), ``"exp_inverse"`` (tau = A exp(b/x)).  params / ci : parameter ->
    estimate / (low, high) percentile-bootstrap interval at level ``level``.  rss : residual sum of
    squares on the tau scale; aic : n ln(rss/n) + 2k;
    r2 : 1 - rss / total sum of squares; n : number of points; n_boot : bootstrap resamples.
    """

    model: str
    params: dict[str, float]
    ci: dict[str, tuple[float, float]]
    rss: float
    aic: float
    r2: float
    n: int
    n_boot: int
    level: float
    boot: dict[str, np.ndarray] = field(repr=False, compare=False, default_factory=dict)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The fitted tau at ``x`` (epsilon or alpha)."""
        x = np.asarray(x, dtype=np.float64)
        if self.model in ("log", "log_alpha"):
            return self.params["a"] * np.log(1.0 / x) + self.params["c"]
        if self.model == "exp_inverse":
            return self.params["A"] * np.exp(self.params["b"] / x)
        return self.params["A"] * x ** (-self.params["p"])

    def band(self, x: np.ndarray, level: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise percentile-bootstrap band of the fitted curve at ``x``."""
        x = np.asarray(x, dtype=np.float64)
        lev = self.level if level is None else level
        if not self.boot:
            y = self.predict(x)
            return y, y
        if self.model in ("log", "log_alpha"):
            curves = self.boot["a"][:, None] * np.log(1.0 / x)[None, :] + self.boot["c"][:, None]
        elif self.model == "exp_inverse":
            with np.errstate(over="ignore"):
                curves = self.boot["A"][:, None] * np.exp(self.boot["b"][:, None] / x[None, :])
        else:
            curves = self.boot["A"][:, None] * x[None, :] ** (-self.boot["p"][:, None])
        lo, hi = np.nanquantile(curves, [(1 - lev) / 2, (1 + lev) / 2], axis=0)
        return lo, hi

    def to_dict(self) -> dict:
        return {"model": self.model, "params": self.params, "ci": {k: list(v) for k, v in self.ci.items()},
                "rss": self.rss, "aic": self.aic, "r2": self.r2, "n": self.n, "n_boot": self.n_boot,
                "level": self.level}


def _check_xy(x, y, xname: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"{xname} has {x.size} entries and tau {y.size}; allowed: equal lengths")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size < 3:
        raise ValueError(f"only {x.size} finite ({xname}, tau) pairs; allowed: at least 3")
    if np.any(x <= 0):
        raise ValueError(f"{xname} has entries <= 0 ({x[x <= 0][:3].tolist()}); allowed: > 0")
    if np.unique(x).size < 2:
        raise ValueError(f"{xname} has a single distinct value; allowed: at least 2 distinct values")
    return x, y


def _linfit(X: np.ndarray, Y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope and intercept of ``Y = slope X + intercept``."""
    A = np.stack([X, np.ones_like(X)], axis=1)
    (slope, intercept), *_ = np.linalg.lstsq(A, Y, rcond=None)
    return float(slope), float(intercept)


def _finish(model: str, x, y, est: dict, boots: dict, level: float, n_boot: int) -> FitResult:
    tmp = FitResult(model, est, {}, 0.0, 0.0, 0.0, x.size, n_boot, level)
    res = y - tmp.predict(x)
    rss = float(np.sum(res**2))
    tss = float(np.sum((y - y.mean()) ** 2))
    k = 2
    aic = float(x.size * math.log(max(rss, 1e-300) / x.size) + 2 * k)
    lo_q, hi_q = (1 - level) / 2, (1 + level) / 2
    ci = {name: (float(np.nanquantile(b, lo_q)), float(np.nanquantile(b, hi_q))) for name, b in boots.items()}
    return FitResult(model, est, ci, rss, aic, 1 - rss / tss if tss > 0 else math.nan, x.size, n_boot,
                     level, boots)


def _bootstrap(x, y, fit_one, n_boot: int, rng: np.random.Generator) -> list[tuple[float, float]]:
    out = []
    n = x.size
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        if np.unique(x[idx]).size < 2:
            out.append((math.nan, math.nan))
            continue
        out.append(fit_one(x[idx], y[idx]))
    return out


def _check_boot(n_boot: int, level: float) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 0:
        raise ValueError(f"n_boot={n_boot!r} is not allowed; allowed: an int >= 0")
    if not 0 < level < 1:
        raise ValueError(f"level={level} is not allowed; allowed: 0 < level < 1")


def _rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def fit_log_law(eps, tau, n_boot: int = 1000, level: float = 0.95, seed=0) -> FitResult:
    """Fit ``tau = a ln(1/eps) + c`` by least squares, with percentile-bootstrap intervals for a and c.

    At alpha = 0, near a line of critical points with transverse rate ``lambda_u`` (a start at distance
    eps grows as ``u(t) = eps exp(lambda_u t)``), theory gives ``a = 1/lambda_u``.
    """
    _check_boot(n_boot, level)
    x, y = _check_xy(eps, tau, "eps")
    one = lambda xx, yy: _linfit(np.log(1.0 / xx), yy)
    a, c = one(x, y)
    b = np.array(_bootstrap(x, y, one, n_boot, _rng(seed))).reshape(-1, 2)
    return _finish("log", x, y, {"a": a, "c": c}, {"a": b[:, 0], "c": b[:, 1]}, level, n_boot)


def fit_log_alpha_law(alpha, tau, n_boot: int = 1000, level: float = 0.95, seed=0) -> FitResult:
    """Fit ``tau = a ln(1/alpha) + c`` (the logarithmic alternative for tau(alpha)), bootstrap CIs."""
    r = fit_log_law(alpha, tau, n_boot=n_boot, level=level, seed=seed)
    return FitResult("log_alpha", r.params, r.ci, r.rss, r.aic, r.r2, r.n, r.n_boot, r.level, r.boot)


def fit_power_law(x, tau, n_boot: int = 1000, level: float = 0.95, seed=0) -> FitResult:
    """Fit ``tau = A x^(-p)`` by least squares on ``ln tau = ln A - p ln x`` (needs tau > 0).

    The reported rss / aic are computed on the tau scale so that they compare with :func:`fit_log_law`.
    """
    _check_boot(n_boot, level)
    xx, y = _check_xy(x, tau, "x")
    if np.any(y <= 0):
        raise ValueError("tau has entries <= 0; allowed: tau > 0 for a power law")

    def one(xa, ya):
        slope, intercept = _linfit(np.log(xa), np.log(ya))
        return math.exp(intercept), -slope

    A, p = one(xx, y)
    b = np.array(_bootstrap(xx, y, one, n_boot, _rng(seed))).reshape(-1, 2)
    return _finish("power", xx, y, {"A": A, "p": p}, {"A": b[:, 0], "p": b[:, 1]}, level, n_boot)


def fit_exp_inverse_law(x, tau, n_boot: int = 1000, level: float = 0.95, seed=0) -> FitResult:
    """Fit ``tau = A exp(b/x)`` by least squares on ``ln tau = ln A + b/x`` (needs tau > 0); the
    reported rss / aic are on the tau scale."""
    _check_boot(n_boot, level)
    xx, y = _check_xy(x, tau, "x")
    if np.any(y <= 0):
        raise ValueError("tau has entries <= 0; allowed: tau > 0 for an exponential law")

    def one(xa, ya):
        slope, intercept = _linfit(1.0 / xa, np.log(ya))
        return math.exp(intercept), slope

    A, bb = one(xx, y)
    bs = np.array(_bootstrap(xx, y, one, n_boot, _rng(seed))).reshape(-1, 2)
    return _finish("exp_inverse", xx, y, {"A": A, "b": bb}, {"A": bs[:, 0], "b": bs[:, 1]}, level, n_boot)


def compare_alpha_laws(alpha, tau, n_boot: int = 1000, level: float = 0.95, seed=0) -> dict:
    """Fit ``tau = A alpha^(-p)``, ``tau = a ln(1/alpha) + c`` and ``tau = A exp(b/alpha)``; say which
    fits best (lowest AIC; all three have two parameters).

    Returns ``{"power": FitResult, "log": FitResult, "exp_inverse": FitResult, "best": name,
    "delta_aic": AIC(runner-up) - AIC(best)}`` (``delta_aic > 2``: a clear preference).
    """
    fits = {"power": fit_power_law(alpha, tau, n_boot=n_boot, level=level, seed=seed),
            "log": fit_log_alpha_law(alpha, tau, n_boot=n_boot, level=level, seed=seed),
            "exp_inverse": fit_exp_inverse_law(alpha, tau, n_boot=n_boot, level=level, seed=seed)}
    order = sorted(fits, key=lambda k: fits[k].aic)
    return {**fits, "best": order[0], "delta_aic": float(fits[order[1]].aic - fits[order[0]].aic)}
