"""The plateau-cell experiment as a sweep: registered, runs a small alpha grid with one compilation.

The cells are the ``small`` preset (t <= 4000, about 0.1 s each); the loss along each run is evaluated
with the runtime-alpha model of :mod:`ghostsing.analytic.parametric`, so the whole alpha axis uses one
generated module.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("xarray")
pytest.importorskip("zarr")

from ghostsing.experiments import registry  # noqa: E402
from ghostsing.experiments.plateau_cell import (  # noqa: E402
    PlateauCellConfig,
    line_start,
    one_unit_fit,
    run_plateau_cell,
)
from ghostsing.experiments.sweep import SweepSpec, load_sweep_toml, run_sweep  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_plateau_cell_is_registered_and_validates() -> None:
    exp = registry.get("plateau-cell")
    assert exp.kind == "simulation" and exp.config("small").t_max == 4000.0
    bad_settings = ({"teacher": "other"}, {"alpha": -1.0}, {"lr": 0.0}, {"N": 0},
                    {"teacher": "symmetric", "N": 1})
    for bad in bad_settings:
        with pytest.raises(ValueError):
            PlateauCellConfig(**bad)


def test_start_lies_on_the_former_line() -> None:
    w, J, L = one_unit_fit("reference")
    assert w == pytest.approx(9.556803, rel=1e-5) and J[0] == pytest.approx(1.838658, rel=1e-5)
    th = line_start("reference", 3, 1e-3, np.random.default_rng(0))
    assert (th[0] - th[1]) / (th[0] + th[1]) == pytest.approx(-2.0)
    assert np.linalg.norm(th[2:5] - th[5:8]) == pytest.approx(1e-3)
    assert (th[0] * th[2:5] + th[1] * th[5:8]) / w == pytest.approx([J[0], 0.0, 0.0], abs=1e-12)


def test_alpha_sweep_of_plateau_cells_compiles_once(tmp_path) -> None:
    spec = SweepSpec("plateau-cell", preset="small", grid={"alpha": [0.05, 0.1, 0.2]}, seeds=1)
    res = run_sweep(spec, tmp_path / "p.zarr", cluster="serial", progress=False)
    assert res.n_done == 3
    ds = res.dataset()
    tau = ds.tau_line.sel(seed=0).values
    assert np.all(np.isfinite(tau)) and tau[0] > tau[1] > tau[2]  # stronger skips, shorter passage
    assert (ds.escaped == 1).all()
    cache = Path(os.environ["GHOSTSING_CACHE_DIR"])
    assert len(list(cache.glob("gs_param_model_*.py"))) == 2  # K = 2 student (all alphas) + K = 1 fit
    out = run_plateau_cell(registry.get("plateau-cell").config("small", {"alpha": 0.1}), tmp_path)
    assert out.summary["tau_line"] == pytest.approx(ds.tau_line.sel(alpha=0.1, seed=0).item())
    assert math.isfinite(out.summary["plateau_loss"])


def test_shipped_sweep_files_resolve() -> None:
    counts = {"plateau": 108, "plateau_symmetric": 30, "plateau_slurm": 896}
    for name, n in counts.items():
        spec = load_sweep_toml(ROOT / "sweeps" / f"{name}.toml")
        assert len(spec.cells()) == n
