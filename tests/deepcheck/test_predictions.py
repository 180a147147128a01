"""Bootstrap CIs against scipy, verdict rules, Spearman against scipy, Prediction serialisation."""

import json

import numpy as np
import pytest
from scipy import stats

from ghostsing.experiments.predictions import (
    Prediction,
    bootstrap_ci,
    difference_prediction,
    mean_difference,
    spearman_over_levels,
    spearman_prediction,
    verdict_from_ci,
)


def test_verdict_rules():
    assert verdict_from_ci((0.1, 0.5), +1) == "holds"
    assert verdict_from_ci((-0.5, -0.1), +1) == "fails"
    assert verdict_from_ci((-0.5, -0.1), -1) == "holds"
    assert verdict_from_ci((-0.1, 0.3), +1) == "inconclusive"
    assert verdict_from_ci((0.0, 0.3), +1) == "inconclusive"
    assert verdict_from_ci((float("nan"), 1.0), +1) == "inconclusive"


def test_bootstrap_ci_matches_scipy_percentile_bootstrap():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 1.0, 40), rng.normal(0.2, 2.0, 30)
    effect, (lo, hi) = bootstrap_ci([a, b], mean_difference, n_resamples=20000, seed=1)
    assert effect == pytest.approx(a.mean() - b.mean(), rel=1e-14)
    ref = stats.bootstrap((a, b), lambda x, y: x.mean() - y.mean(), vectorized=False, paired=False,
                          n_resamples=20000, method="percentile", random_state=2).confidence_interval
    half = (ref.high - ref.low) / 2
    assert lo == pytest.approx(ref.low, abs=0.03 * half)
    assert hi == pytest.approx(ref.high, abs=0.03 * half)
    # and both are close to the normal-theory interval for a difference of means
    se = np.sqrt(a.var(ddof=1) / 40 + b.var(ddof=1) / 30)
    assert (hi - lo) / 2 == pytest.approx(1.96 * se, rel=0.08)


def test_bootstrap_degenerate_inputs_are_inconclusive():
    e, ci = bootstrap_ci([[1.0], [0.0, 0.1]], mean_difference)
    assert np.isnan(ci[0]) and verdict_from_ci(ci) == "inconclusive"
    p = difference_prediction("x", [1.0, np.nan, 2.0], [0.0, 0.1], +1, "s", "d")
    assert p.verdict == "inconclusive" and p.to_dict()["ci"] == [None, None]


def test_difference_prediction_verdicts():
    p = difference_prediction("lower loss", [2.0, 2.1, 2.2], [1.0, 1.1, 0.9], +1, "mean diff", "desc")
    assert p.verdict == "holds" and p.effect == pytest.approx(1.1) and p.n_seeds == 3
    q = difference_prediction("lower loss", [1.0, 1.1, 0.9], [2.0, 2.1, 2.2], +1, "mean diff", "desc")
    assert q.verdict == "fails"
    d = json.loads(json.dumps(p.to_dict()))
    assert set(d) >= {"name", "verdict", "effect", "ci", "n_seeds", "statistic", "description"}


def test_spearman_matches_scipy():
    levels = [0, 8, 16, 32]
    groups = [np.array([2.0, 2.2]), np.array([1.8, 1.5]), np.array([1.6, 1.7]), np.array([1.0, 1.2])]
    x = np.repeat(levels, 2)
    y = np.concatenate(groups)
    assert spearman_over_levels(levels, *groups) == pytest.approx(stats.spearmanr(x, y).statistic, rel=1e-12)
    p = spearman_prediction("sweep", levels, groups, -1, "rho", "d")
    assert p.effect < -0.8 and p.verdict == "holds"


def test_prediction_validation():
    with pytest.raises(ValueError, match="verdict 'yes'"):
        Prediction("x", "yes", 0.0, (0, 1), 3, "s", "d")
    with pytest.raises(ValueError, match="sign 2"):
        Prediction("x", "holds", 0.0, (0, 1), 3, "s", "d", sign=2)
