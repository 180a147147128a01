"""``python -m ghostsing.deepcheck``: run a deep-network experiment preset and write its report.

Usage::

    python -m ghostsing.deepcheck --preset smoke --out DIR
    python -m ghostsing.deepcheck --preset orhan-pitkow --epochs 20 --seeds 5 --out DIR [--resume]
    python -m ghostsing.deepcheck --config deepcheck/orhan-pitkow-cpu.toml --out DIR
    python -m ghostsing.deepcheck --preset fair-comparison --set lr_grid=1e-3,3e-3 --out DIR
    python -m ghostsing.deepcheck --list
    python -m ghostsing.deepcheck --summarize deepcheck/results [--out FILE]

Presets are those of the registered experiments of kind ``deep``
(:func:`ghostsing.experiments.registry.find_preset`; ``experiment:preset`` when a name is ambiguous).  The
flags ``--epochs --seeds --depth --width --skips --datasets --n-train --n-test --batch-size --lr
--optimizer --device --data --data-root`` and ``--set key=value`` set fields of the experiment's
config (``--depth`` sets ``depths``); ``--note`` is a line at the top of the report, for every
experiment; a field the experiment does not have is an error naming the
allowed ones.  A TOML file (``--config``) holds ``preset = "<name>"`` and any fields.  The run goes
through :func:`ghostsing.experiments.report.run_experiment`, which writes ``config.json``,
``report.json``, ``report.md`` and ``arrays.npz`` beside the figures and checkpoints.  A run killed at any
point continues from its last checkpoints with ``--resume`` (same settings).

``--summarize DIR`` runs nothing: it reads every ``DIR/*/report.json``, adjusts all their predictions as
one family by Holm's step-down procedure (negative controls in a family of their own) and writes a
markdown table of nominal and family-wise verdicts to ``--out`` (default ``DIR/SUMMARY.md``; see
:func:`ghostsing.experiments.report.summarize_reports`).

Exit codes: 0 success; 2 bad flags, a bad configuration, missing data (the message names the paths
searched), a data file that tries to run code (refused before anything runs), or a ``--summarize`` folder
that is missing, holds no report or an unreadable one (the message names the path).  The console says which
data a run used.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PROG = "python -m ghostsing.deepcheck"
#: flag destination -> config field
FLAG_FIELDS = {
    "epochs": "epochs", "seeds": "seeds", "depth": "depths", "width": "width", "skips": "skips",
    "datasets": "datasets", "n_train": "n_train", "n_test": "n_test", "batch_size": "batch_size", "lr": "lr",
    "optimizer": "optimizer", "device": "device", "data": "data", "data_root": "data_root",
}


def _seeds(text: str) -> tuple[int, ...]:
    """``'5'`` -> seeds 0..4; ``'0,3,7'`` -> those seeds."""
    try:
        if "," in text:
            return tuple(int(s) for s in text.split(",") if s.strip())
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds {text!r}: give a count (e.g. 5) or a list (e.g. 0,3,7)"
                                         ) from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"--seeds {text!r}: the count must be >= 1")
    return tuple(range(n))


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return v


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"--set {text!r}: expected key=value")
    return key.strip(), value.strip()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Deep nets with and without skips on CIFAR: training, "
                                "unit and curvature probes, predictions with tests, report.")
    p.add_argument("--preset", help="a preset of a deep experiment (see --list)")
    p.add_argument("--config", type=Path, help="TOML file: preset = '<name>' plus fields of its config")
    p.add_argument("--list", action="store_true", help="list the deep experiments and presets, then exit")
    p.add_argument("--summarize", type=Path, metavar="DIR",
                   help="run nothing: adjust the predictions of every DIR/*/report.json as one family (Holm) "
                   "and write a markdown summary to --out (default DIR/SUMMARY.md)")
    p.add_argument("--out", type=Path, help="run folder (default deepcheck-runs/<preset>); with --summarize, "
                   "the summary file")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoints in --out")
    p.add_argument("--epochs", type=_positive_int)
    p.add_argument("--seeds", type=_seeds, help="a count (0..N-1) or a comma list")
    p.add_argument("--depth", help="hidden layers (comma list for a sweep)")
    p.add_argument("--width", type=_positive_int)
    p.add_argument("--skips", help="comma list of arms: none, identity, hyper, orthogonal, lowrank:k, "
                   "scaled:a, each optionally @init")
    p.add_argument("--datasets", help="comma list of cifar10,cifar100")
    p.add_argument("--n-train", type=_positive_int, help="use the first N training images")
    p.add_argument("--n-test", type=_positive_int, help="use the first N test images")
    p.add_argument("--batch-size", type=int, help="mini-batch size (0 = full batch)")
    p.add_argument("--lr", type=float)
    p.add_argument("--optimizer", help="sgd, adam or rmsprop")
    p.add_argument("--device", help="auto (default: cuda when present), cpu, cuda, cuda:N")
    p.add_argument("--data", help="auto, real or synthetic")
    p.add_argument("--data-root", help="folder with cifar-10-batches-py/, cifar-100-python/ or *.npz")
    p.add_argument("--set", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="any other field of the experiment's config (repeatable)")
    p.add_argument("--download", action="store_true", help="fetch the data with torchvision into --data-root")
    p.add_argument("--note", help="a line shown at the top of the report (e.g. 'reduced CPU run')")
    p.add_argument("--threads", type=_positive_int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _list() -> None:
    from ghostsing.experiments.base import config_to_dict
    from ghostsing.experiments.registry import experiments

    for exp in experiments("deep"):
        print(f"{exp.name}: {exp.title}")
        for key, cfg in exp.presets.items():
            print(f"  {key}: {json.dumps(config_to_dict(cfg))}")


def _resolve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> tuple[Any, Any, str]:
    """``(experiment, config, preset name)`` from ``--preset``/``--config`` and the field flags."""
    from ghostsing.experiments.registry import find_preset

    if (args.preset is None) == (args.config is None):
        parser.error("give exactly one of --preset NAME or --config FILE.toml")
    overrides: dict[str, Any] = {}
    if args.config is not None:
        if not args.config.is_file():
            raise ValueError(f"config file {args.config} does not exist")
        try:
            table = tomllib.loads(args.config.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"config file {args.config}: not valid TOML ({exc})") from exc
        preset = table.pop("preset", None)
        if not isinstance(preset, str):
            raise ValueError(f"config file {args.config}: 'preset' must name a preset (see --list)")
        overrides.update(table)
    else:
        preset = args.preset
    exp, key = find_preset(preset, kind="deep")
    for dest, field in FLAG_FIELDS.items():
        value = getattr(args, dest)
        if value is not None:
            overrides[field] = value
    if "batch_size" in overrides and overrides["batch_size"] == 0:
        overrides["batch_size"] = None
    for k, v in args.set:
        overrides[k] = v
    if args.note is not None and "note" in {f.name for f in dataclasses.fields(exp.config_type)}:
        overrides["note"] = args.note  # experiments that print the note themselves; for the others it is meta
    return exp, exp.config(key, overrides), key


def _device_meta(cfg: Any) -> dict[str, str]:
    import os
    import platform

    import torch

    dev = getattr(cfg, "device", "auto")
    if dev == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    if dev.startswith("cuda") and torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
    else:
        name = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
                f"{torch.get_num_threads()} torch threads")
    return {"device": dev, "device_name": name}


def _summarize(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``--summarize DIR [--out FILE]``: the family-wise summary of the reports in DIR."""
    if args.preset is not None or args.config is not None or args.resume:
        parser.error("--summarize runs nothing: give it alone, with --out FILE at most")
    from ghostsing.experiments.report import write_summary

    try:
        path, counts = write_summary(args.summarize, args.out)
    except (ValueError, OSError) as exc:
        msg = " ".join(str(exc).split())
        print(f"{PROG}: error: {msg}", file=sys.stderr)
        return 2
    c = counts["main"]
    print(f"wrote {path} ({counts['reports']} reports, {c['in_family']} predictions in the family: "
          f"{c['holds_holm']} of {c['holds']} holds and {c['fails_holm']} of {c['fails']} fails "
          "remain after Holm)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        _list()
        return 0
    if args.summarize is not None:
        return _summarize(args, parser)
    from ghostsing.deepcheck.data import DataNotFoundError, UnsafePickleError

    try:
        exp, cfg, key = _resolve(args, parser)
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        from ghostsing.deepcheck.training import resolve_device

        resolve_device(cfg.device)
        if args.download:
            if getattr(cfg, "data_root", None) is None:
                raise ValueError("--download needs --data-root (where to put the files)")
            from ghostsing.deepcheck.data import download_cifar

            for ds in getattr(cfg, "datasets", None) or (getattr(cfg, "dataset", "cifar10"),):
                try:
                    download_cifar(ds, cfg.data_root)
                except (RuntimeError, OSError) as exc:  # no torchvision, no network
                    raise ValueError(f"--download failed for {ds}: {exc}") from exc
        from ghostsing.experiments.report import run_experiment

        out = args.out or Path("deepcheck-runs") / key
        meta = {"preset": key, **_device_meta(cfg)}
        note = args.note or getattr(cfg, "note", "")  # --note is run metadata, valid for every experiment
        if note:
            meta["note"] = note
        output, json_path = run_experiment(exp, cfg, out, resume=args.resume, progress=not args.no_progress,
                                           meta=meta)
    except UnsafePickleError as exc:
        print(f"{PROG}: error: refused a data file that tries to run code: {exc}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, DataNotFoundError) as exc:
        msg = " ".join(str(exc).split())
        print(f"{PROG}: error: {msg}", file=sys.stderr)
        return 2
    counts: dict[str, int] = {}
    for p in output.predictions:
        counts[p.verdict] = counts.get(p.verdict, 0) + 1
    data = output.summary.get("data", "")
    print(f"data: {data}")
    print(f"wrote {json_path} and {json_path.with_name('report.md')} ({len(output.predictions)} predictions: "
          f"{counts})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
