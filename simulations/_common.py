"""Shared helper of the figure scripts: each script is ``ghostsing run NAME --out simulations/figures/NAME``.

Extra command-line arguments are passed on (``--preset small``, ``--set key=value``, ``--resume`` ...).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

FIGURES = Path(__file__).resolve().parent / "figures"


def main(name: str) -> int:
    """Run the registered experiment ``name`` (default preset) into ``simulations/figures/<name>/``."""
    from ghostsing.cli import main as cli

    args = sys.argv[1:]
    out = [] if "--out" in args else ["--out", str(FIGURES / name)]
    return cli(["run", name, *out, *args])
