"""MkDocs hook of the ghostsing site: figures, generated derivations and the example gallery.

* ``simulations/figures/<experiment>/*.png`` are served under ``figures/<experiment>/`` (the figures page
  shows them);
* ``analytic/out/two-unit/two_unit.md`` and ``three-unit/three_unit.md`` (written by the derivation
  experiments) become the pages
  ``derivations/two_unit.md`` and ``derivations/three_unit.md``;
* every ``examples/[0-9]*.py`` is **run** (``python script``, from the repository root, 600 s at most)
  and becomes a page ``gallery/<name>.md`` with the script's docstring, its source and the output it
  printed.  The examples check their own numbers against independent values (closed forms, quadrature,
  finite differences) and exit non-zero when a check fails, which fails the build.

Set ``GHOSTSING_DOCS_SKIP_EXAMPLES=1`` to build without running them (the pages then say so); CI and
``mkdocs build --strict`` as documented run them.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ROOT / "simulations" / "figures"
DERIVATIONS = ROOT / "analytic" / "out"
EXAMPLES = ROOT / "examples"
TIMEOUT_S = 600


def example_scripts() -> list[Path]:
    """The gallery's scripts, in file-name order."""
    return sorted(p for p in EXAMPLES.glob("[0-9]*.py"))


def run_example(path: Path) -> tuple[str, float]:
    """Run one example from the repository root; returns (stdout, seconds); raises on failure."""
    env = dict(os.environ, MPLBACKEND="Agg")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(path)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    if proc.returncode != 0:
        raise PluginError(f"example {path.name} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n"
                          f"{proc.stderr[-3000:]}")
    return proc.stdout, time.perf_counter() - t0


def example_page(path: Path, output: str | None, seconds: float | None) -> str:
    source = path.read_text(encoding="utf-8")
    doc = ast.get_docstring(ast.parse(source)) or path.stem
    title, _, body = doc.partition("\n")
    lines = [f"# {title.strip()}", "", body.strip(), "",
             f"Source: `examples/{path.name}`; run it from the repository root with "
             f"`python examples/{path.name}`.", "", "```python", source.rstrip(), "```", ""]
    if output is None:
        lines += ["*(not run in this build: GHOSTSING_DOCS_SKIP_EXAMPLES is set)*", ""]
    else:
        lines += [f"Output (this build, {seconds:.1f} s):", "", "```text", output.rstrip(), "```", ""]
    return "\n".join(lines)


def on_files(files: Files, config) -> Files:
    for png in sorted(FIGURES.glob("*/*.png")):  # one folder per registered experiment
        rel = png.relative_to(FIGURES).as_posix()
        files.append(File.generated(config, f"figures/{rel}", abs_src_path=str(png)))
    for name in ("two_unit", "three_unit"):
        md = DERIVATIONS / name.replace("_", "-") / f"{name}.md"
        if md.exists():
            files.append(File.generated(config, f"derivations/{name}.md",
                                        content=md.read_text(encoding="utf-8")))
    skip = os.environ.get("GHOSTSING_DOCS_SKIP_EXAMPLES", "") not in ("", "0")
    rows = []
    for path in example_scripts():
        out, secs = (None, None) if skip else run_example(path)
        files.append(File.generated(config, f"gallery/{path.stem}.md", content=example_page(path, out, secs)))
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or path.stem
        rows.append(f"| [{path.stem}]({path.stem}.md) | {doc.splitlines()[0].strip()} |")
    index = ["# Gallery", "",
             "Short scripts under `examples/`, each run when the site is built; each one checks the numbers "
             "it prints against an independent value and fails the build if they disagree.", "",
             "| example | what it shows |", "|---|---|", *rows, ""]
    files.append(File.generated(config, "gallery/index.md", content="\n".join(index)))
    return files
