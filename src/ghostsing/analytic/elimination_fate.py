r"""The fate of the elimination sets ``{w_i = 0}`` and ``{J_i = 0}`` when skips are switched on.

At ``alpha = 0`` a unit that is off (``w_i = 0``) or blind (``J_i = 0``, odd activation) leaves a set of
parameters on which the loss is that of the (K-1)-unit network.  With skips of strength ``alpha > 0``
(:func:`elimination_fate`) the set is left at the ``O(1)`` rate where it is not critical, keeps isolated
critical points (saddles or certified minima) where it is, and, when the whole set is critical at
``alpha = 0`` (a realisable parent), becomes a slow manifold with an ``O(alpha^2)`` drift along it.  Each
critical point found is certified by the helpers here (:func:`constrained_minimum`,
:func:`classify_critical_point`, :func:`local_newton`): global minimum, trap, saddle or degenerate point,
the degenerate ones decided by a probe along the Hessian's null direction.  The overlap line is
:mod:`ghostsing.analytic.ghost_fate`; the linear-dependence set is
:mod:`ghostsing.analytic.linear_dependence_fate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

from ghostsing.analytic.loss import derive
from ghostsing.analytic.minima import best_fit, global_minimum, loss_functions
from ghostsing.models import ModelSpec

#: what a critical point near an elimination set is (:func:`classify_critical_point`)
POINT_KINDS = ("saddle", "trap", "global minimum", "degenerate minimum", "degenerate saddle",
               "degenerate (probe failed)", "not critical")


@dataclass(frozen=True, eq=False)
class CriticalPoint:
    """A critical point of the ``alpha``-model on or near an elimination set, with its certificate.

    free : the free coordinate(s) of the set there (``J_i`` for ``{w_i = 0}``, ``w_i`` for ``{J_i = 0}``);
    offset : the transverse coordinate(s) (``w_i`` resp. ``J_i``: 0 on the set); kind : one of
    :data:`POINT_KINDS`; null_probe : for a degenerate point, ``L_red(+d) - L``, ``L_red(-d) - L`` along the
    Hessian's null direction (every other coordinate relaxed), else empty.
    """

    theta: np.ndarray
    free: np.ndarray
    offset: np.ndarray
    loss: float
    grad_norm: float
    hessian_eigenvalues: np.ndarray
    kind: str
    loss_gap: float
    null_probe: tuple[float, ...] = ()


def constrained_minimum(model, x0: np.ndarray, fixed: Sequence[int], gtol: float = 1e-12,
                        maxiter: int = 500) -> np.ndarray:
    """Minimise ``model.loss`` over every coordinate except ``fixed`` (held at their values in ``x0``):
    trust-region Newton with the generated gradient and Hessian restricted to the free coordinates, then
    Newton polishing."""
    fun, jac, hess = loss_functions(model)
    x0 = np.asarray(x0, dtype=np.float64)
    keep = np.array([k for k in range(x0.size) if k not in set(int(f) for f in fixed)])

    def full(y):
        x = x0.copy()
        x[keep] = y
        return x

    res = optimize.minimize(lambda y: fun(full(y)), x0[keep], jac=lambda y: jac(full(y))[keep],
                            hess=lambda y: hess(full(y))[np.ix_(keep, keep)], method="trust-exact",
                            options={"gtol": gtol, "maxiter": maxiter})
    y = res.x
    for _ in range(20):
        g = jac(full(y))[keep]
        if np.linalg.norm(g) < gtol:
            break
        yn = y + np.linalg.lstsq(hess(full(y))[np.ix_(keep, keep)], -g, rcond=1e-15)[0]
        if np.linalg.norm(jac(full(yn))[keep]) >= np.linalg.norm(g):
            break
        y = yn
    return full(y)


def classify_critical_point(model, theta: np.ndarray, global_loss: float, grad_tol: float = 1e-9,
                            eig_tol: float = 1e-9, gap_tol: float = 1e-8, probe: float = 1e-2
                            ) -> tuple[str, float, np.ndarray, tuple[float, ...]]:
    """``(kind, |grad L|, Hessian eigenvalues, null_probe)`` of a point of the ``alpha``-model.

    ``saddle``: a Hessian eigenvalue below ``-eig_tol``; ``trap``: all above ``eig_tol`` and the loss
    above ``global_loss + gap_tol`` (certified); ``global minimum``: within ``gap_tol`` of it; for a
    smallest eigenvalue in ``[-eig_tol, eig_tol]`` the loss is probed at ``+-t`` along the null
    eigenvector with every coordinate orthogonal to it relaxed, ``t = probe, 10 probe, ...`` until the change
    exceeds ``1e-9`` (the relaxation's own noise is ~1e-10; a null direction that is mostly a large output
    weight needs a large ``t``): ``degenerate minimum`` when both sides rise, ``degenerate saddle`` when
    one falls (an odd, e.g. cubic, term).  ``not critical`` when ``|grad L| >= grad_tol``.
    """
    fun, jac, hess = loss_functions(model)
    gn = float(np.linalg.norm(jac(theta)))
    H = hess(theta)
    ev, vec = np.linalg.eigh(H)
    L0 = float(fun(theta))
    if gn >= grad_tol:
        return "not critical", gn, ev, ()
    if ev[0] < -eig_tol:
        return "saddle", gn, ev, ()
    if ev[0] > eig_tol:
        return ("trap" if L0 > global_loss + gap_tol else "global minimum"), gn, ev, ()
    n = vec[:, 0]
    Q = np.linalg.svd(n[None, :])[2][1:].T  # orthonormal complement of n

    def relaxed(s):
        base = theta + s * n

        def f(y):
            return float(fun(base + Q @ y))

        try:
            r = optimize.minimize(f, np.zeros(Q.shape[1]), jac=lambda y: Q.T @ jac(base + Q @ y),
                                  hess=lambda y: Q.T @ hess(base + Q @ y) @ Q, method="trust-exact",
                                  options={"gtol": 1e-13, "maxiter": 500})
        except (ValueError, np.linalg.LinAlgError):
            return float("nan")
        return float(r.fun) - L0

    # the null direction may be badly scaled (e.g. mostly a large output weight): grow the step until the
    # relaxed loss changes by more than rounding
    for t in (probe, 10 * probe, 100 * probe, 1e3 * probe, 1e4 * probe):
        pr = (relaxed(t), relaxed(-t))
        if max(abs(pr[0]), abs(pr[1])) > 1e-9 * max(1.0, abs(L0)):  # above the relaxation's noise (~1e-10)
            break
    if not np.all(np.isfinite(pr)):
        return "degenerate (probe failed)", gn, ev, pr
    kind = "degenerate minimum" if min(pr) > -1e-12 else "degenerate saddle"
    if kind == "degenerate minimum" and L0 <= global_loss + gap_tol:
        kind = "global minimum"
    return kind, gn, ev, pr


@dataclass(frozen=True)
class SetSegment:
    """A piece of an elimination set (free-coordinate interval along a ray) and its fate.

    fate : ``"passable ghost"`` (slow O(alpha^2) drift to the global minimum), ``"trap"`` (slow drift to a
    certified spurious minimum), ``"persistent singularity"`` (critical points on the set for every
    alpha), ``"left at O(1) rate"`` (not critical at alpha = 0: the flow leaves the set at once);
    law : the passage law or the location; target : the free coordinate the drift ends at (nan if none).
    """

    lo: float
    hi: float
    fate: str
    law: str = ""
    target: float = float("nan")


@dataclass(frozen=True, eq=False)
class EliminationFate:
    """The fate of ``{w_i = 0}`` or ``{J_i = 0}`` under the skips of ``spec`` at skip strength ``alpha``
    (:func:`elimination_fate`)."""

    spec: ModelSpec
    unit: int
    which: str
    alpha: float
    whole_set_critical: bool
    critical_points: tuple[CriticalPoint, ...]
    segments: tuple[SetSegment, ...]
    global_loss: float
    profile: dict = field(default_factory=dict)
    notes: tuple[str, ...] = field(default=())

    def table(self) -> list[dict]:
        """Rows ``{segment, fate, law}`` and ``{point, kind, loss gap, lambda_min}`` for reports."""
        rows = [{"segment": f"({s.lo:.4g}, {s.hi:.4g})", "fate": s.fate, "law": s.law} for s in self.segments]
        rows += [{"point": np.round(p.free, 6).tolist(), "kind": p.kind, "loss_gap": p.loss_gap,
                  "grad_norm": p.grad_norm, "lambda_min": float(p.hessian_eigenvalues[0])}
                 for p in self.critical_points]
        return rows


def _directions(N: int, n_dirs: int, seed: int) -> np.ndarray:
    if N == 1:
        return np.array([[1.0], [-1.0]])
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n_dirs, N))
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def elimination_fate(spec: ModelSpec, unit: int = 0, which: str = "w", alpha: float = 0.01,
                     r_max: float = 6.0, n_grid: int = 121, n_dirs: int = 3, seed: int = 0,
                     global_loss: float | None = None) -> EliminationFate:
    r"""Classify the elimination set ``{w_i = 0}`` (``which="w"``) or ``{J_i = 0}`` (``"J"``) of unit
    ``unit`` under the skips ``spec.skip_directions`` at skip strength ``alpha > 0``.

    ``{w_i = 0}`` (free ``J_i``).  With ``w_i = 0`` the unit is off, its skip included, so on the set
    ``dL/dJ_i = 0`` and ``dL/dw_i = -h_alpha(J_i)``, ``h_alpha(J) = E[r_alpha (g(J.x) + alpha s_i.x)]``
    (``r_alpha`` the residual of the other units at their own best fit with skips, ``theta'_alpha``).
    Critical points on the set are the zeros of ``h_alpha`` (isolated for N = 1, an (N-1)-dimensional
    surface for N >= 2), found along ``n_dirs`` rays ``J = r e`` (``e = +-1`` for N = 1); in the
    ``(w_i, J_i)`` block the Hessian is ``[[E[g^2], -h'], [-h', 0]]``, so each is a saddle unless
    ``h_alpha' = 0`` there.  When the whole set is critical at ``alpha = 0`` (a realisable parent,
    ``r* = 0``) it is a line of minima; skips make it a slow manifold with ``w_i = O(alpha)`` and the
    reduced flow ``dJ_i/dt = -L_red'(J_i)`` (``L_red`` the loss minimised over every coordinate but
    ``J_i``: envelope theorem), ``L_red = L_min + O(alpha^2)``: an ``O(alpha^2)`` drift along the set to
    the minima of ``L_red``, each certified (:func:`classify_critical_point`) as the global minimum or a
    trap; passage ``alpha^2 tau = int dJ / Phi'(J)``, ``Phi = -(L_red - L_red(0)) / alpha^2``.

    ``{J_i = 0}`` (free ``w_i``; odd g).  On the set the unit is a pure skip unit ``alpha w_i s_i.x``:
    ``dL/dJ_i = -w_i g'(0) E[r x]``, ``dL/dw_i = -alpha s_i.E[r x]``.  The point is the constrained minimum
    over everything but ``J_i`` (``J_i = 0`` held); it is critical when ``E[r x] = 0`` there (for N = 1 the
    free ``w_i`` sets the linear read-out, so it always is), and degenerate (the exchange
    ``w_i g'(0) dJ_i + alpha s_i dw_i = 0`` between the two linear read-outs is a null direction); the
    probe along that direction decides minimum or saddle.

    Returns an :class:`EliminationFate` (``profile``: the ray grid, ``h_alpha`` and, for a whole-set-
    critical ``{w_i = 0}``, ``L_red`` and the offset ``w_i``).
    """
    from ghostsing.analytic.manifold_coords import elimination
    from ghostsing.analytic.manifold_fit import elimination_critical_set

    if not isinstance(spec, ModelSpec):
        raise TypeError(f"spec must be a ModelSpec, got {type(spec).__name__}")
    if which not in ("w", "J"):
        raise ValueError(f"which={which!r}; allowed: 'w' ({{w_i = 0}}) or 'J' ({{J_i = 0}})")
    if not (np.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha={alpha!r}; allowed: a finite float > 0")
    if spec.activation not in ("erf", "linear"):
        raise ValueError(f"activation={spec.activation!r}; allowed: erf, linear")
    K, N = spec.K, spec.N
    i = int(unit)
    plain = spec.replace(alpha=0.0)
    ch = elimination(plain, i, which)
    fit = best_fit(ch.parent_spec, seed=seed)
    aspec = spec.replace(alpha=float(alpha))
    model = derive(aspec).compile()
    fun, jac, hess = loss_functions(model)
    if global_loss is None:
        global_loss = global_minimum(aspec, seed=seed).loss
    others = [k for k in range(K) if k != i]
    wi = i
    Ji = [K + i * N + n for n in range(N)]

    def embed(parent: np.ndarray, w_i: float, J_i: np.ndarray) -> np.ndarray:
        pw, pJ = parent[:K - 1], parent[K - 1:].reshape(K - 1, N)
        w = np.zeros(K)
        J = np.zeros((K, N))
        w[others], J[others] = pw, pJ
        w[i], J[i] = w_i, J_i
        return aspec.pack(w, J)

    notes: list[str] = []
    points: list[CriticalPoint] = []
    segs: list[SetSegment] = []
    profile: dict = {}

    def certify(th: np.ndarray) -> CriticalPoint:
        kind, gn, ev, pr = classify_critical_point(model, th, global_loss)
        w, J = aspec.split(th)
        free = J[i].copy() if which == "w" else np.array([w[i]])
        off = np.array([w[i]]) if which == "w" else J[i].copy()
        return CriticalPoint(th, free, off, float(fun(th)), gn, ev, kind, float(fun(th)) - global_loss, pr)

    if which == "w":
        if N == 1:
            whole = elimination_critical_set(ch, fit).whole_line
        else:
            whole = bool(fit.loss - spec.sigma**2 / 2 < 1e-12)
        # the parent at its own best fit with skips (unit i off: its J_i does not matter)
        th0 = constrained_minimum(model, embed(fit.theta, 0.0, np.full(N, 0.5)), [wi, *Ji])
        parent_a = np.delete(th0, [wi, *Ji])
        rs = np.concatenate([np.geomspace(1e-4, 0.9 * r_max / n_grid, 25), np.linspace(r_max / n_grid, r_max,
                                                                                          n_grid)])
        dirs = _directions(N, n_dirs, seed)
        h = np.zeros((len(dirs), rs.size))
        for d, e in enumerate(dirs):
            for k, r in enumerate(rs):
                h[d, k] = -jac(embed(parent_a, 0.0, r * e))[wi]
        profile.update({"r": rs, "directions": dirs, "h_alpha": h})
        roots = []
        for d, e in enumerate(dirs):
            for k in np.flatnonzero(np.sign(h[d, :-1]) * np.sign(h[d, 1:]) < 0):
                r = optimize.brentq(lambda s, e=e: -jac(embed(parent_a, 0.0, s * e))[wi], rs[k], rs[k + 1],
                                    xtol=1e-14)
                roots.append(r * e)
        for J in roots:
            th = local_newton(model, embed(parent_a, 0.0, J))
            points.append(certify(th))
        if not whole:
            notes.append("not a set of critical points at alpha = 0 (the parent is not realisable): the flow "
                         "leaves it at the O(1) rate dw_i/dt = h_0(J_i) except at the zeros of h_alpha")
            for e in dirs:
                segs.append(SetSegment(0.0, float(r_max), "left at O(1) rate",
                                       f"direction {np.round(e, 3).tolist()}: w_i' = h_alpha(J_i) != 0 "
                                       "off the critical points"))
            if points:
                segs.append(SetSegment(float("nan"), float("nan"), "persistent singularity",
                                       f"{len(points)} critical point(s) on the set at the zeros of h_alpha "
                                       f"({', '.join(sorted({p.kind for p in points}))}); they move by "
                                       "O(alpha) and persist"))
        elif N == 1:
            # slow manifold near the set: L_red(J) = min over everything but J_i, kept where w_i = O(alpha)
            grid = np.linspace(-r_max, r_max, 2 * n_grid + 1)
            Lr = np.full(grid.size, np.nan)
            off = np.full(grid.size, np.nan)
            for half in (range(n_grid, grid.size), range(n_grid, -1, -1)):
                y = embed(parent_a, 0.0, np.array([grid[n_grid]]))
                for k in half:
                    y = y.copy()
                    y[Ji[0]] = grid[k]
                    y = constrained_minimum(model, y, Ji)
                    Lr[k], off[k] = fun(y), y[wi]
            near = np.abs(off) <= 10 * alpha
            Phi = -(Lr - Lr[n_grid]) / alpha**2
            profile.update({"J": grid, "L_red": Lr, "w_offset": off, "Phi": Phi, "on_slow_manifold": near})
            dL = Lr - Lr[n_grid]
            law = (f"line of global minima at alpha = 0 (realisable parent), v1 = 0; skips lift it by "
                   f"O(alpha^2): L_red - L_red(0) in [{np.nanmin(dL):.3g}, {np.nanmax(dL):.3g}] at alpha = "
                   f"{alpha:g}; w_i = O(alpha) on {near.mean():.0%} of the scanned J; {len(points)} critical "
                   "point(s) stay on the set (zeros of h_alpha)")
            segs.append(SetSegment(-r_max, r_max, "persistent singularity" if points else "slow drift", law))
            notes.append("whole set critical at alpha = 0 (realisable parent): v1 = 0, drift along the set "
                         "O(alpha^2)")
        else:
            notes.append("whole set critical at alpha = 0 with N >= 2: the reduced flow is not scanned")
    else:
        if spec.activation == "linear":
            raise ValueError("{J_i = 0} of a linear unit: the unit is linear for every J_i; allowed: erf")
        x = embed(fit.theta, 0.0, np.zeros(N))
        y = None
        best = None
        for w0 in (-3.0, -1.0, 1.0, 3.0):
            x[wi] = w0
            cand = constrained_minimum(model, x, Ji)
            if best is None or fun(cand) < best:
                y, best = cand, fun(cand)
        cp = certify(y)
        points.append(cp)
        c = -jac(y)[Ji]
        corr_zero = bool(np.linalg.norm(c) < 1e-9)
        whole = False
        if cp.kind == "not critical":
            segs.append(SetSegment(-np.inf, np.inf, "left at O(1) rate",
                                   f"no critical point found on the set: |dL/dJ_i| = "
                                   f"{np.linalg.norm(c):.3g} at the best w_i = {y[wi]:.4g} (for N >= 2 "
                                   "one w_i cannot zero the N components of E[r x])"))
        else:
            wstar = float(y[wi])
            fate = {"degenerate minimum": "trap (degenerate)", "trap": "trap",
                    "global minimum": "global minimum", "degenerate saddle": "persistent singularity",
                    "saddle": "persistent singularity", "degenerate (probe failed)": "persistent singularity"}
            segs.append(SetSegment(-np.inf, np.inf, fate[cp.kind],
                                   f"one critical point at w_i = {wstar:.6g} ({cp.kind}, loss gap "
                                   f"{cp.loss_gap:.3g}); elsewhere dL/dJ_i = -w_i g'(0) E[r x] != 0", wstar))
        notes.append(f"E[r x] at the constrained minimum is {'0' if corr_zero else 'non-zero'}")
    return EliminationFate(spec, i, which, float(alpha), bool(whole), tuple(points), tuple(segs),
                           float(global_loss), profile, tuple(notes))


def local_newton(model, x0: np.ndarray, gtol: float = 1e-13, iters: int = 30) -> np.ndarray:
    """Newton's method on ``grad L = 0`` (any critical point, saddles included) from ``x0``, least-squares
    steps, stopped when ``|grad L|`` stops decreasing."""
    _, jac, hess = loss_functions(model)
    x = np.asarray(x0, dtype=np.float64).copy()
    for _ in range(iters):
        g = jac(x)
        if np.linalg.norm(g) < gtol:
            break
        xn = x + np.linalg.lstsq(hess(x), -g, rcond=1e-14)[0]
        if not np.all(np.isfinite(xn)) or np.linalg.norm(jac(xn)) >= np.linalg.norm(g):
            break
        x = xn
    return x
