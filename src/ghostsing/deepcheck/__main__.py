"""``python -m ghostsing.deepcheck``: run a deep-network experiment preset and write its report.

Usage::

    python -m ghostsing.deepcheck --preset smoke --out DIR
    python -m ghostsing.deepcheck --preset orhan-pitkow --epochs 20 --seeds 3 --out DIR [--resume]
    python -m ghostsing.deepcheck --config deepcheck/orhan-pitkow-cpu.toml --out DIR
    python -m ghostsing.deepcheck --list

Writes ``DIR/report.json`` (``predictions``, ``config``, ``meta``, ``summary``), ``DIR/report.md``,
PNG figures, ``DIR/arrays.npz`` (where the experiment has arrays) and per-model checkpoints under
``DIR/checkpoints/``. A run killed at any point continues from its last checkpoints with ``--resume``
(same command) and ends with the same results as an uninterrupted run. Exit codes: 0 success,
2 bad flags / configuration / missing data (the message names the bad value or the paths searched).

Experiments and presets: every preset is a frozen config dataclass with an ``experiment`` field; the
runner registered for that name executes it. Built in: ``skip_comparison``
(:mod:`ghostsing.deepcheck.skip_comparison`) and ``parker_hoang`` (:mod:`ghostsing.deepcheck.parker_hoang`).

**Extension hook.** If the module ``ghostsing.deepcheck.curvature_experiments`` exists and defines

* ``PRESETS``: a mapping ``preset name -> config`` (frozen dataclass with ``name`` and ``experiment``
  fields; CLI flags such as ``--epochs`` override fields of the same name), and
* ``run(config, out_dir, *, resume=False, data_root=None, progress=True, on_epoch_end=None)``
  returning an :class:`~ghostsing.deepcheck.report.ExperimentOutput` or a dict with its keys
  (``predictions``: list of :class:`~ghostsing.experiments.predictions.Prediction`, ``figures``: PNG names
  in ``out_dir``, ``summary``: JSON-ready dict, ``markdown``: a report section),

its presets are registered and dispatched to its ``run`` (optionally ``RUNNERS``: a mapping
``experiment name -> run function`` for several experiments). Keyword arguments that ``run`` does not
accept are not passed. The report writer is shared, so its predictions appear in ``report.json``.

Test hook: the environment variable ``GHOSTSING_DEEPCHECK_KILL_AFTER_EPOCHS=N`` makes the process
kill itself with SIGKILL after its N-th completed (and checkpointed) epoch.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import inspect
import json
import os
import platform
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from ghostsing.deepcheck.data import DataNotFoundError


def registry() -> tuple[dict, dict]:
    """``(presets, runners)``: the built-in ones plus those of ``curvature_experiments`` when present."""
    from ghostsing.deepcheck import parker_hoang, skip_comparison  # noqa: PLC0415
    from ghostsing.deepcheck.presets import PRESETS  # noqa: PLC0415

    presets = dict(PRESETS)
    runners = {"skip_comparison": skip_comparison.run, "parker_hoang": parker_hoang.run}
    try:
        ext = importlib.import_module("ghostsing.deepcheck.curvature_experiments")
    except ModuleNotFoundError as exc:
        if exc.name != "ghostsing.deepcheck.curvature_experiments":
            raise
        return presets, runners
    ext_presets = getattr(ext, "PRESETS", None)
    ext_run = getattr(ext, "run", None)
    if isinstance(ext_presets, Mapping) and callable(ext_run):
        ext_runners = dict(getattr(ext, "RUNNERS", {}) or {})
        for name, cfg in ext_presets.items():
            presets[name] = cfg
            runners.setdefault(cfg.experiment, ext_runners.get(cfg.experiment, ext_run))
    return presets, runners


def _seeds(text: str) -> tuple[int, ...]:
    """``'5'`` -> seeds 0..4; ``'0,3,7'`` -> those seeds."""
    try:
        if "," in text:
            return tuple(int(s) for s in text.split(",") if s.strip())
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--seeds {text!r}: give a count (e.g. 5) or a list (e.g. 0,3,7)"
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


def _int_list(text: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: integers >= 1 expected")
    return vals


def build_parser(preset_names: Sequence[str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ghostsing.deepcheck",
        description="Deep nets with and without skips on CIFAR: training, unit probes, predictions, report.",
    )
    p.add_argument("--preset", choices=sorted(preset_names), help="experiment preset")
    p.add_argument("--config", type=Path, help="TOML file: preset = '<name>' plus overrides of its fields")
    p.add_argument("--list", action="store_true", help="list the presets and their settings, then exit")
    p.add_argument("--out", type=Path, help="run folder (default deepcheck-runs/<preset>)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoints in --out")
    p.add_argument("--epochs", type=_positive_int)
    p.add_argument("--seeds", type=_seeds, help="a count (0..N-1) or a comma list")
    p.add_argument("--depth", type=_int_list, help="hidden layers (comma list for a sweep)")
    p.add_argument("--width", type=_positive_int)
    p.add_argument("--skips", help="comma list: none,identity,hyper,orthogonal,lowrank:k,scaled:alpha")
    p.add_argument("--datasets", help="comma list of cifar10,cifar100")
    p.add_argument("--n-train", type=_positive_int, help="use the first N training images")
    p.add_argument("--n-test", type=_positive_int, help="use the first N test images")
    p.add_argument("--batch-size", type=int, help="mini-batch size (0 = full batch)")
    p.add_argument("--lr", type=float)
    p.add_argument("--optimizer", choices=("sgd", "adam", "rmsprop"))
    p.add_argument("--device", help="auto (default: cuda when present), cpu, cuda, cuda:N")
    p.add_argument("--data", choices=("auto", "real", "synthetic"), help="data source mode")
    p.add_argument(
        "--data-root", type=Path, help="folder with cifar-10-batches-py/, cifar-100-python/ or *.npz"
    )
    p.add_argument("--download", action="store_true", help="fetch the data with torchvision into --data-root")
    p.add_argument("--note", help="a line shown at the top of the report (e.g. 'reduced CPU run')")
    p.add_argument("--threads", type=_positive_int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _kill_hook():
    n = os.environ.get("GHOSTSING_DEEPCHECK_KILL_AFTER_EPOCHS")
    if not n:
        return None
    limit = int(n)
    done = [0]

    def hook(epoch: int) -> None:
        done[0] += 1
        if done[0] >= limit:
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def _accepted_kwargs(fn, kwargs: dict) -> dict:
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in params}


def _meta(device: str, wall: float, started: str, note: str, data: str) -> dict:
    import torch  # noqa: PLC0415

    import ghostsing  # noqa: PLC0415

    dev = device
    if dev == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    name = (
        torch.cuda.get_device_name(0)
        if dev.startswith("cuda") and torch.cuda.is_available()
        else f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
        f"{torch.get_num_threads()} threads"
    )
    return {
        "device": dev,
        "device_name": name,
        "torch_version": torch.__version__,
        "ghostsing_version": ghostsing.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "started_utc": started,
        "finished_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "wall_time_s": wall,
        "command": " ".join(["python -m ghostsing.deepcheck", *sys.argv[1:]]),
        "note": note,
        "data": data,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit code."""
    presets, runners = registry()
    parser = build_parser(list(presets))
    args = parser.parse_args(argv)
    from ghostsing.deepcheck.presets import apply_overrides, config_to_dict, load_toml  # noqa: PLC0415
    from ghostsing.deepcheck.report import as_output, write_report  # noqa: PLC0415

    if args.list:
        for name, cfg in presets.items():
            print(f"{name}: {json.dumps(config_to_dict(cfg))}")
        return 0
    if (args.preset is None) == (args.config is None):
        parser.error("give exactly one of --preset NAME or --config FILE.toml")
    try:
        cfg = load_toml(args.config, presets) if args.config else presets[args.preset]
        overrides = {
            "epochs": args.epochs,
            "seeds": args.seeds,
            "depths": args.depth,
            "width": args.width,
            "skips": args.skips,
            "datasets": args.datasets,
            "n_train": args.n_train,
            "n_test": args.n_test,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "optimizer": args.optimizer,
            "device": args.device,
            "data": args.data,
            "note": args.note,
        }
        cfg = apply_overrides(cfg, {k: v for k, v in overrides.items() if v is not None})
        if cfg.experiment not in runners:
            raise ValueError(f"no runner for experiment {cfg.experiment!r}; known: {sorted(runners)}")
        from ghostsing.deepcheck.training import resolve_device  # noqa: PLC0415

        resolve_device(cfg.device)
        out = args.out or Path("deepcheck-runs") / cfg.name
        out.mkdir(parents=True, exist_ok=True)
        resolved = config_to_dict(cfg)
        cfg_file = out / "run_config.json"
        if args.resume and cfg_file.is_file():
            before = json.loads(cfg_file.read_text())
            if before != json.loads(json.dumps(resolved)):
                raise ValueError(
                    f"--resume: {cfg_file} holds a different configuration; use the same flags "
                    "as the interrupted run or another --out"
                )
        from ghostsing.deepcheck.report import write_json_atomic  # noqa: PLC0415

        write_json_atomic(cfg_file, resolved)
        if args.download:
            if args.data_root is None:
                raise ValueError("--download needs --data-root (where to put the files)")
            from ghostsing.deepcheck.data import download_cifar  # noqa: PLC0415

            for ds in getattr(cfg, "datasets", ("cifar10",)):
                try:
                    download_cifar(ds, args.data_root)
                except (RuntimeError, OSError) as exc:  # no torchvision, no network
                    raise ValueError(f"--download failed for {ds}: {exc}") from exc
        if args.threads:
            import torch  # noqa: PLC0415

            torch.set_num_threads(args.threads)
        started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        t0 = time.perf_counter()
        run = runners[cfg.experiment]
        kwargs = _accepted_kwargs(
            run,
            {
                "resume": args.resume,
                "data_root": args.data_root,
                "progress": not args.no_progress,
                "on_epoch_end": _kill_hook(),
            },
        )
        output = as_output(run(cfg, out, **kwargs))
        wall = time.perf_counter() - t0
    except (ValueError, TypeError, DataNotFoundError) as exc:
        print(f"python -m ghostsing.deepcheck: error: {exc}", file=sys.stderr)
        return 2
    data_desc = "; ".join(
        f"{k}: {v.get('source')} ({v.get('n_train')} train / {v.get('n_test')} test)"
        for k, v in output.summary.get("data", {}).items()
        if isinstance(v, dict)
    )
    if not data_desc and isinstance(output.summary.get("data"), dict):
        data_desc = str(output.summary["data"].get("source", ""))
    meta = _meta(cfg.device, wall, started, getattr(cfg, "note", ""), data_desc)
    j, m = write_report(out, f"deepcheck: {cfg.name} ({cfg.experiment})", resolved, output, meta)
    counts = {v: sum(p.verdict == v for p in output.predictions) for v in ("holds", "fails", "inconclusive")}
    print(f"wrote {j} and {m} ({len(output.predictions)} predictions: {counts}; {wall:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
