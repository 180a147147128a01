"""The registered deep experiments at test size: dead branches and the Parker-Hoang ablation run through
the one report writer; configs are validated once; the registry resolves their presets."""

import json

import numpy as np
import pytest

from ghostsing.experiments.deep_dead_branches import DeadBranchesConfig
from ghostsing.experiments.deep_parker_hoang import ParkerHoangConfig
from ghostsing.experiments.deep_skips import SkipsConfig, parse_arm, time_to_threshold
from ghostsing.experiments.registry import find_preset, get
from ghostsing.experiments.report import run_experiment


def test_registry_resolves_the_deep_presets():
    for preset, exp_name in (("smoke", "skip-comparison"), ("fair-comparison", "skip-comparison"),
                             ("orhan-pitkow", "skip-comparison"), ("skip-degeneracy", "skip-comparison"),
                             ("dead-branches", "dead-branches"), ("parker-hoang", "parker-hoang"),
                             ("parker-hoang-ablation", "parker-hoang")):
        exp, key = find_preset(preset, kind="deep")
        assert exp.name == exp_name and key == preset
        cfg = exp.config(key)
        if preset != "smoke":
            assert len(cfg.seeds) >= 5, preset


def test_configs_validate_once_with_named_errors():
    with pytest.raises(ValueError, match="data='maybe' is not allowed"):
        SkipsConfig(data="maybe")
    with pytest.raises(ValueError, match="optimizer='lbfgs' is not allowed"):
        ParkerHoangConfig(optimizer="lbfgs")
    with pytest.raises(ValueError, match="device='gpu0' is not allowed"):
        DeadBranchesConfig(device="gpu0")
    with pytest.raises(ValueError, match="one learning rate per optimiser"):
        DeadBranchesConfig(optimizers=("adam", "sgd"), lrs=(1e-3,))
    with pytest.raises(ValueError, match="even width"):
        SkipsConfig(width=33, skips=("none@looks-linear",))
    with pytest.raises(ValueError, match="repeats an arm"):
        SkipsConfig(skips=("identity", "identity@scaled"))
    assert parse_arm("none@looks-linear", "scaled") == ("none", "looks-linear")
    assert SkipsConfig(skips=("identity@scaled", "none")).skips == ("identity", "none")


def test_time_to_threshold_censors_and_flags_divergence():
    h = np.array([[3.0, 3.0, 3.0], [2.0, 2.6, np.nan], [1.4, 2.5, np.nan]])
    np.testing.assert_array_equal(time_to_threshold(h, 2.0), [1.0, 3.0, np.nan])


def test_dead_branches_small(tmp_path):
    exp = get("dead-branches")
    cfg = exp.config("dead-branches-small")
    out, path = run_experiment(exp, cfg, tmp_path, progress=False)
    rep = json.loads(path.read_text())
    names = [p["name"] for p in rep["predictions"]]
    assert any("kills more branches" in n for n in names) and any("warm-up" in n for n in names)
    assert any("die in epoch 1" in n for n in names)
    arrays = np.load(tmp_path / "arrays.npz")
    steps = arrays["adam_warm-up0_scaled/steps"]
    assert steps[0] == 0 and np.all(np.diff(steps) == cfg.log_every)      # epoch 1, every log_every steps
    assert arrays["adam_warm-up0_scaled/epoch_dead"].shape == (cfg.epochs + 1, 2)
    for f in rep["figures"]:
        assert (tmp_path / f).is_file()


def test_parker_hoang_ablation_small(tmp_path):
    exp = get("parker-hoang")
    cfg = exp.config("parker-hoang-small")
    out, path = run_experiment(exp, cfg, tmp_path, progress=False)
    rep = json.loads(path.read_text())
    names = [p["name"] for p in rep["predictions"]]
    assert names == ["the skips lower the training loss, training mode [parker-hoang ablation]",
                     "the skips lower the training loss, evaluation mode [parker-hoang ablation]",
                     "the skips raise the test accuracy [parker-hoang ablation]"]
    assert all(p["verdict"] == "underpowered" for p in rep["predictions"])   # 2 vs 2 seeds
    assert {r["n_params"] for r in rep["summary"]["runs"]} == {223_242}
