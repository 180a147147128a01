r"""SGD noise along the former overlap line: noise-driven against drift-driven passage.

Under on-line SGD with rate ``eta`` (gradient-flow time ``t = steps * eta``) the state near the former
line fluctuates transversally: ``u = J_i - J_j`` is kicked by the noise and held by the transverse
curvature, so ``<u^2> = O(eta)``; through the ``u^2`` terms of the flow this gives ``z`` a mean drift
``eta q(z)`` even at ``alpha = 0``, where gradient flow stops on the Milnor segment.  To leading order the
two drifts add::

    dz/dt = alpha v1 + eta q(z),      tau(alpha, eta) = int_{z0}^{z_b} dz / (alpha v1 + eta q(z)),

so ``eta tau = G(alpha v1 / eta)`` with ``G(r) = int dz / (r + q(z))``: a single scaling function joins
the noise-driven regime (``alpha v1 << eta |q|``: ``tau ~ 1/eta``) and the drift-driven one
(``alpha v1 >> eta |q|``: ``tau -> (z_b - z0)/(alpha v1)``).

**The noise drift, derived** (:func:`noise_drift_theory`).  On the line ``J_i = J_j`` the two units
receive the same per-sample gradient, so ``d = w_i - w_j`` gets no noise and, at ``alpha = 0``, no
deterministic drift: ``d`` moves only through the second-order response of its velocity
``F_d = F_{w_i} - F_{w_j}`` to the fluctuations of the other coordinates.  With ``SGD`` written as
``d theta = F dt + sqrt(eta Sigma) dW`` (``Sigma`` the per-sample gradient covariance, ``F = -grad L``),
the fluctuations in the subspace orthogonal to the line's tangent ``tau`` are an Ornstein–Uhlenbeck
process with Jacobian ``A = Q^T (dF) Q`` (``Q`` an orthonormal basis of ``tau^perp``) and stationary
covariance ``eta C1``, ``A C1 + C1 A^T + Q^T Sigma Q = 0`` (Lyapunov), so::

    eta q_d = (eta / 2) tr(Q^T (d^2 F_d) Q C1),        q(z) = q_d / w*     (z = d / w, w -> w*).

``Sigma`` is computed by Gauss–Hermite quadrature (N = 1), ``d^2 F_d`` by central differences of the
generated Jacobian.  :func:`noise_drift_profile` measures ``q`` from SGD instead, as an independent check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import integrate as sp_integrate

from ghostsing.analytic.minima import BestFit
from ghostsing.models import ModelSpec
from ghostsing.simulate.ghost_passage import line_starts
from ghostsing.simulate.sgd import online_sgd_spec


def free_coordinate_of(theta: np.ndarray, pair: tuple[int, int] = (0, 1)) -> np.ndarray:
    """``z = (w_i - w_j)/(w_i + w_j)`` for parameter arrays ``(..., P)``."""
    i, j = pair
    return (theta[..., i] - theta[..., j]) / (theta[..., i] + theta[..., j])


def crossing_times(t: np.ndarray, z: np.ndarray, level: float) -> np.ndarray:
    """First time each row of ``z (S, T)`` crosses ``level`` (linear interpolation; NaN if never)."""
    out = np.full(z.shape[0], np.nan)
    s0 = np.sign(z[:, 0] - level)
    for r in range(z.shape[0]):
        idx = np.flatnonzero(np.sign(z[r] - level) != s0[r])
        if idx.size:
            k = idx[0]
            z1, z2 = z[r, k - 1], z[r, k]
            out[r] = t[k - 1] + (level - z1) / (z2 - z1) * (t[k] - t[k - 1])
    return out


@dataclass(frozen=True)
class NoiseDrift:
    """``q(z)``: the mean drift of ``z`` per unit ``eta`` at ``alpha = 0``, a polynomial fitted to the
    finite-difference velocity of the seed-averaged ``z(t)`` on ``[z_lo, z_hi]``."""

    coef: np.ndarray
    z_lo: float
    z_hi: float
    eta: float
    n_seeds: int

    def __call__(self, z: np.ndarray | float) -> np.ndarray:
        return np.polyval(self.coef, z)


def noise_drift_profile(spec: ModelSpec, fit: BestFit, z0: float, z_b: float, eta: float, t_end: float,
                        n_seeds: int = 8, eps: float = 1e-3, degree: int = 3, seed: int = 0,
                        n_save: int = 400) -> NoiseDrift:
    """Measure ``q(z)`` from on-line SGD at ``alpha = 0`` (the spec's skips unused), starts at ``z0``."""
    plain = spec.replace(alpha=0.0)
    th0 = line_starts(plain, fit, z0, eps, n_seeds, np.random.default_rng(seed))
    ts = np.linspace(0.0, t_end, n_save)
    res = online_sgd_spec(plain, th0, ts, lr=eta, seeds=list(range(seed, seed + n_seeds)))
    z = free_coordinate_of(res.theta).mean(axis=0)
    lo, hi = sorted((z0, z_b))
    keep = (z > lo) & (z < hi)
    zc = 0.5 * (z[1:] + z[:-1])
    v = np.diff(z) / np.diff(res.t)
    sel = keep[1:] & keep[:-1]
    if sel.sum() < degree + 2:
        raise ValueError(f"too few saves between z0={z0} and z_b={z_b} (t_end={t_end}); allowed: a t_end "
                         "long enough for z to move")
    coef = np.polyfit(zc[sel], v[sel] / eta, degree)
    return NoiseDrift(coef, float(zc[sel].min()), float(zc[sel].max()), float(eta), int(n_seeds))


def _activation_and_slope(activation: str):
    from scipy.special import erf

    if activation == "erf":
        return (lambda u: erf(u / np.sqrt(2.0))), (lambda u: np.sqrt(2.0 / np.pi) * np.exp(-u * u / 2))
    if activation == "linear":
        return (lambda u: u), (lambda u: np.ones_like(u))
    raise ValueError(f"activation={activation!r}; allowed: erf, linear (a smooth g with a Hessian)")


def _line_point_quadrature(spec: ModelSpec, fit: BestFit, z: float, pair: tuple[int, int], n_nodes: int):
    r"""The point ``theta`` of the former overlap line at ``z`` (plain model, alpha = 0), its compiled
    model, ``w``, ``J``, the normalised Gauss–Hermite nodes and weights ``(x, wq)`` of
    :math:`E_{x_1 \sim N(0, 1)}` and the error :math:`e(x_1) = \sum_k w_k g(J_{k1} x_1) -
    \sum_m v_m g(B_{m1} x_1)` at the nodes (teacher and student on ``e_1``).
    Returns ``(plain, model, theta, w, J, x, wq, e)``."""
    from ghostsing.analytic.loss import derive
    from ghostsing.analytic.manifold_coords import overlap

    plain = spec.replace(alpha=0.0)
    g, _ = _activation_and_slope(spec.activation)
    model = derive(plain).compile()
    th = np.ascontiguousarray(overlap(plain, *pair).embed(fit.theta, [z]))
    w, J = plain.split(th)
    x, wq = np.polynomial.hermite_e.hermegauss(n_nodes)
    wq = wq / wq.sum()
    y = sum(plain.v[m] * g(plain.B[m, 0] * x) for m in range(plain.M))
    e = sum(w[k] * g(J[k, 0] * x) for k in range(plain.K)) - y
    return plain, model, th, w, J, x, wq, e


def _pair_velocity_hessian(model, th: np.ndarray, i: int, j: int, h: float) -> np.ndarray:
    r"""Symmetrised central-difference Hessian of the pair velocity :math:`F_i - F_j` at ``th``:
    :math:`H_{kl} = \partial_k (F_i - F_j)_l` with :math:`\partial_k \approx (\cdot(\theta + h e_k) -
    \cdot(\theta - h e_k))/2h`, then :math:`(H + H^T)/2` (``F`` is the flow, ``model.jacobian`` its
    Jacobian)."""
    P = th.size
    H = np.zeros((P, P))
    for k in range(P):
        ep, em = th.copy(), th.copy()
        ep[k] += h
        em[k] -= h
        Jp, Jm = model.jacobian(ep), model.jacobian(em)
        H[k] = ((Jp[i] - Jp[j]) - (Jm[i] - Jm[j])) / (2 * h)
    return (H + H.T) / 2


def noise_drift_at(spec: ModelSpec, fit: BestFit, z: float, pair: tuple[int, int] = (0, 1),
                   n_nodes: int = 160, h: float = 1e-5) -> float:
    """``q(z)`` of the module docstring at one point ``z`` of the former overlap line (alpha = 0, N = 1)."""
    from scipy.linalg import null_space, solve_continuous_lyapunov

    if spec.N != 1:
        raise ValueError(f"noise_drift_theory integrates over x by Gauss-Hermite quadrature for N = 1; got "
                         f"N={spec.N}; allowed: N = 1")
    plain, model, th, w, J, x, wq, e = _line_point_quadrature(spec, fit, z, pair, n_nodes)
    g, gp = _activation_and_slope(spec.activation)
    grad = np.concatenate([np.stack([g(J[k, 0] * x) for k in range(spec.K)]),
                           np.stack([w[k] * gp(J[k, 0] * x) * x for k in range(spec.K)])])
    sigma = (grad * e * e * wq) @ grad.T
    jac = model.jacobian(th)
    i, j = pair
    tau = np.zeros(spec.n_params)
    tau[i], tau[j] = 1.0, -1.0
    Q = null_space(tau[None, :])
    C1 = solve_continuous_lyapunov(Q.T @ ((jac + jac.T) / 2) @ Q, -(Q.T @ sigma @ Q))
    H = _pair_velocity_hessian(model, th, i, j, h)
    return float(0.5 * np.trace(Q.T @ H @ Q @ C1) / (w[i] + w[j]))


def noise_drift_theory(spec: ModelSpec, fit: BestFit, z_lo: float, z_hi: float, n_points: int = 25,
                       degree: int = 5, pair: tuple[int, int] = (0, 1)) -> NoiseDrift:
    """:func:`noise_drift_at` on ``n_points`` of ``[z_lo, z_hi]``, as a polynomial of ``degree`` (a
    :class:`NoiseDrift` with ``eta = nan`` and ``n_seeds = 0``: derived, not measured)."""
    zs = np.linspace(z_lo, z_hi, n_points)
    qs = np.array([noise_drift_at(spec, fit, float(z), pair) for z in zs])
    return NoiseDrift(np.polyfit(zs, qs, degree), float(z_lo), float(z_hi), float("nan"), 0)


def predicted_passage(q: NoiseDrift, v1: float, z0: float, z_b: float, alpha: float, eta: float) -> float:
    """``int_{z0}^{z_b} dz / (alpha v1 + eta q(z))`` (inf where the velocity vanishes or points away)."""
    def vel(z):
        return alpha * v1 + eta * q(z)

    zs = np.linspace(z0, z_b, 201)
    if np.any(np.sign(vel(zs)) != np.sign(z_b - z0)):
        return float("inf")
    return float(sp_integrate.quad(lambda z: 1.0 / vel(z), z0, z_b, limit=200)[0])


@dataclass(frozen=True, eq=False)
class NoiseRun:
    """Measured crossing times ``tau[e, a, s]`` of ``z = z_b`` for rates ``etas[e]``, skip strengths
    ``alphas[a]`` and seeds ``s`` (NaN: not by ``t_end``), with the predictions ``pred[e, a]``."""

    etas: np.ndarray
    alphas: np.ndarray
    tau: np.ndarray
    pred: np.ndarray
    t_end: np.ndarray


def noise_passage_grid(spec: ModelSpec, fit: BestFit, v1: float, q: NoiseDrift, z0: float, z_b: float,
                       etas: Sequence[float], alphas: Sequence[float], n_seeds: int = 6, eps: float = 1e-3,
                       seed: int = 100, n_save: int = 300, t_factor: float = 3.0,
                       batch_size: int = 1) -> NoiseRun:
    """On-line SGD from ``z0`` for every ``(eta, alpha)``: measured crossing times of ``z_b`` and the
    predictions of :func:`predicted_passage` (each run lasts ``t_factor`` times its prediction).

    With mini-batches of ``b`` samples the gradient covariance is ``Sigma / b``, so the noise drift is
    ``eta q / b``: the prediction uses the effective rate ``eta / b`` in the noise term."""
    E, A = len(etas), len(alphas)
    tau = np.full((E, A, n_seeds), np.nan)
    pred = np.full((E, A), np.nan)
    t_end = np.full((E, A), np.nan)
    rng = np.random.default_rng(seed)
    for e, eta in enumerate(etas):
        for a, alpha in enumerate(alphas):
            pred[e, a] = predicted_passage(q, v1, z0, z_b, alpha, eta / batch_size)
            if not np.isfinite(pred[e, a]):
                continue
            t_end[e, a] = t_factor * pred[e, a]
            s = spec.replace(alpha=float(alpha))
            th0 = line_starts(s, fit, z0, eps, n_seeds, rng)
            ts = np.linspace(0.0, t_end[e, a], n_save)
            res = online_sgd_spec(s, th0, ts, lr=float(eta), seeds=list(range(seed, seed + n_seeds)),
                                  batch_size=batch_size)
            tau[e, a] = crossing_times(res.t, free_coordinate_of(res.theta), z_b)
    return NoiseRun(np.asarray(etas, float), np.asarray(alphas, float), tau, pred, t_end)


# ====================================================================== the input dimension N
def embedded_spec(spec: ModelSpec, N: int) -> ModelSpec:
    """The N = 1 model ``spec`` embedded in ``N`` input dimensions: teacher directions and skips padded with
    zeros (the teacher and the skips live on ``e_1``; the other ``N - 1`` inputs are pure noise)."""
    if spec.N != 1:
        raise ValueError(f"embedded_spec needs an N = 1 spec, got N={spec.N}; allowed: N = 1")
    if N < 1:
        raise ValueError(f"N={N}; allowed: N >= 1")
    B = np.zeros((spec.M, N))
    S = np.zeros((spec.K, N))
    B[:, 0], S[:, 0] = spec.B[:, 0], spec.skip_directions[:, 0]
    return spec.replace(N=N, B=B, skip_directions=S)


def embedded_fit(fit: BestFit, N: int) -> BestFit:
    """The best (K-1)-unit fit of an N = 1 teacher, embedded in ``N`` dimensions (``J`` padded with zeros;
    it stays the best fit: the extra inputs carry no signal)."""
    import dataclasses

    w, J = fit.spec.split(fit.theta)
    Jn = np.zeros((J.shape[0], N))
    Jn[:, 0] = J[:, 0]
    pspec = fit.spec.replace(N=N, B=np.pad(fit.spec.B, ((0, 0), (0, N - 1))),
                             skip_directions=np.pad(fit.spec.skip_directions, ((0, 0), (0, N - 1))))
    return dataclasses.replace(fit, spec=pspec, theta=pspec.pack(w, Jn))


def neutral_coupling(spec: ModelSpec, fit: BestFit, z: float, pair: tuple[int, int] = (0, 1),
                     h: float = 1e-5, tol: float = 1e-9) -> dict:
    """Why the noise drift does not depend on N for an embedded teacher: at ``z`` on the line, the
    transverse Jacobian ``A = Q^T dF Q`` (``Q`` orthogonal to the line's tangent) has ``N - 1`` neutral
    directions (the components of ``u`` orthogonal to ``e_1``, Amari's ``Kmat`` eigenvalue 0), and
    ``d^2 F_d`` (``F_d = F_{w_i} - F_{w_j}``, the velocity of ``d = w_i - w_j``) vanishes on them, so their
    unconfined fluctuations do not push ``z`` at second order.  Returns ``{"eigenvalues": A's,
    "n_neutral", "coupling": max |v^T d^2F_d v'|`` over neutral eigenvectors ``v, v'``, ``"scale"``: the
    largest ``|d^2 F_d|`` entry}``."""
    from scipy.linalg import null_space

    from ghostsing.analytic.loss import derive
    from ghostsing.analytic.manifold_coords import overlap

    plain = spec.replace(alpha=0.0)
    model = derive(plain).compile()
    th = np.ascontiguousarray(overlap(plain, *pair).embed(fit.theta, [z]))
    i, j = pair
    tau = np.zeros(plain.n_params)
    tau[i], tau[j] = 1.0, -1.0
    Q = null_space(tau[None, :])
    jac = model.jacobian(th)
    A = Q.T @ ((jac + jac.T) / 2) @ Q
    ev, vec = np.linalg.eigh(A)
    H = np.zeros((plain.n_params, plain.n_params))
    for k in range(plain.n_params):
        ep, em = th.copy(), th.copy()
        ep[k] += h
        em[k] -= h
        Jp, Jm = model.jacobian(ep), model.jacobian(em)
        H[k] = ((Jp[i] - Jp[j]) - (Jm[i] - Jm[j])) / (2 * h)
    H = (H + H.T) / 2
    neutral = np.abs(ev) < tol * max(1.0, np.max(np.abs(ev)))
    V = Q @ vec[:, neutral]
    coupling = float(np.max(np.abs(V.T @ H @ V))) if V.shape[1] else 0.0
    return {"eigenvalues": ev, "n_neutral": int(neutral.sum()), "coupling": coupling,
            "scale": float(np.max(np.abs(H)))}


def noise_drift_embedded(spec: ModelSpec, fit: BestFit, z: float, pair: tuple[int, int] = (0, 1),
                         n_nodes: int = 160, h: float = 1e-5, tol: float = 1e-9) -> float:
    """``q(z)`` of the module docstring for a teacher embedded in N dimensions (:func:`embedded_spec`).

    On the line ``J_perp = 0`` and the error depends on ``x_1`` only; the gradient features are
    ``g(J_k x_1)``, ``w_k g'(J_k x_1) x_1`` and ``w_k g'(J_k x_1) x_n`` (``n >= 2``), so with ``x_n``
    independent standard normals the per-sample covariance ``Sigma`` is the one-dimensional one plus, for
    each ``n >= 2``, the block ``E_{x_1}[e^2 w_k w_l g'_k g'_l]`` (one-dimensional Gauss–Hermite quadrature
    stays exact).  The Lyapunov equation is solved on the non-neutral transverse subspace (the ``N - 1``
    neutral directions of :func:`neutral_coupling` are unconfined at second order and do not couple to
    ``z``)."""
    from scipy.linalg import null_space, solve_continuous_lyapunov

    if np.any(spec.B[:, 1:] != 0):
        raise ValueError("noise_drift_embedded needs a teacher on e_1 (embedded_spec); allowed: B[:, 1:] = 0")
    plain, model, th, w, J, x, wq, e = _line_point_quadrature(spec, fit, z, pair, n_nodes)
    K, N = plain.K, plain.N
    g, gp = _activation_and_slope(spec.activation)
    P = plain.n_params
    sigma = np.zeros((P, P))
    base = ([(k, g(J[k, 0] * x)) for k in range(K)]
            + [(K + k * N, w[k] * gp(J[k, 0] * x) * x) for k in range(K)])
    for a, fa in base:
        for b, fb in base:
            sigma[a, b] = np.sum(wq * e * e * fa * fb)
    for n in range(1, N):
        for k in range(K):
            for m in range(K):
                sigma[K + k * N + n, K + m * N + n] = np.sum(wq * e * e * w[k] * w[m] * gp(J[k, 0] * x)
                                                             * gp(J[m, 0] * x))
    i, j = pair
    tau = np.zeros(P)
    tau[i], tau[j] = 1.0, -1.0
    Q = null_space(tau[None, :])
    jac = model.jacobian(th)
    ev, vec = np.linalg.eigh(Q.T @ ((jac + jac.T) / 2) @ Q)
    keep = np.abs(ev) > tol * np.max(np.abs(ev))
    V = Q @ vec[:, keep]
    C1 = solve_continuous_lyapunov(np.diag(ev[keep]), -(V.T @ sigma @ V))
    H = _pair_velocity_hessian(model, th, i, j, h)
    return float(0.5 * np.trace(V.T @ H @ V @ C1) / (w[i] + w[j]))


def noise_drift_embedded_theory(spec: ModelSpec, fit: BestFit, z_lo: float, z_hi: float, n_points: int = 13,
                                degree: int = 5, pair: tuple[int, int] = (0, 1)) -> NoiseDrift:
    """:func:`noise_drift_embedded` on ``n_points`` of ``[z_lo, z_hi]`` as a polynomial (derived, not
    measured: ``eta = nan``, ``n_seeds = 0``)."""
    zs = np.linspace(z_lo, z_hi, n_points)
    qs = np.array([noise_drift_embedded(spec, fit, float(z), pair) for z in zs])
    coef = np.polyfit(zs, qs, min(degree, n_points - 1))
    return NoiseDrift(coef, float(z_lo), float(z_hi), float("nan"), 0)
