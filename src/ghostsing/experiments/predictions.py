"""Named predictions: an effect with a confidence interval, a test with its p-value, and a verdict.

One idea: a named prediction (effect, confidence interval, test, p-value and verdict) and the tests and
intervals it is built from.

A prediction is a claim about the sign of an effect ``E`` (a statistic over seeds, e.g. the mean final
training loss of plain nets minus that of residual nets).  Every prediction built here carries

* ``effect`` -- ``E`` on the observed seeds, and ``ci`` -- its confidence interval (default 95 %: the
  Welch t interval for a difference of means, the one-sample t interval for one group, a percentile
  bootstrap over seeds for Spearman's rho; ``ci_method="bootstrap"`` for the differences too);
* ``test`` and ``p_value`` -- a two-sided test of ``E = 0``:

  - two groups: **exact permutation** test on the difference of means when the number of relabelings
    ``C(n_a + n_b, n_a)`` is at most ``max_exact`` (every relabeling enumerated), else **Monte Carlo
    permutation** (``n_resamples`` random relabelings, ``p = (count + 1) / (n_resamples + 1)``), or
    **Welch t** (``test="welch"``);
  - one group (paired differences, a value against a null): **exact sign-flip permutation** (all ``2^n``
    sign patterns, Monte Carlo beyond ``max_exact``) or **one-sample t** (``test="t"``);
  - levels (a dose-response, e.g. skip rank ``k`` against loss): **Spearman permutation** (values
    permuted across levels; exact when ``n!`` is at most ``max_exact``).

  Two-sided p-values are twice the smaller one-sided p-value, capped at 1 (scipy's
  ``permutation_test`` convention, which the tests compare against);
* ``verdict`` (``level`` = 0.05 unless stated):

  - **holds** -- ``p < level`` and the CI excludes 0 on the predicted side;
  - **fails** -- ``p < level`` and the CI excludes 0 on the opposite side;
  - **underpowered** -- the design cannot reach the level: the smallest p-value the test can return with
    these group sizes (``min_p``, e.g. ``2 / C(6, 3) = 0.1`` for 3 against 3 seeds, ``2/2^4 = 0.125`` for
    4 paired seeds) is not below ``level``; no verdict is given, whatever the data;
  - **inconclusive** -- otherwise (``p >= level``, a CI that contains 0, fewer than 2 seeds, non-finite
    values such as diverged nets, or a measure that is constant over every seed of every arm); ``reason``
    says which.

Each verdict is nominal: decided at its own level, with no correction for the other predictions tested
with it; :mod:`ghostsing.experiments.multiple_testing` gives Holm's family-wise adjustment, which the
reports print beside it (``p_holm``).

A measure that does not vary at all (every seed of every arm the same value) cannot test anything: it is
usually constant by construction (e.g. a count that an architecture forces to 0), and such a
prediction is refused (``inconclusive``, with the reason) rather than tested.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
from scipy import stats

from ghostsing._io import to_jsonable

__all__ = [
    "VERDICTS", "VERDICT_RULES", "LEVEL", "Prediction", "decide", "verdict_from_ci", "bootstrap_ci",
    "mean_difference", "permutation_test_two", "sign_flip_test", "welch_test", "one_sample_t",
    "spearman_over_levels", "spearman_permutation_test", "difference_prediction", "one_group_prediction",
    "spearman_prediction", "contrast_prediction",
]

VERDICTS: tuple[str, ...] = ("holds", "fails", "inconclusive", "underpowered")
LEVEL = 0.05
#: Largest number of relabelings (or sign patterns, or permutations) enumerated exactly.
MAX_EXACT = 200_000
VERDICT_RULES = (
    "Effect E is the stated statistic over seeds, with a 95% CI (Welch or one-sample t interval; "
    "percentile bootstrap for Spearman's rho) and a two-sided test of E = 0 (exact permutation test on "
    "the difference of means when the relabelings can be enumerated, else Monte Carlo permutation; "
    "sign-flip permutation for one group; Welch t or one-sample t where stated). **holds**: p < level "
    "(0.05 unless stated) and the CI excludes 0 on the predicted side; **fails**: p < level and the CI "
    "excludes 0 on the other side; **underpowered**: the smallest p-value the test can reach with these "
    "seed counts is not below the level (e.g. 3 vs 3 seeds: 0.1), so no verdict is given; "
    "**inconclusive**: otherwise (not significant, fewer than 2 seeds, diverged nets, or a measure "
    "constant over every seed of every arm, which cannot test anything). The verdicts are nominal: each "
    "test at its own level, uncorrected for the others. **p (Holm)**: Holm's step-down adjusted p-value "
    "over the predictions of the report that have a p-value; a holds or fails remains at the family-wise "
    "level 0.05 when p (Holm) < 0.05 as well."
)


@dataclass(frozen=True)
class Prediction:
    """One named, tested claim.

    ``effect`` is the statistic on the observed seeds, ``ci`` its interval ``(low, high)``, ``sign`` the
    predicted sign of the effect, ``statistic`` says in words how ``effect`` is computed, ``details``
    holds extra JSON-serialisable numbers (group means, per-seed values, ``min_p`` ...), ``test`` names the
    test behind ``p_value`` (two-sided), ``level`` is the significance level of the verdict and
    ``reason`` says why a prediction is not ``holds``/``fails`` when that is not just ``p >= level``.
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
    test: str = ""
    p_value: float = float("nan")
    level: float = LEVEL
    reason: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r} is not one of {VERDICTS}")
        if self.sign not in (1, -1):
            raise ValueError(f"sign {self.sign!r} must be +1 or -1")
        if not 0 < self.level < 1:
            raise ValueError(f"level={self.level!r} is not allowed; allowed: a float in (0, 1)")
        object.__setattr__(self, "ci", (float(self.ci[0]), float(self.ci[1])))
        object.__setattr__(self, "effect", float(self.effect))
        object.__setattr__(self, "p_value", float(self.p_value))
        object.__setattr__(self, "details", MappingProxyType(dict(self.details)))

    def to_dict(self) -> dict:
        """JSON-ready dict (NaN -> None)."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["ci"] = [_finite_or_none(self.ci[0]), _finite_or_none(self.ci[1])]
        d["effect"] = _finite_or_none(self.effect)
        d["p_value"] = _finite_or_none(self.p_value)
        d["details"] = to_jsonable(dict(self.details))
        return d


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


# ---------------------------------------------------------------------------------------------------------
# verdicts


def verdict_from_ci(ci: tuple[float, float], sign: int = 1) -> str:
    """The CI half of the rule alone: ``holds`` / ``fails`` when the CI lies on one side of 0, else
    ``inconclusive``.  A prediction's verdict also needs its test: use :func:`decide`."""
    lo, hi = ci
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "inconclusive"
    if sign * lo > 0 and sign * hi > 0:
        return "holds"
    if sign * lo < 0 and sign * hi < 0:
        return "fails"
    return "inconclusive"


def decide(effect: float, ci: tuple[float, float], p_value: float, sign: int = 1, level: float = LEVEL,
           min_p: float = 0.0) -> tuple[str, str]:
    """``(verdict, reason)`` by the rules of the module docstring (``min_p``: the smallest p-value the
    design can return)."""
    if math.isfinite(min_p) and min_p >= level:
        return "underpowered", (f"the smallest p-value this design can reach is {min_p:.3g} >= level "
                                f"{level:g}; more seeds are needed for a verdict")
    if not (math.isfinite(effect) and math.isfinite(p_value)):
        return "inconclusive", "the effect or the test could not be computed (too few or non-finite values)"
    side = verdict_from_ci(ci, sign)
    if p_value >= level:
        return "inconclusive", f"p = {p_value:.3g} >= level {level:g}"
    if side == "inconclusive":
        return "inconclusive", f"p = {p_value:.3g} < {level:g} but the CI contains 0"
    return side, ""


# ---------------------------------------------------------------------------------------------------------
# tests


def _two_sided(null: np.ndarray, observed: float, exact: bool) -> float:
    """scipy's convention: ``2 min(P(T <= t), P(T >= t))`` with a relative tie tolerance, capped at 1."""
    gamma = abs(observed) * np.finfo(np.float64).eps * 100
    adj = 0 if exact else 1
    less = (np.count_nonzero(null <= observed + gamma) + adj) / (null.size + adj)
    greater = (np.count_nonzero(null >= observed - gamma) + adj) / (null.size + adj)
    return float(min(1.0, 2 * min(less, greater)))


def _clean(values: Sequence[float]) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(-1)


def permutation_test_two(a: Sequence[float], b: Sequence[float], *, max_exact: int = MAX_EXACT,
                         n_resamples: int = 20_000, seed: int = 0) -> tuple[float, str, float]:
    """Two-sided permutation test of ``mean(a) - mean(b) = 0``.  Returns ``(p, test, min_p)``:
    ``test`` is ``"exact permutation"`` or ``"Monte Carlo permutation"``, ``min_p`` the smallest p-value
    the design can give (``2 / C(n, n_a)`` exact, ``2 / (n_resamples + 1)`` Monte Carlo, capped at 1)."""
    a, b = _clean(a), _clean(b)
    na, nb = a.size, b.size
    if na < 1 or nb < 1 or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return float("nan"), "permutation", float("nan")
    x = np.concatenate([a, b])
    n, total = x.size, x.sum()
    observed = a.mean() - b.mean()
    n_rel = math.comb(n, na)
    if n_rel <= max_exact:
        idx = np.fromiter(itertools.chain.from_iterable(itertools.combinations(range(n), na)),
                          dtype=np.int64, count=n_rel * na).reshape(n_rel, na)
        sa = x[idx].sum(axis=1)
        null = sa / na - (total - sa) / nb
        return _two_sided(null, observed, True), "exact permutation", min(1.0, 2 / n_rel)
    rng = np.random.default_rng(seed)
    null = np.empty(n_resamples)
    for start in range(0, n_resamples, 4096):
        m = min(4096, n_resamples - start)
        perm = rng.permuted(np.tile(x, (m, 1)), axis=1)
        sa = perm[:, :na].sum(axis=1)
        null[start:start + m] = sa / na - (total - sa) / nb
    return _two_sided(null, observed, False), "Monte Carlo permutation", min(1.0, 2 / (n_resamples + 1))


def sign_flip_test(values: Sequence[float], null: float = 0.0, *, max_exact: int = MAX_EXACT,
                   n_resamples: int = 20_000, seed: int = 0) -> tuple[float, str, float]:
    """Two-sided sign-flip permutation test of ``mean(values) = null`` (values symmetric about ``null``
    under the null hypothesis; for paired differences).  Returns ``(p, test, min_p)``."""
    d = _clean(values) - null
    n = d.size
    if n < 1 or not np.all(np.isfinite(d)):
        return float("nan"), "sign-flip permutation", float("nan")
    observed = d.mean()
    if 2 ** n <= max_exact:
        signs = 1 - 2 * ((np.arange(2 ** n)[:, None] >> np.arange(n)[None, :]) & 1)
        nulls = (signs * d).mean(axis=1)
        return _two_sided(nulls, observed, True), "exact sign-flip permutation", min(1.0, 2 / 2 ** n)
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(n_resamples, n))
    nulls = (signs * d).mean(axis=1)
    return (_two_sided(nulls, observed, False), "Monte Carlo sign-flip permutation",
            min(1.0, 2 / (n_resamples + 1)))


def welch_test(a: Sequence[float], b: Sequence[float], confidence: float = 0.95,
               ) -> tuple[float, tuple[float, float]]:
    """Welch's t test of ``mean(a) = mean(b)``: ``(p, (low, high))``, the CI of ``mean(a) - mean(b)``
    with the Welch-Satterthwaite degrees of freedom.  NaN when a group has fewer than 2 values or both
    have zero variance."""
    a, b = _clean(a), _clean(b)
    nan = float("nan")
    if a.size < 2 or b.size < 2 or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return nan, (nan, nan)
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se2 = va + vb
    if se2 == 0:
        return nan, (nan, nan)
    df = se2 ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    diff, se = a.mean() - b.mean(), math.sqrt(se2)
    p = float(2 * stats.t.sf(abs(diff) / se, df))
    q = float(stats.t.ppf(0.5 + confidence / 2, df))
    return p, (float(diff - q * se), float(diff + q * se))


def one_sample_t(values: Sequence[float], null: float = 0.0, confidence: float = 0.95,
                 ) -> tuple[float, tuple[float, float]]:
    """One-sample t test of ``mean(values) = null``: ``(p, (low, high))``, the CI of ``mean - null``."""
    d = _clean(values) - null
    nan = float("nan")
    if d.size < 2 or not np.all(np.isfinite(d)):
        return nan, (nan, nan)
    sd = d.std(ddof=1)
    if sd == 0:
        return nan, (nan, nan)
    se, df = sd / math.sqrt(d.size), d.size - 1
    p = float(2 * stats.t.sf(abs(d.mean()) / se, df))
    q = float(stats.t.ppf(0.5 + confidence / 2, df))
    return p, (float(d.mean() - q * se), float(d.mean() + q * se))


def bootstrap_ci(
    groups: Sequence[Sequence[float]],
    func: Callable[..., float],
    n_resamples: int = 4000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, tuple[float, float]]:
    """Effect ``func(*groups)`` and its percentile-bootstrap CI, groups resampled independently.

    Returns ``(nan, (nan, nan))`` when a group has non-finite values or fewer than 2 entries.  With few
    seeds the percentile interval spans about the observed range; the differences use t intervals.
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


def _constant(*groups: np.ndarray) -> bool:
    vals = np.concatenate([np.asarray(g, dtype=float).reshape(-1) for g in groups])
    return vals.size > 0 and bool(np.all(np.isfinite(vals))) and float(np.ptp(vals)) == 0.0


_CONSTANT_REASON = ("the measure is constant over every seed of every arm (constant by construction?); "
                    "it cannot test the claim")


def difference_prediction(
    name: str,
    a: Sequence[float],
    b: Sequence[float],
    sign: int,
    statistic: str,
    description: str,
    seed: int = 0,
    n_resamples: int = 20_000,
    details: Mapping[str, object] | None = None,
    *,
    test: str = "permutation",
    ci_method: str = "welch",
    level: float = LEVEL,
    max_exact: int = MAX_EXACT,
) -> Prediction:
    """Prediction on ``E = mean(a) - mean(b)`` for two independent groups of per-seed values.

    ``test``: ``"permutation"`` (exact or Monte Carlo, module docstring) or ``"welch"``; ``ci_method``:
    ``"welch"`` (t interval) or ``"bootstrap"`` (percentile, ``n_resamples`` resamples).  When neither arm
    varies (every seed of each arm the same value, e.g. a time to a threshold that one arm always reaches
    at epoch 2 and the other never) the Welch interval is undefined and the percentile bootstrap is used
    (it is then the single point ``E``); ``details["ci_method"]`` says which.
    """
    if test not in ("permutation", "welch"):
        raise ValueError(f"test={test!r} is not allowed; allowed: 'permutation', 'welch'")
    if ci_method not in ("welch", "bootstrap"):
        raise ValueError(f"ci_method={ci_method!r} is not allowed; allowed: 'welch', 'bootstrap'")
    av, bv = _clean(a), _clean(b)
    finite = av.size > 0 and bv.size > 0 and bool(np.all(np.isfinite(av)) and np.all(np.isfinite(bv)))
    effect = float(av.mean() - bv.mean()) if finite else float("nan")
    p_w, ci_w = welch_test(av, bv)
    if test == "welch":
        p, test_name, min_p = p_w, "Welch t", 0.0
    else:
        p, test_name, min_p = permutation_test_two(av, bv, max_exact=max_exact, n_resamples=n_resamples,
                                                   seed=seed)
    ci_used = "Welch t" if ci_method == "welch" else "percentile bootstrap"
    if ci_method == "welch" and not (math.isfinite(ci_w[0]) or av.size < 2 or bv.size < 2 or not finite):
        ci_method = "bootstrap"
        ci_used = "percentile bootstrap (Welch undefined: no spread within either arm)"
    if ci_method == "welch":
        ci = ci_w
    else:
        _, ci = bootstrap_ci([av, bv], mean_difference, n_resamples=min(n_resamples, 4000), seed=seed)
    if finite and _constant(av, bv):
        verdict, reason = "inconclusive", _CONSTANT_REASON
    elif min(av.size, bv.size) < 2:
        verdict, reason = "inconclusive", "fewer than 2 seeds in an arm"
    else:
        verdict, reason = decide(effect, ci, p, sign, level, min_p if math.isfinite(min_p) else 0.0)
    det = {
        "mean_a": float(av.mean()) if av.size else float("nan"),
        "mean_b": float(bv.mean()) if bv.size else float("nan"),
        "values_a": [float(v) for v in av],
        "values_b": [float(v) for v in bv],
        "n_a": int(av.size), "n_b": int(bv.size),
        "min_p": min_p, "ci_method": ci_used,
    }
    if test != "welch":
        det["welch_p"] = p_w
    det.update(details or {})
    return Prediction(name, verdict, effect, ci, int(min(av.size, bv.size)), statistic, description, sign,
                      det, test_name, p, level, reason)


def one_group_prediction(
    name: str,
    values: Sequence[float],
    sign: int,
    statistic: str,
    description: str,
    null: float = 0.0,
    *,
    test: str = "sign-flip",
    seed: int = 0,
    n_resamples: int = 20_000,
    level: float = LEVEL,
    max_exact: int = MAX_EXACT,
    details: Mapping[str, object] | None = None,
) -> Prediction:
    """Prediction on ``E = mean(values) - null`` (one value per seed, e.g. a paired difference).

    ``test``: ``"sign-flip"`` (exact sign-flip permutation, Monte Carlo beyond ``max_exact`` patterns) or
    ``"t"`` (one-sample t); the CI is the one-sample t interval.
    """
    if test not in ("sign-flip", "t"):
        raise ValueError(f"test={test!r} is not allowed; allowed: 'sign-flip', 't'")
    v = _clean(values)
    finite = v.size > 0 and bool(np.all(np.isfinite(v)))
    effect = float(v.mean() - null) if finite else float("nan")
    p_t, ci = one_sample_t(v, null)
    if test == "t":
        p, test_name, min_p = p_t, "one-sample t", 0.0
    else:
        p, test_name, min_p = sign_flip_test(v, null, max_exact=max_exact, n_resamples=n_resamples, seed=seed)
    if finite and _constant(v):
        verdict, reason = "inconclusive", _CONSTANT_REASON
    elif v.size < 2:
        verdict, reason = "inconclusive", "fewer than 2 seeds"
    else:
        verdict, reason = decide(effect, ci, p, sign, level, min_p if math.isfinite(min_p) else 0.0)
    det = {"mean": float(v.mean()) if v.size else float("nan"), "null": float(null),
           "values": [float(x) for x in v], "min_p": min_p, "ci_method": "one-sample t"}
    if test != "t":
        det["t_p"] = p_t
    det.update(details or {})
    return Prediction(name, verdict, effect, ci, int(v.size), statistic, description, sign, det, test_name,
                      p, level, reason)


def spearman_over_levels(levels: Sequence[float], *groups: np.ndarray) -> float:
    """Spearman rank correlation between the level ``levels[j]`` and every value of group ``j``."""
    x = np.concatenate([np.full(len(g), lv, dtype=float) for lv, g in zip(levels, groups, strict=True)])
    y = np.concatenate([np.asarray(g, dtype=float) for g in groups])
    if np.ptp(y) == 0 or np.ptp(x) == 0:
        return float("nan")
    return float(stats.spearmanr(x, y).statistic)


def spearman_permutation_test(levels: Sequence[float], groups: Sequence[Sequence[float]], *,
                              max_exact: int = MAX_EXACT, n_resamples: int = 20_000, seed: int = 0,
                              ) -> tuple[float, float, str, float]:
    """Spearman's rho between level and value and its two-sided permutation p-value (values permuted
    across levels).  Returns ``(rho, p, test, min_p)``; ``min_p = 2 prod(n_j!) / n!`` (distinct
    assignments of the values to the levels) for the exact test."""
    gs = [_clean(g) for g in groups]
    x = np.concatenate([np.full(g.size, float(lv)) for lv, g in zip(levels, gs, strict=True)])
    y = np.concatenate(gs)
    nan = float("nan")
    if y.size < 3 or not np.all(np.isfinite(y)) or np.ptp(y) == 0 or np.ptp(x) == 0:
        return nan, nan, "Spearman permutation", nan
    rx = stats.rankdata(x)
    ry = stats.rankdata(y)
    rxc = (rx - rx.mean()) / np.linalg.norm(rx - rx.mean())
    ryc = (ry - ry.mean()) / np.linalg.norm(ry - ry.mean())
    rho = float(rxc @ ryc)
    n = y.size
    _, counts = np.unique(x, return_counts=True)
    n_assign = math.factorial(n) // math.prod(math.factorial(int(c)) for c in counts)
    if math.factorial(n) <= max_exact:
        perms = np.array(list(itertools.permutations(range(n))), dtype=np.int64)
        null = ryc[perms] @ rxc
        return rho, _two_sided(null, rho, True), "exact Spearman permutation", min(1.0, 2 / n_assign)
    rng = np.random.default_rng(seed)
    null = rng.permuted(np.tile(ryc, (n_resamples, 1)), axis=1) @ rxc
    min_p = min(1.0, max(2 / n_assign, 2 / (n_resamples + 1)))
    return rho, _two_sided(null, rho, False), "Monte Carlo Spearman permutation", min_p


def spearman_prediction(
    name: str,
    levels: Sequence[float],
    groups: Sequence[Sequence[float]],
    sign: int,
    statistic: str,
    description: str,
    seed: int = 0,
    n_resamples: int = 20_000,
    *,
    level: float = LEVEL,
    max_exact: int = MAX_EXACT,
    details: Mapping[str, object] | None = None,
) -> Prediction:
    """Prediction on Spearman's rho between a level (e.g. skip rank k) and per-seed values at that level:
    permutation p-value, percentile-bootstrap CI (values resampled within each level)."""
    gs = [_clean(g) for g in groups]
    rho, p, test_name, min_p = spearman_permutation_test(levels, gs, max_exact=max_exact,
                                                         n_resamples=n_resamples, seed=seed)
    _, ci = bootstrap_ci(gs, lambda *g: spearman_over_levels(levels, *g), n_resamples=2000, seed=seed)
    finite = all(g.size and np.all(np.isfinite(g)) for g in gs)
    if finite and _constant(*gs):
        verdict, reason = "inconclusive", _CONSTANT_REASON
    elif min(g.size for g in gs) < 2:
        verdict, reason = "inconclusive", "fewer than 2 seeds at a level"
    else:
        verdict, reason = decide(rho, ci, p, sign, level, min_p if math.isfinite(min_p) else 0.0)
    det = {"levels": [float(v) for v in levels], "means": [float(np.mean(g)) if g.size else float("nan")
                                                           for g in gs],
           "min_p": min_p, "ci_method": "percentile bootstrap"}
    det.update(details or {})
    return Prediction(name, verdict, rho, ci, int(min(g.size for g in gs)), statistic, description, sign,
                      det, test_name, p, level, reason)


def contrast_prediction(
    name: str,
    groups: Sequence[Sequence[float]],
    weights: Sequence[float],
    sign: int,
    statistic: str,
    description: str,
    *,
    level: float = LEVEL,
    details: Mapping[str, object] | None = None,
) -> Prediction:
    """Prediction on a linear contrast of independent group means, ``E = sum_j w_j mean(g_j)`` (e.g. an
    interaction ``(a - b) - (c - d)``): Welch-Satterthwaite t test and t interval
    (``se^2 = sum_j w_j^2 s_j^2 / n_j``, ``df = se^4 / sum_j (w_j^2 s_j^2 / n_j)^2 / (n_j - 1)``)."""
    gs = [_clean(g) for g in groups]
    if len(gs) != len(weights):
        raise ValueError(f"{len(gs)} groups for {len(weights)} weights")
    nan = float("nan")
    ok = all(g.size >= 2 and np.all(np.isfinite(g)) for g in gs)
    effect = float(sum(w * g.mean() for w, g in zip(weights, gs, strict=True))) if ok else nan
    p, ci = nan, (nan, nan)
    if ok:
        terms = [w * w * g.var(ddof=1) / g.size for w, g in zip(weights, gs, strict=True)]
        se2 = float(sum(terms))
        if se2 > 0:
            df = se2 ** 2 / sum(t * t / (g.size - 1) for t, g in zip(terms, gs, strict=True))
            se = math.sqrt(se2)
            p = float(2 * stats.t.sf(abs(effect) / se, df))
            q = float(stats.t.ppf(0.975, df))
            ci = (effect - q * se, effect + q * se)
    if ok and _constant(*gs):
        verdict, reason = "inconclusive", _CONSTANT_REASON
    elif not ok:
        verdict, reason = "inconclusive", "fewer than 2 finite seeds in a group"
    else:
        verdict, reason = decide(effect, ci, p, sign, level, 0.0)
    det = {"weights": [float(w) for w in weights], "means": [float(g.mean()) if g.size else nan for g in gs],
           "ci_method": "Welch-Satterthwaite t"}
    det.update(details or {})
    return Prediction(name, verdict, effect, ci, int(min(g.size for g in gs)), statistic, description, sign,
                      det, "Welch t (contrast)", p, level, reason)
