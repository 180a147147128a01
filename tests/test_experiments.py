"""Reduced planes, the critical line and its Milnor segment, plateau physics, and the experiment entry points.

Independent sources: the closed-form best one-unit fit of the symmetric teacher (w* = 2,
J* = (1, 1)/sqrt 6, L* = 1/3 - (4/pi) asin(1/4) = 0.011611, Saad & Solla's plateau), the escape rate
0.0657498 of that plateau (Saad & Solla / Goldt et al., recomputed to 7 digits; at small eta the
order-parameter ODE's rate / eta equals the gradient-flow rate), finite differences of the chart, and the
Jacobian of the generated flow.
"""

from __future__ import annotations

import json
import math
import os

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ghostsing.simulate import experiments as ex  # noqa: E402
from ghostsing.simulate.plateau import fit_log_law, transverse_rate  # noqa: E402


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
    plane = ex.OverlapPlane(spec, np.array([0.3, -1.0]))
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
    plane = (ex.OverlapPlane if kind == "overlap" else ex.EliminationPlane)(spec, np.array([1.0, -1.0]))
    th = np.ascontiguousarray(plane.theta(np.array([1.8, 0.5, 0.3]), 0.4, 0.3))
    F = f.flow(th)
    h = 1e-6
    fd = (plane.coords(th + h * F) - plane.coords(th - h * F)) / (2 * h)  # d/dt coords along the flow
    np.testing.assert_allclose(plane.velocity(th, F), fd, rtol=1e-6, atol=1e-9)


def test_relaxed_slice_at_alpha_0_is_a_line_of_critical_points_at_the_best_fit(plain):
    spec, f = plain
    plane = ex.OverlapPlane(spec, np.array([1.0, -1.0]))
    zs = np.linspace(-2.5, 2.5, 6)
    g = ex.relaxed_grid(plane, f, zs, np.array([0.0, 0.2]), np.array([1.5, 0.5, 0.3]))
    assert np.all(g["speed"][0] < 1e-9)  # every point of {u = 0} at the relaxed (w, Jbar) is critical
    np.testing.assert_allclose(g["q"][0, :, 0], 2.0, atol=1e-7)
    np.testing.assert_allclose(g["q"][0, :, 1:], 1 / math.sqrt(6), atol=1e-7)
    assert np.all(g["speed"][1] > 1e-4)  # off the line the flow moves


def test_milnor_segment_is_where_the_line_attracts_and_matches_the_published_rate(plain):
    spec, f = plain
    z = np.linspace(-3, 3, 61)
    thetas = [np.array([ex.W_STAR * (1 + a) / 2, ex.W_STAR * (1 - a) / 2, *ex.J_STAR, *ex.J_STAR]) for a in z]
    rates = np.array([transverse_rate(f.jacobian(t)) for t in thetas])
    segs = ex.attracting_segments(z, np.zeros_like(z), rates, tol=1e-7)
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


@pytest.mark.slow  # ~17 s alone (two specs, trajectories to t = 3000); run in CI
def test_run_portraits_on_a_tiny_grid_writes_figure_and_data(tmp_path):
    paths = ex.run_portraits(tmp_path, alpha_skip=0.5, grid=7, progress=False, line_points=31)
    names = sorted(p.name for p in paths)
    assert names == ["overlap_portraits.json", "overlap_portraits.npz", "overlap_portraits.png"]
    meta = json.loads((tmp_path / "overlap_portraits.json").read_text())
    (lo1, hi1), (lo2, hi2) = meta["milnor_interval_plain"]
    assert lo1 == -3.0 and hi2 == 3.0 and abs(hi1 + 1) <= 0.2 and abs(lo2 - 1) <= 0.2
    assert meta["spec"]["K"] == 2 and meta["alpha_skip"] == 0.5
    d = np.load(tmp_path / "overlap_portraits.npz")
    assert d["speed_plain"].shape == (d["r"].size, d["z"].size)
    assert np.all(d["speed_plain"][0] < 1e-8) and d["speed_skip"][0].max() > 1e-4
    with pytest.raises(ValueError, match="alpha_skip"):
        ex.run_portraits(tmp_path, alpha_skip=0.0)
    with pytest.raises(ValueError, match="grid"):
        ex.run_portraits(tmp_path, grid=2)


def test_experiment_registry_matches_the_cli_contract():
    import inspect

    for name, fn in ex.EXPERIMENTS.items():
        params = inspect.signature(fn).parameters
        assert {"out_dir", "seed", "n"} <= set(params), name
        assert (fn.__doc__ or "").strip(), name


@pytest.mark.parametrize("kind", ["overlap", "elimination"])
def test_fixed_slice_of_the_manifolds_module_agrees_with_the_plane_projection(plain, kind):
    """Two implementations of the projected flow: the manifolds module (SymPy chart D phi) and ours."""
    spec, f = plain
    xs, ys = np.array([-1.7, 0.4, 2.2]), np.array([0.1, 0.45])
    e = np.array([1.0, -1.0]) / math.sqrt(2)
    g = ex.fixed_grid(kind, spec, f, xs, ys, e)
    plane = (ex.OverlapPlane if kind == "overlap" else ex.EliminationPlane)(spec, e)
    for i, b in enumerate(ys):
        for j, a in enumerate(xs):
            th = np.ascontiguousarray(plane.theta(g["q_fixed"], a, b))
            F = f.flow(th)
            np.testing.assert_allclose(plane.velocity(th, F), (g["vx"][i, j], g["vy"][i, j]), rtol=1e-9,
                                       atol=1e-13)
            assert g["speed"][i, j] == pytest.approx(np.linalg.norm(F), rel=1e-12)


@pytest.mark.slow  # ~35 s on 2 busy cores (SGD + ODE compilation, five experiments); run in CI
def test_every_experiment_runs_end_to_end_on_tiny_settings(tmp_path):
    """Each entry point writes its PNG + data + JSON; the numbers inside are checked against theory."""
    out = tmp_path / "figs"
    p = ex.run_plateau_vs_epsilon(out, n=3, eps=(1e-2, 1e-4, 1e-6), n_boot=50, progress=False)
    meta = json.loads((out / "plateau_vs_epsilon.json").read_text())
    assert meta["lambda_u"] == pytest.approx(0.0657498, abs=0.5e-7)  # the symmetric plateau's escape rate
    assert abs(meta["slope_rel_error"]) < 0.1  # random directions: a within 10 % of 1/lambda_u
    p += ex.run_loss_curves(out, n=4, alphas=(0.0, 0.08), t_end=5e3, progress=False)
    d = np.load(out / "loss_curves.npz")
    assert np.all(np.diff(d["loss_alpha_0"], axis=1) <= 1e-9)  # gradient flow: the loss never increases
    p += ex.run_sgd_vs_ode(out, n=2, N=60, alpha_max=20.0, progress=False)
    p += ex.run_elimination_portraits(out, alpha_skip=0.5, grid=7, line_points=9, progress=False)
    for path in p:
        assert path.exists() and path.stat().st_size > 0, path
    assert {q.suffix for q in p} >= {".png", ".json", ".csv", ".npz"}
