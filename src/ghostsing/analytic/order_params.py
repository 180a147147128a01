r"""Large-N order-parameter ODEs of on-line SGD in the teacher–student two-layer network (SymPy -> Numba).

One idea: the large-N order-parameter ODEs of on-line SGD, derived in SymPy, generated into Numba and
wrapped with their fixed points.

Model (Goldt, Advani, Saxe, Krzakala & Zdeborová 2019; Saad & Solla 1995).  Inputs ``x ~ N(0, I_N)``;
pre-activations ``lambda_k = J_k . x / sqrt(N)`` (student, ``k = 1..K``) and ``nu_m = B_m . x / sqrt(N)``
(teacher, ``m = 1..M``)::

    student  phi(x) = sum_k v_k g(lambda_k),        teacher  y = sum_m A_m g(nu_m) + sigma zeta,

``zeta ~ N(0, 1)``.  With ``Delta = phi(x) - y`` on-line SGD on ``Delta^2 / 2`` updates, one fresh sample
per step::

    J_k <- J_k - (lr / sqrt N) v_k g'(lambda_k) Delta x,        v_k <- v_k - (lr2 / N) g(lambda_k) Delta.

With the order parameters ``Q_kl = J_k . J_l / N``, ``R_km = J_k . B_m / N``, ``T_mn = B_m . B_n / N``
and the SGD time ``t = steps / N`` (written alpha by Goldt et al. and Saad & Solla; in ghostsing alpha
is only the skip strength), the N -> infinity limit is (``d_k = v_k g'(lambda_k) Delta``)::

    dR_km/dt = -lr E[d_k nu_m]
    dQ_kl/dt = -lr (E[d_k lambda_l] + E[d_l lambda_k]) + (lr^2 / b) E[d_k d_l]
    dv_k/dt  = -lr2 E[g(lambda_k) Delta]          (0 when the second layer is not trained)
    dT_mn/dt = 0

where ``b`` is the mini-batch size (the gradient averaged over ``b`` samples per step; ``b = 1`` is
on-line SGD).  Writing ``u = (lambda_1..lambda_K, nu_1..nu_M)`` with covariance
``Sigma = [[Q, R], [R^T, T]]`` and output weights ``c = (v_1..v_K, -A_1..-A_M)``::

    E[d_k u_p]   = v_k sum_j c_j I3(k, p, j)
    E[d_k d_l]   = v_k v_l ( sum_{j, j'} c_j c_j' I4(k, l, j, j') + sigma^2 J2(k, l) )
    E[g(lambda_k) Delta] = sum_j c_j I2(k, j)

with ``I2, I3, I4, J2`` the Gaussian averages of :mod:`ghostsing.analytic.order_param_averages` taken
with the sub-covariance of the indexed entries of ``u``.  The generalisation error (noise-free) is::

    eps_g = 1/2 E[(phi(x) - sum_m A_m g(nu_m))^2] = 1/2 sum_{j, j'} c_j c_j' I2(j, j').

All of ``T`` (diagonal included) enters: for erf the variances ``T_mm`` set the teacher's saturation,
for linear ``T`` enters ``eps_g`` and ``E[d_k nu_m]`` directly.  ``T`` is part of the state (rhs 0) so
that one flat vector carries everything the rhs needs.

Flat state ``y`` (see :meth:`OrderParameterODE.pack`): the upper triangle of ``Q`` row by row
(``k <= l``), ``R`` row by row, the upper triangle of ``T``, then ``v``.

Symmetric plateau (K = M, T = I, A = 1, v = 1 fixed, small lr): ``Q_kk = Q_kl = 1/(2K-1)``,
``R_km = 1/sqrt(K(2K-1))`` is a fixed point of the O(lr) part (:meth:`OrderParameterODE.drift`) with
``eps_g = K/6 - (K^2/pi) asin(1/(2K))`` (erf); see :func:`symmetric_fixed_point`.

Everything numerical is generated from the SymPy expressions by :mod:`ghostsing.analytic.codegen`
(common-subexpression elimination, then ``numba.njit(cache=True)``), cached on disk by a hash of
``(K, M, activation)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np
import sympy as sp

from ghostsing.analytic import codegen
from ghostsing.analytic.order_param_averages import ODE_ACTIVATIONS, i2, i3, i4, j2

MAX_ODE_UNITS = 4
_DERIVATION_VERSION = "1"

__all__ = [
    "OrderParameterDerivation",
    "OrderParameterODE",
    "derive_order_parameter_odes",
    "order_parameter_ode",
    "symmetric_fixed_point",
    "find_fixed_point",
    "state_layout",
]


# ----------------------------------------------------------------------------------------- layout
def _check_units(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, got {value!r} of type {type(value).__name__}")
    if not 1 <= int(value) <= MAX_ODE_UNITS:
        raise ValueError(f"{name}={value} is out of range; allowed: 1..{MAX_ODE_UNITS}")
    return int(value)


def _check_activation(activation: Any) -> str:
    if activation not in ODE_ACTIVATIONS:
        raise ValueError(f"activation={activation!r} is not supported; allowed: {', '.join(ODE_ACTIVATIONS)}")
    return str(activation)


def state_layout(K: int, M: int) -> dict[str, slice]:
    """Slices of the flat state: ``{"Q": ..., "R": ..., "T": ..., "v": ...}`` (upper triangles of Q, T)."""
    nq, nr, nt = K * (K + 1) // 2, K * M, M * (M + 1) // 2
    return {
        "Q": slice(0, nq),
        "R": slice(nq, nq + nr),
        "T": slice(nq + nr, nq + nr + nt),
        "v": slice(nq + nr + nt, nq + nr + nt + K),
    }


def _state_names(K: int, M: int) -> list[str]:
    names = [f"Q_{k}{l}" for k in range(K) for l in range(k, K)]
    names += [f"R_{k}{m}" for k in range(K) for m in range(M)]
    names += [f"T_{m}{n}" for m in range(M) for n in range(m, M)]
    names += [f"v_{k}" for k in range(K)]
    return names


# ----------------------------------------------------------------------------------------- SymPy
@dataclass(frozen=True)
class OrderParameterDerivation:
    """The symbolic ODEs (see the module docstring).

    Attributes
    ----------
    K, M, activation : the model.
    state : SymPy symbols of the flat state, in the order of :func:`state_layout`.
    params : ``(lr, lr2, c2, sigma2, A_1..A_M)``; ``lr2`` is the effective second-layer rate (0 when it
        is not trained) and ``c2 = lr^2 / b`` multiplies the quadratic (noise) terms.
    rhs : d(state)/dt (t = steps / N), one expression per state entry.
    generalisation_error : eps_g as an expression of the state and ``A``.
    """

    K: int
    M: int
    activation: str
    state: tuple[sp.Symbol, ...]
    params: tuple[sp.Symbol, ...]
    rhs: tuple[sp.Expr, ...]
    generalisation_error: sp.Expr

    def latex(self) -> str:
        """The ODEs as LaTeX ``align`` lines ``\\frac{dX}{dt} = ...`` plus ``\\epsilon_g = ...``."""
        lines = []
        for s, e in zip(self.state, self.rhs, strict=True):
            if e != 0:
                lines.append(rf"\frac{{d {sp.latex(s)}}}{{dt}} &= {sp.latex(e)} \\")
        lines.append(rf"\epsilon_g &= {sp.latex(self.generalisation_error)}")
        return "\\begin{align}\n" + "\n".join(lines) + "\n\\end{align}\n"


def derive_order_parameter_odes(K: int, M: int, activation: str) -> OrderParameterDerivation:
    """Derive the order-parameter ODEs and eps_g in SymPy (equations in the module docstring)."""
    K, M = _check_units("K", K), _check_units("M", M)
    activation = _check_activation(activation)
    Q = {(k, l): sp.Symbol(f"Q_{{{k + 1}{l + 1}}}", real=True) for k in range(K) for l in range(k, K)}
    R = {(k, m): sp.Symbol(f"R_{{{k + 1}{m + 1}}}", real=True) for k in range(K) for m in range(M)}
    T = {(m, n): sp.Symbol(f"T_{{{m + 1}{n + 1}}}", real=True) for m in range(M) for n in range(m, M)}
    v = [sp.Symbol(f"v_{{{k + 1}}}", real=True) for k in range(K)]
    lr, lr2, c2, sigma2 = sp.symbols("eta eta_v c_2 sigma^2", real=True)
    A = [sp.Symbol(f"A_{{{m + 1}}}", real=True) for m in range(M)]

    n = K + M

    def cov(p: int, q: int) -> sp.Symbol:
        if p > q:
            p, q = q, p
        if q < K:
            return Q[p, q]
        if p < K:
            return R[p, q - K]
        return T[p - K, q - K]

    def sub(*idx: int) -> list[list[sp.Symbol]]:
        return [[cov(a, b) for b in idx] for a in idx]

    c = [*v, *(-a for a in A)]

    def e_d_u(k: int, p: int) -> sp.Expr:  # E[d_k u_p] / v_k
        return sp.Add(*(c[j] * i3(activation, sub(k, p, j)) for j in range(n)))

    def e_d_d(k: int, l: int) -> sp.Expr:  # E[d_k d_l] / (v_k v_l)
        terms = [c[j] ** 2 * i4(activation, sub(k, l, j, j)) for j in range(n)]
        terms += [
            2 * c[j] * c[jp] * i4(activation, sub(k, l, j, jp)) for j in range(n) for jp in range(j + 1, n)
        ]
        return sp.Add(*terms) + sigma2 * j2(activation, sub(k, l))

    rhs: list[sp.Expr] = []
    for k in range(K):
        for l in range(k, K):
            drift = -lr * (v[k] * e_d_u(k, l) + v[l] * e_d_u(l, k))
            rhs.append(drift + c2 * v[k] * v[l] * e_d_d(k, l))
    for k in range(K):
        for m in range(M):
            rhs.append(-lr * v[k] * e_d_u(k, K + m))
    rhs += [sp.Integer(0)] * len(T)
    for k in range(K):
        rhs.append(-lr2 * sp.Add(*(c[j] * i2(activation, sub(k, j)) for j in range(n))))

    eg = sp.Add(*(c[j] ** 2 * i2(activation, sub(j, j)) for j in range(n)))
    eg += sp.Add(*(2 * c[j] * c[jp] * i2(activation, sub(j, jp)) for j in range(n) for jp in range(j + 1, n)))
    eg = eg / 2
    state = (*Q.values(), *R.values(), *T.values(), *v)
    return OrderParameterDerivation(K, M, activation, tuple(state), (lr, lr2, c2, sigma2, *A), tuple(rhs), eg)


def _sources_digest() -> str:
    """SHA-256 of the modules the expressions come from, so an edit to any of them regenerates the code."""
    import hashlib
    from pathlib import Path

    from ghostsing.analytic import gaussian, order_param_averages

    h = hashlib.sha256()
    for mod in (gaussian, order_param_averages):
        h.update(Path(mod.__file__).read_bytes())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()[:16]


def _generated_module(K: int, M: int, activation: str) -> ModuleType:
    """The Numba module with ``rhs(x)`` / ``rhs_into(x, out)`` and ``eg(x)``, ``x = (state, params)``."""
    name = "order_params"
    key = f"K={K}|M={M}|activation={activation}|derivation={_DERIVATION_VERSION}|sources={_sources_digest()}"
    mod = codegen.load_cached(name, key)
    if mod is not None:
        return mod
    d = derive_order_parameter_odes(K, M, activation)
    header = (
        f"Order-parameter ODEs of on-line SGD: K={K}, M={M}, activation={activation}.\n"
        f"x = ({', '.join(_state_names(K, M))}, lr, lr2, c2, sigma2, A_1..A_{M})"
    )
    return codegen.generate_module(
        name,
        (*d.state, *d.params),
        {"rhs": list(d.rhs), "eg": d.generalisation_error},
        key=key,
        header=header,
    )


# ----------------------------------------------------------------------------------------- numerics
def _finite_positive(name: str, value: Any, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name} must be a float, got {value!r} of type {type(value).__name__}")
    value = float(value)
    ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        allowed = "a finite float >= 0" if allow_zero else "a finite float > 0"
        raise ValueError(f"{name}={value} is not allowed; allowed: {allowed}")
    return value


@dataclass(frozen=True)
class OrderParameterODE:
    """Numerical order-parameter ODEs for one set of rates (build with :func:`order_parameter_ode`).

    ``rhs(y)`` is ``dy/dt`` with the SGD time ``t = steps / N`` (module docstring); ``drift(y)`` is its
    O(lr) part (the ``lr^2`` and ``sigma^2`` terms dropped); ``generalisation_error(y)`` is ``eps_g``.
    ``numba_rhs`` is the generated Numba dispatcher ``rhs(x)`` with ``x = concatenate([y, params])`` for
    use inside other Numba code.
    """

    K: int
    M: int
    activation: str
    lr: float
    lr2: float
    sigma: float
    train_second_layer: bool
    A: tuple[float, ...]
    batch_size: int = 1
    _module: ModuleType | None = field(default=None, repr=False, compare=False)

    # -------------------------------------------------------------------------- layout
    @property
    def n_state(self) -> int:
        """Length of the flat state."""
        return state_layout(self.K, self.M)["v"].stop

    @property
    def state_names(self) -> tuple[str, ...]:
        """Names of the flat state entries (``Q_kl``, ``R_km``, ``T_mn``, ``v_k``; 0-based indices)."""
        return tuple(_state_names(self.K, self.M))

    @property
    def dynamic_indices(self) -> np.ndarray:
        """Indices of the entries that can move: Q, R, and v when the second layer is trained."""
        lay = state_layout(self.K, self.M)
        idx = list(range(lay["Q"].start, lay["R"].stop))
        if self.train_second_layer:
            idx += list(range(lay["v"].start, lay["v"].stop))
        return np.array(idx, dtype=np.int64)

    @property
    def params(self) -> np.ndarray:
        """``(lr, lr2_eff, lr^2 / batch_size, sigma^2, A_1..A_M)``, the tail of the generated ``x``."""
        lr2 = self.lr2 if self.train_second_layer else 0.0
        return np.array(
            [self.lr, lr2, self.lr**2 / self.batch_size, self.sigma**2, *self.A], dtype=np.float64
        )

    @property
    def numba_rhs(self):
        """The generated Numba ``rhs(x)``, ``x = concatenate([y, params])`` (callable from Numba code)."""
        return self._module.rhs

    @property
    def numba_eg(self):
        """The generated Numba ``eg(x)``, ``x = concatenate([y, params])``."""
        return self._module.eg

    def numba_functions(self) -> tuple[Any, Any]:
        """``(flow, loss)``: Numba ``flow(y) -> dy/dt`` and ``loss(y) -> eps_g`` with this ODE's rates
        and teacher baked in, for :func:`ghostsing.simulate.integrate` (``integrate(flow, y0, t_eval,
        loss=loss)``).  Each call compiles two small wrappers around the cached generated code."""
        import numba

        p = self.params.copy()
        n = self.n_state
        rhs, eg = self._module.rhs, self._module.eg

        @numba.njit
        def flow(y):
            x = np.empty(n + p.size)
            x[:n] = y
            x[n:] = p
            return rhs(x)

        @numba.njit
        def loss(y):
            x = np.empty(n + p.size)
            x[:n] = y
            x[n:] = p
            return eg(x)

        return flow, loss

    def pack(self, Q: Any, R: Any, T: Any, v: Any) -> np.ndarray:
        """Flat state from ``Q (K, K)``, ``R (K, M)``, ``T (M, M)``, ``v (K,)`` (symmetric Q, T required)."""
        K, M = self.K, self.M
        Q, R, T, v = (np.asarray(a, dtype=np.float64) for a in (Q, R, T, v))
        for name, a, shape in (("Q", Q, (K, K)), ("R", R, (K, M)), ("T", T, (M, M)), ("v", v, (K,))):
            if a.shape != shape:
                raise ValueError(f"{name} has shape {a.shape}; allowed: {shape}")
            if not np.all(np.isfinite(a)):
                raise ValueError(f"{name}={a.tolist()} has non-finite entries; allowed: finite floats")
        for name, a in (("Q", Q), ("T", T)):
            if not np.allclose(a, a.T, rtol=1e-10, atol=1e-12):
                raise ValueError(f"{name}={a.tolist()} is not symmetric; allowed: a symmetric matrix")
        iq, it = np.triu_indices(K), np.triu_indices(M)
        return np.concatenate([Q[iq], R.ravel(), T[it], v])

    def unpack(self, y: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(Q (K, K), R (K, M), T (M, M), v (K,))`` from a flat state (inverse of :meth:`pack`)."""
        y = self._check_state(y)
        lay = state_layout(self.K, self.M)
        Q = np.zeros((self.K, self.K))
        Q[np.triu_indices(self.K)] = y[lay["Q"]]
        Q = Q + np.triu(Q, 1).T
        T = np.zeros((self.M, self.M))
        T[np.triu_indices(self.M)] = y[lay["T"]]
        T = T + np.triu(T, 1).T
        return Q, y[lay["R"]].reshape(self.K, self.M).copy(), T, y[lay["v"]].copy()

    def _check_state(self, y: Any) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        if y.shape != (self.n_state,):
            raise ValueError(f"state has shape {y.shape}; allowed: ({self.n_state},) (see pack)")
        return y

    def _x(self, y: np.ndarray, params: np.ndarray | None = None) -> np.ndarray:
        return np.concatenate([self._check_state(y), self.params if params is None else params])

    # -------------------------------------------------------------------------- evaluation
    def rhs(self, y: Any) -> np.ndarray:
        """``dy/dt`` (t = steps / N) at the flat state ``y`` (module docstring)."""
        return self._module.rhs(self._x(y))

    def drift(self, y: Any) -> np.ndarray:
        """The O(lr) part of :meth:`rhs`: the ``lr^2/b`` (and with it the ``sigma^2``) terms dropped."""
        p = self.params
        p[2] = 0.0
        return self._module.rhs(self._x(y, p))

    def generalisation_error(self, y: Any) -> float:
        """``eps_g = 1/2 E[(phi(x) - sum_m A_m g(nu_m))^2]`` at the flat state ``y`` (noise-free)."""
        return self._module.eg(self._x(y))

    def jacobian(self, y: Any, drift_only: bool = False, rel_step: float = 1e-6) -> np.ndarray:
        """``d rhs_i / d y_j`` (or of :meth:`drift`) by central differences.

        The step for ``y_j`` is ``rel_step * max(1, |y_j|)``.

        Returns the full ``(n_state, n_state)`` matrix; restrict it with :attr:`dynamic_indices` before
        taking eigenvalues (T, and v when fixed, have identically zero rows).
        """
        y = self._check_state(y)
        f = self.drift if drift_only else self.rhs
        jac = np.empty((self.n_state, self.n_state))
        for j in range(self.n_state):
            h = rel_step * max(1.0, abs(y[j]))
            yp, ym = y.copy(), y.copy()
            yp[j] += h
            ym[j] -= h
            jac[:, j] = (f(yp) - f(ym)) / (2 * h)
        return jac

    def integrate(
        self,
        y0: Any,
        times: Sequence[float] | np.ndarray,
        rtol: float = 1e-9,
        atol: float = 1e-12,
        method: str = "DOP853",
    ) -> np.ndarray:
        """Integrate from ``y0`` at ``times[0]``; return the states at ``times`` (SGD times t = steps / N),
        shape ``(n_t, n_state)``.

        Uses :func:`scipy.integrate.solve_ivp` with the generated rhs; raises RuntimeError if it fails.
        """
        from scipy.integrate import solve_ivp

        y0 = self._check_state(y0)
        times = np.asarray(times, dtype=np.float64)
        if (
            times.ndim != 1
            or times.size < 1
            or np.any(np.diff(times) <= 0)
            or not np.all(np.isfinite(times))
        ):
            raise ValueError(
                f"times={times.tolist()} is not allowed; allowed: a finite, strictly increasing 1-D array, "
                "e.g. np.linspace(0, 50, 101)"
            )
        if times.size == 1:
            return y0[None, :].copy()
        p = self.params
        fun = self._module.rhs
        sol = solve_ivp(
            lambda t, y: fun(np.concatenate((y, p))),
            (times[0], times[-1]),
            y0,
            method=method,
            t_eval=times,
            rtol=rtol,
            atol=atol,
        )
        if not sol.success:
            raise RuntimeError(f"order-parameter ODE integration failed: {sol.message}")
        return sol.y.T


def order_parameter_ode(
    K: int = 2,
    M: int = 2,
    activation: str = "erf",
    lr: float = 0.5,
    lr2: float | None = None,
    sigma: float = 0.0,
    train_second_layer: bool = True,
    A: Sequence[float] | None = None,
    batch_size: int = 1,
) -> OrderParameterODE:
    """Build the order-parameter ODEs of on-line (``batch_size = 1``) or mini-batch SGD.

    Parameters
    ----------
    K, M : student / teacher hidden units (1..4; the tests cover 1..3).
    activation : ``"erf"`` (g(x) = erf(x / sqrt 2)) or ``"linear"``.
    lr : first-layer rate eta (update ``-(eta / sqrt N) v_k g'(lambda_k) Delta x``), > 0.
    lr2 : second-layer rate eta_v (update ``-(eta_v / N) g(lambda_k) Delta``); None means ``lr``.
    sigma : output-noise standard deviation, >= 0.
    train_second_layer : if False, ``dv/dt = 0``.
    A : teacher second layer (M floats; default ones).
    batch_size : samples averaged per step; the ``lr^2`` terms are divided by it (t = steps / N).
    """
    K, M = _check_units("K", K), _check_units("M", M)
    activation = _check_activation(activation)
    lr = _finite_positive("lr", lr)
    lr2 = lr if lr2 is None else _finite_positive("lr2", lr2, allow_zero=True)
    sigma = _finite_positive("sigma", sigma, allow_zero=True)
    if not isinstance(train_second_layer, bool | np.bool_):
        raise TypeError(f"train_second_layer must be a bool, got {train_second_layer!r}")
    A_arr = np.ones(M) if A is None else np.asarray(A, dtype=np.float64)
    if A_arr.shape != (M,) or not np.all(np.isfinite(A_arr)):
        raise ValueError(f"A={A!r} is not allowed; allowed: {M} finite floats (the teacher's second layer)")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is not allowed; allowed: an int >= 1")
    return OrderParameterODE(
        K,
        M,
        activation,
        lr,
        lr2,
        sigma,
        bool(train_second_layer),
        tuple(float(a) for a in A_arr),
        int(batch_size),
        _generated_module(K, M, activation),
    )


def symmetric_fixed_point(ode: OrderParameterODE) -> np.ndarray:
    """The symmetric plateau state of a K = M model: ``Q_kk = Q_kl = 1/(2K-1)``, ``R_km = 1/sqrt(K(2K-1))``,
    ``T = I``, ``v = 1`` (Saad & Solla 1995).  A fixed point of :meth:`OrderParameterODE.drift` for erf
    with ``A = 1`` and the second layer fixed; its ``eps_g`` is ``K/6 - (K^2/pi) asin(1/(2K))``."""
    if ode.K != ode.M:
        raise ValueError(f"symmetric_fixed_point needs K == M, got K={ode.K}, M={ode.M}")
    K = ode.K
    return ode.pack(
        np.full((K, K), 1 / (2 * K - 1)),
        np.full((K, K), 1 / math.sqrt(K * (2 * K - 1))),
        np.eye(K),
        np.ones(K),
    )


def find_fixed_point(
    ode: OrderParameterODE, y0: Any, drift_only: bool = False, tol: float = 1e-13
) -> np.ndarray:
    """Solve ``rhs(y) = 0`` (or ``drift(y) = 0``) for the dynamic entries, starting from ``y0``.

    Newton-type root finding (:func:`scipy.optimize.root`, ``hybr``) over :attr:`dynamic_indices`, the
    other entries (``T``, and ``v`` when fixed) held at their ``y0`` values.  Raises RuntimeError if it
    does not converge.  With ``y0 = symmetric_fixed_point(ode)`` this gives the plateau at finite lr,
    shifted from the small-lr one by O(lr) through the ``lr^2`` terms.
    """
    from scipy.optimize import root

    y0 = ode._check_state(y0)
    idx = ode.dynamic_indices
    f = ode.drift if drift_only else ode.rhs

    def resid(z: np.ndarray) -> np.ndarray:
        y = y0.copy()
        y[idx] = z
        return f(y)[idx] / ode.lr

    sol = root(resid, y0[idx], method="hybr", tol=tol)
    if not sol.success or np.max(np.abs(resid(sol.x))) > 1e-10:
        raise RuntimeError(f"no fixed point found from the given start: {sol.message}")
    y = y0.copy()
    y[idx] = sol.x
    return y
