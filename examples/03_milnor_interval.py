"""Amari's K and the Milnor-attractor segment of the overlap line

Two erf units learning v = (10, 5), B = (0.4, 4) in one input dimension: the best one-unit fit embedded
into the overlap manifold J_1 = J_2 is a line of critical points parametrised by z = (w_1 - w_2)/w.
Amari's K = (w/4) E[r* g''(Jbar x) x^2] decides which part attracts: K > 0 => |z| > 1.  Checked: the
closed form of K against a one-dimensional quadrature, and the sign changes of the exact transverse
eigenvalue at z = +-1.
"""

from ghostsing import ModelSpec
from ghostsing.analytic.manifolds import milnor_interval

spec = ModelSpec(K=2, M=2, N=1, activation="erf", v=(10.0, 5.0), B=[[0.4], [4.0]])
mi = milnor_interval(spec)
print(mi.describe())
print(f"K closed form {mi.K.value:.12f}, quadrature {mi.K.quad:.12f}")
assert abs(mi.K.value - mi.K.quad) < 1e-10
assert mi.rule == "|z| > 1" and mi.certified
assert max(abs(abs(b) - 1) for b in mi.boundaries_numeric) < 1e-7
