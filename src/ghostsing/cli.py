"""The ``ghostsing`` command line: one entry point, one sub-command per job.

    ghostsing derive   --units K --teacher M --activation erf --skip 0.5 --form order-parameters
    ghostsing derive   --units 2 --teacher 2 --input-dim 1 --manifold overlap --expand 2
    ghostsing portrait --out simulations/figures --skip 0.5
    ghostsing simulate --experiment ghost-passage --out simulations/figures

Each sub-command parses and validates its flags here (argparse) and calls one library function; the
heavy imports happen only inside the chosen sub-command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from ghostsing.models import ACTIVATIONS, MAX_UNITS

MANIFOLDS = ("none", "overlap", "elimination-w", "elimination-J", "linear-dependence")
FORMATS = ("text", "latex", "json")
FORMS = ("order-parameters", "weights")


def _nonneg_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; allowed: a float >= 0") from exc
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; allowed: a finite float >= 0")
    return value


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


_units = _int_in(1, MAX_UNITS)
_positive_int = _int_in(1)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ghostsing", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    d = sub.add_parser("derive", help="derive the gradient flow of a reduced teacher-student model")
    d.add_argument("--units", "-K", type=_units, default=2, help="student hidden units K (1..4)")
    d.add_argument("--teacher", "-M", type=_units, default=2, help="teacher hidden units M (1..4)")
    d.add_argument("--input-dim", "-N", type=_positive_int, default=None,
                   help="input dimension N (default max(K, M))")
    d.add_argument("--activation", choices=ACTIVATIONS, default="erf")
    d.add_argument("--skip", type=_nonneg_float, default=0.0, help="skip strength alpha >= 0")
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

    p = sub.add_parser("portrait", help="phase portraits of the overlap singularity, plain vs skip")
    p.add_argument("--out", default="simulations/figures", help="folder for PNG + data")
    p.add_argument("--skip", type=_nonneg_float, default=0.5, help="skip strength of the right panel")
    p.add_argument("--grid", type=_positive_int, default=41, help="grid points per axis")
    p.add_argument("--slice", dest="slice_", choices=("relaxed", "fixed"), default="relaxed",
                   help="relaxed: the other coordinates minimise L at each grid point; fixed: held at the "
                        "best one-unit fit")
    p.add_argument("--pdf", action="store_true", help="also save PDF")

    s = sub.add_parser("simulate", help="run a simulation experiment and draw its figures")
    s.add_argument("--experiment", default="ghost-passage",
                   help="which experiment (see `ghostsing simulate --list`)")
    s.add_argument("--list", action="store_true", help="list the experiments and exit")
    s.add_argument("--out", default="simulations/figures")
    s.add_argument("--n", type=_positive_int, default=None, help="trajectories per ensemble")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--pdf", action="store_true", help="also save PDF (where the experiment draws figures)")
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
                     B=matrix(args.teacher_B, M, "teacher-B"), skip=matrix(args.skip_directions, K,
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


def _cmd_portrait(args: argparse.Namespace) -> int:
    from ghostsing.simulate.experiments import run_portraits

    paths = run_portraits(out_dir=args.out, alpha_skip=args.skip, grid=args.grid, slice_=args.slice_,
                          pdf=args.pdf)
    for path in paths:
        print(path)
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from ghostsing.simulate import experiments

    if args.list:
        for name, fn in experiments.EXPERIMENTS.items():
            print(f"{name:24s} {(fn.__doc__ or '').strip().splitlines()[0]}")
        return 0
    if args.experiment not in experiments.EXPERIMENTS:
        allowed = ", ".join(experiments.EXPERIMENTS)
        print(f"error: --experiment {args.experiment!r} is not known; allowed: {allowed}", file=sys.stderr)
        return 2
    kwargs = {"out_dir": args.out, "seed": args.seed}
    if args.n is not None:
        kwargs["n"] = args.n
    run = experiments.EXPERIMENTS[args.experiment]
    if args.pdf:
        import inspect

        if "pdf" not in inspect.signature(run).parameters:
            print(f"error: --pdf is not supported by --experiment {args.experiment!r}", file=sys.stderr)
            return 2
        kwargs["pdf"] = True
    for path in run(**kwargs):
        print(path)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "sweep":
            from ghostsing.experiments import sweep_cli

            return sweep_cli.main(args)
        command = {"derive": _cmd_derive, "portrait": _cmd_portrait, "simulate": _cmd_simulate}[args.command]
        return command(args)
    except (ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and friends: not an error of ours
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
