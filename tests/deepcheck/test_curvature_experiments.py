"""The curvature experiments end to end on tiny synthetic data: structure, internal cross-checks
(exact vs SLQ), resume and the CLI hook."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from ghostsing.deepcheck import curvature_experiments as ce


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _tiny(name: str, **kw) -> ce.CurvatureConfig:
    base = dict(seeds=(0, 1), depths=(2,), width=4, pool=8, n_train=64, n_test=16, data="synthetic",
                epochs=200, slq_probes=4, slq_m=40, top_k=3, probe_every=20, proj_steps=20,
                n_sizes=(16, 32, 64), sgld_draws=100, sgld_burnin=50, sgld_chains=2)
    base.update(kw)
    return dataclasses.replace(ce.PRESETS[name], **base)


def test_hessian_experiment(tmp_path):
    cfg = _tiny("hessian", target_loss=2.0)
    res = ce.run(cfg, tmp_path, progress=False)
    names = [p.name for p in res["predictions"]]
    assert any(n.startswith("plain nets have more degenerate") for n in names)
    assert any(n.startswith("plain nets have more negative") for n in names)
    assert any(n.startswith("plain nets have more near-zero Hessian eigenvalues, absolute") for n in names)
    assert (tmp_path / res["figures"][0]).is_file()
    units = [json.loads(p.read_text()) for p in sorted((tmp_path / "units").glob("*.json"))]
    assert len(units) == 4
    for u in units:
        assert u["exact"] and u["n_params"] == 49 * 4 + 5 * 4 + 5 * 10
        # the SLQ estimate (40 Lanczos nodes) finds the exact lambda_max
        assert u["slq_lambda_max"] == pytest.approx(u["lambda_max"], rel=1e-6)
        assert u["slq_trace"] * u["trace"] > 0  # 4 probes: right sign, not a precise value
        assert np.all(np.diff(u["f_deg"]) >= 0)  # a CDF in tau
        assert 0 <= u["f_neg"] <= 1
    # resume: units on disk are reused, not recomputed
    path = tmp_path / "units" / "hessian_cifar10_d2_none_s0.json"
    u = json.loads(path.read_text())
    u["f_deg_pred"] = 0.123456
    path.write_text(json.dumps(u))
    res2 = ce.run(cfg, tmp_path, resume=True, progress=False)
    assert 0.123456 in res2["summary"]["cifar10_d2"]["none"]["f_deg_pred"]


def test_hessian_experiment_large_net_path_uses_slq(tmp_path):
    # P = 266 > max_exact = 100: no exact spectrum, the SLQ estimate stands in
    cfg = _tiny("hessian", target_loss=2.0, max_exact=100, seeds=(0,), skips=("none",))
    res = ce.run(cfg, tmp_path, progress=False)
    u = json.loads((tmp_path / "units" / "hessian_cifar10_d2_none_s0.json").read_text())
    assert u["exact"] is False
    assert u["f_deg"] == u["slq_f_deg"] and u["lambda_max"] == u["slq_lambda_max"]
    assert res["predictions"] == []  # one skip only: no plain-vs-residual comparison


def test_lowell_experiment(tmp_path):
    res = ce.run(_tiny("lowell"), tmp_path, progress=False)
    names = [p.name for p in res["predictions"]]
    for stem in ("sharpness at the edge of stability", "gradient concentrates", "top-subspace steps",
                 "gradient norm grows"):
        assert sum(n.startswith(stem) for n in names) == 2, stem  # one per skip
    u = json.loads((tmp_path / "units" / "lowell_cifar10_d2_none_s0.json").read_text())
    # eta = 0.6 * 2 / lambda_max(init): the first probe's sharpness times eta / 2 is 0.6
    assert u["gd"]["sharpness"][0] * u["eta"] / 2 == pytest.approx(0.6, rel=1e-6)
    assert set(u["projected"]) == {"full", "top", "bulk"}
    assert len(u["projected"]["top"]) == 21


def test_slt_experiment_and_cli(tmp_path):
    from ghostsing.deepcheck.__main__ import main

    out = tmp_path / "run"
    toml = tmp_path / "slt.toml"
    toml.write_text('preset = "slt"\nsgld_draws = 100\nsgld_burnin = 50\nsgld_chains = 2\npool = 8\n')
    code = main(["--config", str(toml), "--seeds", "2", "--depth", "2", "--width", "4", "--n-train", "64",
                 "--n-test", "16", "--epochs", "100", "--data", "synthetic", "--out", str(out),
                 "--no-progress"])
    assert code == 0
    rep = json.loads((out / "report.json").read_text())
    names = [p["name"] for p in rep["predictions"]]
    assert any(n.startswith("plain nets have a lower LLC") for n in names)
    rows = rep["summary"]["cifar10_d2"]
    for skip in ("none", "identity"):
        assert len(rows[skip]["llc"]) == 2
        assert all(np.isfinite(v) for v in rows[skip]["llc"])


def test_bad_config():
    with pytest.raises(ValueError, match="experiment"):
        ce.CurvatureConfig(name="x", experiment="nope")
    with pytest.raises(ValueError, match="skips"):
        ce.CurvatureConfig(name="x", skips=("hyper",))
    with pytest.raises(ValueError, match="pool"):
        ce.CurvatureConfig(name="x", pool=3)
    with pytest.raises(TypeError):
        ce.run({"experiment": "hessian"}, "/nonexistent")
