"""The normal form near the overlap line

The flow of two erf units near the overlap line, expanded in the transverse coordinate u = J_1 - J_2 and
in the skip strength alpha at the best one-unit fit: du/dt = 2 (1 - z^2) K u + ..., dz/dt = c_01(z) alpha
+ c_20(z) u^2 + ...  Checked: the u-coefficient against Amari's K and dz/dt's alpha-coefficient at z = 0
against the slow-manifold drift v1.
"""

from ghostsing import ModelSpec
from ghostsing.analytic.normal_form import overlap_normal_form

spec = ModelSpec(K=2, M=2, N=1, activation="erf", v=(10.0, 5.0), B=[[0.4], [4.0]],
                 skip_directions=[[1.0], [0.5]])
nf = overlap_normal_form(spec, order=2)
print(nf.text())
for z in (-2.0, 0.0, 2.0):
    c10 = nf.evaluate("u", 1, 0, z)
    print(f"z = {z:+.1f}: c_10 = {c10:+.10f}, 2 (1 - z^2) K = {2 * (1 - z * z) * nf.K:+.10f}")
    assert abs(c10 - 2 * (1 - z * z) * nf.K) < 1e-10
if nf.v1 is not None:
    print(f"c_01(0) = {nf.evaluate('z', 0, 1, 0.0):.12f}, slow-manifold drift v1 = {nf.v1:.12f}")
    assert abs(nf.evaluate("z", 0, 1, 0.0) - nf.v1) < 1e-10
