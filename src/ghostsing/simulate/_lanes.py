r"""Rodas5P, and DOP853 -> Rodas5P, over SIMD lanes: ``LANES`` trajectories in lock-step (private; see
``integrate(execution=Execution(simd=True))``).

One idea: the SIMD-lane driver (Rodas5P, and DOP853 -> Rodas5P, on ``LANES`` trajectories in lock-step),
whose Numba kernels must live in one module so that Numba compiles them together.

The scalar driver of :mod:`ghostsing.simulate._kernels` integrates one trajectory per loop iteration.
Here each loop iteration takes one step on ``LANES`` (16) trajectories at once, each with its own time,
step size and error control, so that the work of a step vectorises across trajectories:

* the right-hand side and the Jacobian are the generated ``flow_lanes_into`` / ``jacobian_lanes_into``
  (:mod:`ghostsing.analytic.codegen`: one SIMD loop over the lanes);
* Rodas5P's ``W = I/(gamma h) - J`` is factorised for all lanes at once by LU *without* pivoting, and
  the stage solves run over all lanes at once.  A lane whose factorisation is not safe without pivoting
  (a non-finite or zero pivot, or a multiplier above ``LU_MAX_MULTIPLIER``: unbounded growth) is
  re-factorised and solved with the pivoted scalar LU of ``_kernels``.  For gradient flows ``J`` is
  minus a Hessian, so ``W`` is symmetric and, while ``1/(gamma h)`` exceeds the largest eigenvalue of
  ``J``, positive definite, where LU without pivoting is backward stable (on the benchmark no lane
  ever needed the fallback);
* what is per trajectory (accepting or rejecting, the step-size controller, saves, the stiffness test,
  convergence, starting the next trajectory) is scalar code per lane, inlined and free of array views
  on its common path.

"auto853" uses two groups of lanes: new trajectories run DOP853 in group A; a lane whose step becomes
stability-limited (the scalar driver's test, ``h ||J||_inf > 2.5 x 1.8`` every 10 accepted steps)
moves through a queue to the Rodas5P group B, and does not come back (the scalar driver may switch
back).  B steps when it is full or nothing more can reach it, A otherwise, so both groups run with all
lanes busy except while a block of trajectories drains.  A lane whose trajectory ends is refilled at
once.  The arithmetic of a step is that of ``_kernels._step_rosenbrock`` / ``_step_dop853``, and the
controller and status rules are those of ``_kernels.integrate_one``; only the order of floating-point
operations differs (results agree to rounding, not bit for bit).

Array layout: flat arrays with the lane index fastest, ``V[i * LANES + j]`` for component ``i`` of lane
``j``; stages ``K[(s * P + i) * LANES + j]``; matrices ``W[(r * P + c) * LANES + j]``.

Numba's disk cache is keyed on this file: ``LANES`` (from codegen) and the tableaus are frozen into the
machine code, so after changing either, touch this file; the drivers refuse to run with a stale
``LANES``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange, types

from ghostsing.analytic.codegen import LANES
from ghostsing.simulate import _kernels as kn
from ghostsing.simulate import _tableaus as tb

L = LANES
R5_A, R5_C, R5_GAMMA = tb.R5_A, tb.R5_C, tb.R5_GAMMA
D8_A, D8_B, D8_E3, D8_E5 = tb.D8_A, tb.D8_B, tb.D8_E3, tb.D8_E5
NS = R5_C.shape[0]  # 8 stages
NA = R5_A.shape[0]
LU_MAX_MULTIPLIER = 1e3
ORDER_D8 = int(kn.ERROR_ORDER[kn.M_DOP853])  # error orders of the method table (controller exponents)
ORDER_R5 = int(kn.ERROR_ORDER[kn.M_RODAS5])

A1 = types.float64[::1]
FT_LANES = types.FunctionType(types.void(A1, A1))  # flow_lanes_into(X, OUT) / jacobian_lanes_into(X, J)


# ------------------------------------------------------------------ vectorised linear algebra
@njit(cache=True, error_model="numpy", fastmath={"contract"}, inline="always")
def _lu_lanes(W, dinv, P, bad, mult):
    """LU without pivoting of the P x P matrices of all lanes, in place (unit lower factor below the
    diagonal); dinv[k L + j] = 1 / U_kk of lane j.  bad[j] = 1 where the factorisation is not safe.
    mult (L,) is scratch (the largest multiplier of each lane)."""
    for j in range(L):
        mult[j] = 0.0
    for k in range(P):
        kk = (k * P + k) * L
        for j in range(L):
            dinv[k * L + j] = 1.0 / W[kk + j]
        for i in range(k + 1, P):
            ik = (i * P + k) * L
            for j in range(L):
                m = W[ik + j] * dinv[k * L + j]
                W[ik + j] = m
                mult[j] = max(mult[j], abs(m))
            for c in range(k + 1, P):
                ic = (i * P + c) * L
                kc = (k * P + c) * L
                for j in range(L):
                    W[ic + j] -= W[ik + j] * W[kc + j]
    for j in range(L):
        ok = mult[j] <= LU_MAX_MULTIPLIER
        for k in range(P):
            ok = ok and math.isfinite(dinv[k * L + j]) and dinv[k * L + j] != 0.0
        bad[j] = 0 if ok else 1


@njit(cache=True, error_model="numpy", fastmath={"contract"}, inline="always")
def _solve_lanes(W, dinv, P, b):
    """b <- W^{-1} b for all lanes, with the factors of :func:`_lu_lanes`."""
    for i in range(1, P):
        for c in range(i):
            ic = (i * P + c) * L
            for j in range(L):
                b[i * L + j] -= W[ic + j] * b[c * L + j]
    for i in range(P - 1, -1, -1):
        for c in range(i + 1, P):
            ic = (i * P + c) * L
            for j in range(L):
                b[i * L + j] -= W[ic + j] * b[c * L + j]
        for j in range(L):
            b[i * L + j] *= dinv[i * L + j]


@njit(cache=True, error_model="numpy", inline="always")
def _factor_lanes(Jl, g, W, dinv, bad, Wp, piv, active, P, mult):
    """Factorise W_j = g_j I - J_j for every lane: LU without pivoting for all lanes at once, then, for
    the active lanes that :func:`_lu_lanes` flags, the pivoted scalar LU into Wp[j], piv[j] (a singular
    W_j gets NaN pivots, so its step is rejected).  Returns the number of such lanes; bad[j] = 1 marks
    them for :func:`_solve`."""
    PL = P * L
    for q in range(P * PL):
        W[q] = -Jl[q]
    for r in range(P):
        rr = (r * P + r) * L
        for j in range(L):
            W[rr + j] += g[j]
    _lu_lanes(W, dinv, P, bad, mult)
    nbad = 0
    for j in range(L):
        if bad[j] and active[j]:
            nbad += 1
            for r in range(P):
                for c in range(P):
                    Wp[j, r, c] = -Jl[(r * P + c) * L + j]
                Wp[j, r, r] += g[j]
            if not kn._lu_factor(Wp[j], piv[j]):
                for r in range(P):
                    Wp[j, r, r] = np.nan
        else:
            bad[j] = 0
    return nbad


@njit(cache=True, error_model="numpy", inline="always")
def _solve(W, dinv, P, b, bad, nbad, Wp, piv, col):
    """Stage solve: vectorised, then the lanes flagged in ``bad`` again with their pivoted LU."""
    if nbad > 0:
        for j in range(L):
            if bad[j]:
                for i in range(P):
                    col[j, i] = b[i * L + j]
    _solve_lanes(W, dinv, P, b)
    if nbad > 0:
        for j in range(L):
            if bad[j]:
                kn._lu_solve(Wp[j], piv[j], col[j])
                for i in range(P):
                    b[i * L + j] = col[j, i]


@njit(cache=True)
def _linalg_workspace(P):
    """Arrays of :func:`_factor_lanes` and :func:`_solve` for P x P systems on LANES lanes:
    (W, dinv, bad, Wp, piv, col)."""
    return (np.empty(P * P * L), np.empty(P * L), np.zeros(L, dtype=np.int64), np.empty((L, P, P)),
            np.zeros((L, P), dtype=np.int64), np.empty((L, P)))


@njit(cache=True, error_model="numpy", fastmath={"contract"}, inline="always")
def _combine(c, n, K, PL, out):
    """out[q] = sum_{m < n} c[m] K[m PL + q]: a linear combination of the first n stages (zero
    coefficients skipped; the innermost loop runs over lanes)."""
    for q in range(PL):
        out[q] = 0.0
    for m in range(n):
        cm = c[m]
        if cm != 0.0:
            for q in range(PL):
                out[q] += cm * K[m * PL + q]


@njit(cache=True, error_model="numpy", fastmath={"contract"}, inline="always")
def _add_scaled(Y, h, X, P, out):
    """out[i L + j] = Y[i L + j] + h[j] X[i L + j], with a step h[j] per lane (out may be Y)."""
    for i in range(P):
        for j in range(L):
            q = i * L + j
            out[q] = Y[q] + h[j] * X[q]


# ------------------------------------------------------------------ one Rodas5P step on all lanes
@njit(cache=True, error_model="numpy", fastmath={"contract"}, inline="always")
def _rodas5p_lanes(fl, jl, Yl, F0, H, K, U, Jl, W, dinv, bad, Wp, piv, col, Ynew, F1, err, atol, rtol,
                active, P, acc, Hinv, gHinv):
    """One Rodas5P step of size H[j] from Yl on every lane (see ``_kernels._step_rosenbrock``).

    Fills K (stages), Ynew, F1 = F(Ynew) and err[j] (RMS error norm; inf if not finite); acc (P L,),
    Hinv and gHinv (L,) are scratch."""
    jl(Yl, Jl)
    PL = P * L
    for j in range(L):
        Hinv[j] = 1.0 / H[j]
        gHinv[j] = Hinv[j] / R5_GAMMA
    nbad = _factor_lanes(Jl, gHinv, W, dinv, bad, Wp, piv, active, P, err)
    for q in range(PL):
        K[q] = F0[q]
    _solve(W, dinv, P, K[0:PL], bad, nbad, Wp, piv, col)
    for s in range(1, NS):
        # stage argument u_s, then W k_s = F(u_s) + sum_m C_sm k_m / h
        if s < NA:
            _combine(R5_A[s], s, K, PL, acc)
            for q in range(PL):
                U[q] = Yl[q] + acc[q]
        else:
            for q in range(PL):
                U[q] += K[(s - 1) * PL + q]
        ks = K[s * PL:(s + 1) * PL]
        fl(U, ks)
        _combine(R5_C[s], s, K, PL, acc)
        _add_scaled(ks, Hinv, acc, P, ks)
        _solve(W, dinv, P, ks, bad, nbad, Wp, piv, col)
    e = K[(NS - 1) * PL:NS * PL]
    for q in range(PL):
        Ynew[q] = U[q] + e[q]
    fl(Ynew, F1)
    for j in range(L):
        err[j] = 0.0
    for i in range(P):
        for j in range(L):
            q = i * L + j
            sc = atol[i] + rtol * max(abs(Yl[q]), abs(Ynew[q]))
            z = e[q] / sc
            err[j] += z * z
    for j in range(L):
        v = math.sqrt(err[j] / P)
        err[j] = v if math.isfinite(v) else np.inf
    return nbad


@njit(cache=True, error_model="numpy", fastmath={"contract"}, inline="always")
def _dop853_lanes(fl, Yl, F0, H, K, U, Ynew, err, atol, rtol, P, acc, e3):
    """One DOP853 step of size H[j] from Yl on every lane (see ``_kernels._step_dop853``).

    Fills K (stages 0..12, stage 12 = F(Ynew)), Ynew and err[j] (Hairer's 8(5,3) error norm; inf if not
    finite); acc (P L,) and e3 (L,) are scratch."""
    PL = P * L
    for q in range(PL):
        K[q] = F0[q]
    for s in range(1, 12):
        _combine(D8_A[s], s, K, PL, acc)
        _add_scaled(Yl, H, acc, P, U)
        fl(U, K[s * PL:(s + 1) * PL])
    _combine(D8_B, 12, K, PL, acc)
    _add_scaled(Yl, H, acc, P, Ynew)
    fl(Ynew, K[12 * PL:13 * PL])
    # error estimates e5 = sum_m E5_m K_m (in acc), e3 = sum_m E3_m K_m (in U)
    _combine(D8_E5, 13, K, PL, acc)
    _combine(D8_E3, 13, K, PL, U)
    for j in range(L):
        err[j] = 0.0
        e3[j] = 0.0
    for i in range(P):
        for j in range(L):
            q = i * L + j
            sc = 1.0 / (atol[i] + rtol * max(abs(Yl[q]), abs(Ynew[q])))
            a5 = acc[q] * sc
            a3 = U[q] * sc
            err[j] += a5 * a5
            e3[j] += a3 * a3
    for j in range(L):
        e5 = err[j]
        if e5 == 0.0 and e3[j] == 0.0:
            v = 0.0
        else:
            v = abs(H[j]) * e5 / math.sqrt((e5 + 0.01 * e3[j]) * P)
        err[j] = v if math.isfinite(v) else np.inf


SPECIALISED_P = 6  # the two-unit models (K = N = 2, with skips) get steps compiled for this P


@njit(cache=True, error_model="numpy")
def _step_lanes(fl, jl, Yl, F0, H, K, U, Jl, W, dinv, bad, Wp, piv, col, Ynew, F1, err, atol, rtol,
                active, P, acc, Hinv, gHinv):
    """:func:`_rodas5p_lanes`, inlined once with P = SPECIALISED_P a compile-time constant (LLVM then
    unrolls the short loops over components: ~20 % faster per step) and once for any P."""
    if P == SPECIALISED_P:
        _rodas5p_lanes(fl, jl, Yl, F0, H, K, U, Jl, W, dinv, bad, Wp, piv, col, Ynew, F1, err, atol, rtol,
                       active, SPECIALISED_P, acc, Hinv, gHinv)
    else:
        _rodas5p_lanes(fl, jl, Yl, F0, H, K, U, Jl, W, dinv, bad, Wp, piv, col, Ynew, F1, err, atol, rtol,
                       active, P, acc, Hinv, gHinv)


@njit(cache=True, error_model="numpy")
def _step_dop853_lanes(fl, Yl, F0, H, K, U, Ynew, err, atol, rtol, P, acc, e3):
    """:func:`_dop853_lanes`, with P = SPECIALISED_P a compile-time constant and for any P."""
    if P == SPECIALISED_P:
        _dop853_lanes(fl, Yl, F0, H, K, U, Ynew, err, atol, rtol, SPECIALISED_P, acc, e3)
    else:
        _dop853_lanes(fl, Yl, F0, H, K, U, Ynew, err, atol, rtol, P, acc, e3)


# ------------------------------------------------------------------ per-lane bookkeeping
# per-lane state of a group of lanes: float fields SF[j, .] and int fields SI[j, .]
F_T, F_H, F_FACOLD, F_HPROP, F_TNEXT, F_TBELOW = 0, 1, 2, 3, 4, 5
N_SF = 6
I_TRAJ, I_JS, I_NSTEPS, I_LASTREJ, I_LASTNF, I_CLIPPED, I_BELOW = 0, 1, 2, 3, 4, 5, 6
N_SI = 7
RUNNING, TO_STIFF = -1, -2  # lane outcomes besides the final status codes of _kernels
QUEUE = 4 * L  # trajectories waiting between the explicit and the stiff group


@njit(cache=True, error_model="numpy", inline="always")
def _get_column(V, P, j, out):
    for i in range(P):
        out[i] = V[i * L + j]


@njit(cache=True, error_model="numpy", inline="always")
def _put_column(V, P, j, v):
    for i in range(P):
        V[i * L + j] = v[i]


@njit(cache=True, error_model="numpy", inline="always")
def _max_abs_or_inf(v):
    """max_i |v_i|, or inf if some v_i is not finite (inlined: no call per lane)."""
    m = 0.0
    for i in range(v.shape[0]):
        a = abs(v[i])
        m = max(m, a) if math.isfinite(a) else np.inf
    return m


@njit(cache=True, error_model="numpy", inline="always")
def _norm2(v):
    s = 0.0
    for i in range(v.shape[0]):
        s += v[i] * v[i]
    return math.sqrt(s)


@njit(cache=True, error_model="numpy")
def _step_sizes(active, SF, SI, H, t_eval, hmax, exact):
    """H[j] for this attempt: the proposed step, shortened to land on the next save (exact) or t_end."""
    T = t_eval.shape[0]
    for j in range(L):
        if not active[j]:
            H[j] = 1.0
            continue
        hs = min(SF[j, F_H], hmax)
        SF[j, F_HPROP] = hs
        SI[j, I_CLIPPED] = 0
        t = SF[j, F_T]
        js = SI[j, I_JS]
        t_next = t_eval[js] if (exact and js < T) else t_eval[T - 1]
        if t + hs >= t_next or t + 1.0001 * hs >= t_next:
            hs = t_next - t
            SI[j, I_CLIPPED] = 1
            SF[j, F_TNEXT] = t_next
        H[j] = hs


@njit(cache=True, error_model="numpy")
def _start_lane(f_into, ls_fn, has_loss, Y0, r, t0, t_eval, atol, rtol, h0, hmax, maxabs, order, Yl, F0,
                SF, SI, j, Yo, LO, GN, YF, CNT, FOUT, ytmp, ftmp, fcur):
    """Load trajectory r into lane j (saves at t0, initial step); False (and r finished with status
    NON_FINITE) if its initial state or flow is not finite."""
    P = Y0.shape[1]
    T = t_eval.shape[0]
    for k in range(T):
        GN[r, k] = np.nan
        LO[r, k] = np.nan
        for i in range(P):
            Yo[r, k, i] = np.nan
    FOUT[r, 0] = t0
    FOUT[r, 1] = np.nan
    y0 = Y0[r]
    for i in range(P):
        YF[r, i] = y0[i]
    if not kn._all_finite(y0) or kn._max_abs(y0) > maxabs:
        CNT[r, kn.ST_STATUS] = kn.S_NONFINITE
        return False
    kn._rhs(0, f_into, kn.dummy_ret, y0, fcur, CNT[r])
    if not kn._all_finite(fcur):
        CNT[r, kn.ST_STATUS] = kn.S_NONFINITE
        return False
    _put_column(Yl, P, j, y0)
    _put_column(F0, P, j, fcur)
    js = 0
    g = kn._norm2(fcur)
    while js < T and t_eval[js] <= t0:
        kn._save(Yo[r], LO[r], GN[r], js, y0, g, has_loss, ls_fn)
        js += 1
    if h0 > 0.0:
        h = h0
    else:
        h = kn._initial_step(0, f_into, kn.dummy_ret, y0, fcur, order, rtol, atol, hmax,
                             t_eval[T - 1] - t0, ytmp, ftmp, CNT[r])
    SF[j, F_T] = t0
    SF[j, F_H] = h
    SF[j, F_FACOLD] = 1e-4
    SF[j, F_TBELOW] = 0.0
    SI[j, I_TRAJ] = r
    SI[j, I_JS] = js
    SI[j, I_NSTEPS] = 0
    SI[j, I_LASTREJ] = 0
    SI[j, I_LASTNF] = 0
    SI[j, I_BELOW] = 0
    return True


@njit(cache=True, error_model="numpy", inline="always")
def _update_lane(meth, j, H, err, Yl, F0, Ynew, F1, K, P, SF, SI, t_eval, beta, maxabs, ctol, chold,
                 max_steps, hmax, sw_up, rho, has_loss, ls_fn, f_into, Yo, LO, GN, CNT, FOUT, sc):
    """Accept or reject lane j's attempt, control its step, save, advance; the scalar rules of
    ``_kernels.integrate_one``.  Returns RUNNING, TO_STIFF (an explicit lane whose step became
    stability-limited) or a final status.  rho[j]: ||J(y_new)||_inf where the stiffness test is due;
    sc: (5, P) scalar scratch.

    Inlined into the drivers, and free of array views and calls on its common path (accepted step, no
    save): in Numba each call with array arguments costs ~10 ns per array (reference counting), which
    per lane and step would cost more than the step's own arithmetic."""
    r = SI[j, I_TRAJ]
    T = t_eval.shape[0]
    t_end = t_eval[T - 1]
    explicit = meth == kn.M_DOP853
    order = ORDER_D8 if explicit else ORDER_R5
    CNT[r, kn.ST_NFEV] += 12 if explicit else NS
    if not explicit:
        CNT[r, kn.ST_NJEV] += 1
        CNT[r, kn.ST_NLU] += 1
    SI[j, I_NSTEPS] += 1
    hs = H[j]
    t = SF[j, F_T]
    e = err[j]
    status = RUNNING
    if not e <= 1.0:  # rejected (err > 1 or not finite)
        CNT[r, kn.ST_REJ] += 1
        SI[j, I_LASTNF] = 0 if math.isfinite(e) else 1
        SI[j, I_LASTREJ] = 1
        SF[j, F_H] = kn._h_after_reject(hs, e, order)
    else:
        SI[j, I_LASTNF] = 0
        CNT[r, kn.ST_ACC] += 1
        clipped = SI[j, I_CLIPPED] != 0
        t_new = SF[j, F_TNEXT] if clipped else t + hs
        ymax = 0.0
        fok = True
        g2 = 0.0
        for i in range(P):
            ymax = max(ymax, abs(Ynew[i * L + j]))
            fi = F1[i * L + j]
            fok = fok and math.isfinite(fi)
            g2 += fi * fi
        if not fok or not ymax <= maxabs:
            return kn.S_NONFINITE
        SF[j, F_H] = kn._h_after_accept(hs, e, SF[j, F_FACOLD], beta, order, SI[j, I_LASTREJ] != 0, clipped,
                                        SF[j, F_HPROP])
        SF[j, F_FACOLD] = max(e, 1e-4)
        SI[j, I_LASTREJ] = 0
        # saves in (t, t_new]: end points, or Rodas5P's dense output
        if SI[j, I_JS] < T and t_eval[SI[j, I_JS]] <= t_new:
            _save_lane(j, t, hs, t_new, Yl, Ynew, F1, K, P, SI, t_eval, has_loss, ls_fn, f_into, Yo, LO, GN,
                       CNT, sc)
        # stiffness test of the explicit phase: h ||J(y_new)||_inf every 10 accepted steps
        switch = False
        if explicit and sw_up > 0.0 and CNT[r, kn.ST_ACC] % kn.STIFF_CHECK_EVERY == 0:
            CNT[r, kn.ST_NJEV] += 1
            switch = hs * rho[j] > sw_up * kn.DOP853_STAB_RATIO
            if switch and math.isnan(FOUT[r, 1]):
                FOUT[r, 1] = t_new
        # advance
        SF[j, F_T] = t_new
        for i in range(P):
            Yl[i * L + j] = Ynew[i * L + j]
            F0[i * L + j] = F1[i * L + j]
        if ctol > 0.0:
            if math.sqrt(g2) < ctol:
                if not SI[j, I_BELOW]:
                    SI[j, I_BELOW] = 1
                    SF[j, F_TBELOW] = t_new
                if t_new - SF[j, F_TBELOW] >= chold:
                    status = kn.S_CONV
            else:
                SI[j, I_BELOW] = 0
        if status == RUNNING and t_new >= t_end:
            status = kn.S_OK
        if status == RUNNING and switch:
            SF[j, F_FACOLD] = 1e-4
            return TO_STIFF
    if status == RUNNING:
        tl = SF[j, F_T]
        if SI[j, I_NSTEPS] >= max_steps:
            status = kn.S_MAXSTEPS
        elif min(SF[j, F_H], hmax) < 10.0 * abs(np.nextafter(tl, np.inf) - tl):
            status = kn.S_NONFINITE if SI[j, I_LASTNF] else kn.S_SMALL
    return status


@njit(cache=True, error_model="numpy")
def _save_lane(j, t, hs, t_new, Yl, Ynew, F1, K, P, SI, t_eval, has_loss, ls_fn, f_into, Yo, LO, GN, CNT,
               sc):
    """Saves of lane j's accepted step (t, t_new]: its end point, or Rodas5P's dense output (never used
    in the DOP853 phase, whose steps land on the save times)."""
    y, yn, f1, yd, fd = sc[0], sc[1], sc[2], sc[3], sc[4]
    r = SI[j, I_TRAJ]
    T = t_eval.shape[0]
    _get_column(Ynew, P, j, yn)
    _get_column(F1, P, j, f1)
    while SI[j, I_JS] < T and t_eval[SI[j, I_JS]] <= t_new:
        k = SI[j, I_JS]
        if t_eval[k] == t_new:
            kn._save(Yo[r], LO[r], GN[r], k, yn, _norm2(f1), has_loss, ls_fn)
        else:
            _get_column(Yl, P, j, y)
            Kj = np.empty((NS, P))
            for s in range(NS):
                for i in range(P):
                    Kj[s, i] = K[(s * P + i) * L + j]
            kn._dense(kn.M_RODAS5, (t_eval[k] - t) / hs, hs, y, yn, y, f1, Kj, Kj, yd)
            kn._rhs(0, f_into, kn.dummy_ret, yd, fd, CNT[r])
            kn._save(Yo[r], LO[r], GN[r], k, yd, _norm2(fd), has_loss, ls_fn)
        SI[j, I_JS] = k + 1


@njit(cache=True, error_model="numpy")
def _finish_lane(status, j, Yl, F0, P, SF, SI, t_eval, has_loss, ls_fn, Yo, LO, GN, YF, CNT, FOUT, y, f):
    """Write the outputs of the trajectory that ends in lane j with ``status``."""
    r = SI[j, I_TRAJ]
    T = t_eval.shape[0]
    _get_column(Yl, P, j, y)
    FOUT[r, 0] = SF[j, F_T]
    for i in range(P):
        YF[r, i] = y[i]
    CNT[r, kn.ST_STATUS] = status
    if status == kn.S_CONV:
        _get_column(F0, P, j, f)
        g = kn._norm2(f)
        while SI[j, I_JS] < T:
            kn._save(Yo[r], LO[r], GN[r], SI[j, I_JS], y, g, has_loss, ls_fn)
            SI[j, I_JS] += 1


@njit(cache=True, error_model="numpy")
def _run_block(f_into, ls_fn, fl, jl, j_into, Y0, lo, hi, t_eval, atol, opts, Yo, LO, GN, YF, CNT,
               FOUT):
    """Integrate trajectories lo..hi-1 of Y0 through groups of LANES lanes, refilled as trajectories end.

    Rodas5P alone: one group.  DOP853 -> Rodas5P (auto853): new trajectories run DOP853 in group A; a
    lane whose step becomes stability-limited moves, through a queue, to the Rodas5P group B.  B steps
    when it is full (or nothing more can reach it), A otherwise, so both run with all lanes busy except
    while a block drains."""
    P = Y0.shape[1]
    PL = P * L
    o = opts[0]
    two_phase = o.method == kn.M_AUTO8
    exact = o.exact_saves != 0
    max_steps = o.max_steps
    has_loss = o.has_loss != 0
    t0 = o.t0
    rtol = o.rtol
    h0 = o.first_step
    hmax = o.max_step
    ctol = o.grad_tol
    chold = o.hold_time
    maxabs = o.max_abs
    beta = o.pi_beta
    sw_up = o.switch_up
    order0 = ORDER_D8 if two_phase else ORDER_R5

    # group B: Rodas5P
    YB = np.zeros(PL)
    FB = np.zeros(PL)
    SFB = np.zeros((L, N_SF))
    SIB = np.zeros((L, N_SI), dtype=np.int64)
    actB = np.zeros(L, dtype=np.bool_)
    HB = np.ones(L)
    KB = np.empty(NS * PL)
    YnB = np.empty(PL)
    F1B = np.empty(PL)
    JB = np.empty(P * PL)
    W, dinv, bad, Wp, piv, col = _linalg_workspace(P)
    Hinv = np.empty(L)
    gHinv = np.empty(L)
    # group A: DOP853
    YA = np.zeros(PL)
    FA = np.zeros(PL)
    SFA = np.zeros((L, N_SF))
    SIA = np.zeros((L, N_SI), dtype=np.int64)
    actA = np.zeros(L, dtype=np.bool_)
    HA = np.ones(L)
    KA = np.empty(13 * PL)
    YnA = np.empty(PL)
    Js = np.empty((P, P))
    rho = np.zeros(L)
    # queue A -> B
    QYl = np.zeros(P * QUEUE)
    QFl = np.zeros(P * QUEUE)
    QSF = np.zeros((QUEUE, N_SF))
    QSI = np.zeros((QUEUE, N_SI), dtype=np.int64)
    nq = 0
    # scratch
    U = np.empty(PL)
    acc = np.empty(PL)
    err = np.empty(L)
    e3 = np.empty(L)
    sc = np.empty((5, P))

    nxt = lo
    nA = 0
    nB = 0
    while True:
        # ---- refill: B from the queue, then new trajectories into A (two phases) or B
        for j in range(L):
            if not actB[j] and nq > 0:
                nq -= 1
                for i in range(P):
                    YB[i * L + j] = QYl[nq * P + i]
                    FB[i * L + j] = QFl[nq * P + i]
                for k in range(N_SF):
                    SFB[j, k] = QSF[nq, k]
                for k in range(N_SI):
                    SIB[j, k] = QSI[nq, k]
                actB[j] = True
                nB += 1
        for j in range(L):
            if two_phase:
                if actA[j]:
                    continue
            elif actB[j]:
                continue
            while nxt < hi:
                r = nxt
                nxt += 1
                if two_phase:
                    ok = _start_lane(f_into, ls_fn, has_loss, Y0, r, t0, t_eval, atol, rtol, h0, hmax,
                                     maxabs, order0, YA, FA, SFA, SIA, j, Yo, LO, GN, YF, CNT, FOUT,
                                     sc[0], sc[1], sc[2])
                else:
                    ok = _start_lane(f_into, ls_fn, has_loss, Y0, r, t0, t_eval, atol, rtol, h0, hmax,
                                     maxabs, order0, YB, FB, SFB, SIB, j, Yo, LO, GN, YF, CNT, FOUT,
                                     sc[0], sc[1], sc[2])
                if ok:
                    if two_phase:
                        actA[j] = True
                        nA += 1
                    else:
                        actB[j] = True
                        nB += 1
                    break
        if nA == 0 and nB == 0:
            break
        if nB > 0 and (nB == L or nA == 0 or nq + L > QUEUE):
            # ---- one Rodas5P step on group B
            _step_sizes(actB, SFB, SIB, HB, t_eval, hmax, exact)
            _step_lanes(fl, jl, YB, FB, HB, KB, U, JB, W, dinv, bad, Wp, piv, col, YnB, F1B, err, atol,
                        rtol, actB, P, acc, Hinv, gHinv)
            for j in range(L):
                if not actB[j]:
                    continue
                st = _update_lane(kn.M_RODAS5, j, HB, err, YB, FB, YnB, F1B, KB, P, SFB, SIB, t_eval,
                                  beta, maxabs, ctol, chold, max_steps, hmax, 0.0, rho, has_loss, ls_fn,
                                  f_into, Yo, LO, GN, CNT, FOUT, sc)
                if st >= 0:
                    _finish_lane(st, j, YB, FB, P, SFB, SIB, t_eval, has_loss, ls_fn, Yo, LO, GN, YF,
                                 CNT, FOUT, sc[0], sc[1])
                    actB[j] = False
                    nB -= 1
        else:
            # ---- one DOP853 step on group A
            _step_sizes(actA, SFA, SIA, HA, t_eval, hmax, exact)
            _step_dop853_lanes(fl, YA, FA, HA, KA, U, YnA, err, atol, rtol, P, acc, e3)
            # ||J(y_new)||_inf of the lanes whose stiffness test is due (scalar Jacobian: ~2 of 16)
            if sw_up > 0.0:
                for j in range(L):
                    if actA[j] and err[j] <= 1.0:
                        if (CNT[SIA[j, I_TRAJ], kn.ST_ACC] + 1) % kn.STIFF_CHECK_EVERY == 0:
                            _get_column(YnA, P, j, sc[0])
                            j_into(sc[0], Js)
                            rho[j] = kn._inf_norm(Js)
            F1A = KA[12 * PL:13 * PL]
            for j in range(L):
                if not actA[j]:
                    continue
                st = _update_lane(kn.M_DOP853, j, HA, err, YA, FA, YnA, F1A, KA, P, SFA, SIA, t_eval,
                                  beta, maxabs, ctol, chold, max_steps, hmax, sw_up, rho, has_loss, ls_fn,
                                  f_into, Yo, LO, GN, CNT, FOUT, sc)
                if st == RUNNING:
                    continue
                if st == TO_STIFF:
                    for i in range(P):
                        QYl[nq * P + i] = YA[i * L + j]
                        QFl[nq * P + i] = FA[i * L + j]
                    for k in range(N_SF):
                        QSF[nq, k] = SFA[j, k]
                    for k in range(N_SI):
                        QSI[nq, k] = SIA[j, k]
                    nq += 1
                else:
                    _finish_lane(st, j, YA, FA, P, SFA, SIA, t_eval, has_loss, ls_fn, Yo, LO, GN, YF,
                                 CNT, FOUT, sc[0], sc[1])
                actA[j] = False
                nA -= 1


@njit(cache=True, error_model="numpy", parallel=True)
def integrate_lanes_parallel(f_into, ls_fn, fl, jl, j_into, lanes, Y0, t_eval, atol, opts, bounds,
                             Yo, LO, GN, YF, CNT, FOUT):
    """prange over blocks of trajectories [bounds[b], bounds[b + 1]) (no shared writable state).
    ``lanes`` is codegen.LANES at run time: a guard against machine code cached with another value."""
    if lanes != L:
        raise RuntimeError("stale Numba cache of ghostsing.simulate._lanes (compiled for another LANES); "
                           "delete its __pycache__")
    for b in prange(bounds.shape[0] - 1):
        _run_block(f_into, ls_fn, fl, jl, j_into, Y0, bounds[b], bounds[b + 1], t_eval, atol, opts,
                   Yo, LO, GN, YF, CNT, FOUT)


@njit(cache=True, error_model="numpy")
def integrate_lanes_serial(f_into, ls_fn, fl, jl, j_into, lanes, Y0, t_eval, atol, opts, bounds,
                           Yo, LO, GN, YF, CNT, FOUT):
    """Same as the parallel driver, one thread."""
    if lanes != L:
        raise RuntimeError("stale Numba cache of ghostsing.simulate._lanes (compiled for another LANES); "
                           "delete its __pycache__")
    for b in range(bounds.shape[0] - 1):
        _run_block(f_into, ls_fn, fl, jl, j_into, Y0, bounds[b], bounds[b + 1], t_eval, atol, opts,
                   Yo, LO, GN, YF, CNT, FOUT)


LANES_SIG = (kn.FT_INTO, kn.FT_SCAL, FT_LANES, FT_LANES, kn.FT_JINTO, types.int64, kn.A2, kn.A1, kn.A1,
             kn.OPTIONS_ARRAY, kn.I1, kn.A3, kn.A2, kn.A2, kn.A2, kn.I2, kn.A2)


def compiled_lanes_driver(parallel: bool):
    """The lanes driver compiled for its fixed first-class-function signature (cached on disk)."""
    d = integrate_lanes_parallel if parallel else integrate_lanes_serial
    if not d.signatures:
        d.compile(LANES_SIG)
        d.disable_compile()
    return d
