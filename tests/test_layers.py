"""The import graph of the layers: the computing packages (``ghostsing.simulate``, ``ghostsing.deepcheck``)
never import the drawing layer (``ghostsing.plots``) or matplotlib; only ``ghostsing.experiments`` joins
them.  Read from the source with ``ast`` (no module is imported), so a lazy import inside a function
counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "ghostsing"
FORBIDDEN = ("ghostsing.plots", "matplotlib")


def imported_modules(path: Path) -> set[str]:
    """Every module named by an import statement anywhere in ``path`` (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(path.relative_to(SRC.parent).with_suffix("").parts[:-1])
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)  # `from ghostsing import plots`
    return out


def test_the_import_reader_sees_lazy_and_relative_imports(tmp_path):
    pkg = SRC / "simulate"
    mods = imported_modules(pkg / "planes.py")
    assert "ghostsing.analytic.manifold_coords" in mods or "ghostsing.analytic" in mods
    assert "ghostsing.simulate.integrate" in imported_modules(pkg / "__init__.py")
    # a function-level import is seen
    assert "scipy.optimize" in mods


@pytest.mark.parametrize("package", ["simulate", "deepcheck"])
def test_computing_layers_do_not_import_plots_or_matplotlib(package):
    bad = []
    for path in sorted((SRC / package).rglob("*.py")):
        for mod in imported_modules(path):
            if any(mod == f or mod.startswith(f + ".") for f in FORBIDDEN):
                bad.append(f"{path.relative_to(SRC)} imports {mod}")
    assert not bad, "\n".join(bad)


def test_simulate_experiments_module_is_gone():
    """The studies live in ghostsing.experiments; simulate keeps numerics only."""
    assert not (SRC / "simulate" / "experiments.py").exists()


LINE_LIMIT = 400


def test_long_modules_say_their_one_idea():
    """Issue 13: no module above ~400 lines unless it is one idea, said in its module docstring
    ("One idea: ...").  Generated code (``ghostsing/_generated``) is exempt."""
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if rel.parts[0] == "_generated":
            continue
        text = path.read_text(encoding="utf-8")
        if text.count("\n") <= LINE_LIMIT:
            continue
        doc = ast.get_docstring(ast.parse(text)) or ""
        if "One idea:" not in doc:
            bad.append(f"{rel} ({text.count(chr(10))} lines)")
    assert not bad, "modules above 400 lines without 'One idea:' in their docstring:\n" + "\n".join(bad)
