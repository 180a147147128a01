r"""Branch-free elementary functions that LLVM can vectorise (used by the generated "lanes" functions).

Numba compiles ``math.asin`` to a call into the C library; a loop containing such a call is not
vectorised (Numba's only vector math library, Intel SVML, needs a patched LLVM that the PyPI wheels
lack).  The generated ``*_lanes_into`` functions of :mod:`ghostsing.analytic.codegen` evaluate a model
for many states at once in a loop over lanes, and call the functions here instead: plain arithmetic,
``sqrt`` (one machine instruction) and selects, all inlined, so the loop becomes SIMD code.

:func:`asin` is the FreeBSD / Sun ``e_asin.c`` algorithm (the rational approximation used by musl and
glibc) with both of its branches evaluated and one selected:

.. math::

    \arcsin x = \operatorname{sign}(x)\begin{cases}
        a + a\,R(a^2) & a = |x| < 1/2,\\
        \pi/2 - 2\,(s + s\,R(z)),\quad z = (1 - a)/2,\ s = \sqrt z & a \ge 1/2,
    \end{cases}

where :math:`R(z) = z\,p(z)/q(z)` is the Remez rational approximation of
:math:`(\arcsin\sqrt z - \sqrt z)/\sqrt z^{3}` (error below :math:`2^{-58.75}`).  Dropping the
libm's split of :math:`\pi/2` and of :math:`s` into high and low parts costs at most a few units in the
last place (``tests/test_vecmath.py`` measures the error against ``math.asin``: below 3 ulp).
"""

from __future__ import annotations

import math

from numba import njit

# Remez coefficients of R(z) = z p(z) / q(z) from FreeBSD msun e_asin.c (Sun Microsystems, 1993)
_P0 = 1.66666666666666657415e-01
_P1 = -3.25565818622400915405e-01
_P2 = 2.01212532134862925881e-01
_P3 = -4.00555345006794114027e-02
_P4 = 7.91534994289814532176e-04
_P5 = 3.47933107596021167570e-05
_Q1 = -2.40339491173441421878e00
_Q2 = 2.02094576023350569471e00
_Q3 = -6.88283971605453293030e-01
_Q4 = 7.70381505559019352791e-02
_PI_2 = 1.57079632679489661923


@njit(cache=True, inline="always", error_model="numpy")
def asin(x: float) -> float:
    """arcsin(x) for -1 <= x <= 1 without branches (NaN outside, as ``math.asin`` raises there)."""
    a = abs(x)
    big = a >= 0.5
    z = (1.0 - a) * 0.5 if big else a * a
    p = z * (_P0 + z * (_P1 + z * (_P2 + z * (_P3 + z * (_P4 + z * _P5)))))
    q = 1.0 + z * (_Q1 + z * (_Q2 + z * (_Q3 + z * _Q4)))
    r = p / q
    s = math.sqrt(z)
    y = (_PI_2 - 2.0 * (s + s * r)) if big else (a + a * r)
    y = y if a <= 1.0 else math.nan
    return math.copysign(y, x)
