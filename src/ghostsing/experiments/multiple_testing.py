"""Multiple-comparison control for the predictions' verdicts: Holm's step-down procedure.

Each prediction's verdict is decided at its own level (0.05 unless stated), with no correction for the
other tests of the same report or of other reports.  :func:`holm_bonferroni` adjusts a family of p-values
so that the rejections it keeps have a family-wise error rate at most ``level``;
:func:`family_verdict` turns a nominal verdict into the verdict at the family-wise level, and
:func:`is_negative_control` names the predictions (``"negative control: ..."``) that are checks expected
*not* to reject, which the summary over many reports keeps in a family of their own.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

__all__ = ["holm_bonferroni", "family_verdict", "is_negative_control", "NEGATIVE_CONTROL_PREFIX"]

#: Names of negative-control predictions start with this (case-insensitive).
NEGATIVE_CONTROL_PREFIX = "negative control"


def _as_float(p: float | None) -> float:
    return float("nan") if p is None else float(p)


def holm_bonferroni(p_values: Iterable[float | None], level: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Holm's step-down adjusted p-values and rejections over one family of tests.

    The family is every finite p-value in ``p_values``; ``None`` and NaN (untestable predictions) are left
    out of it (they do not count in ``m``), and their adjusted p-value is NaN and their rejection
    ``False``.  With the ``m`` p-values of the family sorted, ``p_(1) <= ... <= p_(m)``,

        ``p_(i)^adj = max_{j <= i} min(1, (m - j + 1) p_(j))``,

    and a test is rejected when ``p^adj < level`` (the package's strict convention; Holm's rule
    ``p_(j) <= level / (m - j + 1)`` for every ``j <= i`` differs from it only at equality).  Tied
    p-values get the same adjusted p-value, whatever their order.

    Guarantee: for any dependence between the tests, the probability of rejecting at least one true null
    hypothesis of the family (the family-wise error rate) is at most ``level``.  Holm rejects everything
    Bonferroni (``m p < level``) rejects and possibly more.

    Returns ``(adjusted, reject)``, float and bool arrays in the order of ``p_values``.  A finite p-value
    outside ``[0, 1]`` or a level outside ``(0, 1)`` is a ``ValueError``.
    """
    if not 0 < level < 1:
        raise ValueError(f"level={level!r} is not allowed; allowed: a float in (0, 1)")
    p = np.array([_as_float(v) for v in p_values], dtype=np.float64)
    bad = np.isinf(p) | (np.isfinite(p) & ((p < 0) | (p > 1)))
    if bad.any():
        raise ValueError(f"p-values must lie in [0, 1] (or be None/NaN for untestable predictions); got "
                         f"{p[bad].tolist()}")
    adjusted = np.full(p.shape, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    m = idx.size
    if m:
        order = np.argsort(p[idx], kind="stable")
        scaled = np.minimum(1.0, (m - np.arange(m)) * p[idx][order])
        adjusted[idx[order]] = np.maximum.accumulate(scaled)
    reject = np.zeros(p.shape, dtype=bool)
    reject[idx] = adjusted[idx] < level
    return adjusted, reject


def family_verdict(verdict: str, p_holm: float | None, level: float = 0.05) -> str:
    """The verdict at the family-wise level: a nominal ``holds`` or ``fails`` stays only when its Holm
    p-value is below ``level`` as well, else it becomes ``inconclusive``; the other verdicts stay."""
    if verdict not in ("holds", "fails"):
        return verdict
    q = _as_float(p_holm)
    return verdict if math.isfinite(q) and q < level else "inconclusive"


def is_negative_control(name: str) -> bool:
    """Whether a prediction's name marks it as a negative control (``"negative control: ..."``)."""
    return name.strip().lower().startswith(NEGATIVE_CONTROL_PREFIX)
