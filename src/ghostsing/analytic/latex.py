"""LaTeX and Markdown export of derived objects.

Everything symbolic in :mod:`ghostsing.analytic` can be written out with four calls:

* :func:`to_latex` — one object (SymPy expression, Matrix, number, LaTeX string, or a dict / list of
  those) as a LaTeX fragment;
* :func:`derivation_sections` — the loss, the gradient-flow components and (optionally) the Hessian of
  a :class:`~ghostsing.analytic.loss.Derivation`, as ``{section: {lhs: rhs}}``;
* :func:`latex_document` / :func:`markdown_note` — a standalone LaTeX document or a Markdown note
  (equations in ``$$`` blocks) from such sections;
* :func:`write_text_atomic` — write the text to disk atomically (temporary file + ``os.replace``).

A *section* is an ordered mapping ``lhs -> rhs``: ``lhs`` is LaTeX (e.g. ``r"\\frac{dw_1}{dt}"``) or a
SymPy object, ``rhs`` a SymPy object or a LaTeX string; it is rendered as the equation ``lhs = rhs``.
A key that is the empty string (or starts with ``"%text"``) holds prose instead (a plain string, written
as a paragraph; LaTeX's special characters are escaped except inside ``$...$`` inline math).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import sympy as sp

Entry = sp.Basic | sp.MatrixBase | str | int | float
Section = Mapping[Any, Any]

HESSIAN_MODES = ("none", "diagonal", "full")

#: An equation whose LaTeX is longer than this many characters and whose right-hand side is a sum is
#: broken into rows of about this length (``align*``) by :func:`latex_document` / :func:`markdown_note`.
LINE_CHARS = 160

_TEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def escape_text(text: str) -> str:
    """Escape LaTeX's special characters in running text (titles, prose).

    Inline math between pairs of ``$`` is kept as it is (``"the line $z \\in [-1, 1]$"``); with an odd
    number of ``$`` everything is escaped.
    """
    parts = text.split("$")
    if len(parts) % 2 == 0:  # unpaired $: plain text throughout
        parts = [text]
    return "$".join(p if k % 2 else "".join(_TEX_SPECIALS.get(ch, ch) for ch in p)
                    for k, p in enumerate(parts))


def to_latex(obj: Any) -> str:
    """LaTeX of one derived object.

    * SymPy expression, Matrix, number: :func:`sympy.latex`;
    * ``str``: taken to be LaTeX already, returned unchanged;
    * mapping ``lhs -> rhs``: an ``aligned`` block with one ``lhs &= rhs`` row per item;
    * list / tuple: a column vector (``pmatrix``) of the entries.
    """
    if isinstance(obj, str):
        return obj
    if isinstance(obj, Mapping):
        rows = [rf"{_lhs(k)} &= {to_latex(v)}" for k, v in obj.items()]
        return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"
    if isinstance(obj, Sequence):
        return r"\begin{pmatrix}" + r" \\ ".join(to_latex(v) for v in obj) + r"\end{pmatrix}"
    if isinstance(obj, (sp.Basic, sp.MatrixBase, int, float)):
        return sp.latex(obj, symbol_names=_primed_names(obj))
    raise TypeError(f"cannot write {type(obj).__name__} as LaTeX; allowed: SymPy objects, numbers, str, "
                    "dicts and lists of them")


def _primed_names(obj: Any) -> dict[sp.Symbol, str]:
    """Braces around symbols with a prime (``w'_{1}`` -> ``{w'_{1}}``): SymPy prints ``w'_{1}^{2}``, which
    TeX rejects as a double superscript (the prime is a superscript)."""
    if not isinstance(obj, (sp.Basic, sp.MatrixBase)):
        return {}
    return {s: "{" + sp.latex(s) + "}" for s in obj.free_symbols
            if isinstance(s, sp.Symbol) and "'" in s.name}


def _lhs(key: Any) -> str:
    return key if isinstance(key, str) else sp.latex(key, symbol_names=_primed_names(key))


def _is_text(key: Any) -> bool:
    return isinstance(key, str) and (key == "" or key.startswith("%text"))


def equation(lhs: Any, rhs: Any) -> str:
    """The LaTeX of ``lhs = rhs`` (``lhs`` LaTeX or SymPy, ``rhs`` anything :func:`to_latex` takes)."""
    return f"{_lhs(lhs)} = {to_latex(rhs)}"


def equation_rows(lhs: Any, rhs: Any, width: int = LINE_CHARS) -> list[str]:
    r"""``lhs = rhs`` broken into rows of about ``width`` characters of LaTeX at the terms of a sum.

    Returns one string (``lhs = rhs``, for ``equation*``) when the equation is short or ``rhs`` is not a
    SymPy sum; otherwise the rows ``lhs &= t_1 + t_2 ...``, ``&\quad + t_k ...`` of an ``align*``
    (the terms in SymPy's printing order; a single term longer than ``width`` stays on its own row).
    """
    text = equation(lhs, rhs)
    if len(text) <= width or not isinstance(rhs, sp.Add):
        return [text]
    names = _primed_names(rhs)
    order = rhs.as_ordered_terms()
    rows: list[str] = []
    cur = ""
    for k, term in enumerate(order):
        t = sp.latex(term, symbol_names=names)
        piece = t if k == 0 else (f" {t}" if t.startswith("-") else f" + {t}")
        if cur and len(cur) + len(piece) > width:
            rows.append(cur)
            cur = piece.lstrip()
        else:
            cur += piece
    rows.append(cur)
    head = f"{_lhs(lhs)} &= {rows[0]}"
    return [head] + [rf"&\quad {r}" for r in rows[1:]]


def derivation_sections(derivation: Any, hessian: str = "none") -> dict[str, dict[str, Any]]:
    """Sections (see the module docstring) of a :class:`~ghostsing.analytic.loss.Derivation`.

    ``"Population loss"``: ``L(theta) = 1/2 E[(y - f(x))^2]``; ``"Gradient flow"``: one equation
    ``d theta_k / dt = -dL/d theta_k`` per parameter; with ``hessian="diagonal"`` or ``"full"`` also
    ``"Hessian"``: the entries ``H_{kl} = d^2 L / d theta_k d theta_l`` (diagonal only, or the upper
    triangle; the Jacobian of the flow is ``-H``).
    """
    if hessian not in HESSIAN_MODES:
        raise ValueError(f"hessian={hessian!r} is not known; allowed: {', '.join(HESSIAN_MODES)}")
    params = derivation.params
    out: dict[str, dict[str, Any]] = {
        "Population loss": {"L": derivation.loss},
        "Gradient flow": {rf"\frac{{d {sp.latex(p)}}}{{dt}}": rhs for p, rhs in zip(params, derivation.flow,
                                                                                      strict=True)},
    }
    if hessian != "none":
        H = derivation.hessian
        entries: dict[str, Any] = {}
        for k, pk in enumerate(params):
            for l_ in range(k, len(params) if hessian == "full" else k + 1):
                pl = params[l_]
                den = rf"\partial {sp.latex(pk)}^{{2}}" if k == l_ else \
                    rf"\partial {sp.latex(pk)} \partial {sp.latex(pl)}"
                entries[rf"\frac{{\partial^{{2}} L}}{{{den}}}"] = H[k, l_]
        out["Hessian"] = entries
    return out


def spec_summary(spec: Any) -> str:
    """One line describing a :class:`~ghostsing.models.ModelSpec` (plain text)."""
    return (f"K={spec.K} student units, M={spec.M} teacher units, N={spec.N} inputs, activation "
            f"{spec.activation}, skip strength alpha={spec.alpha}, sigma={spec.sigma}, "
            f"v={spec.v.tolist()}, B={spec.B.tolist()}")


def latex_document(title: str, sections: Mapping[str, Section], preamble: str = "", intro: str = "") -> str:
    """A standalone LaTeX document (``article``, ``amsmath``) with one ``\\section*`` per section.

    Each equation ``lhs = rhs`` goes into its own ``equation*`` environment (landscape pages, small
    margins: the flow of a three-unit model has long right-hand sides); ``\\allowdisplaybreaks`` lets
    long ones cross pages.  ``preamble`` is inserted after the packages (e.g. ``\\usepackage{breqn}``).
    """
    if not isinstance(title, str):
        raise TypeError(f"title must be a str, got {type(title).__name__}")
    lines = [
        r"\documentclass[10pt]{article}",
        r"\usepackage[margin=2cm,landscape]{geometry}",
        r"\usepackage{amsmath,amssymb}",
        r"\allowdisplaybreaks",
        preamble,
        rf"\title{{{escape_text(title)}}}",
        r"\date{}",
        r"\begin{document}",
        r"\maketitle",
    ]
    if intro:
        lines += [escape_text(intro), ""]
    for name, entries in sections.items():
        lines.append(rf"\section*{{{escape_text(name)}}}")
        for lhs, rhs in entries.items():
            if _is_text(lhs):
                lines += [escape_text(str(rhs)), ""]
            else:
                rows = equation_rows(lhs, rhs)
                if len(rows) == 1:
                    lines += [r"\begin{equation*}", rows[0], r"\end{equation*}"]
                else:
                    lines += [r"\begin{align*}", " \\\\\n".join(rows), r"\end{align*}"]
    lines.append(r"\end{document}")
    return "\n".join(line for line in lines if line is not None) + "\n"


def markdown_note(title: str, sections: Mapping[str, Section], intro: str = "") -> str:
    """A Markdown note: ``# title``, the intro, then ``## section`` with each equation in a ``$$`` block."""
    if not isinstance(title, str):
        raise TypeError(f"title must be a str, got {type(title).__name__}")
    lines = [f"# {title}", ""]
    if intro:
        lines += [intro, ""]
    for name, entries in sections.items():
        lines += [f"## {name}", ""]
        for lhs, rhs in entries.items():
            if _is_text(lhs):
                lines += [str(rhs), ""]
            else:
                rows = equation_rows(lhs, rhs)
                body = rows[0] if len(rows) == 1 else \
                    "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"
                lines += ["$$", body, "$$", ""]
    return "\n".join(lines)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` (parents created) via a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
