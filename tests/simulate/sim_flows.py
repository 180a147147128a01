"""Small hand-written Numba flows with known solutions for the integrator tests."""

from __future__ import annotations

import numpy as np
from numba import njit

# y' = A y with A = [[-1, 2], [-2, -1]]: y(t) = e^{-t} R(-2t) y0 (a damped rotation)
A_ROT = np.array([[-1.0, 2.0], [-2.0, -1.0]])


@njit(cache=True)
def rot_flow(y):
    return np.array([-y[0] + 2.0 * y[1], -2.0 * y[0] - y[1]])


def rot_exact(t, y0):
    c, s = np.cos(2 * t), np.sin(2 * t)
    return np.exp(-t) * np.array([c * y0[0] + s * y0[1], -s * y0[0] + c * y0[1]])


# gradient flow of L = (y0^2 + 4 y1^2)/2 (in-place form): y(t) = (y0 e^{-t}, y1 e^{-4t})
@njit(cache=True)
def quad_flow_into(y, out):
    out[0] = -y[0]
    out[1] = -4.0 * y[1]


@njit(cache=True)
def quad_loss(y):
    return 0.5 * (y[0] ** 2 + 4.0 * y[1] ** 2)


@njit(cache=True)
def quad_jac(y):
    return np.array([[-1.0, 0.0], [0.0, -4.0]])


@njit(cache=True)
def radius(y):
    return np.sqrt(y[0] ** 2 + y[1] ** 2)


# stiff linear system y' = diag(-1, -1e4) y (Jacobian in place)
@njit(cache=True)
def stiff_flow(y):
    return np.array([-y[0], -1.0e4 * y[1]])


@njit(cache=True)
def stiff_jac_into(y, out):
    out[0, 0] = -1.0
    out[0, 1] = 0.0
    out[1, 0] = 0.0
    out[1, 1] = -1.0e4


# y' = y^2: blows up at t = 1/y0
@njit(cache=True)
def blowup_flow(y):
    return y * y


# a flow that turns NaN once y[0] > 2 (y' = 1)
@njit(cache=True)
def nan_flow(y):
    out = np.ones_like(y)
    if y[0] > 2.0:
        out[:] = np.nan
    return out
