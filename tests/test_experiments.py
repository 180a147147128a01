"""Reduced planes, the critical line and its Milnor segment, plateau physics, and the registered simulation
experiments at their "small" presets.

Independent sources: the closed-form best one-unit fit of the symmetric teacher (w* = 2,
J* = (1, 1)/sqrt 6, L* = 1/3 - (4/pi) asin(1/4) = 0.0116108, Saad & Solla's plateau), the escape rate
0.0657498 of that plateau (Saad & Solla / Goldt et al., recomputed to 7 digits; at small eta the
order-parameter ODE's rate / eta equals the gradient-flow rate), finite differences of the chart, the
Jacobian of the generated flow, and the committed reports under simulations/figures/ (same seeds).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ghostsing.experiments import registry  # noqa: E402
from ghostsing.experiments.report import run_experiment  # noqa: E402
from ghostsing.simulate import planes  # noqa: E402
from ghostsing.simulate import symmetric as ex  # noqa: E402
from ghostsing.simulate.plateau import transverse_rate  # noqa: E402
from ghostsing.simulate.scaling_fits import fit_log_law  # noqa: E402

FIGURES = Path(__file__).resolve().parents[1] / "simulations" / "figures"


@pytest.fixture(scope="module")
def plain():
    spec = ex.symmetric_spec(0.0)
    return spec, ex.compiled(spec)


def test_one_unit_fit_matches_the_closed_form():
    w, J, L = ex.one_unit_fit(ex.symmetric_spec(0.0))
    assert w == pytest.approx(2.0, abs=1e-7)
    np.testing.assert_allclose(J, np.ones(2) / math.sqrt(6), atol=1e-7)
    assert L == pytest.approx(1 / 3 - 4 / math.pi * math.asin(0.25), abs=1e-12)
    assert ex.L_STAR == pytest.approx(0.011611, abs=5e-7)  # Saad & Solla's plateau height (K = 2)


def test_overlap_chart_round_trips_and_matches_the_design_definitions(plain):
    spec, _ = plain
    plane = planes.overlap_plane(spec, np.array([0.3, -1.0]))
    q = np.array([1.7, 0.2, -0.4])
    th = plane.theta(q, 0.37, 0.25)
    w1, w2, J1, J2 = th[0], th[1], th[2:4], th[4:6]
    assert w1 + w2 == pytest.approx(1.7)  # w = w_1 + w_2
    np.testing.assert_allclose((w1 * J1 + w2 * J2) / (w1 + w2), q[1:])  # Jbar
    np.testing.assert_allclose(plane.coords(th), [0.37, 0.25])
    np.testing.assert_allclose(J1 - J2, 0.25 * plane.e)  # u = J_1 - J_2 = r e


@pytest.mark.parametrize("kind", ["overlap", "elimination"])
def test_projected_velocity_matches_finite_differences_of_the_coordinates(plain, kind):
    spec, f = plain
    make = planes.overlap_plane if kind == "overlap" else planes.elimination_plane
    plane = make(spec, np.array([1.0, -1.0]))
    th = np.ascontiguousarray(plane.theta(np.array([1.8, 0.5, 0.3]), 0.4, 0.3))
    F = f.flow(th)
    h = 1e-6
    fd = (plane.coords(th + h * F) - plane.coords(th - h * F)) / (2 * h)  # d/dt coords along the flow
    np.testing.assert_allclose(plane.velocity(th, F), fd, rtol=1e-6, atol=1e-9)


def test_relaxed_slice_at_alpha_0_is_a_line_of_critical_points_at_the_best_fit(plain):
    spec, f = plain
    plane = planes.overlap_plane(spec, np.array([1.0, -1.0]))
    zs = np.linspace(-2.5, 2.5, 6)
    g = planes.relaxed_grid(plane, f, zs, np.array([0.0, 0.2]), np.array([1.5, 0.5, 0.3]))
    assert np.all(g["speed"][0] < 1e-9)  # every point of {u = 0} at the relaxed (w, Jbar) is critical
    np.testing.assert_allclose(g["q"][0, :, 0], 2.0, atol=1e-7)
    np.testing.assert_allclose(g["q"][0, :, 1:], 1 / math.sqrt(6), atol=1e-7)
    assert np.all(g["speed"][1] > 1e-4)  # off the line the flow moves


def test_milnor_segment_is_where_the_line_attracts_and_matches_the_published_rate(plain):
    spec, f = plain
    z = np.linspace(-3, 3, 61)
    thetas = [np.array([ex.W_STAR * (1 + a) / 2, ex.W_STAR * (1 - a) / 2, *ex.J_STAR, *ex.J_STAR]) for a in z]
    rates = np.array([transverse_rate(f.jacobian(t)) for t in thetas])
    segs = planes.attracting_segments(z, np.zeros_like(z), rates, tol=1e-7)
    ends = sorted((float(s[0, 0]), float(s[-1, 0])) for s in segs)
    # the leading-order theory (Amari et al.): |z| > 1 attracts when K > 0; grid spacing 0.1
    assert len(ends) == 2
    assert ends[0][0] == -3.0 and abs(ends[0][1] + 1.0) <= 0.1 + 1e-12
    assert abs(ends[1][0] - 1.0) <= 0.1 + 1e-12 and ends[1][1] == 3.0
    # at z = 0 the transverse rate is the escape rate of the symmetric plateau, 0.0657498 (7 digits)
    assert rates[30] == pytest.approx(0.0657498, abs=0.5e-7)


def test_alpha0_plateau_slope_equals_inverse_transverse_eigenvalue(plain):
    """Real check: tau = a ln(1/eps) + c with a = 1/lambda_u (lambda_u from the generated Jacobian).

    Starts at z = 0 on the critical line, u = eps e along the unstable direction e = (1, -1)/sqrt 2;
    escape = loss event at 0.9 L_s on the integrator's dense output.  Tolerance: 0.1 % on a
    (the next-order corrections are O(eps^2) and the event error ~1e-10; observed ~1e-5).
    """
    spec, f = plain
    eps = np.geomspace(1e-7, 1e-3, 5)
    e = np.array([1.0, -1.0]) / math.sqrt(2)
    th0 = np.array([[1.0, 1.0, *(ex.J_STAR + x * e / 2), *(ex.J_STAR - x * e / 2)] for x in eps])
    base = np.array([1.0, 1.0, *ex.J_STAR, *ex.J_STAR])  # the point of the line at z = 0
    lam = transverse_rate(f.jacobian(base))
    tau, sol = ex.escape_times(f, th0, 0.9 * ex.L_STAR, t_end=400.0, rtol=1e-10, atol=1e-13)
    assert np.all(np.isfinite(tau)) and np.all(sol.status == 0)
    fit = fit_log_law(eps, tau, n_boot=200)
    assert fit.params["a"] * lam == pytest.approx(1.0, abs=1e-3)
    assert fit.ci["a"][0] <= 1 / lam * (1 + 1e-3) and fit.ci["a"][1] >= 1 / lam * (1 - 1e-3)


def test_milnor_start_is_stuck_at_alpha_0_and_escapes_through_the_ghost_at_alpha_pos():
    rng = np.random.default_rng(0)
    th0 = ex.overlap_starts(3, 1e-3, 2.0, rng)
    level = 0.5 * ex.L_STAR
    tau0, s0 = ex.escape_times(ex.compiled(ex.symmetric_spec(0.0)), th0, level, t_end=5e3)
    tau1, _ = ex.escape_times(ex.compiled(ex.symmetric_spec(0.08)), th0, level, t_end=5e3)
    assert np.all(np.isnan(tau0))  # Milnor attractor: never leaves the plateau
    np.testing.assert_allclose(s0.loss[:, -1], ex.L_STAR, rtol=1e-3)
    assert np.all(np.isfinite(tau1)) and np.all(tau1 > 100)  # ghost: slow passage, then escape


def test_overlap_starts_lie_at_distance_eps_from_the_line():
    th = ex.overlap_starts(5, 1e-4, np.linspace(-2, 2, 5), np.random.default_rng(1))
    np.testing.assert_allclose(np.linalg.norm(th[:, 2:4] - th[:, 4:6], axis=1), 1e-4)
    np.testing.assert_allclose(th[:, 0] + th[:, 1], ex.W_STAR)
    with pytest.raises(ValueError, match="eps"):
        ex.overlap_starts(2, 0.0, 0.0, np.random.default_rng(0))


@pytest.mark.parametrize("kind", ["overlap", "elimination"])
def test_fixed_slice_of_the_manifolds_module_agrees_with_the_plane_projection(plain, kind):
    """Two implementations of the projected flow: the manifolds module (SymPy chart D phi) and ours."""
    spec, f = plain
    xs, ys = np.array([-1.7, 0.4, 2.2]), np.array([0.1, 0.45])
    e = np.array([1.0, -1.0]) / math.sqrt(2)
    g = planes.fixed_grid(kind, spec, f, xs, ys, e)
    plane = (planes.overlap_plane if kind == "overlap" else planes.elimination_plane)(spec, e)
    for i, b in enumerate(ys):
        for j, a in enumerate(xs):
            th = np.ascontiguousarray(plane.theta(g["q_fixed"], a, b))
            F = f.flow(th)
            np.testing.assert_allclose(plane.velocity(th, F), (g["vx"][i, j], g["vy"][i, j]), rtol=1e-9,
                                       atol=1e-13)
            assert g["speed"][i, j] == pytest.approx(np.linalg.norm(F), rel=1e-12)


def test_overlap_starts_are_the_overlap_chart_of_the_analytic_layer():
    """The starts come from Chart.psi (no second hand-coded chart): phi(theta) gives back (w, Jbar, z, u)."""
    from ghostsing.analytic.manifold_coords import overlap

    th = ex.overlap_starts(3, 1e-2, np.array([-1.5, 0.2, 2.5]), np.random.default_rng(4))
    ch = overlap(ex.symmetric_spec(0.0))
    xi = np.array([ch.from_theta(t) for t in th])
    np.testing.assert_allclose(xi[:, 0], ex.W_STAR)
    np.testing.assert_allclose(xi[:, 1:3], np.tile(ex.J_STAR, (3, 1)), atol=1e-15)
    np.testing.assert_allclose(xi[:, 3], [-1.5, 0.2, 2.5])
    np.testing.assert_allclose(np.linalg.norm(xi[:, 4:], axis=1), 1e-2)


# ------------------------------------------------------------------------------------ the registry
def test_every_catalog_entry_resolves_and_its_presets_validate():
    """Every name of the catalog resolves to its module's Experiment of the stated kind; every preset of
    every experiment (``small`` for the simulations, the deep checks' own) survives a rebuild through
    config_from_mapping unchanged (the config's validation runs again)."""
    for name, (module, kind) in registry.CATALOG.items():
        try:
            exp = registry.get(name)
        except ImportError:  # a deep experiment on a machine without torch
            continue
        assert exp.name == name and exp.kind == kind and module.startswith("ghostsing.experiments.")
        assert exp.title and exp.presets, name
        for key, cfg in exp.presets.items():
            assert exp.config(key, {}) == cfg, (name, key)


@pytest.mark.parametrize("name", registry.names("simulation"))
def test_simulation_experiments_have_default_and_small_presets(name):
    exp = registry.get(name)
    assert {"default", "small"} <= set(exp.presets)
    assert exp.config() == exp.presets["default"]


def _run(name: str, tmp_path, preset: str = "small", **overrides):
    exp = registry.get(name)
    out, report = run_experiment(exp, exp.config(preset, overrides), tmp_path / name, progress=False)
    doc = json.loads(report.read_text())
    assert doc["experiment"] == name and (report.parent / "report.md").is_file()
    for fig in out.figures:
        assert (report.parent / fig).stat().st_size > 0, fig
    if out.arrays:
        assert (report.parent / "arrays.npz").is_file()
    return out, {p.name: p for p in out.predictions}


@pytest.mark.slow  # ~8 s alone (two relaxed grids, trajectories to t = 3000)
def test_portraits_small_checks_the_line_the_milnor_segment_and_the_escape_rate(tmp_path):
    out, preds = _run("portraits", tmp_path)
    assert out.figures == ("overlap_portraits.png",)
    (lo1, hi1), (lo2, hi2) = out.summary["milnor_interval_plain"]
    assert lo1 == -3.0 and hi2 == 3.0 and abs(hi1 + 1) <= 0.2 and abs(lo2 - 1) <= 0.2
    assert out.summary["escape_rate_z0"] == pytest.approx(0.0657498, abs=0.5e-7)
    assert out.summary["plain_max_speed_on_line"] < 1e-8
    assert out.arrays["speed_plain"].shape == (out.arrays["r"].size, out.arrays["z"].size)
    assert out.arrays["speed_alpha0.5"][0].max() > 1e-4  # with skips the line is no longer critical
    assert all(p.verdict == "holds" for p in preds.values()), preds


def test_portrait_configs_are_validated_once_with_the_allowed_values():
    exp = registry.get("portraits")
    with pytest.raises(ValueError, match=r"alphas\[0\]=0.0 is not allowed; allowed: a finite float > 0"):
        exp.config("small", {"alphas": "0"})
    with pytest.raises(ValueError, match="grid=2 is out of range; allowed: an integer >= 5"):
        exp.config("small", {"grid": 2})
    with pytest.raises(ValueError, match="slice='diagonal' is not allowed"):
        exp.config("small", {"slice": "diagonal"})


def test_elimination_portraits_small(tmp_path):
    out, _ = _run("elimination-portraits", tmp_path)
    assert out.figures == ("elimination_portraits.png",)
    # both singular manifolds are critical at alpha = 0 on the relaxed slice near their crossing
    assert out.arrays["line_w2=0_speed"][0] < 1e-8 and out.arrays["line_J2=0_speed"].min() < 1e-8
    assert out.summary["min_speed_skip"] > 0


def test_plateau_vs_epsilon_small_measures_the_escape_rate(tmp_path):
    out, preds = _run("plateau-vs-epsilon", tmp_path)
    assert out.summary["lambda_u"] == pytest.approx(0.0657498, abs=0.5e-7)
    assert abs(out.summary["slope_rel_error"]) < 0.1  # random directions: a within 10 % of 1/lambda_u
    assert out.summary["L_s"] == pytest.approx(1 / 3 - 4 / math.pi * math.asin(0.25), abs=1e-12)
    assert preds["lambda_u = 0.0657498"].verdict == "holds"
    assert preds["plateau slope = 1/lambda_u"].details["value"] > 0


def test_loss_curves_small_milnor_starts_stay_at_alpha_0_and_pass_with_skips(tmp_path):
    out, preds = _run("loss-curves", tmp_path)
    assert np.all(np.diff(out.arrays["loss_alpha_0"], axis=1) <= 1e-9)  # gradient flow: L never increases
    milnor = np.abs(out.arrays["z0"]) > 1
    assert milnor.any() and not np.isfinite(out.arrays["tau_alpha_0"][milnor]).any()
    assert np.isfinite(out.arrays["tau_alpha_0.08"][milnor]).all()
    assert {p.verdict for p in preds.values()} == {"holds"}


def test_sgd_vs_ode_small(tmp_path):
    out, preds = _run("sgd-vs-ode", tmp_path)
    assert out.summary["eps_star"] == pytest.approx(0.0116108, abs=5e-8)
    assert out.summary["max_abs_gap"] < 0.05
    assert out.arrays["eg_sgd"].shape == (2, out.arrays["time_sgd"].size)
    assert preds["SGD follows the ODE"].n_seeds == 2


@pytest.mark.parametrize(("name", "check"), [
    ("plateau-vs-epsilon", ("lambda_u", "inv_lambda_u", "slope_rel_error", "fit/params/a", "fit/params/c")),
    ("loss-curves", ("plateaus/0/escaped", "plateaus/0.02/length/q50", "plateaus/0.1/longest/mean")),
])
def test_default_presets_reproduce_the_committed_reports(tmp_path, name, check):
    """These two run in about a second at the published size: the numbers equal the committed report's."""
    committed = FIGURES / name / "report.json"
    assert committed.is_file(), f"{committed} is missing: python simulations/make_all.py --only {name}"
    old = json.loads(committed.read_text())["summary"]
    out, _ = _run(name, tmp_path, preset="default")

    def at(d, path):
        for k in path.split("/"):
            d = d[k]
        return d

    for key in check:
        assert at(out.summary, key) == pytest.approx(at(old, key), rel=1e-5), key
