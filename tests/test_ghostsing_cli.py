"""The `ghostsing` command line: derive output against the library, and clear errors for bad flags."""

from __future__ import annotations

import json

import pytest
import sympy as sp

from ghostsing import ModelSpec
from ghostsing.analytic import derive
from ghostsing.analytic.report import expr_from_srepr
from ghostsing.cli import main


def test_derive_json_matches_library(capsys):
    assert main(["derive", "--units", "2", "--teacher", "1", "--input-dim", "2", "--activation", "linear",
                 "--skip", "0.5", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    d = derive(ModelSpec(K=2, M=1, N=2, activation="linear", alpha=0.5))
    text = json.dumps(out)
    assert all(p.name in text for p in d.params)
    # the loss printed by the CLI is the library's loss (read back exactly from its srepr)
    assert sp.simplify(expr_from_srepr(out["loss"]["srepr"]) - d.loss) == 0
    assert sp.simplify(expr_from_srepr(out["loss"]["srepr"]) - d.loss.subs(d.params[0], 1)) != 0


def test_bad_flags_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["derive", "--activation", "tanh"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["derive", "--units", "5"], "K=5 is out of range; allowed: 1..4"),
        (["derive", "--skip", "-1"], "alpha=-1.0 is not allowed; allowed: a finite float >= 0"),
        (["derive", "--input-dim", "0"], "N=0 is out of range; allowed: >= 1"),
    ],
)
def test_model_values_are_validated_once_by_the_spec(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_spec_errors_become_exit_2(capsys):
    # N < K with a skip and identity skip directions is refused by ModelSpec, reported without a traceback
    assert main(["derive", "--units", "3", "--teacher", "1", "--input-dim", "2", "--skip", "0.5"]) == 2
    assert "N >= K" in capsys.readouterr().err


def test_unknown_experiment_lists_allowed(capsys):
    assert main(["run", "nope"]) == 2
    err = capsys.readouterr().err
    assert "ghost-passage" in err and "'nope'" in err and err.count("\n") == 1


def test_list_names_the_simulation_experiments_with_their_presets(capsys):
    assert main(["list", "--kind", "simulation"]) == 0
    out = capsys.readouterr().out
    for name in ("portraits", "elimination-portraits", "plateau-vs-epsilon", "loss-curves", "sgd-vs-ode",
                 "ghost-passage", "ghost-traps", "ghost-basin", "symmetric-passage", "ghost-noise"):
        assert f"{name} " in out
    assert "presets: default, small" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["run", "elimination-portraits", "--set", "alpha=-1"],
     "error: alpha=-1.0 is not allowed; allowed: a finite float > 0"),
    (["run", "portraits", "--set", "alpha=0.5"],
     "'alpha' is not a setting of PortraitsConfig; allowed: alphas"),
    (["run", "portraits", "--set", "grid"], "--set 'grid' is not allowed; allowed: KEY=VALUE"),
    (["run", "portraits", "--preset", "huge"], "preset='huge' is not one of the presets of 'portraits'"),
])
def test_bad_run_settings_are_one_line_errors_with_exit_2(argv, message, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()  # refused before anything ran


def test_run_with_a_toml_config_and_set_flags_writes_the_report(tmp_path, capsys):
    cfg = tmp_path / "loss.toml"
    cfg.write_text('preset = "small"\nn = 3\nalphas = [0.0, 0.08]\n')
    out = tmp_path / "run"
    assert main(["run", "loss-curves", "--config", str(cfg), "--set", "t_end=2000", "--out", str(out),
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert str(out / "report.json") in printed
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["n"] == 3 and report["config"]["t_end"] == 2000.0
    assert report["config"]["alphas"] == [0.0, 0.08] and report["config"]["eps"] == 1e-3  # rest: the preset
    assert (out / "loss_curves.png").is_file() and (out / "arrays.npz").is_file()
    # --resume with another configuration is refused, naming the field
    assert main(["run", "loss-curves", "--config", str(cfg), "--out", str(out), "--resume"]) == 2
    assert "differs in t_end" in capsys.readouterr().err
