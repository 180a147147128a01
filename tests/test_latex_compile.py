"""The LaTeX that ghostsing writes compiles with pdflatex, with no undefined macro and no TeX error.

Compiled: the derivation documents under ``analytic/out/<name>/`` (written by ``analytic/two_unit.py``
and ``analytic/three_unit.py``) and ``ghostsing derive --format latex`` documents (order-parameter and
weight form, with a singular manifold).  Needs a TeX engine (``pdflatex``, Debian package
``texlive-latex-base``); skipped with that reason where there is none.  A document with an undefined
macro is shown to fail the same check, so the check can fail.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ghostsing import ModelSpec
from ghostsing.analytic.report import derive_report

ROOT = Path(__file__).resolve().parents[1]
PDFLATEX = shutil.which("pdflatex")
pytestmark = pytest.mark.skipif(
    PDFLATEX is None, reason="no TeX engine: pdflatex not found (apt-get install texlive-latex-base)")

_PROBLEMS = re.compile(r"^! |Undefined control sequence|LaTeX Error|Missing \$ inserted|"
                       r"LaTeX Warning: Reference .* undefined", re.M)


def compile_tex(text: str, workdir: Path, name: str = "doc") -> tuple[int, str, Path]:
    """Run pdflatex (non-interactive, halt on the first error) on ``text``; returns (rc, log, pdf path)."""
    tex = workdir / f"{name}.tex"
    tex.write_text(text, encoding="utf-8")
    proc = subprocess.run([PDFLATEX, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape",
                           tex.name], cwd=workdir, capture_output=True, text=True, timeout=300)
    log = (workdir / f"{name}.log").read_text(encoding="latin-1") if (workdir / f"{name}.log").exists() \
        else proc.stdout
    return proc.returncode, log, workdir / f"{name}.pdf"


def assert_compiles(text: str, workdir: Path, name: str) -> None:
    rc, log, pdf = compile_tex(text, workdir, name)
    problems = sorted(set(_PROBLEMS.findall(log)))
    assert rc == 0 and not problems, f"{name}: pdflatex rc={rc}, problems {problems}\n{log[-2000:]}"
    assert pdf.exists() and pdf.stat().st_size > 1000 and pdf.read_bytes()[:5] == b"%PDF-"


@pytest.mark.parametrize("name", ["two_unit", "three_unit"])
def test_script_documents_compile(name: str, tmp_path: Path) -> None:
    text = (ROOT / "analytic" / "out" / name.replace("_", "-") / f"{name}.tex").read_text(encoding="utf-8")
    assert_compiles(text, tmp_path, name)


@pytest.mark.parametrize("form", ["order-parameters", "weights"])
def test_derive_report_compiles(form: str, tmp_path: Path) -> None:
    spec = ModelSpec(K=2, M=2, N=1, activation="erf", alpha=0.5, v=(10.0, 5.0), B=[[0.4], [4.0]],
                     skip_directions=[[1.0], [0.5]])
    assert_compiles(derive_report(spec, manifold="overlap", fmt="latex", form=form), tmp_path, "overlap")
    relu = ModelSpec(K=3, M=2, N=3, activation="relu", alpha=0.5)
    assert_compiles(derive_report(relu, fmt="latex", form=form), tmp_path, "relu3")


def test_the_check_catches_an_undefined_macro(tmp_path: Path) -> None:
    bad = "\\documentclass{article}\n\\begin{document}\n$\\notamacro{x}$\n\\end{document}\n"
    rc, log, _ = compile_tex(bad, tmp_path, "bad")
    assert rc != 0 and "Undefined control sequence" in log
