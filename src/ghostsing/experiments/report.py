"""The one report writer, and :func:`run_experiment`, which runs a registered experiment into a folder.

A run folder holds ``config.json`` (the resolved config, checked on ``resume``), the figures the run
drew, ``arrays.npz`` (its arrays), ``report.json`` and ``report.md``.  ``report.json`` has the keys
``title``, ``experiment``, ``predictions`` (each :meth:`Prediction.to_dict`), ``config``, ``meta``
(versions, wall time, command, host), ``summary``, ``figures`` and ``verdict_rules``; each prediction
also carries ``p_holm``, its Holm-adjusted p-value over the report's predictions that have a p-value
(:func:`~ghostsing.experiments.multiple_testing.holm_bonferroni`; ``None`` for the others).  Every file
is written atomically (:mod:`ghostsing._io`).

:func:`summarize_reports` reads the ``report.json`` of every run folder under one folder and adjusts all
their predictions as one family (``python -m ghostsing.deepcheck --summarize DIR``).
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
from ghostsing.experiments.multiple_testing import family_verdict, holm_bonferroni, is_negative_control
from ghostsing.experiments.predictions import LEVEL, VERDICT_RULES, VERDICTS

__all__ = ["write_report", "run_experiment", "run_meta", "summarize_reports", "write_summary"]


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.{digits}g}" if isinstance(x, (int, float)) else str(x)


def _cell(text: Any) -> str:
    """``text`` for a markdown table cell (``|`` escaped, so that names like ``max |grad L|`` fit)."""
    return str(text).replace("|", "\\|")


def _holm_line(preds: list[dict[str, Any]], level: float = LEVEL) -> str:
    """How many nominal holds / fails remain at the family-wise ``level`` (``p_holm`` set)."""
    m = sum(p.get("p_holm") is not None and math.isfinite(p["p_holm"]) for p in preds)
    kept = {v: sum(p["verdict"] == v and family_verdict(v, p.get("p_holm"), level) == v for p in preds)
            for v in ("holds", "fails")}
    nominal = {v: sum(p["verdict"] == v for p in preds) for v in ("holds", "fails")}
    return (f"Family-wise (Holm over the {m} predictions with a p-value, level {level:g}): "
            f"{kept['holds']} of {nominal['holds']} holds and {kept['fails']} of {nominal['fails']} fails "
            "remain.")


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
    p_holm, _ = holm_bonferroni([p["p_value"] for p in preds], LEVEL)
    for p, q in zip(preds, p_holm, strict=True):
        p["p_holm"] = float(q) if math.isfinite(q) else None
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
        lines += ["## Predictions", "",
                  "| prediction | verdict | effect | 95% CI | test | p | p (Holm) | seeds |",
                  "| --- | --- | ---: | --- | --- | ---: | ---: | ---: |"]
        for p in preds:
            lo, hi = p["ci"]
            lines.append(f"| {_cell(p['name'])} | **{p['verdict']}** | {_fmt(p['effect'])} | "
                         f"[{_fmt(lo)}, {_fmt(hi)}] | {p.get('test') or '—'} | {_fmt(p.get('p_value'), 3)} "
                         f"| {_fmt(p['p_holm'], 3)} | {p['n_seeds']} |")
        lines += ["", _holm_line(preds), "", VERDICT_RULES, "", "### What each prediction claims", ""]
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


# ---------------------------------------------------------------------------------------------------------
# one family over many reports

_SUMMARY_HEAD = "| run folder | prediction | nominal verdict | p | p (Holm) | verdict at family level |"


def _read_reports(root: Path) -> list[tuple[str, list[dict[str, Any]]]]:
    """``(folder name, predictions)`` of every ``root/*/report.json``, in folder order."""
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder")
    paths = sorted(root.glob("*/report.json"))
    if not paths:
        raise ValueError(f"{root} holds no run folder with a report.json ({root}/*/report.json)")
    out = []
    for path in paths:
        try:
            doc = read_json(path)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a readable report ({exc})") from exc
        preds = doc.get("predictions") if isinstance(doc, dict) else None
        if not isinstance(preds, list) or not all(isinstance(p, dict) and "name" in p and "verdict" in p
                                                   for p in preds):
            raise ValueError(f"{path}: 'predictions' must be a list of predictions with 'name' and 'verdict'")
        for p in preds:
            pv = p.get("p_value")
            if pv is not None and not (isinstance(pv, (int, float)) and (0 <= pv <= 1 or math.isnan(pv))):
                raise ValueError(f"{path}: prediction {p['name']!r} has p_value={pv!r} "
                                 "(not in [0, 1] or null)")
        out.append((path.parent.name, preds))
    return out


def _family_rows(rows: list[dict[str, Any]], level: float) -> None:
    """Set ``p_holm`` and ``family`` (the verdict at the family-wise level) on ``rows``, one family."""
    adjusted, _ = holm_bonferroni([r["p"] for r in rows], level)
    for r, q in zip(rows, adjusted, strict=True):
        r["p_holm"] = float(q) if math.isfinite(q) else None
        r["family"] = family_verdict(r["verdict"], r["p_holm"], level)


def _counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    c = {"predictions": len(rows), "in_family": sum(r["p_holm"] is not None for r in rows)}
    for v in ("holds", "fails"):
        c[v] = sum(r["verdict"] == v for r in rows)
        c[f"{v}_holm"] = sum(r["family"] == v for r in rows)
    return c


def _row_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [_SUMMARY_HEAD, "| --- | --- | --- | ---: | ---: | --- |"]
    for r in rows:
        fam = r["family"] if r["family"] == r["verdict"] else f"**{r['family']}**"
        lines.append(f"| `{r['folder']}` | {_cell(r['name'])} | {r['verdict']} | {_fmt(r['p'], 3)} | "
                     f"{_fmt(r['p_holm'], 3)} | {fam} |")
    return lines


def summarize_reports(root: str | os.PathLike, level: float = LEVEL) -> tuple[str, dict[str, Any]]:
    """One family-wise view of the reports in ``root/*/report.json``: ``(markdown, counts)``.

    Every prediction with a p-value in every report forms one family, except the negative controls
    (names starting ``"negative control"``), which form a family of their own; Holm's step-down
    adjustment (:func:`~ghostsing.experiments.multiple_testing.holm_bonferroni`) is applied to each, and a
    nominal ``holds`` / ``fails`` stays at the family level when its adjusted p-value is below ``level``.
    Predictions without a p-value are listed but are in no family.  ``counts`` has ``reports``,
    ``main`` and ``controls`` (each with ``predictions``, ``in_family``, ``holds``, ``holds_holm``,
    ``fails``, ``fails_holm``).  A folder that is missing or holds no report, or a report that cannot be
    read, is a ``ValueError`` naming the path.
    """
    root = Path(root)
    reports = _read_reports(root)
    main_rows: list[dict[str, Any]] = []
    control_rows: list[dict[str, Any]] = []
    for folder, preds in reports:
        for p in preds:
            pv = p.get("p_value")
            row = {"folder": folder, "name": str(p["name"]), "verdict": str(p["verdict"]),
                   "p": None if pv is None else float(pv)}
            (control_rows if is_negative_control(row["name"]) else main_rows).append(row)
    _family_rows(main_rows, level)
    _family_rows(control_rows, level)
    main, controls = _counts(main_rows), _counts(control_rows)
    counts = {"reports": len(reports), "main": main, "controls": controls}
    root_text = root.as_posix()
    lines = [
        "# Family-wise summary of the deepcheck reports", "",
        f"Written by `python -m ghostsing.deepcheck --summarize {root_text}` from the {len(reports)} reports "
        f"`{root_text}/*/report.json`. Each report's verdicts are nominal: every prediction tested at its "
        "own level (0.05 unless stated), with no correction for the others. Here every prediction with a "
        "p-value, in every report, is one family (negative controls, whose names start with "
        "\"negative control\", form a family of their own, below), adjusted by Holm's step-down procedure: "
        "with the family's m p-values sorted, p_(1) <= ... <= p_(m), "
        "p_(i)^Holm = max_{j <= i} min(1, (m - j + 1) p_(j)). A nominal holds or fails stays at the "
        f"family level when p (Holm) < {level:g} as well, else it is inconclusive there; whatever the "
        f"dependence between the tests, the chance that any true null hypothesis of the family is rejected "
        f"is at most {level:g}. Predictions without a p-value (untestable) are listed and in no family.", "",
        "## Counts", "",
        f"- reports: {len(reports)}; predictions: {main['predictions'] + controls['predictions']} "
        f"({controls['predictions']} negative controls)",
        f"- family: {main['in_family']} predictions with a p-value "
        f"({main['predictions'] - main['in_family']} without)",
        f"- nominal: {main['holds']} holds, {main['fails']} fails; at the family-wise level "
        f"{level:g}: **{main['holds_holm']} holds, {main['fails_holm']} fails**",
        f"- negative controls: {controls['in_family']} with a p-value; nominal {controls['holds']} holds, "
        f"{controls['fails']} fails; at the family-wise level {controls['holds_holm']} holds, "
        f"{controls['fails_holm']} fails", "",
        "## Per run folder", "",
        "| run folder | predictions | with a p-value | holds (nominal) | holds (Holm) | fails (nominal) "
        "| fails (Holm) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for folder, _ in reports:
        c = _counts([r for r in main_rows if r["folder"] == folder])
        lines.append(f"| `{folder}` | {c['predictions']} | {c['in_family']} | {c['holds']} "
                     f"| {c['holds_holm']} | {c['fails']} | {c['fails_holm']} |")
    lines += ["", "## Predictions", "", f"One family of {main['in_family']}; a verdict that changes at the "
              "family level is in bold.", ""]
    lines += _row_table(main_rows)
    lines += ["", "## Negative controls", ""]
    if control_rows:
        lines += [f"Their own family of {controls['in_family']} (a control is expected not to reject).", ""]
        lines += _row_table(control_rows)
    else:
        lines.append("None.")
    lines.append("")
    return "\n".join(lines), counts


def write_summary(root: str | os.PathLike, out: str | os.PathLike | None = None,
                  level: float = LEVEL) -> tuple[Path, dict[str, Any]]:
    """Write :func:`summarize_reports` of ``root`` to ``out`` (default ``root/SUMMARY.md``) atomically;
    returns the path and the counts."""
    text, counts = summarize_reports(root, level)
    path = write_text_atomic(Path(out) if out is not None else Path(root) / "SUMMARY.md", text)
    return path, counts
