"""Validators shared by configs, command lines and library entry points.

Each raises ``ValueError`` whose message names the parameter, the bad value and what is allowed, so a
user who passes ``alpha=-1`` reads ``alpha=-1 is not allowed; allowed: a finite float >= 0``.  Configs
call them once, in ``__post_init__``; command-line parsers turn the ``ValueError`` into their own error.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["check_int", "check_float", "check_choice", "check_seeds", "check_ints", "check_floats"]


def _describe(low: float | None, high: float | None, kind: str, low_open: bool = False,
              high_open: bool = False) -> str:
    if low is not None and high is not None:
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        return f"a finite {kind} in {lo}{low:g}, {high:g}{hi}"
    if low is not None:
        return f"a finite {kind} {'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"a finite {kind} {'<' if high_open else '<='} {high:g}"
    return f"a finite {kind}"


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an ``int`` in ``[low, high]`` (bounds optional); bools are refused."""
    allowed = _describe(low, high, "integer").replace("a finite ", "an ")
    if isinstance(value, bool) or not isinstance(value, (int,)) and not (
        hasattr(value, "__index__") and not isinstance(value, float)
    ):
        raise ValueError(f"{name}={value!r} is not an integer; allowed: {allowed}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name}={value!r} is out of range; allowed: {allowed}")
    return value


def check_float(name: str, value: Any, low: float | None = None, high: float | None = None, *,
                low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite ``float`` in the interval given by ``low``/``high`` (open ends optional)."""
    allowed = _describe(low, high, "float", low_open, high_open)
    if isinstance(value, bool):
        raise ValueError(f"{name}={value!r} is not a number; allowed: {allowed}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is not a number; allowed: {allowed}") from None
    bad = not math.isfinite(x)
    if low is not None:
        bad |= x <= low if low_open else x < low
    if high is not None:
        bad |= x >= high if high_open else x > high
    if bad:
        raise ValueError(f"{name}={value!r} is not allowed; allowed: {allowed}")
    return x


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """``value`` if it is one of ``allowed``."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; allowed: {', '.join(map(repr, allowed))}")
    return value


def check_ints(name: str, values: Any, low: int | None = None, high: int | None = None, *,
               distinct: bool = False, nonempty: bool = True) -> tuple[int, ...]:
    """A tuple of integers, each checked by :func:`check_int` (and distinct, non-empty if asked)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ValueError(f"{name}={values!r} is not a list of integers")
    out = tuple(check_int(f"{name}[{i}]", v, low, high) for i, v in enumerate(values))
    if nonempty and not out:
        raise ValueError(f"{name}=() is empty; allowed: at least one integer")
    if distinct and len(set(out)) != len(out):
        raise ValueError(f"{name}={out!r} repeats a value; allowed: distinct integers")
    return out


def check_floats(name: str, values: Any, low: float | None = None, high: float | None = None, *,
                 low_open: bool = False, nonempty: bool = True) -> tuple[float, ...]:
    """A tuple of finite floats, each checked by :func:`check_float`."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ValueError(f"{name}={values!r} is not a list of numbers")
    out = tuple(check_float(f"{name}[{i}]", v, low, high, low_open=low_open) for i, v in enumerate(values))
    if nonempty and not out:
        raise ValueError(f"{name}=() is empty; allowed: at least one number")
    return out


def check_seeds(name: str, seeds: Sequence[int] | int) -> tuple[int, ...]:
    """Seeds as distinct integers >= 0; an ``int`` ``n`` means ``(0, ..., n-1)``."""
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        return tuple(range(check_int(name, seeds, 1)))
    return check_ints(name, seeds, 0, distinct=True)
