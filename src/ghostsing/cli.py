"""The ``ghostsing`` command line: one entry point, one sub-command per job.

    ghostsing derive --units K --teacher M --activation erf --skip 0.5 --form order-parameters
    ghostsing derive --units 2 --teacher 2 --input-dim 1 --manifold overlap --expand 2
    ghostsing list [--kind simulation]
    ghostsing run NAME [--preset small] [--config FILE.toml] [--set key=value ...] [--out DIR] [--resume]

``run`` resolves NAME through the one registry (:mod:`ghostsing.experiments.registry`), builds the
experiment's config from its preset, the TOML file (``preset = "..."`` plus field values) and the
``--set`` flags (in that order), validates it once (the config's own checks), runs it and writes the
report (:func:`ghostsing.experiments.report.run_experiment`).  Bad values end with a one-line error
and exit status 2.  The heavy imports happen only inside the chosen sub-command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from ghostsing.experiments.base import KINDS
from ghostsing.models import ACTIVATIONS, MAX_UNITS

MANIFOLDS = ("none", "overlap", "elimination-w", "elimination-J", "linear-dependence")
FORMATS = ("text", "latex", "json")
FORMS = ("order-parameters", "weights")


def _int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in ``low..high`` (no upper bound when ``high`` is None)."""
    allowed = f"{low}..{high}" if high is not None else f">= {low}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer; allowed: {allowed}") from exc
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{value} is out of range; allowed: {allowed}")
        return value

    return parse


def _floats(text: str) -> list[float]:
    """An argparse type: comma-separated finite floats."""
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of numbers; allowed: comma-separated "
                                         "floats such as 10,5") from exc
    return values




def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ghostsing", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    d = sub.add_parser("derive", help="derive the gradient flow of a reduced teacher-student model")
    d.add_argument("--units", "-K", type=int, default=2, help=f"student hidden units K (1..{MAX_UNITS})")
    d.add_argument("--teacher", "-M", type=int, default=2, help=f"teacher hidden units M (1..{MAX_UNITS})")
    d.add_argument("--input-dim", "-N", type=int, default=None,
                   help="input dimension N (default max(K, M))")
    d.add_argument("--activation", choices=ACTIVATIONS, default="erf")
    d.add_argument("--skip", type=float, default=0.0,
                   help="skip strength alpha >= 0 (validated once, by ModelSpec)")
    d.add_argument("--manifold", choices=MANIFOLDS, default="none",
                   help="also derive the flow near this singular manifold")
    d.add_argument("--format", choices=FORMATS, default="text")
    d.add_argument("--form", choices=FORMS, default="order-parameters",
                   help="write the loss and flow in order parameters (Q = J.J, R = J.B, ...; default) or "
                        "in the raw weights")
    d.add_argument("--expand", type=_int_in(1, 3), default=None,
                   help="with --manifold overlap, elimination-w, elimination-J or linear-dependence: the "
                        "normal form, the flow expanded in the transverse coordinates and alpha to this "
                        "total order (1..3)")
    d.add_argument("--teacher-v", type=_floats, default=None, help="teacher second layer v (M floats, comma-"
                   "separated; default ones)")
    d.add_argument("--teacher-B", type=_floats, default=None,
                   help="teacher first layer B, M x N floats row by row, comma-separated (default e_1..e_M)")
    d.add_argument("--skip-directions", type=_floats, default=None,
                   help="skip directions s_i, K x N floats row by row, comma-separated (default e_1..e_K)")
    d.add_argument("--out", default=None, help="also write the LaTeX (or JSON) to this file")

    ls = sub.add_parser("list", help="list the registered experiments")
    ls.add_argument("--kind", choices=KINDS, default=None, help="only experiments of this kind")

    r = sub.add_parser("run", help="run a registered experiment and write its report")
    r.add_argument("name", help="experiment name (see `ghostsing list`)")
    r.add_argument("--preset", default=None, help="named config of the experiment (default: 'default')")
    r.add_argument("--config", default=None, metavar="FILE.toml",
                   help='TOML file: preset = "..." and field = value lines (applied before --set)')
    r.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config field (repeatable; lists comma-separated)")
    r.add_argument("--out", default=None, help="run folder (default runs/NAME)")
    r.add_argument("--resume", action="store_true", help="reuse finished pieces found in the run folder")
    r.add_argument("--no-progress", action="store_true", help="no progress bars or progress lines")
    from ghostsing.experiments import sweep_cli  # `ghostsing sweep`: grids of experiments on dask

    sweep_cli.add_parser(sub)
    return parser


def _cmd_derive(args: argparse.Namespace) -> int:
    from ghostsing.analytic.report import derive_report
    from ghostsing.models import ModelSpec

    N = args.input_dim if args.input_dim is not None else max(args.units, args.teacher)
    K, M = args.units, args.teacher

    def matrix(values, rows: int, name: str):
        if values is None:
            return None
        if len(values) != rows * N:
            raise ValueError(f"--{name} has {len(values)} numbers; allowed: {rows} x {N} = {rows * N}")
        return [values[r * N:(r + 1) * N] for r in range(rows)]

    spec = ModelSpec(K=K, M=M, N=N, activation=args.activation, alpha=args.skip, v=args.teacher_v,
                     B=matrix(args.teacher_B, M, "teacher-B"), skip_directions=matrix(args.skip_directions, K,
                                                                            "skip-directions"))
    manifold = None if args.manifold == "none" else args.manifold
    text = derive_report(spec, manifold=manifold, fmt=args.format, form=args.form, expand=args.expand)
    print(text)
    if args.out:
        from pathlib import Path

        from ghostsing.analytic.latex import write_text_atomic

        write_text_atomic(Path(args.out), text)
        print(f"written: {args.out}", file=sys.stderr)
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from ghostsing.experiments import registry

    for name in registry.names(args.kind):
        kind = registry.CATALOG[name][1]
        try:
            exp = registry.get(name)
        except ImportError as exc:  # e.g. a deep experiment without torch installed
            print(f"{name:26s} {kind:10s} (not importable here: {exc})")
            continue
        print(f"{name:26s} {kind:10s} {exp.title}  [presets: {', '.join(exp.presets)}]")
    return 0


def _settings(pairs: Sequence[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {pair!r} is not allowed; allowed: KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def _cmd_run(args: argparse.Namespace) -> int:
    import tomllib
    from pathlib import Path

    from ghostsing.experiments import registry
    from ghostsing.experiments.report import run_experiment

    exp = registry.get(args.name)
    preset, overrides = args.preset, {}
    if args.config:
        try:
            with open(args.config, "rb") as fh:
                table = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"--config {args.config!r} cannot be read: {exc}") from None
        file_preset = table.pop("preset", None)
        preset = preset if preset is not None else file_preset
        overrides.update(table)
    overrides.update(_settings(args.settings))
    config = exp.config(preset, overrides)
    out = Path(args.out) if args.out else Path("runs") / exp.name
    output, report = run_experiment(exp, config, out, resume=args.resume, progress=not args.no_progress)
    counts = {}
    for p in output.predictions:
        counts[p.verdict] = counts.get(p.verdict, 0) + 1
    verdicts = ", ".join(f"{v} {k}" for k, v in counts.items()) or "no predictions"
    print(f"{exp.name}: {verdicts}; report: {report} and {report.with_suffix('.md')}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "sweep":
            from ghostsing.experiments import sweep_cli

            return sweep_cli.main(args)
        command = {"derive": _cmd_derive, "list": _cmd_list, "run": _cmd_run}[args.command]
        return command(args)
    except (ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and friends: not an error of ours
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
