"""Holm's step-down adjustment against its definition, and the p (Holm) column of every report."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ghostsing.experiments.base import ExperimentOutput
from ghostsing.experiments.multiple_testing import family_verdict, holm_bonferroni, is_negative_control
from ghostsing.experiments.predictions import VERDICT_RULES, Prediction
from ghostsing.experiments.report import write_report

NAN = float("nan")


def _brute_holm(p):
    """The definition, term by term: ``p_(i)^adj = max_{j <= i} min(1, (m - j + 1) p_(j))`` over the finite
    p-values, NaN elsewhere."""
    p = [NAN if v is None else float(v) for v in p]
    fam = [i for i, v in enumerate(p) if math.isfinite(v)]
    m = len(fam)
    ranked = sorted(fam, key=lambda i: p[i])
    out = [NAN] * len(p)
    for pos, i in enumerate(ranked, start=1):
        out[i] = max(min(1.0, (m - j + 1) * p[ranked[j - 1]]) for j in range(1, pos + 1))
    return out


def _step_down(p, alpha):
    """Holm's procedure itself: walk the sorted p-values, reject while ``(m - j + 1) p_(j) < alpha``."""
    fam = [i for i, v in enumerate(p) if v is not None and math.isfinite(v)]
    m = len(fam)
    reject = [False] * len(p)
    for j, i in enumerate(sorted(fam, key=lambda i: p[i]), start=1):
        if (m - j + 1) * p[i] >= alpha:
            break
        reject[i] = True
    return reject


@pytest.mark.parametrize("seed", range(40))
def test_holm_matches_the_definition_and_the_step_down_procedure(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 30))
    p = rng.uniform(size=n) ** rng.uniform(0.5, 4)
    if seed % 3 == 0:
        p = np.round(p, 1)  # many ties, some 0 and 1
    p = [None if rng.uniform() < 0.15 else float(v) for v in p]
    if seed % 5 == 0:
        p = [NAN if v is None else v for v in p]
    adj, reject = holm_bonferroni(p)
    np.testing.assert_allclose(adj, _brute_holm(p), rtol=0, atol=1e-15)
    for alpha in (0.01, 0.05, 0.2, 0.5):
        _, rej = holm_bonferroni(p, alpha)
        assert rej.tolist() == _step_down(p, alpha)
    assert reject.tolist() == _step_down(p, 0.05)
    fin = np.isfinite(adj)
    assert np.all(adj[fin] >= np.array([v for v in p if v is not None and math.isfinite(v)]))
    assert np.all(adj[fin] <= 1.0)


def test_holm_hand_computed_example():
    # sorted: 0.005, 0.01, 0.03, 0.04 (m = 4) -> 4 x 0.005 = 0.02, 3 x 0.01 = 0.03, 2 x 0.03 = 0.06,
    # 1 x 0.04 = 0.04 -> running maximum 0.02, 0.03, 0.06, 0.06
    adj, reject = holm_bonferroni([0.01, None, 0.04, NAN, 0.03, 0.005])
    np.testing.assert_allclose(adj, [0.03, NAN, 0.06, NAN, 0.06, 0.02], rtol=1e-15)
    assert reject.tolist() == [True, False, False, False, False, True]
    # Holm rejects more than Bonferroni (4 x 0.01 = 0.04 < 0.05 here too; at level 0.035 only Holm's 0.03)
    assert holm_bonferroni([0.01, 0.04, 0.03, 0.005], 0.035)[1].tolist() == [True, False, False, True]


def test_holm_edge_cases():
    adj, reject = holm_bonferroni([None, NAN])
    assert np.isnan(adj).all() and not reject.any()
    adj, reject = holm_bonferroni([])
    assert adj.shape == (0,) and reject.shape == (0,)
    adj, reject = holm_bonferroni([0.03])
    assert adj.tolist() == [0.03] and reject.tolist() == [True]
    adj, _ = holm_bonferroni([0.02, 0.02, 0.5])  # ties get one adjusted value
    np.testing.assert_allclose(adj, [0.06, 0.06, 0.5], rtol=1e-15)
    adj, reject = holm_bonferroni([1.0, 0.01, 1.0])
    np.testing.assert_allclose(adj, [1.0, 0.03, 1.0])
    assert reject.tolist() == [False, True, False]
    adj, _ = holm_bonferroni([0.6, 0.7, 0.0])  # capped at 1; p = 0 stays 0
    assert adj.tolist() == [1.0, 1.0, 0.0]
    assert holm_bonferroni([0.049])[1].tolist() == [True] and holm_bonferroni([0.05])[1].tolist() == [False]


@pytest.mark.parametrize("bad", [[1.5], [-0.1], [float("inf")]])
def test_holm_refuses_p_outside_0_1(bad):
    with pytest.raises(ValueError, match="must lie in"):
        holm_bonferroni(bad)
    with pytest.raises(ValueError, match="level=1"):
        holm_bonferroni([0.1], level=1)


def test_holm_controls_the_family_wise_error_rate():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=(4000, 10))  # every null true
    fwer = np.mean([holm_bonferroni(row)[1].any() for row in p])
    assert fwer < 0.05 + 3 * math.sqrt(0.05 * 0.95 / 4000)
    assert np.mean((p < 0.05).any(axis=1)) > 0.3  # uncorrected: ~40 %


def test_family_verdict_and_negative_controls():
    assert family_verdict("holds", 0.01) == "holds" and family_verdict("fails", 0.049) == "fails"
    assert family_verdict("holds", 0.06) == "inconclusive" and family_verdict("fails", None) == "inconclusive"
    assert family_verdict("underpowered", 0.01) == "underpowered"
    assert family_verdict("inconclusive", 0.01) == "inconclusive"
    assert is_negative_control("negative control: at alpha = 0 the pair splits")
    assert is_negative_control("Negative control (clean nets)")
    assert not is_negative_control("max |grad L| grows with n (linear model, control)")


def _pred(name, verdict, p):
    return Prediction(name, verdict, 1.0, (0.5, 1.5), 5, "stat", "desc", p_value=p)


def test_write_report_adds_p_holm_and_the_family_wise_line(tmp_path):
    preds = (_pred("a", "holds", 0.004), _pred("max |g| b", "holds", 0.02), _pred("c", "fails", 0.001),
             _pred("d", "inconclusive", NAN), _pred("e", "inconclusive", 0.5))
    json_path, md_path = write_report(tmp_path, "T", "toy", {}, ExperimentOutput(predictions=preds), {})
    doc = json.loads(json_path.read_text())
    got = [p["p_holm"] for p in doc["predictions"]]
    want = _brute_holm([0.004, 0.02, 0.001, None, 0.5])
    assert got[3] is None
    np.testing.assert_allclose([g for g in got if g is not None], [w for w in want if math.isfinite(w)])
    assert [p["verdict"] for p in doc["predictions"]] == ["holds", "holds", "fails", "inconclusive",
                                                        "inconclusive"]  # nominal verdicts unchanged
    assert doc["verdict_rules"] == VERDICT_RULES and "p (Holm)" in VERDICT_RULES
    md = md_path.read_text()
    assert "| prediction | verdict | effect | 95% CI | test | p | p (Holm) | seeds |" in md
    assert "| a | **holds** |" in md and "| 0.004 | 0.012 | 5 |" in md
    assert "| max \\|g\\| b | **holds** |" in md  # a '|' in a name does not break the table
    # m = 4; 0.001 x 4, 0.004 x 3 = 0.012, 0.02 x 2 = 0.04: both holds and the fails remain
    assert "Family-wise (Holm over the 4 predictions with a p-value, level 0.05): 2 of 2 holds and 1 of 1 " \
           "fails remain." in md


# ---------------------------------------------------------------------------------------------------------
# python -m ghostsing.deepcheck --summarize DIR


def _fake_report(folder, preds):
    folder.mkdir(parents=True)
    rows = [{"name": n, "verdict": v, "p_value": p, "effect": 1.0, "ci": [0.5, 1.5], "n_seeds": 5}
            for n, v, p in preds]
    (folder / "report.json").write_text(json.dumps({"title": folder.name, "predictions": rows}))


def _two_reports(root):
    _fake_report(root / "run-a", [("a1", "holds", 0.001), ("a2", "holds", 0.02), ("a3", "fails", 0.004),
                                  ("a4", "inconclusive", None),
                                  ("negative control: a5", "inconclusive", 0.3)])
    _fake_report(root / "run-b", [("b1 max |g|", "holds", 0.0001), ("b2", "inconclusive", 0.6),
                                  ("Negative control: b3", "holds", 0.01)])


def test_summarize_cli_one_family_over_all_reports(tmp_path, capsys):
    from ghostsing.deepcheck.__main__ import main

    _two_reports(tmp_path / "res")
    (tmp_path / "res" / "not-a-run").mkdir()  # a folder without a report is skipped
    assert main(["--summarize", str(tmp_path / "res")]) == 0
    out = capsys.readouterr().out
    assert "5 predictions in the family: 3 of 3 holds and 1 of 1 fails remain after Holm" in out
    text = (tmp_path / "res" / "SUMMARY.md").read_text()
    # the family (controls and the p-less a4 left out): 0.0001, 0.001, 0.004, 0.02, 0.6 (m = 5)
    # -> 5 x 1e-4, 4 x 1e-3, 3 x 0.004, 2 x 0.02, 0.6: every nominal holds and fails stays below 0.05
    np.testing.assert_allclose(_brute_holm([0.0001, 0.001, 0.004, 0.02, 0.6]), [5e-4, 4e-3, 0.012, 0.04, 0.6])
    assert "| `run-a` | a3 | fails | 0.004 | 0.012 | fails |" in text
    assert "| `run-a` | a1 | holds | 0.001 | 0.004 | holds |" in text
    assert "| `run-a` | a2 | holds | 0.02 | 0.04 | holds |" in text
    assert "| `run-a` | a4 | inconclusive | n/a | n/a | inconclusive |" in text
    assert "| `run-b` | b1 max \\|g\\| | holds | 0.0001 | 0.0005 | holds |" in text
    assert "- family: 5 predictions with a p-value (1 without)" in text
    assert "nominal: 3 holds, 1 fails; at the family-wise level 0.05: **3 holds, 1 fails**" in text
    # the negative controls are their own family of 2: 0.01 x 2 = 0.02, 0.3
    controls = text.split("## Negative controls")[1]
    assert "| `run-b` | Negative control: b3 | holds | 0.01 | 0.02 | holds |" in controls
    assert "| `run-a` | negative control: a5 | inconclusive | 0.3 | 0.3 | inconclusive |" in controls
    assert "a1" not in controls
    assert "| `run-a` | 4 | 3 | 2 | 2 | 1 | 1 |" in text and "| `run-b` | 2 | 2 | 1 | 1 | 0 | 0 |" in text


def test_summarize_cli_family_verdicts_change_and_out_file(tmp_path, capsys):
    from ghostsing.deepcheck.__main__ import main

    root = tmp_path / "res"
    _fake_report(root / "r1", [(f"h{i}", "holds", 0.008) for i in range(7)])
    _fake_report(root / "r2", [("f", "fails", 0.03)])
    out = tmp_path / "sub" / "S.md"
    assert main(["--summarize", str(root), "--out", str(out)]) == 0
    assert not (root / "SUMMARY.md").exists()
    text = out.read_text()
    assert "| `r1` | h0 | holds | 0.008 | 0.064 | **inconclusive** |" in text  # 8 x 0.008
    assert "| `r2` | f | fails | 0.03 | 0.064 | **inconclusive** |" in text
    assert "at the family-wise level 0.05: **0 holds, 0 fails**" in text
    assert "0 of 7 holds and 0 of 1 fails remain" in capsys.readouterr().out
    assert not list(out.parent.glob(".*tmp"))


def test_summarize_cli_errors_name_the_path_exit_2(tmp_path, capsys):
    from ghostsing.deepcheck.__main__ import main

    missing = tmp_path / "nope"
    assert main(["--summarize", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{missing} is not a folder" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["--summarize", str(empty)]) == 2
    assert f"{empty} holds no run folder with a report.json" in capsys.readouterr().err
    (empty / "bad").mkdir()
    (empty / "bad" / "report.json").write_text("{not json")
    assert main(["--summarize", str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(empty / "bad" / "report.json") in err
    assert not (empty / "SUMMARY.md").exists()
    (empty / "bad" / "report.json").write_text(json.dumps({"predictions": [{"name": "x", "verdict": "holds",
                                                                            "p_value": 1.5}]}))
    assert main(["--summarize", str(empty)]) == 2
    assert "'x' has p_value=1.5" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["--summarize", str(empty), "--preset", "smoke"])
    assert e.value.code == 2
