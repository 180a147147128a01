"""Make every simulation figure from scratch: each registered simulation experiment at its default preset
into ``simulations/figures/<name>/`` (figures, ``report.json``, ``report.md``, ``arrays.npz``).

    python simulations/make_all.py [--out DIR] [--only NAME ...] [--preset default] [--resume]

The list is the registry's (``ghostsing list --kind simulation``): a study added there is made here too.
Wall times go to ``<out>/timings.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

FIGURES = Path(__file__).resolve().parent / "figures"


def main() -> int:
    from ghostsing._io import read_json, write_json_atomic
    from ghostsing.experiments import registry
    from ghostsing.experiments.report import run_experiment

    names = registry.names("simulation")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(FIGURES))
    parser.add_argument("--only", nargs="*", choices=names, default=None)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    timings = {}
    for name in names:
        if args.only and name not in args.only:
            continue
        exp = registry.get(name)
        t0 = time.perf_counter()
        output, report = run_experiment(exp, exp.config(args.preset), out / name, resume=args.resume)
        timings[name] = round(time.perf_counter() - t0, 1)
        verdicts = ", ".join(f"{p.name}: {p.verdict}" for p in output.predictions) or "no predictions"
        print(f"[make_all] {name}: {timings[name]} s; {verdicts}; {report}", file=sys.stderr)
    path = out / "timings.json"
    old = read_json(path) if path.exists() else {}
    write_json_atomic(path, {**old, **timings})
    return 0


if __name__ == "__main__":
    sys.exit(main())
