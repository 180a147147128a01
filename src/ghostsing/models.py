"""The reduced teacher–student model shared by every layer of ghostsing.

Inputs ``x ~ N(0, I_N)``.  Teacher (``M`` hidden units)::

    y = sum_{m=1..M} v_m g(B_m . x) + sigma xi,      xi ~ N(0, 1)

Student (``K`` hidden units, skip strength ``alpha >= 0``)::

    f(x) = sum_{i=1..K} w_i [ g(J_i . x) + alpha s_i . x ]

with skip directions ``s_i`` (field ``skip_directions``; default ``s_i = e_i``, the identity skip, which
needs ``N >= K``).  Names: ``alpha`` is only the skip *strength*, ``skip_directions`` the skip
*directions* ``s_i``.
``alpha = 0`` is the plain network, ``alpha = 1`` the residual one.  The trainable parameters are
flattened as ``theta = (w_1..w_K, J_1[0..N-1], ..., J_K[0..N-1])`` (``P = K + K N`` entries).

Defaults (documented, used when the argument is ``None``):

* ``v = (1, ..., 1)`` (M ones);
* ``B = (e_1, ..., e_M)`` (orthonormal teacher), which needs ``N >= M``; give ``B`` explicitly otherwise;
* ``skip_directions = (e_1, ..., e_K)`` (identity skip), which needs ``N >= K`` when ``alpha > 0``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ACTIVATIONS: tuple[str, ...] = ("erf", "relu", "linear")
MAX_UNITS = 4


def _as_readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64, copy=True)
    a.setflags(write=False)
    return a


def _check_int(name: str, value: Any, low: int, high: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, got {value!r} of type {type(value).__name__}")
    value = int(value)
    allowed = f"{low}..{high}" if high is not None else f">= {low}"
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name}={value} is out of range; allowed: {allowed}")
    return value


def _check_matrix(name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}={value!r} is not a numeric array of shape {shape}") from exc
    if a.shape != shape:
        raise ValueError(f"{name} has shape {a.shape}; allowed: shape {shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}={a.tolist()} has non-finite entries; allowed: finite floats")
    return a


@dataclass(frozen=True, eq=False)
class ModelSpec:
    """A validated, immutable reduced teacher–student model (see the module docstring).

    After construction ``v``, ``B`` and ``skip_directions`` are read-only float64 numpy arrays.

    Parameters
    ----------
    K, M : number of student and teacher hidden units, each in 1..4.
    N : input dimension, >= 1 (and >= K when ``alpha > 0`` with the default identity skip).
    activation : ``"erf"`` (g(u) = erf(u / sqrt 2)), ``"relu"`` or ``"linear"``.
    alpha : skip strength, a finite float >= 0.
    v : teacher second layer, M floats (default all ones).
    B : teacher first layer, M x N (default the first M unit vectors; needs N >= M).
    sigma : output-noise standard deviation, >= 0.
    skip_directions : the skip directions s_i, K x N (default the first K unit vectors).
    """

    K: int = 2
    M: int = 2
    N: int = 2
    activation: str = "erf"
    alpha: float = 0.0
    v: Any = None
    B: Any = None
    sigma: float = 0.0
    skip_directions: Any = field(default=None)

    def __post_init__(self) -> None:
        K = _check_int("K", self.K, 1, MAX_UNITS)
        M = _check_int("M", self.M, 1, MAX_UNITS)
        N = _check_int("N", self.N, 1, None)
        if self.activation not in ACTIVATIONS:
            allowed = ", ".join(ACTIVATIONS)
            raise ValueError(f"activation={self.activation!r} is not known; allowed: {allowed}")
        alpha = self._check_nonneg("alpha", self.alpha)
        sigma = self._check_nonneg("sigma", self.sigma)

        if self.v is None:
            v = np.ones(M)
        else:
            v = _check_matrix("v", self.v, (M,))
        if self.B is None:
            if N < M:
                raise ValueError(
                    f"B=None needs N >= M for the default orthonormal teacher, got N={N}, M={M}; "
                    "allowed: pass B explicitly as an M x N array"
                )
            B = np.eye(M, N)
        else:
            B = _check_matrix("B", self.B, (M, N))
        if self.skip_directions is None:
            if alpha > 0 and N < K:
                raise ValueError(
                    f"alpha={alpha} with identity skip directions needs N >= K, got N={N}, K={K}; "
                    "allowed: N >= K, alpha = 0, or explicit skip_directions (K x N)"
                )
            skip = np.eye(K, N)
        else:
            skip = _check_matrix("skip_directions", self.skip_directions, (K, N))

        for name, value in (("K", K), ("M", M), ("N", N), ("alpha", alpha), ("sigma", sigma)):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "v", _as_readonly(v))
        object.__setattr__(self, "B", _as_readonly(B))
        object.__setattr__(self, "skip_directions", _as_readonly(skip))

    @staticmethod
    def _check_nonneg(name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise TypeError(f"{name} must be a float, got {value!r} of type {type(value).__name__}")
        value = float(value)
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{name}={value} is not allowed; allowed: a finite float >= 0")
        return value

    # ----------------------------------------------------------------------------- layout
    @property
    def n_params(self) -> int:
        """P = K + K N, the length of the flat parameter vector theta."""
        return self.K + self.K * self.N

    def split(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Split a flat ``theta`` of length P into ``(w (K,), J (K, N))``."""
        theta = np.asarray(theta, dtype=np.float64)
        if theta.shape[-1] != self.n_params:
            raise ValueError(f"theta has last dimension {theta.shape[-1]}; allowed: {self.n_params}")
        w = theta[..., : self.K]
        J = theta[..., self.K :].reshape(*theta.shape[:-1], self.K, self.N)
        return w, J

    def pack(self, w: np.ndarray, J: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`split`: ``theta = (w, J_1, ..., J_K)``."""
        w = np.asarray(w, dtype=np.float64)
        J = np.asarray(J, dtype=np.float64)
        if w.shape[-1] != self.K or J.shape[-2:] != (self.K, self.N):
            raise ValueError(f"w {w.shape} / J {J.shape} do not match K={self.K}, N={self.N}")
        return np.concatenate([w, J.reshape(*J.shape[:-2], self.K * self.N)], axis=-1)

    def teacher_theta(self) -> np.ndarray:
        """The teacher written as a student parameter (only meaningful when K == M)."""
        if self.K != self.M:
            raise ValueError(f"teacher_theta needs K == M, got K={self.K}, M={self.M}")
        return self.pack(self.v, self.B)

    def replace(self, **changes: Any) -> ModelSpec:
        """A copy with some fields changed (validated again)."""
        d = self.to_dict()
        d.update(changes)
        return ModelSpec(**d)

    # ----------------------------------------------------------------------------- identity
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description of the spec (resolved teacher included)."""
        return {
            "K": self.K, "M": self.M, "N": self.N, "activation": self.activation,
            "alpha": self.alpha, "v": self.v.tolist(), "B": self.B.tolist(),
            "sigma": self.sigma, "skip_directions": self.skip_directions.tolist(),
        }

    @classmethod
    def random(cls, seed: int | np.random.Generator, K: int = 2, M: int = 2, N: int = 1,
               activation: str = "erf") -> ModelSpec:
        """A random teacher with random skip directions (generic, not symmetric), rounded to 3 digits.

        ``v_m = +-U(0.5, 3)``, ``B ~ N(0, 1.5^2)`` entrywise, skip directions ``s_i`` uniform on the unit
        sphere for ``N > 1`` and ``s_i ~ N(0, 1)`` for ``N = 1`` (a unit direction in one dimension is
        +-1, which would give equal skips half of the time).  ``alpha = 0``.
        """
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        v = rng.uniform(0.5, 3.0, M) * rng.choice([-1.0, 1.0], M)
        B = rng.normal(0.0, 1.5, (M, N))
        S = rng.normal(size=(K, N))
        if N > 1:
            S /= np.linalg.norm(S, axis=1, keepdims=True)
        return cls(K=K, M=M, N=N, activation=activation, v=np.round(v, 3), B=np.round(B, 3),
                   skip_directions=np.round(S, 3))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        """The spec of :meth:`to_dict`'s output (also of older files, whose directions are under "skip")."""
        d = dict(d)
        if "skip" in d and "skip_directions" not in d:
            d["skip_directions"] = d.pop("skip")
        return cls(**d)

    def key(self) -> str:
        """A stable SHA-256 hex digest of the resolved spec (used for on-disk caches).

        The digest is of the model, not of the Python names: it hashes the JSON of :meth:`to_dict` with
        the skip directions under their first name, "skip", so that renaming the field to
        ``skip_directions`` kept every cached generated module valid."""
        d = self.to_dict()
        d["skip"] = d.pop("skip_directions")
        text = json.dumps(d, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModelSpec) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.key())

    def __repr__(self) -> str:
        return (f"ModelSpec(K={self.K}, M={self.M}, N={self.N}, activation={self.activation!r}, "
                f"alpha={self.alpha}, v={self.v.tolist()}, B={self.B.tolist()}, sigma={self.sigma})")

