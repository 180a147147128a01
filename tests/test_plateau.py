"""Plateau detection and scaling-law fits against closed forms and Monte Carlo."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ghostsing.simulate.plateau import (
    PlateauConfig,
    crossing_time,
    detect_plateau,
    detect_plateaus,
    summarize,
    transverse_rate,
)
from ghostsing.simulate.scaling_fits import (
    compare_alpha_laws,
    fit_exp_inverse_law,
    fit_log_law,
    fit_power_law,
)

# Synthetic loss with closed-form plateau edges:
#   L(t) = L_s + A exp(-t/t1) - D sigmoid((t - t0)/w)
# entry (L = L_s + delta):  t_in = t1 ln(A/delta)        (the sigmoid is < 1e-20 there)
# escape (L = L_s - delta): t_esc = t0 + w logit(delta/D) (the exponential is < 1e-40 there)
LS, A, T1, D, T0, W, DELTA = 0.5, 1.0, 1.0, 0.4, 100.0, 2.0, 0.01


def synthetic_loss(t):
    t = np.asarray(t, dtype=np.float64)
    return LS + A * np.exp(-t / T1) - D / (1.0 + np.exp(-(t - T0) / W))


T_IN = T1 * math.log(A / DELTA)
T_ESC = T0 + W * math.log((DELTA / D) / (1 - DELTA / D))


def test_plateau_of_synthetic_curve_matches_closed_form():
    t = np.linspace(0.0, 200.0, 20001)  # h = 0.01: linear interpolation error O(h^2 L''/L') ~ 1e-4
    p = detect_plateau(t, synthetic_loss(t), PlateauConfig(L_s=LS, delta=DELTA))
    assert p.entered and p.escaped
    assert p.t_in == pytest.approx(T_IN, abs=1e-3)
    assert p.t_esc == pytest.approx(T_ESC, abs=1e-3)
    assert p.length == pytest.approx(T_ESC - T_IN, abs=2e-3)
    assert p.longest == pytest.approx(T_ESC - T_IN, abs=2e-3)


def test_dense_refinement_reaches_brent_tolerance_on_a_coarse_grid():
    t = np.geomspace(1e-2, 300.0, 60)  # coarse, log-spaced grid
    coarse = detect_plateau(t, synthetic_loss(t), PlateauConfig(L_s=LS, delta=DELTA))
    fine = detect_plateau(t, synthetic_loss(t), PlateauConfig(L_s=LS, delta=DELTA),
                          dense_loss=lambda s: float(synthetic_loss(s)))
    assert abs(coarse.t_esc - T_ESC) > 1e-3  # the coarse grid alone is not enough ...
    assert fine.t_esc == pytest.approx(T_ESC, abs=1e-8)  # ... Brent on the dense output is


def test_gradient_threshold_splits_the_plateau_and_longest_run_is_found():
    t = np.linspace(0.0, 200.0, 20001)
    G = np.where((t > 30.0) & (t < 40.0), 1.0, 1e-4)  # a burst of gradient inside the band
    p = detect_plateau(t, synthetic_loss(t), PlateauConfig(L_s=LS, delta=DELTA, g_tol=1e-2), grad_norm=G)
    assert p.t_in == pytest.approx(T_IN, abs=1e-3)
    assert p.longest == pytest.approx(T_ESC - 40.0, abs=2e-2)  # (40, t_esc) is longer than (t_in, 30)
    assert p.t_esc == pytest.approx(T_ESC, abs=1e-3)


def test_censored_and_never_entered_runs_are_flagged():
    t = np.linspace(0.0, 50.0, 501)  # window ends before the escape
    p = detect_plateau(t, synthetic_loss(t), PlateauConfig(L_s=LS, delta=DELTA))
    assert p.entered and not p.escaped and math.isnan(p.length)
    assert p.longest == pytest.approx(50.0 - T_IN, abs=1e-2)
    q = detect_plateau(t, np.full_like(t, 3.0), PlateauConfig(L_s=LS, delta=DELTA))
    assert not q.entered and math.isnan(q.t_in) and q.longest == 0.0


def test_ensemble_detection_matches_shifted_closed_forms():
    t = np.linspace(0.0, 300.0, 30001)
    shifts = np.array([0.0, 10.0, 25.0])
    L = np.stack([synthetic_loss(t - s) for s in shifts])  # each curve delayed by its shift
    tab = detect_plateaus(t, L, PlateauConfig(L_s=LS, delta=DELTA))
    assert np.allclose(tab.t_in, T_IN + shifts, atol=1e-3)
    assert np.allclose(tab.t_esc, T_ESC + shifts, atol=1e-3)
    assert np.allclose(tab.length, T_ESC - T_IN, atol=2e-3)
    assert tab.escaped.all()


def test_crossing_time_linear_interpolation_is_exact_for_a_line():
    t = np.array([0.0, 1.0, 2.0, 3.0])
    y = 5.0 - 2.0 * t  # crosses 2 at t = 1.5
    assert crossing_time(t, y, 2.0, "down") == pytest.approx(1.5, abs=1e-15)
    assert crossing_time(t, -y, -2.0, "up") == pytest.approx(1.5, abs=1e-15)
    assert math.isnan(crossing_time(t, y, 10.0, "down"))


@pytest.mark.parametrize(
    "kwargs",
    [dict(L_s=float("nan"), delta=0.1), dict(L_s=1.0, delta=0.0), dict(L_s=1.0, delta=0.1, g_tol=-1.0)],
)
def test_bad_config_raises_value_error(kwargs):
    with pytest.raises(ValueError, match="allowed"):
        PlateauConfig(**kwargs)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="increasing"):
        detect_plateau(np.array([0.0, 2.0, 1.0]), np.zeros(3), PlateauConfig(1.0, 0.1))
    with pytest.raises(TypeError):
        detect_plateau(np.arange(3.0), np.zeros(3), {"L_s": 1.0})
    with pytest.raises(ValueError, match="at least 3"):
        fit_log_law([1e-2, 1e-3], [1.0, 2.0])
    with pytest.raises(ValueError, match="> 0"):
        fit_power_law([0.0, 0.1, 0.2], [1.0, 2.0, 3.0])


# ------------------------------------------------------------------------------------------------ fits
def test_log_fit_recovers_exact_parameters_from_noise_free_data():
    eps = np.geomspace(1e-8, 1e-2, 7)
    r = fit_log_law(eps, 15.2 * np.log(1 / eps) - 19.1, n_boot=50)
    assert r.params["a"] == pytest.approx(15.2, rel=1e-12)
    assert r.params["c"] == pytest.approx(-19.1, rel=1e-10)
    assert r.r2 == pytest.approx(1.0, abs=1e-12)


def test_power_fit_recovers_exact_parameters_from_noise_free_data():
    alpha = np.geomspace(1e-3, 0.5, 8)
    r = fit_power_law(alpha, 3.0 * alpha**-0.5, n_boot=50)
    assert r.params["A"] == pytest.approx(3.0, rel=1e-10)
    assert r.params["p"] == pytest.approx(0.5, rel=1e-10)


def test_bootstrap_interval_covers_the_true_slope_at_about_the_nominal_rate():
    """Monte Carlo coverage of the 90% percentile-bootstrap interval for a (true a = 2, c = 1)."""
    rng = np.random.default_rng(1)
    eps = np.repeat(np.geomspace(1e-6, 1e-1, 6), 5)
    hits = 0
    reps = 120
    for k in range(reps):
        tau = 2.0 * np.log(1 / eps) + 1.0 + rng.normal(0, 1.0, eps.size)
        r = fit_log_law(eps, tau, n_boot=300, level=0.9, seed=k)
        hits += r.ci["a"][0] <= 2.0 <= r.ci["a"][1]
    # binomial(120, 0.9) lies in [0.82, 0.97] with probability > 0.99; bootstrap undercovers slightly
    assert 0.78 <= hits / reps <= 0.98


def test_model_comparison_picks_the_law_that_generated_the_data():
    rng = np.random.default_rng(2)
    alpha = np.repeat(np.geomspace(1e-3, 0.3, 8), 4)
    tau_pow = 5.0 * alpha**-0.5 * np.exp(rng.normal(0, 0.03, alpha.size))
    tau_log = 10.0 * np.log(1 / alpha) + 20.0 + rng.normal(0, 0.5, alpha.size)
    res_pow = compare_alpha_laws(alpha, tau_pow, n_boot=200)
    res_log = compare_alpha_laws(alpha, tau_log, n_boot=200)
    assert res_pow["best"] == "power" and res_pow["delta_aic"] > 2
    assert res_log["best"] == "log" and res_log["delta_aic"] > 2
    lo, hi = res_pow["power"].ci["p"]
    assert lo <= 0.5 <= hi and hi - lo < 0.1
    lo, hi = res_log["log"].ci["a"]
    assert lo <= 10.0 <= hi


def test_exp_inverse_fit_recovers_parameters_and_is_picked_for_its_own_data():
    alpha = np.geomspace(0.02, 0.2, 8)
    r = fit_exp_inverse_law(alpha, 7.0 * np.exp(0.15 / alpha), n_boot=50)
    assert r.params["A"] == pytest.approx(7.0, rel=1e-10) and r.params["b"] == pytest.approx(0.15, rel=1e-10)
    rng = np.random.default_rng(5)
    a2 = np.repeat(alpha, 3)
    res = compare_alpha_laws(a2, 7.0 * np.exp(0.15 / a2) * np.exp(rng.normal(0, 0.02, a2.size)), n_boot=100)
    assert res["best"] == "exp_inverse" and res["delta_aic"] > 2


def test_fit_band_contains_the_fitted_curve():
    rng = np.random.default_rng(3)
    eps = np.repeat(np.geomspace(1e-6, 1e-1, 6), 4)
    r = fit_log_law(eps, 3 * np.log(1 / eps) + rng.normal(0, 0.5, eps.size), n_boot=300)
    x = np.geomspace(1e-6, 1e-1, 20)
    lo, hi = r.band(x)
    y = r.predict(x)
    assert np.all(lo <= y + 1e-9) and np.all(y <= hi + 1e-9)


def test_summarize_counts_censored_runs_and_matches_numpy():
    v = np.array([1.0, 2.0, 3.0, 4.0, np.nan])
    s = summarize(v)
    assert s["n"] == 5 and s["n_finite"] == 4 and s["fraction_finite"] == pytest.approx(0.8)
    assert s["q50"] == pytest.approx(2.5) and s["mean"] == pytest.approx(2.5)
    assert s["std"] == pytest.approx(np.std([1, 2, 3, 4], ddof=1))


def test_transverse_rate_is_the_largest_real_eigenvalue():
    rng = np.random.default_rng(4)
    Q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    Jm = Q @ np.diag([-1.0, -0.3, 0.0, 0.07]) @ Q.T
    assert transverse_rate(Jm) == pytest.approx(0.07, abs=1e-12)
    with pytest.raises(ValueError, match="square"):
        transverse_rate(np.zeros((2, 3)))
