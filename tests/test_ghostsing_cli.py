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


@pytest.mark.parametrize(
    "argv, message",
    [
        (["derive", "--units", "5"], "allowed: 1..4"),
        (["derive", "--skip", "-1"], "allowed: a finite float >= 0"),
        (["derive", "--activation", "tanh"], "invalid choice"),
    ],
)
def test_bad_flags_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_spec_errors_become_exit_2(capsys):
    # N < K with a skip and identity skip directions is refused by ModelSpec, reported without a traceback
    assert main(["derive", "--units", "3", "--teacher", "1", "--input-dim", "2", "--skip", "0.5"]) == 2
    assert "N >= K" in capsys.readouterr().err


def test_unknown_experiment_lists_allowed(capsys):
    assert main(["simulate", "--experiment", "nope"]) == 2
    err = capsys.readouterr().err
    assert "ghost-passage" in err and "'nope'" in err
