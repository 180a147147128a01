"""Tests of the prediction statistics against scipy, the verdict rules, negative controls, serialisation."""

import json
import math

import numpy as np
import pytest
from scipy import stats

from ghostsing.experiments.predictions import (
    VERDICT_RULES,
    VERDICTS,
    Prediction,
    bootstrap_ci,
    decide,
    difference_prediction,
    mean_difference,
    one_group_prediction,
    one_sample_t,
    permutation_test_two,
    sign_flip_test,
    spearman_over_levels,
    spearman_permutation_test,
    spearman_prediction,
    verdict_from_ci,
    welch_test,
)


def _diff(x, y, axis=-1):
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


@pytest.mark.parametrize("na,nb", [(3, 3), (5, 5), (4, 7), (8, 8)])
def test_exact_permutation_matches_scipy(na, nb):
    rng = np.random.default_rng(na * 10 + nb)
    a, b = rng.normal(0.8, 1.0, na), rng.normal(0.0, 1.5, nb)
    p, test, min_p = permutation_test_two(a, b)
    ref = stats.permutation_test((a, b), _diff, permutation_type="independent", vectorized=True,
                                 n_resamples=10**6, alternative="two-sided")
    assert test == "exact permutation"
    assert p == pytest.approx(ref.pvalue, rel=1e-12, abs=1e-15)
    assert min_p == pytest.approx(min(1.0, 2 / math.comb(na + nb, na)))


def test_three_against_three_cannot_reach_five_percent():
    p, _, min_p = permutation_test_two([1.0, 1.1, 1.2], [0.0, 0.1, 0.2])  # complete separation
    assert p == pytest.approx(0.1) and min_p == pytest.approx(0.1)
    pred = difference_prediction("x", [1.0, 1.1, 1.2], [0.0, 0.1, 0.2], +1, "d", "d")
    assert pred.verdict == "underpowered" and "0.1" in pred.reason and pred.p_value == pytest.approx(0.1)
    # 5 against 5 can: min p = 2/252
    pred5 = difference_prediction("x", [1.0, 1.1, 1.2, 1.3, 1.15], [0.0, 0.1, 0.2, 0.05, 0.15], +1, "d", "d")
    assert pred5.verdict == "holds" and pred5.p_value == pytest.approx(2 / 252)
    assert pred5.test == "exact permutation" and pred5.n_seeds == 5


def test_monte_carlo_permutation_close_to_scipy():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.8, 1.0, 14), rng.normal(0.0, 1.0, 14)  # C(28, 14) ~ 4e7: Monte Carlo
    p, test, min_p = permutation_test_two(a, b, n_resamples=50_000, seed=1)
    ref = stats.permutation_test((a, b), _diff, vectorized=True, n_resamples=50_000, rng=2)
    assert test == "Monte Carlo permutation" and min_p == pytest.approx(2 / 50_001)
    q = ref.pvalue / 2  # each two-sided p is twice a one-sided Monte Carlo proportion
    se = 2 * math.sqrt(q * (1 - q) / 50_000)
    assert 0.001 < ref.pvalue < 0.5 and abs(p - ref.pvalue) < 5 * se * math.sqrt(2)


def test_welch_matches_scipy():
    rng = np.random.default_rng(5)
    a, b = rng.normal(1.0, 0.5, 6), rng.normal(0.3, 2.0, 9)
    p, (lo, hi) = welch_test(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert p == pytest.approx(ref.pvalue, rel=1e-12)
    assert lo == pytest.approx(ci.low, rel=1e-12) and hi == pytest.approx(ci.high, rel=1e-12)
    pred = difference_prediction("w", a, b, +1, "d", "d", test="welch")
    assert pred.test == "Welch t" and pred.p_value == pytest.approx(ref.pvalue, rel=1e-12)


def test_one_sample_t_and_sign_flip_match_scipy():
    rng = np.random.default_rng(7)
    d = rng.normal(0.5, 1.0, 9)
    p, (lo, hi) = one_sample_t(d)
    ref = stats.ttest_1samp(d, 0.0)
    ci = ref.confidence_interval(0.95)
    assert p == pytest.approx(ref.pvalue, rel=1e-12)
    assert lo == pytest.approx(ci.low, rel=1e-12) and hi == pytest.approx(ci.high, rel=1e-12)
    ps, test, min_p = sign_flip_test(d)
    refs = stats.permutation_test((d,), lambda x, axis=-1: np.mean(x, axis=axis), vectorized=True,
                                  permutation_type="samples", n_resamples=10**6)
    assert test == "exact sign-flip permutation" and min_p == pytest.approx(2 / 512)
    assert ps == pytest.approx(refs.pvalue, rel=1e-12)
    # 4 paired seeds can never reach 0.05 with a sign-flip test (2/16 = 0.125)
    pred = one_group_prediction("x", [0.5, 0.6, 0.7, 0.8], +1, "mean", "d")
    assert pred.verdict == "underpowered"
    pred6 = one_group_prediction("x", [0.5, 0.6, 0.7, 0.8, 0.55, 0.65], +1, "mean", "d")
    assert pred6.verdict == "holds" and pred6.p_value == pytest.approx(2 / 64)
    pred_t = one_group_prediction("x", [0.5, 0.6, 0.7, 0.8], +1, "mean", "d", test="t")
    assert pred_t.test == "one-sample t" and pred_t.verdict == "holds"


def test_spearman_permutation_matches_scipy():
    levels = [0, 8, 16, 32]
    groups = [np.array([2.0, 2.2]), np.array([1.8, 1.5]), np.array([1.6, 1.7]), np.array([1.0, 1.2])]
    x, y = np.repeat(levels, 2).astype(float), np.concatenate(groups)
    rho, p, test, min_p = spearman_permutation_test(levels, groups)
    assert rho == pytest.approx(stats.spearmanr(x, y).statistic, rel=1e-12)
    assert spearman_over_levels(levels, *groups) == pytest.approx(rho, rel=1e-12)

    def stat(yy):
        return stats.spearmanr(x, yy).statistic

    ref = stats.permutation_test((y,), stat, permutation_type="pairings", n_resamples=10**6,
                                 vectorized=False)
    assert test == "exact Spearman permutation"
    assert p == pytest.approx(ref.pvalue, rel=1e-9)
    assert min_p == pytest.approx(2 * 2**4 / math.factorial(8))
    pred = spearman_prediction("sweep", levels, groups, -1, "rho", "d")
    assert pred.effect < -0.8 and pred.verdict == "holds" and pred.p_value < 0.05


def test_negative_controls_identical_arms_never_hold():
    rng = np.random.default_rng(11)
    verdicts = []
    for _ in range(200):
        base = rng.normal(0, 1, 6)
        verdicts.append(difference_prediction("same", base, base.copy(), +1, "d", "d").verdict)
        verdicts.append(difference_prediction("same", base, base.copy(), -1, "d", "d", test="welch").verdict)
    assert "holds" not in verdicts and "fails" not in verdicts
    # same distribution, independent draws: "holds" at most about level/2 of the time (one side)
    holds = 0
    for r in range(300):
        a, b = rng.normal(0, 1, 6), rng.normal(0, 1, 6)
        holds += difference_prediction("null", a, b, +1, "d", "d", seed=r).verdict == "holds"
    assert holds / 300 < 0.06
    # a measure constant by construction (every seed of every arm 0) is refused
    c = difference_prediction("dead", [0.0] * 5, [0.0] * 5, +1, "d", "d")
    assert c.verdict == "inconclusive" and "constant" in c.reason
    c1 = one_group_prediction("dead", [0.0] * 6, +1, "d", "d")
    assert c1.verdict == "inconclusive" and "constant" in c1.reason


def test_opposite_side_fails_and_rules():
    q = difference_prediction("lower loss", [1.0, 1.1, 0.9, 1.05, 0.95], [2.0, 2.1, 2.2, 2.05, 1.95], +1,
                              "mean diff", "desc")
    assert q.verdict == "fails" and q.p_value < 0.05 and q.ci[1] < 0
    assert decide(1.0, (0.1, 2.0), 0.2, +1) == ("inconclusive", "p = 0.2 >= level 0.05")
    assert decide(1.0, (-0.1, 2.0), 0.01, +1)[0] == "inconclusive"
    assert decide(1.0, (0.1, 2.0), 0.01, +1, min_p=0.1)[0] == "underpowered"
    assert decide(-1.0, (-2.0, -0.1), 0.01, -1) == ("holds", "")
    assert verdict_from_ci((0.1, 0.5), +1) == "holds"
    assert verdict_from_ci((float("nan"), 1.0), +1) == "inconclusive"
    assert "underpowered" in VERDICTS and "underpowered" in VERDICT_RULES


def test_bootstrap_ci_matches_scipy_percentile_bootstrap():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 1.0, 40), rng.normal(0.2, 2.0, 30)
    effect, (lo, hi) = bootstrap_ci([a, b], mean_difference, n_resamples=20000, seed=1)
    assert effect == pytest.approx(a.mean() - b.mean(), rel=1e-14)
    ref = stats.bootstrap((a, b), lambda x, y: x.mean() - y.mean(), vectorized=False, paired=False,
                          n_resamples=20000, method="percentile", rng=2).confidence_interval
    half = (ref.high - ref.low) / 2
    assert lo == pytest.approx(ref.low, abs=0.03 * half)
    assert hi == pytest.approx(ref.high, abs=0.03 * half)


def test_degenerate_inputs_are_inconclusive():
    e, ci = bootstrap_ci([[1.0], [0.0, 0.1]], mean_difference)
    assert np.isnan(ci[0]) and verdict_from_ci(ci) == "inconclusive"
    p = difference_prediction("x", [1.0, np.nan, 2.0], [0.0, 0.1], +1, "s", "d")
    assert p.verdict == "inconclusive" and p.to_dict()["ci"] == [None, None]
    assert p.to_dict()["p_value"] is None
    single = difference_prediction("x", [1.0], [0.0, 0.1, 0.2], +1, "s", "d")
    assert single.verdict in ("inconclusive", "underpowered")


def test_serialisation_has_the_report_keys():
    p = difference_prediction("lower loss", [2.0, 2.1, 2.2, 2.3, 2.15], [1.0, 1.1, 0.9, 1.05, 0.95], +1,
                              "mean diff", "desc")
    d = json.loads(json.dumps(p.to_dict()))
    assert {"name", "verdict", "effect", "ci", "n_seeds", "test", "p_value", "statistic", "description",
            "reason", "level"} <= set(d)
    assert d["verdict"] == "holds" and d["test"] == "exact permutation"


def test_prediction_validation():
    with pytest.raises(ValueError, match="verdict 'yes'"):
        Prediction("x", "yes", 0.0, (0, 1), 3, "s", "d")
    with pytest.raises(ValueError, match="sign 2"):
        Prediction("x", "holds", 0.0, (0, 1), 3, "s", "d", sign=2)
    with pytest.raises(ValueError, match="test="):
        difference_prediction("x", [1, 2], [3, 4], +1, "s", "d", test="anova")


def test_contrast_reduces_to_welch_for_two_groups():
    from ghostsing.experiments.predictions import contrast_prediction

    rng = np.random.default_rng(9)
    a, b = rng.normal(1.0, 0.5, 6), rng.normal(0.3, 2.0, 9)
    c = contrast_prediction("c", [a, b], [1, -1], +1, "s", "d")
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert c.p_value == pytest.approx(ref.pvalue, rel=1e-12)
    assert c.ci[0] == pytest.approx(ref.confidence_interval(0.95).low, rel=1e-12)
    same = rng.normal(0, 1, 5)
    z = contrast_prediction("z", [same, same, same, same], [1, -1, -1, 1], +1, "s", "d")
    assert z.verdict != "holds" and z.effect == pytest.approx(0.0, abs=1e-12)


def test_arms_without_spread_use_the_bootstrap_point_interval():
    p = difference_prediction("ttt", [9.0] * 5, [2.0] * 5, +1, "epochs", "d")
    assert p.ci == (7.0, 7.0) and p.verdict == "holds" and p.p_value == pytest.approx(2 / 252)
    assert "Welch undefined" in p.details["ci_method"]
    same = difference_prediction("ttt", [9.0] * 5, [9.0] * 5, +1, "epochs", "d")
    assert same.verdict == "inconclusive" and "constant" in same.reason
