"""The registered ghost studies (ghostsing.experiments.ghosts) at their "small" presets: the numbers they
report against the derived laws (passage constant C = (z_b - z0)/v1 against the measured alpha tau, the
certified trap's alpha z* against zeta*, the scaled reduction's escape time and growth rate c = 0.037406,
the derived noise drift), and their configs' validation."""

from __future__ import annotations

import json
import os

os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ghostsing.experiments import registry  # noqa: E402
from ghostsing.experiments.report import run_experiment  # noqa: E402


def _run(name: str, tmp_path, **overrides):
    exp = registry.get(name)
    out, report = run_experiment(exp, exp.config("small", overrides), tmp_path / name, progress=False)
    assert json.loads(report.read_text())["experiment"] == name
    for fig in out.figures:
        assert (report.parent / fig).stat().st_size > 0
    return out, {p.name: p for p in out.predictions}


@pytest.mark.slow  # ~12 s: three alphas down to 1e-4
def test_ghost_passage_small_alpha_tau_is_the_computed_constant(tmp_path):
    out, preds = _run("ghost-passage", tmp_path)
    ref = out.summary["reference"]
    assert ref["C"] == pytest.approx((ref["z_b"] - ref["z0"]) / ref["v1"], rel=1e-12)
    rel = np.asarray(ref["alpha_tau_over_C_minus_1_mean"])
    assert np.all(np.abs(rel) < 5e-3) and abs(rel[0]) < 1e-3  # alpha tau -> C with an O(alpha) correction
    assert np.all(np.diff(np.abs(rel)) > 0)
    p = preds["alpha tau -> C (reference)"]
    assert p.verdict == "holds" and p.n_seeds == 6


@pytest.mark.slow  # ~17 s: certified traps at two alphas and trajectories into them
def test_ghost_traps_small_are_certified_and_reached(tmp_path):
    out, preds = _run("ghost-traps", tmp_path)
    assert all(t["certified"] for t in out.summary["traps"])
    assert all(t["trajectory_rel_distance_to_trap"] < 1e-8 for t in out.summary["traps"])
    zeta = out.summary["zeta_star"]
    assert out.summary["alpha_z_fit"]["intercept"] == pytest.approx(zeta, rel=1e-3)
    assert {p.verdict for p in preds.values()} == {"holds"}


@pytest.mark.slow  # ~10 s
def test_ghost_basin_small_fractions(tmp_path):
    out, preds = _run("ghost-basin", tmp_path)
    per = out.summary["per_alpha"]
    assert per[0]["trap_loss"] is None
    assert sum(per[1]["fractions"].values()) == pytest.approx(1.0)
    assert not preds


@pytest.mark.slow  # ~25 s: escape at alpha = 5e-4 takes t ~ 1e8
def test_symmetric_passage_small_matches_the_scaled_reduction(tmp_path):
    out, preds = _run("symmetric-passage", tmp_path)
    assert out.summary["c_derived"] == pytest.approx(0.037406, abs=1e-6)
    assert out.summary["kappa_derived"] == pytest.approx(0.0160895, abs=1e-6)
    measured = np.asarray(out.summary["tau_alpha2_mean"], dtype=float)
    predicted = np.asarray(out.summary["tau_alpha2_predicted"], dtype=float)
    dev = np.abs(measured / predicted - 1)  # alpha = 2e-4, 5e-4, 1e-3, 2e-3: 0.10, 0.24, 0.47, 1.08 %
    assert np.all(dev[:3] < 0.01) and np.all(np.diff(dev) > 0)  # the finite-alpha correction grows with alpha
    assert preds["escape time = scaled reduction"].verdict == "holds"
    c = preds["growth rate c = scaled reduction"]
    assert abs(c.details["sample_mean"] / 0.037406 - 1) < 0.02


@pytest.mark.slow  # ~13 s: SGD on the line
def test_ghost_noise_small_crossing_times_follow_the_derived_law(tmp_path):
    out, preds = _run("ghost-noise", tmp_path)
    rel = np.asarray(out.summary["measured_over_predicted_minus_1"], dtype=float)
    assert rel.shape == (1, 2) and np.all(np.abs(rel) < 0.25)  # 3 seeds per cell
    assert out.summary["n_no_crossing"] == 0
    assert preds["SGD crossing time = derived noise law"].n_seeds == 2


def test_ghost_configs_refuse_bad_values_by_name():
    with pytest.raises(ValueError, match="teacher 'nope' is not allowed; allowed: 'reference'"):
        registry.get("ghost-passage").config("small", {"teachers": "reference,nope"})
    with pytest.raises(ValueError, match=r"alphas\[1\]=-0.1 is not allowed"):
        registry.get("ghost-traps").config("small", {"alphas": "0.3,-0.1"})
    with pytest.raises(ValueError, match="n=0 is out of range"):
        registry.get("ghost-noise").config("small", {"n": 0})


@pytest.mark.slow  # ~20 s: alpha down to 1e-4 and three zeta0 at alpha = 1e-4
def test_degenerate_passage_deep_small_scans_alpha_and_zeta0(tmp_path):
    """The small preset: the escape time against the scaled reduction's T(alpha z0) (no free parameter)
    over alpha at z0 = 2 and over zeta0 = alpha z0 at alpha = 1e-4; the deviation grows with alpha."""
    out, preds = _run("degenerate-passage-deep", tmp_path)
    assert out.summary["kappa_derived"] == pytest.approx(0.0160895, abs=1e-6)
    assert abs(out.summary["fold_eigenvalue"]) < 1e-6
    dev = np.asarray(out.summary["relative_error"], dtype=float)[:3]  # alpha = 1e-4, 5e-4, 1e-3
    assert np.all(np.abs(dev) < 0.006) and np.all(np.diff(np.abs(dev)) > 0)
    zeta = np.asarray(out.summary["zeta_tau_alpha2_mean"], dtype=float)
    zpred = np.asarray(out.summary["zeta_predicted"], dtype=float)
    assert np.all(np.abs(zeta / zpred - 1) < 2e-3)  # 1e-4 is not yet small: -5e-4 .. -1e-3
    assert preds["escape time = scaled reduction, over alpha z0"].verdict == "holds"
    assert preds["escape time = scaled reduction, over alpha"].verdict == "holds"


@pytest.mark.slow  # ~25 s: SGD at eta = 1e-2, one skip strength on each side of alpha_c
def test_ghost_noise_trap_small_crosses_below_alpha_c_only(tmp_path):
    """Trap half of the reference teacher's segment: below the derived alpha_c = eta min|q|/v1 SGD leaves
    through z = 1 at the linear-response time; above it no seed crosses and z ends beyond z*."""
    out, preds = _run("ghost-noise-trap", tmp_path)
    assert out.summary["alpha_c_over_eta"] == pytest.approx(0.7907, rel=1e-3)
    frac = np.asarray(out.summary["crossed_fraction"], dtype=float)
    assert frac[0, 0] == 1.0 and frac[0, 1] == 0.0
    tau = out.summary["tau_mean"][0][0]
    assert tau / np.asarray(out.summary["predicted"], dtype=float)[0, 0] == pytest.approx(1.0, abs=0.15)
    assert preds["crossing time below alpha_c = linear response"].verdict == "holds"
