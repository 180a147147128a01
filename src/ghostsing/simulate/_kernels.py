"""Numba kernels of the integrators (private; the public entry point is ``integrate``).

One idea: the Numba step kernels of every integration method and the scalar driver that calls them, which
must live in one module so that Numba compiles and caches them together.

Every user function reaches these kernels as a Numba *first-class function* value with a fixed
signature (``FT_INTO``, ``FT_RET``, ``FT_SCAL``, ``FT_JINTO``, ``FT_JRET`` below), not as a dispatcher:
the kernels are then compiled once for all flows and cached on disk (``cache=True``), instead of being
recompiled for each new right-hand side.

Numba's cache index is keyed on this file's modification time: the tableaus imported from
``_tableaus.py`` and the error orders of the method table (``methods.py``) are frozen into the compiled
code as constants, so after editing either, touch this file (or clear ``__pycache__``) to force a
recompile.

Method codes (from :data:`ghostsing.simulate.methods.METHODS`): 0 euler, 1 rk4, 2 dopri5, 3 dop853,
4 rodas (RODAS 3(4) Rosenbrock), 5 auto (dopri5, switching to the stiff method where the step becomes
stability-limited, and back where it no longer is), 6 auto853 (the same with DOP853 as the explicit
method), 7 rodas5p (Rodas5P).  Status codes are those of :class:`ghostsing.simulate.status.Status`.

Options reach the kernels as one typed record (``OPTIONS_DTYPE``, a NumPy structured dtype that Numba
reads field by field: ``opts[0].rtol``), built by :func:`options_record`; the per-trajectory counters
are an int64 array with the columns ``ST_*``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import from_dtype, njit, prange, types

from ghostsing.simulate import _tableaus as tb
from ghostsing.simulate.methods import ERROR_ORDER_BY_CODE, METHODS
from ghostsing.simulate.status import Status

# ------------------------------------------------------------------ signatures of user functions
A1 = types.float64[::1]
A2 = types.float64[:, ::1]
I1 = types.int64[::1]
FT_INTO = types.FunctionType(types.void(A1, A1))  # flow_into(theta, out)
FT_RET = types.FunctionType(A1(A1))  # flow(theta) -> array
FT_SCAL = types.FunctionType(types.float64(A1))  # loss(theta) / event(theta) -> float
FT_JINTO = types.FunctionType(types.void(A1, A2))  # jacobian_into(theta, out)
FT_JRET = types.FunctionType(A2(A1))  # jacobian(theta) -> (P, P)

M_EULER, M_RK4, M_DOPRI5, M_DOP853 = (METHODS[k].code for k in ("euler", "rk4", "dopri5", "dop853"))
M_RODAS, M_AUTO, M_AUTO8, M_RODAS5 = (METHODS[k].code for k in ("rodas", "auto", "auto853", "rodas5p"))
ERROR_ORDER = np.array(ERROR_ORDER_BY_CODE, dtype=np.int64)  # indexed by method code
DOP853_STAB_RATIO = 1.8  # DOP853's real stability interval (~6) over DOPRI5's (~3.3)
S_OK, S_CONV, S_MAXSTEPS = int(Status.OK), int(Status.CONVERGED), int(Status.MAX_STEPS)
S_SMALL, S_NONFINITE, S_EVENT = int(Status.STEP_TOO_SMALL), int(Status.NON_FINITE), int(Status.EVENT)

# the options of one integrate() call, as one typed record (int64 fields first, then float64)
OPTIONS_DTYPE = np.dtype([
    ("method", np.int64),  # method code (METHODS[...].code)
    ("stiff_method", np.int64),  # code of the stiff method of auto / auto853
    ("max_steps", np.int64),  # attempted-step budget
    ("fmode", np.int64),  # 0: flow(theta, out); 1: flow(theta) -> array
    ("jmode", np.int64),  # 0: jacobian(theta, out); 1: jacobian(theta) -> array
    ("has_loss", np.int64),  # 1: save the loss
    ("has_event_fn", np.int64),  # 1: a state-function event
    ("dir_loss", np.int64), ("terminal_loss", np.int64),  # loss event: direction (-1, 0, 1), terminal
    ("dir_fn", np.int64), ("terminal_fn", np.int64),  # state-function event: direction, terminal
    ("fixed", np.int64),  # 1: fixed step fixed_step
    ("exact_saves", np.int64),  # 1: land adaptive steps on the save times
    ("t0", np.float64), ("rtol", np.float64), ("first_step", np.float64), ("fixed_step", np.float64),
    ("max_step", np.float64), ("grad_tol", np.float64), ("hold_time", np.float64), ("max_abs", np.float64),
    ("pi_beta", np.float64), ("switch_up", np.float64), ("switch_down", np.float64),
], align=True)
OPTIONS = from_dtype(OPTIONS_DTYPE)
OPTIONS_ARRAY = types.Array(OPTIONS, 1, "C")


def options_record(**fields) -> np.ndarray:
    """A one-element ``OPTIONS_DTYPE`` array with the given fields (all of them must be given)."""
    missing = set(OPTIONS_DTYPE.names) - set(fields)
    extra = set(fields) - set(OPTIONS_DTYPE.names)
    if missing or extra:
        raise KeyError(f"options_record: missing {sorted(missing)}, unknown {sorted(extra)}")
    rec = np.zeros(1, dtype=OPTIONS_DTYPE)
    for k, v in fields.items():
        rec[0][k] = v
    return rec


STIFF_CHECK_EVERY = 10  # accepted DOPRI5 steps between Jacobian-based stiffness checks ("auto")
# stats layout (int64 per trajectory)
ST_STATUS, ST_ACC, ST_REJ, ST_NFEV, ST_NJEV, ST_NLU = 0, 1, 2, 3, 4, 5
N_STATS = 6

DP5_A, DP5_B, DP5_E, DP5_P = tb.DP5_A, tb.DP5_B, tb.DP5_E, tb.DP5_P
D8_A, D8_B, D8_C, D8_E3, D8_E5, D8_D = tb.D8_A, tb.D8_B, tb.D8_C, tb.D8_E3, tb.D8_E5, tb.D8_D
RO_A, RO_C, RO_GAMMA = tb.RO_A, tb.RO_C, tb.RO_GAMMA
R5_A, R5_C, R5_H, R5_GAMMA = tb.R5_A, tb.R5_C, tb.R5_H, tb.R5_GAMMA


# ------------------------------------------------------------------ placeholders for absent functions
@njit(cache=True)
def dummy_into(y, out):  # pragma: no cover - never called
    out[:] = np.nan


@njit(cache=True)
def dummy_ret(y):  # pragma: no cover - never called
    return np.full(y.shape[0], np.nan)


@njit(cache=True)
def dummy_scal(y):  # pragma: no cover - never called
    return np.nan


@njit(cache=True)
def dummy_jinto(y, out):  # pragma: no cover - never called
    out[:, :] = np.nan


@njit(cache=True)
def dummy_jret(y):  # pragma: no cover - never called
    return np.full((y.shape[0], y.shape[0]), np.nan)


# ------------------------------------------------------------------ small helpers
@njit(cache=True, inline="always")
def _rhs(fmode, f_into, f_ret, y, out, cnt):
    cnt[ST_NFEV] += 1
    if fmode == 0:
        f_into(y, out)
    else:
        r = f_ret(y)
        for i in range(out.shape[0]):
            out[i] = r[i]


@njit(cache=True)
def _jac(jmode, j_into, j_ret, y, out, cnt):
    cnt[ST_NJEV] += 1
    if jmode == 0:
        j_into(y, out)
    else:
        r = j_ret(y)
        n = out.shape[0]
        for i in range(n):
            for k in range(n):
                out[i, k] = r[i, k]


@njit(cache=True)
def _all_finite(v):
    for i in range(v.shape[0]):
        if not math.isfinite(v[i]):
            return False
    return True


@njit(cache=True)
def _max_abs(v):
    m = 0.0
    for i in range(v.shape[0]):
        a = abs(v[i])
        if a > m:
            m = a
    return m


@njit(cache=True)
def _norm2(v):
    s = 0.0
    for i in range(v.shape[0]):
        s += v[i] * v[i]
    return math.sqrt(s)


@njit(cache=True)
def _inf_norm(M):
    """``||M||_inf = max_i sum_k |M_ik|`` (an upper bound on the spectral radius)."""
    rho = 0.0
    for i in range(M.shape[0]):
        s = 0.0
        for k in range(M.shape[1]):
            s += abs(M[i, k])
        rho = max(rho, s)
    return rho


@njit(cache=True)
def _err_rms(e, y0, y1, rtol, atol):
    """RMS norm of e_i / (atol_i + rtol max(|y0_i|, |y1_i|)) (Hairer's norm)."""
    s = 0.0
    n = e.shape[0]
    for i in range(n):
        sc = atol[i] + rtol * max(abs(y0[i]), abs(y1[i]))
        q = e[i] / sc
        s += q * q
    return math.sqrt(s / n)


@njit(cache=True)
def _lu_factor(W, piv):
    """In-place LU with partial pivoting; returns False if W is singular."""
    n = W.shape[0]
    for k in range(n):
        p = k
        m = abs(W[k, k])
        for i in range(k + 1, n):
            if abs(W[i, k]) > m:
                m = abs(W[i, k])
                p = i
        piv[k] = p
        if m == 0.0 or not math.isfinite(m):
            return False
        if p != k:
            for j in range(n):
                tmp = W[k, j]
                W[k, j] = W[p, j]
                W[p, j] = tmp
        inv = 1.0 / W[k, k]
        for i in range(k + 1, n):
            W[i, k] *= inv
            lik = W[i, k]
            if lik != 0.0:
                for j in range(k + 1, n):
                    W[i, j] -= lik * W[k, j]
    return True


@njit(cache=True)
def _lu_solve(W, piv, b):
    n = W.shape[0]
    for k in range(n):
        p = piv[k]
        if p != k:
            tmp = b[k]
            b[k] = b[p]
            b[p] = tmp
    for i in range(n):
        s = b[i]
        for j in range(i):
            s -= W[i, j] * b[j]
        b[i] = s
    for i in range(n - 1, -1, -1):
        s = b[i]
        for j in range(i + 1, n):
            s -= W[i, j] * b[j]
        b[i] = s / W[i, i]


# ------------------------------------------------------------------ one step of each method
@njit(cache=True)
def _step_euler(fmode, f_into, f_ret, y, f0, h, ynew, cnt):
    for i in range(y.shape[0]):
        ynew[i] = y[i] + h * f0[i]


@njit(cache=True)
def _step_rk4(fmode, f_into, f_ret, y, f0, h, K, ytmp, ynew, cnt):
    n = y.shape[0]
    for i in range(n):
        ytmp[i] = y[i] + 0.5 * h * f0[i]
    _rhs(fmode, f_into, f_ret, ytmp, K[1], cnt)
    for i in range(n):
        ytmp[i] = y[i] + 0.5 * h * K[1, i]
    _rhs(fmode, f_into, f_ret, ytmp, K[2], cnt)
    for i in range(n):
        ytmp[i] = y[i] + h * K[2, i]
    _rhs(fmode, f_into, f_ret, ytmp, K[3], cnt)
    for i in range(n):
        ynew[i] = y[i] + h / 6.0 * (f0[i] + 2.0 * K[1, i] + 2.0 * K[2, i] + K[3, i])


@njit(cache=True)
def _step_dopri5(fmode, f_into, f_ret, y, f0, h, K, ytmp, ynew, yst, ewk, rtol, atol, cnt):
    """One Dormand–Prince 5(4) step; K[6] = f(ynew) (FSAL); yst = argument of stage 6 (for the
    stiffness test). Returns the error norm (inf if a stage is non-finite)."""
    n = y.shape[0]
    for i in range(n):
        K[0, i] = f0[i]
    for s in range(1, 6):
        for i in range(n):
            acc = 0.0
            for j in range(s):
                acc += DP5_A[s, j] * K[j, i]
            ytmp[i] = y[i] + h * acc
        _rhs(fmode, f_into, f_ret, ytmp, K[s], cnt)
    for i in range(n):
        yst[i] = ytmp[i]
        acc = 0.0
        for j in range(6):
            acc += DP5_B[j] * K[j, i]
        ynew[i] = y[i] + h * acc
    _rhs(fmode, f_into, f_ret, ynew, K[6], cnt)
    for i in range(n):
        acc = 0.0
        for j in range(7):
            acc += DP5_E[j] * K[j, i]
        ewk[i] = h * acc
    err = _err_rms(ewk, y, ynew, rtol, atol)
    if not math.isfinite(err) or not _all_finite(ynew):
        return np.inf
    return err


@njit(cache=True)
def _step_dop853(fmode, f_into, f_ret, y, f0, h, K, ytmp, ynew, rtol, atol, cnt):
    """One DOP853 step (Hairer's 8(5,3) error estimate); K[12] = f(ynew)."""
    n = y.shape[0]
    for i in range(n):
        K[0, i] = f0[i]
    for s in range(1, 12):
        for i in range(n):
            acc = 0.0
            for j in range(s):
                acc += D8_A[s, j] * K[j, i]
            ytmp[i] = y[i] + h * acc
        _rhs(fmode, f_into, f_ret, ytmp, K[s], cnt)
    for i in range(n):
        acc = 0.0
        for j in range(12):
            acc += D8_B[j] * K[j, i]
        ynew[i] = y[i] + h * acc
    _rhs(fmode, f_into, f_ret, ynew, K[12], cnt)
    e5 = 0.0
    e3 = 0.0
    for i in range(n):
        sc = atol[i] + rtol * max(abs(y[i]), abs(ynew[i]))
        a5 = 0.0
        a3 = 0.0
        for j in range(13):
            a5 += D8_E5[j] * K[j, i]
            a3 += D8_E3[j] * K[j, i]
        a5 /= sc
        a3 /= sc
        e5 += a5 * a5
        e3 += a3 * a3
    if not (math.isfinite(e5) and math.isfinite(e3)) or not _all_finite(ynew):
        return np.inf
    if e5 == 0.0 and e3 == 0.0:
        return 0.0
    return abs(h) * e5 / math.sqrt((e5 + 0.01 * e3) * n)


@njit(cache=True)
def _dop853_dense_prepare(fmode, f_into, f_ret, y, ynew, h, K, ytmp, Fd, cnt):
    """The three extra stages and the 7 interpolation vectors of DOP853's 7th-order dense output."""
    n = y.shape[0]
    for s in range(13, 16):
        for i in range(n):
            acc = 0.0
            for j in range(s):
                acc += D8_A[s, j] * K[j, i]
            ytmp[i] = y[i] + h * acc
        _rhs(fmode, f_into, f_ret, ytmp, K[s], cnt)
    for i in range(n):
        dy = ynew[i] - y[i]
        Fd[0, i] = dy
        Fd[1, i] = h * K[0, i] - dy
        Fd[2, i] = 2.0 * dy - h * (K[12, i] + K[0, i])
        for r in range(4):
            acc = 0.0
            for j in range(16):
                acc += D8_D[r, j] * K[j, i]
            Fd[3 + r, i] = h * acc


@njit(cache=True)
def _step_rosenbrock(fmode, f_into, f_ret, y, f0, h, Kr, ytmp, ynew, Jm, W, piv, A, C, gamma, rtol, atol,
                     cnt):
    """One step of a stiffly accurate Rosenbrock method in the (a, C) form, with the exact Jacobian Jm at y.

    ``W = I/(gamma h) - J`` is factorised once; ``W k_0 = f(y)``; for ``s = 1 .. ns-1`` the stage argument
    is ``u_s = y + sum_{j<s} a_sj k_j`` while ``s`` has a row in ``A`` and ``u_s = u_{s-1} + k_{s-1}``
    after that, and ``W k_s = f(u_s) + sum_{j<s} c_sj k_j / h``.  The step is ``y1 = u_{ns-1} + k_{ns-1}``,
    and ``k_{ns-1}`` is the embedded error estimate.  RODAS: (RO_A, RO_C, RO_GAMMA), 6 stages; Rodas5P:
    (R5_A, R5_C, R5_GAMMA), 8 stages.  Kr rows 0..ns-1 hold the k_s.  Returns the error norm."""
    n = y.shape[0]
    ns = C.shape[0]
    na = A.shape[0]
    ig = 1.0 / (gamma * h)
    for i in range(n):
        for j in range(n):
            W[i, j] = -Jm[i, j]
        W[i, i] += ig
    cnt[ST_NLU] += 1
    if not _lu_factor(W, piv):
        return np.inf
    for i in range(n):
        Kr[0, i] = f0[i]
    _lu_solve(W, piv, Kr[0])
    for s in range(1, ns):
        if s < na:
            for i in range(n):
                acc = 0.0
                for j in range(s):
                    acc += A[s, j] * Kr[j, i]
                ytmp[i] = y[i] + acc
        else:
            for i in range(n):
                ytmp[i] += Kr[s - 1, i]
        out = Kr[s]
        _rhs(fmode, f_into, f_ret, ytmp, out, cnt)
        for i in range(n):
            acc = 0.0
            for j in range(s):
                acc += C[s, j] * Kr[j, i]
            out[i] += acc / h
        _lu_solve(W, piv, out)
    e = Kr[ns - 1]
    for i in range(n):
        ynew[i] = ytmp[i] + e[i]
    err = _err_rms(e, y, ynew, rtol, atol)
    if not math.isfinite(err) or not _all_finite(ynew):
        return np.inf
    return err


# ------------------------------------------------------------------ dense output
@njit(cache=True)
def _dense(meth, x, h, y, ynew, f0, f1, K, Fd, out):
    """State at t + x h (0 <= x <= 1) of the last accepted step."""
    n = y.shape[0]
    if meth == M_DOPRI5:
        x2 = x * x
        x3 = x2 * x
        x4 = x3 * x
        for i in range(n):
            acc = 0.0
            for j in range(7):
                acc += K[j, i] * (DP5_P[j, 0] * x + DP5_P[j, 1] * x2 + DP5_P[j, 2] * x3 + DP5_P[j, 3] * x4)
            out[i] = y[i] + h * acc
    elif meth == M_DOP853:
        for i in range(n):
            acc = 0.0
            for r in range(6, -1, -1):
                acc += Fd[r, i]
                if (6 - r) % 2 == 0:
                    acc *= x
                else:
                    acc *= 1.0 - x
            out[i] = y[i] + acc
    elif meth == M_RODAS5:  # Rodas5P's 4th-order interpolant
        x1 = 1.0 - x
        for i in range(n):
            q0 = 0.0
            q1 = 0.0
            q2 = 0.0
            for j in range(8):
                q0 += R5_H[0, j] * K[j, i]
                q1 += R5_H[1, j] * K[j, i]
                q2 += R5_H[2, j] * K[j, i]
            out[i] = x1 * y[i] + x * (ynew[i] + x1 * (q0 + x * (q1 + x * q2)))
    else:  # RODAS: cubic Hermite from the end points and slopes (3rd order)
        h00 = (1.0 + 2.0 * x) * (1.0 - x) * (1.0 - x)
        h10 = x * (1.0 - x) * (1.0 - x)
        h01 = x * x * (3.0 - 2.0 * x)
        h11 = x * x * (x - 1.0)
        for i in range(n):
            out[i] = h00 * y[i] + h10 * h * f0[i] + h01 * ynew[i] + h11 * h * f1[i]


@njit(cache=True)
def _crossed(s0, s1, direction):
    if direction <= 0 and s0 > 0.0 and s1 <= 0.0:
        return True
    if direction >= 0 and s0 < 0.0 and s1 >= 0.0:
        return True
    return False


@njit(cache=True)
def _evalg(chan, ls_fn, ev_fn, yd):
    if chan == 0:
        return ls_fn(yd)
    return ev_fn(yd)


@njit(cache=True)
def _locate(chan, ls_fn, ev_fn, level, g0, g1, meth, h, y, ynew, f0, f1, K, Fd, yd):
    """Illinois (modified regula falsi) root of g(dense(x)) - level on [0, 1]; returns x."""
    a = 0.0
    b = 1.0
    fa = g0 - level
    fb = g1 - level
    side = 0
    x = 1.0
    tol = 4.0 * 2.220446049250313e-16
    for _ in range(200):
        if fb - fa == 0.0:
            x = 0.5 * (a + b)
        else:
            x = b - fb * (b - a) / (fb - fa)
        if not (x > a and x < b):
            x = 0.5 * (a + b)
        _dense(meth, x, h, y, ynew, f0, f1, K, Fd, yd)
        fx = _evalg(chan, ls_fn, ev_fn, yd) - level
        if not math.isfinite(fx):
            return x
        if (fx > 0.0) == (fb > 0.0) and fx != 0.0:
            b = x
            fb = fx
            if side == -1:
                fa *= 0.5
            side = -1
        elif fx == 0.0:
            return x
        else:
            a = x
            fa = fx
            if side == 1:
                fb *= 0.5
            side = 1
        if (b - a) <= tol * (1.0 + abs(x)) or (b - a) * abs(h) <= 1e-15 * (1.0 + abs(h)):
            break
    # return the end of the bracket on the far side of the crossing (the first point past it)
    return b


# ------------------------------------------------------------------ one trajectory
@njit(cache=True)
def _err_order(meth):
    """Order of a method's error estimate (the step-size controller uses err ~ h^(order + 1)): the method
    table's error_order (0 for the fixed-step methods, where it is unused)."""
    return ERROR_ORDER[meth]


SAFE, FACMIN, FACMAX = 0.9, 0.2, 10.0  # step-size controller: safety factor, bounds of h_new / h


@njit(cache=True, inline="always")
def _h_after_reject(hs, err, order):
    """Step after a rejected attempt of size hs: hs / min(1/FACMIN, err^(1/(q+1)) / SAFE), or hs/10 when
    err is not finite."""
    if not math.isfinite(err):
        return 0.1 * hs
    return hs / min(1.0 / FACMIN, err ** (1.0 / (order + 1)) / SAFE)


@njit(cache=True, inline="always")
def _h_after_accept(hs, err, facold, beta, order, last_rejected, clipped, h_prop):
    """PI controller (Hairer's DOPRI5 form): hs / clip(err^(1/(q+1) - 0.75 beta) / facold^beta / SAFE,
    1/FACMAX, 1/FACMIN); no growth right after a rejection, and a step shortened to land on a save time
    does not shrink the proposal h_prop."""
    fac = max(err, 1e-300) ** (1.0 / (order + 1) - 0.75 * beta)
    if beta != 0.0:
        fac /= facold ** beta
    fac = max(1.0 / FACMAX, min(1.0 / FACMIN, fac / SAFE))
    hn = hs / fac
    if last_rejected:
        hn = min(hn, hs)
    elif clipped:
        hn = max(hn, h_prop)
    return hn


@njit(cache=True)
def _initial_step(fmode, f_into, f_ret, y0, f0, order, rtol, atol, hmax, tspan, ytmp, ftmp, cnt):
    """Hairer's starting step (Solving ODEs I, II.4)."""
    n = y0.shape[0]
    d0 = 0.0
    d1 = 0.0
    for i in range(n):
        sc = atol[i] + rtol * abs(y0[i])
        d0 += (y0[i] / sc) ** 2
        d1 += (f0[i] / sc) ** 2
    d0 = math.sqrt(d0 / n)
    d1 = math.sqrt(d1 / n)
    if d0 < 1e-5 or d1 < 1e-5:
        h0 = 1e-6
    else:
        h0 = 0.01 * d0 / d1
    h0 = min(h0, tspan, hmax)
    for i in range(n):
        ytmp[i] = y0[i] + h0 * f0[i]
    _rhs(fmode, f_into, f_ret, ytmp, ftmp, cnt)
    d2 = 0.0
    for i in range(n):
        sc = atol[i] + rtol * abs(y0[i])
        d2 += ((ftmp[i] - f0[i]) / sc) ** 2
    d2 = math.sqrt(d2 / n) / h0
    if not math.isfinite(d2):
        return h0 * 1e-3
    if d1 <= 1e-15 and d2 <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** (1.0 / (order + 1))
    return min(100.0 * h0, h1, hmax, tspan)


@njit(cache=True)
def _save(Y, LO, GN, j, v, gnorm, has_loss, ls_fn):
    for i in range(v.shape[0]):
        Y[j, i] = v[i]
    GN[j] = gnorm
    if has_loss:
        LO[j] = ls_fn(v)


@njit(cache=True)
def integrate_one(f_into, f_ret, ls_fn, j_into, j_ret, ev_fn, y0, t_eval, atol, lev_l, lev_f,
                  opts, Y, LO, GN, yfin, cnt, fout, evl, evf):
    """Integrate one trajectory; fills Y (T, P), LO (T,), GN (T,), yfin (P,), cnt, fout, evl, evf."""
    n = y0.shape[0]
    T = t_eval.shape[0]
    o = opts[0]
    meth0 = o.method
    max_steps = o.max_steps
    fmode = o.fmode
    jmode = o.jmode
    has_loss = o.has_loss != 0
    has_ev = o.has_event_fn != 0
    dir_l = o.dir_loss
    term_l = o.terminal_loss != 0
    dir_f = o.dir_fn
    term_f = o.terminal_fn != 0
    fixed = o.fixed != 0
    exact_saves = o.exact_saves != 0
    t0 = o.t0
    rtol = o.rtol
    hfix = o.fixed_step
    hmax = o.max_step
    ctol = o.grad_tol
    chold = o.hold_time
    maxabs = o.max_abs
    beta = o.pi_beta
    sw_up = o.switch_up
    sw_down = o.switch_down
    h_first = o.first_step
    stiff_meth = o.stiff_method
    nl = lev_l.shape[0]
    nf = lev_f.shape[0]

    for j in range(T):
        GN[j] = np.nan
        LO[j] = np.nan
        for i in range(n):
            Y[j, i] = np.nan
    for k in range(nl):
        evl[k] = np.nan
    for k in range(nf):
        evf[k] = np.nan
    fout[0] = t0
    fout[1] = np.nan
    for i in range(n):
        yfin[i] = y0[i]

    K = np.empty((16, n))
    Fd = np.empty((7, n))
    y = y0.copy()
    f0 = np.empty(n)
    ynew = np.empty(n)
    ytmp = np.empty(n)
    yst = np.empty(n)
    ewk = np.empty(n)
    yd = np.empty(n)
    fd = np.empty(n)
    Jm = np.empty((n, n))
    W = np.empty((n, n))
    piv = np.zeros(n, dtype=np.int64)

    if not _all_finite(y) or _max_abs(y) > maxabs:
        cnt[ST_STATUS] = S_NONFINITE
        return
    _rhs(fmode, f_into, f_ret, y, f0, cnt)
    if not _all_finite(f0):
        cnt[ST_STATUS] = S_NONFINITE
        return
    g_cur = _norm2(f0)
    # save points at t0
    js = 0
    while js < T and t_eval[js] <= t0:
        _save(Y, LO, GN, js, y, g_cur, has_loss, ls_fn)
        js += 1
    t_end = t_eval[T - 1]
    t = t0
    # event values at the start
    gl_old = ls_fn(y) if nl > 0 else 0.0
    gf_old = ev_fn(y) if (has_ev and nf > 0) else 0.0
    # convergence bookkeeping
    t_below = -1.0
    below = False

    # method state
    meth = meth0
    is_auto = meth0 == M_AUTO or meth0 == M_AUTO8
    explicit = M_DOP853 if meth0 == M_AUTO8 else M_DOPRI5
    if is_auto:
        meth = explicit
    err_order = _err_order(meth)
    if fixed:
        h = hfix
    elif h_first > 0.0:
        h = h_first
    else:
        h = _initial_step(fmode, f_into, f_ret, y, f0, err_order, rtol, atol, hmax, t_end - t0,
                          ytmp, fd, cnt)
    facold = 1e-4
    last_rejected = False
    last_nonfinite = False
    jac_fresh = False
    iasti = 0
    nonsti = 0
    nstiffback = 0
    status = S_OK
    nsteps = 0

    while t < t_end:
        if nsteps >= max_steps:
            status = S_MAXSTEPS
            break
        nsteps += 1
        # -------- step size for this attempt
        if fixed:
            hs = hfix
            t_target = t_eval[js] if js < T else t_end
            if t_target - t <= hs * (1.0 + 1e-10):
                hs = t_target - t
                t_new = t_target
            else:
                t_new = t + hs
        else:
            hs = min(h, hmax)
            hmin = 10.0 * abs(np.nextafter(t, np.inf) - t)
            if hs < hmin:
                status = S_NONFINITE if last_nonfinite else S_SMALL
                break
            h_prop = hs
            clipped = False
            t_next = t_eval[js] if (exact_saves and js < T) else t_end
            if t + hs >= t_next or t + 1.0001 * hs >= t_next:
                hs = t_next - t
                t_new = t_next
                clipped = True
            else:
                t_new = t + hs
        # -------- attempt
        if meth == M_EULER:
            _step_euler(fmode, f_into, f_ret, y, f0, hs, ynew, cnt)
            err = 0.0 if _all_finite(ynew) else np.inf
        elif meth == M_RK4:
            _step_rk4(fmode, f_into, f_ret, y, f0, hs, K, ytmp, ynew, cnt)
            err = 0.0 if _all_finite(ynew) else np.inf
        elif meth == M_DOPRI5:
            err = _step_dopri5(fmode, f_into, f_ret, y, f0, hs, K, ytmp, ynew, yst, ewk, rtol, atol, cnt)
        elif meth == M_DOP853:
            err = _step_dop853(fmode, f_into, f_ret, y, f0, hs, K, ytmp, ynew, rtol, atol, cnt)
        else:
            if not jac_fresh:
                _jac(jmode, j_into, j_ret, y, Jm, cnt)
                jac_fresh = True
            if meth == M_RODAS5:
                err = _step_rosenbrock(fmode, f_into, f_ret, y, f0, hs, K, ytmp, ynew, Jm, W, piv,
                                       R5_A, R5_C, R5_GAMMA, rtol, atol, cnt)
            else:
                err = _step_rosenbrock(fmode, f_into, f_ret, y, f0, hs, K, ytmp, ynew, Jm, W, piv,
                                       RO_A, RO_C, RO_GAMMA, rtol, atol, cnt)
        if fixed:
            if not math.isfinite(err):
                status = S_NONFINITE
                break
            err = 0.0
        if not err <= 1.0:  # rejected (err > 1 or not finite)
            cnt[ST_REJ] += 1
            last_nonfinite = not math.isfinite(err)
            last_rejected = True
            h = _h_after_reject(hs, err, err_order)
            continue
        # -------- accepted
        last_nonfinite = False
        cnt[ST_ACC] += 1
        if meth == M_DOPRI5:
            f1 = K[6]
        elif meth == M_DOP853:
            f1 = K[12]
        else:
            f1 = K[15]
            _rhs(fmode, f_into, f_ret, ynew, f1, cnt)
        if not _all_finite(f1) or _max_abs(ynew) > maxabs:
            status = S_NONFINITE
            break
        # new step size (PI controller, Hairer's dopri5 form)
        if not fixed:
            h = _h_after_accept(hs, err, facold, beta, err_order, last_rejected, clipped, h_prop)
            facold = max(err, 1e-4)
        last_rejected = False
        dense_ready = meth != M_DOP853
        # -------- events (first crossing of each level, located on the dense output)
        t_stop_ev = np.inf
        if nl > 0:
            gl_new = ls_fn(ynew)
            for k in range(nl):
                if math.isnan(evl[k]) and _crossed(gl_old - lev_l[k], gl_new - lev_l[k], dir_l):
                    if not dense_ready:
                        _dop853_dense_prepare(fmode, f_into, f_ret, y, ynew, hs, K, ytmp, Fd, cnt)
                        dense_ready = True
                    x = _locate(0, ls_fn, ev_fn, lev_l[k], gl_old, gl_new, meth, hs, y, ynew, f0, f1,
                                K, Fd, yd)
                    evl[k] = t + x * hs
                    if term_l and evl[k] < t_stop_ev:
                        t_stop_ev = evl[k]
            gl_old = gl_new
        if has_ev and nf > 0:
            gf_new = ev_fn(ynew)
            for k in range(nf):
                if math.isnan(evf[k]) and _crossed(gf_old - lev_f[k], gf_new - lev_f[k], dir_f):
                    if not dense_ready:
                        _dop853_dense_prepare(fmode, f_into, f_ret, y, ynew, hs, K, ytmp, Fd, cnt)
                        dense_ready = True
                    x = _locate(1, ls_fn, ev_fn, lev_f[k], gf_old, gf_new, meth, hs, y, ynew, f0, f1,
                                K, Fd, yd)
                    evf[k] = t + x * hs
                    if term_f and evf[k] < t_stop_ev:
                        t_stop_ev = evf[k]
            gf_old = gf_new
        if t_stop_ev < np.inf:
            # forget crossings located after the terminal one
            for k in range(nl):
                if evl[k] > t_stop_ev:
                    evl[k] = np.nan
            for k in range(nf):
                if evf[k] > t_stop_ev:
                    evf[k] = np.nan
        # -------- saves in (t, min(t_new, t_stop_ev)]
        t_lim = min(t_new, t_stop_ev)
        while js < T and t_eval[js] <= t_lim:
            if t_eval[js] == t_new:
                _save(Y, LO, GN, js, ynew, _norm2(f1), has_loss, ls_fn)
            else:
                if not dense_ready:
                    _dop853_dense_prepare(fmode, f_into, f_ret, y, ynew, hs, K, ytmp, Fd, cnt)
                    dense_ready = True
                _dense(meth, (t_eval[js] - t) / hs, hs, y, ynew, f0, f1, K, Fd, yd)
                _rhs(fmode, f_into, f_ret, yd, fd, cnt)
                _save(Y, LO, GN, js, yd, _norm2(fd), has_loss, ls_fn)
            js += 1
        if t_stop_ev < np.inf:
            _dense(meth, (t_stop_ev - t) / hs, hs, y, ynew, f0, f1, K, Fd, yd)
            for i in range(n):
                yfin[i] = yd[i]
            fout[0] = t_stop_ev
            cnt[ST_STATUS] = S_EVENT
            return
        # -------- stiffness switch (auto)
        if is_auto and not fixed:
            sratio = DOP853_STAB_RATIO if explicit == M_DOP853 else 1.0
            if meth != stiff_meth:
                if meth == M_DOPRI5:
                    # Hairer's free estimate of h |lambda| from the last two stages ...
                    stnum = 0.0
                    stden = 0.0
                    for i in range(n):
                        stnum += (K[6, i] - K[5, i]) ** 2
                        stden += (ynew[i] - yst[i]) ** 2
                    if stden > 0.0 and hs * math.sqrt(stnum / stden) > 3.25:
                        nonsti = 0
                        iasti += 1
                    else:
                        nonsti += 1
                        if nonsti >= 6:
                            iasti = 0
                # ... and, every STIFF_CHECK_EVERY steps, the exact bound h ||J||_inf at the new state
                go_stiff = iasti >= 15
                if not go_stiff and sw_up > 0.0 and cnt[ST_ACC] % STIFF_CHECK_EVERY == 0:
                    _jac(jmode, j_into, j_ret, ynew, Jm, cnt)
                    go_stiff = hs * _inf_norm(Jm) > sw_up * sratio
                if go_stiff:
                    meth = stiff_meth
                    err_order = _err_order(meth)
                    facold = 1e-4
                    iasti = 0
                    nstiffback = 0
                    if math.isnan(fout[1]):
                        fout[1] = t_new
            else:
                # back to the explicit method when RODAS's step is no longer much longer than what
                # DOPRI5 could take stably: h ||J||_inf < sw_down for 10 steps in a row
                if hs * _inf_norm(Jm) < sw_down * sratio:
                    nstiffback += 1
                    if nstiffback >= 10:
                        meth = explicit
                        err_order = _err_order(meth)
                        facold = 1e-4
                        nonsti = 0
                        iasti = 0
                else:
                    nstiffback = 0
        # -------- advance
        t = t_new
        for i in range(n):
            y[i] = ynew[i]
            f0[i] = f1[i]
        jac_fresh = False
        g_cur = _norm2(f0)
        # -------- convergence stop
        if ctol > 0.0:
            if g_cur < ctol:
                if not below:
                    below = True
                    t_below = t
                if t - t_below >= chold:
                    status = S_CONV
                    break
            else:
                below = False

    fout[0] = t
    for i in range(n):
        yfin[i] = y[i]
    cnt[ST_STATUS] = status
    if status == S_CONV:
        while js < T:
            _save(Y, LO, GN, js, y, g_cur, has_loss, ls_fn)
            js += 1


@njit(cache=True, parallel=True)
def integrate_many_parallel(f_into, f_ret, ls_fn, j_into, j_ret, ev_fn, Y0, t_eval, atol, lev_l, lev_f,
                            opts, Y, LO, GN, YF, CNT, FOUT, EVL, EVF):
    """prange over the rows of Y0 (one trajectory per iteration, no shared writable state)."""
    for r in prange(Y0.shape[0]):
        integrate_one(f_into, f_ret, ls_fn, j_into, j_ret, ev_fn, Y0[r], t_eval, atol, lev_l, lev_f,
                      opts, Y[r], LO[r], GN[r], YF[r], CNT[r], FOUT[r], EVL[r], EVF[r])


@njit(cache=True)
def integrate_many_serial(f_into, f_ret, ls_fn, j_into, j_ret, ev_fn, Y0, t_eval, atol, lev_l, lev_f,
                          opts, Y, LO, GN, YF, CNT, FOUT, EVL, EVF):
    """Same as the parallel driver, one thread."""
    for r in range(Y0.shape[0]):
        integrate_one(f_into, f_ret, ls_fn, j_into, j_ret, ev_fn, Y0[r], t_eval, atol, lev_l, lev_f,
                      opts, Y[r], LO[r], GN[r], YF[r], CNT[r], FOUT[r], EVL[r], EVF[r])


A3 = types.float64[:, :, ::1]
I2 = types.int64[:, ::1]
DRIVER_SIG = (FT_INTO, FT_RET, FT_SCAL, FT_JINTO, FT_JRET, FT_SCAL, A2, A1, A1, A1, A1, OPTIONS_ARRAY,
              A3, A2, A2, A2, I2, A2, A2, A2)


def compiled_driver(parallel: bool):
    """The driver compiled for the fixed first-class-function signature (from the disk cache when
    there is one); further compilation is disabled so that no dispatcher-typed specialisation (which
    Numba cannot cache) is ever made."""
    d = integrate_many_parallel if parallel else integrate_many_serial
    if not d.signatures:
        d.compile(DRIVER_SIG)
        d.disable_compile()
    return d
