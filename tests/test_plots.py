"""Plotting functions: inspect the Figure objects (panels, labels, drawn data), and the files written."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import LineCollection, QuadMesh  # noqa: E402

from ghostsing.plots import (  # noqa: E402
    PortraitData,
    plot_histograms,
    plot_loss_bands,
    plot_scaling,
    plot_sgd_vs_ode,
    portrait_pair,
    save_figure,
)
from ghostsing.plots.portraits import shared_norm  # noqa: E402
from ghostsing.simulate.scaling_fits import fit_log_law  # noqa: E402


def saddle_panel(scale: float, title: str) -> PortraitData:
    x = np.linspace(-1, 1, 9)
    y = np.linspace(0, 1, 7)
    X, Y = np.meshgrid(x, y)
    vx, vy = -scale * X, scale * Y
    line = np.stack([x, np.zeros_like(x)], axis=1)
    return PortraitData(x, y, vx, vy, np.hypot(vx, vy), title=title, singular=[line], milnor=[line[:3]],
                        trajectories=[np.array([[0.5, 0.1], [0.2, 0.5], [0.05, 0.9]])])


def test_portrait_pair_has_two_panels_a_shared_colour_scale_and_a_labelled_colour_bar():
    left, right = saddle_panel(1.0, "plain"), saddle_panel(10.0, "skip")
    fig = portrait_pair(left, right, floor=1e-3)
    assert len(fig.axes) == 3  # two panels + colour bar
    a0, a1, cb = fig.axes
    assert a0.get_title() == "plain" and a1.get_title() == "skip"
    assert a0.get_xlabel() == "$z$" and a0.get_ylabel() == "$|u|$"
    assert "log_{10}" in cb.get_ylabel()
    meshes = [next(c for c in ax.collections if isinstance(c, QuadMesh)) for ax in (a0, a1)]
    # one shared norm from the smallest to the largest log10 speed of BOTH panels (clipped at the floor)
    lo = np.log10(max(1e-3, min(left.speed.min(), right.speed.min())))
    hi = np.log10(max(left.speed.max(), right.speed.max()))
    for m in meshes:
        assert m.norm.vmin == pytest.approx(lo) and m.norm.vmax == pytest.approx(hi)
    # stream lines were drawn, and singular / Milnor / trajectory lines with their legend labels
    assert any(isinstance(c, LineCollection) for c in a0.collections)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "Milnor-attractor segment" in labels and "trajectories (full flow)" in labels
    plt.close(fig)


def test_shared_norm_matches_numpy_and_portrait_data_validates():
    p = saddle_panel(2.0, "")
    n = shared_norm([p], floor=1e-6)
    vals = np.log10(np.maximum(p.speed, 1e-6))
    assert (n.vmin, n.vmax) == (pytest.approx(vals.min()), pytest.approx(vals.max()))
    with pytest.raises(ValueError, match="shape"):
        PortraitData(p.x, p.y, p.vx[:-1], p.vy, p.speed)
    with pytest.raises(ValueError, match=">= 0"):
        PortraitData(p.x, p.y, p.vx, p.vy, -p.speed)


def test_loss_bands_draw_the_median_and_the_quantiles_on_a_log_time_axis():
    rng = np.random.default_rng(0)
    t = np.concatenate([[0.0], np.geomspace(1e-2, 1e3, 50)])
    L = np.exp(-np.outer(rng.uniform(0.5, 2.0, 21), t / 100)) * 0.1
    fig = plot_loss_bands(t, {"plain": L, "skip": L / 2}, L_s=0.05, quantiles=(0.25, 0.75))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert ax.get_xlabel().startswith("time $t$") and "L(t)" in ax.get_ylabel()
    med_line = next(ln for ln in ax.get_lines() if ln.get_label().startswith("plain"))
    np.testing.assert_allclose(med_line.get_ydata(), np.median(L, axis=0)[1:])  # t = 0 dropped
    assert len(ax.collections) == 2  # one band per ensemble
    plt.close(fig)
    with pytest.raises(ValueError, match="shape"):
        plot_loss_bands(t, {"bad": L[:, :-1]})


def test_histograms_count_every_finite_sample_and_report_censored_runs():
    v = np.array([1.0, 2.0, 2.5, 3.0, np.nan, np.nan])
    fig = plot_histograms({"a": v, "b": v + 1}, bins=5)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts[0] == "a (n=6, 2 censored)"
    assert ax.get_ylabel().startswith("count")
    plt.close(fig)


def test_scaling_plot_draws_the_fitted_curve_of_the_fit_result():
    rng = np.random.default_rng(1)
    eps = np.repeat(np.geomspace(1e-6, 1e-1, 5), 3)
    tau = 4 * np.log(1 / eps) + 2 + rng.normal(0, 0.3, eps.size)
    fit = fit_log_law(eps, tau, n_boot=100)
    fig = plot_scaling(eps, tau, {"fit": fit})
    ax = fig.axes[0]
    line = next(ln for ln in ax.get_lines() if ln.get_label() == "fit")
    np.testing.assert_allclose(line.get_ydata(), fit.predict(line.get_xdata()))
    assert ax.get_xscale() == "log" and "varepsilon" in ax.get_xlabel()
    plt.close(fig)


def test_sgd_vs_ode_axis_is_steps_over_N():
    a = np.linspace(0, 10, 11)
    fig = plot_sgd_vs_ode(a, np.vstack([np.exp(-a), 2 * np.exp(-a)]), a, 1.5 * np.exp(-a))
    ax = fig.axes[0]
    assert "steps / $N$" in ax.get_xlabel()
    mean_line = next(ln for ln in ax.get_lines() if ln.get_label().endswith("mean"))
    np.testing.assert_allclose(mean_line.get_ydata(), 1.5 * np.exp(-a))
    plt.close(fig)


def test_save_figure_writes_png_and_pdf_atomically_and_closes_the_figure(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    names = save_figure(fig, tmp_path / "out", "demo", pdf=True)
    assert names == ("demo.png", "demo.pdf")
    assert (tmp_path / "out" / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "out" / "demo.pdf").read_bytes()[:4] == b"%PDF"
    assert not plt.fignum_exists(fig.number)
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(ValueError, match="stem"):
        save_figure(plt.figure(), tmp_path, "a/b")


def test_one_palette_gives_an_arm_the_same_colour_everywhere():
    from ghostsing.plots.style import ARM_COLOURS, CYCLE, OKABE_ITO, colour_for

    assert set(CYCLE) <= set(OKABE_ITO.values()) and OKABE_ITO["yellow"] not in CYCLE
    assert colour_for("plain") == colour_for(" Plain ") == OKABE_ITO["blue"]
    assert colour_for("residual") == OKABE_ITO["vermillion"] != colour_for("plain")
    assert set(ARM_COLOURS.values()) <= set(OKABE_ITO.values())
    # unknown labels: a fixed colour of the cycle, the same in every call (and every process: CRC-32)
    assert colour_for("random seed 5") in CYCLE and colour_for("random seed 5") == colour_for("random seed 5")
    import zlib

    assert colour_for("random seed 5") == CYCLE[zlib.crc32(b"random seed 5") % len(CYCLE)]
    # the basin figure draws its end states with these colours
    from ghostsing.plots.ghosts import plot_basin

    fig = plot_basin(np.array([0.0, 0.1]), {"global": np.array([1.0, 0.5]), "trap": np.array([0.0, 0.5])}, 10)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    colours = {lab: matplotlib.colors.to_hex(h[0].get_color())
               for h, lab in zip(handles, labels, strict=True)}
    assert colours == {"global": OKABE_ITO["green"].lower(), "trap": OKABE_ITO["vermillion"].lower()}
    plt.close(fig)
