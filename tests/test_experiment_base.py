"""The experiment contract: configs from mappings, the registry's errors, the one report writer."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest

from ghostsing._io import to_jsonable, write_json_atomic
from ghostsing.experiments import registry
from ghostsing.experiments.base import Experiment, ExperimentOutput, config_from_mapping, merge_outputs
from ghostsing.experiments.predictions import difference_prediction
from ghostsing.experiments.report import run_experiment
from ghostsing.validation import check_float, check_int, check_seeds


@dataclass(frozen=True)
class ToyConfig:
    alpha: float = 0.1
    n: int = 3
    seeds: tuple[int, ...] = (0, 1)
    label: str | None = None
    fast: bool = False

    def __post_init__(self) -> None:
        check_float("alpha", self.alpha, 0.0)
        check_int("n", self.n, 1)
        check_seeds("seeds", self.seeds)


def _toy_run(config: ToyConfig, out_dir, *, resume=False, progress=True) -> ExperimentOutput:
    x = np.arange(config.n) * config.alpha
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 0.1, 8), rng.normal(0.0, 0.1, 8)
    pred = difference_prediction("a above b", a, b, +1, "mean(a) - mean(b)", "toy claim")
    return ExperimentOutput((pred,), (), {"x": x}, {"total": float(x.sum()), "nested": {"n": config.n}})


TOY = Experiment("toy", "A toy", "simulation", ToyConfig, _toy_run, {"small": ToyConfig(n=2)})


def test_config_from_mapping_coerces_strings_and_lists():
    cfg = config_from_mapping(ToyConfig, {"alpha": "0.5", "n": "4", "seeds": "3,4", "label": "none",
                                          "fast": "true"})
    assert cfg == ToyConfig(alpha=0.5, n=4, seeds=(3, 4), label=None, fast=True)
    assert config_from_mapping(ToyConfig, {"seeds": [5, 6]}).seeds == (5, 6)


@pytest.mark.parametrize(("values", "message"), [
    ({"alpah": 1}, "'alpah' is not a setting of ToyConfig; allowed: alpha, fast"),
    ({"alpha": -1}, "alpha=-1.0 is not allowed; allowed: a finite float >= 0"),
    ({"n": "2.5"}, "n='2.5' is not a int"),
    ({"seeds": "1,1"}, "repeats a value"),
    ({"fast": "maybe"}, "fast='maybe' is not a boolean"),
])
def test_bad_settings_name_the_value_and_what_is_allowed(values, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config_from_mapping(ToyConfig, values)


def test_experiment_presets_and_errors():
    assert TOY.config("small").n == 2
    assert TOY.config(None, {"n": 5}).n == 5
    with pytest.raises(ValueError, match="preset='big' is not one of the presets of 'toy'; allowed: small"):
        TOY.config("big")
    with pytest.raises(ValueError, match="kind='other' is not allowed"):
        Experiment("x", "x", "other", ToyConfig, _toy_run)


def test_registry_names_every_module_experiment():
    with pytest.raises(ValueError, match="experiment 'nope' is not registered"):
        registry.get("nope")
    for name in registry.names():
        assert registry.get(name).name == name


def test_run_experiment_writes_reports_and_refuses_a_different_resume(tmp_path):
    out, path = run_experiment(TOY, TOY.config("small"), tmp_path)
    doc = json.loads(path.read_text())
    assert doc["experiment"] == "toy" and doc["config"]["n"] == 2
    assert doc["predictions"][0]["verdict"] == "holds"
    assert np.load(tmp_path / "arrays.npz")["x"].tolist() == [0.0, 0.1]
    assert "| a above b | **holds** |" in (tmp_path / "report.md").read_text()
    assert out.scalars()["nested/n"] == 2.0
    with pytest.raises(ValueError, match="differs in n"):
        run_experiment(TOY, TOY.config(None), tmp_path, resume=True)


def test_merge_outputs_refuses_repeated_keys():
    a = ExperimentOutput(summary={"k": 1})
    assert merge_outputs([a, ExperimentOutput(summary={"j": 2})]).summary == {"k": 1, "j": 2}
    with pytest.raises(ValueError, match=r"repeat the keys \['k'\]"):
        merge_outputs([a, a])


def test_json_conversion_is_one_rule(tmp_path):
    doc = {"a": np.float64("nan"), "b": (1, np.int64(2)), "c": float("inf"), "d": np.arange(2)}
    assert to_jsonable(doc) == {"a": None, "b": [1, 2], "c": None, "d": [0, 1]}
    write_json_atomic(tmp_path / "x.json", doc)
    assert json.loads((tmp_path / "x.json").read_text())["a"] is None
    assert not list(tmp_path.glob(".*tmp"))
