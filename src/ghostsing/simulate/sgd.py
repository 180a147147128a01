r"""On-line and mini-batch SGD of the teacher–student two-layer network at finite N, in Numba.

One idea: finite-N SGD of the teacher-student network in Numba, in the two conventions (Goldt et al.'s and
:class:`~ghostsing.models.ModelSpec`'s) that share the validation and the save grid.

Goldt et al. (2019) convention (the one of :mod:`ghostsing.analytic.order_params`).  Inputs
``x ~ N(0, I_N)``, pre-activations ``lambda_k = J_k . x / sqrt N``, ``nu_m = B_m . x / sqrt N``::

    phi(x) = sum_k v_k g(lambda_k),      y = sum_m A_m g(nu_m) + sigma zeta,      Delta = phi(x) - y,

and each step draws ``b`` fresh samples (``b = 1``: on-line SGD) and applies the batch-mean update::

    J_k <- J_k - (lr / sqrt N) (1/b) sum_mu v_k g'(lambda_k^mu) Delta^mu x^mu
    v_k <- v_k - (lr2 / N)     (1/b) sum_mu g(lambda_k^mu) Delta^mu          (if the second layer is trained)

Time is ``t = steps / N`` (written alpha in Goldt et al.; here alpha is only the skip strength of
:class:`~ghostsing.models.ModelSpec`).  Recorded on the grid: ``Q = J J^T / N``, ``R = J B^T / N``, ``v``;
``T = B B^T / N`` is constant.  The generalisation error ``eps_g`` of the recorded weights is exact for
Gaussian inputs as a function of ``(Q, R, T, v, A)``; it is evaluated with the generated closed form of
:mod:`ghostsing.analytic.order_params` (no formula is re-typed here).

ModelSpec convention (:func:`online_sgd_spec`): the student of :class:`ghostsing.models.ModelSpec`,
``f(x) = sum_i w_i [g(J_i . x) + alpha s_i . x]`` with no ``1/sqrt N``, teacher ``sum_m v_m g(B_m . x)
+ sigma xi``, plain SGD ``theta <- theta - lr grad_theta (f - y)^2 / 2`` on fresh samples; after
``n`` steps the matching gradient-flow time is ``t = n lr`` (small lr).

Several seeds run in parallel (``numba.prange`` over seeds).  Seed ``s`` owns one
``numpy.random.default_rng(s)``: it draws the teacher (unless given), the initial weights (unless given)
and then, inside the Numba kernel, the samples (Numba's ``Generator.standard_normal`` reproduces
NumPy's stream exactly), so results do not depend on the number of threads and can be replayed in NumPy.

Each seed ends with a :class:`~ghostsing.simulate.status.Status` code, the enumeration shared with the
integrators: ``OK``, or ``NON_FINITE`` when the weights or the error stopped being finite.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from numba.typed import List

from ghostsing.simulate.status import Status

__all__ = ["SGDResult", "SpecSGDResult", "online_sgd", "online_sgd_spec"]

_ACT_CODES = {"erf": 0, "linear": 1, "relu": 2}
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_OK = int(Status.OK)  # the shared status codes, as Numba constants
_NON_FINITE = int(Status.NON_FINITE)


# ----------------------------------------------------------------------------------------- kernels
@numba.njit(cache=True, inline="always")
def _g(act: int, u: float) -> float:
    if act == 0:
        return math.erf(u * _INV_SQRT2)
    if act == 1:
        return u
    return u if u > 0.0 else 0.0


@numba.njit(cache=True, inline="always")
def _gprime(act: int, u: float) -> float:
    if act == 0:
        return _SQRT_2_OVER_PI * math.exp(-0.5 * u * u)
    if act == 1:
        return 1.0
    return 1.0 if u > 0.0 else 0.0


# Reassociation / contraction only (SIMD dot products); no 'nnan'/'ninf', so the finiteness checks stay.
_FAST = {"reassoc", "contract", "nsz", "arcp"}


@numba.njit(cache=True, fastmath=_FAST)
def _run_goldt(J, v, B, A, lr, lr2, sigma, train_v, act, batch, save_steps, rng, Qo, Ro, vo):
    """One seed of Goldt-convention SGD; J, v change in place. Returns a Status code (OK, NON_FINITE)."""
    K, N = J.shape
    M = B.shape[0]
    sqn = math.sqrt(N)
    lam = np.empty(K)
    nu = np.empty(M)
    coef = np.empty(K)
    gJ = np.zeros((K, N))
    gv = np.zeros(K)
    n_save = save_steps.shape[0]
    isave = 0
    step = 0
    status = _OK
    while isave < n_save and save_steps[isave] == 0:
        _record(J, v, B, Qo, Ro, vo, isave)
        isave += 1
    total = save_steps[n_save - 1]
    inv_b = 1.0 / batch
    while step < total:
        if batch > 1:
            gJ[:, :] = 0.0
            gv[:] = 0.0
        for _ in range(batch):
            x = rng.standard_normal(N)
            delta = 0.0
            for k in range(K):
                s = 0.0
                for i in range(N):
                    s += J[k, i] * x[i]
                lam[k] = s / sqn
                delta += v[k] * _g(act, lam[k])
            for m in range(M):
                s = 0.0
                for i in range(N):
                    s += B[m, i] * x[i]
                nu[m] = s / sqn
                delta -= A[m] * _g(act, nu[m])
            if sigma > 0.0:
                delta -= sigma * rng.standard_normal()
            if not math.isfinite(delta):
                status = _NON_FINITE
                break
            for k in range(K):
                coef[k] = lr / sqn * v[k] * _gprime(act, lam[k]) * delta
            if batch == 1:
                if train_v:
                    for k in range(K):
                        v[k] -= lr2 / N * _g(act, lam[k]) * delta
                for k in range(K):
                    ck = coef[k]
                    for i in range(N):
                        J[k, i] -= ck * x[i]
            else:
                if train_v:
                    for k in range(K):
                        gv[k] += lr2 / N * _g(act, lam[k]) * delta
                for k in range(K):
                    ck = coef[k]
                    for i in range(N):
                        gJ[k, i] += ck * x[i]
        if status != _OK:
            break
        if batch > 1:
            for k in range(K):
                v[k] -= gv[k] * inv_b
                for i in range(N):
                    J[k, i] -= gJ[k, i] * inv_b
        step += 1
        while isave < n_save and save_steps[isave] == step:
            _record(J, v, B, Qo, Ro, vo, isave)
            isave += 1
            if not (np.all(np.isfinite(Qo[isave - 1])) and np.all(np.isfinite(vo[isave - 1]))):
                status = _NON_FINITE
        if status != _OK:
            break
    for j in range(isave, n_save):
        Qo[j, :, :] = np.nan
        Ro[j, :, :] = np.nan
        vo[j, :] = np.nan
    return status


@numba.njit(cache=True)
def _record(J, v, B, Qo, Ro, vo, j):
    K, N = J.shape
    M = B.shape[0]
    for k in range(K):
        for l in range(k, K):
            s = 0.0
            for i in range(N):
                s += J[k, i] * J[l, i]
            Qo[j, k, l] = s / N
            Qo[j, l, k] = s / N
        for m in range(M):
            s = 0.0
            for i in range(N):
                s += J[k, i] * B[m, i]
            Ro[j, k, m] = s / N
        vo[j, k] = v[k]


@numba.njit(cache=True, parallel=True)
def _goldt_seeds(J0, v0, B, A, lr, lr2, sigma, train_v, act, batch, save_steps, rngs, Qo, Ro, vo, status):
    n_seeds = J0.shape[0]
    for s in numba.prange(n_seeds):
        J = J0[s].copy()
        v = v0[s].copy()
        status[s] = _run_goldt(
            J,
            v,
            B[s],
            A,
            lr,
            lr2,
            sigma,
            train_v,
            act,
            batch,
            save_steps,
            rngs[np.int64(s)],
            Qo[s],
            Ro[s],
            vo[s],
        )


@numba.njit(cache=True, fastmath=_FAST)
def _run_spec(w, J, Bt, vt, S, alpha, sigma, lr, act, batch, save_steps, rng, wo, Jo):
    """One seed of ModelSpec-convention SGD on (w, J); returns a Status code: OK or NON_FINITE."""
    K, N = J.shape
    M = Bt.shape[0]
    pre = np.empty(K)
    sk = np.empty(K)
    gw = np.zeros(K)
    gJ = np.zeros((K, N))
    n_save = save_steps.shape[0]
    isave = 0
    status = _OK
    while isave < n_save and save_steps[isave] == 0:
        wo[isave, :] = w
        Jo[isave, :, :] = J
        isave += 1
    total = save_steps[n_save - 1]
    scale = lr / batch
    step = 0
    while step < total:
        gw[:] = 0.0
        gJ[:, :] = 0.0
        for _ in range(batch):
            x = rng.standard_normal(N)
            y = 0.0
            for m in range(M):
                s = 0.0
                for i in range(N):
                    s += Bt[m, i] * x[i]
                y += vt[m] * _g(act, s)
            if sigma > 0.0:
                y += sigma * rng.standard_normal()
            f = 0.0
            for k in range(K):
                s = 0.0
                t = 0.0
                for i in range(N):
                    s += J[k, i] * x[i]
                    t += S[k, i] * x[i]
                pre[k] = s
                sk[k] = t
                f += w[k] * (_g(act, s) + alpha * t)
            delta = f - y
            if not math.isfinite(delta):
                status = _NON_FINITE
                break
            for k in range(K):
                gw[k] += delta * (_g(act, pre[k]) + alpha * sk[k])
                c = delta * w[k] * _gprime(act, pre[k])
                for i in range(N):
                    gJ[k, i] += c * x[i]
        if status != _OK:
            break
        for k in range(K):
            w[k] -= scale * gw[k]
            for i in range(N):
                J[k, i] -= scale * gJ[k, i]
        step += 1
        while isave < n_save and save_steps[isave] == step:
            wo[isave, :] = w
            Jo[isave, :, :] = J
            isave += 1
            # the per-sample check of delta alone can miss a blow-up (measured: NaN weights with status OK
            # under these fastmath flags), so the saved weights are checked as in _run_goldt
            if not (np.all(np.isfinite(wo[isave - 1])) and np.all(np.isfinite(Jo[isave - 1]))):
                status = _NON_FINITE
        if status != _OK:
            break
    for j in range(isave, n_save):
        wo[j, :] = np.nan
        Jo[j, :, :] = np.nan
    return status


@numba.njit(cache=True, parallel=True)
def _spec_seeds(w0, J0, Bt, vt, S, alpha, sigma, lr, act, batch, save_steps, rngs, wo, Jo, status):
    n_seeds = w0.shape[0]
    for s in numba.prange(n_seeds):
        w = w0[s].copy()
        J = J0[s].copy()
        status[s] = _run_spec(
            w, J, Bt, vt, S, alpha, sigma, lr, act, batch, save_steps, rngs[np.int64(s)], wo[s], Jo[s]
        )


# ----------------------------------------------------------------------------------------- checks
def _pos_float(name: str, value: Any, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name} must be a float, got {value!r} of type {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(
            f"{name}={value} is not allowed; allowed: a finite float {'>=' if allow_zero else '>'} 0"
        )
    return value


def _pos_int(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, got {value!r} of type {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name}={value} is not allowed; allowed: an int >= {low}")
    return int(value)


def _seeds(seeds: Any) -> tuple[int, ...]:
    if isinstance(seeds, int | np.integer) and not isinstance(seeds, bool):
        seeds = (seeds,)
    try:
        out = tuple(int(s) for s in seeds)
    except TypeError as exc:
        raise TypeError(f"seeds={seeds!r} is not an int or a sequence of ints") from exc
    if not out or any(s < 0 for s in out):
        raise ValueError(f"seeds={seeds!r} is not allowed; allowed: one or more ints >= 0")
    return out


def _array(name: str, value: Any, shapes: Sequence[tuple[int, ...]]) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64)
    if a.shape not in shapes:
        raise ValueError(f"{name} has shape {a.shape}; allowed: {' or '.join(str(s) for s in shapes)}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} has non-finite entries; allowed: finite floats")
    return a


def _save_steps(times: Any, N: int, per: float) -> np.ndarray:
    """Step counts of the save times (``times * per`` rounded)."""
    a = np.asarray(times, dtype=np.float64)
    if a.ndim != 1 or a.size < 1 or not np.all(np.isfinite(a)) or np.any(a < 0):
        raise ValueError(
            "the save grid must be a 1-D array of finite times >= 0; allowed: e.g. np.linspace(0, 20, 41)"
        )
    steps = np.rint(a * per).astype(np.int64)
    if np.any(np.diff(steps) <= 0):
        raise ValueError(
            f"the save grid maps to repeated or decreasing step counts {steps.tolist()} at N={N}; "
            "allowed: times strictly increasing by at least one step"
        )
    return steps


# ----------------------------------------------------------------------------------------- Goldt convention
@dataclass(frozen=True)
class SGDResult:
    """Order parameters of Goldt-convention SGD on a time grid, one row per seed.

    ``t (n_t,)``: SGD time steps / N actually taken (the alpha of Goldt et al.); ``Q (S, n_t, K, K)``,
    ``R (S, n_t, K, M)``, ``T (S, M, M)``, ``v (S, n_t, K)``, ``eg (S, n_t)`` (exact eps_g of the recorded
    weights); ``status (S,)``: :class:`~ghostsing.simulate.status.Status` codes, ``OK`` or ``NON_FINITE``
    (the rest of that row is NaN).
    """

    t: np.ndarray
    Q: np.ndarray
    R: np.ndarray
    T: np.ndarray
    v: np.ndarray
    eg: np.ndarray
    status: np.ndarray
    seeds: tuple[int, ...]
    config: dict

    def states(self, ode) -> np.ndarray:
        """Flat ODE states ``(S, n_t, n_state)`` for an ``analytic.order_params.OrderParameterODE``."""
        S, n_t = self.eg.shape
        out = np.full((S, n_t, ode.n_state), np.nan)
        for s in range(S):
            for j in range(n_t):
                if np.isfinite(self.Q[s, j]).all():
                    out[s, j] = ode.pack(self.Q[s, j], self.R[s, j], self.T[s], self.v[s, j])
        return out


def online_sgd(
    K: int,
    M: int,
    N: int,
    times: Sequence[float] | np.ndarray,
    activation: str = "erf",
    lr: float = 0.5,
    lr2: float | None = None,
    sigma: float = 0.0,
    train_second_layer: bool = True,
    A: Sequence[float] | None = None,
    seeds: int | Sequence[int] = (0,),
    batch_size: int = 1,
    init_std: float = 1.0,
    J0: Any = None,
    v0: Any = None,
    B: Any = None,
) -> SGDResult:
    """Run Goldt-convention on-line / mini-batch SGD (module docstring) for each seed.

    Parameters
    ----------
    K, M : student / teacher hidden units (1..4).  N : input dimension (>= 1).
    times : save grid in SGD time t = steps / N (rounded to whole steps; strictly increasing after
        rounding).
    activation : ``"erf"`` (g(x) = erf(x / sqrt 2)) or ``"linear"``.
    lr, lr2 : first- and second-layer rates (> 0; ``lr2`` None means ``lr``).  sigma : output noise >= 0.
    train_second_layer : update v or keep it at ``v0``.  A : teacher second layer (default ones).
    seeds : int or ints >= 0; each gives its own teacher, initial weights and samples.
    batch_size : samples averaged per step (1: on-line).
    init_std : std of the i.i.d. Gaussian entries of the initial J (when ``J0`` is None).
    J0 : initial first layer ``(K, N)`` or ``(S, K, N)``; v0 : initial second layer ``(K,)`` (default
        ones); B : teacher first layer ``(M, N)`` or ``(S, M, N)`` (default i.i.d. N(0, 1) per seed).
    """
    from ghostsing.analytic.order_params import _check_units, order_parameter_ode

    K, M = _check_units("K", K), _check_units("M", M)
    N = _pos_int("N", N)
    if activation not in ("erf", "linear"):
        raise ValueError(f"activation={activation!r} is not supported; allowed: erf, linear")
    lr = _pos_float("lr", lr)
    lr2 = lr if lr2 is None else _pos_float("lr2", lr2, allow_zero=True)
    sigma = _pos_float("sigma", sigma, allow_zero=True)
    init_std = _pos_float("init_std", init_std, allow_zero=True)
    batch_size = _pos_int("batch_size", batch_size)
    if not isinstance(train_second_layer, bool | np.bool_):
        raise TypeError(f"train_second_layer must be a bool, got {train_second_layer!r}")
    seeds = _seeds(seeds)
    S = len(seeds)
    A_arr = np.ones(M) if A is None else _array("A", A, [(M,)])
    steps = _save_steps(times, N, N)

    rngs = [np.random.default_rng(s) for s in seeds]
    B_all = np.empty((S, M, N))
    J_all = np.empty((S, K, N))
    if B is not None:
        B_all[:] = _array("B", B, [(M, N), (S, M, N)])
    if J0 is not None:
        J_all[:] = _array("J0", J0, [(K, N), (S, K, N)])
    for s, rng in enumerate(rngs):
        if B is None:
            B_all[s] = rng.standard_normal((M, N))
        if J0 is None:
            J_all[s] = init_std * rng.standard_normal((K, N))
    v_all = np.empty((S, K))
    v_all[:] = np.ones(K) if v0 is None else _array("v0", v0, [(K,), (S, K)])

    n_t = steps.size
    Qo, Ro, vo = np.empty((S, n_t, K, K)), np.empty((S, n_t, K, M)), np.empty((S, n_t, K))
    status = np.zeros(S, dtype=np.int64)
    _goldt_seeds(
        J_all,
        v_all,
        B_all,
        A_arr,
        lr,
        lr2,
        sigma,
        bool(train_second_layer),
        _ACT_CODES[activation],
        batch_size,
        steps,
        List(rngs),
        Qo,
        Ro,
        vo,
        status,
    )
    T = np.einsum("smi,sni->smn", B_all, B_all) / N

    ode = order_parameter_ode(
        K, M, activation, lr=lr, lr2=lr2, sigma=sigma, train_second_layer=bool(train_second_layer), A=A_arr
    )
    eg = np.full((S, n_t), np.nan)
    for s in range(S):
        for j in range(n_t):
            if np.isfinite(Qo[s, j]).all():
                eg[s, j] = ode.generalisation_error(ode.pack(Qo[s, j], Ro[s, j], T[s], vo[s, j]))
    config = {
        "K": K,
        "M": M,
        "N": N,
        "activation": activation,
        "lr": lr,
        "lr2": lr2,
        "sigma": sigma,
        "train_second_layer": bool(train_second_layer),
        "A": A_arr.tolist(),
        "batch_size": batch_size,
        "init_std": init_std,
    }
    return SGDResult(steps / N, Qo, Ro, T, vo, eg, status, seeds, config)


# --------------------------------------------------------------------------------- ModelSpec convention
@dataclass(frozen=True)
class SpecSGDResult:
    """Parameters of ModelSpec-convention SGD on a grid.

    ``t (n_t,)``: gradient-flow time (steps * lr); ``steps (n_t,)``; ``theta (S, n_t, P)`` in the ModelSpec
    flat order; ``status (S,)``: :class:`~ghostsing.simulate.status.Status` codes, ``OK`` or
    ``NON_FINITE`` (the rest of that row is NaN)."""

    t: np.ndarray
    steps: np.ndarray
    theta: np.ndarray
    status: np.ndarray
    seeds: tuple[int, ...]


def online_sgd_spec(
    spec,
    theta0: Any,
    times: Sequence[float] | np.ndarray,
    lr: float = 1e-3,
    seeds: int | Sequence[int] = (0,),
    batch_size: int = 1,
) -> SpecSGDResult:
    """SGD on the :class:`~ghostsing.models.ModelSpec` student with fresh Gaussian samples (module docstring).

    ``theta0`` is ``(P,)`` or ``(S, P)`` (ModelSpec order ``w_1..w_K, J_1, ..., J_K``); ``times`` is the
    save grid in gradient-flow time ``t = steps * lr``.  Per step the update is
    ``theta <- theta - lr (1/b) sum_mu grad_theta (f(x^mu) - y^mu)^2 / 2``; its mean is the gradient
    flow of the population loss, ``d theta / dt = -grad L``.
    """
    from ghostsing.models import ModelSpec

    if not isinstance(spec, ModelSpec):
        raise TypeError(f"spec must be a ModelSpec, got {type(spec).__name__}")
    lr = _pos_float("lr", lr)
    batch_size = _pos_int("batch_size", batch_size)
    seeds = _seeds(seeds)
    S = len(seeds)
    theta = np.empty((S, spec.n_params))
    theta[:] = _array("theta0", theta0, [(spec.n_params,), (S, spec.n_params)])
    w0, J0 = spec.split(theta)
    steps = _save_steps(times, spec.N, 1.0 / lr)
    rngs = [np.random.default_rng(s) for s in seeds]
    n_t = steps.size
    wo, Jo = np.empty((S, n_t, spec.K)), np.empty((S, n_t, spec.K, spec.N))
    status = np.zeros(S, dtype=np.int64)
    _spec_seeds(
        np.ascontiguousarray(w0),
        np.ascontiguousarray(J0),
        np.ascontiguousarray(spec.B),
        np.ascontiguousarray(spec.v),
        np.ascontiguousarray(spec.skip_directions),
        spec.alpha,
        spec.sigma,
        lr,
        _ACT_CODES[spec.activation],
        batch_size,
        steps,
        List(rngs),
        wo,
        Jo,
        status,
    )
    return SpecSGDResult(steps * lr, steps, spec.pack(wo, Jo), status, seeds)
