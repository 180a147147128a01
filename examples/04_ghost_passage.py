"""A trajectory through the ghost of the overlap line

Start two erf units next to the attracting part of the overlap line (z = 2, |u| = 1e-3) of the plain
network and of the network with skips alpha = 0.1.  Without skips the trajectory stops on the line (the
Milnor attractor: the loss stays at the one-unit fit's); with skips it slows down near the old line and
then leaves it.  Checked: the plain trajectory ends with a gradient below 1e-6 at the one-unit loss, and
the loss of the skip trajectory falls below it.
"""

import numpy as np

from ghostsing import ModelSpec
from ghostsing.analytic import derive
from ghostsing.analytic.manifolds import best_fit, overlap, parent_spec
from ghostsing.simulate import integrate

plain = ModelSpec(K=2, M=2, N=1, activation="erf", v=(10.0, 5.0), B=[[0.4], [4.0]])
skip = plain.replace(alpha=0.1, skip=[[1.0], [0.5]])
chart = overlap(plain)
fit = best_fit(parent_spec(plain))
xi0 = np.concatenate([fit.theta, [2.0], [1e-3]])  # (w, Jbar; z; u)
theta0 = chart.to_theta(xi0)
t = np.array([0.0, 1e2, 1e3, 1e4])
for name, spec in (("plain", plain), ("alpha = 0.1", skip)):
    model = derive(spec).compile()
    sol = integrate(model, theta0, t, rtol=1e-9, atol=1e-12)
    losses = [model.loss(np.ascontiguousarray(y)) for y in sol.y[0]]
    grad = np.linalg.norm(model.flow(np.ascontiguousarray(sol.y[0, -1])))
    print(f"{name:12s} L(t) at t = {t.tolist()}: {np.round(losses, 6).tolist()}, "
          f"|grad L| at the end {grad:.1e}")
    if spec is plain:
        assert grad < 1e-6 and abs(losses[-1] - fit.loss) < 1e-6
    else:
        assert losses[-1] < fit.loss - 1e-3
print(f"one-unit fit loss {fit.loss:.6f}")
