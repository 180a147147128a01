"""The one report writer, and :func:`run_experiment`, which runs a registered experiment into a folder.

A run folder holds ``config.json`` (the resolved config, checked on ``resume``), the figures the run
drew, ``arrays.npz`` (its arrays), ``report.json`` and ``report.md``.  ``report.json`` has the keys
``title``, ``experiment``, ``predictions`` (each :meth:`Prediction.to_dict`), ``config``, ``meta``
(versions, wall time, command, host), ``summary``, ``figures`` and ``verdict_rules``.  Every file is
written atomically (:mod:`ghostsing._io`).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ghostsing._io import read_json, save_npz_atomic, to_jsonable, write_json_atomic, write_text_atomic
from ghostsing.experiments.base import Experiment, ExperimentOutput, config_to_dict
from ghostsing.experiments.predictions import VERDICT_RULES, VERDICTS

__all__ = ["write_report", "run_experiment", "run_meta"]


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.{digits}g}" if isinstance(x, (int, float)) else str(x)


def _command_line() -> str:
    """The command line of this process, shell-quoted; ``python -m pkg.mod`` for a module run with ``-m``
    (whose ``argv[0]`` is the path of its ``__main__.py``)."""
    import shlex

    prog = Path(sys.argv[0])
    head = prog.name
    if head == "__main__.py" and "ghostsing" in prog.parent.parts:
        parts = prog.parent.parts
        i = len(parts) - 1 - parts[::-1].index("ghostsing")
        head = "python -m " + ".".join(parts[i:])
    return " ".join([head, *(shlex.quote(a) for a in sys.argv[1:])])


def run_meta(started: str, wall_time_s: float, **extra: Any) -> dict[str, Any]:
    """Versions, host, times and command line of a run (torch's version if torch was imported)."""
    import ghostsing

    meta = {
        "ghostsing_version": ghostsing.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "started_utc": started,
        "finished_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "wall_time_s": wall_time_s,
        "command": _command_line(),
    }
    if "torch" in sys.modules:
        meta["torch_version"] = sys.modules["torch"].__version__
    meta.update(extra)
    return meta


def write_report(out_dir: str | os.PathLike, title: str, experiment: str, config: Mapping[str, Any],
                 output: ExperimentOutput, meta: Mapping[str, Any]) -> tuple[Path, Path]:
    """Write ``report.json``, ``report.md`` (and ``arrays.npz`` when the output has arrays) into
    ``out_dir``; returns the paths of the two reports."""
    out = Path(out_dir)
    preds = [p.to_dict() for p in output.predictions]
    if output.arrays:
        save_npz_atomic(out / "arrays.npz", output.arrays)
    doc = {"title": title, "experiment": experiment, "predictions": preds, "config": dict(config),
           "meta": dict(meta), "summary": dict(output.summary), "figures": list(output.figures),
           "verdict_rules": VERDICT_RULES}
    json_path = write_json_atomic(out / "report.json", doc)
    counts = {v: sum(p["verdict"] == v for p in preds) for v in VERDICTS}
    lines = [f"# {title}", ""]
    if meta.get("note"):
        lines += [f"> **{meta['note']}**", ""]
    lines += [f"- experiment: `{experiment}`; ghostsing {meta.get('ghostsing_version')}; "
              f"Python {meta.get('python')}" + (f"; torch {meta['torch_version']}" if "torch_version" in meta
                                                  else ""),
              f"- wall time: {_fmt(meta.get('wall_time_s'))} s" + (f"; device: {meta['device']}"
                                                                  if meta.get("device") else "")
              + (f"; data: {meta['data']}" if meta.get("data") else ""),
              "- predictions: " + ", ".join(f"{counts[v]} {v}" for v in VERDICTS), ""]
    if preds:
        lines += ["## Predictions", "", "| prediction | verdict | effect | 95% CI | test | p | seeds |",
                  "| --- | --- | ---: | --- | --- | ---: | ---: |"]
        for p in preds:
            lo, hi = p["ci"]
            lines.append(f"| {p['name']} | **{p['verdict']}** | {_fmt(p['effect'])} | "
                         f"[{_fmt(lo)}, {_fmt(hi)}] | {p.get('test') or '—'} | {_fmt(p.get('p_value'), 3)} "
                         f"| {p['n_seeds']} |")
        lines += ["", VERDICT_RULES, "", "### What each prediction claims", ""]
        lines += [f"- **{p['name']}** ({p['statistic']}): {p['description']}" for p in preds]
        lines.append("")
    if output.markdown:
        lines += [output.markdown, ""]
    if output.figures:
        lines += ["## Figures", ""] + [f"![{f}]({f})" for f in output.figures] + [""]
    lines += ["## Configuration", "", "```json", json.dumps(to_jsonable(config), indent=2), "```", ""]
    md_path = write_text_atomic(out / "report.md", "\n".join(lines))
    return json_path, md_path


def run_experiment(experiment: Experiment, config: Any, out_dir: str | os.PathLike, *, resume: bool = False,
                   progress: bool = True, meta: Mapping[str, Any] | None = None,
                   ) -> tuple[ExperimentOutput, Path]:
    """Run ``experiment`` with ``config`` into ``out_dir`` and write its report.

    ``config.json`` records the resolved config; with ``resume=True`` a folder holding a different config
    is refused (``ValueError``) so that pieces of two runs are never mixed.  Returns the output and the
    path of ``report.json``.
    """
    if not isinstance(config, experiment.config_type):
        raise TypeError(f"{experiment.name} takes a {experiment.config_type.__name__}, "
                        f"not a {type(config).__name__}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    resolved = config_to_dict(config)
    cfg_file = out / "config.json"
    if resume and cfg_file.is_file():
        before = read_json(cfg_file)
        if before != resolved:
            changed = sorted(k for k in set(before) | set(resolved) if before.get(k) != resolved.get(k))
            raise ValueError(f"resume: {cfg_file} holds a different configuration (differs in "
                             f"{', '.join(changed)}); use the same settings or another output folder")
    write_json_atomic(cfg_file, resolved)
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    output = experiment.run(config, out, resume=resume, progress=progress)
    if not isinstance(output, ExperimentOutput):
        raise TypeError(f"{experiment.name}.run returned {type(output).__name__}, not ExperimentOutput")
    run_info = run_meta(started, time.perf_counter() - t0, **dict(meta or {}))
    for key in ("device", "data", "note"):
        if key in output.summary and key not in run_info and isinstance(output.summary[key], str):
            run_info[key] = output.summary[key]
    json_path, _ = write_report(out, experiment.title, experiment.name, resolved, output, run_info)
    return output, json_path
