"""Report writer: required JSON keys, NaN -> null, hook contract, figures are PNGs."""

import json

import numpy as np
import pytest

from ghostsing.deepcheck.report import (
    ExperimentOutput,
    as_output,
    merge_outputs,
    plot_probe_curves,
    plot_training_curves,
    write_report,
)
from ghostsing.experiments.predictions import Prediction, difference_prediction


def test_report_json_and_markdown(tmp_path):
    p1 = difference_prediction("a", [2.0, 2.1, 2.2, 2.3, 2.15], [1.0, 1.1, 0.9, 1.05, 0.95], +1, "diff",
                               "claim a")
    p2 = Prediction("b", "inconclusive", float("nan"), (float("nan"), float("nan")), 1, "s", "claim b")
    second = as_output({"predictions": [p2], "summary": {"y": np.float64(2.5)}, "markdown": "## B"})
    out = merge_outputs([ExperimentOutput((p1,), ("f.png",), {"x": 1}, "## A"), second])
    meta = {"device": "cpu", "note": "reduced"}
    j, m = write_report(tmp_path, "t", {"epochs": 3, "seeds": (0, 1)}, out, meta)
    rep = json.loads(j.read_text())
    assert [p["name"] for p in rep["predictions"]] == ["a", "b"]
    assert rep["predictions"][1]["effect"] is None and rep["predictions"][1]["ci"] == [None, None]
    assert rep["config"] == {"epochs": 3, "seeds": [0, 1]} and rep["summary"] == {"x": 1, "y": 2.5}
    text = m.read_text()
    assert "| a | **holds** |" in text and "## A" in text and "## B" in text and "> **reduced**" in text
    assert not list(tmp_path.glob("*.tmp*"))


def test_hook_contract_is_checked():
    with pytest.raises(TypeError, match="Prediction objects"):
        as_output({"predictions": [{"name": "x"}]})
    with pytest.raises(TypeError, match="ExperimentOutput or a dict"):
        as_output([1, 2])


def test_figures_are_written(tmp_path):
    rng = np.random.default_rng(0)
    h = {k: rng.random((4, 3)) for k in ("train_loss", "test_loss", "test_acc")}
    h["train_loss"][:, 1] = np.nan  # a diverged net is left out of the band
    plot_training_curves(tmp_path / "c.png", {"none": h, "identity": h}, "t")
    probes = {"none": {0: {m: rng.random((3, 5)) for m in ("dead_frac", "dead_relu_frac", "overlap_act_frac",
                                                          "erank_frac")}}}
    plot_probe_curves(tmp_path / "p.png", probes, "t")
    for f in ("c.png", "p.png"):
        assert (tmp_path / f).read_bytes()[:4] == b"\x89PNG"
