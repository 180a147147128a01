"""Through the ghost, or into the trap: the two halves of a former Milnor segment

Two erf units next to the attracting part of the overlap line (|z| > 1, |u| = 1e-3) of a plain network
and of the same network with skips of strength alpha = 0.1 (directions s = (1, 0.5)).  Without skips both
starts stop on the line (the Milnor attractor).  With skips the state drifts along the former line at
speed alpha v1: from z = -2 it crosses back to |z| = 1 and leaves (a passable ghost; at alpha = 0.1 it
then settles in a minimum with loss 1e-5, one of the near-global minima that skips of this strength
create); from z = +2 it drifts outward into a spurious minimum (a trap) whose loss the alpha -> 0 limit
predicts.  Checked: the plain runs end on the line at the one-unit loss; the skip run from z = -2 ends
below 1e-4; the one from z = +2 ends at the trap's loss.
"""

import numpy as np

from ghostsing import ModelSpec
from ghostsing.analytic import derive
from ghostsing.analytic.ghost_fate import overlap_fate
from ghostsing.analytic.manifolds import best_fit, overlap, parent_spec
from ghostsing.simulate import StepControl, integrate

plain = ModelSpec(K=2, M=2, N=1, activation="erf", v=(10.0, 5.0), B=[[0.4], [4.0]])
skip = plain.replace(alpha=0.1, skip_directions=[[1.0], [0.5]])
fate = overlap_fate(skip)
for row in fate.table():
    print(row)
chart = overlap(plain)
fit = best_fit(parent_spec(plain))
t = np.array([0.0, 1e3, 1e5, 1e6])
for z0 in (-2.0, 2.0):
    theta0 = chart.to_theta(np.concatenate([fit.theta, [z0], [1e-3]]))  # (w, Jbar; z; u)
    for name, spec in (("plain", plain), ("alpha = 0.1", skip)):
        model = derive(spec).compile()
        sol = integrate(model, theta0, t, rtol=1e-10, atol=1e-12, method="auto",
                        control=StepControl(max_step=2.0))
        losses = [model.loss(np.ascontiguousarray(y)) for y in sol.y[0]]
        print(f"z0 = {z0:+g}, {name:12s} L(t) at t = {t.tolist()}: {np.array(losses).round(8).tolist()}")
        if spec is plain:
            assert abs(losses[-1] - fit.loss) < 1e-6
        elif z0 < 0:
            assert losses[-1] < 1e-4
        else:
            assert abs(losses[-1] - fate.scaled_trap.loss) < 1e-8
print(f"one-unit fit loss {fit.loss:.6f}; trap loss (alpha -> 0 limit) {fate.scaled_trap.loss:.8f}")
