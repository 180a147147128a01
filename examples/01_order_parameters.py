"""The loss and flow in order parameters

The two-unit erf student with identity skips, written in Q = J.J, R = J.B, T = B.B and the skip overlaps
C = J.s, with the kernel I2(a, b, c) = (2/pi) asin(c / sqrt((1+a)(1+b))) printed by name.  Checked: at a
random point the order-parameter loss and flow equal the generated Numba loss and flow of the weight form.
"""

import numpy as np

from ghostsing import ModelSpec
from ghostsing.analytic import derive
from ghostsing.analytic.order_form import order_parameter_form

spec = ModelSpec(K=2, M=2, N=2, activation="erf", alpha=0.5)
F = order_parameter_form(spec)
print("L =", F.loss)
print("dw_1/dt =", F.flow_w[0])
print("dQ_12/dt has", len(str(F.ode[F.Q[0, 1]])), "characters; dJ_1/dt is a combination of",
      ", ".join(v.name for v in F.flow_J[0]))

theta = np.random.default_rng(0).normal(size=spec.n_params)
got = F.evaluate(theta)
model = derive(spec).compile()
err_loss = abs(got["loss"] - model.loss(theta))
err_flow = float(np.max(np.abs(got["flow"] - model.flow(theta))))
print(f"at a random point: |L_order - L_weights| = {err_loss:.1e}, max |flow difference| = {err_flow:.1e}")
assert err_loss < 1e-12 and err_flow < 1e-12
