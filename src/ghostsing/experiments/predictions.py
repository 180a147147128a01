"""Named predictions with bootstrap confidence intervals and verdicts.

A prediction is a claim about the sign of an effect ``E`` (a statistic over seeds, e.g. the mean final
training loss of plain nets minus that of residual nets).  The effect is estimated on the observed
seeds; its confidence interval is the percentile bootstrap: every group of per-seed values is
resampled with replacement (independently per group, ``n_resamples`` times, ``numpy.random.Generator``
seeded), ``E*`` recomputed on each resample, and ``[q_{(1-c)/2}, q_{(1+c)/2}]`` of the ``E*`` taken.

Verdict rules (``sign`` = the predicted sign of ``E``, +1 or -1):

* ``holds``        — the CI excludes 0 on the predicted side (``sign * low > 0`` for +1, i.e. the whole
  interval lies on the predicted side);
* ``fails``        — the CI excludes 0 on the opposite side;
* ``inconclusive`` — the CI contains 0, or it could not be computed (fewer than 2 seeds in a group, or
  non-finite values such as diverged nets).

With few seeds (2-3) the percentile bootstrap is crude (its interval spans little more than the
observed range); reports state ``n_seeds`` next to every verdict.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
from scipy import stats

from ghostsing._io import to_jsonable

VERDICTS: tuple[str, ...] = ("holds", "fails", "inconclusive")
VERDICT_RULES = (
    "Effect E is the stated statistic over seeds; its 95% CI is a percentile bootstrap over seeds "
    "(groups resampled independently). **holds**: the CI lies entirely on the predicted side of 0; "
    "**fails**: entirely on the other side; **inconclusive**: the CI contains 0 or could not be computed "
    "(fewer than 2 seeds, diverged nets)."
)


@dataclass(frozen=True)
class Prediction:
    """One named, tested claim.

    ``effect`` is the statistic on the observed seeds, ``ci`` its bootstrap interval ``(low, high)``,
    ``sign`` the predicted sign of the effect, ``statistic`` says in words how ``effect`` is computed,
    ``details`` holds extra JSON-serialisable numbers (group means, per-seed values ...).
    """

    name: str
    verdict: str
    effect: float
    ci: tuple[float, float]
    n_seeds: int
    statistic: str
    description: str
    sign: int = 1
    details: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r} is not one of {VERDICTS}")
        if self.sign not in (1, -1):
            raise ValueError(f"sign {self.sign!r} must be +1 or -1")
        object.__setattr__(self, "ci", (float(self.ci[0]), float(self.ci[1])))
        object.__setattr__(self, "effect", float(self.effect))
        object.__setattr__(self, "details", MappingProxyType(dict(self.details)))

    def to_dict(self) -> dict:
        """JSON-ready dict (NaN -> None)."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["ci"] = [_finite_or_none(self.ci[0]), _finite_or_none(self.ci[1])]
        d["effect"] = _finite_or_none(self.effect)
        d["details"] = to_jsonable(dict(self.details))
        return d


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def verdict_from_ci(ci: tuple[float, float], sign: int = 1) -> str:
    """``holds`` / ``fails`` / ``inconclusive`` from a CI and the predicted sign (rules in the module doc)."""
    lo, hi = ci
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "inconclusive"
    if sign * lo > 0 and sign * hi > 0:
        return "holds"
    if sign * lo < 0 and sign * hi < 0:
        return "fails"
    return "inconclusive"


def bootstrap_ci(
    groups: Sequence[Sequence[float]],
    func: Callable[..., float],
    n_resamples: int = 4000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, tuple[float, float]]:
    """Effect ``func(*groups)`` and its percentile-bootstrap CI, groups resampled independently.

    Returns ``(nan, (nan, nan))`` when a group has non-finite values or fewer than 2 entries.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence} must lie in (0, 1)")
    arrs = [np.asarray(g, dtype=np.float64) for g in groups]
    if any(a.ndim != 1 or a.size < 2 or not np.all(np.isfinite(a)) for a in arrs):
        nan = float("nan")
        effect = float(func(*arrs)) if all(a.size and np.all(np.isfinite(a)) for a in arrs) else nan
        return effect, (nan, nan)
    rng = np.random.default_rng(seed)
    effect = float(func(*arrs))
    boot = np.empty(n_resamples)
    for r in range(n_resamples):
        boot[r] = func(*(a[rng.integers(0, a.size, a.size)] for a in arrs))
    boot = boot[np.isfinite(boot)]
    if boot.size < n_resamples // 2:
        return effect, (float("nan"), float("nan"))
    q = (1 - confidence) / 2
    return effect, (float(np.quantile(boot, q)), float(np.quantile(boot, 1 - q)))


def mean_difference(a: np.ndarray, b: np.ndarray) -> float:
    """``mean(a) - mean(b)``."""
    return float(np.mean(a) - np.mean(b))


def difference_prediction(
    name: str,
    a: Sequence[float],
    b: Sequence[float],
    sign: int,
    statistic: str,
    description: str,
    seed: int = 0,
    n_resamples: int = 4000,
    details: Mapping[str, object] | None = None,
) -> Prediction:
    """Prediction on ``E = mean(a) - mean(b)`` (two independent groups of per-seed values)."""
    effect, ci = bootstrap_ci([a, b], mean_difference, n_resamples=n_resamples, seed=seed)
    det = {
        "mean_a": float(np.mean(a)) if len(a) else float("nan"),
        "mean_b": float(np.mean(b)) if len(b) else float("nan"),
        "values_a": [float(v) for v in a],
        "values_b": [float(v) for v in b],
    }
    det.update(details or {})
    return Prediction(
        name, verdict_from_ci(ci, sign), effect, ci, min(len(a), len(b)), statistic, description, sign, det
    )


def spearman_over_levels(levels: Sequence[float], *groups: np.ndarray) -> float:
    """Spearman rank correlation between the level ``levels[j]`` and every value of group ``j``."""
    x = np.concatenate([np.full(len(g), lv, dtype=float) for lv, g in zip(levels, groups, strict=True)])
    y = np.concatenate(groups)
    if np.ptp(y) == 0 or np.ptp(x) == 0:
        return float("nan")
    return float(stats.spearmanr(x, y).statistic)


def spearman_prediction(
    name: str,
    levels: Sequence[float],
    groups: Sequence[Sequence[float]],
    sign: int,
    statistic: str,
    description: str,
    seed: int = 0,
    n_resamples: int = 2000,
) -> Prediction:
    """Prediction on Spearman's rho between a level (e.g. skip rank k) and per-seed values at that level."""
    effect, ci = bootstrap_ci(
        groups, lambda *g: spearman_over_levels(levels, *g), n_resamples=n_resamples, seed=seed
    )
    det = {"levels": [float(v) for v in levels], "means": [float(np.mean(g)) for g in groups]}
    return Prediction(
        name,
        verdict_from_ci(ci, sign),
        effect,
        ci,
        min(len(g) for g in groups),
        statistic,
        description,
        sign,
        det,
    )
