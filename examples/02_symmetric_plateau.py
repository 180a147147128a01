"""The symmetric plateau of on-line SGD (Saad & Solla)

Large-N order-parameter ODEs of two erf units learning two: at Q_kk = Q_kl = 1/3, R = 1/sqrt 6 the O(lr)
drift vanishes and the generalisation error is the closed form eps* = 1/3 - (4/pi) asin(1/4) = 0.011611;
the largest eigenvalue of the drift Jacobian divided by the learning rate is the escape rate (published
0.0658).  Checked: both numbers against those values.
"""

import math

import numpy as np

from ghostsing.analytic import order_parameter_ode, symmetric_fixed_point

lr = 0.05
ode = order_parameter_ode(K=2, M=2, activation="erf", lr=lr, train_second_layer=False)
y = symmetric_fixed_point(ode)
idx = ode.dynamic_indices
eps = ode.generalisation_error(y)
closed = 1 / 3 - 4 / math.pi * math.asin(1 / 4)
J = ode.jacobian(y, drift_only=True)[np.ix_(idx, idx)]
rate = float(np.max(np.linalg.eigvals(J).real)) / lr
print(f"eps* = {eps:.9f} (closed form {closed:.9f}); max |drift| = {np.max(np.abs(ode.drift(y)[idx])):.1e}")
print(f"escape rate / lr = {rate:.5f} (published 0.0658)")
assert abs(eps - closed) < 1e-12 and abs(rate - 0.0658) < 1e-4
